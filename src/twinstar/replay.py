"""Replay a recorded stream through a fresh kernel on simulated time.

Only the stream's input events (market data) are fed back (a backtest's
candles from the data file its header names, see `twinstar.backtest.source`); everything the
kernel decided in the original run (signals, orders, positions) is decided
again. The kernel runs in replay mode: each input is handled to completion,
every handler idle, before the next one, so the same stream always yields the
same output stream, byte for byte.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import msgspec

from twinstar.bus.bus import Bus
from twinstar.bus.events import INPUT_EVENT_TYPES, CandleClosed, Event
from twinstar.bus.record import Recorder, Stream, read_stream
from twinstar.clock import Clock, SimClock
from twinstar.config import Config
from twinstar.kernel import Component, Kernel

ComponentsFactory = Callable[[Config, Clock], Sequence[Component]]


class ReplaySummary(msgspec.Struct, frozen=True, kw_only=True):
    """What a replay read and produced."""

    input_events: int
    output_events: int
    counts: dict[str, int]
    torn_tail: bool
    elapsed_s: float
    output: str


class _Counter:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def attach(self, bus: Bus) -> None:
        bus.subscribe(Event, self.handle, name="ReplayCounter")

    def handle(self, event: Event) -> None:
        self.counts[type(event).__name__] += 1


def _no_components(config: Config, clock: Clock) -> Sequence[Component]:
    return ()


def _inputs(stream: Stream) -> tuple[Sequence[Event], bool]:
    """The stream's input events, and whether they come from the data file its header names.

    A backtest stream holds no candles: they are read again from the file
    (refused if its digest changed), up to the last one the run handled.
    """
    from twinstar.backtest.source import DataSource, reload, source_events  # polars: only for backtest streams

    source = DataSource.from_meta(stream.header.meta)
    if source is None:
        return [event for event in stream if isinstance(event, INPUT_EVENT_TYPES)], False
    last_ns = max((event.ts_ns for event in stream), default=0)
    events = itertools.takewhile(lambda e: e.ts_ns <= last_ns, source_events(reload(source).frame, source))
    return list(events), True


async def replay(
    path: str | Path,
    *,
    output: str | Path | None = None,
    components: ComponentsFactory = _no_components,
    on_progress: Callable[[int], None] | None = None,
) -> ReplaySummary:
    """Feed the input events of `path` through a fresh replay-mode kernel.

    `components` builds the handlers from the stream's recorded config (the
    same factory the original run used). With `output`, every event of the
    replay is recorded there.
    """
    stream = read_stream(path)
    config = Config.from_dict(stream.header.config)
    inputs, file_backed = _inputs(stream)
    clock = SimClock(inputs[0].ts_ns if inputs else 0, autojump=True)
    counter = _Counter()
    parts: list[Component] = [*components(config, clock), counter]
    if output is not None:
        skip = (CandleClosed,) if file_backed else ()
        parts.insert(0, Recorder(output, config=stream.header.config, meta=dict(stream.header.meta), skip=skip))
    started = time.perf_counter()
    async with Kernel(config, clock=clock, components=parts, mode="replay") as kernel:
        emit = kernel.bus.emit
        for index, event in enumerate(inputs, 1):
            clock.set_ns(event.ts_ns)
            pending = emit(event)
            if pending is not None:
                await pending
            if on_progress is not None and index % 10_000 == 0:
                on_progress(index)
    return ReplaySummary(
        input_events=len(inputs),
        output_events=sum(counter.counts.values()),
        counts=dict(sorted(counter.counts.items())),
        torn_tail=stream.torn_tail,
        elapsed_s=time.perf_counter() - started,
        output=str(output or ""),
    )
