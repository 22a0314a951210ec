"""A reconciliation pass while the venue does not answer: it asks once, not once per symbol.

Real ccxt against the loopback Binance USD-M venue, then against a port where
nothing listens (connection refused, as while a venue restarts). Every symbol
is still reported (`PositionReconciled` "unreadable", nothing changed), but
after the first unanswered read the pass stops asking: on a real outage each
further symbol would wait out its own timeout, and the log would say the same
thing once per symbol.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

import pytest

from tests.adapters.test_adapters_wire import _config
from tests.pipeline.harness import Tap
from twinstar.adapters.binance import BinanceUsdm
from twinstar.adapters.ccxt_base import rebase_urls
from twinstar.bus.bus import Bus
from twinstar.bus.events import PositionReconciled, ReconciliationCompleted
from twinstar.clock import SimClock
from twinstar.config import RiskConfig
from twinstar.handlers.journal import Journal
from twinstar.handlers.position import PositionHandler
from twinstar.testing.venue import venue

pytestmark = pytest.mark.anyio
SYMBOLS = ["BTC/USDT:USDT", "ETH/USDT:USDT"]


def _dead_base() -> str:
    with socket.socket() as s:  # bound, then closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


async def test_a_pass_over_a_venue_that_is_down_asks_it_once_and_reports_every_symbol(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with venue() as v:
        clock = SimClock(1_700_000_000_000 * 1_000_000, autojump=True)
        adapter = BinanceUsdm(config=_config("binanceusdm"), clock=clock)
        v.point(adapter.ccxt)
        bus = Bus(clock, mode="replay")
        tap = Tap()
        tap.attach(bus)
        handler = PositionHandler(adapter, clock, RiskConfig(trailing_stop=False), journal=Journal(), symbols=SYMBOLS)
        handler.attach(bus)
        reads: list[str] = []
        fetch_position = adapter.fetch_position

        async def counted(symbol: str) -> Any:
            reads.append(symbol)
            return await fetch_position(symbol)

        adapter.fetch_position = counted  # type: ignore[method-assign]  # counts, then the real call
        try:
            await adapter.ccxt.load_markets()
            api = adapter.ccxt.urls["api"]
            adapter.ccxt.urls["api"] = rebase_urls(api, _dead_base())
            with caplog.at_level(logging.ERROR, logger="twinstar.reconcile"):
                await handler.reconciler.reconcile("timer")
            down_reads = list(reads)
            adapter.ccxt.urls["api"] = api
            await handler.reconciler.reconcile("timer")  # answered again: every symbol is asked for once more
        finally:
            await adapter.close()
    assert down_reads == SYMBOLS[:1]
    assert reads == [*SYMBOLS[:1], *SYMBOLS]
    unreadable = [e.symbol for e in tap.of(PositionReconciled) if e.action == "unreadable"]  # type: ignore[attr-defined]
    assert unreadable == SYMBOLS
    [down] = tap.of(ReconciliationCompleted)  # a clean pass of a replay-mode handler publishes none
    assert (down.symbols, down.failures) == (2, 2)  # type: ignore[attr-defined]
    [line] = [r.getMessage() for r in caplog.records if r.name == "twinstar.reconcile"]
    assert "nothing changed (nor for 1 more symbol: the venue is not answering)" in line
