"""What every loopback venue shares: the server on 127.0.0.1, scripted failures, request log.

A venue subclasses `Loopback`, answers requests in `_carry_out` and routes
them through `_scripted`, which applies the next scripted `Failure` first.
`serve` runs any such venue on a random port, over plain HTTP or, with
`tls_hosts`, over TLS under real host names (see `twinstar.testing.tls`).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web

from twinstar.adapters.ccxt_base import rebase_urls


@dataclass
class Failure:
    """One scripted misbehaviour for the next matching request.

    `status`/`body`: the error reply (`text`, when set, replaces the JSON body,
    as a CDN's or gateway's plain error page does). `delay_s` holds the reply
    back (past the client's timeout); with `executes=True` the request is
    carried out first, so an order reaches the book although its reply never
    arrives in time. `path`: only requests whose path ends with it (empty: any
    request).
    """

    status: int = 200
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    executes: bool = False
    path: str = ""
    text: str | None = None

    def reply(self) -> web.Response:
        """The error reply this failure scripts."""
        if self.text is not None:
            return web.Response(text=self.text, status=self.status, headers=self.headers)
        return web.json_response(self.body, status=self.status, headers=self.headers)


@dataclass
class Loopback:
    """State and plumbing shared by the loopback venues (subclasses add the protocol)."""

    port: int = 0
    requests: list[tuple[str, str]] = field(default_factory=list)
    failures: deque[Failure] = field(default_factory=deque)
    down: bool = False  # answer every request as a venue in an outage does
    sockets: list[web.WebSocketResponse] = field(default_factory=list)
    tls_hosts: tuple[str, ...] = ()
    client_tls: ssl.SSLContext | None = None

    def client_session(self) -> Any:
        """A session that resolves this venue's TLS host names to it, and nothing else."""
        from twinstar.testing.tls import loopback_session

        assert self.client_tls is not None, "start the venue with tls_hosts"
        return loopback_session(self.tls_hosts, self.port, self.client_tls)

    @property
    def base(self) -> str:
        """The plain-HTTP base URL of this server."""
        return f"http://127.0.0.1:{self.port}"

    def point(self, exchange: Any) -> None:
        """Rewrite every REST and WebSocket URL of a ccxt instance to this server (same paths)."""
        exchange.urls["api"] = rebase_urls(exchange.urls["api"], self.base)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """The aiohttp entry point for every request."""
        raise NotImplementedError

    async def _carry_out(self, request: web.Request) -> web.Response:
        """Do what the request asks, as the real venue would."""
        raise NotImplementedError

    async def _scripted(self, request: web.Request) -> web.Response:
        """Apply the next scripted failure if it matches this request; otherwise carry it out."""
        if self.failures and request.path.endswith(self.failures[0].path):
            failure = self.failures.popleft()
            response = await self._carry_out(request) if failure.executes else None
            await asyncio.sleep(failure.delay_s)  # server-side only: the client just sees a late reply
            return response if response is not None else failure.reply()
        return await self._carry_out(request)

    async def drop_sockets(self) -> None:
        """Close every WebSocket from the server side, as a venue restart does."""
        for ws in list(self.sockets):
            await ws.close()


L = TypeVar("L", bound=Loopback)


@asynccontextmanager
async def serve(state: L, *, tls_hosts: tuple[str, ...] = ()) -> AsyncIterator[L]:
    """Run `state` on 127.0.0.1 (random port); with `tls_hosts`, over TLS under those names."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", state.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    server_tls = None
    if tls_hosts:
        from twinstar.testing.tls import self_signed_contexts

        server_tls, state.client_tls = self_signed_contexts(tls_hosts)
        state.tls_hosts = tls_hosts
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_tls)
    await site.start()
    state.port = runner.addresses[0][1]
    try:
        yield state
    finally:
        await runner.cleanup()
