"""A loopback Bybit v5 venue (REST, public linear and private WebSockets) for tests.

Unmodified ccxt (`ccxt.pro.bybit`) talks to it: it loads the real BTCUSDT and
ETHUSDT linear instruments (see data/PROVENANCE.md), reads the time and klines,
places market, limit and conditional orders by `orderLinkId`, amends, finds and
cancels them, sets position TP/SL (`stopLoss`/`takeProfit` on an order or
`/v5/position/trading-stop`), reads positions (real average entry price), the
unified wallet and executions. `move_price` moves the last price: crossed
limit orders fill, crossed conditional and TP/SL orders trigger into market
orders that fill at the price reached. The private socket (`/v5/private`,
`auth` op) pushes `order`, `execution`, `position` and `wallet` frames as
things happen; the public socket sends a kline only to its subscribers.

Bybit's conventions are kept: every reply is the `retCode` envelope, business
errors are HTTP 200 with `retCode != 0`, unknown query parameters are ignored,
a signed request whose timestamp is outside the receive window gets 10002.
Scripted `Failure`s and the `down`/`silent` switches inject faults.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final, Literal

from aiohttp import web

from twinstar.testing.klines import aggregate, page
from twinstar.testing.loopback import Loopback, Stream, apply_fill, bounded_append, evict_closed, on_grid, serve

# Real instruments (see data/PROVENANCE.md), keyed by symbol.
INSTRUMENTS: Final[dict[str, dict[str, Any]]] = {
    i["symbol"]: i for i in json.loads((Path(__file__).parent / "data" / "bybit_linear_instruments.json").read_text())
}
OPEN_STATES: Final = ("New", "PartiallyFilled", "Untriggered")
PUBLIC_PREFIX: Final = "/v5/market/"
KLINE_MINUTES: Final[dict[str, float]] = {  # Bybit's kline intervals, length in minutes (a month as 30 days)
    **{str(m): m for m in (1, 3, 5, 15, 30, 60, 120, 240, 360, 720)},
    "D": 1_440,
    "W": 10_080,
    "M": 43_200,
}
LEVERAGE: Final = 10  # the account's leverage on every symbol: margin = notional / LEVERAGE
PRIVATE_TOPICS: Final = ("order", "execution", "position", "wallet")
HEX64: Final = re.compile(r"^[0-9a-f]{64}$")
STOP_KINDS: Final = {  # (take profit?, partial?) -> (stopOrderType, createType)
    (False, False): ("StopLoss", "CreateByStopLoss"),
    (True, False): ("TakeProfit", "CreateByTakeProfit"),
    (False, True): ("PartialStopLoss", "CreateByPartialStopLoss"),
    (True, True): ("PartialTakeProfit", "CreateByPartialTakeProfit"),
}


def _decimal_text(value: Any) -> str:
    """A kline value as Bybit writes it: the text as given, an aggregated float without exponent."""
    return f"{Decimal(repr(value)):f}" if isinstance(value, float) else str(value)


def _json(payload: dict[str, Any]) -> web.Response:
    """A JSON reply written compactly, as Bybit writes it (`{"retCode":0,...}`)."""
    return web.json_response(payload, dumps=functools.partial(json.dumps, separators=(",", ":")))


def _num(value: float | Decimal) -> str:
    """A number as Bybit writes it: plain decimal, no exponent, no trailing zeros."""
    text = format(Decimal(str(round(value, 10) if isinstance(value, float) else value)), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


class RejectedError(Exception):
    """A request Bybit refuses with a non-zero retCode (HTTP 200)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _price_units(value: float) -> int:
    """A price as Bybit's TP/SL messages print it: in 1e-8 units (3.24 USDT is 324000000)."""
    return round(Decimal(str(value)) * 100_000_000)


