"""Trading performance from events: equity curve, trades, drawdown, Sharpe.

A component that listens to candles and position events only, so the same
figures come out of a paper run, a replay and a live session.
"""

from __future__ import annotations

import itertools
import math

import msgspec

from twinstar.bus.bus import Bus
from twinstar.bus.events import CandleClosed, PositionClosed, PositionOpened, PositionSide
from twinstar.intervals import interval_ms

_MS_PER_YEAR = 365 * 86_400_000  # crypto trades every day of the year


class Summary(msgspec.Struct, frozen=True, kw_only=True):
    """Headline figures of a run."""

    bars: int
    trades: int
    wins: int
    win_rate_pct: float
    gross_pnl: float
    fees: float
    net_pnl: float
    initial_equity: float
    final_equity: float
    return_pct: float
    max_drawdown_pct: float
    sharpe: float

    def rows(self) -> list[tuple[str, str]]:
        """Label/value pairs for a summary table."""
        return [
            ("bars", f"{self.bars:,}"),
            ("trades", f"{self.trades:,}"),
            ("win rate", f"{self.win_rate_pct:.1f}%"),
            ("gross PnL", f"{self.gross_pnl:,.2f}"),
            ("fees", f"{self.fees:,.2f}"),
            ("net PnL", f"{self.net_pnl:,.2f}"),
            ("return", f"{self.return_pct:.2f}%"),
            ("max drawdown", f"{self.max_drawdown_pct:.2f}%"),
            ("Sharpe (annualised)", f"{self.sharpe:.2f}"),
            ("final equity", f"{self.final_equity:,.2f}"),
        ]


class _Open(msgspec.Struct):
    side: PositionSide
    qty: float
    entry_price: float
    fee: float


class PerformanceTracker:
    """Marks equity to market on every closed candle of the traded symbol."""

    def __init__(self, initial_equity: float, interval: str) -> None:
        self.initial_equity = initial_equity
        self._bars_per_year = _MS_PER_YEAR / interval_ms(interval)
        self._realised = 0.0
        self._gross = 0.0
        self._fees = 0.0
        self._trades = 0
        self._wins = 0
        self._open: dict[str, _Open] = {}
        self.times_ms: list[int] = []
        self.equity: list[float] = []

    def attach(self, bus: Bus) -> None:
        """Subscribe to candles and position events."""
        bus.subscribe(CandleClosed, self.on_candle)
        bus.subscribe(PositionOpened, self.on_opened)
        bus.subscribe(PositionClosed, self.on_closed)

    def on_candle(self, event: CandleClosed) -> None:
        """Record mark-to-market equity at this candle's close."""
        unrealised = 0.0
        position = self._open.get(event.symbol)
        if position is not None:
            move = event.close - position.entry_price
            unrealised = position.qty * (move if position.side == "long" else -move) - position.fee
        self.times_ms.append(event.open_time_ms)
        self.equity.append(self.initial_equity + self._realised + unrealised)

    def on_opened(self, event: PositionOpened) -> None:
        """Track the open position for marking."""
        self._open[event.symbol] = _Open(event.side, event.qty, event.entry_price, event.fee)

    def on_closed(self, event: PositionClosed) -> None:
        """Book the realised trade."""
        self._open.pop(event.symbol, None)
        self._realised += event.pnl
        self._fees += event.fees
        self._gross += event.pnl + event.fees
        self._trades += 1
        self._wins += event.pnl > 0

    def summary(self) -> Summary:
        """Compute the headline figures from what was seen so far."""
        equity = self.equity
        final = equity[-1] if equity else self.initial_equity
        peak = -math.inf
        max_dd = 0.0
        for value in equity:
            peak = max(peak, value)
            if peak > 0:
                max_dd = max(max_dd, (peak - value) / peak)
        returns = [b / a - 1 for a, b in itertools.pairwise(equity) if a > 0]
        sharpe = 0.0
        if len(returns) > 1:
            mean = sum(returns) / len(returns)
            var = sum((r - mean) ** 2 for r in returns) / (len(returns) - 1)
            if var > 0:
                sharpe = mean / math.sqrt(var) * math.sqrt(self._bars_per_year)
        return Summary(
            bars=len(equity),
            trades=self._trades,
            wins=self._wins,
            win_rate_pct=100 * self._wins / self._trades if self._trades else 0.0,
            gross_pnl=self._gross,
            fees=self._fees,
            net_pnl=self._realised,
            initial_equity=self.initial_equity,
            final_equity=final,
            return_pct=100 * (final / self.initial_equity - 1) if self.initial_equity else 0.0,
            max_drawdown_pct=100 * max_dd,
            sharpe=sharpe,
        )

    def __repr__(self) -> str:
        return f"PerformanceTracker(bars={len(self.equity)}, trades={self._trades}, realised={self._realised:.2f})"
