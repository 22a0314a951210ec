"""A simulated exchange on the kernel clock: paper trading, replay and backtests.

Fill model (what the numbers mean):

* A market order fills in full, at once, at the last traded price the sim has
  seen (the close of the latest candle), moved against the taker by
  `slippage_bps` and half the spread (`twinstar.money.costs`), and pays
  `taker_fee` x notional. A bot reacts at a candle's
  close, so this is the price at which the next candle opens: in continuous
  crypto markets the two are the same tick (20,096 of 20,110 bars of the
  bundled Coinbase data). The sim cannot wait for the next candle instead: in
  replay every input runs to completion before the next one arrives.
* A stop-loss rests on the book and is checked against every later candle's
  range: a long's stop triggers when low <= stop, a short's when high >= stop.
  It fills at the stop price, or at the open when the candle gaps through it.
  An entry never carries its stop: the kernel places it on the fill, as it
  does on Binance USD-M.
* A limit order fills at once, at the last price or better, as far as it is
  marketable (a post-only one is refused instead: it would take liquidity);
  otherwise `gtc` rests and `ioc` is cancelled. A resting buy limit fills on
  the first later candle whose low goes below its price (`limit_fill =
  "through"`, the default) or reaches it (`"touch"`, backtesting.py's rule),
  at its price, or at the open when the candle gaps below it (a sell: the
  mirror). It is checked for margin when it fills; without enough, it is
  cancelled. A resting order that fills pays `maker_fee`; a marketable one `taker_fee`.
* Funding (`funding_path`): each rate falls due on the position held over its
  time, at the close of the candle it falls in (`twinstar.money.funding`).
* A take-profit rests like a stop, on the other side: a long's triggers when
  high >= its price and fills there, or at the open on a gap through it (one
  placed beyond the last price fills at the next open).
  When one candle reaches both a position's stop and its take-profit, the
  stop fills (the pessimistic reading, as backtesting.py does); whichever
  fills, the position is flat and the other exit is gone (one cancels the other).
  Exits are checked before resting entries, and an exit placed on a fill
  counts from the next candle on, so an entry and its exit never fill on the same candle.
* One-way positions per symbol, linear (quote-margined). Opening needs
  notional / leverage + fee of free balance, else INSUFFICIENT_FUNDS.
* Client order ids are unique per account: a reused id is rejected and
  `fetch_order` keeps returning the first order.

Faults are injected with `inject` and consumed by the next matching calls.
"""

from __future__ import annotations

import collections
import enum
from typing import Final

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
)
from twinstar.bus.bus import Bus
from twinstar.bus.events import CandleClosed, PositionSide, Side, TimeInForce
from twinstar.clock import Clock
from twinstar.compiled import mypyc_attr
from twinstar.config import SimConfig
from twinstar.money.costs import market_fill_price
from twinstar.money.funding import FundingRates, SimFunding

_HISTORY: Final = 5_000  # candles kept per symbol for fetch_ohlcv


class SimFault(enum.Enum):
    """Failures the simulated exchange can be told to produce."""

    RATE_LIMIT = "rate_limit"  # order refused before reaching the book
    TIMEOUT_AFTER_BOOK = "timeout_after_book"  # order executed, the reply is lost
    TIMEOUT_BEFORE_BOOK = "timeout_before_book"  # request lost, nothing executed
    NETWORK_DOWN = "network_down"  # every call fails as a network error
    INSUFFICIENT_FUNDS = "insufficient_funds"
    PARTIAL_FILL = "partial_fill"  # fills `ratio` of the quantity
    REJECT_STOP = "reject_stop"  # stop placement refused


class _Position(msgspec.Struct):
    side: PositionSide
    qty: float
    entry_price: float
    margin: float


class _Stop(msgspec.Struct):
    client_order_id: str
    side: PositionSide
    qty: float
    price: float


class _Resting(msgspec.Struct):
    client_order_id: str
    symbol: str
    side: Side
    qty: float
    price: float
    reduce_only: bool


