"""Run a backtest: a data file through the full pipeline on simulated time, checked first.

`run_backtest` is the one entry point (the CLI's `run --data`, the optimizer
and host apps call it). The file is read once with polars, checked
(`twinstar.backtest.checks`), and its candles are streamed to the bus in
batches; the recording names the file and its digest instead of copying the
candles (`twinstar.backtest.source`), and nothing is written to the candle
store: the input file already is the data.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import msgspec
import polars as pl

from twinstar.backtest.checks import DataReport, GapPolicy, check_series
from twinstar.backtest.curve import BacktestReport
from twinstar.backtest.inputs import input_sha256, read_series
from twinstar.backtest.source import DataSource, source_batches
from twinstar.bus.events import CandleClosed
from twinstar.bus.record import Recorder
from twinstar.clock import SimClock
from twinstar.config import Config
from twinstar.intervals import interval_ms
from twinstar.kernel import Component, Kernel
from twinstar.opt_in import opt_in_components
from twinstar.report import ReportFiles, Statistics


class BacktestResult(msgspec.Struct, frozen=True, kw_only=True):
    """How a backtest did, what its data held, and where its files went (empty without a run folder)."""

    summary: Statistics
    data: DataReport
    config: Config  # as run: the interval inferred, the symbol set
    candles_run: int
    interrupted: bool  # `should_stop` ended it early; the summary covers the candles that ran
    run_dir: str = ""
    stream: str = ""
    report: ReportFiles | None = None
    seconds: dict[str, float] = msgspec.field(default_factory=dict)  # wall time of "run" and "report"


class CheckedData(msgspec.Struct, frozen=True, kw_only=True):
    """A data file read and checked for a backtest: the candles to trade, the checks, the recorded source."""

    frame: pl.DataFrame
    report: DataReport
    source: DataSource
    config: Config  # the caller's, with the interval and the one symbol it runs with

    def with_config(self, config: Config) -> CheckedData:
        """The same checked data for another config (a parameter search runs many on one read of the file)."""
        venue = config.venues()[0]
        if (venue.name, venue.symbols[0]) != (self.source.exchange, self.source.symbol):
            config = msgspec.structs.replace(config, symbols=[self.source.symbol])
        run = msgspec.structs.replace(config, interval=self.source.interval)
        if run.data.gaps != self.source.gaps:
            raise ValueError(f"data.gaps {run.data.gaps} differs from the checked data's {self.source.gaps}")
        return msgspec.structs.replace(self, config=run)


def check_data(config: Config, data: str | Path, *, interval: str | None = None) -> CheckedData:
    """Read and check the candles in `data` for a backtest of `config` (see `run_backtest`)."""
    path = Path(data).resolve()
    venue = config.venues()[0]  # a backtest trades one series: the first symbol of the first venue
    policy: GapPolicy = config.data.gaps
    series = read_series(path, columns=config.data.columns, fmt=config.data.format, interval=interval)
    frame, report = check_series(series, interval=interval, policy=policy, now_ms=time.time_ns() // 1_000_000)
    config = msgspec.structs.replace(config, interval=report.interval, symbols=[venue.symbols[0]])
    source = DataSource(
        path=str(path),
        sha256=input_sha256(path),
        exchange=venue.name,
        symbol=venue.symbols[0],
        interval=report.interval,
        gaps=policy,
        columns=config.data.columns,
        format=config.data.format,
    )
    return CheckedData(frame=frame, report=report, source=source, config=config)


async def run_backtest(
    config: Config,
    data: str | Path,
    run_dir: Path | None = None,
    *,
    interval: str | None = None,
    on_progress: Callable[[int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    extra_components: Sequence[Component] = (),
) -> BacktestResult:
    """Backtest `config`'s strategy on the candles in `data` and return its statistics.

    The candles are labelled with the first symbol of the first venue of
    `config`; `interval` None takes it from the data, otherwise it must match
    the data. `config.data.gaps` decides what a gap does. With `run_dir`, the
    recording (`events.tws`), statistics, trades and chart are written there.
    `should_stop` is asked every thousand candles or so and ends the run at a
    candle boundary. Raise CandleFileError on a file that cannot be read or
    fails the checks.
    """
    checked = check_data(config, data, interval=interval)
    return await run_checked(
        checked, run_dir, on_progress=on_progress, should_stop=should_stop, extra_components=extra_components
    )


async def run_checked(
    checked: CheckedData,
    run_dir: Path | None = None,
    *,
    on_progress: Callable[[int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    extra_components: Sequence[Component] = (),
    watched: bool = True,
) -> BacktestResult:
    """Run data that `check_data` read (the second half of `run_backtest`).

    `watched` False (a search's trials) leaves out alerts, the control plane and the bridge (`twinstar.opt_in`).
    """
    from twinstar.session import sim_components

    config, frame, source = checked.config, checked.frame, checked.source
    length_ms = interval_ms(source.interval)
    clock = SimClock((int(frame["open_time_ms"][0]) + length_ms) * 1_000_000, autojump=True)
    report = BacktestReport(config.sim.initial_balance, frame, length_ms, series=(source.exchange, source.symbol))
    parts: list[Component] = [
        *sim_components(config, clock),
        report,
        *opt_in_components(config, clock, watched=watched),
        *extra_components,
    ]
    stream = None
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        stream = run_dir / "events.tws"
        meta = {"kind": "backtest", "data": source.to_meta()}
        parts.insert(0, Recorder(stream, config=config.to_dict(), meta=meta, skip=(CandleClosed,)))
    interrupted = False
    started = time.perf_counter()
    async with Kernel(config, clock=clock, components=parts, mode="replay") as kernel:
        emit, set_ns = kernel.bus.emit, clock.set_ns
        fed = 0
        for batch in source_batches(frame, source):
            for event in batch:
                set_ns(event.ts_ns)
                pending = emit(event)
                if pending is not None:
                    await pending
            fed += len(batch)
            if on_progress is not None:
                on_progress(min(fed, frame.height))
            if should_stop is not None and should_stop():
                interrupted = True
                break
    # The candles that ran are those that closed by the clock's last reading.
    last_open_ms = clock.now_ns() // 1_000_000 - length_ms
    candles = frame.height if not interrupted else int((frame["open_time_ms"] <= last_open_ms).sum())
    if on_progress is not None:
        on_progress(candles)
    report.finish(candles)
    seconds = {"run": time.perf_counter() - started}
    title = f"{config.strategy.name} on {source.symbol} {source.interval} (backtest)"
    if run_dir is None:
        statistics, files = report.statistics(), None
    else:
        statistics, files = report.write(run_dir, title=title)
    seconds["report"] = time.perf_counter() - started - seconds["run"]
    return BacktestResult(
        summary=statistics,
        data=checked.report,
        config=config,
        candles_run=candles,
        interrupted=interrupted,
        run_dir="" if run_dir is None else str(run_dir),
        stream="" if stream is None else str(stream),
        report=files,
        seconds=seconds,
    )
