"""backtesting.py as a whole process on a candle file, the way `twinstar run --data` is driven.

`python bench/peers_cli.py FILE OUT_DIR`: import, read the file with pandas,
build backtesting.py's frame, run SmaCross 10/30 with a 2% stop (the rules of
bench/peers.py), write the trade list and statistics. The last line printed
is JSON: each phase's seconds and the trade count, for bench/bench_cli.py.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

started = time.perf_counter()
import pandas as pd  # noqa: E402  (timed: the import phase)
from backtesting import Backtest, Strategy  # noqa: E402
from backtesting.lib import crossover  # noqa: E402

FAST, SLOW, STOP_PCT = 10, 30, 2.0


def sma(values: pd.Series, n: int) -> pd.Series:
    """Simple moving average over `n` values."""
    return pd.Series(values).rolling(n).mean()


class SmaCross(Strategy):  # type: ignore[misc]  # backtesting.py ships no types
    """Reverse on every strict crossover, one unit, stop 2% from the signal close."""

    def init(self) -> None:
        self.fast = self.I(sma, self.data.Close, FAST)
        self.slow = self.I(sma, self.data.Close, SLOW)

    def next(self) -> None:
        close = self.data.Close[-1]
        if crossover(self.fast, self.slow):
            self.position.close()
            self.buy(size=1, sl=close * (1 - STOP_PCT / 100))
        elif crossover(self.slow, self.fast):
            self.position.close()
            self.sell(size=1, sl=close * (1 + STOP_PCT / 100))


def main(path: Path, out: Path) -> None:
    """Run every phase and print their times."""
    phases = {"import": time.perf_counter() - started}
    mark = time.perf_counter()
    raw = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    phases["load"] = time.perf_counter() - mark
    mark = time.perf_counter()
    raw.index = pd.to_datetime(raw["open_time_ms"], unit="ms")
    data = raw.rename(columns=str.capitalize)[["Open", "High", "Low", "Close", "Volume"]]
    phases["convert"] = time.perf_counter() - mark
    mark = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its own notes about progress bars and sizing
        stats = Backtest(data, SmaCross, cash=1e12, commission=0.0, trade_on_close=False).run()
    phases["trade"] = time.perf_counter() - mark
    mark = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    trades = stats["_trades"]
    trades.to_csv(out / "trades.csv")
    print(stats.drop(["_strategy", "_equity_curve", "_trades"]).to_string())
    phases["report"] = time.perf_counter() - mark
    print(json.dumps({**phases, "trades": len(trades)}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