@mypyc_attr(allow_interpreted_subclasses=True)  # compiled by mypyc, still subclassable (tests, fault venues)
class SimExchange:
    """The Exchange protocol, simulated; a Component so it sees every candle first."""

    def __init__(self, clock: Clock, config: SimConfig | None = None, *, name: str = "sim") -> None:
        self._name = name
        self.clock = clock
        self.config = config or SimConfig()
        self.cash = self.config.initial_balance
        self._positions: dict[str, _Position] = {}
        self._stops: dict[str, _Stop] = {}
        self._take_profits: dict[str, _Stop] = {}  # symbol -> the resting take-profit
        self._resting: dict[str, _Resting] = {}  # client id -> a resting limit order, oldest first
        self._orders: dict[str, OrderResult] = {}
        self._last: dict[str, CandleClosed] = {}
        self._candles: dict[str, collections.deque[CandleClosed]] = {}
        self._faults: dict[SimFault, list[float]] = {}  # fault -> [remaining count, parameter]
        self._order_seq = 0
        path = self.config.funding_path
        self.funding = SimFunding(FundingRates.load(path)) if path else None

    # -- component ---------------------------------------------------------

    def attach(self, bus: Bus) -> None:
        """See candles before any handler: stops trigger and prices move first."""
        bus.subscribe(CandleClosed, self.on_candle, name="SimExchange")

    def on_candle(self, candle: CandleClosed) -> None:
        """Move the market: trigger resting stops on this candle's range."""
        if candle.exchange != self._name:
            return  # another venue's market (a replay of several venues runs one simulator each)
        symbol = candle.symbol
        self._last[symbol] = candle
        history = self._candles.get(symbol)
        if history is None:
            history = self._candles[symbol] = collections.deque(maxlen=_HISTORY)
        history.append(candle)  # converted to Bars only when fetched: this path runs per candle
        if self.funding is not None:
            held = self._positions.get(symbol)
            self.cash += self.funding.charge(
                symbol, candle.ts_ns // 1_000_000, candle.close, (held.side, held.qty) if held else None
            )
        if self._stops or self._take_profits:
            self._exits(symbol, candle)
        if self._resting:
            self._fill_resting(symbol, candle)

    def _exits(self, symbol: str, candle: CandleClosed) -> None:
        """Fill the stop or the take-profit this candle reached; the stop when it reached both."""
        stop, profit = self._stops.get(symbol), self._take_profits.get(symbol)
        if stop is not None and stop.side == "long" and candle.low <= stop.price:
            exit_, fill = stop, min(candle.open, stop.price)
        elif stop is not None and stop.side == "short" and candle.high >= stop.price:
            exit_, fill = stop, max(candle.open, stop.price)
        elif profit is not None and profit.side == "long" and candle.high >= profit.price:
            exit_, fill = profit, max(candle.open, profit.price)
        elif profit is not None and profit.side == "short" and candle.low <= profit.price:
            exit_, fill = profit, min(candle.open, profit.price)
        else:
            return
        (self._stops if exit_ is stop else self._take_profits).pop(symbol)
        position = self._positions.get(symbol)
        qty = min(exit_.qty, position.qty) if position is not None else 0.0
        fee = self._reduce(symbol, qty, fill) if qty > 0 else 0.0
        self._orders[exit_.client_order_id] = self._filled(exit_.client_order_id, exit_.qty, qty, fill, fee)

    def _fill_resting(self, symbol: str, candle: CandleClosed) -> None:
        """Fill the resting limits of `symbol` this candle traded through (or touched), at their price or the open."""
        touch = self.config.limit_fill == "touch"
        for order in [o for o in self._resting.values() if o.symbol == symbol]:
            if order.side == "buy":
                reached = candle.low <= order.price if touch else candle.low < order.price
                fill = min(candle.open, order.price)
            else:
                reached = candle.high >= order.price if touch else candle.high > order.price
                fill = max(candle.open, order.price)
            if not reached:
                continue
            del self._resting[order.client_order_id]
            cid, now_ms = order.client_order_id, self.clock.now_ms()
            result = self._execute(
                symbol, order.side, order.qty, cid, order.reduce_only, now_ms, at_price=fill, maker=True
            )
            if not result.ok:  # no margin left for it, or nothing left to reduce: the venue cancels it
                self._orders[cid] = msgspec.structs.replace(self._orders[cid], status="canceled")

    # -- faults ------------------------------------------------------------

    def inject(self, fault: SimFault, *, count: int = 1, ratio: float = 0.5) -> None:
        """Make the next `count` matching calls fail with `fault` (`ratio`: partial fills)."""
        if count > 0:
            self._faults[fault] = [float(count), ratio]
        else:
            self._faults.pop(fault, None)

    def _take(self, fault: SimFault) -> float | None:
        if not self._faults:  # the common case, asked several times per order
            return None
        entry = self._faults.get(fault)
        if entry is None:
            return None
        entry[0] -= 1
        if entry[0] <= 0:
            del self._faults[fault]
        return entry[1]

    def _refuse(self, kind: ErrorKind, message: str, client_order_id: str, qty: float) -> OrderResult:
        return OrderResult.failure(
            kind, message, client_order_id=client_order_id, requested_qty=qty, timestamp_ms=self.clock.now_ms()
        )

    # -- protocol ----------------------------------------------------------

    @property
    def name(self) -> str:
        """Exchange id used in events."""
        return self._name

    @property
    def supports_native_stop(self) -> bool:
        """Stops rest in the simulated book."""
        return True

    @property
    def request_expiry_ms(self) -> int | None:
        """Nothing is ever in flight here: a request that failed can no longer execute."""
        return 0

    def configured_leverage(self, symbol: str) -> float:
        """Every symbol trades at `sim.leverage` (entries are sized by it, see `handlers.sizing`)."""
        return self.config.leverage

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
        """Fill at the last price (see the module docstring) unless a fault says otherwise.

        No exit rides on an entry here (`stop_price`, `take_profit_price` are ignored): the kernel
        places them on the fill.
        """
        now_ms = self.clock.now_ms()
        if self._take(SimFault.NETWORK_DOWN) is not None:
            return self._refuse(ErrorKind.NETWORK, "network unreachable (injected)", client_order_id, qty)
        if self._take(SimFault.RATE_LIMIT) is not None:
            return self._refuse(ErrorKind.RATE_LIMIT, "too many requests (injected)", client_order_id, qty)
        if self._take(SimFault.TIMEOUT_BEFORE_BOOK) is not None:
            return self._refuse(ErrorKind.TIMEOUT, "request timed out (injected, never arrived)", client_order_id, qty)
        if client_order_id in self._orders:
            return self._refuse(
                ErrorKind.INVALID_ORDER, f"duplicate client order id {client_order_id}", client_order_id, qty
            )
        result = self._execute(symbol, side, qty, client_order_id, reduce_only, now_ms)
        if result.ok and self._take(SimFault.TIMEOUT_AFTER_BOOK) is not None:
            return self._refuse(ErrorKind.TIMEOUT, "request timed out (injected, order executed)", client_order_id, qty)
        return result

    def _execute(
        self,
        symbol: str,
        side: Side,
        qty: float,
        client_order_id: str,
        reduce_only: bool,
        now_ms: int,
        *,
        at_price: float | None = None,
        maker: bool = False,
    ) -> OrderResult:
        last = self._last.get(symbol)
        if last is None:
            return self._refuse(ErrorKind.INVALID_ORDER, f"no market data for {symbol} yet", client_order_id, qty)
        if not qty > 0:
            return self._refuse(ErrorKind.INVALID_ORDER, f"quantity must be positive, got {qty}", client_order_id, qty)
        if self._take(SimFault.INSUFFICIENT_FUNDS) is not None:
            return self._refuse(ErrorKind.INSUFFICIENT_FUNDS, "insufficient margin (injected)", client_order_id, qty)
        price = at_price if at_price is not None else market_fill_price(self.config, side, last)
        ratio = self._take(SimFault.PARTIAL_FILL)
        filled = qty * ratio if ratio is not None else qty
        position = self._positions.get(symbol)
        closing = position is not None and (position.side == "long") != (side == "buy")
        if reduce_only and not closing:
            return self._refuse(
                ErrorKind.INVALID_ORDER, "reduce-only order would open a position", client_order_id, qty
            )
        fee = 0.0
        reduce = 0.0
        if closing and position is not None:
            reduce = min(filled, position.qty)
            fee += self._reduce(symbol, reduce, price, maker=maker)
        filled_open = 0.0 if reduce_only else filled - reduce
        if filled_open > 0:
            fee_open = filled_open * price * (self.config.maker_fee if maker else self.config.taker_fee)
            margin = filled_open * price / self.config.leverage
            if margin + fee_open > self.free_balance() + 1e-9:
                return self._refuse(
                    ErrorKind.INSUFFICIENT_FUNDS,
                    f"insufficient margin: need {margin + fee_open:.2f}, free {self.free_balance():.2f}",
                    client_order_id,
                    qty,
                )
            self.cash -= fee_open
            fee += fee_open
            held = self._positions.get(symbol)
            new_side: PositionSide = "long" if side == "buy" else "short"
            if held is None:
                self._positions[symbol] = _Position(new_side, filled_open, price, margin)
            else:  # adding to the same side: average the entry
                total = held.qty + filled_open
                held.entry_price = (held.entry_price * held.qty + price * filled_open) / total
                held.qty = total
                held.margin += margin
        result = self._filled(client_order_id, qty, reduce + filled_open, price, fee)
        if at_price is None and price != last.close:  # a market fill: what slippage and spread cost it
            result = msgspec.structs.replace(result, slippage=abs(price - last.close) * (reduce + filled_open))
        self._orders[client_order_id] = result
        return result

    def _reduce(self, symbol: str, qty: float, price: float, *, maker: bool = False) -> float:
        """Close `qty` of the position at `price`; book PnL and fee; return the fee."""
        position = self._positions[symbol]
        move = price - position.entry_price
        pnl = qty * (move if position.side == "long" else -move)
        fee = qty * price * (self.config.maker_fee if maker else self.config.taker_fee)
        self.cash += pnl - fee
        share = qty / position.qty
        position.margin -= position.margin * share
        position.qty -= qty
        if position.qty <= 1e-12:
            del self._positions[symbol]
            self._stops.pop(symbol, None)
            profit = self._take_profits.pop(symbol, None)
            if profit is not None:  # the other exit filled: one cancels the other
                cid = profit.client_order_id
                self._orders[cid] = msgspec.structs.replace(self._orders[cid], status="canceled")
        return fee

    def _filled(self, client_order_id: str, requested: float, filled: float, price: float, fee: float) -> OrderResult:
        self._order_seq += 1
        status: OrderStatus = "filled" if filled >= requested - 1e-12 else "partial"
        return OrderResult.success(
            client_order_id=client_order_id,
            order_id=f"sim-{self._order_seq}",
            status=status,
            requested_qty=requested,
            filled_qty=filled,
            avg_price=price,
            fee=fee,
            timestamp_ms=self.clock.now_ms(),
        )

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
        """Fill what is marketable now, rest the rest (see the module docstring); exits never ride on it here."""
        if self._take(SimFault.NETWORK_DOWN) is not None:
            return self._refuse(ErrorKind.NETWORK, "network unreachable (injected)", client_order_id, qty)
        if client_order_id in self._orders:
            return self._refuse(
                ErrorKind.INVALID_ORDER, f"duplicate client order id {client_order_id}", client_order_id, qty
            )
        last = self._last.get(symbol)
        if last is None or not qty > 0 or not price > 0:
            why = f"no market data for {symbol} yet" if last is None else f"limit {qty} at {price} is not an order"
            return self._refuse(ErrorKind.INVALID_ORDER, why, client_order_id, qty)
        if (side == "buy" and price >= last.close) or (side == "sell" and price <= last.close):
            if time_in_force == "post_only":
                return self._refuse(
                    ErrorKind.INVALID_ORDER,
                    f"post-only {side} at {price:g} would take liquidity (last {last.close:g})",
                    client_order_id,
                    qty,
                )
            fill = min(price, last.close) if side == "buy" else max(price, last.close)
            return self._execute(symbol, side, qty, client_order_id, reduce_only, self.clock.now_ms(), at_price=fill)
        status: OrderStatus = "canceled" if time_in_force == "ioc" else "open"
        self._order_seq += 1
        result = OrderResult.success(
            client_order_id=client_order_id,
            order_id=f"sim-{self._order_seq}",
            status=status,
            requested_qty=qty,
            filled_qty=0.0,
            avg_price=price,
            timestamp_ms=self.clock.now_ms(),
        )
        self._orders[client_order_id] = result
        if status == "open":
            self._resting[client_order_id] = _Resting(client_order_id, symbol, side, qty, price, reduce_only)
        return result

    async def place_take_profit(
        self, symbol: str, position_side: PositionSide, qty: float, price: float, *, client_order_id: str
    ) -> OrderResult:
        """Rest the take-profit of `symbol`'s position (one per symbol; a new one replaces it)."""
        if self._take(SimFault.NETWORK_DOWN) is not None:
            return self._refuse(ErrorKind.NETWORK, "network unreachable (injected)", client_order_id, qty)
        if client_order_id in self._orders:
            return self._refuse(
                ErrorKind.INVALID_ORDER, f"duplicate client order id {client_order_id}", client_order_id, qty
            )
        # One the market already passed rests too and fills at the next open, as backtesting.py has it.
        self._take_profits[symbol] = _Stop(client_order_id, position_side, qty, price)
        self._order_seq += 1
        result = OrderResult.success(
            client_order_id=client_order_id,
            order_id=f"sim-{self._order_seq}",
            status="open",
            requested_qty=qty,
            filled_qty=0.0,
            avg_price=price,
            timestamp_ms=self.clock.now_ms(),
        )
        self._orders[client_order_id] = result
        return result

    async def update_stop_loss(
        self, symbol: str, position_side: PositionSide, qty: float, stop_price: float, *, client_order_id: str
    ) -> OrderResult:
        """Replace the resting stop for `symbol` (a rejection leaves the old one in force)."""
        now_ms = self.clock.now_ms()
        if self._take(SimFault.REJECT_STOP) is not None:
            return self._refuse(ErrorKind.INVALID_ORDER, "stop order rejected (injected)", client_order_id, qty)
        if self._take(SimFault.NETWORK_DOWN) is not None:
            return self._refuse(ErrorKind.NETWORK, "network unreachable (injected)", client_order_id, qty)
        if client_order_id in self._orders:
            return self._refuse(
                ErrorKind.INVALID_ORDER, f"duplicate client order id {client_order_id}", client_order_id, qty
            )
        last = self._last.get(symbol)
        if last is not None and (
            (position_side == "long" and stop_price >= last.close)
            or (position_side == "short" and stop_price <= last.close)
        ):
            return self._refuse(ErrorKind.INVALID_ORDER, "stop would trigger immediately", client_order_id, qty)
        self._stops[symbol] = _Stop(client_order_id, position_side, qty, stop_price)
        self._order_seq += 1
        result = OrderResult.success(
            client_order_id=client_order_id,
            order_id=f"sim-{self._order_seq}",
            status="open",
            requested_qty=qty,
            filled_qty=0.0,
            avg_price=stop_price,
            timestamp_ms=now_ms,
        )
        self._orders[client_order_id] = result
        return result

    async def cancel_stop_loss(self, symbol: str) -> OrderResult:
        """Cancel the resting stop for `symbol`, if any."""
        stop = self._stops.pop(symbol, None)
        cid = stop.client_order_id if stop is not None else ""
        if stop is not None:
            self._orders[cid] = msgspec.structs.replace(self._orders[cid], status="canceled")
        return OrderResult.success(
            client_order_id=cid,
            order_id="",
            status="canceled",
            requested_qty=0.0,
            filled_qty=0.0,
            avg_price=0.0,
            timestamp_ms=self.clock.now_ms(),
        )

    async def close_position(self, symbol: str, *, client_order_id: str) -> OrderResult:
        """Close the whole position at market and cancel its stop."""
        position = self._positions.get(symbol)
        if position is None:
            return OrderResult.failure(
                ErrorKind.INVALID_ORDER,
                f"no open position in {symbol}",
                client_order_id=client_order_id,
                timestamp_ms=self.clock.now_ms(),
            )
        self._stops.pop(symbol, None)
        side: Side = "sell" if position.side == "long" else "buy"
        return await self.place_market_order(
            symbol, side, position.qty, client_order_id=client_order_id, reduce_only=True
        )

    async def fetch_position(self, symbol: str) -> Position | None:
        """Return the open position, or None when flat."""
        position = self._positions.get(symbol)
        if position is None:
            return None
        return Position(symbol=symbol, side=position.side, qty=position.qty, entry_price=position.entry_price)

    async def fetch_order(self, symbol: str, client_order_id: str) -> OrderResult:
        """Return the first order with this client id, or ORDER_NOT_FOUND."""
        found = self._orders.get(client_order_id)
        if found is not None:
            return found
        return OrderResult.failure(
            ErrorKind.ORDER_NOT_FOUND,
            f"no order {client_order_id}",
            client_order_id=client_order_id,
            timestamp_ms=self.clock.now_ms(),
        )

    async def fetch_stop(self, symbol: str, client_order_id: str) -> OrderResult:
        """Stops are orders like any other here."""
        return await self.fetch_order(symbol, client_order_id)

    async def fetch_open_orders(self, symbol: str) -> list[OpenOrder]:
        """The resting stop, take-profit and limit orders of `symbol` (market orders never rest)."""
        found = [
            OpenOrder(
                symbol=symbol,
                order_id=self._orders[exit_.client_order_id].order_id,
                client_order_id=exit_.client_order_id,
                side="sell" if exit_.side == "long" else "buy",
                qty=exit_.qty,
                stop_price=exit_.price,
                reduce_only=True,
                take_profit=exit_ is self._take_profits.get(symbol),
            )
            for exit_ in (self._stops.get(symbol), self._take_profits.get(symbol))
            if exit_ is not None
        ]
        found += [
            OpenOrder(
                symbol=symbol,
                order_id=self._orders[o.client_order_id].order_id,
                client_order_id=o.client_order_id,
                side=o.side,
                qty=o.qty,
                reduce_only=o.reduce_only,
                price=o.price,
            )
            for o in self._resting.values()
            if o.symbol == symbol
        ]
        return found

    async def cancel_order(self, symbol: str, order: OpenOrder) -> OrderResult:
        """Cancel the resting stop, take-profit or limit `order`; ORDER_NOT_FOUND when it is not resting."""
        cid = order.client_order_id
        stop, profit = self._stops.get(symbol), self._take_profits.get(symbol)
        if stop is not None and stop.client_order_id == cid:
            return await self.cancel_stop_loss(symbol)
        if profit is not None and profit.client_order_id == cid:
            del self._take_profits[symbol]
        elif self._resting.pop(cid, None) is None:
            return self._refuse(ErrorKind.ORDER_NOT_FOUND, f"no open order {order.order_id}", cid, 0)
        self._orders[cid] = msgspec.structs.replace(self._orders[cid], status="canceled")
        return self._orders[cid]

    def adopt_stop(self, symbol: str, order: OpenOrder | None) -> None:
        """The simulated book keeps one stop per symbol already: nothing to remember."""

    async def fetch_ohlcv(
        self, symbol: str, interval: str, *, since_ms: int | None = None, limit: int = 500
    ) -> list[Bar]:
        """Return the candles seen so far (oldest first)."""
        bars = [
            Bar(c.open_time_ms, c.open, c.high, c.low, c.close, c.volume)
            for c in self._candles.get(symbol, ())
            if c.interval == interval and (since_ms is None or c.open_time_ms >= since_ms)
        ]
        return bars[:limit] if since_ms is not None else bars[-limit:]

    def free_balance(self) -> float:
        """Cash not locked as margin."""
        return self.cash - sum(p.margin for p in self._positions.values())

    async def fetch_funding(self, symbol: str, since_ms: int) -> float:
        """Funding `symbol` received after `since_ms` from `sim.funding_path`'s rates (0 without them)."""
        return self.funding.received(symbol, since_ms) if self.funding is not None else 0.0

    async def fetch_balance(self) -> Balance:
        """Return free and total quote balance (total excludes unrealised PnL)."""
        return Balance(currency=self.config.quote_currency, free=self.free_balance(), total=self.cash)

    async def server_time(self) -> int:
        """Return the kernel clock in milliseconds."""
        if self._take(SimFault.NETWORK_DOWN) is not None:
            raise ExchangeError(ErrorKind.NETWORK, "network unreachable (injected)")
        return self.clock.now_ms()

    async def close(self) -> None:
        """Nothing to release."""

    def __repr__(self) -> str:
        return (
            f"SimExchange(name={self._name!r}, cash={self.cash:.2f}, positions={len(self._positions)}, "
            f"stops={len(self._stops)}, take_profits={len(self._take_profits)}, resting={len(self._resting)}, "
            f"orders={len(self._orders)})"
        )
