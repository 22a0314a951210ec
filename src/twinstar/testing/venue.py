"""A loopback Binance USD-M venue (REST and kline WebSocket) for tests and benchmarks.

It serves the real recorded Binance USD-M exchangeInfo (trimmed to BTCUSDT and
ETHUSDT), the server time, klines, market orders by client id and scripted
failures; every other path answers with whatever failure is scripted, or 503.
Real, unmodified ccxt code does the HTTP, signing and parsing.
"""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from twinstar.testing.loopback import Failure, Loopback, serve

__all__ = ["Failure", "Venue", "venue"]  # Failure moved to loopback; old imports keep working

INFO = (Path(__file__).parent / "data" / "binance_usdm_exchange_info.json").read_text()  # real, recorded


@dataclass
class Venue(Loopback):
    """Binance USD-M on loopback: orders by client id, algo stops, weight limits, kline stream."""

    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    klines: list[list[Any]] = field(default_factory=list)
    offset_ms: int = 0
    price: float = 30_000.0
    time_reply_delay_s: float = 0.0  # stamp the time, then hold the reply: an asymmetric path
    weight_limit: int | None = None  # enforce Binance-style weight per fixed window, 429 beyond it
    weight_window_s: float = 60.0
    rejected_429: int = 0
    _window: tuple[int, int] = (0, 0)  # (window index, weight used in it)
    balance: float = 10_000.0
    positions: dict[str, float] = field(default_factory=dict)  # symbol id -> signed amount
    algo_orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    live_klines_ms: int = 0  # > 0: serve klines of this length up to now, closes zigzagging
    subscriptions: list[str] = field(default_factory=list)
    order_arrivals_ns: list[int] = field(default_factory=list)  # perf_counter_ns of each order request
    fill_ratio: float = 1.0  # < 1: opening market orders fill only this share (the rest expires)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.method == "POST" and request.path == "/fapi/v1/order":
            self.order_arrivals_ns.append(time.perf_counter_ns())
        self.requests.append((request.method, request.path))
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._websocket(request)
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

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        """Binance's raw stream: SUBSCRIBE is acknowledged, then pushed frames flow."""
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.append(ws)
        try:
            async for message in ws:
                data = json.loads(message.data)
                if data.get("method") == "SUBSCRIBE":
                    self.subscriptions += data["params"]
                    await ws.send_json({"result": None, "id": data["id"]})
        finally:
            self.sockets.remove(ws)
        return ws

    async def push_kline(
        self, symbol_id: str, interval: str, open_ms: int, length_ms: int, close: float, *, final: bool = False
    ) -> None:
        """Send a kline frame in Binance USD-M's real shape to every open socket."""
        frame = {
            "e": "kline",
            "E": open_ms + 1,
            "s": symbol_id,
            "k": {
                "t": open_ms,
                "T": open_ms + length_ms - 1,
                "s": symbol_id,
                "i": interval,
                "f": 1,
                "L": 2,
                "o": f"{close}",
                "c": f"{close}",
                "h": f"{close + 1}",
                "l": f"{close - 1}",
                "v": "3",
                "n": 2,
                "x": final,
                "q": "0",
                "V": "0",
                "Q": "0",
                "B": "0",
            },
        }
        for ws in list(self.sockets):
            await ws.send_json(frame)

    def _live_klines(self, request: web.Request) -> list[list[Any]]:
        """Candles up to now (the last one still open), closes zigzagging so SMAs cross often."""
        length = self.live_klines_ms
        now = int(time.time() * 1000)
        last_open = now // length * length
        since = int(request.query.get("startTime", last_open - 99 * length))
        rows = []
        for open_ms in range(max(since // length * length, last_open - 999 * length), last_open + 1, length):
            step = open_ms // length
            close = 30_000 + 300 * (1 if step % 6 < 3 else -1) + (step % 3) * 10
            self.price = float(close)
            rows.append(
                [
                    open_ms,
                    f"{close - 5}",
                    f"{close + 20}",
                    f"{close - 20}",
                    f"{close}",
                    "10",
                    open_ms + length - 1,
                    "0",
                    1,
                    "0",
                    "0",
                    "0",
                ]
            )
        return rows

    async def _answer(self, request: web.Request) -> web.Response:
        if self.down:
            return web.json_response({"code": -1, "msg": "service unavailable"}, status=503)
        return await self._scripted(request)

    async def _carry_out(self, request: web.Request) -> web.Response:
        path = request.path
        if path.endswith("/exchangeInfo"):
            return web.Response(text=INFO, content_type="application/json")
        if path.endswith("/time"):
            stamped = int(time.time() * 1000) + self.offset_ms
            await asyncio.sleep(self.time_reply_delay_s)
            return web.json_response({"serverTime": stamped})
        if path.endswith("/klines"):
            return web.json_response(self._live_klines(request) if self.live_klines_ms else self.klines)
        if path == "/fapi/v3/account":
            return web.json_response(
                {
                    "assets": [
                        {
                            "asset": "USDT",
                            "availableBalance": str(self.balance),
                            "initialMargin": "0",
                            "marginBalance": str(self.balance),
                            "updateTime": int(time.time() * 1000),
                        }
                    ],
                    "positions": [],
                }
            )
        if path == "/fapi/v1/leverageBracket":
            return web.json_response(
                [
                    {
                        "symbol": s,
                        "brackets": [
                            {
                                "bracket": 1,
                                "initialLeverage": 125,
                                "notionalCap": 5e7,
                                "notionalFloor": 0,
                                "maintMarginRatio": 0.004,
                                "cum": 0,
                            }
                        ],
                    }
                    for s in ("BTCUSDT", "ETHUSDT")
                ]
            )
        if path == "/fapi/v3/positionRisk":
            return web.json_response(
                [
                    {
                        "symbol": s,
                        "positionSide": "BOTH",
                        "positionAmt": str(a),
                        "entryPrice": str(self.price),
                        "markPrice": str(self.price),
                        "unRealizedProfit": "0",
                        "liquidationPrice": "0",
                        "notional": str(a * self.price),
                        "isolatedWallet": "0",
                        "updateTime": int(time.time() * 1000),
                        "initialMargin": "0",
                        "maintMargin": "0",
                        "marginAsset": "USDT",
                    }
                    for s, a in self.positions.items()
                    if a != 0
                ]
            )
        if path == "/fapi/v1/algoOrder" and request.method == "POST":
            form = dict(await request.post())
            algo_id = len(self.algo_orders) + 1
            order = {
                "algoId": algo_id,
                "clientAlgoId": form.get("clientAlgoId"),
                "algoType": "CONDITIONAL",
                "orderType": form.get("type"),
                "symbol": form["symbol"],
                "side": form["side"],
                "positionSide": "BOTH",
                "quantity": form["quantity"],
                "algoStatus": "NEW",
                "triggerPrice": form["triggerPrice"],
                "price": "0",
                "reduceOnly": True,
                "createTime": int(time.time() * 1000),
                "updateTime": int(time.time() * 1000),
            }
            self.algo_orders[algo_id] = order
            return web.json_response(order)
        if path == "/fapi/v1/algoOrder" and request.method == "DELETE":
            algo = self.algo_orders.get(int(request.query.get("algoId", "0")))
            if algo is None:
                return web.json_response({"code": -2011, "msg": "Unknown order sent."}, status=400)
            algo["algoStatus"] = "CANCELED"
            return web.json_response(
                {"algoId": algo["algoId"], "clientAlgoId": algo["clientAlgoId"], "code": "200", "msg": "success"}
            )
        if path == "/fapi/v1/order" and request.method == "POST":
            form = dict(await request.post())
            cid = str(form["newClientOrderId"])
            qty = str(form["quantity"])
            # A market order that runs out of liquidity: only part fills and the rest expires.
            partial = self.fill_ratio < 1 and form.get("reduceOnly") != "true"
            filled = f"{float(qty) * self.fill_ratio:.3f}" if partial else qty
            order = {
                "orderId": len(self.orders) + 1,
                "clientOrderId": cid,
                "symbol": form["symbol"],
                "status": "EXPIRED" if partial else "FILLED",
                "type": "MARKET",
                "side": form["side"],
                "origQty": qty,
                "executedQty": filled,
                "avgPrice": f"{self.price:.2f}",
                "price": "0",
                "cumQuote": f"{float(filled) * self.price:.5f}",
                "reduceOnly": form.get("reduceOnly") == "true",
                "updateTime": int(time.time() * 1000),
            }
            self.orders[cid] = order
            signed = float(filled) if form["side"] == "BUY" else -float(filled)
            self.positions[str(form["symbol"])] = round(self.positions.get(str(form["symbol"]), 0.0) + signed, 8)
            return web.json_response(order)
        if path == "/fapi/v1/order" and request.method == "GET":
            found = self.orders.get(request.query.get("origClientOrderId", ""))
            if found is None:
                return web.json_response({"code": -2013, "msg": "Order does not exist."}, status=400)
            return web.json_response(found)
        return web.json_response({"code": -1, "msg": "service unavailable"}, status=503)


def venue(*, tls_hosts: tuple[str, ...] = ()) -> AbstractAsyncContextManager[Venue]:
    """Run a venue on 127.0.0.1 (random port); with `tls_hosts`, over TLS under those names.

    With TLS, `state.client_session()` is the aiohttp session to hand to ccxt
    (`{'session': ...}`): it keeps ccxt's real URLs and reaches only this server.
    """
    return serve(Venue(), tls_hosts=tls_hosts)
