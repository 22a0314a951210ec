"""Sessions a host app runs: paper sessions on candles, and live kernels.

`run_paper` runs a frame of candles through the full pipeline on simulated
time (a data file is `twinstar.run_backtest`); `live_kernel` builds the kernel
of a live session from a config, for the host to enter in its own loop.

A paper session is a replay-mode kernel fed with candles: the simulated
exchange, strategy, execution and position handlers, Parquet storage, a
recorder and the run report. Its stream replays to the same
decisions because `replay` builds the trading components with the same
`sim_components` factory.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from pathlib import Path

import msgspec
import polars as pl

from twinstar.backtest.source import input_events
from twinstar.bus.record import Recorder
from twinstar.clock import Clock, SimClock
from twinstar.config import Config
from twinstar.intervals import interval_ms
from twinstar.kernel import Component, Kernel
from twinstar.opt_in import opt_in_components
from twinstar.report import ReportFiles, RunReport, Statistics


def sim_components(config: Config, clock: Clock) -> list[Component]:
    """Build a simulated exchange per venue of `config` (named as it) and the trading pipeline."""
    from twinstar.adapters.sim import SimExchange
    from twinstar.handlers import VenueTrading, build_trading

    venues = [
        VenueTrading(SimExchange(clock, config.sim, name=venue.name), venue.symbols, clock) for venue in config.venues()
    ]
    return build_trading(config, clock, venues)


class PaperResult(msgspec.Struct, frozen=True, kw_only=True):
    """Where a finished paper session put its outputs, and how it did."""

    run_dir: str
    stream: str
    chart: str
    candles: str
    summary: Statistics
    report: ReportFiles


def default_run_dir(config: Config, root: Path = Path("runs")) -> Path:
    """Name a fresh run folder after the wall-clock start, strategy and symbol."""
    stamp = dt.datetime.now(tz=dt.UTC).strftime("%Y%m%d-%H%M%S")
    venue = config.venues()[0]
    symbol = venue.symbols[0].replace("/", "-").replace(":", "-")
    return root / f"{stamp}-{config.strategy.name}-{symbol}-{venue.interval}"


async def run_paper(
    config: Config,
    candles: pl.DataFrame,
    run_dir: Path,
    *,
    on_progress: Callable[[int], None] | None = None,
    extra_components: Sequence[Component] = (),
) -> PaperResult:
    """Run `candles` (open_time_ms, open, high, low, close, volume) through a paper session.

    The candles are recorded into the stream and stored, since they come from
    no file the stream could name; a backtest of a file is `run_backtest`.
    """
    from twinstar.handlers.storage import CandleStorage

    run_dir.mkdir(parents=True, exist_ok=True)
    venue = config.venues()[0]  # a paper session trades one series: the first symbol of the first venue
    symbol, interval, exchange = venue.symbols[0], venue.interval, venue.name
    length_ms = interval_ms(interval)
    first_open = int(candles["open_time_ms"][0]) if candles.height else 0
    clock = SimClock((first_open + length_ms) * 1_000_000, autojump=True)
    report = RunReport(config.sim.initial_balance)
    stream = run_dir / "events.tws"
    candles_dir = run_dir / "candles"
    parts: list[Component] = [
        Recorder(stream, config=config.to_dict(), meta={"kind": "paper"}),
        *sim_components(config, clock),
        CandleStorage(candles_dir, flush_every=max(config.storage.flush_every, 5_000)),
        report,
        *extra_components,
    ]
    parts += opt_in_components(config, clock)  # replay mode: no venue for the status page to poll
    async with Kernel(config, clock=clock, components=parts, mode="replay") as kernel:
        emit = kernel.bus.emit
        for index, event in enumerate(input_events(candles, exchange, symbol, interval), 1):
            clock.set_ns(event.ts_ns)
            pending = emit(event)
            if pending is not None:
                await pending
            if on_progress is not None and index % 1_000 == 0:
                on_progress(index)
    if on_progress is not None:
        on_progress(candles.height)
    statistics, files = report.write(run_dir, title=f"{config.strategy.name} on {symbol} {interval} (paper)")
    return PaperResult(
        run_dir=str(run_dir),
        stream=str(stream),
        chart=files.chart,
        candles=str(candles_dir),
        summary=statistics,
        report=files,
    )


def live_kernel(config: Config, *, run_dir: Path | None = None) -> Kernel:
    """Build the kernel of a live session on `config`'s venues: enter it with `async with` in the host's loop.

    Adapters, clock sync, feeds, order streams, the pipeline and a recorder
    (into `run_dir`, else a fresh folder under ``runs/``). The kernel installs
    no signal handlers: the host stops it with `Kernel.stop` or by leaving the
    `async with`. ccxt is imported here, not by ``import twinstar``.
    """
    from twinstar.clock import LiveClock
    from twinstar.live import live_components

    clock = LiveClock()
    return Kernel(config, clock=clock, components=live_components(config, clock, run_dir=run_dir))
