from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator

import aiohttp
import pytest
import uvloop
from aiohttp import web

from tests.kernel.helpers import candle
from twinstar import Config, Kernel
from twinstar.bus.bus import Bus
from twinstar.bus.events import CandleClosed, Event, KernelStarted, KernelStopping


class Slow:
    """A component whose handler takes a while: shutdown must still drain it."""

    def __init__(self) -> None:
        self.seen: list[int] = []
        self.stopped = False

    def attach(self, bus: Bus) -> None:
        bus.subscribe(CandleClosed, self.handle)

    async def handle(self, event: CandleClosed) -> None:
        await asyncio.sleep(0.001)
        self.seen.append(event.open_time_ms // 60_000)

    async def stop(self) -> None:
        self.stopped = True


async def _embedded_session() -> tuple[list[str], Slow]:
    before_tasks = asyncio.all_tasks()
    seen: list[str] = []
    slow = Slow()

    async def host_handler(event: Event) -> None:
        seen.append(type(event).__name__)

    async with Kernel(Config(), components=[slow]) as kernel:
        kernel.subscribe(Event, host_handler)
        for i in range(20):
            await kernel.publish(candle(i))
    assert asyncio.all_tasks() == before_tasks  # no stray tasks left behind
    assert kernel.state == "stopped"
    return seen, slow


def _assert_clean_session(seen: list[str], slow: Slow) -> None:
    assert slow.seen == list(range(20))  # every queued event was handled before exit
    assert slow.stopped
    assert seen == ["CandleClosed"] * 20 + ["KernelStopping"]


def test_kernel_embeds_in_plain_asyncio_run() -> None:
    sigint_before = signal.getsignal(signal.SIGINT)
    policy_before = asyncio.get_event_loop_policy()
    seen, slow = asyncio.run(_embedded_session())
    _assert_clean_session(seen, slow)
    assert signal.getsignal(signal.SIGINT) is sigint_before
    assert asyncio.get_event_loop_policy() is policy_before


def test_kernel_embeds_in_uvloop_run() -> None:
    seen, slow = uvloop.run(_embedded_session())
    _assert_clean_session(seen, slow)


KERNEL_KEY = web.AppKey("kernel", Kernel)


def test_kernel_embeds_in_an_aiohttp_app_cleanup_context() -> None:
    async def main() -> list[str]:
        received: list[str] = []

        async def kernel_ctx(app: web.Application) -> AsyncIterator[None]:
            async with Kernel() as kernel:

                async def on_candle(event: CandleClosed) -> None:
                    received.append(f"candle {event.open_time_ms}")

                kernel.subscribe(CandleClosed, on_candle)
                app[KERNEL_KEY] = kernel
                yield

        async def post_candle(request: web.Request) -> web.Response:
            await request.app[KERNEL_KEY].publish(candle(int(request.match_info["i"])))
            return web.Response(text="ok")

        app = web.Application()
        app.cleanup_ctx.append(kernel_ctx)
        app.router.add_post("/candle/{i}", post_candle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        loop = asyncio.get_running_loop()
        async with aiohttp.ClientSession() as http:
            for i in (1, 2):
                async with http.post(f"http://127.0.0.1:{port}/candle/{i}") as response:
                    assert response.status == 200
        await app[KERNEL_KEY].bus.idle()
        await runner.cleanup()
        assert app[KERNEL_KEY].state == "stopped"
        assert not getattr(loop, "_signal_handlers", {})  # the kernel installed none
        return received

    assert asyncio.run(main()) == ["candle 60000", "candle 120000"]


@pytest.mark.anyio
async def test_kernel_started_is_published_and_stop_is_idempotent() -> None:
    events: list[Event] = []

    class Tap:
        def attach(self, bus: Bus) -> None:
            bus.subscribe(Event, self.handle)

        async def handle(self, event: Event) -> None:
            events.append(event)

    from twinstar.clock import SimClock

    async with Kernel(clock=SimClock(42), components=[Tap()]) as kernel:
        await kernel.bus.idle()
        await kernel.stop("first")
        await kernel.stop("second")
    assert events == [KernelStarted(ts_ns=42), KernelStopping(ts_ns=42, reason="first")]
    with pytest.raises(RuntimeError, match="starts once"):
        await kernel.__aenter__()


@pytest.mark.anyio
async def test_a_component_run_task_is_cancelled_on_exit_and_request_stop_wakes_the_runner() -> None:
    class Ticker:
        def __init__(self) -> None:
            self.ticks = 0
            self.cancelled = False

        def attach(self, bus: Bus) -> None:
            pass

        async def run(self) -> None:
            try:
                while True:
                    await asyncio.sleep(0)
                    self.ticks += 1
            except asyncio.CancelledError:
                self.cancelled = True
                raise

    ticker = Ticker()
    async with Kernel(components=[ticker]) as kernel:
        for _ in range(5):
            await asyncio.sleep(0)
        kernel.request_stop()
        await kernel.run_until_stopped()
    assert ticker.ticks > 0
    assert ticker.cancelled


@pytest.mark.anyio
async def test_an_error_in_the_host_body_propagates_after_a_clean_stop() -> None:
    slow = Slow()
    with pytest.raises(ZeroDivisionError):
        async with Kernel(components=[slow]) as kernel:
            await kernel.publish(candle(0))
            1 / 0  # noqa: B018
    assert slow.seen == [0]
    assert kernel.state == "stopped"


@pytest.mark.anyio
async def test_a_component_that_fails_to_start_raises_as_itself_and_the_kernel_is_stopped() -> None:
    class Refuses:
        def attach(self, bus: Bus) -> None:
            """Nothing to subscribe."""

        async def start(self) -> None:
            raise ValueError("venue refused the settings")

    kernel = Kernel(Config(), components=[Refuses()])
    with pytest.raises(ValueError, match="venue refused the settings"):  # not an ExceptionGroup: the CLI's one line
        async with kernel:
            pytest.fail("the body must not run")
    assert kernel.state == "stopped"
