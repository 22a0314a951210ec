"""Random subscribe / publish / raise sequences against a plain-list model.

Handlers come in the three shapes the bus accepts: async, plain, and plain
returning an awaitable (which suspends, so replay leaves its eager path).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable

import anyio
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from tests.kernel.helpers import candle, signal
from twinstar.bus.bus import Bus
from twinstar.bus.events import CandleClosed, Event, HandlerFailed, SignalFired
from twinstar.clock import SimClock

TYPES: list[type[Event]] = [CandleClosed, SignalFired, HandlerFailed, Event]


class _Handler:
    def __init__(self, name: str, raises: bool) -> None:
        self.name = name
        self.raises = raises
        self.received: list[Event] = []

    def _take(self, event: Event) -> None:
        self.received.append(event)
        if self.raises and not isinstance(event, HandlerFailed):
            raise RuntimeError(self.name)

    async def __call__(self, event: Event) -> None:
        self._take(event)


class _PlainHandler(_Handler):
    def __call__(self, event: Event) -> None:  # type: ignore[override]
        self._take(event)


class _AwaitingHandler(_Handler):
    def __call__(self, event: Event) -> Awaitable[None]:  # type: ignore[override]
        return self._later(event)

    async def _later(self, event: Event) -> None:
        await asyncio.sleep(0)
        self._take(event)


SHAPES: list[type[_Handler]] = [_Handler, _PlainHandler, _AwaitingHandler]


class BusMachine(RuleBasedStateMachine):
    mode = "replay"

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.bus = Bus(SimClock(), mode=self.mode, mailbox_size=3)  # type: ignore[arg-type]
        self.handlers: list[tuple[type[Event], _Handler]] = []
        self.expected: dict[str, list[Event]] = {}
        self.counter = 0
        self.stop = asyncio.Event()
        self.host = self.loop.create_task(self._host())

    async def _host(self) -> None:
        async with anyio.create_task_group() as tg:
            self.bus.start(tg)
            await self.stop.wait()
            tg.cancel_scope.cancel()

    @rule(event_type=st.sampled_from(TYPES), raises=st.booleans(), shape=st.sampled_from(SHAPES))
    def subscribe(self, event_type: type[Event], raises: bool, shape: type[_Handler]) -> None:
        handler = shape(f"h{len(self.handlers)}", raises)

        async def go() -> None:  # a live bus starts the mailbox task in its task group
            self.bus.subscribe(event_type, handler, name=handler.name)

        self.loop.run_until_complete(go())
        self.handlers.append((event_type, handler))
        self.expected[handler.name] = []

    @rule(kind=st.sampled_from(["candle", "signal"]), burst=st.integers(1, 5), eager=st.booleans())
    def publish(self, kind: str, burst: int, eager: bool) -> None:
        events: list[Event] = []
        for _ in range(burst):
            self.counter += 1
            events.append(candle(self.counter) if kind == "candle" else signal(self.counter))

        async def go() -> None:
            for event in events:
                if eager:
                    pending = self.bus.emit(event)
                    if pending is not None:
                        await pending
                else:
                    await self.bus.publish(event)
            await self.bus.idle()

        self.loop.run_until_complete(go())
        for event in events:
            failures = []
            for event_type, handler in self.handlers:
                if isinstance(event, event_type):
                    self.expected[handler.name].append(event)
                    if handler.raises:
                        failures.append(handler.name)
            for failed_name in failures:
                for event_type, handler in self.handlers:
                    if issubclass(HandlerFailed, event_type):
                        self.expected[handler.name].append(
                            HandlerFailed(
                                ts_ns=0,
                                handler=failed_name,
                                event_type=type(event).__name__,
                                error=f"RuntimeError: {failed_name}",
                            )
                        )

    @invariant()
    def every_handler_saw_what_the_model_says(self) -> None:
        for _, handler in self.handlers:
            expected = self.expected[handler.name]
            plain = [e for e in handler.received if not isinstance(e, HandlerFailed)]
            # FIFO holds exactly for published events; failure reports of one
            # event may interleave in any order between concurrent subscribers.
            assert plain == [e for e in expected if not isinstance(e, HandlerFailed)]
            assert Counter(e for e in handler.received if isinstance(e, HandlerFailed)) == Counter(
                e for e in expected if isinstance(e, HandlerFailed)
            )
        assert self.bus.is_idle

    def teardown(self) -> None:
        self.stop.set()
        self.loop.run_until_complete(self.host)
        self.loop.close()


class LiveBusMachine(BusMachine):
    mode = "live"


TestReplayBus = BusMachine.TestCase
TestReplayBus.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)
TestLiveBus = LiveBusMachine.TestCase
TestLiveBus.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)
