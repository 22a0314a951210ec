"""An entry queued behind an outage is refused once stale; the close it asks for still goes.

Real ccxt against the loopback Binance venue, the real execution and position
handlers on a replay bus, virtual time. The venue answers 503 to every
request while a reversal's close is retried and looked up (200 s of backoff,
over the 120 s bound); the next signal, fired during that outage, reaches
execution only afterwards: its close goes out, its entry is refused with an
`OrderFailed` naming `execution.max_signal_age_s`, and nothing is sent for it.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.adapters.test_adapters_wire import _config
from tests.pipeline.harness import Tap
from twinstar.adapters.binance import BinanceUsdm
from twinstar.bus.bus import Bus
from twinstar.bus.events import OrderFailed, OrderPlaced, PositionClosed, PositionOpened, Side, SignalFired
from twinstar.clock import SimClock
from twinstar.config import Config, ConfigError, ExecutionConfig, RiskConfig
from twinstar.handlers.execution import ExecutionHandler, client_order_id
from twinstar.handlers.journal import Journal
from twinstar.handlers.position import PositionHandler
from twinstar.testing.venue import Failure, Venue, venue

pytestmark = pytest.mark.anyio
BTC = "BTC/USDT:USDT"
START_NS = 1_700_000_000_000 * 1_000_000
T0_MS = START_NS // 1_000_000
OUTAGE = Failure(status=503, text="Service Unavailable")  # the gateway's page while the venue is down


class Kit:
    def __init__(self, v: Venue, max_signal_age_s: float) -> None:
        self.clock = SimClock(START_NS, autojump=True)
        self.adapter = BinanceUsdm(config=_config("binanceusdm"), clock=self.clock)
        v.point(self.adapter.ccxt)
        self.bus = Bus(self.clock, mode="replay")
        self.tap = Tap()
        self.tap.attach(self.bus)
        risk = RiskConfig(order_qty=0.01, trailing_stop=False)
        execution = ExecutionConfig(network_backoff_s=[100.0, 100.0], max_signal_age_s=max_signal_age_s)
        journal = Journal()
        self.positions = PositionHandler(self.adapter, self.clock, risk, journal=journal, symbols=[BTC])
        self.positions.attach(self.bus)
        ExecutionHandler(self.adapter, self.clock, execution, risk, journal=journal).attach(self.bus)

    def signal(self, side: Side, minute: int, fired_ns: int | None = None) -> SignalFired:
        return SignalFired(
            ts_ns=self.clock.now_ns() if fired_ns is None else fired_ns,
            strategy="t",
            exchange="binanceusdm",
            symbol=BTC,
            side=side,
            price=30_000.0,
            stop_price=0.0,
            reason="test",
            candle_open_time_ms=T0_MS + minute * 60_000,
        )


async def _outage_then_queued_reversal(max_signal_age_s: float) -> tuple[Kit, Venue, dict[str, Any]]:
    async with venue() as v:
        kit = Kit(v, max_signal_age_s)
        try:
            await kit.adapter.ccxt.load_markets()
            await kit.bus.publish(kit.signal("buy", 0))  # long 0.01, protected
            v.failures.extend([OUTAGE] * 4)  # the close and its three lookups: 200 s of backoff
            first = kit.signal("sell", 1)
            await kit.bus.publish(first)
            assert not v.failures and (kit.clock.now_ns() - first.ts_ns) / 1e9 == 200.0
            await kit.bus.publish(kit.signal("sell", 2, fired_ns=first.ts_ns + 1_000_000_000))  # queued behind it
            await kit.positions.stop_intake()  # as the kernel stops: a close waiting for its fee is booked
        finally:
            await kit.adapter.close()
    return kit, v, dict(v.orders)


async def test_an_entry_older_than_the_bound_is_refused_while_its_close_goes_out() -> None:
    kit, v, orders = await _outage_then_queued_reversal(120.0)
    close, entry = (
        client_order_id("t", BTC, T0_MS + 120_000, "close"),
        client_order_id("t", BTC, T0_MS + 120_000, "open"),
    )
    assert (orders[close]["status"], orders[close]["reduceOnly"]) == ("FILLED", True)  # never dropped for its age
    assert entry not in orders  # nothing was sent for the stale entry
    assert v.positions.get("BTCUSDT", 0.0) == 0.0
    failed = [(e.intent, e.error_kind, e.message) for e in kit.tap.of(OrderFailed)]  # type: ignore[attr-defined]
    assert failed[0][:2] == ("close", "exchange_unavailable")  # the outage itself
    assert failed[1] == (
        "open",
        "invalid_order",
        "signal is 199 s old, over execution.max_signal_age_s (120 s): entry not sent",
    )
    assert [c.reason for c in kit.tap.of(PositionClosed)] == ["signal"]  # type: ignore[attr-defined]
    assert [p.side for p in kit.tap.of(PositionOpened)] == ["long"]  # type: ignore[attr-defined]


async def test_without_the_bound_the_queued_entry_goes_out_however_stale() -> None:
    kit, v, orders = await _outage_then_queued_reversal(0.0)  # the control: 0 turns the bound off
    entry = client_order_id("t", BTC, T0_MS + 120_000, "open")
    assert orders[entry]["status"] == "FILLED"
    assert v.positions.get("BTCUSDT", 0.0) == -0.01
    assert [p.side for p in kit.tap.of(PositionOpened)] == ["long", "short"]  # type: ignore[attr-defined]
    assert [e.intent for e in kit.tap.of(OrderFailed)] == ["close"]  # type: ignore[attr-defined]
    assert all(e.filled_qty > 0 for e in kit.tap.of(OrderPlaced))  # type: ignore[attr-defined]


@pytest.mark.parametrize("value", ["-1", "86400"])
def test_a_bound_out_of_range_is_refused_when_the_config_is_read(value: str) -> None:
    with pytest.raises(ConfigError) as refused:
        Config.from_toml(f"[execution]\nmax_signal_age_s = {value}\n")
    assert str(refused.value) == (
        f"execution.max_signal_age_s must be in [0, 86400) seconds (0: no bound), not {float(value):g}"
    )
