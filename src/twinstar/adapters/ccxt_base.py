"""The Exchange protocol over ccxt (async REST), shared by every venue.

Venue modules subclass `CcxtExchange` and override only their quirks: how a
stop order is expressed, how an order is found by client id, whether stops
exist at all, whether an entry carries its stop (`attach_stop`) and whether a
stop is amended in place (`amend_stop`; otherwise new-before-old). Every
order call returns an `OrderResult`; ccxt exceptions are classified by
`adapters.errors.classify` and never escape. Messages are scrubbed of
credentials before they go anywhere.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Final, NamedTuple

import ccxt
import ccxt.async_support as ccxt_async
import ccxt.pro as ccxt_pro
import msgspec

from twinstar.adapters.base import (
    Balance,
    Bar,
    ErrorKind,
    ExchangeError,
    OpenOrder,
    OrderResult,
    OrderStatus,
    Position,
    bar_from_row,
)
from twinstar.adapters.errors import classify
from twinstar.adapters.margin import MarginSettings
from twinstar.bus.events import PositionSide, Side, TimeInForce
from twinstar.clock import Clock, LiveClock
from twinstar.config import ExchangeConfig
from twinstar.money.fees import fee_in_quote, third_assets
from twinstar.money.funding import total_funding
from twinstar.orders.ccxt_params import attached_take_profit, take_profit_params, time_in_force_params
from twinstar.ratelimit import shared_limiter
from twinstar.redact import redact, register_secrets

log: Final = logging.getLogger("twinstar.adapters")
_HOUR_MS: Final = 3_600_000


def rebase_urls(value: Any, base: str) -> Any:
    """Replace scheme and host of every URL in a ccxt `urls['api']` tree, keeping paths."""
    if isinstance(value, dict):
        return {key: rebase_urls(item, base) for key, item in value.items()}
    if isinstance(value, str) and "://" in value:
        scheme, rest = value.split("://", 1)
        # A bare host ("https://api.{hostname}", as Bybit's are) stays bare: ccxt appends "/" + path itself.
        path = "/" + rest.split("/", 1)[1] if "/" in rest else ""
        host = base.rstrip("/").split("://", 1)[-1]
        if scheme in ("ws", "wss"):  # WebSocket endpoints keep a WebSocket scheme
            return f"{'wss' if base.startswith('https') else 'ws'}://{host}{path}"
        return f"{base.rstrip('/')}{path}"
    return value


class _Entry(NamedTuple):
    """An order's who and what, as one value for `_place`."""

    symbol: str
    side: Side
    qty: float
    client_order_id: str
    reduce_only: bool
    stop_price: float | None
    stop_client_order_id: str


def _status(order: dict[str, Any]) -> OrderStatus:
    filled = float(order.get("filled") or 0.0)
    amount = float(order.get("amount") or 0.0)
    status = order.get("status")
    if status == "closed" or (amount > 0 and filled >= amount):
        return "filled"
    if status in ("canceled", "expired"):  # an IOC's unfilled rest expires
        return "canceled"
    if status == "rejected":
        return "rejected"
    return "partial" if filled > 0 else "open"