@dataclass
class BybitVenue(Loopback):
    """Bybit v5 linear perpetuals on loopback: state a test can read and script."""

    orders: dict[str, dict[str, Any]] = field(default_factory=dict)  # orderLinkId (or orderId) -> order
    created: list[dict[str, Any]] = field(default_factory=list)  # every /v5/order/create body, as received
    cancels: list[dict[str, Any]] = field(default_factory=list)  # every /v5/order/cancel body, as received
    amends: list[dict[str, Any]] = field(default_factory=list)  # every /v5/order/amend body, as received
    trading_stops: list[dict[str, Any]] = field(default_factory=list)  # every /v5/position/trading-stop body
    executions: list[dict[str, Any]] = field(default_factory=list)  # every fill, as /v5/execution/list shows it
    klines: list[list[Any]] = field(default_factory=list)  # [start_ms, open, high, low, close, volume, turnover]
    kline_interval: str = ""  # Bybit's name of the interval `klines` are at ("1", "60", "D"); "": any asked
    price: float = 30_000.0  # last traded price of every symbol without its own entry in `prices`
    prices: dict[str, float] = field(default_factory=dict)  # symbol -> last traded price
    balance: float = 10_000.0  # USDT wallet balance: realized PnL and fees go into it
    positions: dict[str, float] = field(default_factory=dict)  # symbol -> signed size (one-way mode)
    entry_prices: dict[str, float] = field(default_factory=dict)  # symbol -> average entry price
    realized: dict[str, float] = field(default_factory=dict)  # symbol -> cumulative realized PnL
    position_tpsl: dict[str, dict[str, str]] = field(default_factory=dict)  # symbol -> Full-mode stopLoss/takeProfit
    leverages: dict[str, str] = field(default_factory=dict)  # symbol -> leverage as set (LEVERAGE where unset)
    margin_mode: str = "REGULAR_MARGIN"  # the unified account's mode: REGULAR_MARGIN (cross) or ISOLATED_MARGIN
    taker_fee: float = 0.00055  # Bybit's non-VIP derivatives taker rate
    maker_fee: float = 0.0002
    api_keys: dict[str, str] = field(default_factory=dict)  # key -> secret; set: only these keys, signatures checked
    fill_ratio: float = 1.0  # < 1: opening market orders fill only this share (the rest is cancelled)
    subscriptions: list[str] = field(default_factory=list)  # every topic ever subscribed, in order
    silent: bool = False  # sockets stay open but nothing more is sent: no acks, no pongs, no data
    order_arrivals: list[tuple[int, str]] = field(default_factory=list)  # (perf_counter_ns, symbol) of each create
    conn_id: str = field(default_factory=lambda: uuid.uuid4().hex[:20])

    # -- prices ----------------------------------------------------------------

    def last(self, symbol: str) -> float:
        """The last traded price of `symbol`."""
        return self.prices.get(symbol, self.price)

    async def move_price(self, price: float, symbol: str | None = None) -> list[dict[str, Any]]:
        """Set the last price (of `symbol`, or of every symbol) and let the book react, as Bybit's would.

        Resting limit orders the price crossed fill at their limit; conditional
        and TP/SL orders whose trigger it crossed (`triggerDirection` 1: rises
        to, 2: falls to) trigger and fill at market, at the price reached, so a
        gap fills beyond the trigger. Returns the orders that filled.
        """
        if symbol is None:
            self.price = price
            self.prices.clear()
            symbols = list(INSTRUMENTS)
        else:
            symbols = [symbol.split(":", maxsplit=1)[0].replace("/", "")]
            self.prices[symbols[0]] = price
        frames: list[tuple[str, dict[str, Any]]] = []
        filled: list[dict[str, Any]] = []
        for sym in symbols:
            for order in [o for o in self.orders.values() if o["symbol"] == sym and o["orderStatus"] in OPEN_STATES]:
                if order["orderStatus"] not in OPEN_STATES:
                    continue  # closed meanwhile: a trigger above flattened the position and deactivated it
                if order["orderStatus"] == "Untriggered" and self._crossed(order, price):
                    self._trigger(order, price, frames)
                elif order["orderStatus"] == "New" and self._limit_crossed(order, price):
                    self._fill(order, Decimal(order["leavesQty"]), float(order["price"]), frames, maker=True)
                if order["orderStatus"] in ("Filled", "PartiallyFilledCanceled"):
                    filled.append(order)
        await self._push(frames)
        return filled

    @staticmethod
    def _crossed(order: dict[str, Any], price: float) -> bool:
        trigger = float(order["triggerPrice"])
        return price >= trigger if order["triggerDirection"] == 1 else price <= trigger

    @staticmethod
    def _limit_crossed(order: dict[str, Any], price: float) -> bool:
        limit = float(order["price"])
        return price <= limit if order["side"] == "Buy" else price >= limit

    # -- HTTP ------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Log the request, then answer it (a WebSocket upgrade goes to the stream)."""
        if request.method == "POST" and request.path == "/v5/order/create":
            arrived = time.perf_counter_ns()
            try:
                symbol = str(json.loads(await request.text()).get("symbol", ""))
            except (ValueError, AttributeError):  # the handler answers a bad body as Bybit does
                symbol = ""
            bounded_append(self.order_arrivals, (arrived, symbol))
        bounded_append(self.requests, (request.method, request.path))
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._websocket(request)
        if self.down:  # what Bybit's edge serves during an outage: a plain page, not the envelope
            return web.Response(text="<html><body>503 Service Temporarily Unavailable</body></html>", status=503)
        return await self._scripted(request)

    def _ok(self, result: dict[str, Any]) -> web.Response:
        return _json({"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": self.now_ms()})

    def _error(self, code: int, message: str) -> dict[str, Any]:
        return {"retCode": code, "retMsg": message, "result": {}, "retExtInfo": {}, "time": self.now_ms()}

    async def _carry_out(self, request: web.Request) -> web.Response:
        path = request.path
        if path.startswith(PUBLIC_PREFIX):
            return self._public(path.removeprefix(PUBLIC_PREFIX), request)
        route = self._routes().get((request.method, path))
        if route is None:
            return web.Response(text="404 page not found", status=404)
        body = await request.text() if request.method == "POST" else ""
        refused = self._authenticate(request, body)
        if refused is not None:
            return _json(refused)
        params: dict[str, Any] = dict(request.query)
        if request.method == "POST":
            params = json.loads(body or "{}")
        frames: list[tuple[str, dict[str, Any]]] = []
        try:
            result = self.at_one_instant(lambda: route(params, frames))
        except RejectedError as rejected:
            return _json(self._error(rejected.code, rejected.message))
        await self._push(frames)  # the private stream sees a fill as it happens, before the REST reply leaves
        return self._ok(result)

    def _routes(self) -> dict[tuple[str, str], Callable[[dict[str, Any], list[tuple[str, dict[str, Any]]]], Any]]:
        return {
            ("POST", "/v5/order/create"): self._create,
            ("POST", "/v5/order/cancel"): self._cancel,
            ("POST", "/v5/order/amend"): self._amend,
            ("GET", "/v5/order/realtime"): self._realtime,
            ("GET", "/v5/order/history"): self._history,
            ("GET", "/v5/execution/list"): self._execution_list,
            ("GET", "/v5/position/list"): self._positions,
            ("POST", "/v5/position/trading-stop"): self._trading_stop,
            ("POST", "/v5/position/set-leverage"): self._set_leverage,
            ("POST", "/v5/account/set-margin-mode"): self._set_margin_mode,
            ("GET", "/v5/account/wallet-balance"): self._wallet,
            ("GET", "/v5/user/query-api"): self._api_key,
            ("GET", "/v5/account/info"): self._account,
            ("GET", "/v5/asset/coin/query-info"): lambda _p, _f: {"rows": []},
        }

    def _authenticate(self, request: web.Request, body: str) -> dict[str, Any] | None:
        """The key, the signature (when keys are configured), then the receive window, as Bybit checks them."""
        key, stamp = request.headers.get("X-BAPI-API-KEY"), request.headers.get("X-BAPI-TIMESTAMP")
        if not key or stamp is None:
            return self._error(10003, "API key is invalid.")  # private endpoints are signed
        if self.api_keys and key not in self.api_keys:
            return self._error(10003, "API key is invalid.")
        window = request.headers.get("X-BAPI-RECV-WINDOW", "5000")
        if key in self.api_keys:
            payload = stamp + key + window + (body if request.method == "POST" else request.query_string)
            expected = hmac.new(self.api_keys[key].encode(), payload.encode(), hashlib.sha256).hexdigest()
            if not hmac.compare_digest(expected, request.headers.get("X-BAPI-SIGN", "")):
                return self._error(10004, "Error sign, please check your signature generation algorithm.")
        server = self.now_ms()
        if server - int(window) <= int(stamp) < server + 1000:
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
        """GET /v5/market/kline: start, end, limit (default 200, max 1000), the interval; newest first, as Bybit."""
        if symbol not in INSTRUMENTS:
            return _json(self._error(10001, "Not supported symbols"))
        interval = query.get("interval", "")
        if interval not in KLINE_MINUTES:
            return _json(self._error(10001, "Invalid period!"))
        try:
            start, end = (int(query[name]) if name in query else None for name in ("start", "end"))
            limit = min(max(int(query.get("limit", 200)), 1), 1000)
        except ValueError:
            return _json(self._error(10001, "params error"))
        length = round(KLINE_MINUTES[interval] * 60_000)
        rows: list[list[Any]] = self.klines
        if self.kline_interval and interval != self.kline_interval:
            base = round(KLINE_MINUTES[self.kline_interval] * 60_000)
            # Finer, unaligned or calendar (W, M) candles than the ones kept: this venue has none.
            aligned = base < length <= 86_400_000 and length % base == 0
            rows = aggregate(self.klines, length, sums=(6,)) if aligned else []
        # With `end`, Bybit pages back from it; from `start` alone, forward; the candle holding `start` counts.
        keep: Literal["first", "last"] = "first" if start is not None and end is None else "last"
        chosen = page(rows, start_ms=start, end_ms=end, limit=limit, keep=keep, reach_ms=length)
        listed = [[str(int(r[0])), *(_decimal_text(v) for v in r[1:])] for r in reversed(chosen)]
        return self._ok({"category": query.get("category", "linear"), "symbol": symbol, "list": listed})

    # -- validation --------------------------------------------------------------

    @staticmethod
    def _instrument(body: dict[str, Any]) -> dict[str, Any]:
        instrument = INSTRUMENTS.get(str(body.get("symbol")))
        if body.get("category") != "linear" or instrument is None:
            raise RejectedError(10001, "params error: symbol invalid")
        return instrument

    @staticmethod
    def _decimal(body: dict[str, Any], key: str) -> Decimal:
        try:
            value = Decimal(str(body[key]))
        except (InvalidOperation, KeyError):
            raise RejectedError(10001, f"params error: {key} invalid") from None
        if not value.is_finite() or value < 0:
            raise RejectedError(10001, f"params error: {key} invalid")
        return value

    def _check_qty(self, body: dict[str, Any], instrument: dict[str, Any], *, market: bool) -> Decimal:
        """lotSizeFilter: minOrderQty, qtyStep and the market/limit maximum."""
        lots = instrument["lotSizeFilter"]
        qty = self._decimal(body, "qty")
        if qty < Decimal(lots["minOrderQty"]):
            raise RejectedError(10001, "The number of contracts exceeds minimum limit allowed")
        if qty > Decimal(lots["maxMktOrderQty" if market else "maxOrderQty"]):
            raise RejectedError(10001, "The number of contracts exceeds maximum limit allowed")
        if not on_grid(qty, Decimal(lots["qtyStep"])):
            raise RejectedError(10001, "Qty invalid")
        return qty

    def _check_price(self, body: dict[str, Any], key: str, instrument: dict[str, Any]) -> Decimal:
        """priceFilter: tickSize and the min/max price, for `price`, `triggerPrice`, `stopLoss`, `takeProfit`."""
        rules = instrument["priceFilter"]
        price = self._decimal(body, key)
        if not Decimal(rules["minPrice"]) <= price <= Decimal(rules["maxPrice"]) or not on_grid(
            price, Decimal(rules["tickSize"])
        ):
            raise RejectedError(10001, f"params error: {key} invalid")
        return price

    def _check_tpsl(self, symbol: str, long: bool, stop: float | None, profit: float | None, base: float) -> None:
        """A long's stop loss must lie below the base price and its take profit above; a short's mirror."""
        side = "Buy" if long else "Sell"
        if stop is not None and (stop >= base if long else stop <= base):
            raise RejectedError(
                10001,
                f"StopLoss:{_price_units(stop)} set for {side} position should "
                f"{'lower' if long else 'higher'} than base_price:{_price_units(base)}??LastPrice",
            )
        if profit is not None and (profit <= base if long else profit >= base):
            raise RejectedError(
                10001,
                f"TakeProfit:{_price_units(profit)} set for {side} position should "
                f"{'higher' if long else 'lower'} than base_price:{_price_units(base)}??LastPrice",
            )

    def _free_margin(self) -> float:
        used = sum(abs(s) * self.entry_prices.get(k, 0.0) / LEVERAGE for k, s in self.positions.items())
        return self.balance - used

    def _reducible(self, symbol: str, side: str) -> Decimal:
        size = self.positions.get(symbol, 0.0)
        reduces = (size > 0 and side == "Sell") or (size < 0 and side == "Buy")
        return Decimal(_num(abs(size))) if reduces else Decimal(0)

    # -- orders ------------------------------------------------------------------

    def _create(self, body: dict[str, Any], frames: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
        """POST /v5/order/create: validate as Bybit does, then fill, rest, or rest untriggered."""
        bounded_append(self.created, body)
        instrument = self._instrument(body)
        symbol = instrument["symbol"]
        if int(body.get("positionIdx", 0)) != 0:
            raise RejectedError(10001, "position idx not match position mode")
        link = str(body.get("orderLinkId") or "")
        if link and link in self.orders:
            raise RejectedError(110072, "OrderLinkedID is duplicate")
        kind, side = body.get("orderType"), body.get("side")
        if kind not in ("Market", "Limit"):
            raise RejectedError(10001, "params error: orderType invalid")
        if side not in ("Buy", "Sell"):
            raise RejectedError(10001, "params error: side invalid")
        qty = self._check_qty(body, instrument, market=kind == "Market")
        limit = float(self._check_price(body, "price", instrument)) if kind == "Limit" else 0.0
        last = self.last(symbol)
        reduce_only = bool(body.get("reduceOnly", False))
        conditional = "triggerPrice" in body
        stop = float(self._check_price(body, "stopLoss", instrument)) if body.get("stopLoss") else None
        profit = float(self._check_price(body, "takeProfit", instrument)) if body.get("takeProfit") else None
        if conditional:
            trigger = float(self._check_price(body, "triggerPrice", instrument))
            direction = int(body.get("triggerDirection", 0))
            if direction == 1 and trigger <= last:
                raise RejectedError(110092, f"expect Rising, but trigger_price[{trigger}] <= current[{last}]")
            if direction == 2 and trigger >= last:  # 2 is Bybit's "falls to"
                raise RejectedError(110093, f"expect Falling, but trigger_price[{trigger}] >= current[{last}]")
            if direction not in (1, 2):
                raise RejectedError(10001, "TriggerDirection invalid")
        if reduce_only:
            if not conditional and self._reducible(symbol, side) == 0:
                raise RejectedError(110017, "current position is zero, cannot fix reduce-only order qty")
        else:
            notional_price = limit or (float(body["triggerPrice"]) if conditional else last)
            if float(qty) * notional_price < float(instrument["lotSizeFilter"]["minNotionalValue"]):
                raise RejectedError(110094, "Order does not meet minimum order value 5USDT")
            if float(qty) * notional_price / LEVERAGE > self._free_margin():
                raise RejectedError(110007, "ab not enough for new order")
            if stop is not None or profit is not None:
                self._check_tpsl(symbol, side == "Buy", stop, profit, limit or last)
        order = self._order(body, symbol, link, qty, limit)
        self._store(order)
        if conditional:
            frames.append(("order", dict(order)))
            return {"orderId": order["orderId"], "orderLinkId": link}
        frames.append(("order", dict(order)))
        self._work(order, last, frames)
        return {"orderId": order["orderId"], "orderLinkId": link}

    def _order(self, body: dict[str, Any], symbol: str, link: str, qty: Decimal, limit: float) -> dict[str, Any]:
        """An order in Bybit's shape, as /v5/order/realtime lists it."""
        now = str(self.now_ms())
        kind = str(body["orderType"])
        has_tpsl = bool(body.get("stopLoss") or body.get("takeProfit"))
        order: dict[str, Any] = {
            "orderId": str(uuid.uuid4()),
            "orderLinkId": link,
            "blockTradeId": "",
            "symbol": symbol,
            "price": _num(limit) if limit else "0",
            "qty": _num(qty),
            "side": body["side"],
            "isLeverage": "",
            "positionIdx": int(body.get("positionIdx", 0)),
            "orderStatus": "New",
            "createType": "CreateByUser",
            "cancelType": "UNKNOWN",
            "rejectReason": "EC_NoError",
            "avgPrice": "",
            "leavesQty": _num(qty),
            "leavesValue": _num(qty * Decimal(str(limit))) if limit else "0",
            "cumExecQty": "0",
            "cumExecValue": "0",
            "cumExecFee": "0",
            "closedPnl": "0",
            "timeInForce": "IOC" if kind == "Market" else str(body.get("timeInForce", "GTC")),
            "orderType": kind,
            "stopOrderType": "",
            "orderIv": "",
            "triggerPrice": "",
            "takeProfit": str(body.get("takeProfit") or ""),
            "stopLoss": str(body.get("stopLoss") or ""),
            "tpTriggerBy": str(body.get("tpTriggerBy", "LastPrice")) if body.get("takeProfit") else "",
            "slTriggerBy": str(body.get("slTriggerBy", "LastPrice")) if body.get("stopLoss") else "",
            "triggerDirection": 0,
            "triggerBy": "",
            "lastPriceOnCreated": _num(self.last(symbol)),
            "reduceOnly": bool(body.get("reduceOnly", False)),
            "closeOnTrigger": bool(body.get("closeOnTrigger", False)),
            "smpType": "None",
            "smpGroup": 0,
            "smpOrderId": "",
            "tpslMode": str(body.get("tpslMode", "Full")) if has_tpsl else "",
            "tpLimitPrice": "",
            "slLimitPrice": "",
            "placeType": "",
            "parentOrderLinkId": "",
            "createdTime": now,
            "updatedTime": now,
        }
        if "triggerPrice" in body:  # a conditional order rests untriggered
            order |= {
                "orderStatus": "Untriggered",
                "stopOrderType": "Stop",
                "triggerPrice": _num(Decimal(str(body["triggerPrice"]))),
                "triggerDirection": int(body["triggerDirection"]),
                "triggerBy": str(body.get("triggerBy", "LastPrice")),
            }
        return order

    def _store(self, order: dict[str, Any]) -> None:
        self.orders[order["orderLinkId"] or order["orderId"]] = order
        evict_closed(self.orders, lambda o: o["orderStatus"] in OPEN_STATES)

    def _work(self, order: dict[str, Any], price: float, frames: list[tuple[str, dict[str, Any]]]) -> None:
        """An active order meets the book: a market or marketable limit fills, a limit rests (or IOC/FOK ends)."""
        if order["orderType"] == "Market" or self._limit_crossed(order, price):
            if order["orderType"] == "Limit" and order["timeInForce"] == "PostOnly":
                order["rejectReason"] = "EC_PostOnlyWillTakeLiquidity"  # Bybit's reason for this cancel
                self._end(order, "Cancelled", "CancelByUser", frames)
                return
            self._fill(order, Decimal(order["leavesQty"]), price, frames, maker=False)
        elif order["timeInForce"] in ("IOC", "FOK"):
            self._end(order, "Cancelled", "CancelByUser", frames)

    def _end(
        self, order: dict[str, Any], status: str, cancel_type: str, frames: list[tuple[str, dict[str, Any]]]
    ) -> None:
        order |= {"orderStatus": status, "cancelType": cancel_type, "updatedTime": str(self.now_ms())}
        frames.append(("order", dict(order)))

    def _fill(
        self,
        order: dict[str, Any],
        wanted: Decimal,
        price: float,
        frames: list[tuple[str, dict[str, Any]]],
        *,
        maker: bool,
    ) -> None:
        """Fill `order` at `price`: position, entry, realized PnL and fee into the wallet, TP/SL follow-up, events."""
        symbol, buy = order["symbol"], order["side"] == "Buy"
        step = Decimal(INSTRUMENTS[symbol]["lotSizeFilter"]["qtyStep"])
        if order["reduceOnly"]:
            filled = min(wanted, self._reducible(symbol, order["side"]))
        elif order["orderType"] == "Market" and not order["stopOrderType"]:
            filled = (wanted * Decimal(str(self.fill_ratio)) / step).to_integral_value() * step
        else:
            filled = wanted
        if filled <= 0:
            self._end(order, "Deactivated" if order["stopOrderType"] else "Cancelled", "CancelByReduceOnly", frames)
            return
        before, entry = self.positions.get(symbol, 0.0), self.entry_prices.get(symbol, 0.0)
        closed = min(filled, Decimal(_num(abs(before)))) if before and (before > 0) != buy else Decimal(0)
        size, entry, pnl = apply_fill(before, entry, float(filled) if buy else -float(filled), price)
        self.positions[symbol], self.entry_prices[symbol] = size, entry
        self.realized[symbol] = self.realized.get(symbol, 0.0) + pnl
        value = filled * Decimal(str(price))
        fee = value * Decimal(str(self.maker_fee if maker else self.taker_fee))
        self.balance = round(self.balance + pnl - float(fee), 10)
        done = Decimal(order["cumExecQty"]) + filled
        total_value = Decimal(order["cumExecValue"]) + value
        leaves = Decimal(order["qty"]) - done
        complete = leaves <= 0 or order["orderType"] == "Market" or order["stopOrderType"]
        order |= {
            "orderStatus": "Filled" if leaves <= 0 else "PartiallyFilledCanceled" if complete else "PartiallyFilled",
            "avgPrice": _num(total_value / done),
            "leavesQty": "0" if complete else _num(leaves),
            "leavesValue": "0",
            "cumExecQty": _num(done),
            "cumExecValue": _num(total_value),
            "cumExecFee": _num(Decimal(order["cumExecFee"]) + fee),
            "closedPnl": _num(Decimal(order["closedPnl"]) + Decimal(str(round(pnl, 10)))),
            "updatedTime": str(self.now_ms()),
        }
        execution = {
            "category": "linear",
            "symbol": symbol,
            "execFee": _num(fee),
            "execId": str(uuid.uuid4()),
            "execPrice": _num(price),
            "execQty": _num(filled),
            "execType": "Trade",
            "execValue": _num(value),
            "isMaker": maker,
            "feeRate": _num(self.maker_fee if maker else self.taker_fee),
            "tradeIv": "",
            "markIv": "",
            "blockTradeId": "",
            "markPrice": _num(price),
            "indexPrice": "",
            "underlyingPrice": "",
            "leavesQty": order["leavesQty"],
            "orderId": order["orderId"],
            "orderLinkId": order["orderLinkId"],
            "orderPrice": order["price"],
            "orderQty": order["qty"],
            "orderType": order["orderType"],
            "stopOrderType": order["stopOrderType"] or "UNKNOWN",
            "side": order["side"],
            "execTime": str(self.now_ms()),
            "isLeverage": "0",
            "closedSize": _num(closed),
            "seq": len(self.executions) + 1,
        }
        bounded_append(self.executions, execution)
        frames += [("order", dict(order)), ("execution", execution)]
        self._after_fill(order, bool(before and size and (before > 0) != (size > 0)), frames)
        frames += [("position", self._position(symbol)), ("wallet", self._wallet_row())]

    def _after_fill(self, order: dict[str, Any], flipped: bool, frames: list[tuple[str, dict[str, Any]]]) -> None:
        """TP/SL follow the position: attached on opening, resized with it, deactivated when it closes (or flips)."""
        symbol = order["symbol"]
        size = self.positions.get(symbol, 0.0)
        stops = [o for o in self.orders.values() if o["symbol"] == symbol and o["createType"] != "CreateByUser"]
        if size == 0 or flipped:
            self.position_tpsl.pop(symbol, None)
            for stop in stops:
                if stop["orderStatus"] == "Untriggered":
                    self._end(stop, "Deactivated", "CancelByTpSlTsClear", frames)
            stops = []
        if size == 0:
            return
        for stop in stops:
            if stop["orderStatus"] == "Untriggered" and stop["tpslMode"] == "Full":
                stop |= {"qty": _num(abs(size)), "leavesQty": _num(abs(size))}  # Full mode covers the whole position
        if (
            order["createType"] == "CreateByUser"
            and not order["reduceOnly"]
            and (order["stopLoss"] or order["takeProfit"])
        ):
            partial = order["tpslMode"] == "Partial"
            qty = Decimal(order["cumExecQty"])
            for key, take_profit in (("stopLoss", False), ("takeProfit", True)):
                if order[key]:
                    self._set_stop(
                        symbol,
                        take_profit,
                        float(order[key]),
                        order[f"{'tp' if take_profit else 'sl'}TriggerBy"],
                        partial,
                        qty,
                        order["orderLinkId"],
                        frames,
                    )

    def _set_stop(
        self,
        symbol: str,
        take_profit: bool,
        trigger: float,
        trigger_by: str,
        partial: bool,
        qty: Decimal,
        parent: str,
        frames: list[tuple[str, dict[str, Any]]],
    ) -> None:
        """Create (or, Full mode, replace) the position's TP/SL order; trigger 0 cancels a Full one."""
        size = self.positions.get(symbol, 0.0)
        kind, create_type = STOP_KINDS[(take_profit, partial)]
        if not partial:
            for old in [o for o in self.orders.values() if o["symbol"] == symbol and o["stopOrderType"] == kind]:
                if old["orderStatus"] == "Untriggered":
                    self._end(old, "Deactivated", "CancelByUser", frames)
            key = "takeProfit" if take_profit else "stopLoss"
            scale = int(INSTRUMENTS[symbol]["priceScale"])
            tpsl = self.position_tpsl.setdefault(symbol, {})
            if trigger == 0:
                tpsl.pop(key, None)
                return
            tpsl[key] = f"{Decimal(str(trigger)):.{scale}f}"
            qty = Decimal(_num(abs(size)))
        long = size > 0
        rises = take_profit == long  # a long's take profit rises to its trigger, its stop loss falls to it
        now = str(self.now_ms())
        order = self._order(
            {"orderType": "Market", "side": "Sell" if long else "Buy", "reduceOnly": True, "closeOnTrigger": True},
            symbol,
            "",
            qty,
            0.0,
        )
        order |= {
            "orderStatus": "Untriggered",
            "createType": create_type,
            "stopOrderType": kind,
            "triggerPrice": _num(trigger),
            "triggerDirection": 1 if rises else 2,
            "triggerBy": trigger_by or "LastPrice",
            "tpslMode": "Partial" if partial else "Full",
            "parentOrderLinkId": parent,
            "createdTime": now,
            "updatedTime": now,
        }
        self._store(order)
        frames.append(("order", dict(order)))

    def _trigger(self, order: dict[str, Any], price: float, frames: list[tuple[str, dict[str, Any]]]) -> None:
        """A crossed conditional order is triggered, keeps its ids, and works as a market (or limit) order."""
        order |= {"orderStatus": "Triggered", "updatedTime": str(self.now_ms())}
        frames.append(("order", dict(order)))
        if order["tpslMode"] == "Full" and order["createType"] != "CreateByUser":
            order |= {"qty": _num(self._reducible(order["symbol"], order["side"])) or order["qty"]}
            order["leavesQty"] = order["qty"]
        if order["orderType"] == "Limit" and not self._limit_crossed(order, price):
            order |= {"orderStatus": "New"}
            frames.append(("order", dict(order)))
            return
        self._fill(order, Decimal(order["leavesQty"]), price, frames, maker=False)

    def _find(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Orders matching `orderId` (first) or `orderLinkId`, `symbol` and `orderFilter`; newest first."""
        found = list(self.orders.values())
        if params.get("orderId"):
            found = [o for o in found if o["orderId"] == params["orderId"]]
        elif params.get("orderLinkId"):
            found = [o for o in found if o["orderLinkId"] == params["orderLinkId"]]
        if params.get("symbol"):
            found = [o for o in found if o["symbol"] == params["symbol"]]
        kind = params.get("orderFilter")
        if kind == "StopOrder":
            found = [o for o in found if o["stopOrderType"]]
        elif kind == "Order":
            found = [o for o in found if not o["stopOrderType"]]
        return found[::-1]

    def _listing(self, params: dict[str, Any]) -> None:
        if params.get("category") != "linear":
            raise RejectedError(10001, "params error: category invalid")
        if not any(params.get(k) for k in ("symbol", "settleCoin", "baseCoin", "orderId", "orderLinkId")):
            raise RejectedError(
                10001, "Missing some parameters that must be filled in, symbol or settleCoin or baseCoin"
            )

    def _realtime(self, params: dict[str, Any], _: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
        """Open orders (openOnly=1: recent closed ones); by id, any recent order (Bybit's last-500 window)."""
        self._listing(params)
        found = self._find(params)
        if not (params.get("orderId") or params.get("orderLinkId")):
            closed = str(params.get("openOnly", "0")) == "1"
            found = [o for o in found if (o["orderStatus"] in OPEN_STATES) != closed]
        return {"category": "linear", "list": [dict(o) for o in found], "nextPageCursor": ""}

    def _history(self, params: dict[str, Any], _: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
        found = [dict(o) for o in self._find(params) if o["orderStatus"] not in OPEN_STATES]
        return {"category": "linear", "list": found, "nextPageCursor": ""}

    def _execution_list(self, params: dict[str, Any], _: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
        found = [
            e
            for e in self.executions
            if all(not params.get(k) or e.get(k) == params[k] for k in ("symbol", "orderId", "orderLinkId", "execType"))
        ]
        return {"category": "linear", "list": [dict(e) for e in found[::-1]], "nextPageCursor": ""}

    def _cancel(self, body: dict[str, Any], frames: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
        bounded_append(self.cancels, body)
        keys = {k: body[k] for k in ("orderId", "orderLinkId", "symbol") if body.get(k)}
        found = [o for o in self._find(keys) if o["orderStatus"] in OPEN_STATES] if len(keys) > 1 else []
        if not found:
            raise RejectedError(110001, "order not exists or too late to cancel")
        order = found[0]
        self._end(order, "Deactivated" if order["stopOrderType"] else "Cancelled", "CancelByUser", frames)
        if order["createType"] != "CreateByUser" and order["tpslMode"] == "Full":
            self.position_tpsl.get(order["symbol"], {}).pop(
                "takeProfit" if "TakeProfit" in order["stopOrderType"] else "stopLoss", None
            )
        return {"orderId": order["orderId"], "orderLinkId": order["orderLinkId"]}

    def _amend(self, body: dict[str, Any], frames: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
        """POST /v5/order/amend: qty, price or trigger price of an order still open (or untriggered)."""
        bounded_append(self.amends, body)
        instrument = self._instrument(body)
        keys = {k: body[k] for k in ("orderId", "orderLinkId", "symbol") if body.get(k)}
        found = [o for o in self._find(keys) if o["orderStatus"] in OPEN_STATES] if len(keys) > 1 else []
        if not found:
            raise RejectedError(110001, "order not exists or too late to replace")
        order, last = found[0], self.last(instrument["symbol"])
        changes: dict[str, Any] = {}
        if body.get("qty") is not None:
            qty = self._check_qty(body, instrument, market=order["orderType"] == "Market")
            if qty != Decimal(order["qty"]):
                changes |= {"qty": _num(qty), "leavesQty": _num(qty - Decimal(order["cumExecQty"]))}
        if body.get("price") is not None and order["orderType"] == "Limit":
            price = self._check_price(body, "price", instrument)
            if price != Decimal(order["price"]):
                changes["price"] = _num(price)
        if body.get("triggerPrice") is not None and order["orderStatus"] == "Untriggered":
            trigger = self._check_price(body, "triggerPrice", instrument)
            if order["triggerDirection"] == 1 and trigger <= Decimal(str(last)):
                raise RejectedError(110092, f"expect Rising, but trigger_price[{trigger}] <= current[{last}]")
            if order["triggerDirection"] == 2 and trigger >= Decimal(str(last)):
                raise RejectedError(110093, f"expect Falling, but trigger_price[{trigger}] >= current[{last}]")
            if trigger != Decimal(order["triggerPrice"]):
                changes |= {"triggerPrice": _num(trigger), "triggerBy": str(body.get("triggerBy", order["triggerBy"]))}
                if order["createType"] != "CreateByUser" and order["tpslMode"] == "Full":  # the position's own TP/SL
                    key = "takeProfit" if "TakeProfit" in order["stopOrderType"] else "stopLoss"
                    scale = int(instrument["priceScale"])
                    self.position_tpsl.setdefault(order["symbol"], {})[key] = f"{trigger:.{scale}f}"
        if not changes:
            raise RejectedError(10001, "order not modified")
        order |= changes | {"updatedTime": str(self.now_ms())}
        frames.append(("order", dict(order)))
        if order["orderStatus"] == "New":
            self._work(order, last, frames)
        return {"orderId": order["orderId"], "orderLinkId": order["orderLinkId"]}

    # -- positions ----------------------------------------------------------------

    def _trading_stop(self, body: dict[str, Any], frames: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
        """POST /v5/position/trading-stop: the position's TP/SL (Full: the whole position; Partial: a size)."""
        bounded_append(self.trading_stops, body)
        instrument = self._instrument(body)
        symbol = instrument["symbol"]
        mode = body.get("tpslMode")
        if mode not in ("Full", "Partial"):
            raise RejectedError(10001, "params error: tpslMode invalid")
        if body.get("trailingStop"):
            raise RejectedError(10001, "params error: trailingStop is not emulated by the loopback venue")
        size = self.positions.get(symbol, 0.0)
        if size == 0:
            raise RejectedError(10001, "can not set tp/sl/ts for zero position")
        wanted: dict[str, float] = {}
        for key in ("stopLoss", "takeProfit"):
            if body.get(key) is not None and str(body[key]) != "":
                wanted[key] = 0.0 if Decimal(str(body[key])) == 0 else float(self._check_price(body, key, instrument))
        live = {k: float(v) for k, v in self.position_tpsl.get(symbol, {}).items()}
        set_now = {k: v for k, v in wanted.items() if v != 0}
        self._check_tpsl(symbol, size > 0, set_now.get("stopLoss"), set_now.get("takeProfit"), self.last(symbol))
        if mode == "Full" and all(live.get(k, 0.0) == v for k, v in wanted.items()):
            raise RejectedError(34040, "not modified")
        for key, trigger in wanted.items():
            take_profit = key == "takeProfit"
            size_key = "tpSize" if take_profit else "slSize"
            qty = self._decimal(body, size_key) if mode == "Partial" else Decimal(0)
            if mode == "Partial" and trigger == 0:
                continue
            by = str(body.get("tpTriggerBy" if take_profit else "slTriggerBy", "LastPrice"))
            self._set_stop(symbol, take_profit, trigger, by, mode == "Partial", qty, "", frames)
        frames.append(("position", self._position(symbol)))
        return {}

    def _set_leverage(self, body: dict[str, Any], _: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
        """One-way mode: buy and sell leverage alike, within the instrument's filter; the same again is 110043."""
        instrument = self._instrument(body)
        buy, sell = str(body.get("buyLeverage", "")), str(body.get("sellLeverage", ""))
        limits = instrument["leverageFilter"]
        try:
            level = Decimal(buy)
        except ArithmeticError:
            raise RejectedError(10001, f"params error: buyLeverage {buy!r}") from None
        if buy != sell:
            raise RejectedError(10001, "params error: buyLeverage must equal sellLeverage in one-way mode")
        if not Decimal(limits["minLeverage"]) <= level <= Decimal(limits["maxLeverage"]):
            raise RejectedError(10001, f"leverage {buy} is out of [{limits['minLeverage']}, {limits['maxLeverage']}]")
        symbol = str(body["symbol"])
        if Decimal(self.leverages.get(symbol, str(LEVERAGE))) == level:
            raise RejectedError(110043, "Set leverage not modified")
        self.leverages[symbol] = _num(level)
        return {}

    def _set_margin_mode(self, body: dict[str, Any], _: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
        """A unified account's mode, for all its positions at once."""
        mode = body.get("setMarginMode")
        if mode not in ("REGULAR_MARGIN", "ISOLATED_MARGIN", "PORTFOLIO_MARGIN"):
            raise RejectedError(10001, f"params error: setMarginMode {mode!r}")
        self.margin_mode = str(mode)
        return {"reasons": []}

    def _positions(self, params: dict[str, Any], _: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
        category, symbol = params.get("category"), params.get("symbol")
        if category == "inverse":  # this account holds no inverse contracts
            return {"category": "inverse", "list": [], "nextPageCursor": ""}
        if category != "linear" or not (symbol or params.get("settleCoin") or params.get("baseCoin")):
            raise RejectedError(10001, "params error: symbol or settleCoin is required")
        symbols = [symbol] if symbol else [s for s, size in self.positions.items() if size]
        return {
            "category": "linear",
            "list": [self._position(s) for s in symbols if s in INSTRUMENTS],
            "nextPageCursor": "",
        }

    def _position(self, symbol: str) -> dict[str, Any]:
        """A position as /v5/position/list (and the `position` topic) shows it: its real average entry price."""
        size, last = self.positions.get(symbol, 0.0), self.last(symbol)
        entry = self.entry_prices.get(symbol, 0.0) if size else 0.0
        value = abs(size) * entry
        scale = int(INSTRUMENTS[symbol]["priceScale"])
        tpsl = self.position_tpsl.get(symbol, {})
        return {
            "positionIdx": 0,
            "riskId": 1,
            "riskLimitValue": "2000000",
            "symbol": symbol,
            "side": "Buy" if size > 0 else "Sell" if size < 0 else "",
            "size": _num(abs(size)),
            "avgPrice": _num(entry),
            "entryPrice": _num(entry),
            "positionValue": _num(value) if size else "",
            "tradeMode": 0,
            "autoAddMargin": 0,
            "positionStatus": "Normal",
            "leverage": self.leverages.get(symbol, str(LEVERAGE)),
            "markPrice": _num(last),
            "liqPrice": "",
            "bustPrice": "",
            "positionIM": _num(value / LEVERAGE),
            "positionMM": _num(value * 0.005),
            "positionBalance": "0",
            "tpslMode": "Full",
            "takeProfit": tpsl.get("takeProfit", f"{0:.{scale}f}"),
            "stopLoss": tpsl.get("stopLoss", f"{0:.{scale}f}"),
            "trailingStop": f"{0:.{scale}f}",
            "sessionAvgPrice": "",
            "unrealisedPnl": _num(size * (last - entry)) if size else "0",
            "curRealisedPnl": _num(self.realized.get(symbol, 0.0)),
            "cumRealisedPnl": _num(self.realized.get(symbol, 0.0)),
            "adlRankIndicator": 2 if size else 0,
            "createdTime": "1676538056258",
            "updatedTime": str(self.now_ms()),
            "seq": len(self.executions),
            "isReduceOnly": False,
            "mmrSysUpdatedTime": "",
            "leverageSysUpdatedTime": "",
            "category": "linear",
        }

    # -- account ---------------------------------------------------------------

    def _wallet_row(self) -> dict[str, Any]:
        margin = sum(abs(s) * self.entry_prices.get(k, 0.0) / LEVERAGE for k, s in self.positions.items())
        upl = sum(s * (self.last(k) - self.entry_prices.get(k, 0.0)) for k, s in self.positions.items() if s)
        wallet, equity = _num(self.balance), _num(self.balance + upl)
        coin = {
            "coin": "USDT",
            "equity": equity,
            "usdValue": equity,
            "walletBalance": wallet,
            "free": "",
            "locked": "0",
            "spotHedgingQty": "0",
            "borrowAmount": "0",
            "availableToWithdraw": "",
            "accruedInterest": "0",
            "totalOrderIM": "0",
            "totalPositionIM": _num(margin),
            "totalPositionMM": "0",
            "unrealisedPnl": _num(upl),
            "cumRealisedPnl": _num(sum(self.realized.values())),
            "bonus": "0",
            "marginCollateral": True,
            "collateralSwitch": True,
            "availableToBorrow": "",
        }
        return {
            "accountType": "UNIFIED",
            "accountIMRate": "0",
            "accountMMRate": "0",
            "accountLTV": "0",
            "totalEquity": equity,
            "totalWalletBalance": wallet,
            "totalMarginBalance": equity,
            "totalAvailableBalance": _num(self.balance + upl - margin),
            "totalPerpUPL": _num(upl),
            "totalInitialMargin": _num(margin),
            "totalMaintenanceMargin": "0",
            "coin": [coin],
        }

    def _wallet(self, params: dict[str, Any], _: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
        return {"list": [self._wallet_row() | {"accountType": params.get("accountType", "UNIFIED")}]}

    def _api_key(self, _: dict[str, Any], __: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
        return {
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

    def _account(self, _: dict[str, Any], __: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
        return {
            "unifiedMarginStatus": 6,  # UTA 2.0 Pro
            "marginMode": self.margin_mode,
            "isMasterTrader": False,
            "spotHedgingStatus": "OFF",
            "updatedTime": "1697078946000",
            "dcpStatus": "OFF",
            "timeWindow": 10,
            "smpGroup": 0,
        }

    # -- WebSockets ------------------------------------------------------------

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        """Public linear (`/v5/public/linear`) and private (`/v5/private`) streams."""
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        stream = Stream(ws, request.path)
        self._open_stream(stream)
        private = request.path.startswith("/v5/private")
        try:
            async for message in ws:
                if self.silent:
                    continue  # the connection lives on, the venue says nothing more
                try:
                    data = json.loads(message.data)
                except ValueError:
                    continue
                await (self._private_op(stream, data) if private else self._public_op(stream, data))
        finally:
            self._close_stream(ws)
        return ws

    async def _public_op(self, stream: Stream, data: dict[str, Any]) -> None:
        """subscribe / unsubscribe are acknowledged, ping answered (the linear shapes of Bybit's docs)."""
        op, req_id = data.get("op"), str(data.get("req_id", ""))
        topics = [str(t) for t in data.get("args") or []]
        if op == "subscribe":
            stream.topics.update(topics)
            for topic in topics:
                bounded_append(self.subscriptions, topic)
        elif op == "unsubscribe":
            stream.topics.difference_update(topics)
        if op in ("subscribe", "unsubscribe"):
            await stream.ws.send_json(
                {"success": True, "ret_msg": "", "conn_id": self.conn_id, "req_id": req_id, "op": op}
            )
        elif op == "ping":
            await stream.ws.send_json(
                {"success": True, "ret_msg": "pong", "conn_id": self.conn_id, "req_id": req_id, "op": "ping"}
            )

    async def _private_op(self, stream: Stream, data: dict[str, Any]) -> None:
        """auth (HMAC of "GET/realtime" + expires), then subscribe to order/execution/position/wallet."""
        op, req_id = data.get("op"), str(data.get("req_id", ""))
        reply: dict[str, Any] = {"success": True, "ret_msg": "", "op": op, "conn_id": self.conn_id, "req_id": req_id}
        if op == "auth":
            args = data.get("args") or []
            if self._auth_ok(args):
                stream.private = True
            else:
                reply |= {"success": False, "ret_msg": "error:USVC1111", "request": {"op": "auth", "args": args}}
        elif op == "ping":
            reply = {"req_id": req_id, "op": "pong", "args": [str(self.now_ms())], "conn_id": self.conn_id}
        elif op in ("subscribe", "unsubscribe"):
            if not stream.private:
                reply |= {"success": False, "ret_msg": "Request not authorized"}
            else:
                topics = [str(t) for t in data.get("args") or []]
                if op == "subscribe":
                    stream.topics.update(topics)
                    for topic in topics:
                        bounded_append(self.subscriptions, topic)
                else:
                    stream.topics.difference_update(topics)
        else:
            reply |= {"success": False, "ret_msg": f"error:invalid op {op}"}
        await stream.ws.send_json(reply)

    def _auth_ok(self, args: list[Any]) -> bool:
        """Bybit's check: a known key, `expires` still in the future, signature = HMAC(secret, GET/realtime+expires)."""
        if len(args) != 3:
            return False
        key, expires, signature = str(args[0]), str(args[1]), str(args[2])
        if not key or not expires.isdigit() or int(expires) <= self.now_ms():
            return False
        if not self.api_keys:
            return bool(HEX64.match(signature))  # no secrets configured: any key, a well-formed signature
        secret = self.api_keys.get(key)
        if secret is None:
            return False
        expected = hmac.new(secret.encode(), f"GET/realtime{expires}".encode(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, signature)

    async def _push(self, frames: list[tuple[str, dict[str, Any]]]) -> None:
        """Send each (topic, row) to the authenticated sockets subscribed to it (`order` or `order.linear`)."""
        if not frames or self.silent:
            return
        for topic, row in frames:
            targets = [
                s for s in self.streams.values() if s.private and (topic in s.topics or f"{topic}.linear" in s.topics)
            ]
            if not targets:
                continue
            now = self.now_ms()
            data = row if topic == "wallet" else row | {"category": "linear"}
            frame = {"id": f"{uuid.uuid4().hex}", "topic": topic, "creationTime": now, "data": [data]}
            await self._send(targets, [frame])

    async def push_kline(
        self, symbol: str, interval: str, start_ms: int, length_ms: int, close: float, *, confirm: bool = False
    ) -> int:
        """Send a `kline.{interval}.{symbol}` frame in Bybit's shape to its subscribers; return how many took it."""
        if self.silent:
            return 0
        stamp = self.now_ms()
        topic = f"kline.{interval}.{symbol}"
        frame = {
            "topic": topic,
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
        return await self._send([s for s in self.streams.values() if topic in s.topics], [frame])


def bybit_venue(*, tls_hosts: tuple[str, ...] = ()) -> AbstractAsyncContextManager[BybitVenue]:
    """Run a Bybit v5 venue on 127.0.0.1 (random port); with `tls_hosts`, over TLS under those names.

    Point a ccxt instance at it with `state.point(exchange)`, or (TLS) hand it
    `state.client_session()` so it keeps Bybit's real URLs.
    """
    return serve(BybitVenue(), tls_hosts=tls_hosts)
