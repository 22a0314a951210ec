"""The one place the search runs a backtest: checked candles and a strategy in, statistics out.

It goes the way `python -m twinstar run` goes (`twinstar.backtest`: the data
read and checked by `check_data`, then `run_checked`), so a trial's figures
are exactly what `run` prints for the same config and data file. The data is
read and checked once (`prepare`); each trial only swaps the strategy.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import msgspec

from twinstar.backtest import CheckedData, check_data, run_checked
from twinstar.config import Config
from twinstar.optimize.space import ParamValue
from twinstar.report.statistics import Statistics


def prepare(config: Config, data: str | Path, interval: str | None) -> CheckedData:
    """Read and check the candles in `data` for backtests of `config` (CandleFileError when they fail)."""
    return check_data(config, data, interval=interval)


async def backtest(
    checked: CheckedData,
    strategy: str,
    params: dict[str, ParamValue],
    *,
    should_stop: Callable[[], bool] | None = None,
) -> Statistics | None:
    """Backtest `strategy` with `params` on `checked`; nothing is written. None: `should_stop` ended it."""
    config = checked.config
    config = msgspec.structs.replace(
        config, strategy=msgspec.structs.replace(config.strategy, name=strategy, params=dict(params))
    )
    trial = msgspec.structs.replace(checked, config=config)
    result = await run_checked(trial, should_stop=should_stop, watched=False)  # risk limits yes, alerts no
    return None if result.interrupted else result.summary
