"""The bridge against a real nats-server: publish with ids, drop re-sends, outlive an outage, stay optional."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.bridge.helpers import stream_messages, until
from twinstar.bridge.components import bridge_components
from twinstar.bridge.outbox import Outbox
from twinstar.bridge.publisher import Bridge
from twinstar.bridge.server import NatsServer
from twinstar.bus.events import CandleClosed, KernelStarted, KernelStopping
from twinstar.clock import LiveClock
from twinstar.config import BridgeConfig, Config
from twinstar.kernel import Kernel

pytestmark = pytest.mark.anyio


def _candle(index: int) -> CandleClosed:
    return CandleClosed(
        ts_ns=index,
        exchange="binanceusdm",
        symbol="BTC/USDT:USDT",
        interval="1m",
        open_time_ms=index * 60_000,
        open=1.0,
        high=2.0,
        low=0.5,
        close=1.5,
        volume=3.0,
    )


def _config(url: str, tmp_path: Path, **settings: object) -> Config:
    bridge = BridgeConfig(url=url, source="k1", outbox_dir=str(tmp_path / "state"), reconnect_s=0.05, **settings)  # type: ignore[arg-type]
    return Config(bridge=bridge, kernel=Config().kernel)


async def _publish(config: Config, count: int, *, wait_sent: bool) -> Bridge:
    parts = bridge_components(config)
    bridge = parts[0]
    assert isinstance(bridge, Bridge)
    async with Kernel(config, clock=LiveClock(), components=parts) as kernel:
        for index in range(count):
            await kernel.publish(_candle(index))
        await kernel.bus.idle()
        if wait_sent:
            await until(lambda: not bridge.outbox.pending, "every event confirmed")
    return bridge


async def test_selected_events_reach_jetstream_under_their_ids_and_subjects(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    config = _config(nats_server.url, tmp_path, publish=["candle_closed"])
    bridge = await _publish(config, 20, wait_sent=True)
    messages = await stream_messages(nats_server.url)
    epoch = bridge.outbox.epoch
    assert [(subject, msg_id) for subject, msg_id, _ in messages] == [
        ("twinstar.binanceusdm.BTC_USDT_USDT.candle_closed", f"k1:{epoch:x}:{seq}") for seq in range(1, 21)
    ]
    assert [(m.id, m.source, m.event) for _, _, m in messages] == [
        (f"k1:{epoch:x}:{index + 1}", "k1", _candle(index)) for index in range(20)
    ]


async def test_a_resend_of_stored_events_is_dropped_by_the_duplicate_window(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    config = _config(nats_server.url, tmp_path, publish=["candle_closed"])
    await _publish(config, 10, wait_sent=True)
    # As if every confirmation had been lost: the outbox forgets them and sends all ten again.
    (tmp_path / "state" / "k1.outbox.acked").unlink()
    outbox = Outbox(tmp_path / "state", "k1")
    assert [entry.seq for entry in outbox.pending] == list(range(1, 11))
    outbox.close()
    bridge = await _publish(config, 0, wait_sent=True)
    assert (bridge.confirmed, bridge.duplicates) == (10, 10)
    assert len(await stream_messages(nats_server.url)) == 10


async def test_a_kernel_without_nats_trades_on_and_catches_the_bridge_up_on_return(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "nats")  # not started: NATS is down when the kernel starts
    config = _config(server.url, tmp_path)
    parts = bridge_components(config)
    bridge = parts[0]
    assert isinstance(bridge, Bridge)
    async with Kernel(config, clock=LiveClock(), components=parts) as kernel:
        for index in range(30):
            await kernel.publish(_candle(index))
        await kernel.bus.idle()
        assert (len(bridge.outbox.pending), bridge.connected) == (31, False)  # KernelStarted and the candles
        async with server:
            await until(lambda: not bridge.outbox.pending, "the outbox caught up")
            await server.kill()  # down again mid-run: what follows waits in the outbox once more
            for index in range(30, 40):
                await kernel.publish(_candle(index))
            await kernel.bus.idle()
            await server.start()
            await until(lambda: not bridge.outbox.pending, "caught up after the second outage")
            assert bridge.outages >= 1
    assert len(bridge.outbox.pending) == 1  # NATS went before the kernel did: its KernelStopping waits
    async with server:
        await _publish(config, 0, wait_sent=True)  # the next start sends first what the last one left
        events = [message.event for _, _, message in await stream_messages(server.url)]
    assert events[0] == KernelStarted(ts_ns=events[0].ts_ns)
    assert events[1:41] == [_candle(index) for index in range(40)]
    assert [type(e) for e in events[41:]] == [KernelStopping, KernelStarted, KernelStopping]


def test_a_kernel_without_a_bridge_imports_none_of_it() -> None:
    code = (
        "import sys; from twinstar.config import Config; from twinstar.live import live_components; "
        "from twinstar.clock import LiveClock; from twinstar.session import run_paper; import twinstar.cli; "
        "live_components(Config.from_toml('[exchange]\\nid = \"binanceusdm\"\\n'), LiveClock()); "
        "print(sorted(m for m in sys.modules if m.startswith(('twinstar.bridge', 'nats'))))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "[]"


def test_a_live_kernel_with_a_bridge_section_gets_the_bridge(tmp_path: Path) -> None:
    from twinstar.bridge.consumer import RemoteEvents
    from twinstar.live import live_components

    config = Config.from_toml(
        '[exchange]\nid = "binanceusdm"\nname = "acct1"\n'
        f'[bridge]\nurl = "nats://127.0.0.1:4222"\nconsume = ["signal_fired"]\noutbox_dir = "{tmp_path}"\n'
    )
    parts = live_components(config, LiveClock(), tmp_path / "run")
    bridge = [part for part in parts if isinstance(part, Bridge | RemoteEvents)]
    assert [repr(part) for part in bridge] == [
        f"Bridge(source='acct1', connected=False, confirmed=0, duplicates=0, outages=0, failures=0, "
        f"outbox=Outbox(path='{tmp_path}/acct1.outbox', acked=0, pending=0))",
        "RemoteEvents(source='acct1', filters=['twinstar.acct1.*.signal_fired'], received=0, redelivered=0, refused=0)",
    ]
    for part in bridge:
        if isinstance(part, Bridge):
            part.outbox.close()
