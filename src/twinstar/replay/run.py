"""Replay a recorded stream through a fresh kernel on simulated time.

Only the stream's input events (market data, operator commands) are fed back
(a backtest's candles from the data file its header names, see
`twinstar.backtest.source`); everything the kernel decided in the original run
(signals, orders, positions) is decided again. The kernel runs in replay mode:
each input is handled to completion, every handler idle, before the next one,
so the same stream always yields the same output stream, byte for byte.

Where the orders go depends on the recording. A live recording is answered
from itself (`twinstar.replay.recorded`): each order gets the fill, price, fee
or rejection the venue gave live, each stop its recorded outcome, and the
exits the venue made on its own come back where live learnt of them, so the
decisions and PnL come out as they were. The replay must then decide what live
decided: a request the recording has no answer for, or any decision that
differs, ends it with `ReplayDivergedError`. With `simulate=True` (and for
paper and backtest recordings) the `components` factory builds the trading
on the simulated exchange instead, and decides afresh.
"""

from __future__ import annotations

import bisect
import itertools
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from twinstar.bus.bus import Bus
from twinstar.bus.events import INPUT_EVENT_TYPES, CandleClosed, Event
from twinstar.bus.record import Recorder, Stream, read_stream
from twinstar.clock import Clock, SimClock
from twinstar.config import Config
from twinstar.divergence.compare import DECISION_TYPES, compare
from twinstar.kernel import Component, Kernel

if TYPE_CHECKING:
    from twinstar.replay.pipeline import RecordedVenues

ComponentsFactory = Callable[[Config, Clock], Sequence[Component]]


class ReplaySummary(msgspec.Struct, frozen=True, kw_only=True):
    """What a replay read and produced."""

    input_events: int
    output_events: int
    counts: dict[str, int]
    torn_tail: bool
    elapsed_s: float
    output: str
    #: Who answered the orders: "recorded" (a live recording's own answers) or "simulated".
    venue: str = "simulated"


class ReplayDivergedError(Exception):
    """The replayed kernel decided what the live recording did not; the message says where, in one line."""


class _Counter:
    def __init__(self, *, keep_decisions: bool = False) -> None:
        self.counts: Counter[str] = Counter()
        self.keep_decisions = keep_decisions
        self.decisions: list[Event] = []  # kept against a live recording's, to tell where they part

    def attach(self, bus: Bus) -> None:
        bus.subscribe(Event, self.handle, name="ReplayCounter")
        if self.keep_decisions:
            for kind in DECISION_TYPES:
                bus.subscribe(kind, self.decisions.append, name="ReplayDecisions")

    def handle(self, event: Event) -> None:
        self.counts[type(event).__name__] += 1


def _departure(recorded: list[Event], replayed: list[Event], why: str = "") -> str:
    """One line saying where `replayed` departs from `recorded`; "" when they agree and there is no `why`."""
    divergence = compare(recorded, replayed)
    if divergence.index < 0 and not why:
        return ""
    where = (
        f"first differing decision #{divergence.index}: recorded {divergence.original or '(nothing)'}; "
        f"replayed {divergence.replayed or '(nothing)'}"
        if divergence.index >= 0
        else "no decision differs yet"
    )
    lead = f"{why}; " if why else ""
    return f"replay departs from the live recording: {lead}{where} (--simulate re-simulates instead)"


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


def _decisions_by_segment(events: Sequence[Event]) -> tuple[list[Event], list[int]]:
    """A recording's decisions, and how many input events it had recorded before each."""
    decisions: list[Event] = []
    segments: list[int] = []
    seen = 0
    for event in events:
        if isinstance(event, INPUT_EVENT_TYPES):
            seen += 1
        elif isinstance(event, DECISION_TYPES):
            decisions.append(event)
            segments.append(seen)
    return decisions, segments


async def replay(
    path: str | Path,
    *,
    output: str | Path | None = None,
    components: ComponentsFactory = _no_components,
    on_progress: Callable[[int], None] | None = None,
    simulate: bool = False,
    extra: ComponentsFactory = _no_components,
) -> ReplaySummary:
    """Feed the input events of `path` through a fresh replay-mode kernel.

    A live recording's orders are answered from the recording (see the module
    docstring) unless `simulate`; otherwise `components` builds the trading
    handlers from the stream's recorded config (the same factory the original
    run used). `extra` adds components either way (a run report). With
    `output`, every event of the replay is recorded there. Raise
    `ReplayDivergedError` where a replay answered from the recording departs from it.
    """
    stream = read_stream(path)
    config = Config.from_dict(stream.header.config)
    recorded: RecordedVenues | None = None
    recorded_decisions: list[Event] = []
    decision_segments: list[int] = []
    inputs: Sequence[Event]
    if stream.header.meta.get("kind") == "live" and not simulate:
        from twinstar.replay.answers import index_answers  # the handlers: not imported by `import twinstar`
        from twinstar.replay.pipeline import RecordedVenues

        events = list(stream)
        inputs, answers = index_answers(events)
        recorded, file_backed = RecordedVenues(answers), False
        recorded_decisions, decision_segments = _decisions_by_segment(events)
    else:
        inputs, file_backed = _inputs(stream)
    clock = SimClock(inputs[0].ts_ns if inputs else 0, autojump=True)
    counter = _Counter(keep_decisions=recorded is not None)
    trading = recorded(config, clock) if recorded is not None else components(config, clock)
    parts: list[Component] = [*trading, *extra(config, clock), counter]
    if output is not None:
        skip = (CandleClosed,) if file_backed else ()
        parts.insert(0, Recorder(output, config=stream.header.config, meta=dict(stream.header.meta), skip=skip))
    started = time.perf_counter()
    async with Kernel(config, clock=clock, components=parts, mode="replay") as kernel:
        emit = kernel.bus.emit
        for index, event in enumerate(inputs, 1):
            clock.set_ns(event.ts_ns)
            if recorded is not None:
                recorded.at_input(index)
            pending = emit(event)
            if pending is not None:
                await pending
            if recorded is not None:
                await recorded.after_input()
                if recorded.departure:  # against what live had decided by this input
                    so_far = recorded_decisions[: bisect.bisect_right(decision_segments, index)]
                    raise ReplayDivergedError(_departure(so_far, counter.decisions, recorded.departure))
            if on_progress is not None and index % 10_000 == 0:
                on_progress(index)
    departed = _departure(recorded_decisions, counter.decisions) if recorded is not None else ""
    if departed:
        raise ReplayDivergedError(departed)
    return ReplaySummary(
        input_events=len(inputs),
        output_events=sum(counter.counts.values()),
        counts=dict(sorted(counter.counts.items())),
        torn_tail=stream.torn_tail,
        elapsed_s=time.perf_counter() - started,
        output=str(output or ""),
        venue="recorded" if recorded is not None else "simulated",
    )
