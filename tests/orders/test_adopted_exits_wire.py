"""A resting limit entry adopted after a restart fills with its signal's own exits: real ccxt, loopback Binance.

The first kernel rests a limit entry whose signal asked for a stop and a
take-profit, then goes away (its journal stays on disk). The second one, with
`orders.resting_on_restart = "adopt"`, finds the entry at start, watches it,
and when the price crosses it protects the fill with the journaled stop and
rests the journaled take-profit, not the default distance.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.adapters.test_adapters_wire import _config
from tests.pipeline.harness import MINUTE_NS, Tap
from twinstar import Config, Kernel
from twinstar.adapters.binance import BinanceUsdm
from twinstar.bus.events import CandleClosed, PositionOpened, PositionReconciled, SignalFired, SLUpdated
from twinstar.clock import SimClock
from twinstar.config import OrdersConfig
from twinstar.handlers import build_pipeline
from twinstar.handlers.journal import Journal
from twinstar.testing.venue import Venue, venue

pytestmark = pytest.mark.anyio
BTC = "BTC/USDT:USDT"
START_NS = 1_700_000_000_000 * 1_000_000


def _config_for(resting_on_restart: str) -> Config:
    base = Config(exchange=_config("binanceusdm"), symbols=[BTC], interval="1m")
    risk = msgspec.structs.replace(base.risk, order_qty=0.01, trailing_stop=False)
    return msgspec.structs.replace(base, risk=risk, orders=OrdersConfig(resting_on_restart=resting_on_restart))  # type: ignore[arg-type]


class Account:
    """What outlives each kernel: the venue, the clock, the candle count."""

    def __init__(self, v: Venue) -> None:
        self.venue = v
        self.clock = SimClock(START_NS, autojump=True)
        self.minute = 0

    def candle(self, close: float) -> CandleClosed:
        self.minute += 1
        self.clock.set_ns(START_NS + self.minute * MINUTE_NS)
        return CandleClosed(
            ts_ns=self.clock.now_ns(),
            exchange="binanceusdm",
            symbol=BTC,
            interval="1m",
            open_time_ms=START_NS // 1_000_000 + (self.minute - 1) * 60_000,
            open=close,
            high=close,
            low=close,
            close=close,
            volume=1.0,
        )

    def limit_signal(self) -> SignalFired:
        return SignalFired(
            ts_ns=self.clock.now_ns(),
            strategy="test",
            exchange="binanceusdm",
            symbol=BTC,
            side="buy",
            price=30_000.0,
            stop_price=28_000.0,
            reason="test",
            candle_open_time_ms=START_NS // 1_000_000 + self.minute * 60_000,
            order_type="limit",
            limit_price=29_000.0,
            take_profit_price=31_000.0,
        )

    @asynccontextmanager
    async def kernel(self, journal: Path, resting_on_restart: str) -> AsyncIterator[Tap]:
        cfg = _config_for(resting_on_restart)
        adapter = BinanceUsdm(config=cfg.exchange, clock=self.clock)
        self.venue.point(adapter.ccxt)
        parts = build_pipeline(cfg, self.clock, adapter, journal=Journal(journal))
        parts = [p for p in parts if type(p).__name__ != "StrategyHandler"]
        tap = Tap()
        try:
            async with Kernel(cfg, clock=self.clock, components=[tap, *parts], mode="replay") as kernel:
                self.publish = kernel.publish
                yield tap
        finally:
            await adapter.close()


def _algos(v: Venue) -> list[tuple[str, str, str]]:
    return sorted((a["orderType"], a["triggerPrice"], a["algoStatus"]) for a in v.algo_orders.values())


async def test_an_entry_adopted_after_a_restart_gets_the_stop_and_take_profit_its_signal_asked_for(
    tmp_path: Path,
) -> None:
    async with venue() as v:
        account = Account(v)
        async with account.kernel(tmp_path / "journal", "cancel") as first:
            await account.publish(account.candle(30_000.0))
            await account.publish(account.limit_signal())
        resting: list[dict[str, Any]] = [dict(o) for o in v.orders.values() if o["status"] == "NEW"]
        async with account.kernel(tmp_path / "journal", "adopt") as second:
            await v.move_price(28_900.0)  # crosses the limit while nothing looks but the venue
            await account.publish(account.candle(28_900.0))
        algos = _algos(v)
    assert [(o["type"], o["price"], o["origQty"]) for o in resting] == [("LIMIT", "29000.00", "0.010")]
    assert first.of(PositionOpened) == []
    actions = [e.action for e in second.of(PositionReconciled)]  # type: ignore[attr-defined]
    assert actions[:2] == ["resting_found", "resting_adopted"]
    assert [(p.qty, p.entry_price) for p in second.of(PositionOpened)] == [(0.01, 29_000.0)]  # type: ignore[attr-defined]
    # The signal's stop (not 29,000 x 0.98 = 28,420) and its take-profit, each resting for what filled.
    assert algos == [("STOP_MARKET", "28000.00", "NEW"), ("TAKE_PROFIT_MARKET", "31000.00", "NEW")]
    assert [e.stop_price for e in second.of(SLUpdated)] == [28_000.0]  # type: ignore[attr-defined]


async def test_a_journal_written_before_resting_exits_were_kept_still_opens(tmp_path: Path) -> None:
    # A journal of the earlier format (no `resting` records) reads as before: its entry gets the default stop.
    async with venue() as v:
        account = Account(v)
        async with account.kernel(tmp_path / "journal", "cancel"):
            await account.publish(account.candle(30_000.0))
            await account.publish(account.limit_signal())
        journal = Journal(tmp_path / "journal")
        state = journal.state
        journal.close()
        old = msgspec.structs.replace(state, resting={})
        (tmp_path / "old").write_bytes(_rewritten(old))
        async with account.kernel(tmp_path / "old", "adopt") as second:
            await v.move_price(28_900.0)
            await account.publish(account.candle(28_900.0))
        algos = _algos(v)
    assert [(p.qty, p.entry_price) for p in second.of(PositionOpened)] == [(0.01, 29_000.0)]  # type: ignore[attr-defined]
    assert algos == [("STOP_MARKET", "28420.00", "NEW")]  # the default 2% from the fill: nothing was journaled


def _rewritten(state: Any) -> bytes:
    from twinstar.handlers.journal import MAGIC, _frame

    return MAGIC + b"".join(_frame(r) for r in state.records())
