"""Strategies: closed candles in, signals out.

A strategy is incremental: it sees each closed candle once, keeps its own
indicators, and returns a `Signal` or None. Writing one takes a few lines:

    class Momentum:
        name = "momentum"
        def __init__(self) -> None:
            self.last = 0.0
        def on_candle(self, candle: CandleClosed) -> Signal | None:
            rising, self.last = candle.close > self.last > 0, candle.close
            return Signal("buy", reason="rising") if rising else None
"""

from __future__ import annotations

import collections
from collections.abc import Awaitable, Callable
from typing import NamedTuple, Protocol

from twinstar.bus.bus import Bus
from twinstar.bus.events import CandleClosed, OrderType, Side, SignalFired, TimeInForce
from twinstar.clock import Clock
from twinstar.compiled import mypyc_attr
from twinstar.handlers.user_strategy import checked_instance, is_user_strategy, load_strategy_class
from twinstar.intervals import interval_ms


class Signal(NamedTuple):
    """What a strategy wants: a side, an optional stop (0: use the risk default), why, and how to enter.

    By default the entry goes at market. `order_type="limit"` sends a limit at
    `limit_price` (`time_in_force`: gtc rests, ioc cancels what does not fill
    at once, post_only only ever adds to the book). `take_profit_price` > 0
    adds a take-profit: with the stop, a bracket whose exits cancel each other.
    """

    side: Side
    stop_price: float = 0.0
    reason: str = ""
    order_type: OrderType = "market"
    limit_price: float = 0.0
    time_in_force: TimeInForce = "gtc"
    take_profit_price: float = 0.0


class Strategy(Protocol):
    """An incremental strategy over closed candles of one series."""

    name: str

    def on_candle(self, candle: CandleClosed) -> Signal | None:
        """Update indicators with `candle`; return a signal or None."""
        ...


@mypyc_attr(allow_interpreted_subclasses=True)  # compiled by mypyc, a user's strategy may still extend it
class SmaCross:
    """Go long when the fast SMA crosses above the slow one, short when it crosses below.

    A cross is strict, as in backtesting.py's `crossover`: fast was below slow on
    the previous candle and is above it now. `stop_pct` > 0 attaches a stop at
    that distance from the close; 0 leaves the stop to the risk settings.
    """

    name = "sma_cross"

    __slots__ = ("_closes", "_fast", "_fast_sum", "_prev_above", "_slow", "_slow_sum", "stop_pct")

    def __init__(self, fast: int = 10, slow: int = 30, stop_pct: float = 0.0) -> None:
        if not 0 < fast < slow:
            raise ValueError(f"sma_cross needs 0 < fast < slow, got fast={fast} slow={slow}")
        self._fast = int(fast)
        self._slow = int(slow)
        self.stop_pct = float(stop_pct)
        self._closes: collections.deque[float] = collections.deque()
        self._fast_sum = 0.0
        self._slow_sum = 0.0
        self._prev_above: int | None = None  # sign of fast - slow on the previous candle

    def on_candle(self, candle: CandleClosed) -> Signal | None:
        """Feed one close; signal on a strict crossover."""
        # Running sums make this O(1); both windows share one deque of closes.
        closes = self._closes
        close = candle.close
        closes.append(close)
        self._fast_sum += close
        self._slow_sum += close
        n = len(closes)
        if n > self._fast:
            self._fast_sum -= closes[-self._fast - 1]
        if n > self._slow:
            self._slow_sum -= closes.popleft()
        elif n < self._slow:
            return None
        diff = self._fast_sum / self._fast - self._slow_sum / self._slow
        sign = (diff > 0) - (diff < 0)
        prev, self._prev_above = self._prev_above, sign
        if prev is None or sign == prev:
            return None
        if prev < 0 and sign > 0:
            stop = close * (1 - self.stop_pct / 100) if self.stop_pct else 0.0
            return Signal("buy", stop, "fast SMA crossed above slow")
        if prev > 0 and sign < 0:
            stop = close * (1 + self.stop_pct / 100) if self.stop_pct else 0.0
            return Signal("sell", stop, "fast SMA crossed below slow")
        return None

    def __repr__(self) -> str:
        return f"SmaCross(fast={self._fast}, slow={self._slow}, prev_sign={self._prev_above})"


