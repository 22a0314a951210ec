"""The trade list of a run, built from its position events.

One row per `PositionClosed` (a partial close is a trade of its own, as in
backtesting.py), plus one per position still open when the data ended,
marked at the last close. Written as Parquet and CSV beside the recording.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import msgspec
import polars as pl

from twinstar.atomic import replace_atomically
from twinstar.bus.bus import Bus
from twinstar.bus.events import CandleClosed, PositionClosed, PositionOpened, PositionSide, SLUpdated

_UTC_MS: Final = pl.Datetime("ms", "UTC")
TRADE_SCHEMA: Final[dict[str, pl.DataType | type[pl.DataType]]] = {
    "exchange": pl.String,
    "symbol": pl.String,
    "side": pl.String,
    "size": pl.Float64,
    "entry_time": _UTC_MS,
    "exit_time": _UTC_MS,
    "entry_price": pl.Float64,
    "exit_price": pl.Float64,
    "stop_price": pl.Float64,
    "exit_reason": pl.String,
    "fees": pl.Float64,
    "funding": pl.Float64,  # received over the trade (negative: paid), perpetuals only; in `pnl` already
    "slippage": pl.Float64,  # simulated slippage and spread paid, entry and exit; in `pnl` already
    "pnl": pl.Float64,
    "return_pct": pl.Float64,
}
# Position handler reasons -> trade list reasons; a stop that moved after it was first set is a trailing stop.
_REASONS: Final = {"signal": "signal", "stop_loss": "stop", "emergency_exit": "emergency"}


class _Holding(msgspec.Struct):
    side: PositionSide
    qty: float
    entry_price: float
    entry_fee: float
    entry_ns: int
    first_stop: float | None = None
    stop: float | None = None


class TradeBook:
    """Collects trades from `PositionOpened`, `SLUpdated` and `PositionClosed`, keyed by (venue, symbol)."""

    def __init__(self, *, follow_candles: bool = True) -> None:
        # One tuple per trade, in the order of TRADE_SCHEMA (without return_pct): 40k trades stay small.
        self.rows: list[tuple[object, ...]] = []
        self._follow_candles = follow_candles  # False: the owner tells the last close (`last_close`)
        self._open: dict[tuple[str, str], _Holding] = {}
        self._last: dict[tuple[str, str], tuple[int, float]] = {}  # candle close time (ns) and price
        self.stop_times_ms: list[int] = []  # the stop level over time, for the chart
        self.stop_prices: list[float | None] = []  # None from a full close to the next stop

    def attach(self, bus: Bus) -> None:
        """Subscribe to position, stop and candle events."""
        bus.subscribe(PositionOpened, self.on_opened)
        bus.subscribe(SLUpdated, self.on_stop)
        bus.subscribe(PositionClosed, self.on_closed)
        if self._follow_candles:
            bus.subscribe(CandleClosed, self.on_candle)

    def on_candle(self, event: CandleClosed) -> None:
        """Remember the last close: a position open at the end is marked there."""
        self._last[event.exchange, event.symbol] = (event.ts_ns, event.close)

    def last_close(self, exchange: str, symbol: str, ts_ns: int, price: float) -> None:
        """Set the last close of a series, as `on_candle` would (a backtest knows it from its input frame)."""
        self._last[exchange, symbol] = (ts_ns, price)

    def on_opened(self, event: PositionOpened) -> None:
        """Start a holding at the filled size and price."""
        self._open[event.exchange, event.symbol] = _Holding(
            event.side, event.qty, event.entry_price, event.fee, event.ts_ns
        )

    def on_stop(self, event: SLUpdated) -> None:
        """Follow the stop level in force."""
        holding = self._open.get((event.exchange, event.symbol))
        if holding is not None:
            holding.first_stop = event.stop_price if holding.first_stop is None else holding.first_stop
            holding.stop = event.stop_price
            self.stop_times_ms.append(event.ts_ns // 1_000_000)
            self.stop_prices.append(event.stop_price)

    def on_closed(self, event: PositionClosed) -> None:
        """Book a trade for the closed size."""
        key = event.exchange, event.symbol
        holding = self._open.get(key)
        entry_ns = holding.entry_ns if holding is not None else event.ts_ns
        stop = holding.stop if holding is not None else None
        reason = _REASONS.get(event.reason, event.reason)
        if reason == "stop" and holding is not None and holding.stop != holding.first_stop:
            reason = "trailing_stop"
        row = _row(key, event.side, event.qty, entry_ns, event.ts_ns, event.entry_price, event.exit_price)
        self.rows.append((*row, stop, reason, event.fees, event.funding, event.slippage, event.pnl))
        if holding is not None:
            left = holding.qty - event.qty
            if left <= 1e-12:
                del self._open[key]
                self.stop_times_ms.append(event.ts_ns // 1_000_000)
                self.stop_prices.append(None)
            else:
                holding.entry_fee *= left / holding.qty
                holding.qty = left

    def frame(self) -> pl.DataFrame:
        """Every trade so far, and each open position closed at its last close (reason `end_of_data`, no exit fee)."""
        rows = list(self.rows)
        for key, holding in self._open.items():
            if key not in self._last:
                continue
            exit_ns, price = self._last[key]
            move = price - holding.entry_price
            gross = holding.qty * (move if holding.side == "long" else -move)
            row = _row(key, holding.side, holding.qty, holding.entry_ns, exit_ns, holding.entry_price, price)
            rows.append((*row, holding.stop, "end_of_data", holding.entry_fee, 0.0, 0.0, gross - holding.entry_fee))
        frame = pl.DataFrame(rows, schema={k: v for k, v in TRADE_SCHEMA.items() if k != "return_pct"}, orient="row")
        # backtesting.py's ReturnPct: the net PnL over the entry value.
        return frame.with_columns(return_pct=100 * pl.col("pnl") / (pl.col("size") * pl.col("entry_price")))

    def stops(self) -> pl.DataFrame:
        """The stop level over time: columns `time_ms` and `stop` (null from each close to the next stop)."""
        return pl.DataFrame(
            {"time_ms": self.stop_times_ms, "stop": self.stop_prices}, schema={"time_ms": pl.Int64, "stop": pl.Float64}
        )

    def __repr__(self) -> str:
        return f"TradeBook(trades={len(self.rows)}, open={sorted(self._open)})"


def _row(
    key: tuple[str, str], side: str, qty: float, entry_ns: int, exit_ns: int, entry: float, exit_: float
) -> tuple[object, ...]:
    """The first columns of a trade row: exchange, symbol, side, size, entry and exit time (ms) and price."""
    return (key[0], key[1], side, qty, entry_ns // 1_000_000, exit_ns // 1_000_000, entry, exit_)


def write_trades(trades: pl.DataFrame, folder: Path) -> tuple[Path, Path]:
    """Write `trades.parquet` and `trades.csv` into `folder`, atomically; return both paths."""
    parquet, csv = folder / "trades.parquet", folder / "trades.csv"
    replace_atomically(parquet, trades.write_parquet)
    replace_atomically(csv, trades.write_csv)
    return parquet, csv
