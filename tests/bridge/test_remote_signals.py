"""Remote signals, local orders: a SignalFired from another kernel is executed once, however often it comes.

Over the loopback Binance venue of `twinstar.testing` and a real nats-server:
the account kernel's execution handler and journal are the real ones, and a
redelivered signal (consumer restarted with its acknowledgements lost) or a
re-sent one (a strategy restarted and re-decided the candle) places nothing.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import nats
import pytest
from nats.js.api import DeliverPolicy
from nats.js.errors import NotFoundError

from tests.adapters.test_adapters_wire import _config as exchange_config
from tests.bridge.helpers import stream_messages, until
from tests.pipeline.harness import Tap
from twinstar.adapters.binance import BinanceUsdm
from twinstar.bridge.components import bridge_components
from twinstar.bridge.consumer import RemoteEvents
from twinstar.bridge.server import NatsServer
from twinstar.bus.events import OrderPlaced, SignalFired
from twinstar.clock import LiveClock
from twinstar.config import BridgeConfig, Config, ExecutionConfig, RiskConfig
from twinstar.handlers.execution import ExecutionHandler, client_order_id
from twinstar.handlers.journal import Journal
from twinstar.kernel import Component, Kernel
from twinstar.live import AdapterSession
from twinstar.testing import Venue, venue

pytestmark = pytest.mark.anyio
SYMBOL = "BTC/USDT:USDT"
SIGNAL = SignalFired(
    ts_ns=1,
    strategy="remote",
    exchange="binanceusdm",
    symbol=SYMBOL,
    side="buy",
    price=30_000.0,
    stop_price=29_000.0,
    reason="test",
    candle_open_time_ms=1_700_000_000_000,
)


def _bridge(url: str, tmp_path: Path, source: str, **settings: object) -> Config:
    bridge = BridgeConfig(url=url, source=source, outbox_dir=str(tmp_path / source), reconnect_s=0.05, **settings)  # type: ignore[arg-type]
    return Config(exchange=Config().exchange.__class__(id="binanceusdm"), symbols=[SYMBOL], bridge=bridge)


async def _send_signal(url: str, tmp_path: Path) -> None:
    """A strategy kernel elsewhere publishes the signal (one start, one stop: a fresh id each time)."""
    config = _bridge(url, tmp_path, "strategy", publish=["signal_fired"])
    async with Kernel(config, clock=LiveClock(), components=bridge_components(config)) as kernel:
        await kernel.publish(SIGNAL)


async def _account_kernel(v: Venue, url: str, tmp_path: Path, signals: int, *, send: bool) -> Tap:
    """The kernel owning the account: runs until it has taken `signals` remote signals and handled them.

    With `send`, the strategy kernel publishes the signal once this kernel's consumer exists.
    """
    config = _bridge(url, tmp_path, "account", consume=["signal_fired"])  # publishes every event
    clock = LiveClock()
    adapter = BinanceUsdm(config=exchange_config("binanceusdm"), clock=clock)
    v.point(adapter.ccxt)
    await adapter.ccxt.load_markets()
    journal = Journal(tmp_path / "account.journal")  # kept across the kernel's restarts, as in `live`
    execution = ExecutionHandler(adapter, clock, ExecutionConfig(), RiskConfig(order_qty=0.01), journal=journal)
    tap = Tap()
    parts: list[Component] = [AdapterSession(adapter), execution, tap, *bridge_components(config)]
    remote = parts[-1]
    assert isinstance(remote, RemoteEvents)
    async with Kernel(config, clock=clock, components=parts) as kernel:
        if send:
            client = await nats.connect(url)
            js = client.jetstream()
            for _ in range(500):
                try:
                    await js.consumer_info("TWINSTAR", "account-in")
                    break
                except NotFoundError:
                    await anyio.sleep(0.02)
            await client.close()
            await _send_signal(url, tmp_path)
        await until(lambda: remote.received + remote.redelivered >= signals, f"{signals} remote signals")
        await kernel.bus.idle()
    journal.close()
    return tap


async def _forget_every_ack(url: str) -> None:
    """Reset the account's consumer to the start of the stream, as if none of its acknowledgements had arrived."""
    client = await nats.connect(url)
    js = client.jetstream()
    config = (await js.consumer_info("TWINSTAR", "account-in")).config
    await js.delete_consumer("TWINSTAR", "account-in")
    config.deliver_policy = DeliverPolicy.ALL
    await js.add_consumer("TWINSTAR", config)
    await client.close()


async def test_a_remote_signal_is_executed_once_however_often_it_is_delivered(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    async with venue() as v:
        first = await _account_kernel(v, nats_server.url, tmp_path, signals=1, send=True)
        v.positions.clear()  # stopped out meanwhile: only the journal now tells the signal was acted on
        await _forget_every_ack(nats_server.url)
        # Delivered again, and re-sent under a new id by a strategy that restarted and re-decided the candle.
        again = await _account_kernel(v, nats_server.url, tmp_path, signals=2, send=True)
    cid = client_order_id("remote", SYMBOL, SIGNAL.candle_open_time_ms, "open")
    assert [(e.client_order_id, e.filled_qty) for e in first.of(OrderPlaced)] == [(cid, 0.01)]  # type: ignore[attr-defined]
    assert [type(e).__name__ for e in again.events if isinstance(e, (SignalFired, OrderPlaced))] == [
        "SignalFired",
        "SignalFired",
    ]  # both copies reached the account's bus; neither placed an order
    assert v.requests.count(("POST", "/fapi/v1/order")) == 1
    assert [order["clientOrderId"] for order in v.orders_by_id.values()] == [cid]
    sent = [(message.source, type(message.event).__name__) for _, _, message in await stream_messages(nats_server.url)]
    # The account sends its own events (its order) but never a signal it took from the bridge back.
    assert sorted(kind for source, kind in sent if kind in ("SignalFired", "OrderPlaced")) == [
        "OrderPlaced",
        "SignalFired",
        "SignalFired",
    ]
    assert [source for source, kind in sent if kind == "SignalFired"] == ["strategy", "strategy"]
