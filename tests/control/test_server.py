"""The control server without a venue: loopback-only without a token, and it ends its streams on stop."""

from __future__ import annotations

import json

import aiohttp
import pytest

from tests.pipeline.harness import Tap
from twinstar import Config, Kernel
from twinstar.bus.events import EntriesPaused
from twinstar.clock import LiveClock
from twinstar.control import operations_components
from twinstar.control.server import ControlServer

pytestmark = pytest.mark.anyio


async def test_without_a_token_only_loopback_names_are_served_and_streams_end_with_the_kernel() -> None:
    config = Config.from_toml("[control]\nenabled = true\nport = 0\npush_interval_s = 0.01")
    clock = LiveClock()
    parts = operations_components(config, clock, [])
    [server] = [p for p in parts if isinstance(p, ControlServer)]
    tap = Tap()
    async with Kernel(config, clock=clock, components=[tap, *parts]) as kernel, aiohttp.ClientSession() as http:
        async with http.get(f"{server.url}/api/status") as reply:
            assert reply.status == 200 and (await reply.json())["kernel"] == "running"
        # A page elsewhere that rebinds its own name to 127.0.0.1 sends its name as Host: refused.
        async with http.get(f"{server.url}/api/status", headers={"Host": "evil.example:8787"}) as reply:
            assert reply.status == 421
        async with http.post(
            f"{server.url}/api/pause", json={"reason": "x"}, headers={"Host": "evil.example"}
        ) as reply:
            assert reply.status == 421
        async with http.get(f"{server.url}/api/stream") as stream:
            first = json.loads((await stream.content.readuntil(b"\n\n")).removeprefix(b"data: "))
            assert first["entries"] == "open"
            async with http.post(f"{server.url}/api/pause", json={"reason": "tea"}) as reply:
                assert reply.status == 202
            for _ in range(20):  # the stream sends the change (after its pacing), with the pause in it
                update = json.loads((await stream.content.readuntil(b"\n\n")).removeprefix(b"data: "))
                if update["entries"] == "paused":
                    break
            assert (update["entries"], update["entries_reason"]) == ("paused", "tea")
            await kernel.stop("test done")  # with the stream still open: it ends, the kernel does not hang
            assert await stream.content.read() == b""
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectionError):
            await http.get(f"{server.url}/api/status")
    assert server.commands == 1
    [paused] = tap.of(EntriesPaused)
    assert (paused.reason, paused.source) == ("tea", "api")  # type: ignore[attr-defined]
