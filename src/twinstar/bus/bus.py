"""The in-process event bus.

Two dispatch modes share one API:

* ``live``: every subscriber has a bounded mailbox drained by its own task in
  the kernel's task group, so subscribers run concurrently and a slow one only
  holds up publishers once its mailbox is full (backpressure, never a drop).
* ``replay``: no tasks. `publish` runs every handler of an event to completion
  before returning, and events published from inside a handler are queued and
  dispatched, in publish order, before the outer `publish` returns. The same
  input therefore yields the same output, event for event.

Either way a handler that raises is logged, reported as `HandlerFailed`, and
keeps receiving events.

A handler is an async callable, or a plain callable that returns None or an
awaitable (the bus awaits it). The second form is for hot paths: most candles
need no I/O, and a handler that only awaits when it has to saves building a
coroutine for every event. `emit` is the same idea on the publishing side:
it delivers at once and hands back an awaitable only when it must wait.

Live delivery is eager: a subscriber whose mailbox is empty and whose
handler is not running is called right away, in the publisher's turn, and its
task is woken only if the call returned something to await. Most candles
thus cost no task switch at all, which is what keeps the frame-to-order path
short while many symbols close at once. Order is kept: a subscriber with
anything queued or running gets the event in its mailbox, behind the others,
and every subscriber of an event is claimed before any of them runs, so an
event published from inside a handler reaches each subscriber after the one
being delivered. Bookkeeping off the decision path (storage, recording, logs)
subscribes with `eager=False` and always goes through its mailbox: it runs
after the decisions of a burst of events, once for all of them.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable, Coroutine, Generator
from types import CoroutineType, coroutine
from typing import Any, Final, Literal, Protocol, TypeAlias, TypeVar

import anyio.abc

from twinstar.bus.events import Event, HandlerFailed
from twinstar.clock import Clock
from twinstar.compiled import mypyc_attr

log: Final = logging.getLogger("twinstar.bus")

E = TypeVar("E", bound=Event)
E_contra = TypeVar("E_contra", bound=Event, contravariant=True)
HandlerFn: TypeAlias = Callable[[Any], Awaitable[None] | None]
BusMode: TypeAlias = Literal["live", "replay"]


class HasHandle(Protocol[E_contra]):
    """An object whose `handle` receives events (async, or returning None or an awaitable)."""

    def handle(self, event: E_contra, /) -> Awaitable[None] | None: ...


@coroutine
def _finish(coro: Coroutine[Any, Any, None], yielded: Any) -> Generator[Any, Any, None]:
    """Go on with a coroutine already run up to its first suspension, exactly as `await coro` would.

    `yielded` is what it suspended on: it goes to the awaiting task, and what the
    task sends or throws back goes into the coroutine (PEP 380's `yield from`).
    """
    while True:
        try:
            sent = yield yielded
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:
            try:
                yielded = coro.throw(exc)
            except StopIteration:
                return
        else:
            try:
                yielded = coro.send(sent)
            except StopIteration:
                return


@mypyc_attr(native_class=False)  # compiled by mypyc, a RuntimeError subclass must stay a Python class
class BusClosedError(RuntimeError):
    """Raised by `publish` after the bus was closed."""


def _describe(handler: object) -> str:
    owner = getattr(handler, "__self__", None)
    name = getattr(handler, "__qualname__", None) or type(handler).__qualname__
    if owner is not None:
        return f"{type(owner).__qualname__}.{getattr(handler, '__name__', name)}"
    return name


class Subscription:
    """One handler subscribed to one event type, with its mailbox in live mode."""

    __slots__ = (
        "_busy",
        "_eager",
        "_reserved",
        "_space_waiters",
        "_wake",
        "closed",
        "eager",
        "event_type",
        "fn",
        "items",
        "name",
        "series",
    )

    def __init__(
        self, event_type: type[Event], fn: HandlerFn, name: str, series: tuple[str, str] | None, eager: bool
    ) -> None:
        self.event_type = event_type
        self.fn = fn
        self.name = name
        self.series = series  # (exchange, symbol): only that series' events, or None for all
        self.eager = eager  # live: may be called in the publisher's turn when idle
        self.closed = False
        self.items: collections.deque[Event] = collections.deque()
        self._wake: asyncio.Future[None] | None = None
        self._space_waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._reserved = 0  # slots promised to publishers woken from a full mailbox
        self._busy = False  # live: its handler is running (in its task, or called eagerly by a publisher)
        # What an eager call returned, with its event, for the task to await before anything queued.
        self._eager: tuple[Awaitable[None], Event] | None = None

    def __repr__(self) -> str:
        return f"Subscription({self.event_type.__name__} -> {self.name}, queued={len(self.items)})"


class Bus:
    """Routes events by type to async handlers; see the module docstring."""

    def __init__(self, clock: Clock, *, mode: BusMode = "live", mailbox_size: int = 1024) -> None:
        if mailbox_size < 1:
            raise ValueError("mailbox_size must be at least 1")
        self.clock = clock
        self.mode: Final = mode
        self._replay: Final = mode == "replay"
        self.mailbox_size: Final = mailbox_size
        self._subs: list[Subscription] = []
        self._routes: dict[type[Event], tuple[Subscription, ...]] = {}
        self._per_series: set[type[Event]] = set()  # event types with a subscriber bound to one series
        self._task_group: anyio.abc.TaskGroup | None = None
        self._closed = False
        # live: events queued or being handled, over all mailboxes
        self._in_flight = 0
        self._idle_waiters: list[asyncio.Future[None]] = []
        # replay: events published from inside a handler, waiting their turn
        self._backlog: collections.deque[Event] = collections.deque()
        self._dispatching = False

    # -- subscription ------------------------------------------------------

    def subscribe(
        self,
        event_type: type[E],
        handler: Callable[[E], Awaitable[None] | None] | HasHandle[E],
        *,
        name: str | None = None,
        series: tuple[str, str] | None = None,
        eager: bool = True,
    ) -> Subscription:
        """Deliver every event of `event_type` (or a subclass) to `handler`.

        `handler` is a callable or an object with a `handle` method; either is
        async, or returns None or an awaitable that the bus awaits. Subscribing
        to `Event` receives everything (recorders do this). `series`, an
        (exchange, symbol) pair, delivers only the events of that series: a
        handler per symbol is not woken for the other symbols' events.
        `eager=False` keeps a live handler off the publisher's turn: always
        through its mailbox, for bookkeeping that is no part of a decision
        (storage, recording, logs), which then runs after the decisions of a
        burst of events, once for all of them.
        """
        fn: HandlerFn
        handle = getattr(handler, "handle", None)
        if callable(handle):
            fn = handle
        elif callable(handler):
            fn = handler
        else:
            raise TypeError(f"{handler!r} is neither callable nor an object with a handle() method")
        sub = Subscription(event_type, fn, name or _describe(fn), series, eager)
        self._subs.append(sub)
        self._routes.clear()
        if self._task_group is not None and self.mode == "live":
            self._task_group.start_soon(self._drain_mailbox, sub, name=f"twinstar-bus:{sub.name}")
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop delivering to `sub`; events still queued for it are discarded."""
        if sub in self._subs:
            self._subs.remove(sub)
            self._routes.clear()
        sub.closed = True
        self._in_flight -= len(sub.items)
        sub.items.clear()
        self._wake(sub)
        self._notify_idle()

    def _route(self, event_type: type[Event]) -> tuple[Subscription, ...]:
        subs = tuple(s for s in self._subs if issubclass(event_type, s.event_type))
        self._routes[event_type] = subs
        if any(s.series is not None for s in subs):
            self._per_series.add(event_type)
        else:
            self._per_series.discard(event_type)
        return subs

    def _subs_for(self, event: Event) -> tuple[Subscription, ...]:
        """The subscribers `event` goes to, in subscription order."""
        subs = self._routes.get(type(event))
        if subs is None:
            subs = self._route(type(event))
        if type(event) in self._per_series:
            series = (getattr(event, "exchange", None), getattr(event, "symbol", None))
            subs = tuple(s for s in subs if s.series is None or s.series == series)
        return subs

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        """Every live subscription, in subscription order."""
        return tuple(self._subs)

    # -- lifecycle ---------------------------------------------------------

    def start(self, task_group: anyio.abc.TaskGroup) -> None:
        """Live mode: start one mailbox task per subscriber in `task_group`."""
        self._task_group = task_group
        if self.mode == "live":
            for sub in self._subs:
                task_group.start_soon(self._drain_mailbox, sub, name=f"twinstar-bus:{sub.name}")

    def close(self) -> None:
        """Refuse further publishes; queued events are still delivered."""
        self._closed = True

    @property
    def closed(self) -> bool:
        """Whether `close` was called."""
        return self._closed

    # -- publishing --------------------------------------------------------

    async def publish(self, event: Event) -> None:
        """Deliver `event` to its subscribers.

        Live: returns once every subscriber's mailbox holds it, waiting while a
        mailbox is full. Replay: returns once it and everything it caused ran.
        """
        if not self._replay or self._dispatching:
            pending = self.emit(event)
            if pending is not None:
                await pending
            return
        if self._closed:
            raise BusClosedError(f"bus closed; cannot publish {type(event).__name__}")
        subs = self._subs_for(event)
        if not subs:
            return
        # The outermost replay publish: async handlers are awaited right here, in place (this
        # loop is `_run_subs` inlined, since every input event of a replay passes through it).
        self._dispatching = True
        try:
            for sub in subs:
                try:
                    pending = sub.fn(event)
                    if pending is not None:
                        await pending
                except Exception as exc:
                    self._report_failure(sub, event, exc)
            if self._backlog:
                await self._run_backlog()
        finally:
            self._finish_dispatch()

    def emit(self, event: Event) -> Awaitable[None] | None:
        """Deliver `event` as far as possible without waiting.

        Returns None when `publish` would have had nothing left to wait for,
        otherwise an awaitable that finishes the delivery: await it before
        emitting again (a live mailbox is full, or a replay handler awaits).
        """
        if self._closed:
            raise BusClosedError(f"bus closed; cannot publish {type(event).__name__}")
        subs = self._routes.get(type(event))
        if subs is None:
            subs = self._route(type(event))
        if type(event) in self._per_series:
            subs = self._subs_for(event)
        if not subs:
            return None
        if not self._replay:
            for sub in subs:
                if len(sub.items) + sub._reserved >= self.mailbox_size or sub._space_waiters:
                    return self._publish_live(event, subs)
            if self._task_group is None:  # not started: the mailboxes hold it until their tasks run
                for sub in subs:
                    if not sub.closed:
                        self._enqueue(sub, event)
                return None
            self._deliver_eagerly(event, subs)
            return None
        if self._dispatching:  # published from inside a handler: its turn comes after the current event
            self._backlog.append(event)
            return None
        # Run-to-completion, synchronously for as long as no handler needs to await.
        # This is the replay hot path: one pass per input event, kept inline on purpose.
        self._dispatching = True
        backlog = self._backlog
        try:
            while True:
                for sub in subs:
                    try:
                        pending = sub.fn(event)
                        if type(pending) is CoroutineType:
                            # Run an async handler's first step now, as an eager task would: most finish
                            # without suspending, and then no coroutine is needed to wait for them.
                            try:
                                yielded = pending.send(None)
                            except StopIteration:
                                continue
                            pending = _finish(pending, yielded)
                    except Exception as exc:
                        self._report_failure(sub, event, exc)
                        continue
                    if pending is not None:
                        return self._run_rest(pending, event, subs, subs.index(sub))
                if not backlog:
                    break
                event = backlog.popleft()
                subs = self._subs_for(event)
        except BaseException:
            self._finish_dispatch()
            raise
        self._dispatching = False
        if self._idle_waiters:
            self._notify_idle()
        return None

    # -- replay dispatch -----------------------------------------------------

    async def _run_rest(
        self, pending: Awaitable[None], event: Event, subs: tuple[Subscription, ...], index: int
    ) -> None:
        """Finish what `emit` started: await that handler, then the rest and the backlog, in order."""
        try:
            try:
                await pending
            except Exception as exc:
                self._report_failure(subs[index], event, exc)
            await self._run_subs(event, subs[index + 1 :])
            await self._run_backlog()
        finally:
            self._finish_dispatch()

    async def _run_subs(self, event: Event, subs: tuple[Subscription, ...]) -> None:
        for sub in subs:
            try:
                pending = sub.fn(event)
                if pending is not None:
                    await pending
            except Exception as exc:
                self._report_failure(sub, event, exc)

    async def _run_backlog(self) -> None:
        backlog = self._backlog
        while backlog:
            event = backlog.popleft()
            await self._run_subs(event, self._subs_for(event))

    def _finish_dispatch(self) -> None:
        self._dispatching = False
        if self._idle_waiters:
            self._notify_idle()

    # -- live dispatch -------------------------------------------------------

    async def _publish_live(self, event: Event, subs: tuple[Subscription, ...]) -> None:
        for sub in subs:
            if sub.closed:
                continue
            if len(sub.items) + sub._reserved >= self.mailbox_size or sub._space_waiters:
                await self._wait_for_space(sub)
            else:
                self._enqueue(sub, event)
                continue
            sub._reserved -= 1
            if not sub.closed:
                self._enqueue(sub, event)

    def _deliver_eagerly(self, event: Event, subs: tuple[Subscription, ...]) -> None:
        """Call each idle subscriber now and queue the event for the others (see the module docstring)."""
        idle: list[Subscription] = []
        for sub in subs:
            if sub.closed:
                continue
            if sub.items or sub._busy or not sub.eager:
                self._enqueue(sub, event)
            else:
                sub._busy = True  # claimed first: an event published by a handler below queues behind this one
                idle.append(sub)
        self._in_flight += len(idle)
        for sub in idle:
            try:
                pending = sub.fn(event)
            except Exception as exc:
                self._report_failure(sub, event, exc)
                pending = None
            if pending is None:
                self._done_with(sub)
            else:  # its task awaits the rest, before anything queued behind it
                sub._eager = (pending, event)
                self._wake(sub)

    def _done_with(self, sub: Subscription) -> None:
        sub._busy = False
        self._in_flight -= 1
        if self._in_flight == 0:
            self._notify_idle()

    def _enqueue(self, sub: Subscription, event: Event) -> None:
        sub.items.append(event)
        self._in_flight += 1
        wake = sub._wake
        if wake is not None:
            sub._wake = None
            if not wake.done():
                wake.set_result(None)

    async def _wait_for_space(self, sub: Subscription) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        sub._space_waiters.append(future)
        try:
            await future
        except BaseException:
            if future.done() and not future.cancelled():
                sub._reserved -= 1  # give the promised slot to the next waiter
                self._grant_space(sub)
            else:
                sub._space_waiters.remove(future)
            raise

    def _grant_space(self, sub: Subscription) -> None:
        while sub._space_waiters and len(sub.items) + sub._reserved < self.mailbox_size:
            waiter = sub._space_waiters.popleft()
            if not waiter.done():
                sub._reserved += 1
                waiter.set_result(None)

    def _wake(self, sub: Subscription) -> None:
        wake = sub._wake
        if wake is not None:
            sub._wake = None
            if not wake.done():
                wake.set_result(None)

    async def _drain_mailbox(self, sub: Subscription) -> None:
        items = sub.items
        loop = asyncio.get_running_loop()
        fn = sub.fn
        while not sub.closed or sub._eager is not None:  # what a publisher started is finished, even when unsubscribed
            if sub._eager is not None:
                rest, event = sub._eager
                sub._eager = None
                try:
                    await rest
                except Exception as exc:
                    self._report_failure(sub, event, exc)
                finally:
                    self._done_with(sub)
                continue
            if not items:
                wake: asyncio.Future[None] = loop.create_future()
                sub._wake = wake
                await wake
                continue
            event = items.popleft()
            if sub._space_waiters:
                self._grant_space(sub)
            sub._busy = True
            try:
                pending = fn(event)
                if pending is not None:
                    await pending
            except Exception as exc:
                self._report_failure(sub, event, exc)
            finally:
                self._done_with(sub)

    def _report_failure(self, sub: Subscription, event: Event, exc: Exception) -> None:
        log.error("handler %s failed on %s", sub.name, type(event).__name__, exc_info=exc)
        if isinstance(event, HandlerFailed):
            return  # a failing failure-handler must not feed itself forever
        failed = HandlerFailed(
            ts_ns=self.clock.now_ns(),
            handler=sub.name,
            event_type=type(event).__name__,
            error=f"{type(exc).__name__}: {exc}",
        )
        # Not `publish`: a handler must never block on its own full mailbox.
        # The report goes past the bound instead; it is rare and never dropped.
        if self.mode == "replay":
            self._backlog.append(failed)
            return
        subs = self._routes.get(HandlerFailed)
        if subs is None:
            subs = self._route(HandlerFailed)
        for target in subs:
            if not target.closed:
                self._enqueue(target, failed)

    # -- quiescence --------------------------------------------------------

    @property
    def is_idle(self) -> bool:
        """True when no event is queued and no handler is running."""
        if self.mode == "replay":
            return not self._dispatching and not self._backlog
        return self._in_flight == 0

    async def idle(self) -> None:
        """Return once every mailbox is empty and no handler is running.

        Do not await this from inside a handler: that handler is itself running.
        """
        while not self.is_idle:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._idle_waiters.append(future)
            try:
                await future
            finally:
                if future in self._idle_waiters:
                    self._idle_waiters.remove(future)

    def _notify_idle(self) -> None:
        if self._idle_waiters and self.is_idle:
            waiters, self._idle_waiters = self._idle_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def __repr__(self) -> str:
        pending = len(self._backlog) if self.mode == "replay" else self._in_flight
        return f"Bus(mode={self.mode!r}, subscriptions={len(self._subs)}, pending={pending}, closed={self._closed})"
