"""What every loopback venue shares: the server on 127.0.0.1, scripted failures, request log, sockets, fills.

A venue subclasses `Loopback`, answers requests in `_carry_out` and routes
them through `_scripted`, which applies the next scripted `Failure` first.
`serve` runs any such venue on a random port, over plain HTTP or, with
`tls_hosts`, over TLS under real host names (see `twinstar.testing.tls`).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final, TypeVar

from aiohttp import web

from twinstar.adapters.ccxt_base import rebase_urls

#: How many entries a venue keeps in each of its logs and order books before dropping the oldest.
LOG_LIMIT: Final = 100_000
ORDER_LIMIT: Final = 10_000


@dataclass
class Failure:
    """One scripted misbehaviour for the next matching request.

    `status`/`body`: the error reply (`text`, when set, replaces the JSON body,
    as a CDN's or gateway's plain error page does). `delay_s` holds the reply
    back (past the client's timeout); with `executes=True` the request is
    carried out first, so an order reaches the book although its reply never
    arrives in time. With `arrives_late=True` the request itself is held for
    `delay_s` before the venue sees it, then carried out as usual (its real
    reply, or a refusal: a signed request that is by then outside its receive
    window is refused and never executes). `path`: only requests whose path
    ends with it (empty: any request); `method`: only requests of that HTTP
    method (empty: any).
    """

    status: int = 200
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    executes: bool = False
    path: str = ""
    text: str | None = None
    arrives_late: bool = False
    method: str = ""

    def reply(self) -> web.Response:
        """The error reply this failure scripts."""
        if self.text is not None:
            return web.Response(text=self.text, status=self.status, headers=self.headers)
        return web.json_response(self.body, status=self.status, headers=self.headers)


@dataclass
class Stream:
    """One open WebSocket and what it may receive: topics (or stream names), and whether it is private."""

    ws: web.WebSocketResponse
    path: str
    topics: set[str] = field(default_factory=set)
    private: bool = False  # authenticated (Bybit) or opened with a listen key (Binance)
    combined: bool = False  # Binance `/stream`: frames wrapped as {"stream": name, "data": frame}
    listen_key: str = ""


def bounded_append(log: list[Any], item: Any, limit: int = LOG_LIMIT) -> None:
    """Append to a log, dropping its oldest half once it holds `limit` entries (state stays bounded)."""
    log.append(item)
    if len(log) > limit:
        del log[: limit // 2]


def evict_closed(book: dict[Any, dict[str, Any]], is_open: Any, limit: int = ORDER_LIMIT) -> None:
    """Drop the oldest finished orders of `book` beyond `limit` (open orders always stay)."""
    excess = len(book) - limit
    if excess <= 0:
        return
    for key in [k for k, order in book.items() if not is_open(order)][:excess]:
        del book[key]


def apply_fill(size: float, entry: float, signed_qty: float, price: float) -> tuple[float, float, float]:
    """A one-way position after a fill: (new signed size, average entry price, realized PnL of the fill).

    Adding keeps a size-weighted average entry; reducing realizes PnL against
    it and keeps it; a flip through zero opens the rest at the fill price.
    """
    new = round(size + signed_qty, 10)
    if size == 0 or (size > 0) == (signed_qty > 0):
        return new, (abs(size) * entry + abs(signed_qty) * price) / abs(new), 0.0
    closed = min(abs(size), abs(signed_qty))
    realized = closed * (price - entry) * (1.0 if size > 0 else -1.0)
    if new == 0:
        return 0.0, 0.0, realized
    if (new > 0) != (size > 0):
        return new, price, realized
    return new, entry, realized


def decimals(text: str) -> int:
    """Digits after the decimal point as written (`"0.0010"` has 4)."""
    return len(text.split(".", 1)[1]) if "." in text else 0


def on_grid(value: Decimal, step: Decimal) -> bool:
    """Whether `value` is a whole multiple of `step` (a zero step means any value)."""
    return step == 0 or value % step == 0


R = TypeVar("R")


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
    offset_ms: int = 0  # the venue's clock minus ours (a test may skew it either way)
    streams: dict[int, Stream] = field(default_factory=dict)  # id(ws) -> what that socket receives
    held: int = 0  # requests a scripted Failure is holding back right now (a test waits for 0)
    _instant_ms: int | None = None  # set while one request is carried out: everything it does shares one time

    def now_ms(self) -> int:
        """The venue's clock in milliseconds (one instant for all a request does, as a matching engine stamps it)."""
        if self._instant_ms is not None:
            return self._instant_ms
        return int(time.time() * 1000) + self.offset_ms

    def at_one_instant(self, carry_out: Callable[[], R]) -> R:
        """Run `carry_out` (synchronous: nothing interleaves) with the venue's clock held at one instant."""
        self._instant_ms = self.now_ms()
        try:
            return carry_out()
        finally:
            self._instant_ms = None

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
        if (
            self.failures
            and request.path.endswith(self.failures[0].path)
            and self.failures[0].method in ("", request.method)
        ):
            failure = self.failures.popleft()
            self.held += 1
            try:
                if failure.arrives_late:
                    await request.read()  # the body is already in flight; a client that gives up cannot recall it
                    await asyncio.sleep(failure.delay_s)  # in flight: the venue has not seen it yet
                    return await self._carry_out(request)
                response = await self._carry_out(request) if failure.executes else None
                await asyncio.sleep(failure.delay_s)  # server-side only: the client just sees a late reply
                return response if response is not None else failure.reply()
            finally:
                self.held -= 1
        return await self._carry_out(request)

    async def drop_sockets(self) -> None:
        """Close every WebSocket from the server side, as a venue restart does."""
        for ws in list(self.sockets):
            await ws.close()

    def _open_stream(self, stream: Stream) -> None:
        self.sockets.append(stream.ws)
        self.streams[id(stream.ws)] = stream

    def _close_stream(self, ws: web.WebSocketResponse) -> None:
        if ws in self.sockets:
            self.sockets.remove(ws)
        self.streams.pop(id(ws), None)

    async def _send(self, streams: Iterable[Stream], frames: list[dict[str, Any]], name: str = "") -> int:
        """Send `frames` to each of `streams`; a socket that closed meanwhile is skipped, as TCP would.

        Return how many frames were written to an open socket.
        """
        sent = 0
        for stream in list(streams):
            for frame in frames:
                if stream.ws.closed:
                    break
                payload = {"stream": name, "data": frame} if stream.combined else frame
                with suppress(ConnectionResetError):
                    await stream.ws.send_json(payload)
                    sent += 1
        return sent


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
