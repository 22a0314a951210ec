"""The kernel: one bus, its handlers and their tasks, in one task group.

`async with Kernel(config) as kernel:` runs inside whatever loop the host
already has (asyncio, uvloop, an aiohttp app). The kernel installs no signal
handlers, no loop policy and no logging configuration; the CLI does that.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from types import TracebackType
from typing import Any, Final, Protocol, TypeVar, runtime_checkable

import anyio
import anyio.abc

from twinstar.bus.bus import Bus, BusMode, HasHandle, Subscription
from twinstar.bus.events import Event, KernelStarted, KernelStopping
from twinstar.clock import Clock, LiveClock
from twinstar.config import Config

log: Final = logging.getLogger("twinstar.kernel")

E = TypeVar("E", bound=Event)


@runtime_checkable
class Component(Protocol):
    """A part of the kernel: subscribes its handlers when attached.

    Optional methods, called when present:
    ``async start()`` after every component is attached, before events flow;
    ``async run()`` a long-running task (a feed), started in the task group;
    ``async stop_intake()`` stop producing input (first step of shutdown);
    ``async stop()`` after the bus drained: flush, close sessions.
    """

    def attach(self, bus: Bus) -> None:
        """Subscribe this component's handlers to `bus`."""
        ...


async def _loud(run: Callable[[], Coroutine[Any, Any, None]], name: str) -> None:
    """Run a component's `run`; a cancellation that is not the kernel's becomes an error, never silence.

    A bare CancelledError leaking out of a library (a shared client cancelling
    its futures) would otherwise end every component's task without a word.
    """
    try:
        await run()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is None or task.cancelling() > 0:
            raise
        raise RuntimeError(f"{name}.run was ended by a cancellation that was not the kernel's") from None


class Kernel:
    """Builds the bus and components and owns their task group."""

    def __init__(
        self,
        config: Config | None = None,
        *,
        clock: Clock | None = None,
        components: Sequence[Component] | None = None,
        mode: BusMode = "live",
    ) -> None:
        self.config: Final = config or Config()
        self.clock: Final[Clock] = clock or LiveClock()
        self.bus: Final = Bus(self.clock, mode=mode, mailbox_size=self.config.kernel.mailbox_size)
        self.components: list[Component] = list(components) if components is not None else []
        self._task_group: anyio.abc.TaskGroup | None = None
        self._state = "new"
        self._stop_requested: anyio.Event | None = None
        self._runs = anyio.CancelScope()  # every component's `run`: ended before the bus closes
        self._runs_done = anyio.Event()

    @property
    def state(self) -> str:
        """One of new, running, stopping, stopped."""
        return self._state

    def add(self, component: Component) -> None:
        """Add a component; only before the kernel starts."""
        if self._state != "new":
            raise RuntimeError(f"cannot add a component to a {self._state} kernel")
        self.components.append(component)

    def subscribe(self, event_type: type[E], handler: Callable[[E], Awaitable[None]] | HasHandle[E]) -> Subscription:
        """Subscribe a host handler to kernel events (see `Bus.subscribe`)."""
        return self.bus.subscribe(event_type, handler)

    async def publish(self, event: Event) -> None:
        """Publish an event on the kernel's bus."""
        await self.bus.publish(event)

    async def __aenter__(self) -> Kernel:
        if self._state != "new":
            raise RuntimeError(f"a kernel starts once; this one is {self._state}")
        self._stop_requested = anyio.Event()
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._task_group = task_group
        try:
            for component in self.components:
                component.attach(self.bus)
            self.bus.start(task_group)
            for component in self.components:
                start = getattr(component, "start", None)
                if start is not None:
                    await start()
            runs = [(run, type(c).__name__) for c in self.components if (run := getattr(c, "run", None)) is not None]
            await task_group.start(self._run_components, runs)
            self._state = "running"
            await self.bus.publish(KernelStarted(ts_ns=self.clock.now_ns()))
        except BaseException as exc:
            task_group.cancel_scope.cancel()
            self._state = "stopped"
            try:
                await task_group.__aexit__(type(exc), exc, exc.__traceback__)
            except BaseExceptionGroup as group:
                if group.exceptions != (exc,):
                    raise
            # A component that failed to start raises as itself (a ConfigError stays one), not in a group.
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        try:
            await self.stop("exit" if exc is None else f"error: {type(exc).__name__}")
        finally:
            task_group = self._task_group
            if task_group is not None:
                task_group.cancel_scope.cancel()
                # The host's own exception propagates as it is (not wrapped in a
                # group); only failures of the kernel's tasks surface from here.
                await task_group.__aexit__(None, None, None)
        return None

    async def _run_components(
        self,
        runs: list[tuple[Callable[[], Coroutine[Any, Any, None]], str]],
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run the components' long tasks in a scope of their own, so `stop` can end them first."""
        try:
            with self._runs:
                async with anyio.create_task_group() as runs_group:
                    for run, name in runs:
                        runs_group.start_soon(_loud, run, name, name=f"twinstar:{name}")
                    task_status.started()
        finally:
            self._runs_done.set()

    def request_stop(self) -> None:
        """Ask `run_until_stopped` to return (safe from a signal handler)."""
        if self._stop_requested is not None:
            self._stop_requested.set()

    async def run_until_stopped(self) -> None:
        """Wait until `stop` is called (by a signal handler, a host, a handler)."""
        if self._stop_requested is not None:
            await self._stop_requested.wait()

    async def stop(self, reason: str = "stop requested") -> None:
        """Stop intake, drain the bus, flush and close components; idempotent.

        Exchange-side stop-losses are left in place: a stopped bot keeps its
        protection. The drain deadline is wall time, so a stuck handler cannot
        hold shutdown forever even under a simulated clock.
        """
        if self._state != "running":
            return
        self._state = "stopping"
        if self._stop_requested is not None:
            self._stop_requested.set()
        try:
            with anyio.CancelScope(shield=True):
                if not self.bus.closed:
                    await self.bus.publish(KernelStopping(ts_ns=self.clock.now_ns(), reason=reason))
                for component in self.components:
                    stop_intake = getattr(component, "stop_intake", None)
                    if stop_intake is not None:
                        await stop_intake()
                with anyio.move_on_after(self.config.kernel.drain_timeout_s) as scope:
                    await self.bus.idle()
                if scope.cancelled_caught:
                    log.warning("bus did not drain within %.1fs: %r", self.config.kernel.drain_timeout_s, self.bus)
                # Long tasks (upkeep, reconciliation) end before the bus closes: none may publish into a closed bus.
                self._runs.cancel()
                with anyio.move_on_after(self.config.kernel.drain_timeout_s):
                    await self._runs_done.wait()
                with anyio.move_on_after(self.config.kernel.drain_timeout_s):
                    await self.bus.idle()  # what they published on the way out
                self.bus.close()
                for component in reversed(self.components):
                    stop = getattr(component, "stop", None)
                    if stop is not None:
                        try:
                            await stop()
                        except Exception:
                            log.exception("stopping %s failed", type(component).__name__)
        finally:
            self._state = "stopped"

    def __repr__(self) -> str:
        names = ", ".join(type(c).__name__ for c in self.components)
        return f"Kernel(state={self._state!r}, clock={self.clock!r}, bus={self.bus!r}, components=[{names}])"