class CcxtExchange:
    """Any ccxt exchange by id; subclasses hold one venue's quirks."""

    exchange_id: ClassVar[str] = ""
    #: Whether stops rest on the venue; False makes the kernel keep a synthetic stop.
    native_stop: ClassVar[bool] = True
    #: Whether the venue's create reply is not the fill (ids only, or "open"): then the fill is read back.
    read_back_fills: ClassVar[bool] = False
    #: Whether the venue refuses a signed request older than ccxt's `options["recvWindow"]` (ms).
    has_recv_window: ClassVar[bool] = False
    #: Attempts at cancelling a replaced stop before leaving it to the reconciler's sweep.
    cancel_attempts: ClassVar[int] = 3
    #: Whether an entry carries its stop-loss on the order itself (`attach_params`).
    attach_stop: ClassVar[bool] = False
    #: Whether the venue places an attached stop only once the entry filled completely (OKX).
    attach_needs_full_fill: ClassVar[bool] = False

    def __init__(
        self,
        exchange_id: str | None = None,
        *,
        config: ExchangeConfig | None = None,
        clock: Clock,
        ccxt_options: dict[str, Any] | None = None,
    ) -> None:
        self.config = config or ExchangeConfig(id=exchange_id or self.exchange_id)
        self._id = exchange_id or self.exchange_id or self.config.id
        # ccxt.pro classes are the async REST classes plus WebSocket watchers.
        cls = getattr(ccxt_pro, self._id, None) or getattr(ccxt_async, self._id, None)
        if cls is None:
            raise ValueError(f"unknown exchange {self._id!r}: ccxt has no such exchange")
        self.clock = clock
        credentials = self.config.credentials()
        register_secrets(v for v in credentials.values() if v)  # process-wide: ccxt's own debug lines too
        options: dict[str, Any] = {"defaultType": self.config.market_type, **self.config.options}
        # Our own budget settings, not ccxt's: weight per window (ccxt cost units) and the window.
        window_s = float(options.pop("weight_window_s", 60.0))
        per_window = options.pop("weight_per_window", None)
        extra = dict(ccxt_options or {})
        options.update(extra.pop("options", {}))  # merged, never replacing the config's options
        self.ccxt: Any = cls({**credentials, "enableRateLimit": True, "options": options, **extra})
        if self.config.testnet:
            self.ccxt.set_sandbox_mode(True)
        if self.config.api_base_url:
            self.ccxt.urls["api"] = rebase_urls(self.ccxt.urls["api"], self.config.api_base_url)
        # ccxt's rateLimit is the milliseconds one unit of cost takes; one window holds window/rateLimit units.
        capacity = float(per_window) if per_window else window_s * 1000 / float(self.ccxt.rateLimit or 50)
        self.limiter = shared_limiter(self._id, credentials.get("apiKey", ""), capacity, window_s, clock)
        self._install_limiter()
        if isinstance(clock, LiveClock):
            # Every timestamp ccxt signs is the kernel's exchange-corrected time, so a skewed host clock
            # never meets recvWindow rejections; TimeSync keeps the offset fresh.
            self.ccxt.milliseconds = clock.now_ms
        self._stops: dict[str, dict[str, Any]] = {}  # symbol -> the resting stop order as ccxt returned it
        self._markets_loaded = False
        self._fee_rates: dict[str, float] = {}  # asset -> quote price, fetched when a fee was paid in it
        #: Measures the exchange clock again (set by TimeSync); awaited once after a timestamp rejection.
        self.resync_clock: Callable[[], Awaitable[object]] | None = None

    def _install_limiter(self) -> None:
        """Route ccxt's throttle through the shared limiter and learn from response headers."""
        limiter = self.limiter
        ccxt_fetch = self.ccxt.fetch

        async def fetch(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
            self.ccxt.last_response_headers = None  # never re-read an earlier reply's Retry-After
            try:
                return await ccxt_fetch(url, method, headers, body)
            finally:
                received = self.ccxt.last_response_headers or {}
                lowered = {str(k).lower(): v for k, v in received.items()}
                used = lowered.get("x-mbx-used-weight-1m")
                if used is not None:
                    limiter.observe_used(float(used))
                retry_after = lowered.get("retry-after")
                if retry_after is not None:
                    limiter.pause(float(retry_after))

        # Instance attributes, not a subclass: ccxt's fetch2 awaits self.throttle(cost), then self.fetch(...).
        self.ccxt.throttle = limiter.acquire
        self.ccxt.fetch = fetch

    # -- helpers -----------------------------------------------------------

    @property
    def name(self) -> str:
        """The venue's name in events and the journal: `config.name`, else the ccxt exchange id."""
        return self.config.name or self._id

    @property
    def supports_native_stop(self) -> bool:
        """Whether the venue keeps stop orders itself (see `native_stop`)."""
        return self.native_stop

    @property
    def attaches_stop(self) -> bool:
        """Whether entries carry their stop: `attach_stop` venues, derivatives only (spot has no position)."""
        return self.attach_stop and self.config.market_type != "spot"

    @property
    def request_expiry_ms(self) -> int | None:
        """recvWindow plus the venue's 1 s tolerance for early stamps, where the venue enforces one."""
        if not self.has_recv_window:
            return None
        return int(self.ccxt.options.get("recvWindow") or 5_000) + 1_000

    async def _signed(self, method: str, *args: Any) -> Any:
        """Call ccxt; after a timestamp rejection resync the clock and try once more."""
        try:
            return await getattr(self.ccxt, method)(*args)
        except ccxt.InvalidNonce:
            if self.resync_clock is None:
                raise
            log.warning("%s: timestamp rejected; resyncing the clock and retrying %s once", self._id, method)
            await self.resync_clock()
            return await getattr(self.ccxt, method)(*args)

    def scrub(self, text: str) -> str:
        """Remove every credential and signature from `text`: keys must never reach logs or events."""
        return redact(text)

    def _failure(self, exc: BaseException, cid: str, qty: float = 0.0) -> OrderResult:
        kind = classify(exc)
        message = self.scrub(f"{type(exc).__name__}: {exc}")[:500]
        log.warning("%s: %s", self._id, message)
        return OrderResult.failure(
            kind, message, client_order_id=cid, requested_qty=qty, timestamp_ms=self.clock.now_ms()
        )

    async def _markets(self) -> None:
        if not self._markets_loaded:
            await self.ccxt.load_markets()
            self._markets_loaded = True

    def _contract_size(self, symbol: str) -> float:
        """Base units in one contract: ccxt counts derivative amounts in contracts (OKX BTC-USDT-SWAP: 0.01 BTC)."""
        market = (self.ccxt.markets or {}).get(symbol) or {}
        size = market.get("contractSize") if market.get("contract") else None
        return float(size) if size else 1.0

    def base_qty(self, symbol: str, amount: float) -> float:
        """A ccxt amount of `symbol` (contracts on derivatives) in base units, as the kernel counts."""
        return amount * self._contract_size(symbol)

    def _amount(self, symbol: str, qty: float) -> float:
        """`qty` (base units, as the kernel counts) as the venue's amount: contracts, at its precision."""
        return float(self.ccxt.amount_to_precision(symbol, qty / self._contract_size(symbol)))

    def _check_minimum(self, symbol: str, amount: float, reduce_only: bool) -> None:
        """Refuse, before any request, an amount under the market's minimum (a close may be smaller)."""
        market = (self.ccxt.markets or {}).get(symbol) or {}
        minimum = float(((market.get("limits") or {}).get("amount") or {}).get("min") or 0.0)
        if not reduce_only and (amount <= 0 or amount < minimum):
            raise ccxt.InvalidOrder(f"{self._id}: amount {amount} of {symbol} is below the market minimum {minimum}")

    def _price(self, symbol: str, price: float) -> float:
        return float(self.ccxt.price_to_precision(symbol, price))

    def _result(self, order: dict[str, Any], cid: str, requested: float, symbol: str) -> OrderResult:
        """The kernel's view of a ccxt order: quantities back in base units, fees in the quote currency."""
        size = self._contract_size(order.get("symbol") or symbol)
        stop = self._attached_stop(order)
        avg_price = float(order.get("average") or order.get("price") or 0.0)
        return OrderResult.success(
            client_order_id=order.get("clientOrderId") or cid,
            order_id=str(order.get("id") or ""),
            status=_status(order),
            requested_qty=float(order.get("amount") or 0.0) * size or requested,
            filled_qty=float(order.get("filled") or 0.0) * size,
            avg_price=avg_price,
            fee=self._quote_fee(order, symbol, avg_price),
            timestamp_ms=int(order.get("timestamp") or self.clock.now_ms()),
            stop_price=stop,
            stop_client_order_id=self.attached_stop_id(order) if stop else "",
        )

    def _fee_assets(self, symbol: str) -> tuple[str, str]:
        """(base, quote) of `symbol` as fees count them: a contract's quote is its settlement currency."""
        market = (self.ccxt.markets or {}).get(symbol) or {}
        return str(market.get("base") or ""), str(market.get("settle") or market.get("quote") or "")

    def _quote_fee(self, order: dict[str, Any], symbol: str, price: float) -> float:
        """`order`'s fees in the quote currency (`money.fees`), third assets at the rates fetched on the fill."""
        base, quote = self._fee_assets(order.get("symbol") or symbol)
        unpriced = third_assets(order, base=base, quote=quote) - self._fee_rates.keys()
        if unpriced:
            log.warning("%s: no price for fees paid in %s; they are left out of PnL", self._id, ", ".join(unpriced))
        rates = self._fee_rates | dict.fromkeys(unpriced, 0.0)
        return fee_in_quote(order, base=base, quote=quote, price=price, rates=rates)

    #: Whether an order's reply carries its fees; Binance USD-M's does not (they are on its trades).
    fills_carry_fees: ClassVar[bool] = True

    async def fetch_fill_fees(self, symbol: str, order_id: str) -> float | None:
        """The fees of order `order_id`'s trades in the quote currency (None where the order's reply had them)."""
        if self.fills_carry_fees or not order_id:
            return None
        trades = await self._call("fetch_my_trades", "fetch_my_trades", symbol, None, None, {"orderId": order_id})
        total = 0.0
        for trade in trades:
            await self.price_fee_assets(trade, symbol)
            total += self._quote_fee(trade, symbol, float(trade.get("price") or 0.0))
        return total

    #: Whether the private order stream (`OrderStream`) is watching this account's fills now.
    fills_streamed: bool = False
    #: How long a filled order's reply waits for its commission on the stream (the REST reply may come first).
    streamed_fee_wait_s: ClassVar[float] = 1.0
    _order_updates: asyncio.Future[None] | None = None  # resolved by the order stream's next updates

    async def with_streamed_fees(self, order: dict[str, Any], symbol: str, *, wait: bool) -> dict[str, Any]:
        """`order` with the fees its fills were pushed with on the private stream, where its reply has none.

        ccxt.pro keeps every order the stream pushed, its trades' commissions
        summed (Binance's ORDER_TRADE_UPDATE `n` in asset `N`), as each frame
        arrives. So an exit's fee is known without a trades read, which would
        go out between a reversal's close and its entry: an exit `wait`s a
        moment for it. An entry never waits, its stop goes first; what the
        stream has not brought yet is read from the order's trades afterwards
        (the position handler), as without the stream.
        """
        if self.fills_carry_fees or not self.fills_streamed or not float(order.get("filled") or 0.0):
            return order
        if order.get("fee") or order.get("fees"):
            return order
        deadline_ns = self.clock.now_ns() + int(self.streamed_fee_wait_s * 1e9)
        while True:
            cache = getattr(self.ccxt, "orders", None)
            by_id = getattr(cache, "hashmap", {}).get(order.get("symbol") or symbol) or {}
            streamed = by_id.get(str(order.get("id") or ""))
            if isinstance(streamed, dict) and (streamed.get("fee") or streamed.get("fees")):
                return order | {"fee": streamed.get("fee"), "fees": streamed.get("fees") or []}
            left_s = (deadline_ns - self.clock.now_ns()) / 1e9
            if not wait or left_s <= 0 or not self.fills_streamed:
                if wait:
                    log.info(
                        "%s: no commission streamed for order %s yet; read from its trades", self._id, order.get("id")
                    )
                return order
            await self._order_updates_or(left_s)

    def order_updates_arrived(self) -> None:
        """The order stream brought updates (ccxt.pro has cached them): a fee waiting for them looks again."""
        waiter, self._order_updates = self._order_updates, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _order_updates_or(self, seconds: float) -> None:
        """Until the order stream's next updates or `seconds` on the kernel clock, whichever comes first.

        Woken by the stream, not polled: a reversal's entry waits for its close's commission, and a
        10 ms poll cost it 10 ms where the frame came a millisecond after the reply.
        """
        if self._order_updates is None:
            self._order_updates = asyncio.get_running_loop().create_future()
        timer = asyncio.ensure_future(self.clock.sleep(seconds))
        try:
            await asyncio.wait((self._order_updates, timer), return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()

    async def price_fee_assets(self, order: dict[str, Any], symbol: str) -> None:
        """Fetch now, at the fill's time, the quote price of each third asset `order`'s fees were paid in (BNB)."""
        base, quote = self._fee_assets(order.get("symbol") or symbol)
        markets = self.ccxt.markets or {}
        for asset in sorted(third_assets(order, base=base, quote=quote)):
            pair = next((p for p in (f"{asset}/{quote}", f"{asset}/{quote}:{quote}") if p in markets), "")
            try:
                ticker = await self._signed("fetch_ticker", pair or f"{asset}/{quote}")
                self._fee_rates[asset] = float(ticker.get("last") or ticker.get("close") or 0.0)
            except Exception as exc:
                log.warning("%s: no %s/%s price for a fee: %s", self._id, asset, quote, self.scrub(str(exc))[:200])

    def _attached_stop(self, order: dict[str, Any]) -> float:
        """The stop in force from entry `order`, as the venue echoes it: any lookup of the entry tells (0: none)."""
        if not self.attaches_stop or order.get("reduceOnly") or not self._attached_in_force(_status(order)):
            return 0.0
        return float(order.get("stopLossPrice") or 0.0)

    def _attached_in_force(self, status: OrderStatus) -> bool:
        """Whether an entry's attached stop protects what filled, given the entry's status."""
        return status == "filled" or not self.attach_needs_full_fill

    # -- quirks (override per venue) ---------------------------------------

    def order_params(self, client_order_id: str, reduce_only: bool) -> dict[str, Any]:
        """Extra ccxt params for a market order."""
        params: dict[str, Any] = {"clientOrderId": client_order_id}
        if reduce_only:
            params["reduceOnly"] = True
        return params

    async def market_order_price(self, symbol: str, side: Side) -> float | None:
        """The price ccxt needs beside a market order on this venue; most need none."""
        return None

    def stop_params(self, position_side: PositionSide, stop_price: float, client_order_id: str) -> dict[str, Any]:
        """ccxt params that turn a market order into a reduce-only stop."""
        return {"triggerPrice": stop_price, "reduceOnly": True, "clientOrderId": client_order_id}

    def cancel_stop_params(self) -> dict[str, Any]:
        """ccxt params for cancelling a stop (conditional) order."""
        return {"trigger": True}

    def cancel_order_params(self, order: OpenOrder) -> dict[str, Any]:
        """ccxt params for cancelling `order`: trigger orders (stops, take-profits) through the stop API."""
        return self.cancel_stop_params() if order.is_trigger else {}

    def attach_params(self, symbol: str, stop_price: float, stop_client_order_id: str) -> dict[str, Any]:
        """ccxt params that attach a stop-loss to an entry (venues with `attach_stop`)."""
        return {"stopLoss": {"triggerPrice": stop_price}}

    def attached_stop_id(self, order: dict[str, Any]) -> str:
        """The id an entry's attached stop is listed under, read from the entry (ccxt order)."""
        return ""

    def attached_take_profit_id(self, order: dict[str, Any]) -> str:
        """The id an entry's attached take-profit is listed under ("" where it has none of its own)."""
        return ""

    def attach_take_profit_params(self, symbol: str, params: dict[str, Any], price: float) -> dict[str, Any]:
        """`params` of an entry with a take-profit attached beside its stop (venues with `attach_stop`)."""
        return params | attached_take_profit(price)

    def take_profit_params(self, position_side: PositionSide, price: float, client_order_id: str) -> dict[str, Any]:
        """ccxt params that turn a market order into a reduce-only take-profit."""
        return take_profit_params(price, client_order_id)

    async def amend_stop(
        self, symbol: str, previous: dict[str, Any], amount: float, price: float
    ) -> OrderResult | None:
        """Move the resting stop `previous` in place; None where the venue has no amend for it."""
        return None

    async def find_order(self, symbol: str, client_order_id: str) -> dict[str, Any]:
        """Fetch an order by client id (ccxt raises OrderNotFound when absent)."""
        return dict(await self.ccxt.fetch_order(None, symbol, {"clientOrderId": client_order_id}))

    # -- protocol ----------------------------------------------------------

    async def place_market_order(
        self,
        symbol: str,
        side: Side,
        qty: float,
        *,
        client_order_id: str,
        reduce_only: bool = False,
        stop_price: float | None = None,
        stop_client_order_id: str = "",
        take_profit_price: float | None = None,
    ) -> OrderResult:
        """Send a market order tagged with `client_order_id`, its exits attached where the venue takes them."""
        entry = _Entry(symbol, side, qty, client_order_id, reduce_only, stop_price, stop_client_order_id)
        return await self._place(entry, "market", None, {}, take_profit_price)

    async def place_limit_order(
        self,
        symbol: str,
        side: Side,
        qty: float,
        price: float,
        *,
        client_order_id: str,
        time_in_force: TimeInForce = "gtc",
        reduce_only: bool = False,
        stop_price: float | None = None,
        stop_client_order_id: str = "",
        take_profit_price: float | None = None,
    ) -> OrderResult:
        """Send a limit order (ccxt's unified `timeInForce` / `postOnly`); off-tick prices never leave.

        A post-only order the venue cancelled instead of resting (Bybit does
        that with one that would take liquidity) is reported as the refusal it is.
        """
        entry = _Entry(symbol, side, qty, client_order_id, reduce_only, stop_price, stop_client_order_id)
        result = await self._place(entry, "limit", price, time_in_force_params(time_in_force), take_profit_price)
        if time_in_force == "post_only" and result.ok and result.status == "canceled" and not result.filled_qty:
            return OrderResult.failure(
                ErrorKind.INVALID_ORDER,
                f"{self._id}: post-only order {client_order_id} would have taken liquidity; the venue cancelled it",
                client_order_id=client_order_id,
                requested_qty=qty,
                timestamp_ms=self.clock.now_ms(),
            )
        return result

    async def _place(
        self,
        entry: _Entry,
        kind: str,
        limit: float | None,
        extra: dict[str, Any],
        take_profit_price: float | None,
    ) -> OrderResult:
        symbol, cid, qty, stop_price = entry.symbol, entry.client_order_id, entry.qty, entry.stop_price
        attachable = self.attaches_stop and not entry.reduce_only
        attach = attachable and stop_price is not None and stop_price > 0
        profit = take_profit_price if attachable and take_profit_price else None
        try:
            await self._markets()
            amount = self._amount(symbol, qty)
            if kind == "market":
                price = await self.market_order_price(symbol, entry.side)
            else:
                price = self._on_tick(symbol, limit)
            self._check_minimum(symbol, amount, entry.reduce_only)
            params = self.order_params(cid, entry.reduce_only) | extra
            if attach and stop_price is not None:
                stop_price = self._price(symbol, stop_price)
                params |= self.attach_params(symbol, stop_price, entry.stop_client_order_id)
            if profit is not None:
                profit = self._price(symbol, profit)
                params = self.attach_take_profit_params(symbol, params, profit)
            order = await self._signed("create_order", symbol, kind, entry.side, amount, price, params)
        except Exception as exc:
            return self._failure(exc, cid, qty)
        if self.read_back_fills:
            result = await self.read_back(symbol, cid, qty)
        else:
            order = await self.with_streamed_fees(order, symbol, wait=entry.reduce_only)
            await self.price_fee_assets(order, symbol)
            result = self._result(order, cid, qty, symbol)
        in_force = result.ok and self._attached_in_force(result.status)
        if attach and stop_price is not None and in_force and not result.stop_price:
            # The venue took the order with its stop (it refuses both or neither), even where the reply omits it.
            sid = result.stop_client_order_id or self.attached_stop_id(order) or entry.stop_client_order_id
            result = msgspec.structs.replace(result, stop_price=stop_price, stop_client_order_id=sid)
        if profit is not None and in_force:
            tp_cid = self.attached_take_profit_id(order)
            result = msgspec.structs.replace(result, take_profit_price=profit, take_profit_client_order_id=tp_cid)
        return result

    def _on_tick(self, symbol: str, price: float | None) -> float:
        """`price` as sent; one off the market's tick is refused (InvalidOrder) rather than moved."""
        if price is None or not math.isfinite(price) or price <= 0:
            raise ccxt.InvalidOrder(f"{self._id}: limit price {price} of {symbol} is not a positive price")
        rounded = self._price(symbol, price)
        if abs(rounded - price) > 1e-9 * price:
            raise ccxt.InvalidOrder(f"{self._id}: price {price} of {symbol} is off the tick (nearest {rounded})")
        return rounded

    async def place_take_profit(
        self, symbol: str, position_side: PositionSide, qty: float, price: float, *, client_order_id: str
    ) -> OrderResult:
        """Rest a reduce-only take-profit trigger order (ccxt's `takeProfitPrice`).

        Where stops are synthetic (`native_stop` False) no trigger order exists: NOT_SUPPORTED.
        """
        if not self.native_stop:
            return OrderResult.failure(
                ErrorKind.NOT_SUPPORTED,
                f"{self.name}: no trigger orders here, so no take-profit can rest",
                client_order_id=client_order_id,
                requested_qty=qty,
            )
        side: Side = "sell" if position_side == "long" else "buy"
        try:
            await self._markets()
            trigger, amount = self._on_tick(symbol, price), self._amount(symbol, qty)
            params = self.take_profit_params(position_side, trigger, client_order_id)
            order = await self._signed("create_order", symbol, "market", side, amount, None, params)
        except Exception as exc:
            return self._failure(exc, client_order_id, qty)
        return self._result(order, client_order_id, qty, symbol)

    async def read_back(self, symbol: str, client_order_id: str, qty: float) -> OrderResult:
        """The state of an order the venue took, by client id.

        If it cannot be read now, the result is an ambiguous failure, never an
        order "filled 0": the caller then looks it up again before anything else.
        """
        found = await self.fetch_order(symbol, client_order_id)
        if found.ok or found.error_kind is None or found.error_kind.ambiguous:
            return found
        return OrderResult.failure(
            ErrorKind.UNKNOWN,
            f"order {client_order_id} was sent; reading it back failed: {found.message}",
            client_order_id=client_order_id,
            requested_qty=qty,
            timestamp_ms=self.clock.now_ms(),
        )

    async def update_stop_loss(
        self, symbol: str, position_side: PositionSide, qty: float, stop_price: float, *, client_order_id: str
    ) -> OrderResult:
        """Place the new stop, then cancel the old one (the old one stays if anything fails).

        Where stops are synthetic (`native_stop` False) nothing is sent: NOT_SUPPORTED.
        """
        if not self.native_stop:
            return OrderResult.failure(
                ErrorKind.NOT_SUPPORTED,
                f"{self.name}: no stop order is placed; the kernel keeps a synthetic stop",
                client_order_id=client_order_id,
                requested_qty=qty,
            )
        side: Side = "sell" if position_side == "long" else "buy"
        try:
            await self._markets()
            price, amount = self._price(symbol, stop_price), self._amount(symbol, qty)
        except Exception as exc:
            return self._failure(exc, client_order_id, qty)
        previous = self._stops.get(symbol)
        if previous is not None:
            amended = await self.amend_stop(symbol, previous, amount, price)
            if amended is not None and (amended.ok or (amended.error_kind or ErrorKind.UNKNOWN).ambiguous):
                return amended  # moved in place; or maybe moved: the caller tries again, and amends again
            if amended is not None:
                log.info("%s: amending the stop of %s failed (%s); replacing it", self._id, symbol, amended.message)
        try:
            params = self.stop_params(position_side, price, client_order_id)
            order = await self._signed("create_order", symbol, "market", side, amount, None, params)
        except Exception as exc:
            return self._failure(exc, client_order_id, qty)
        self._stops[symbol] = dict(order)
        if previous is not None:
            await self._cancel_replaced(symbol, previous)
        return self._result(order, client_order_id, qty, symbol)

    async def _cancel_replaced(self, symbol: str, previous: dict[str, Any]) -> None:
        """Cancel a stop the new one replaced; after `cancel_attempts` the reconciler sweeps it."""
        for attempt in range(1, self.cancel_attempts + 1):
            try:
                await self._cancel_stop(symbol, previous)
                return
            except ccxt.OrderNotFound:
                return  # already gone (filled, cancelled by hand): nothing left to protect twice
            except Exception as exc:
                log.warning(
                    "%s: cancelling the replaced stop %s of %s failed (attempt %d): %s",
                    self._id,
                    previous.get("clientOrderId") or previous.get("id"),
                    symbol,
                    attempt,
                    self.scrub(str(exc)),
                )
            if attempt < self.cancel_attempts:
                await self.clock.sleep(0.5 * attempt)

    async def cancel_stop_loss(self, symbol: str) -> OrderResult:
        """Cancel the stop this adapter placed for `symbol`."""
        stop = self._stops.pop(symbol, None)
        if stop is None:
            return OrderResult.success(
                client_order_id="",
                order_id="",
                status="canceled",
                requested_qty=0.0,
                filled_qty=0.0,
                avg_price=0.0,
                timestamp_ms=self.clock.now_ms(),
            )
        cid = str(stop.get("clientOrderId") or "")
        try:
            await self._cancel_stop(symbol, stop)
        except ccxt.OrderNotFound as exc:
            return self._failure(exc, cid)  # no longer resting (filled, cancelled): nothing to remember
        except Exception as exc:
            self._stops[symbol] = stop
            return self._failure(exc, cid)
        return OrderResult.success(
            client_order_id=cid,
            order_id=str(stop.get("id") or ""),
            status="canceled",
            requested_qty=0.0,
            filled_qty=0.0,
            avg_price=0.0,
            timestamp_ms=self.clock.now_ms(),
        )

    async def _cancel_stop(self, symbol: str, stop: dict[str, Any]) -> None:
        """Cancel one stop this adapter knows; one attached to an entry is found by its client id first."""
        order_id, cid = stop.get("id"), stop.get("clientOrderId")
        if not order_id:  # the venue gave the attached stop its own id: find it by ours (never by none)
            found = [o for o in await self.fetch_open_orders(symbol) if cid and o.is_stop and o.client_order_id == cid]
            if not found:
                raise ccxt.OrderNotFound(f"{self._id}: no resting stop {cid} in {symbol}")
            order_id = found[0].order_id
        await self._signed("cancel_order", order_id, symbol, self.cancel_stop_params())

    async def close_position(self, symbol: str, *, client_order_id: str) -> OrderResult:
        """Close the whole position at market (reduce-only), then cancel its stop."""
        try:
            position = await self.fetch_position(symbol)
        except ExchangeError as exc:
            return OrderResult.failure(exc.kind, exc.message, client_order_id=client_order_id)
        if position is None:
            return OrderResult.failure(
                ErrorKind.INVALID_ORDER, f"no open position in {symbol}", client_order_id=client_order_id
            )
        side: Side = "sell" if position.side == "long" else "buy"
        result = await self.place_market_order(
            symbol, side, position.qty, client_order_id=client_order_id, reduce_only=True
        )
        if result.ok:
            await self.cancel_stop_loss(symbol)
        return result

    async def _call(self, what: str, method: str, *args: Any) -> Any:
        try:
            await self._markets()
            return await self._signed(method, *args)
        except ExchangeError:
            raise
        except Exception as exc:
            raise ExchangeError(classify(exc), self.scrub(f"{what}: {type(exc).__name__}: {exc}")[:500]) from None

    async def fetch_position(self, symbol: str) -> Position | None:
        """Return the open (one-way) position for `symbol`, or None."""
        positions = await self._call("fetch_positions", "fetch_positions", [symbol])
        for p in positions:
            contracts = float(p.get("contracts") or 0.0) * float(p.get("contractSize") or 1.0)
            if p.get("symbol") == symbol and contracts > 0:
                side: PositionSide = "short" if p.get("side") == "short" else "long"
                return Position(symbol=symbol, side=side, qty=contracts, entry_price=float(p.get("entryPrice") or 0))
        return None

    async def fetch_order(self, symbol: str, client_order_id: str) -> OrderResult:
        """Look an order up by client id; ORDER_NOT_FOUND when it never arrived."""
        try:
            await self._markets()
            order = await self.find_order(symbol, client_order_id)
        except Exception as exc:
            return self._failure(exc, client_order_id)
        order = await self.with_streamed_fees(order, symbol, wait=False)  # a lookup: the trades tell the rest
        await self.price_fee_assets(order, symbol)
        return self._result(order, client_order_id, 0.0, symbol)

    async def fetch_stop(self, symbol: str, client_order_id: str) -> OrderResult:
        """Look a resting or finished stop up by client id, through the venue's stop API where it has one."""
        try:
            await self._markets()
            order = await self.find_stop(symbol, client_order_id)
        except Exception as exc:
            return self._failure(exc, client_order_id)
        return self._result(order, client_order_id, 0.0, symbol)

    async def find_stop(self, symbol: str, client_order_id: str) -> dict[str, Any]:
        """Fetch a stop by client id (Binance keeps them apart, under `/fapi/v1/algoOrder`)."""
        stop_api = self.cancel_stop_params()
        if not stop_api:
            return await self.find_order(symbol, client_order_id)
        return dict(await self.ccxt.fetch_order(None, symbol, {"clientOrderId": client_order_id, **stop_api}))

    #: ccxt params for each `fetch_open_orders` call that together list plain and stop orders.
    open_order_queries: ClassVar[tuple[dict[str, Any], ...]] = ({}, {"trigger": True})

    def order_queries(self) -> tuple[dict[str, Any], ...]:
        """The `fetch_open_orders` params to list with (`open_order_queries`; plain orders alone without stops)."""
        return self.open_order_queries if self.native_stop else ({},)

    async def fetch_open_orders(self, symbol: str) -> list[OpenOrder]:
        """Every plain and stop order resting for `symbol`, quantities in base units."""
        queries = self.order_queries()
        found: dict[str, OpenOrder] = {}
        for params in queries:
            for order in await self._call("fetch_open_orders", "fetch_open_orders", symbol, None, None, dict(params)):
                parsed = self._open_order(order, symbol)
                found.setdefault(parsed.order_id or parsed.client_order_id, parsed)
        return list(found.values())

    def _open_order(self, order: dict[str, Any], symbol: str) -> OpenOrder:
        """A ccxt order as an OpenOrder; a malformed one raises ExchangeError (never guessed)."""
        try:
            side = order["side"]
            if side not in ("buy", "sell"):
                raise ValueError(f"side {side!r}")
            trigger = order.get("triggerPrice") or order.get("stopPrice") or order.get("stopLossPrice") or 0.0
            profit = order.get("takeProfitPrice")
            trigger = trigger or profit or 0.0
            return OpenOrder(
                symbol=str(order.get("symbol") or symbol),
                order_id=str(order.get("id") or ""),
                client_order_id=str(order.get("clientOrderId") or ""),
                side=side,
                qty=float(order.get("amount") or 0.0) * self._contract_size(symbol),
                stop_price=float(trigger),
                reduce_only=bool(order.get("reduceOnly")),
                take_profit=bool(profit) and not order.get("stopLossPrice"),
                price=float(order.get("price") or 0.0) if order.get("type") == "limit" else 0.0,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ExchangeError(ErrorKind.UNKNOWN, f"unreadable open order {order.get('id')!r}: {exc}") from None

    async def cancel_order(self, symbol: str, order: OpenOrder) -> OrderResult:
        """Cancel one resting order; a stop is cancelled through the venue's stop API."""
        params = self.cancel_order_params(order)
        try:
            await self._markets()
            await self._signed("cancel_order", order.order_id, symbol, params)
        except Exception as exc:
            return self._failure(exc, order.client_order_id)
        if self._stops.get(symbol, {}).get("id") == order.order_id:
            self._stops.pop(symbol, None)
        return OrderResult.success(
            client_order_id=order.client_order_id,
            order_id=order.order_id,
            status="canceled",
            requested_qty=order.qty,
            filled_qty=0.0,
            avg_price=0.0,
            timestamp_ms=self.clock.now_ms(),
        )

    def adopt_stop(self, symbol: str, order: OpenOrder | None) -> None:
        """The next stop update replaces (cancels) `order`."""
        if order is None:
            self._stops.pop(symbol, None)
        else:
            self._stops[symbol] = {"id": order.order_id, "clientOrderId": order.client_order_id}

    async def fetch_ohlcv(
        self, symbol: str, interval: str, *, since_ms: int | None = None, limit: int = 500
    ) -> list[Bar]:
        """Return candles oldest first (the last one may still be open)."""
        rows = await self._call("fetch_ohlcv", "fetch_ohlcv", symbol, interval, since_ms, limit)
        if not isinstance(rows, list):
            raise ExchangeError(ErrorKind.UNKNOWN, f"fetch_ohlcv: unreadable reply {rows!r:.120}")
        bars = [bar_from_row(row) for row in rows]
        if None in bars:  # dropped here; the feed sees the hole they leave and backfills or reports it
            log.warning("%s %s %s: dropped %d unreadable kline rows", self._id, symbol, interval, bars.count(None))
        return [bar for bar in bars if bar is not None]

    async def fetch_funding(self, symbol: str, since_ms: int) -> float:
        """Funding `symbol` received after `since_ms` (ccxt `fetch_funding_history`); 0 off perpetuals."""
        if self.config.market_type != "swap" or not self.ccxt.has.get("fetchFundingHistory"):
            return 0.0
        if self.clock.now_ms() // _HOUR_MS == since_ms // _HOUR_MS:
            return 0.0  # funding falls due on the hour on every venue: none since, and no request to ask
        history = await self._call("fetch_funding_history", "fetch_funding_history", symbol, since_ms)
        if not isinstance(history, list):
            raise ExchangeError(ErrorKind.UNKNOWN, f"fetch_funding_history: unreadable reply {history!r:.120}")
        received = total_funding(history, since_ms)
        return -received if self.funding_as_fee else received

    #: Whether ccxt's funding `amount` is a fee (paid when positive, Bybit's execFee) rather than income (Binance's).
    funding_as_fee: ClassVar[bool] = False

    #: Venue error codes that mean "already so" when setting leverage or margin mode (not a failure).
    margin_unchanged_codes: ClassVar[tuple[str, ...]] = ()

    def configured_leverage(self, symbol: str) -> float:
        """The leverage the config sets for `symbol` (0: none; entries are sized at 1x then)."""
        return self.config.leverage_for(symbol)

    def wanted_margin(self, symbol: str) -> tuple[float, str]:
        """The configured (leverage, margin mode) of `symbol`; 0 and "" where the config leaves them."""
        return self.config.leverage_for(symbol), self.config.margin_mode

    def margin_mode_params(self, leverage: float) -> dict[str, Any]:
        """Extra ccxt params for `set_margin_mode` (Bybit's classic accounts want the leverage with it)."""
        return {}

    async def set_margin(self, symbol: str) -> None:
        """Set the configured margin mode, then the leverage (ccxt `set_margin_mode`, `set_leverage`)."""
        leverage, mode = self.wanted_margin(symbol)
        if mode:
            await self._unless_unchanged("set_margin_mode", mode, symbol, self.margin_mode_params(leverage))
        if leverage:
            await self._unless_unchanged("set_leverage", int(leverage) if leverage.is_integer() else leverage, symbol)

    async def _unless_unchanged(self, method: str, *args: Any) -> None:
        try:
            await self._markets()
            await self._signed(method, *args)
        except ccxt.NoChange:
            return  # ccxt's own "already so" (Binance -4046 "No need to change margin type")
        except Exception as exc:
            if not any(code in str(exc) for code in self.margin_unchanged_codes):
                raise ExchangeError(classify(exc), self.scrub(f"{method}: {type(exc).__name__}: {exc}")[:500]) from None

    async def read_margin(self, symbol: str) -> MarginSettings:
        """`symbol`'s leverage and margin mode as the venue reports them (`fetch_leverage`, `fetch_margin_mode`)."""
        leverage, mode = 0.0, ""
        if self.ccxt.has.get("fetchLeverage"):
            found = await self._call("fetch_leverage", "fetch_leverage", symbol) or {}  # None: symbol not listed
            info = found.get("info") or {}
            raw = info.get("leverage") if isinstance(info, dict) else None  # ccxt rounds Bybit's "7.5" down to 7
            leverage = float(raw or found.get("longLeverage") or found.get("shortLeverage") or 0.0)
            mode = str(found.get("marginMode") or "")
        if self.ccxt.has.get("fetchMarginMode"):
            found = await self._call("fetch_margin_mode", "fetch_margin_mode", symbol) or {}
            mode = str(found.get("marginMode") or "") or mode
        return MarginSettings(symbol=symbol, leverage=leverage, margin_mode=mode)

    async def fetch_balance(self) -> Balance:
        """Return the quote (margin) currency balance."""
        balance = await self._call("fetch_balance", "fetch_balance")
        currency = str(self.config.options.get("quote", "USDT"))
        entry = balance.get(currency) or {}
        return Balance(currency=currency, free=float(entry.get("free") or 0.0), total=float(entry.get("total") or 0.0))

    async def server_time(self) -> int:
        """Return the venue's clock in milliseconds."""
        try:  # no markets needed: the clock must be right before anything is signed (loading markets may sign)
            return int(await self.ccxt.fetch_time())
        except Exception as exc:
            raise ExchangeError(classify(exc), self.scrub(f"fetch_time: {type(exc).__name__}: {exc}")[:500]) from None

    async def close(self) -> None:
        """Close ccxt's HTTP session; resting stops stay on the venue."""
        await self.ccxt.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self._id!r}, market={self.config.market_type!r}, stops={list(self._stops)})"
