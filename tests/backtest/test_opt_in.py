"""A backtest takes the opt-in parts as a paper session does: risk limits always, watching parts when watched."""

from __future__ import annotations

import msgspec
import pytest

from twinstar.backtest import check_data, run_checked
from twinstar.bus.events import Event, PositionClosed, RiskLimitBreached
from twinstar.clock import SimClock
from twinstar.config import AlertsConfig, Config
from twinstar.data import bundled_candles_path
from twinstar.opt_in import opt_in_components

pytestmark = pytest.mark.anyio


class _Seen:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def attach(self, bus: object) -> None:
        bus.subscribe(Event, self.events.append)  # type: ignore[attr-defined]


def _limited() -> Config:
    base = Config()
    risk = msgspec.structs.replace(base.risk, max_orders_per_minute=1, flatten_on_breach=True)
    # A webhook nobody serves: alerts would try it; a search's trial must never start them.
    alerts = msgspec.structs.replace(AlertsConfig(), webhook_url="http://127.0.0.1:9/hook")
    return msgspec.structs.replace(base, risk=risk, alerts=alerts)


async def test_a_trial_of_a_search_keeps_the_risk_limits() -> None:
    checked = check_data(_limited(), bundled_candles_path())
    seen = _Seen()
    result = await run_checked(checked, extra_components=[seen], watched=False)
    breaches = [e for e in seen.events if isinstance(e, RiskLimitBreached)]
    assert [b.limit for b in breaches][:1] == ["orders_per_minute"]
    assert "flatten" in [e.reason for e in seen.events if isinstance(e, PositionClosed)]
    assert result.summary.trades >= 1


def test_only_a_watched_run_gets_alerts_and_the_risk_monitor_always() -> None:
    config, clock = _limited(), SimClock()
    watched = [type(part).__name__ for part in opt_in_components(config, clock)]
    trial = [type(part).__name__ for part in opt_in_components(config, clock, watched=False)]
    assert (watched, trial) == (["RiskMonitor", "Alerts"], ["RiskMonitor"])
    assert opt_in_components(Config(), clock) == []
