from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import anyio
import anyio.lowlevel
import msgspec
import pytest

from tests.kernel.helpers import candle, signal
from twinstar.bus.bus import Bus, BusClosedError
from twinstar.bus.events import CandleClosed, Event, HandlerFailed, SignalFired
from twinstar.clock import SimClock

pytestmark = pytest.mark.anyio


async def test_each_subscriber_sees_events_in_publish_order_live() -> None:
    bus = Bus(SimClock(), mode="live", mailbox_size=4)
    seen: list[int] = []

    async def jittery(event: CandleClosed) -> None:
        for _ in range(event.open_time_ms // 60_000 % 3):
            await asyncio.sleep(0)  # suspend a varying number of times
        seen.append(event.open_time_ms // 60_000)

    bus.subscribe(CandleClosed, jittery)
    async with anyio.create_task_group() as tg:
        bus.start(tg)
        for i in range(50):
            await bus.publish(candle(i))
        await bus.idle()
        tg.cancel_scope.cancel()
    assert seen == list(range(50))


async def test_full_mailbox_makes_the_publisher_wait_and_drops_nothing() -> None:
    bus = Bus(SimClock(), mode="live", mailbox_size=2)
    gate = anyio.Event()
    slow_seen: list[int] = []
    fast_seen: list[int] = []

    async def slow(event: CandleClosed) -> None:
        await gate.wait()
        slow_seen.append(event.open_time_ms // 60_000)

    async def fast(event: CandleClosed) -> None:
        fast_seen.append(event.open_time_ms // 60_000)

    bus.subscribe(CandleClosed, slow)
    bus.subscribe(CandleClosed, fast)
    published: list[int] = []

    async def producer() -> None:
        for i in range(6):
            await bus.publish(candle(i))
            published.append(i)

    async with anyio.create_task_group() as tg:
        bus.start(tg)
        tg.start_soon(producer)
        for _ in range(20):
            await asyncio.sleep(0)
        # slow holds event 0 in its handler and 2 in its mailbox; the third waits.
        assert published == [0, 1, 2]
        assert fast_seen == [0, 1, 2]  # the fast subscriber is not stalled beyond the bound
        assert len(bus.subscriptions[0].items) == 2
        gate.set()
        await bus.idle()
        tg.cancel_scope.cancel()
    assert published == list(range(6))
    assert slow_seen == list(range(6))
    assert fast_seen == list(range(6))


@pytest.mark.parametrize("mode", ["live", "replay"])
async def test_a_raising_handler_is_reported_and_keeps_receiving(mode: str) -> None:
    bus = Bus(SimClock(7), mode=mode, mailbox_size=8)  # type: ignore[arg-type]
    received: list[int] = []
    failures: list[HandlerFailed] = []

    async def flaky(event: CandleClosed) -> None:
        received.append(event.open_time_ms // 60_000)
        if event.open_time_ms == 60_000:
            raise ValueError("bad candle")

    async def on_failure(event: HandlerFailed) -> None:
        failures.append(event)

    bus.subscribe(CandleClosed, flaky, name="flaky")
    bus.subscribe(HandlerFailed, on_failure)
    async with anyio.create_task_group() as tg:
        bus.start(tg)
        for i in range(3):
            await bus.publish(candle(i))
        await bus.idle()
        tg.cancel_scope.cancel()
    assert received == [0, 1, 2]
    assert failures == [
        HandlerFailed(ts_ns=7, handler="flaky", event_type="CandleClosed", error="ValueError: bad candle")
    ]


async def test_replay_runs_each_event_to_completion_in_publish_order() -> None:
    bus = Bus(SimClock(), mode="replay")
    log: list[str] = []

    async def strategy(event: CandleClosed) -> None:
        log.append(f"strategy saw candle {event.open_time_ms // 60_000}")
        await bus.publish(signal(event.open_time_ms // 60_000))
        log.append("strategy done")

    async def recorder(event: Event) -> None:
        log.append(f"recorder saw {type(event).__name__}")

    async def execution(event: SignalFired) -> None:
        log.append(f"execution saw signal {event.ts_ns}")

    bus.subscribe(CandleClosed, strategy)
    bus.subscribe(Event, recorder)
    bus.subscribe(SignalFired, execution)
    await bus.publish(candle(1))
    assert bus.is_idle
    await bus.publish(candle(2))
    # The nested signal waits until candle 1 reached every subscriber (FIFO for
    # the recorder), and everything finished before publish returned.
    assert log == [
        "strategy saw candle 1",
        "strategy done",
        "recorder saw CandleClosed",
        "recorder saw SignalFired",
        "execution saw signal 1",
        "strategy saw candle 2",
        "strategy done",
        "recorder saw CandleClosed",
        "recorder saw SignalFired",
        "execution saw signal 2",
    ]


async def test_live_subscribers_run_concurrently() -> None:
    # Each handler waits for the other: only concurrent dispatch can finish.
    bus = Bus(SimClock(), mode="live")
    a_started, b_started = anyio.Event(), anyio.Event()

    async def a(event: CandleClosed) -> None:
        a_started.set()
        await b_started.wait()

    async def b(event: CandleClosed) -> None:
        b_started.set()
        await a_started.wait()

    bus.subscribe(CandleClosed, a)
    bus.subscribe(CandleClosed, b)
    async with anyio.create_task_group() as tg:
        bus.start(tg)
        await bus.publish(candle(0))
        with anyio.fail_after(2):
            await bus.idle()
        tg.cancel_scope.cancel()


async def test_objects_with_async_handle_subscribe_and_non_callables_are_refused() -> None:
    bus = Bus(SimClock(), mode="replay")

    class Counter:
        def __init__(self) -> None:
            self.n = 0

        async def handle(self, event: CandleClosed) -> None:
            self.n += 1

    counter = Counter()
    bus.subscribe(CandleClosed, counter)
    await bus.publish(candle(0))
    assert counter.n == 1
    with pytest.raises(TypeError, match="neither callable nor an object with a handle"):
        bus.subscribe(CandleClosed, 42)  # type: ignore[arg-type]


async def test_replay_runs_plain_handlers_without_suspending_and_awaits_what_they_return() -> None:
    bus = Bus(SimClock(), mode="replay")
    log: list[str] = []

    def plain(event: CandleClosed) -> None:
        log.append(f"plain {event.open_time_ms // 60_000}")

    def sometimes_awaits(event: CandleClosed) -> Awaitable[None] | None:
        n = event.open_time_ms // 60_000
        log.append(f"eager {n}")
        if n % 2:
            return None

        async def later() -> None:
            await asyncio.sleep(0)  # a real suspension: the bus must finish it before going on
            log.append(f"awaited {n}")
            await bus.publish(signal(n))

        return later()

    async def on_signal(event: SignalFired) -> None:
        log.append(f"signal {event.candle_open_time_ms // 60_000}")

    bus.subscribe(CandleClosed, sometimes_awaits)
    bus.subscribe(CandleClosed, plain)
    bus.subscribe(SignalFired, on_signal)
    assert bus.emit(candle(1)) is None  # nothing to wait for: delivered before emit returned
    pending = bus.emit(candle(2))
    assert pending is not None
    assert not bus.is_idle
    await pending
    assert bus.is_idle
    assert log == ["eager 1", "plain 1", "eager 2", "awaited 2", "plain 2", "signal 2"]


async def test_a_plain_handler_that_raises_is_reported_like_an_async_one() -> None:
    bus = Bus(SimClock(), mode="replay")
    failures: list[HandlerFailed] = []

    def broken(event: CandleClosed) -> None:
        raise ValueError("bad candle")

    bus.subscribe(CandleClosed, broken, name="broken")
    bus.subscribe(HandlerFailed, failures.append)
    assert bus.emit(candle(0)) is None
    assert failures == [
        HandlerFailed(ts_ns=0, handler="broken", event_type="CandleClosed", error="ValueError: bad candle")
    ]


async def test_live_emit_calls_an_idle_plain_handler_at_once_and_hands_back_the_wait_only_when_full() -> None:
    bus = Bus(SimClock(), mode="live", mailbox_size=1)
    seen: list[int] = []
    gate = anyio.Event()

    def handler(event: CandleClosed) -> Awaitable[None] | None:
        seen.append(event.open_time_ms // 60_000)
        return gate.wait() if event.open_time_ms == 0 else None  # candle 0 keeps the handler busy

    bus.subscribe(CandleClosed, handler)
    async with anyio.create_task_group() as tg:
        bus.start(tg)
        assert bus.emit(candle(0)) is None  # idle: called at once, in the publisher's turn
        assert seen == [0]
        assert bus.emit(candle(1)) is None  # busy: queued, room in the mailbox
        pending = bus.emit(candle(2))  # the mailbox holds candle 1
        assert pending is not None and seen == [0]
        gate.set()
        await pending
        await bus.idle()
        assert bus.emit(candle(3)) is None and seen == [0, 1, 2, 3]  # idle again: at once
        tg.cancel_scope.cancel()


async def test_an_event_published_by_an_eager_handler_reaches_every_subscriber_after_the_one_delivered() -> None:
    bus = Bus(SimClock(), mode="live")
    order: list[tuple[str, str]] = []

    def first(event: Event) -> None:
        order.append(("first", type(event).__name__))
        if isinstance(event, CandleClosed):
            assert bus.emit(signal(event.open_time_ms)) is None

    bus.subscribe(Event, first, name="first")
    bus.subscribe(Event, lambda event: order.append(("second", type(event).__name__)), name="second")
    async with anyio.create_task_group() as tg:
        bus.start(tg)
        await bus.publish(candle(0))
        await bus.idle()
        tg.cancel_scope.cancel()
    assert [name for who, name in order if who == "second"] == ["CandleClosed", "SignalFired"]
    assert [name for who, name in order if who == "first"] == ["CandleClosed", "SignalFired"]


async def test_a_subscriber_that_is_not_eager_runs_after_the_publishers_turn_once_for_a_burst() -> None:
    bus = Bus(SimClock(), mode="live")
    decided: list[int] = []
    kept: list[tuple[int, int]] = []  # (candle, decisions made when the bookkeeper saw it)
    bus.subscribe(CandleClosed, lambda event: decided.append(event.open_time_ms // 60_000), name="strategy")
    bus.subscribe(
        CandleClosed,
        lambda event: kept.append((event.open_time_ms // 60_000, len(decided))),
        name="storage",
        eager=False,
    )
    async with anyio.create_task_group() as tg:
        bus.start(tg)
        await anyio.lowlevel.checkpoint()  # the mailbox tasks are waiting
        for i in range(3):  # a burst, as when many symbols close at once
            assert bus.emit(candle(i)) is None
        assert decided == [0, 1, 2] and kept == []  # decisions first, in the publisher's turn
        await bus.idle()
        tg.cancel_scope.cancel()
    assert kept == [(0, 3), (1, 3), (2, 3)]  # then the bookkeeping, in publish order


async def test_unsubscribing_while_an_eager_call_still_awaits_lets_it_finish_and_the_bus_go_idle() -> None:
    bus = Bus(SimClock(), mode="live")
    gate = anyio.Event()
    finished: list[int] = []

    async def finish(event: CandleClosed) -> None:
        await gate.wait()
        finished.append(event.open_time_ms)

    sub = bus.subscribe(CandleClosed, finish)
    async with anyio.create_task_group() as tg:
        bus.start(tg)
        await anyio.lowlevel.checkpoint()
        assert bus.emit(candle(0)) is None  # called at once; its coroutine goes to the task
        bus.unsubscribe(sub)
        gate.set()
        with anyio.fail_after(5):
            await bus.idle()
        tg.cancel_scope.cancel()
    assert finished == [0]


async def test_publishing_without_subscribers_is_a_no_op_and_closed_bus_refuses() -> None:
    bus = Bus(SimClock(), mode="live")
    await bus.publish(candle(0))
    assert bus.is_idle
    bus.close()
    with pytest.raises(BusClosedError):
        await bus.publish(candle(1))


async def test_a_publisher_cancelled_while_waiting_for_space_leaves_the_bus_consistent() -> None:
    bus = Bus(SimClock(), mode="live", mailbox_size=1)
    gate = anyio.Event()
    seen: list[int] = []

    async def slow(event: CandleClosed) -> None:
        await gate.wait()
        seen.append(event.open_time_ms // 60_000)

    bus.subscribe(CandleClosed, slow)
    async with anyio.create_task_group() as tg:
        bus.start(tg)
        await bus.publish(candle(0))
        await asyncio.sleep(0)  # the worker takes event 0 and blocks
        await bus.publish(candle(1))  # fills the mailbox
        with anyio.move_on_after(0.05):
            await bus.publish(candle(2))  # waits for space, then gives up
        gate.set()
        await bus.publish(candle(3))
        await bus.idle()
        tg.cancel_scope.cancel()
    assert seen == [0, 1, 3]


async def test_unsubscribe_stops_delivery() -> None:
    bus = Bus(SimClock(), mode="replay")
    seen: list[int] = []

    async def handler(event: CandleClosed) -> None:
        seen.append(event.open_time_ms)

    sub = bus.subscribe(CandleClosed, handler)
    await bus.publish(candle(0))
    bus.unsubscribe(sub)
    await bus.publish(candle(1))
    assert seen == [0]


async def test_an_async_handler_that_suspends_is_finished_in_order_and_its_late_failure_reported() -> None:
    bus = Bus(SimClock(), mode="replay")
    log: list[str] = []
    gate = asyncio.get_running_loop().create_future()

    async def waits(event: CandleClosed) -> None:
        log.append("first step")
        log.append(f"woke with {await gate}")
        raise ValueError("after waking")

    bus.subscribe(CandleClosed, waits, name="waits")
    bus.subscribe(CandleClosed, lambda event: log.append("next subscriber"))
    bus.subscribe(HandlerFailed, lambda event: log.append(event.error))
    pending = bus.emit(candle(0))
    assert log == ["first step"]  # ran eagerly up to its suspension, the next subscriber waits its turn
    assert pending is not None
    asyncio.get_running_loop().call_soon(gate.set_result, "42")
    await pending
    assert log == ["first step", "woke with 42", "next subscriber", "ValueError: after waking"]
    assert bus.is_idle


async def test_cancelling_a_publisher_reaches_the_suspended_handler_and_frees_the_bus() -> None:
    bus = Bus(SimClock(), mode="replay")
    log: list[str] = []

    async def waits(event: CandleClosed) -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            log.append("handler cleaned up")

    bus.subscribe(CandleClosed, waits)
    publisher = asyncio.ensure_future(bus.publish(candle(0)))
    await asyncio.sleep(0)
    assert not bus.is_idle
    publisher.cancel()
    with pytest.raises(asyncio.CancelledError):
        await publisher
    assert log == ["handler cleaned up"]
    assert bus.is_idle


@pytest.mark.parametrize("mode", ["live", "replay"])
async def test_a_series_bound_subscriber_gets_only_its_series_and_order_is_kept(mode: str) -> None:
    bus = Bus(SimClock(), mode=mode)  # type: ignore[arg-type]
    seen: list[tuple[str, str, int]] = []

    def keep(tag: str) -> Callable[[SignalFired], None]:
        return lambda event: seen.append((tag, event.symbol, event.candle_open_time_ms // 60_000))

    bus.subscribe(SignalFired, keep("all"))
    bus.subscribe(SignalFired, keep("btc"), series=("sim", "BTC/USD"))
    bus.subscribe(SignalFired, keep("eth"), series=("sim", "ETH/USD"))
    bus.subscribe(SignalFired, keep("other venue"), series=("bybit", "BTC/USD"))
    events = [signal(0), msgspec.structs.replace(signal(1), symbol="ETH/USD"), signal(2)]
    async with anyio.create_task_group() as tg:
        bus.start(tg)
        for event in events:
            await bus.publish(event)
        await bus.idle()
        tg.cancel_scope.cancel()
    by_tag = {tag: [(s, i) for t, s, i in seen if t == tag] for tag in ("all", "btc", "eth", "other venue")}
    assert by_tag == {
        "all": [("BTC/USD", 0), ("ETH/USD", 1), ("BTC/USD", 2)],
        "btc": [("BTC/USD", 0), ("BTC/USD", 2)],
        "eth": [("ETH/USD", 1)],
        "other venue": [],
    }
    if mode == "replay":  # delivered in subscription order, event by event
        assert seen == [("all", "BTC/USD", 0), ("btc", "BTC/USD", 0), ("all", "ETH/USD", 1), ("eth", "ETH/USD", 1),
                        ("all", "BTC/USD", 2), ("btc", "BTC/USD", 2)]  # fmt: skip
