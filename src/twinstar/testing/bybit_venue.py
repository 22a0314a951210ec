"""A loopback Bybit v5 venue (REST and public linear WebSocket) for tests.

It speaks enough of the v5 protocol for unmodified ccxt (`ccxt.pro.bybit`) to
load markets (the real BTCUSDT and ETHUSDT linear instruments), read the time
and klines, place market and conditional orders by `orderLinkId`, find and
cancel them, and read positions and the unified wallet; the public linear
socket streams `kline.{interval}.{symbol}` frames in Bybit's real shape.

Bybit's conventions are kept: every reply is the `retCode` envelope, business
errors are HTTP 200 with `retCode != 0`, unknown query parameters are ignored,
a signed request whose timestamp is outside the receive window gets 10002.
Scripted `Failure`s and the `down`/`silent` switches inject faults.
"""

from __future__ import annotations

import functools
import json
import time
import uuid
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from aiohttp import web

from twinstar.testing.loopback import Loopback, serve

# Real instruments (see data/PROVENANCE.md), keyed by symbol.
INSTRUMENTS: Final[dict[str, dict[str, Any]]] = {
    i["symbol"]: i for i in json.loads((Path(__file__).parent / "data" / "bybit_linear_instruments.json").read_text())
}
OPEN_STATES: Final = ("New", "PartiallyFilled", "Untriggered")
PUBLIC_PREFIX: Final = "/v5/market/"
LEVERAGE: Final = 10  # the account's leverage on every symbol: margin = notional / LEVERAGE


def _json(payload: dict[str, Any]) -> web.Response:
    """A JSON reply written compactly, as Bybit writes it (`{"retCode":0,...}`)."""
    return web.json_response(payload, dumps=functools.partial(json.dumps, separators=(",", ":")))