@mypyc_attr(allow_interpreted_subclasses=True)  # compiled by mypyc, a user's strategy may still extend it
class AtrBreakout:
    """Donchian breakout with an ATR stop.

    Buy when the close breaks above the highest high of the previous
    `lookback` candles, sell when it breaks below the lowest low; the stop sits
    `atr_mult` average true ranges (Wilder's, `atr_period`) from the close.
    """

    name = "atr_breakout"

    def __init__(self, lookback: int = 20, atr_period: int = 14, atr_mult: float = 2.0) -> None:
        if lookback < 2 or atr_period < 1 or atr_mult <= 0:
            raise ValueError("atr_breakout needs lookback >= 2, atr_period >= 1, atr_mult > 0")
        self.lookback = int(lookback)
        self.atr_period = int(atr_period)
        self.atr_mult = float(atr_mult)
        self._highs: collections.deque[float] = collections.deque(maxlen=self.lookback)
        self._lows: collections.deque[float] = collections.deque(maxlen=self.lookback)
        self._prev_close: float | None = None
        self._atr: float | None = None
        self._seen = 0
        self._side: Side | None = None

    def on_candle(self, candle: CandleClosed) -> Signal | None:
        """Update the channel and ATR; signal on a breakout that flips the side."""
        prev_close = self._prev_close
        true_range = candle.high - candle.low
        if prev_close is not None:
            true_range = max(true_range, abs(candle.high - prev_close), abs(candle.low - prev_close))
        self._seen += 1
        if self._atr is None:
            self._atr = true_range
        else:  # Wilder's smoothing
            self._atr += (true_range - self._atr) / min(self._seen, self.atr_period)
        signal = None
        if len(self._highs) == self.lookback and self._seen > self.atr_period:
            distance = self.atr_mult * self._atr
            if candle.close > max(self._highs) and self._side != "buy":
                signal = Signal("buy", candle.close - distance, "close broke the channel high")
            elif candle.close < min(self._lows) and self._side != "sell":
                signal = Signal("sell", candle.close + distance, "close broke the channel low")
        if signal is not None:
            self._side = signal.side
        self._highs.append(candle.high)
        self._lows.append(candle.low)
        self._prev_close = candle.close
        return signal

    def __repr__(self) -> str:
        return f"AtrBreakout(lookback={self.lookback}, atr={self._atr}, side={self._side})"


StrategyFactory = Callable[..., Strategy]
STRATEGIES: dict[str, StrategyFactory] = {"sma_cross": SmaCross, "atr_breakout": AtrBreakout}


def make_strategy(name: str, params: dict[str, float | int | str | bool] | None = None) -> Strategy:
    """Build a registered strategy or a user's (``module:Class``, ``file.py:Class``); ValueError says what is wrong.

    A user's class is checked by `twinstar.handlers.user_strategy`; the error names the known strategies,
    the missing module, file or class, or the bad parameter.
    """
    factory = STRATEGIES.get(name)
    if factory is None and is_user_strategy(name):
        try:
            strategy = load_strategy_class(name)(**(params or {}))
        except TypeError as exc:
            raise ValueError(f"strategy {name}: {exc}") from None
        except ValueError:
            raise
        except Exception as exc:  # the user's constructor raised: one line, no traceback
            raise ValueError(f"strategy {name}: {type(exc).__name__}: {exc}") from None
        return checked_instance(name, strategy)  # type: ignore[return-value]  # checked: name and on_candle
    if factory is None:
        raise ValueError(f"unknown strategy {name!r} (known: {', '.join(sorted(STRATEGIES))})")
    try:
        return factory(**(params or {}))
    except TypeError as exc:
        raise ValueError(f"strategy {name}: {exc}") from None


class StrategyHandler:
    """Runs one strategy instance per (exchange, symbol, interval): CandleClosed -> SignalFired."""

    def __init__(
        self,
        name: str,
        params: dict[str, float | int | str | bool],
        clock: Clock,
        *,
        trade_late_candles: bool = False,
    ) -> None:
        self.strategy_name = name
        self.trade_late_candles = trade_late_candles  # see CandleClosed.late
        self.params = dict(params)
        self.clock = clock
        make_strategy(name, self.params)  # refuse bad names and parameters before any candle
        self._instances: dict[tuple[str, str, str], Strategy] = {}
        self._last: tuple[tuple[str, str, str], Strategy, int] | None = None
        self.stale_signals = 0
        self._bus: Bus | None = None

    def attach(self, bus: Bus) -> None:
        """Subscribe to closed candles."""
        self._bus = bus
        bus.subscribe(CandleClosed, self.handle, name="StrategyHandler")

    def handle(self, candle: CandleClosed) -> Awaitable[None] | None:
        """Feed the candle to its series' strategy and publish what it signals.

        Plain, not async: most candles signal nothing, and those cost no coroutine.
        """
        key = (candle.exchange, candle.symbol, candle.interval)
        last = self._last
        if last is not None and last[0] == key:
            strategy, length_ms = last[1], last[2]  # same series as the previous candle: skip the lookup
        else:
            found = self._instances.get(key)
            if found is None:
                found = self._instances[key] = make_strategy(self.strategy_name, self.params)
            strategy, length_ms = found, interval_ms(candle.interval)
            self._last = (key, strategy, length_ms)
        signal = strategy.on_candle(candle)
        if signal is None or self._bus is None:
            return None
        # Warm-up history (a live feed's first poll) updates indicators but must never trade:
        # a candle that closed more than one interval ago is stale.
        if self.clock.now_ms() - candle.open_time_ms > 2 * length_ms or (candle.late and not self.trade_late_candles):
            self.stale_signals += 1
            return None
        return self._bus.emit(
            SignalFired(
                ts_ns=self.clock.now_ns(),
                strategy=strategy.name,
                exchange=candle.exchange,
                symbol=candle.symbol,
                side=signal.side,
                price=candle.close,
                stop_price=signal.stop_price,
                reason=signal.reason,
                candle_open_time_ms=candle.open_time_ms,
                order_type=signal.order_type,
                limit_price=signal.limit_price,
                time_in_force=signal.time_in_force,
                take_profit_price=signal.take_profit_price,
            )
        )

    def __repr__(self) -> str:
        return f"StrategyHandler(strategy={self.strategy_name!r}, series={len(self._instances)})"
