"""`record --nats`: one recording of what kernels sent through NATS, which replays like a local one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import anyio
import msgspec
import pytest

from tests.bridge.helpers import until
from twinstar.bridge.recorder import NatsRecorder
from twinstar.bridge.server import NatsServer
from twinstar.bus.record import read_stream
from twinstar.candles import load_candles
from twinstar.config import BridgeConfig, Config
from twinstar.data import bundled_candles_path
from twinstar.replay import replay
from twinstar.session import run_paper, sim_components

pytestmark = pytest.mark.anyio


async def _record(url: str, path: Path, config: Config, *, stop_after: int) -> NatsRecorder:
    recorder = NatsRecorder(url, path, config=config.to_dict())
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(recorder.run)
        await until(lambda: recorder.events_written >= stop_after, f"{stop_after} events recorded")
        recorder.request_stop()
    return recorder


async def test_a_recording_from_nats_holds_the_kernel_stream_and_replays_deterministically(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    bridge = BridgeConfig(url=nats_server.url, source="paper", outbox_dir=str(tmp_path / "state"))
    config = msgspec.structs.replace(Config(), bridge=bridge)
    result = await run_paper(config, load_candles(bundled_candles_path()).frame.head(1_500), tmp_path / "run")
    local = list(read_stream(result.stream))
    recorded = tmp_path / "nats.tws"
    first = await _record(nats_server.url, recorded, config, stop_after=1)  # stops early: the next run goes on
    second = await _record(nats_server.url, recorded, config, stop_after=len(local) - first.events_written)
    assert list(read_stream(recorded)) == local  # every event once, in the kernel's order
    assert read_stream(recorded).header.config == config.to_dict()

    outputs = [tmp_path / f"replay-{name}.tws" for name in ("local", "nats", "nats-again")]
    sources: tuple[str | Path, ...] = (result.stream, recorded, recorded)
    for source, output in zip(sources, outputs, strict=True):
        await replay(source, output=output, components=sim_components)
    assert list(read_stream(outputs[1])) == list(read_stream(outputs[0]))  # the same decisions as the local one
    assert outputs[1].read_bytes() == outputs[2].read_bytes()  # and byte for byte the same each time
    assert second.sequence == len(local)


def test_a_bad_nats_url_is_one_line_on_stderr(tmp_path: Path) -> None:
    out = str(tmp_path / "x.tws")
    command = [sys.executable, "-m", "twinstar", "record", "--nats", "http://u:secret@127.0.0.1:1", "--out", out]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert (result.returncode, result.stderr) == (
        2,
        "twinstar: error: --nats must not hold credentials (user:password@): config files hold no secrets\n",
    )
