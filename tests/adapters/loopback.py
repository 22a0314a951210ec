"""A tiny loopback HTTP venue for adapter tests, and pointing ccxt at it.

It serves the real recorded Binance USD-M exchangeInfo (trimmed to BTCUSDT and
ETHUSDT), the server time, klines, market orders by client id and scripted
failures; every other path answers with whatever failure is scripted, or 503.
Real, unmodified ccxt code does the HTTP, signing and parsing.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from twinstar.adapters.ccxt_base import rebase_urls

INFO = (Path(__file__).parent / "data" / "binance_usdm_exchange_info.json").read_text()


@dataclass
class Failure:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Venue:
    port: int = 0
    requests: list[tuple[str, str]] = field(default_factory=list)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: deque[Failure] = field(default_factory=deque)
    klines: list[list[Any]] = field(default_factory=list)
    offset_ms: int = 0
    price: float = 30_000.0
    time_reply_delay_s: float = 0.0  # stamp the time, then hold the reply: an asymmetric path
    weight_limit: int | None = None  # enforce Binance-style weight per fixed window, 429 beyond it
    weight_window_s: float = 60.0
    rejected_429: int = 0
    _window: tuple[int, int] = (0, 0)  # (window index, weight used in it)
    down: bool = False  # answer every request with 503, as a venue in an outage

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def point(self, exchange: Any) -> None:
        """Rewrite every REST URL of a ccxt instance to this server (same paths)."""
        exchange.urls["api"] = rebase_urls(exchange.urls["api"], self.base)

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.method, request.path))
        if self.weight_limit is not None:
            index = int(time.time() / self.weight_window_s)
            used = (self._window[1] if self._window[0] == index else 0) + 1
            self._window = (index, used)
            if used > self.weight_limit:
                self.rejected_429 += 1
                return web.json_response(
                    {"code": -1003, "msg": "Too many requests"},
                    status=429,
                    headers={"Retry-After": "1", "X-MBX-USED-WEIGHT-1M": str(used)},
                )
            response = await self._answer(request)
            response.headers["X-MBX-USED-WEIGHT-1M"] = str(used)
            return response
        return await self._answer(request)

    async def _answer(self, request: web.Request) -> web.Response:
        if self.down:
            return web.json_response({"code": -1, "msg": "service unavailable"}, status=503)
        if self.failures:
            failure = self.failures.popleft()
            return web.json_response(failure.body, status=failure.status, headers=failure.headers)
        path = request.path
        if path.endswith("/exchangeInfo"):
            return web.Response(text=INFO, content_type="application/json")
        if path.endswith("/time"):
            stamped = int(time.time() * 1000) + self.offset_ms
            await asyncio.sleep(self.time_reply_delay_s)
            return web.json_response({"serverTime": stamped})
        if path.endswith("/klines"):
            return web.json_response(self.klines)
        if path == "/fapi/v1/order" and request.method == "POST":
            form = dict(await request.post())
            cid = str(form["newClientOrderId"])
            qty = str(form["quantity"])
            order = {
                "orderId": len(self.orders) + 1,
                "clientOrderId": cid,
                "symbol": form["symbol"],
                "status": "FILLED",
                "type": "MARKET",
                "side": form["side"],
                "origQty": qty,
                "executedQty": qty,
                "avgPrice": f"{self.price:.2f}",
                "price": "0",
                "cumQuote": f"{float(qty) * self.price:.5f}",
                "reduceOnly": form.get("reduceOnly") == "true",
                "updateTime": int(time.time() * 1000),
            }
            self.orders[cid] = order
            return web.json_response(order)
        if path == "/fapi/v1/order" and request.method == "GET":
            found = self.orders.get(request.query.get("origClientOrderId", ""))
            if found is None:
                return web.json_response({"code": -2013, "msg": "Order does not exist."}, status=400)
            return web.json_response(found)
        return web.json_response({"code": -1, "msg": "service unavailable"}, status=503)


@asynccontextmanager
async def venue() -> AsyncIterator[Venue]:
    state = Venue()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", state.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.port = runner.addresses[0][1]
    try:
        yield state
    finally:
        await runner.cleanup()


def dumps(value: Any) -> str:
    return json.dumps(value)
