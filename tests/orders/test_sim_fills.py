"""The simulator's fill rules for resting limits, stated in `twinstar.adapters.sim`, one case each."""

from __future__ import annotations

from typing import Literal

import pytest

from twinstar.adapters.base import ErrorKind
from twinstar.adapters.sim import SimExchange
from twinstar.bus.events import CandleClosed
from twinstar.clock import SimClock
from twinstar.config import SimConfig

pytestmark = pytest.mark.anyio
BTC = "BTC/USD"


def _candle(minute: int, open_: float, high: float, low: float, close: float) -> CandleClosed:
    return CandleClosed(
        ts_ns=(minute + 1) * 60_000_000_000,
        exchange="sim",
        symbol=BTC,
        interval="1m",
        open_time_ms=minute * 60_000,
        open=open_,
        high=high,
        low=low,
        close=close,
        volume=1.0,
    )


def _sim(limit_fill: Literal["through", "touch"] = "through", balance: float = 10_000.0) -> SimExchange:
    sim = SimExchange(SimClock(0), SimConfig(limit_fill=limit_fill, initial_balance=balance, taker_fee=0.0))
    sim.on_candle(_candle(0, 100.0, 100.0, 100.0, 100.0))
    return sim


@pytest.mark.parametrize(
    ("rule", "side", "price", "bar", "fill"),
    [
        ("through", "buy", 98.0, (99.0, 99.5, 98.0, 99.0), None),  # touched only
        ("through", "buy", 98.0, (99.0, 99.5, 97.9, 99.0), 98.0),
        ("touch", "buy", 98.0, (99.0, 99.5, 98.0, 99.0), 98.0),
        ("through", "buy", 98.0, (97.0, 97.5, 96.0, 97.0), 97.0),  # gapped below: the open
        ("through", "sell", 102.0, (101.0, 102.0, 100.5, 101.0), None),
        ("touch", "sell", 102.0, (101.0, 102.0, 100.5, 101.0), 102.0),
        ("through", "sell", 102.0, (103.0, 104.0, 102.5, 103.0), 103.0),  # gapped above: the open
    ],
)
async def test_a_resting_limit_fills_by_the_configured_rule_at_its_price_or_the_gap_open(
    rule: Literal["through", "touch"],
    side: Literal["buy", "sell"],
    price: float,
    bar: tuple[float, ...],
    fill: float | None,
) -> None:
    sim = _sim(rule)
    placed = await sim.place_limit_order(BTC, side, 1.0, price, client_order_id="e1")
    sim.on_candle(_candle(1, *bar))
    found = await sim.fetch_order(BTC, "e1")
    assert placed.status == "open"
    if fill is None:
        assert (found.status, [o.price for o in await sim.fetch_open_orders(BTC)]) == ("open", [price])
    else:
        assert (found.status, found.filled_qty, found.avg_price) == ("filled", 1.0, fill)
        assert await sim.fetch_open_orders(BTC) == []


async def test_a_marketable_limit_fills_at_once_at_the_last_price_and_post_only_is_refused() -> None:
    sim = _sim()
    taken = await sim.place_limit_order(BTC, "buy", 1.0, 101.0, client_order_id="e1")
    refused = await sim.place_limit_order(BTC, "sell", 1.0, 99.0, client_order_id="e2", time_in_force="post_only")
    assert (taken.status, taken.avg_price) == ("filled", 100.0)  # never worse than the limit, never better than last
    assert (refused.error_kind, refused.message) == (
        ErrorKind.INVALID_ORDER,
        "post-only sell at 99 would take liquidity (last 100)",
    )


async def test_a_resting_limit_without_margin_when_it_fills_is_cancelled() -> None:
    sim = _sim(balance=50.0)
    await sim.place_limit_order(BTC, "buy", 1.0, 98.0, client_order_id="e1")
    sim.on_candle(_candle(1, 99.0, 99.0, 97.0, 97.5))
    found = await sim.fetch_order(BTC, "e1")
    assert (found.status, found.filled_qty, await sim.fetch_position(BTC)) == ("canceled", 0.0, None)
