"""The control plane's HTTP server: an aiohttp app inside the kernel's own event loop.

Routes (every one behind the bearer token when `control.token_env` is set):

* ``GET /`` the status page; ``GET /api/status`` the `Status` as JSON;
  ``GET /api/stream`` server-sent events, one status per change (at most one
  per `push_interval_s`; ``?format=html`` sends the page's rendered tables);
* ``POST /api/pause`` ``{"reason": ...}``, ``POST /api/resume``,
  ``POST /api/flatten`` ``{"exchange": ..., "symbol": ...}`` (both optional:
  all): each publishes its event on the bus, so the recorded stream holds it
  and a replay does it again;
* ``GET /metrics`` Prometheus text, when metrics are on.

Commands must be JSON (`Content-Type: application/json`): a browser cannot
send that to another site without asking first, so a web page elsewhere
cannot pause or flatten a kernel listening on 127.0.0.1 without a token.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any, Final

import anyio
import msgspec
from aiohttp import web

from twinstar.bus.bus import Bus
from twinstar.bus.events import EntriesPaused, EntriesResumed, Event, FlattenRequested
from twinstar.clock import Clock
from twinstar.config import ConfigError, ControlConfig
from twinstar.control.auth import authorized
from twinstar.control.page import render_live, render_page
from twinstar.control.status import StatusModel

log: Final = logging.getLogger("twinstar.control")

_HEARTBEAT_S: Final = 15.0  # a comment line this often keeps proxies and phones from closing an idle stream
_encoder: Final = msgspec.json.Encoder()
_LOOPBACK_NAMES: Final = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def ensure_can_listen(settings: ControlConfig) -> None:
    """Refuse, before the kernel starts, an address this process cannot listen on (a port in use)."""
    if settings.port == 0:
        return
    try:
        socket.create_server((settings.host, settings.port)).close()
    except OSError as exc:
        raise ConfigError(
            f"control plane cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}"
        ) from None


class BadCommandError(ValueError):
    """A command the API refuses; the message goes back to the client."""


class ControlServer:
    """Component: serves status, page, stream, commands and metrics on `control.host:port`."""

    def __init__(
        self,
        settings: ControlConfig,
        status: StatusModel,
        clock: Clock,
        *,
        token: str = "",
        metrics: Callable[[], bytes] | None = None,
    ) -> None:
        self.settings = settings
        self.status = status
        self.clock = clock
        self.port = settings.port  # the bound port once started (settings.port 0 picks a free one)
        self._token = token
        self._metrics = metrics
        self._bus: Bus | None = None
        self._runner: web.AppRunner | None = None
        self._closing = False
        self.commands = 0

    def attach(self, bus: Bus) -> None:
        """Commands go out on `bus`; nothing to subscribe (the status model follows the events)."""
        self._bus = bus

    @property
    def url(self) -> str:
        """The base URL the server listens on."""
        return f"http://{self.settings.host}:{self.port}"

    async def start(self) -> None:
        """Listen; the kernel's loop serves every request, no thread involved."""
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/", self._page)
        app.router.add_get("/api/status", self._status)
        app.router.add_get("/api/stream", self._stream)
        app.router.add_post("/api/pause", self._command(self._pause))
        app.router.add_post("/api/resume", self._command(self._resume))
        app.router.add_post("/api/flatten", self._command(self._flatten))
        if self._metrics is not None:
            app.router.add_get("/metrics", self._scrape)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)  # an access log would print `?token=`
        await runner.setup()
        site = web.TCPSite(runner, self.settings.host, self.settings.port)
        try:
            await site.start()
        except OSError as exc:  # taken since `ensure_can_listen`
            await runner.cleanup()
            raise ConfigError(f"control plane cannot listen on {self.url}: {exc.strerror or exc}") from None
        self._runner = runner
        self.port = runner.addresses[0][1]
        log.info("control plane on %s/ (%s)", self.url, "token required" if self._token else "no token: loopback")

    async def stop(self) -> None:
        """End the live streams and close the listener."""
        self._closing = True
        self.status.wake()
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _auth(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if not self._token and request.url.host not in _LOOPBACK_NAMES:
            # No token: only loopback names, or a web page could rebind its own name to 127.0.0.1 and read us.
            return web.json_response({"error": f"unknown host {request.host!r}"}, status=421)
        if not authorized(request, self._token):
            return web.json_response(
                {"error": "unauthorized: send Authorization: Bearer <token>"},
                status=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        return await handler(request)

    async def _page(self, request: web.Request) -> web.Response:
        # The token may sit in this page's URL: never sent on as a referrer, never cached.
        headers = {"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
        return web.Response(text=render_page(self.status.snapshot()), content_type="text/html", headers=headers)

    async def _status(self, request: web.Request) -> web.Response:
        return web.Response(body=_encoder.encode(self.status.snapshot()), content_type="application/json")

    async def _scrape(self, request: web.Request) -> web.Response:
        assert self._metrics is not None
        return web.Response(body=self._metrics(), headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: the status now, then again after every change, until either side goes."""
        html = request.query.get("format") == "html"
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        version = -1
        try:
            while not self._closing:
                version = self.status.version
                status = self.status.snapshot()
                payload = _encoder.encode({"html": render_live(status)} if html else status)
                await response.write(b"data: " + payload + b"\n\n")
                # UI pacing in wall time, not the kernel's clock: a person reads it.
                await anyio.sleep(self.settings.push_interval_s)
                with anyio.move_on_after(_HEARTBEAT_S) as idle:
                    await self.status.wait_changed(version)
                if idle.cancelled_caught:
                    await response.write(b": idle\n\n")
        except (ConnectionResetError, ConnectionError):
            pass  # the page went away
        return response

    # -- commands ----------------------------------------------------------

    def _command(self, make: Callable[[dict[str, Any]], Event]) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            if request.content_type != "application/json":
                return web.json_response({"error": "commands are JSON (Content-Type: application/json)"}, status=415)
            try:
                body = await request.json() if await request.read() else {}
                if not isinstance(body, dict):
                    raise BadCommandError("the body must be a JSON object")
                event = make(body)
            except (ValueError, BadCommandError) as exc:
                return web.json_response({"error": str(exc)}, status=400)
            bus = self._bus
            if bus is None or bus.closed or self.status.kernel_state != "running":
                return web.json_response({"error": "the kernel is not running"}, status=503)
            await bus.publish(event)
            self.commands += 1  # the live log has its line: the event, with source "api"
            return web.json_response({"accepted": msgspec.to_builtins(event)}, status=202)

        return handle

    def _pause(self, body: dict[str, Any]) -> Event:
        reason = _text(body, "reason") or "by the operator"
        return EntriesPaused(ts_ns=self.clock.now_ns(), reason=reason)

    def _resume(self, body: dict[str, Any]) -> Event:
        return EntriesResumed(ts_ns=self.clock.now_ns())

    def _flatten(self, body: dict[str, Any]) -> Event:
        exchange, symbol = _text(body, "exchange"), _text(body, "symbol")
        known = self.status.symbols
        if exchange and exchange not in known:
            raise BadCommandError(f"no venue {exchange!r} (trading: {', '.join(known)})")
        if symbol and not any(symbol in symbols for name, symbols in known.items() if exchange in ("", name)):
            raise BadCommandError(f"{symbol!r} is not traded{f' on {exchange}' if exchange else ''}")
        what = f"{exchange or 'every venue'} {symbol or 'every symbol'}"
        reason = _text(body, "reason") or f"by the operator: {what}"
        return FlattenRequested(ts_ns=self.clock.now_ns(), reason=reason, exchange=exchange, symbol=symbol)

    def __repr__(self) -> str:
        return f"ControlServer(url={self.url!r}, commands={self.commands}, closing={self._closing})"


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key, "")
    if not isinstance(value, str):
        raise BadCommandError(f"{key!r} must be a string")
    return value[:200]
