"""The same SMA-cross rules in TwinStar and in backtesting.py, on the same candles.

Fill assumptions that make the two comparable: both fill market orders at the
next candle's open (backtesting.py's default; TwinStar fills at the last
close, which equals the next open in continuous data such as `random_walk`
and 99.9% of the bundled bars), one unit per trade, no commission, a stop
`stop_pct` below/above the signal candle's close that triggers on the
candle's low/high and fills at the stop or at the open on a gap, no trailing,
and a reversal (close, then open the other side) on every strict crossover.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import msgspec
import polars as pl

from twinstar import Config, Kernel
from twinstar.bus.bus import Bus
from twinstar.bus.events import CandleClosed, PositionClosed
from twinstar.bus.record import Recorder
from twinstar.clock import SimClock
from twinstar.session import sim_components


@dataclass
class Outcome:
    """Trades and gross PnL of one engine on one data set, and its speed."""

    engine: str
    trades: int
    gross_pnl: float
    seconds: float
    bars: int

    @property
    def bars_per_s(self) -> float:
        return self.bars / self.seconds


def sma_config(fast: int, slow: int, stop_pct: float) -> Config:
    """TwinStar config with the comparison's rules."""
    base = Config(symbols=["SIM/USD"], interval="1m")
    return msgspec.structs.replace(
        base,
        strategy=msgspec.structs.replace(
            base.strategy, name="sma_cross", params={"fast": fast, "slow": slow, "stop_pct": stop_pct}
        ),
        risk=msgspec.structs.replace(base.risk, order_qty=1.0, trailing_stop=False),
        sim=msgspec.structs.replace(base.sim, taker_fee=0.0, initial_balance=1e12),
    )


class _Trades:
    def __init__(self) -> None:
        self.count = 0
        self.gross = 0.0

    def attach(self, bus: Bus) -> None:
        bus.subscribe(PositionClosed, self.handle)

    async def handle(self, event: PositionClosed) -> None:
        self.count += 1
        self.gross += event.pnl + event.fees


def candle_events(frame: pl.DataFrame, symbol: str = "SIM/USD", interval_ms: int = 60_000) -> list[CandleClosed]:
    """CandleClosed events for every row, stamped at the candle's close."""
    cols = [frame[c].to_list() for c in ("open_time_ms", "open", "high", "low", "close", "volume")]
    return [
        CandleClosed(
            ts_ns=(t + interval_ms) * 1_000_000,
            exchange="sim",
            symbol=symbol,
            interval="1m",
            open_time_ms=t,
            open=o,
            high=h,
            low=lo,
            close=c,
            volume=v,
        )
        for t, o, h, lo, c, v in zip(*cols, strict=True)
    ]


async def run_twinstar(events: list[CandleClosed], config: Config, *, record: Path | None = None) -> Outcome:
    """Replay `events` through the whole TwinStar pipeline; time only the replay loop."""
    clock = SimClock(events[0].ts_ns, autojump=True)
    trades = _Trades()
    parts = [*sim_components(config, clock), trades]
    if record is not None:
        parts.insert(0, Recorder(record, config=config.to_dict()))
    async with Kernel(config, clock=clock, components=parts, mode="replay") as kernel:
        emit = kernel.bus.emit
        set_ns = clock.set_ns
        started = time.perf_counter()
        for event in events:
            set_ns(event.ts_ns)
            pending = emit(event)
            if pending is not None:  # a handler awaits (an order): finish it before the next candle
                await pending
        seconds = time.perf_counter() - started
    return Outcome("twinstar" + (" +recording" if record else ""), trades.count, trades.gross, seconds, len(events))


def run_backtesting_py(frame: pl.DataFrame, fast: int, slow: int, stop_pct: float) -> Outcome:
    """Run backtesting.py's SmaCross with the same rules; time only `Backtest.run`."""
    import pandas as pd
    from backtesting import Backtest, Strategy
    from backtesting.lib import crossover

    def sma(values: pd.Series, n: int) -> pd.Series:
        return pd.Series(values).rolling(n).mean()

    class SmaCross(Strategy):  # type: ignore[misc]
        def init(self) -> None:
            self.fast = self.I(sma, self.data.Close, fast)
            self.slow = self.I(sma, self.data.Close, slow)

        def next(self) -> None:
            close = self.data.Close[-1]
            if crossover(self.fast, self.slow):
                self.position.close()
                self.buy(size=1, sl=close * (1 - stop_pct / 100))
            elif crossover(self.slow, self.fast):
                self.position.close()
                self.sell(size=1, sl=close * (1 + stop_pct / 100))

    data = frame.to_pandas()
    data.index = pd.to_datetime(data["open_time_ms"], unit="ms")
    data = data.rename(columns=str.capitalize)[["Open", "High", "Low", "Close", "Volume"]]
    backtest = Backtest(data, SmaCross, cash=1e12, commission=0.0, trade_on_close=False)
    started = time.perf_counter()
    stats = backtest.run()
    seconds = time.perf_counter() - started
    trades = stats["_trades"]
    return Outcome("backtesting.py", len(trades), float(trades["PnL"].sum()), seconds, frame.height)