def _num(value: float | Decimal) -> str:
    """A number as Bybit writes it: plain decimal, no exponent, no trailing zeros."""
    text = format(Decimal(str(value)), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


@dataclass
class BybitVenue(Loopback):
    """Bybit v5 linear perpetuals on loopback: state a test can read and script."""

    orders: dict[str, dict[str, Any]] = field(default_factory=dict)  # orderLinkId -> order, in arrival order
    created: list[dict[str, Any]] = field(default_factory=list)  # every /v5/order/create body, as received
    cancels: list[dict[str, Any]] = field(default_factory=list)  # every /v5/order/cancel body, as received
    klines: list[list[Any]] = field(default_factory=list)  # [start_ms, open, high, low, close, volume, turnover]
    offset_ms: int = 0  # the venue's clock minus ours
    price: float = 30_000.0  # last traded price of every symbol
    balance: float = 10_000.0  # USDT wallet balance
    positions: dict[str, float] = field(default_factory=dict)  # symbol -> signed size (one-way mode)
    fill_ratio: float = 1.0  # < 1: opening market orders fill only this share (the rest is cancelled)
    subscriptions: list[str] = field(default_factory=list)
    silent: bool = False  # sockets stay open but nothing more is sent: no acks, no pongs, no data
    conn_id: str = field(default_factory=lambda: uuid.uuid4().hex[:20])

    # -- HTTP ------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Log the request, then answer it (a WebSocket upgrade goes to the stream)."""
        self.requests.append((request.method, request.path))
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._websocket(request)
        if self.down:  # what Bybit's edge serves during an outage: a plain page, not the envelope
            return web.Response(text="<html><body>503 Service Temporarily Unavailable</body></html>", status=503)
        return await self._scripted(request)

    def now_ms(self) -> int:
        """The venue's clock."""
        return int(time.time() * 1000) + self.offset_ms

    def _ok(self, result: dict[str, Any]) -> web.Response:
        return _json({"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": self.now_ms()})

    def _error(self, code: int, message: str) -> dict[str, Any]:
        return {"retCode": code, "retMsg": message, "result": {}, "retExtInfo": {}, "time": self.now_ms()}

    async def _carry_out(self, request: web.Request) -> web.Response:
        path = request.path
        if path.startswith(PUBLIC_PREFIX):
            return self._public(path.removeprefix(PUBLIC_PREFIX), request)
        stale = self._stale_timestamp(request)
        if stale is not None:
            return _json(stale)
        params: dict[str, Any] = dict(request.query)
        if request.method == "POST":
            params = json.loads(await request.text() or "{}")
        routes = {
            ("POST", "/v5/order/create"): self._create,
            ("POST", "/v5/order/cancel"): self._cancel,
            ("GET", "/v5/order/realtime"): self._realtime,
            ("GET", "/v5/order/history"): self._history,
            ("GET", "/v5/position/list"): self._positions,
            ("GET", "/v5/account/wallet-balance"): self._wallet,
            ("GET", "/v5/user/query-api"): self._api_key,
            ("GET", "/v5/account/info"): self._account,
            ("GET", "/v5/asset/coin/query-info"): self._coins,
        }
        route = routes.get((request.method, path))
        if route is None:
            return web.Response(text="404 page not found", status=404)
        return route(params)

    def _stale_timestamp(self, request: web.Request) -> dict[str, Any] | None:
        """Bybit's receive-window rule: server_time - recv_window <= timestamp < server_time + 1000."""
        stamp = request.headers.get("X-BAPI-TIMESTAMP")
        if stamp is None:
            return self._error(10003, "API key is invalid.")  # private endpoints are signed
        window = int(request.headers.get("X-BAPI-RECV-WINDOW", "5000"))
        server = self.now_ms()
        if server - window <= int(stamp) < server + 1000:
            return None
        return self._error(
            10002,
            "invalid request, please check your server timestamp or recv_window param. "
            f"req_timestamp[{stamp}],server_timestamp[{server}],recv_window[{window}]",
        )

    def _public(self, endpoint: str, request: web.Request) -> web.Response:
        query = request.query
        if endpoint == "time":
            now_ns = self.now_ms() * 1_000_000
            return self._ok({"timeSecond": str(now_ns // 1_000_000_000), "timeNano": str(now_ns)})
        if endpoint == "instruments-info":
            category = query.get("category", "")
            listed = category == "linear" and query.get("status") is None  # no PreLaunch contracts here
            rows = list(INSTRUMENTS.values()) if listed else []
            return self._ok({"category": category, "list": rows, "nextPageCursor": ""})
        if endpoint == "kline":
            return self._kline(query.get("symbol", ""), query)
        return web.Response(text="404 page not found", status=404)

    def _kline(self, symbol: str, query: Any) -> web.Response:
        if symbol not in INSTRUMENTS:
            return _json(self._error(10001, "Not supported symbols"))
        start, end = int(query.get("start", 0)), int(query.get("end", 2**62))
        limit = min(int(query.get("limit", 200)), 1000)
        rows = sorted((r for r in self.klines if start <= int(r[0]) <= end), key=lambda r: -int(r[0]))
        if "start" in query and "end" not in query:  # from `start` on: the oldest `limit` candles after it
            rows = rows[-limit:]
        listed = [[str(r[0]), *(str(v) for v in r[1:])] for r in rows[:limit]]
        return self._ok({"category": query.get("category", "linear"), "symbol": symbol, "list": listed})

    # -- orders ------------------------------------------------------------------

    def _create(self, body: dict[str, Any]) -> web.Response:
        self.created.append(body)
        rejected = self._reject(body)
        if rejected is not None:
            return _json(rejected)
        symbol, qty = str(body["symbol"]), Decimal(str(body["qty"]))
        link = str(body.get("orderLinkId") or uuid.uuid4())
        now = str(self.now_ms())
        order: dict[str, Any] = {
            "orderId": str(uuid.uuid4()),
            "orderLinkId": link,
            "blockTradeId": "",
            "symbol": symbol,
            "price": "0",
            "qty": _num(qty),
            "side": body["side"],
            "isLeverage": "",
            "positionIdx": int(body.get("positionIdx", 0)),
            "orderStatus": "New",
            "cancelType": "UNKNOWN",
            "rejectReason": "EC_NoError",
            "avgPrice": "",
            "leavesQty": _num(qty),
            "leavesValue": "0",
            "cumExecQty": "0",
            "cumExecValue": "0",
            "cumExecFee": "0",
            "timeInForce": "IOC" if body["orderType"] == "Market" else str(body.get("timeInForce", "GTC")),
            "orderType": body["orderType"],
            "stopOrderType": "",
            "orderIv": "",
            "triggerPrice": "",
            "takeProfit": "",
            "stopLoss": "",
            "tpTriggerBy": "",
            "slTriggerBy": "",
            "triggerDirection": 0,
            "triggerBy": "",
            "lastPriceOnCreated": _num(self.price),
            "reduceOnly": bool(body.get("reduceOnly", False)),
            "closeOnTrigger": bool(body.get("closeOnTrigger", False)),
            "smpType": "None",
            "smpGroup": 0,
            "smpOrderId": "",
            "tpslMode": "",
            "tpLimitPrice": "",
            "slLimitPrice": "",
            "placeType": "",
            "createdTime": now,
            "updatedTime": now,
        }
        if "triggerPrice" in body:  # a conditional order rests untriggered
            order |= {
                "orderStatus": "Untriggered",
                "stopOrderType": "Stop",
                "triggerPrice": str(body["triggerPrice"]),
                "triggerDirection": int(body["triggerDirection"]),
                "triggerBy": str(body.get("triggerBy", "LastPrice")),
            }
        else:
            self._fill(order, qty)
        self.orders[link] = order
        return self._ok({"orderId": order["orderId"], "orderLinkId": link})

    def _reject(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """The retCode Bybit would answer for this order, or None when it is accepted."""
        instrument = INSTRUMENTS.get(str(body.get("symbol")))
        if body.get("category") != "linear" or instrument is None:
            return self._error(10001, "params error: symbol invalid")
        if int(body.get("positionIdx", 0)) != 0:
            return self._error(10001, "position idx not match position mode")
        if body.get("orderLinkId") in self.orders:
            return self._error(110072, "OrderLinkedID is duplicate")
        lots = instrument["lotSizeFilter"]
        qty = Decimal(str(body.get("qty", "0")))
        if qty < Decimal(lots["minOrderQty"]) or qty % Decimal(lots["qtyStep"]) != 0:
            return self._error(10001, "Qty invalid")
        if "triggerPrice" in body:
            direction, trigger = int(body.get("triggerDirection", 0)), float(body["triggerPrice"])
            if direction == 1 and trigger <= self.price:
                return self._error(110092, f"expect Rising, but trigger_price[{trigger}] <= current[{self.price}]")
            if direction == 2 and trigger >= self.price:  # 2 is Bybit's "falls to"
                return self._error(110093, f"expect Falling, but trigger_price[{trigger}] >= current[{self.price}]")
            if direction not in (1, 2):
                return self._error(10001, "TriggerDirection invalid")
            return None
        position = self.positions.get(str(body["symbol"]), 0.0)
        if body.get("reduceOnly"):
            closing = (position > 0 and body["side"] == "Sell") or (position < 0 and body["side"] == "Buy")
            return (
                None if closing else self._error(110017, "current position is zero, cannot fix reduce-only order qty")
            )
        if float(qty) * self.price < float(lots["minNotionalValue"]):
            return self._error(110094, "Order does not meet minimum order value 5USDT")
        if float(qty) * self.price / LEVERAGE > self.balance:
            return self._error(110007, "ab not enough for new order")
        return None

    def _fill(self, order: dict[str, Any], qty: Decimal) -> None:
        """Fill a market order at `price`; an opening one may fill only `fill_ratio` of it."""
        symbol, buy = order["symbol"], order["side"] == "Buy"
        position = self.positions.get(symbol, 0.0)
        step = Decimal(INSTRUMENTS[symbol]["lotSizeFilter"]["qtyStep"])
        if order["reduceOnly"]:
            filled = min(qty, Decimal(_num(abs(position))))
        else:
            filled = (qty * Decimal(str(self.fill_ratio)) / step).to_integral_value() * step
        value = filled * Decimal(str(self.price))
        order |= {
            "orderStatus": "Filled" if filled == qty else "PartiallyFilledCanceled",
            "avgPrice": _num(self.price) if filled else "",
            "leavesQty": "0",
            "cumExecQty": _num(filled),
            "cumExecValue": _num(value),
            "cumExecFee": _num(value * Decimal("0.00055")),
        }
        signed = float(filled) if buy else -float(filled)
        self.positions[symbol] = round(position + signed, 8)

    def _find(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Orders matching `orderId`/`orderLinkId`, `symbol` and `orderFilter` (unknown keys ignored)."""
        found = list(self.orders.values())
        for key in ("orderId", "orderLinkId", "symbol"):
            if params.get(key):
                found = [o for o in found if o[key] == params[key]]
        kind = params.get("orderFilter")
        if kind == "StopOrder":
            found = [o for o in found if o["stopOrderType"]]
        elif kind == "Order":
            found = [o for o in found if not o["stopOrderType"]]
        return found[::-1]  # newest first

    def _realtime(self, params: dict[str, Any]) -> web.Response:
        """Open orders, or any recent order when asked by id (as Bybit's last-500 window allows)."""
        found = self._find(params)
        if not (params.get("orderId") or params.get("orderLinkId")):
            found = [o for o in found if o["orderStatus"] in OPEN_STATES]
        return self._ok({"category": "linear", "list": found, "nextPageCursor": ""})

    def _history(self, params: dict[str, Any]) -> web.Response:
        found = [o for o in self._find(params) if o["orderStatus"] not in OPEN_STATES]
        return self._ok({"category": "linear", "list": found, "nextPageCursor": ""})

    def _cancel(self, body: dict[str, Any]) -> web.Response:
        self.cancels.append(body)
        keys = {k: body[k] for k in ("orderId", "orderLinkId", "symbol") if body.get(k)}
        found = [o for o in self._find(keys) if o["orderStatus"] in OPEN_STATES] if len(keys) > 1 else []
        if not found:
            return _json(self._error(110001, "order not exists or too late to cancel"))
        order = found[0]
        order["orderStatus"] = "Deactivated" if order["stopOrderType"] else "Cancelled"
        order["updatedTime"] = str(self.now_ms())
        return self._ok({"orderId": order["orderId"], "orderLinkId": order["orderLinkId"]})

    # -- account ---------------------------------------------------------------

    def _positions(self, params: dict[str, Any]) -> web.Response:
        symbol = params.get("symbol")
        if params.get("category") != "linear" or not (symbol or params.get("settleCoin")):
            return _json(self._error(10001, "params error: symbol or settleCoin is required"))
        symbols = [symbol] if symbol else [s for s, size in self.positions.items() if size]
        return self._ok(
            {
                "category": "linear",
                "list": [self._position(s) for s in symbols if s in INSTRUMENTS],
                "nextPageCursor": "",
            }
        )

    def _position(self, symbol: str) -> dict[str, Any]:
        size = self.positions.get(symbol, 0.0)
        value = abs(size) * self.price
        return {
            "positionIdx": 0,
            "riskId": 1,
            "riskLimitValue": "2000000",
            "symbol": symbol,
            "side": "Buy" if size > 0 else "Sell" if size < 0 else "",
            "size": _num(abs(size)),
            "avgPrice": _num(self.price) if size else "0",
            "positionValue": _num(value) if size else "",
            "tradeMode": 0,
            "autoAddMargin": 0,
            "positionStatus": "Normal",
            "leverage": str(LEVERAGE),
            "markPrice": _num(self.price),
            "liqPrice": "",
            "bustPrice": "",
            "positionIM": _num(value / LEVERAGE),
            "positionMM": _num(value * 0.005),
            "positionBalance": "0",
            "takeProfit": "0.00",
            "stopLoss": "0.00",
            "trailingStop": "0.00",
            "sessionAvgPrice": "",
            "unrealisedPnl": "0",
            "curRealisedPnl": "0",
            "cumRealisedPnl": "0",
            "adlRankIndicator": 2 if size else 0,
            "createdTime": "1676538056258",
            "updatedTime": str(self.now_ms()),
            "seq": 1,
            "isReduceOnly": False,
            "mmrSysUpdatedTime": "",
            "leverageSysUpdatedTime": "",
        }

    def _wallet(self, params: dict[str, Any]) -> web.Response:
        margin = sum(abs(s) * self.price / LEVERAGE for s in self.positions.values())
        free = _num(self.balance - margin)
        balance = _num(self.balance)
        coin = {
            "coin": "USDT",
            "equity": balance,
            "usdValue": balance,
            "walletBalance": balance,
            "free": "",
            "locked": "0",
            "spotHedgingQty": "0",
            "borrowAmount": "0",
            "availableToWithdraw": "",
            "accruedInterest": "0",
            "totalOrderIM": "0",
            "totalPositionIM": _num(margin),
            "totalPositionMM": "0",
            "unrealisedPnl": "0",
            "cumRealisedPnl": "0",
            "bonus": "0",
            "marginCollateral": True,
            "collateralSwitch": True,
            "availableToBorrow": "",
        }
        account = {
            "accountType": params.get("accountType", "UNIFIED"),
            "accountIMRate": "0",
            "accountMMRate": "0",
            "accountLTV": "0",
            "totalEquity": balance,
            "totalWalletBalance": balance,
            "totalMarginBalance": balance,
            "totalAvailableBalance": free,
            "totalPerpUPL": "0",
            "totalInitialMargin": _num(margin),
            "totalMaintenanceMargin": "0",
            "coin": [coin],
        }
        return self._ok({"list": [account]})

    def _coins(self, _: dict[str, Any]) -> web.Response:
        return self._ok({"rows": []})

    def _api_key(self, _: dict[str, Any]) -> web.Response:
        return self._ok(
            {
                "id": "13770661",
                "note": "twinstar loopback",
                "apiKey": "",
                "readOnly": 0,
                "secret": "",
                "permissions": {"ContractTrade": ["Order", "Position"], "Wallet": ["AccountTransfer"]},
                "ips": ["*"],
                "type": 1,
                "deadlineDay": 83,
                "expiredAt": "2030-01-01T00:00:00Z",
                "createdAt": "2024-01-01T00:00:00Z",
                "unified": 0,
                "uta": 1,  # a unified trading account, as every new Bybit account is
                "userID": 24617703,
                "inviterID": 0,
                "vipLevel": "No VIP",
                "mktMakerLevel": "0",
                "affiliateID": 0,
                "rsaPublicKey": "",
                "isMaster": True,
                "parentUid": "0",
                "kycLevel": "LEVEL_1",
                "kycRegion": "",
            }
        )

    def _account(self, _: dict[str, Any]) -> web.Response:
        return self._ok(
            {
                "unifiedMarginStatus": 6,  # UTA 2.0 Pro
                "marginMode": "REGULAR_MARGIN",
                "isMasterTrader": False,
                "spotHedgingStatus": "OFF",
                "updatedTime": "1697078946000",
                "dcpStatus": "OFF",
                "timeWindow": 10,
                "smpGroup": 0,
            }
        )

    # -- public WebSocket ------------------------------------------------------

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        """Bybit's public linear stream: subscribe is acknowledged, ping answered, klines pushed."""
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.append(ws)
        try:
            async for message in ws:
                data = json.loads(message.data)
                if self.silent:
                    continue  # the connection lives on, the venue says nothing more
                op, req_id = data.get("op"), str(data.get("req_id", ""))
                if op == "subscribe":
                    self.subscriptions += data.get("args", [])
                if op in ("subscribe", "unsubscribe"):
                    await ws.send_json(
                        {"success": True, "ret_msg": "", "conn_id": self.conn_id, "req_id": req_id, "op": op}
                    )
                elif op == "ping":
                    await ws.send_json(
                        {"success": True, "ret_msg": "pong", "conn_id": self.conn_id, "req_id": req_id, "op": "ping"}
                    )
        finally:
            self.sockets.remove(ws)
        return ws

    async def push_kline(
        self, symbol: str, interval: str, start_ms: int, length_ms: int, close: float, *, confirm: bool = False
    ) -> None:
        """Send a `kline.{interval}.{symbol}` frame in Bybit's real shape to every open socket."""
        if self.silent:
            return
        stamp = self.now_ms()
        frame = {
            "topic": f"kline.{interval}.{symbol}",
            "data": [
                {
                    "start": start_ms,
                    "end": start_ms + length_ms - 1,
                    "interval": interval,
                    "open": _num(close),
                    "close": _num(close),
                    "high": _num(close + 1),
                    "low": _num(close - 1),
                    "volume": "0.329",
                    "turnover": _num(round(0.329 * close, 4)),
                    "confirm": confirm,
                    "timestamp": stamp,
                }
            ],
            "ts": stamp,
            "type": "snapshot",
        }
        for ws in list(self.sockets):
            await ws.send_json(frame)


def bybit_venue(*, tls_hosts: tuple[str, ...] = ()) -> AbstractAsyncContextManager[BybitVenue]:
    """Run a Bybit v5 venue on 127.0.0.1 (random port); with `tls_hosts`, over TLS under those names.

    Point a ccxt instance at it with `state.point(exchange)`, or (TLS) hand it
    `state.client_session()` so it keeps Bybit's real URLs.
    """
    return serve(BybitVenue(), tls_hosts=tls_hosts)
