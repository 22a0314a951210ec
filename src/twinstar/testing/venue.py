"""A loopback Binance USD-M venue (REST, market and user-data WebSockets) for tests and benchmarks.

Real, unmodified ccxt (`ccxt.pro.binanceusdm`) talks to it over HTTP and
WebSocket on 127.0.0.1. It serves the real recorded exchangeInfo (BTCUSDT and
ETHUSDT, see data/PROVENANCE.md) and refuses what Binance refuses, with
Binance's codes: the LOT_SIZE / MARKET_LOT_SIZE / PRICE_FILTER / MIN_NOTIONAL
filters and precision, a reused client id while its order is open, a stop that
would trigger at once, a signed request outside its receive window, an unknown
path (404). Orders rest, trigger and fill: `move_price` moves the last price,
fills crossed limit orders and triggers crossed algo (conditional) orders into
reduce-only market orders, as Binance's algo service does. Every order change
is pushed to the user-data stream (listen key) as ORDER_TRADE_UPDATE /
ALGO_UPDATE / ACCOUNT_UPDATE frames; kline frames go only to sockets
subscribed to that stream.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl

from aiohttp import web

from twinstar.intervals import interval_ms
from twinstar.testing.klines import aggregate, page
from twinstar.testing.loopback import (
    Failure,
    Loopback,
    Stream,
    apply_fill,
    bounded_append,
    decimals,
    evict_closed,
    on_grid,
    serve,
)

__all__ = ["Failure", "Venue", "venue"]  # Failure moved to loopback; old imports keep working

INFO = (Path(__file__).parent / "data" / "binance_usdm_exchange_info.json").read_text()  # real, recorded
OPEN: Final = ("NEW", "PARTIALLY_FILLED")
ALGO_OPEN: Final = ("NEW",)
CONDITIONAL: Final = ("STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET")
PUBLIC: Final = ("exchangeInfo", "time", "klines", "ping", "ticker/price", "ticker/24hr")
# Binance's kline intervals; "1s" is spot's, kept because the trade-candle feed's backfill asks for it.
KLINE_INTERVALS: Final = frozenset(
    ("1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M")
)
LISTEN_KEY_TTL_MS: Final = 60 * 60 * 1000  # Binance: a listen key lives 60 minutes after its last keepalive
CLIENT_ID: Final = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")  # Binance's newClientOrderId rule
# Where each id sequence starts: algo ids live in their own, far larger range on Binance (e.g. 4000001781169737).
IDS_FROM: Final = {"order": 0, "algo": 4_000_000_000_000_000, "trade": 0}
NOT_FOUND_PAGE: Final = "<html><body><h2>404 Not found</h2></body></html>"


@dataclass(frozen=True)
class Rules:
    """One symbol's filters from exchangeInfo, as Binance applies them to an order."""

    tick: Decimal
    min_price: Decimal
    max_price: Decimal
    step: Decimal
    min_qty: Decimal
    max_qty: Decimal
    market_step: Decimal
    market_min_qty: Decimal
    market_max_qty: Decimal
    min_notional: str
    price_precision: int
    qty_precision: int


@functools.lru_cache(maxsize=8)
def _rules(info: str) -> dict[str, Rules]:
    rules = {}
    for s in json.loads(info)["symbols"]:
        f = {x["filterType"]: x for x in s["filters"]}
        rules[s["symbol"]] = Rules(
            tick=Decimal(f["PRICE_FILTER"]["tickSize"]),
            min_price=Decimal(f["PRICE_FILTER"]["minPrice"]),
            max_price=Decimal(f["PRICE_FILTER"]["maxPrice"]),
            step=Decimal(f["LOT_SIZE"]["stepSize"]),
            min_qty=Decimal(f["LOT_SIZE"]["minQty"]),
            max_qty=Decimal(f["LOT_SIZE"]["maxQty"]),
            market_step=Decimal(f["MARKET_LOT_SIZE"]["stepSize"]),
            market_min_qty=Decimal(f["MARKET_LOT_SIZE"]["minQty"]),
            market_max_qty=Decimal(f["MARKET_LOT_SIZE"]["maxQty"]),
            min_notional=f["MIN_NOTIONAL"]["notional"],
            price_precision=int(s["pricePrecision"]),
            qty_precision=int(s["quantityPrecision"]),
        )
    return rules


class RefusalError(Exception):
    """A request Binance refuses: HTTP status and the {"code", "msg"} body."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status


def _missing(name: str) -> RefusalError:
    return RefusalError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def _dec(text: str, name: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise RefusalError(
            -1100,
            f"Illegal characters found in parameter '{name}'; legal range is '^([0-9]{{1,20}})(\\.[0-9]{{1,20}})?$'.",
        ) from None
    if not value.is_finite():
        raise RefusalError(-1100, f"Illegal characters found in parameter '{name}'.")
    return value


def _fixed(value: float | Decimal, places: int) -> str:
    return f"{Decimal(str(value)):.{places}f}"


def _symbol_id(symbol: str) -> str:
    """A venue id from either "BTCUSDT" or ccxt's "BTC/USDT:USDT"."""
    return symbol.split(":", maxsplit=1)[0].replace("/", "") if "/" in symbol else symbol


@dataclass
class Venue(Loopback):
    """Binance USD-M on loopback: orders, algo stops, positions, wallet, market and user-data streams."""

    exchange_info: str = INFO  # the exchangeInfo body served; its filters are the ones enforced
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)  # clientOrderId -> its latest order
    orders_by_id: dict[int, dict[str, Any]] = field(default_factory=dict)  # orderId -> order
    algo_orders: dict[int, dict[str, Any]] = field(default_factory=dict)  # algoId -> algo (conditional) order
    trades: list[dict[str, Any]] = field(default_factory=list)  # every fill, as GET /fapi/v1/userTrades lists it
    klines: list[list[Any]] = field(default_factory=list)
    price: float = 30_000.0  # last price of every symbol without its own entry in `prices`
    prices: dict[str, float] = field(default_factory=dict)  # symbol id -> last price
    time_reply_delay_s: float = 0.0  # stamp the time, then hold the reply: an asymmetric path
    private_push_delay_s: float = 0.0  # user-data frames follow the reply by this long (Binance's often lag it)
    _late_pushes: set[asyncio.Task[None]] = field(default_factory=set)
    weight_limit: int | None = None  # enforce Binance-style weight per fixed window, 429 beyond it
    weight_window_s: float = 60.0
    rejected_429: int = 0
    _window: tuple[int, int] = (0, 0)  # (window index, weight used in it)
    balance: float = 10_000.0  # USDT wallet balance: realized PnL and fees go into it
    positions: dict[str, float] = field(default_factory=dict)  # symbol id -> signed amount (one-way mode)
    entry_prices: dict[str, float] = field(default_factory=dict)  # symbol id -> average entry price
    realized: dict[str, float] = field(default_factory=dict)  # symbol id -> accumulated realized PnL
    leverage: dict[str, int] = field(default_factory=dict)  # symbol id -> leverage (Binance's default is 20)
    margin_types: dict[str, str] = field(default_factory=dict)  # symbol id -> "ISOLATED" or "CROSSED" (default)
    incomes: list[dict[str, Any]] = field(default_factory=list)  # /fapi/v1/income rows (funding fees), oldest first
    taker_fee: float = 0.0005  # USD-M regular-tier taker commission
    maker_fee: float = 0.0002
    commission_asset: str = "USDT"  # e.g. "BNB" (or "ETH": one listed here): fees charged in it, at its last price
    api_keys: dict[str, str] = field(default_factory=dict)  # key -> secret; set: only these keys, signatures checked
    listen_keys: dict[str, int] = field(default_factory=dict)  # listen key -> expiry (venue ms)
    live_klines_ms: int = 0  # > 0: serve klines of this length up to now, closes zigzagging
    kline_interval: str = ""  # the interval `klines` are at (longer ones are aggregated); "": any asked
    subscriptions: list[str] = field(default_factory=list)  # every stream name ever subscribed, in order
    order_arrivals: list[tuple[int, str]] = field(default_factory=list)  # (perf_counter_ns, symbol) of each order
    fill_ratio: float = 1.0  # < 1: opening market orders fill only this share (the rest expires)
    silent: bool = False  # sockets stay open but nothing more is sent: no replies, no data (a half-open socket)
    _ids: dict[str, int] = field(default_factory=lambda: dict(IDS_FROM))

    @property
    def rules(self) -> dict[str, Rules]:
        """Each symbol's filters, from the exchangeInfo this venue serves."""
        return _rules(self.exchange_info)

    # -- prices ----------------------------------------------------------------

    def last(self, symbol: str) -> float:
        """The last price of `symbol` (venue id)."""
        return self.prices.get(symbol, self.price)

    async def move_price(self, price: float, symbol: str | None = None) -> list[dict[str, Any]]:
        """Set the last price (of `symbol`, or of every symbol) and let the book react, as the venue's would.

        Resting limit orders the price crossed fill at their limit; algo orders
        whose trigger it crossed trigger into market (STOP_MARKET /
        TAKE_PROFIT_MARKET) or limit orders and fill at the price reached, so a
        gap fills beyond the trigger. Returns the orders that filled.
        """
        if symbol is None:
            self.price = price
            self.prices.clear()
            symbols = list(self.rules)
        else:
            symbols = [_symbol_id(symbol)]
            self.prices[symbols[0]] = price
        frames: list[dict[str, Any]] = []
        filled: list[dict[str, Any]] = []
        for sym in symbols:
            resting = [o for o in self.orders_by_id.values() if o["symbol"] == sym and o["status"] in OPEN]
            filled += [
                self._fill(o, Decimal(o["origQty"]), float(o["price"]), frames, maker=True)
                for o in resting
                if self._limit_crossed(o, price)
            ]
            for algo in [a for a in self.algo_orders.values() if a["symbol"] == sym and a["algoStatus"] in ALGO_OPEN]:
                if self._triggered(algo, price):
                    child = self._trigger(algo, price, frames)
                    if child is not None and child["status"] not in OPEN:
                        filled.append(child)
        await self._push(frames)
        return filled

    @staticmethod
    def _limit_crossed(order: dict[str, Any], price: float) -> bool:
        limit = float(order["price"])
        return price <= limit if order["side"] == "BUY" else price >= limit

    @staticmethod
    def _triggered(algo: dict[str, Any], price: float) -> bool:
        """Binance's trigger rule: a BUY stop rises to its trigger, a SELL stop falls to it; take-profits mirror."""
        trigger = float(algo["triggerPrice"])
        rises = (algo["side"] == "BUY") == algo["orderType"].startswith("STOP")
        return price >= trigger if rises else price <= trigger

    # -- HTTP ------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Log the request, apply the weight limit, answer it (a WebSocket upgrade goes to the stream)."""
        if request.method == "POST" and request.path == "/fapi/v1/order":
            arrived = time.perf_counter_ns()
            form = dict(parse_qsl(await request.text()))  # read here too: aiohttp keeps the body for the handler
            symbol = form.get("symbol") or request.query.get("symbol", "")
            bounded_append(self.order_arrivals, (arrived, symbol))
        bounded_append(self.requests, (request.method, request.path))
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

    async def _answer(self, request: web.Request) -> web.Response:
        if self.down:
            return web.json_response({"code": -1, "msg": "service unavailable"}, status=503)
        return await self._scripted(request)

    async def _carry_out(self, request: web.Request) -> web.Response:
        path, method = request.path, request.method
        body = await request.text() if method in ("POST", "PUT") else ""
        params: dict[str, str] = {**request.query, **dict(parse_qsl(body, keep_blank_values=True))}
        endpoint = path.split("/", 3)[3] if path.startswith(("/fapi/v1/", "/fapi/v2/", "/fapi/v3/")) else None
        frames: list[dict[str, Any]] = []
        try:
            if endpoint in PUBLIC and method == "GET":
                return await self._public(str(endpoint), request)
            if endpoint == "listenKey":
                self._api_key(request)
                return web.json_response(await self._listen_key(method))
            route = self._routes().get((method, path))
            if route is None:
                return web.Response(text=NOT_FOUND_PAGE, status=404, content_type="text/html")
            self._signed(request, body, params)
            payload = self.at_one_instant(lambda: route(params, frames))
        except RefusalError as refused:
            return web.json_response({"code": refused.code, "msg": refused.msg}, status=refused.status)
        await self._push(frames)  # the stream sees a fill as it happens, before the REST reply leaves
        return web.json_response(payload)

    def _routes(self) -> dict[tuple[str, str], Callable[[dict[str, str], list[dict[str, Any]]], Any]]:
        return {
            ("POST", "/fapi/v1/order"): self._new_order,
            ("GET", "/fapi/v1/order"): self._query_order,
            ("DELETE", "/fapi/v1/order"): self._cancel_order,
            ("GET", "/fapi/v1/openOrders"): self._open_orders,
            ("GET", "/fapi/v1/allOrders"): self._all_orders,
            ("DELETE", "/fapi/v1/allOpenOrders"): self._cancel_all,
            ("POST", "/fapi/v1/algoOrder"): self._new_algo,
            ("GET", "/fapi/v1/algoOrder"): self._query_algo,
            ("DELETE", "/fapi/v1/algoOrder"): self._cancel_algo,
            ("GET", "/fapi/v1/openAlgoOrders"): self._open_algos,
            ("GET", "/fapi/v1/allAlgoOrders"): self._all_algos,
            ("DELETE", "/fapi/v1/algoOpenOrders"): self._cancel_all_algos,
            ("GET", "/fapi/v1/userTrades"): self._user_trades,
            ("POST", "/fapi/v1/leverage"): self._set_leverage,
            ("POST", "/fapi/v1/marginType"): self._set_margin_type,
            ("GET", "/fapi/v1/symbolConfig"): self._symbol_config,
            ("GET", "/fapi/v1/income"): self._income,
            ("GET", "/fapi/v1/leverageBracket"): self._brackets,
            ("GET", "/fapi/v1/positionSide/dual"): lambda _p, _f: {"dualSidePosition": False},
            ("GET", "/fapi/v2/account"): self._account,
            ("GET", "/fapi/v3/account"): self._account,
            ("GET", "/fapi/v2/balance"): self._balances,
            ("GET", "/fapi/v3/balance"): self._balances,
            ("GET", "/fapi/v2/positionRisk"): self._position_risk,
            ("GET", "/fapi/v3/positionRisk"): self._position_risk,
        }

    def _api_key(self, request: web.Request) -> str:
        key = request.headers.get("X-MBX-APIKEY", "")
        if not key:
            raise RefusalError(-2014, "API-key format invalid.", 401)
        if self.api_keys and key not in self.api_keys:
            raise RefusalError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        return key

    def _signed(self, request: web.Request, body: str, params: dict[str, str]) -> None:
        """Binance's SIGNED checks: API key, HMAC signature (when keys are configured), then the receive window."""
        key = self._api_key(request)
        if "signature" not in params:
            raise _missing("signature")
        if key in self.api_keys:
            payload = (
                request.query_string.split("&signature=", maxsplit=1)[0] + body.split("&signature=", maxsplit=1)[0]
            )
            expected = hmac.new(self.api_keys[key].encode(), payload.encode(), hashlib.sha256).hexdigest()
            if not hmac.compare_digest(expected, params["signature"]):
                raise RefusalError(-1022, "Signature for this request is not valid.")
        if "timestamp" not in params:
            raise _missing("timestamp")
        stamp, window, server = int(params["timestamp"]), int(params.get("recvWindow", 5000)), self.now_ms()
        if stamp > server + 1000:
            raise RefusalError(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
        if server - stamp > window:
            raise RefusalError(-1021, "Timestamp for this request is outside of the recvWindow.")

    async def _public(self, endpoint: str, request: web.Request) -> web.Response:
        if endpoint == "exchangeInfo":
            return web.Response(text=self.exchange_info, content_type="application/json")
        if endpoint == "time":
            stamped = self.now_ms()
            await asyncio.sleep(self.time_reply_delay_s)
            return web.json_response({"serverTime": stamped})
        if endpoint == "klines":
            return web.json_response(self._live_klines(request) if self.live_klines_ms else self._klines(request.query))
        if endpoint == "ticker/price":
            symbol = request.query.get("symbol", "")
            if symbol not in self.rules:
                raise RefusalError(-1121, "Invalid symbol.")
            return web.json_response({"symbol": symbol, "price": str(self.last(symbol)), "time": self.now_ms()})
        if endpoint == "ticker/24hr":  # ccxt's fetch_ticker: the last price is what the kernel reads
            symbol = request.query.get("symbol", "")
            if symbol not in self.rules:
                raise RefusalError(-1121, "Invalid symbol.")
            last, now = str(self.last(symbol)), self.now_ms()
            return web.json_response(
                {"symbol": symbol, "lastPrice": last, "openPrice": last, "highPrice": last, "lowPrice": last}
                | {"volume": "0", "quoteVolume": "0", "openTime": now - 86_400_000, "closeTime": now, "count": 0}
            )
        return web.json_response({})  # ping

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
            high, low, open_, end = f"{close + 20}", f"{close - 20}", f"{close - 5}", open_ms + length - 1
            rows.append([open_ms, open_, high, low, f"{close}", "10", end, "0", 1, "0", "0", "0"])
        return rows

    def _klines(self, query: Mapping[str, str]) -> list[list[Any]]:
        """GET /fapi/v1/klines: startTime, endTime, limit (default 500, max 1500) and the interval, as Binance."""
        if query.get("symbol", "") not in self.rules:
            raise RefusalError(-1121, "Invalid symbol.")
        interval = query.get("interval", "")
        if interval not in KLINE_INTERVALS:
            raise RefusalError(-1120, "Invalid interval.")
        try:
            start, end = (int(query[name]) if name in query else None for name in ("startTime", "endTime"))
            limit = min(max(int(query.get("limit", 500)), 1), 1500)
        except ValueError:
            raise RefusalError(-1100, "Illegal characters found in a parameter.") from None
        rows: list[list[Any]] = self.klines
        if self.kline_interval and interval != self.kline_interval:
            base, wanted = interval_ms(self.kline_interval), interval_ms(interval) if interval != "1M" else 0
            if not base < wanted <= 86_400_000 or wanted % base:
                return []  # finer, unaligned or calendar (1w, 1M) candles than the ones kept: none here
            rows = [_kline_row(values, wanted) for values in aggregate(self.klines, wanted, sums=(7, 8, 9, 10))]
        # Binance pages forward from startTime (the first candle opening at or after it), else back from endTime.
        return page(rows, start_ms=start, end_ms=end, limit=limit, keep="first" if start is not None else "last")

    # -- user-data stream keys ---------------------------------------------------

    async def _listen_key(self, method: str) -> dict[str, Any]:
        """POST creates (or returns the live key, extended), PUT keeps it alive, DELETE closes its stream."""
        live = [k for k, expiry in self.listen_keys.items() if expiry > self.now_ms()]
        if method == "POST":
            key = live[0] if live else secrets.token_urlsafe(48)[:64]
            self.listen_keys = {key: self.now_ms() + LISTEN_KEY_TTL_MS}
            return {"listenKey": key}
        if not live or method not in ("PUT", "DELETE"):
            raise RefusalError(-1125, "This listenKey does not exist.")
        if method == "PUT":
            self.listen_keys[live[0]] = self.now_ms() + LISTEN_KEY_TTL_MS
            return {"listenKey": live[0]}
        self.listen_keys.clear()
        for stream in [s for s in self.streams.values() if s.listen_key == live[0]]:
            await stream.ws.close()
        return {}

    # -- orders ----------------------------------------------------------------

    def _rules_for(self, params: dict[str, str]) -> tuple[str, Rules]:
        symbol = params.get("symbol")
        if not symbol:
            raise _missing("symbol")
        if symbol not in self.rules:
            raise RefusalError(-1121, "Invalid symbol.")
        return symbol, self.rules[symbol]

    def _check_qty(self, text: str, rules: Rules, *, market: bool) -> Decimal:
        """LOT_SIZE (limit) or MARKET_LOT_SIZE (market) and the symbol's quantity precision."""
        qty = _dec(text, "quantity")
        if decimals(text.rstrip("0") if "." in text else text) > rules.qty_precision:
            raise RefusalError(-1111, "Precision is over the maximum defined for this asset.")
        step, low, high = (
            (rules.market_step, rules.market_min_qty, rules.market_max_qty)
            if market
            else (rules.step, rules.min_qty, rules.max_qty)
        )
        if qty <= 0:
            raise RefusalError(-4003, "Quantity less than or equal to zero.")
        if qty < low:
            raise RefusalError(-4004, "Quantity less than min quantity.")
        if qty > high:
            raise RefusalError(-4005, "Quantity greater than max quantity.")
        if not on_grid(qty - low, step):
            raise RefusalError(-4023, "Qty not increased by step size.")
        return qty

    def _check_price(self, text: str, rules: Rules, name: str = "price") -> Decimal:
        """PRICE_FILTER (tickSize, min/max) and the symbol's price precision."""
        price = _dec(text, name)
        if decimals(text.rstrip("0") if "." in text else text) > rules.price_precision:
            raise RefusalError(-1111, "Precision is over the maximum defined for this asset.")
        if price <= 0:
            raise RefusalError(
                -4001 if name == "price" else -4006,
                "Price less than 0." if name == "price" else "Stop price less than zero.",
            )
        if price < rules.min_price:
            raise RefusalError(-4013, "Price less than min price.")
        if price > rules.max_price:
            raise RefusalError(-4002 if name == "price" else -4007, "Price greater than max price.")
        if not on_grid(price - rules.min_price, rules.tick):
            raise RefusalError(-4014, "Price not increased by tick size.")
        return price

    def _check_notional(self, qty: Decimal, price: float, rules: Rules, reduce_only: bool) -> None:
        if not reduce_only and qty * Decimal(str(price)) < Decimal(rules.min_notional):
            raise RefusalError(
                -4164, f"Order's notional must be no smaller than {rules.min_notional} (unless you choose reduce only)."
            )

    def _check_client_id(
        self, cid: str, book: dict[Any, dict[str, Any]], key: str, is_open: Callable[..., bool]
    ) -> None:
        if not CLIENT_ID.match(cid):
            raise RefusalError(-4015, "Client order id is not valid.")
        if any(o[key] == cid and is_open(o) for o in book.values()):
            raise RefusalError(-4116, "clientOrderId is duplicated")

    def _margin_free(self) -> float:
        used = sum(
            abs(size) * self.entry_prices.get(s, 0.0) / self.leverage.get(s, 20) for s, size in self.positions.items()
        )
        return self.balance - used

    def _reducible(self, symbol: str, side: str) -> Decimal:
        """How much a reduce-only order on `side` may fill: the opposite position's size."""
        size = self.positions.get(symbol, 0.0)
        reduces = (size > 0 and side == "SELL") or (size < 0 and side == "BUY")
        return Decimal(str(abs(size))) if reduces else Decimal(0)

    def _new_order(self, params: dict[str, str], frames: list[dict[str, Any]]) -> dict[str, Any]:
        """POST /fapi/v1/order: MARKET fills at once; LIMIT fills if marketable, else rests (GTC) or expires."""
        symbol, rules = self._rules_for(params)
        kind = params.get("type", "")
        if kind in CONDITIONAL:
            raise RefusalError(
                -4120, "Order type not supported for this endpoint. Please use the Algo Order API endpoints instead."
            )
        if kind not in ("MARKET", "LIMIT"):
            raise RefusalError(-1116, "Invalid orderType.")
        side = params.get("side", "")
        if side not in ("BUY", "SELL"):
            raise RefusalError(-1117, "Invalid side.")
        if not params.get("quantity"):
            raise _missing("quantity")
        cid = params.get("newClientOrderId") or secrets.token_urlsafe(16)[:22]
        self._check_client_id(cid, self.orders_by_id, "clientOrderId", _is_open)
        qty = self._check_qty(params["quantity"], rules, market=kind == "MARKET")
        reduce_only = params.get("reduceOnly", "false").lower() == "true"
        tif = params.get("timeInForce", "GTC")
        limit = 0.0
        if kind == "LIMIT":
            if not params.get("price"):
                raise _missing("price")
            if not params.get("timeInForce"):
                raise _missing("timeInForce")
            limit = float(self._check_price(params["price"], rules))
        last = self.last(symbol)
        self._check_notional(qty, limit or last, rules, reduce_only)
        if reduce_only and self._reducible(symbol, side) == 0:
            raise RefusalError(-2022, "ReduceOnly Order is rejected.")
        if not reduce_only and float(qty) * (limit or last) / self.leverage.get(symbol, 20) > self._margin_free():
            raise RefusalError(-2019, "Margin is insufficient.")
        marketable = kind == "MARKET" or (limit >= last if side == "BUY" else limit <= last)
        if kind == "LIMIT" and tif == "GTX" and marketable:
            raise RefusalError(
                -5022, "Due to the order could not be executed as maker, the Post Only order will be rejected."
            )
        if kind == "LIMIT" and tif == "FOK" and not marketable:
            raise RefusalError(
                -5021, "Due to the order could not be filled immediately, the FOK order has been rejected."
            )
        order = self._order(symbol, cid, side, kind, qty, limit, tif, reduce_only)
        frames.append(self._order_event(order, "NEW"))
        if marketable:
            self._fill(order, qty, last, frames, maker=False)
        elif tif == "IOC":
            self._finish(order, "EXPIRED", frames)
        return dict(order)

    def _order(
        self, symbol: str, cid: str, side: str, kind: str, qty: Decimal, limit: float, tif: str, reduce_only: bool
    ) -> dict[str, Any]:
        """A new order in Binance's REST shape, on the book (status NEW)."""
        rules, now = self.rules[symbol], self.now_ms()
        self._ids["order"] += 1
        order: dict[str, Any] = {
            "orderId": self._ids["order"],
            "symbol": symbol,
            "status": "NEW",
            "clientOrderId": cid,
            "price": _fixed(limit, rules.price_precision) if limit else "0",
            "avgPrice": "0.00000",
            "origQty": _fixed(qty, rules.qty_precision),
            "executedQty": _fixed(0, rules.qty_precision),
            "cumQty": _fixed(0, rules.qty_precision),
            "cumQuote": "0.00000",
            "timeInForce": tif,
            "type": kind,
            "reduceOnly": reduce_only,
            "closePosition": False,
            "side": side,
            "positionSide": "BOTH",
            "stopPrice": "0",
            "workingType": "CONTRACT_PRICE",
            "priceProtect": False,
            "origType": kind,
            "priceMatch": "NONE",
            "selfTradePreventionMode": "EXPIRE_MAKER",
            "goodTillDate": 0,
            "time": now,
            "updateTime": now,
        }
        self.orders_by_id[order["orderId"]] = order
        self.orders.pop(cid, None)  # re-inserted last: a reused client id finds its newest order
        self.orders[cid] = order
        evict_closed(self.orders_by_id, _is_open)
        evict_closed(self.orders, _is_open)
        return order

    def _fill(
        self, order: dict[str, Any], wanted: Decimal, price: float, frames: list[dict[str, Any]], *, maker: bool
    ) -> dict[str, Any]:
        """Fill `order` at `price`: position, entry price, realized PnL and fee into the wallet, then the events."""
        symbol, side = order["symbol"], order["side"]
        rules = self.rules[symbol]
        qty = wanted
        if order["reduceOnly"]:
            qty = min(wanted, self._reducible(symbol, side))
        elif order["type"] == "MARKET" and self.fill_ratio < 1:  # the book runs dry: only part fills
            qty = (wanted * Decimal(str(self.fill_ratio)) / rules.market_step).to_integral_value() * rules.market_step
        if qty <= 0:
            self._finish(order, "EXPIRED", frames)
            return order
        signed = float(qty) if side == "BUY" else -float(qty)
        size, entry, realized = apply_fill(
            self.positions.get(symbol, 0.0), self.entry_prices.get(symbol, 0.0), signed, price
        )
        self.positions[symbol], self.entry_prices[symbol] = size, entry
        self.realized[symbol] = self.realized.get(symbol, 0.0) + realized
        quote = float(qty) * price
        fee = quote * (self.maker_fee if maker else self.taker_fee)
        self.balance += realized - fee
        done = Decimal(order["executedQty"]) + qty
        cum_quote = float(order["cumQuote"]) + quote
        order |= {
            "executedQty": _fixed(done, rules.qty_precision),
            "cumQty": _fixed(done, rules.qty_precision),
            "cumQuote": _fixed(cum_quote, 5),
            "avgPrice": _fixed(cum_quote / float(done), 5),
            "status": "FILLED" if done >= Decimal(order["origQty"]) else "PARTIALLY_FILLED",
            "updateTime": self.now_ms(),
        }
        self._ids["trade"] += 1
        trade = {
            "buyer": side == "BUY",
            "commission": _fixed(self._in_commission_asset(fee), 8),
            "commissionAsset": self.commission_asset,
            "id": self._ids["trade"],
            "maker": maker,
            "orderId": order["orderId"],
            "price": _plain(price),
            "qty": _fixed(qty, rules.qty_precision),
            "quoteQty": _fixed(quote, 8),
            "realizedPnl": _fixed(realized, 8),
            "side": side,
            "positionSide": "BOTH",
            "symbol": symbol,
            "time": self.now_ms(),
        }
        bounded_append(self.trades, trade)
        frames.append(self._order_event(order, "TRADE", trade))
        frames.append(self._account_event(symbol))
        if order["status"] == "PARTIALLY_FILLED" and order["type"] == "MARKET":
            self._finish(order, "EXPIRED", frames)  # a market order's unfilled rest expires
        elif order["status"] == "FILLED":
            self._finish_parent(order, frames)
        return order

    def _finish(self, order: dict[str, Any], status: str, frames: list[dict[str, Any]]) -> None:
        order |= {"status": status, "updateTime": self.now_ms()}
        frames.append(self._order_event(order, status))
        self._finish_parent(order, frames)

    def _finish_parent(self, order: dict[str, Any], frames: list[dict[str, Any]]) -> None:
        """An algo order whose triggered order is done becomes FINISHED, with that order's average price."""
        for algo in self.algo_orders.values():
            if algo["algoStatus"] == "TRIGGERED" and algo["actualOrderId"] == str(order["orderId"]):
                algo |= {"algoStatus": "FINISHED", "actualPrice": order["avgPrice"], "updateTime": self.now_ms()}
                frames.append(self._algo_event(algo, order))

    def _find_order(self, params: dict[str, str]) -> dict[str, Any]:
        symbol, _ = self._rules_for(params)
        if params.get("orderId"):
            found = self.orders_by_id.get(int(params["orderId"]))
        elif params.get("origClientOrderId"):
            found = self.orders.get(params["origClientOrderId"])
        else:
            raise RefusalError(-1102, "Either orderId or origClientOrderId must be sent.")
        if found is None or found["symbol"] != symbol:
            raise RefusalError(-2013, "Order does not exist.")
        return found

    def _query_order(self, params: dict[str, str], _: list[dict[str, Any]]) -> dict[str, Any]:
        return dict(self._find_order(params))

    def _cancel_order(self, params: dict[str, str], frames: list[dict[str, Any]]) -> dict[str, Any]:
        try:
            order = self._find_order(params)
        except RefusalError as refused:
            if refused.code == -2013:
                raise RefusalError(-2011, "Unknown order sent.") from None
            raise
        if order["status"] not in OPEN:
            raise RefusalError(-2011, "Unknown order sent.")
        self._finish(order, "CANCELED", frames)
        return dict(order)

    def _open_orders(self, params: dict[str, str], _: list[dict[str, Any]]) -> list[dict[str, Any]]:
        symbol = params.get("symbol")
        if symbol and symbol not in self.rules:
            raise RefusalError(-1121, "Invalid symbol.")
        return [dict(o) for o in self.orders_by_id.values() if _is_open(o) and (not symbol or o["symbol"] == symbol)]

    def _all_orders(self, params: dict[str, str], _: list[dict[str, Any]]) -> list[dict[str, Any]]:
        symbol, _rules = self._rules_for(params)
        return [dict(o) for o in self.orders_by_id.values() if o["symbol"] == symbol]

    def _cancel_all(self, params: dict[str, str], frames: list[dict[str, Any]]) -> dict[str, Any]:
        symbol, _ = self._rules_for(params)
        for order in [o for o in self.orders_by_id.values() if _is_open(o) and o["symbol"] == symbol]:
            self._finish(order, "CANCELED", frames)
        return {"code": 200, "msg": "The operation of cancel all open order is done."}

    # -- algo (conditional) orders ---------------------------------------------

    def _new_algo(self, params: dict[str, str], frames: list[dict[str, Any]]) -> dict[str, Any]:
        """POST /fapi/v1/algoOrder: a CONDITIONAL order rests until the last price crosses its trigger."""
        symbol, rules = self._rules_for(params)
        if params.get("algoType") != "CONDITIONAL":
            raise _missing("algoType")
        kind = params.get("type", "")
        if kind not in CONDITIONAL or kind == "TRAILING_STOP_MARKET":  # trailing stops are not emulated
            raise RefusalError(-1116, "Invalid orderType.")
        side = params.get("side", "")
        if side not in ("BUY", "SELL"):
            raise RefusalError(-1117, "Invalid side.")
        if not params.get("triggerPrice"):
            raise _missing("triggerPrice")
        close_position = params.get("closePosition", "false").lower() == "true"
        if close_position and params.get("quantity"):
            raise RefusalError(-4137, "Quantity must be zero with closePosition equals true")
        if not close_position and not params.get("quantity"):
            raise _missing("quantity")
        cid = params.get("clientAlgoId") or secrets.token_urlsafe(16)[:22]
        self._check_client_id(cid, self.algo_orders, "clientAlgoId", lambda a: a["algoStatus"] in ALGO_OPEN)
        trigger = self._check_price(params["triggerPrice"], rules, "triggerPrice")
        limit = Decimal(0)
        if not kind.endswith("_MARKET"):
            if not params.get("price"):
                raise _missing("price")
            limit = self._check_price(params["price"], rules)
        qty = (
            Decimal(0)
            if close_position
            else self._check_qty(params["quantity"], rules, market=kind.endswith("_MARKET"))
        )
        reduce_only = params.get("reduceOnly", "false").lower() == "true"
        if not close_position:
            self._check_notional(qty, float(trigger), rules, reduce_only)
        now = self.now_ms()
        self._ids["algo"] += 1
        algo: dict[str, Any] = {
            "algoId": self._ids["algo"],
            "clientAlgoId": cid,
            "algoType": "CONDITIONAL",
            "orderType": kind,
            "symbol": symbol,
            "side": side,
            "positionSide": "BOTH",
            "timeInForce": params.get("timeInForce", "GTC"),
            "quantity": _fixed(qty, rules.qty_precision),
            "algoStatus": "NEW",
            "actualOrderId": "",
            "actualPrice": "0.00000",
            "triggerPrice": _fixed(trigger, rules.price_precision),
            "price": _fixed(limit, rules.price_precision),
            "icebergQuantity": None,
            "tpTriggerPrice": "0.000",
            "tpPrice": "0.000",
            "slTriggerPrice": "0.000",
            "slPrice": "0.000",
            "tpOrderType": "",
            "selfTradePreventionMode": "EXPIRE_MAKER",
            "workingType": params.get("workingType", "CONTRACT_PRICE"),
            "priceMatch": "NONE",
            "closePosition": close_position,
            "priceProtect": params.get("priceProtect", "false").lower() == "true",
            "reduceOnly": reduce_only,
            "createTime": now,
            "updateTime": now,
            "triggerTime": 0,
            "goodTillDate": 0,
        }
        if self._triggered(algo, self.last(symbol)):
            raise RefusalError(-2021, "Order would immediately trigger.")
        self.algo_orders[algo["algoId"]] = algo
        evict_closed(self.algo_orders, lambda a: a["algoStatus"] in (*ALGO_OPEN, "TRIGGERED"))
        frames.append(self._algo_event(algo))
        return dict(algo)

    def _trigger(self, algo: dict[str, Any], price: float, frames: list[dict[str, Any]]) -> dict[str, Any] | None:
        """The algo service places the triggered order in the matching engine under the algo's client id."""
        symbol, side, now = algo["symbol"], algo["side"], self.now_ms()
        algo |= {"algoStatus": "TRIGGERING", "triggerTime": now, "updateTime": now}
        frames.append(self._algo_event(algo))
        reducing = algo["reduceOnly"] or algo["closePosition"]
        qty = self._reducible(symbol, side) if algo["closePosition"] else Decimal(algo["quantity"])
        if reducing and self._reducible(symbol, side) == 0:
            algo |= {"algoStatus": "REJECTED", "updateTime": now}
            frames.append(self._algo_event(algo, reject="Reduce Only reject"))
            return None
        kind = "MARKET" if algo["orderType"].endswith("_MARKET") else "LIMIT"
        limit = float(algo["price"]) if kind == "LIMIT" else 0.0
        cid = algo["clientAlgoId"]
        child = self._order(symbol, cid, side, kind, qty, limit, algo["timeInForce"], reducing)
        algo |= {"algoStatus": "TRIGGERED", "actualOrderId": str(child["orderId"])}
        frames.append(self._algo_event(algo, child))
        frames.append(self._order_event(child, "NEW"))
        if kind == "MARKET" or self._limit_crossed(child, price):  # a crossed stop-limit fills as a taker
            self._fill(child, qty, price, frames, maker=False)
        return child

    def _find_algo(self, params: dict[str, str]) -> dict[str, Any]:
        if params.get("algoId"):
            found = self.algo_orders.get(int(params["algoId"]))
        elif params.get("clientAlgoId"):
            matches = [a for a in self.algo_orders.values() if a["clientAlgoId"] == params["clientAlgoId"]]
            found = matches[-1] if matches else None
        else:
            raise RefusalError(-1102, "Either algoId or clientAlgoId must be sent.")
        if found is None:
            raise RefusalError(-2013, "Order does not exist.")
        return found

    def _query_algo(self, params: dict[str, str], _: list[dict[str, Any]]) -> dict[str, Any]:
        return dict(self._find_algo(params))

    def _cancel_algo(self, params: dict[str, str], frames: list[dict[str, Any]]) -> dict[str, Any]:
        try:
            algo = self._find_algo(params)
        except RefusalError as refused:
            if refused.code == -2013:
                raise RefusalError(-2011, "Unknown order sent.") from None
            raise
        if algo["algoStatus"] not in ALGO_OPEN:
            raise RefusalError(-2011, "Unknown order sent.")
        algo |= {"algoStatus": "CANCELED", "updateTime": self.now_ms()}
        frames.append(self._algo_event(algo))
        return {"algoId": algo["algoId"], "clientAlgoId": algo["clientAlgoId"], "code": "200", "msg": "success"}

    def _open_algos(self, params: dict[str, str], _: list[dict[str, Any]]) -> list[dict[str, Any]]:
        symbol = params.get("symbol")
        if symbol and symbol not in self.rules:
            raise RefusalError(-1121, "Invalid symbol.")
        return [
            dict(a)
            for a in self.algo_orders.values()
            if a["algoStatus"] in ALGO_OPEN and (not symbol or a["symbol"] == symbol)
        ]

    def _all_algos(self, params: dict[str, str], _: list[dict[str, Any]]) -> list[dict[str, Any]]:
        symbol, _rules = self._rules_for(params)
        return [dict(a) for a in self.algo_orders.values() if a["symbol"] == symbol]

    def _cancel_all_algos(self, params: dict[str, str], frames: list[dict[str, Any]]) -> dict[str, Any]:
        symbol, _ = self._rules_for(params)
        for algo in [a for a in self.algo_orders.values() if a["algoStatus"] in ALGO_OPEN and a["symbol"] == symbol]:
            algo |= {"algoStatus": "CANCELED", "updateTime": self.now_ms()}
            frames.append(self._algo_event(algo))
        return {"code": 200, "msg": "The operation of cancel all open order is done."}

    # -- account ---------------------------------------------------------------

    def _user_trades(self, params: dict[str, str], _: list[dict[str, Any]]) -> list[dict[str, Any]]:
        symbol, _rules = self._rules_for(params)
        order_id = int(params["orderId"]) if params.get("orderId") else None
        found = [t for t in self.trades if t["symbol"] == symbol and order_id in (None, t["orderId"])]
        return [dict(t) for t in found[-int(params.get("limit", 500)) :]]

    def _set_leverage(self, params: dict[str, str], _: list[dict[str, Any]]) -> dict[str, Any]:
        symbol, _rules = self._rules_for(params)
        if not params.get("leverage"):
            raise _missing("leverage")
        level = int(params["leverage"])
        if not 1 <= level <= 125:
            raise RefusalError(-4028, f"Leverage {level} is not valid")
        self.leverage[symbol] = level
        return {"leverage": level, "maxNotionalValue": "50000000", "symbol": symbol}

    def _in_commission_asset(self, fee_usdt: float) -> float:
        asset = self.commission_asset
        return fee_usdt if asset == "USDT" else fee_usdt / self.last(f"{asset}USDT")

    def _set_margin_type(self, params: dict[str, str], _: list[dict[str, Any]]) -> dict[str, Any]:
        """Binance refuses a change to the mode already set (-4046) and one with a position open (-4048)."""
        symbol, _rules = self._rules_for(params)
        wanted = params.get("marginType", "")
        if wanted not in ("ISOLATED", "CROSSED"):
            raise _missing("marginType")
        if wanted == self.margin_types.get(symbol, "CROSSED"):
            raise RefusalError(-4046, "No need to change margin type.")
        if self.positions.get(symbol):
            raise RefusalError(-4048, "Margin type cannot be changed if there exists position.")
        self.margin_types[symbol] = wanted
        return {"code": 200, "msg": "success"}

    def _symbol_config(self, params: dict[str, str], _: list[dict[str, Any]]) -> list[dict[str, Any]]:
        symbols = [self._rules_for(params)[0]] if params.get("symbol") else list(self.rules)
        return [
            {
                "symbol": symbol,
                "marginType": self.margin_types.get(symbol, "CROSSED"),
                "isAutoAddMargin": "false",
                "leverage": self.leverage.get(symbol, 20),
                "maxNotionalValue": "50000000",
            }
            for symbol in symbols
        ]

    def _income(self, params: dict[str, str], _: list[dict[str, Any]]) -> list[dict[str, Any]]:
        since, until = int(params.get("startTime", 0)), int(params.get("endTime", 2**62))
        return [
            dict(row)
            for row in self.incomes
            if params.get("symbol") in (None, row["symbol"])
            and params.get("incomeType") in (None, row["incomeType"])
            and since <= row["time"] <= until
        ][: int(params.get("limit", 100))]

    def _brackets(self, params: dict[str, str], _: list[dict[str, Any]]) -> list[dict[str, Any]]:
        bracket = {
            "bracket": 1,
            "initialLeverage": 125,
            "notionalCap": 50_000_000,
            "notionalFloor": 0,
            "maintMarginRatio": 0.004,
            "cum": 0,
        }
        return [{"symbol": s, "brackets": [bracket]} for s in self.rules if params.get("symbol") in (None, s)]

    def _exposure(self, symbol: str) -> tuple[float, float, float]:
        """(unrealized PnL, notional, initial margin) of the position in `symbol` at the last price."""
        size, last = self.positions.get(symbol, 0.0), self.last(symbol)
        upl = size * (last - self.entry_prices.get(symbol, 0.0)) if size else 0.0
        return upl, size * last, abs(size) * last / self.leverage.get(symbol, 20)

    def _totals(self) -> tuple[float, float]:
        """(unrealized PnL, initial margin) over every position."""
        exposures = [self._exposure(s) for s in self.positions]
        return sum(e[0] for e in exposures), sum(e[2] for e in exposures)

    def _account(self, _: dict[str, str], __: list[dict[str, Any]]) -> dict[str, Any]:
        upl, margin = self._totals()
        wallet, now = _fixed(self.balance, 8), self.now_ms()
        available = _fixed(self.balance + upl - margin, 8)
        positions = []
        for symbol, size in self.positions.items():
            p_upl, notional, p_margin = self._exposure(symbol)
            positions.append(
                {
                    "symbol": symbol,
                    "positionSide": "BOTH",
                    "positionAmt": _fixed(size, self.rules[symbol].qty_precision),
                    "unrealizedProfit": _fixed(p_upl, 8),
                    "isolatedMargin": "0",
                    "notional": _fixed(notional, 8),
                    "isolatedWallet": "0",
                    "initialMargin": _fixed(p_margin, 8),
                    "maintMargin": _fixed(abs(notional) * 0.004, 8),
                    "updateTime": now,
                }
            )
        return {
            "totalInitialMargin": _fixed(margin, 8),
            "totalMaintMargin": "0",
            "totalWalletBalance": wallet,
            "totalUnrealizedProfit": _fixed(upl, 8),
            "totalMarginBalance": _fixed(self.balance + upl, 8),
            "totalPositionInitialMargin": _fixed(margin, 8),
            "totalOpenOrderInitialMargin": "0",
            "totalCrossWalletBalance": wallet,
            "totalCrossUnPnl": _fixed(upl, 8),
            "availableBalance": available,
            "maxWithdrawAmount": available,
            "assets": [
                {
                    "asset": "USDT",
                    "walletBalance": wallet,
                    "unrealizedProfit": _fixed(upl, 8),
                    "marginBalance": _fixed(self.balance + upl, 8),
                    "maintMargin": "0",
                    "initialMargin": _fixed(margin, 8),
                    "positionInitialMargin": _fixed(margin, 8),
                    "openOrderInitialMargin": "0",
                    "crossWalletBalance": wallet,
                    "crossUnPnl": _fixed(upl, 8),
                    "availableBalance": available,
                    "maxWithdrawAmount": available,
                    "updateTime": now,
                }
            ],
            "positions": positions,
        }

    def _balances(self, _: dict[str, str], __: list[dict[str, Any]]) -> list[dict[str, Any]]:
        upl, margin = self._totals()
        available = _fixed(self.balance + upl - margin, 8)
        return [
            {
                "accountAlias": "SgsR",
                "asset": "USDT",
                "balance": _fixed(self.balance, 8),
                "crossWalletBalance": _fixed(self.balance, 8),
                "crossUnPnl": _fixed(upl, 8),
                "availableBalance": available,
                "maxWithdrawAmount": available,
                "marginAvailable": True,
                "updateTime": self.now_ms(),
            }
        ]

    def _position_risk(self, params: dict[str, str], _: list[dict[str, Any]]) -> list[dict[str, Any]]:
        rows = []
        for symbol, size in self.positions.items():
            if size == 0 or params.get("symbol") not in (None, symbol):
                continue
            upl, notional, margin = self._exposure(symbol)
            rows.append(
                {
                    "symbol": symbol,
                    "positionSide": "BOTH",
                    "positionAmt": _fixed(size, self.rules[symbol].qty_precision),
                    "entryPrice": _plain(self.entry_prices.get(symbol, 0.0)),
                    "breakEvenPrice": _plain(self.entry_prices.get(symbol, 0.0)),
                    "markPrice": _plain(self.last(symbol)),
                    "unRealizedProfit": _fixed(upl, 8),
                    "liquidationPrice": "0",
                    "isolatedMargin": "0",
                    "notional": _fixed(notional, 8),
                    "marginAsset": "USDT",
                    "isolatedWallet": "0",
                    "initialMargin": _fixed(margin, 8),
                    "maintMargin": _fixed(abs(notional) * 0.004, 8),
                    "positionInitialMargin": _fixed(margin, 8),
                    "openOrderInitialMargin": "0",
                    "adl": 0,
                    "bidNotional": "0",
                    "askNotional": "0",
                    "updateTime": self.now_ms(),
                }
            )
        return rows

    # -- user-data events --------------------------------------------------------

    def _order_event(
        self, order: dict[str, Any], execution: str, trade: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """ORDER_TRADE_UPDATE in USD-M's shape (fields as the user-data stream documents them)."""
        now = self.now_ms()
        body: dict[str, Any] = {
            "s": order["symbol"],
            "c": order["clientOrderId"],
            "S": order["side"],
            "o": order["type"],
            "f": order["timeInForce"],
            "q": order["origQty"],
            "p": order["price"],
            "ap": order["avgPrice"],
            "sp": order["stopPrice"],
            "x": execution,
            "X": order["status"],
            "i": order["orderId"],
            "l": trade["qty"] if trade else "0",
            "z": order["executedQty"],
            "L": trade["price"] if trade else "0",
            "T": now,
            "t": trade["id"] if trade else 0,
            "b": "0",
            "a": "0",
            "m": trade["maker"] if trade else False,
            "R": order["reduceOnly"],
            "wt": order["workingType"],
            "ot": order["origType"],
            "ps": "BOTH",
            "cp": order["closePosition"],
            "rp": trade["realizedPnl"] if trade else "0",
            "pP": False,
            "si": 0,
            "ss": 0,
            "V": order["selfTradePreventionMode"],
            "pm": "NONE",
            "gtd": 0,
        }
        if trade:  # "N"/"n" are only pushed with a commission
            body |= {"N": trade["commissionAsset"], "n": trade["commission"]}
        return {"e": "ORDER_TRADE_UPDATE", "E": now, "T": now, "o": body}

    def _algo_event(
        self, algo: dict[str, Any], child: dict[str, Any] | None = None, reject: str = ""
    ) -> dict[str, Any]:
        """ALGO_UPDATE in USD-M's shape; `ai`/`ap`/`aq`/`act` describe the triggered order once there is one."""
        now = self.now_ms()
        body: dict[str, Any] = {
            "caid": algo["clientAlgoId"],
            "aid": algo["algoId"],
            "at": "CONDITIONAL",
            "o": algo["orderType"],
            "s": algo["symbol"],
            "S": algo["side"],
            "ps": "BOTH",
            "f": algo["timeInForce"],
            "q": algo["quantity"],
            "X": algo["algoStatus"],
            "ai": algo["actualOrderId"],
            "ap": child["avgPrice"] if child else "0",
            "aq": child["executedQty"] if child else "0",
            "act": child["type"] if child else "0",
            "tp": algo["triggerPrice"],
            "p": algo["price"],
            "V": "EXPIRE_MAKER",
            "wt": algo["workingType"],
            "pm": "NONE",
            "cp": algo["closePosition"],
            "pP": algo["priceProtect"],
            "R": algo["reduceOnly"],
            "tt": algo["triggerTime"],
            "gtd": 0,
        }
        if reject:
            body["rm"] = reject
        return {"e": "ALGO_UPDATE", "T": now, "E": now, "o": body}

    def _account_event(self, symbol: str) -> dict[str, Any]:
        """ACCOUNT_UPDATE (reason ORDER): the wallet and the one position a fill changed."""
        now, size = self.now_ms(), self.positions.get(symbol, 0.0)
        upl, _notional, _margin = self._exposure(symbol)
        wallet = _fixed(self.balance, 8)
        position = {
            "s": symbol,
            "pa": _fixed(size, self.rules[symbol].qty_precision),
            "ep": _plain(self.entry_prices.get(symbol, 0.0)),
            "bep": _plain(self.entry_prices.get(symbol, 0.0)),
            "cr": _fixed(self.realized.get(symbol, 0.0), 8),
            "up": _fixed(upl, 8),
            "mt": "cross",
            "iw": "0",
            "ps": "BOTH",
            "ma": "USDT",
        }
        balance = {"a": "USDT", "wb": wallet, "cw": wallet, "bc": "0"}
        return {"e": "ACCOUNT_UPDATE", "E": now, "T": now, "a": {"m": "ORDER", "B": [balance], "P": [position]}}

    async def _push(self, frames: list[dict[str, Any]]) -> None:
        """Send user-data frames to every socket opened with a live listen key."""
        if not frames or self.silent:
            return
        if self.private_push_delay_s > 0:
            late = asyncio.ensure_future(self._push_later(frames))
            self._late_pushes.add(late)
            late.add_done_callback(self._late_pushes.discard)
            return
        await self._push_now(frames)

    async def _push_later(self, frames: list[dict[str, Any]]) -> None:
        await asyncio.sleep(self.private_push_delay_s)
        await self._push_now(frames)

    async def _push_now(self, frames: list[dict[str, Any]]) -> None:
        for stream in [s for s in self.streams.values() if s.private]:
            await self._send([stream], frames, stream.listen_key)

    # -- WebSocket -------------------------------------------------------------

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        """Raw (`/ws`, `/market/ws`, `/public/ws`), combined (`/stream?streams=`) and user-data streams.

        A listen key opens the user-data stream (`/private/ws?listenKey=K`, as
        ccxt connects, or `/ws/K`); market streams are named in the URL or
        subscribed with SUBSCRIBE, and a frame goes only to its subscribers.
        """
        path, query = request.path, request.query
        combined = path.rstrip("/").endswith("/stream")
        names = [n for n in query.get("streams", "").split("/") if n] if combined else []
        tail = path.split("/ws/", 1)[1] if "/ws/" in path else ""
        key = query.get("listenKey") or (tail if tail in self.listen_keys else "")
        key = key or next((n for n in names if n in self.listen_keys), "")
        if (query.get("listenKey") or path.startswith("/private")) and self.listen_keys.get(key, 0) <= self.now_ms():
            return web.json_response({"code": -1125, "msg": "This listenKey does not exist."}, status=400)
        if "@" in tail:
            names.append(tail)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        topics = {n for n in names if n != key}
        stream = Stream(ws, path, topics, private=bool(key), combined=combined, listen_key=key)
        self._open_stream(stream)
        for name in sorted(topics):
            bounded_append(self.subscriptions, name)
        try:
            async for message in ws:
                await self._control(stream, message.data)
        finally:
            self._close_stream(ws)
        return ws

    async def _control(self, stream: Stream, raw: Any) -> None:
        """SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS, answered as Binance's stream answers them."""
        if self.silent:
            return  # the connection lives on, the venue says nothing more
        try:
            data = json.loads(raw)
            method, request_id = data["method"], data.get("id")
        except (ValueError, TypeError, KeyError):
            await stream.ws.send_json({"error": {"code": 3, "msg": "Invalid JSON: expected value at line 1 column 1"}})
            return
        names = [str(n) for n in data.get("params") or []]
        if method == "SUBSCRIBE":
            stream.topics.update(names)
            for name in names:
                bounded_append(self.subscriptions, name)
            await stream.ws.send_json({"result": None, "id": request_id})
        elif method == "UNSUBSCRIBE":
            stream.topics.difference_update(names)
            await stream.ws.send_json({"result": None, "id": request_id})
        elif method == "LIST_SUBSCRIPTIONS":
            await stream.ws.send_json({"result": sorted(stream.topics), "id": request_id})
        else:
            await stream.ws.send_json(
                {"error": {"code": 2, "msg": f"Invalid request: unknown variant `{method}`"}, "id": request_id}
            )

    async def push_kline(
        self, symbol_id: str, interval: str, open_ms: int, length_ms: int, close: float, *, final: bool = False
    ) -> int:
        """Send a kline frame in Binance USD-M's real shape to that stream's subscribers; return how many took it."""
        if self.silent:
            return 0
        name = f"{symbol_id.lower()}@kline_{interval}"
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
        return await self._send([s for s in self.streams.values() if name in s.topics], [frame], name)


def _is_open(order: dict[str, Any]) -> bool:
    return order["status"] in OPEN


def _kline_row(values: list[float], length_ms: int) -> list[Any]:
    """An aggregated candle in Binance's kline shape (quote volume, trades and taker volumes summed)."""
    opened, o, h, low, c, volume, quote, trades, taker_base, taker_quote = values
    prices = [_plain(x) for x in (o, h, low, c, volume)]
    end = int(opened) + length_ms - 1
    return [int(opened), *prices, end, _plain(quote), int(trades), _plain(taker_base), _plain(taker_quote), "0"]


def _plain(value: float) -> str:
    """A price as Binance writes a computed one: plain decimal, up to 8 places, no exponent."""
    text = f"{Decimal(str(round(value, 8))):f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def venue(*, tls_hosts: tuple[str, ...] = ()) -> AbstractAsyncContextManager[Venue]:
    """Run a venue on 127.0.0.1 (random port); with `tls_hosts`, over TLS under those names.

    With TLS, `state.client_session()` is the aiohttp session to hand to ccxt
    (`{'session': ...}`): it keeps ccxt's real URLs and reaches only this server.
    """
    return serve(Venue(), tls_hosts=tls_hosts)
