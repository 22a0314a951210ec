"""Limit entries, take-profits and brackets through the whole kernel on the simulator (replay mode).

The simulator attaches no exits to an entry, as Binance USD-M does not: the
position handler places the stop on the fill, the bracket handler the
take-profit, and whichever exit fills, the other is gone.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from tests.pipeline.harness import Rig, config, rig
from twinstar.bus.events import (
    OrderFailed,
    OrderPlaced,
    PositionClosed,
    PositionOpened,
    SignalFired,
    SLUpdated,
    encode,
)

pytestmark = pytest.mark.anyio
BTC = "BTC/USD"


async def _signal(r: Rig, side: str, **entry: Any) -> None:
    await r.kernel.publish(
        SignalFired(
            ts_ns=r.clock.now_ns(),
            strategy="test",
            exchange="sim",
            symbol=BTC,
            side=side,  # type: ignore[arg-type]
            price=100.0,
            stop_price=entry.pop("stop", 0.0),
            reason="test",
            candle_open_time_ms=r.minute * 60_000,
            **entry,
        )
    )


def _closes(r: Rig) -> list[tuple[str, float, float]]:
    return [(c.reason, c.exit_price, c.qty) for c in r.tap.of(PositionClosed)]  # type: ignore[attr-defined]


async def _limit_bracket(r: Rig) -> None:
    """A buy limit at 98 (stop 95, take-profit 105) that rests, then fills on a dip through it."""
    await r.candle(100.0)
    await _signal(r, "buy", order_type="limit", limit_price=98.0, stop=95.0, take_profit_price=105.0)
    await r.candle(99.0, low=98.0)  # touches 98, does not trade through it
    await r.candle(97.0, open_=99.0, low=96.5)


async def test_a_resting_limit_entry_fills_on_the_dip_and_its_take_profit_closes_the_trade() -> None:
    async with rig() as r:
        await _limit_bracket(r)
        opened = r.tap.of(PositionOpened)
        exits = sorted((o.take_profit, o.stop_price) for o in await r.sim.fetch_open_orders(BTC))
        await r.candle(104.0, high=104.5)
        await r.candle(106.0, open_=104.0, high=106.5)
        left = await r.sim.fetch_open_orders(BTC)
        position = await r.sim.fetch_position(BTC)
    first, *_ = r.tap.of(OrderPlaced)
    assert (first.status, first.filled_qty) == ("open", 0.0)  # type: ignore[attr-defined]  # rested first
    assert [(p.qty, p.entry_price) for p in opened] == [(1.0, 98.0)]  # type: ignore[attr-defined]
    assert [s.stop_price for s in r.tap.of(SLUpdated)] == [95.0]  # type: ignore[attr-defined]
    assert exits == [(False, 95.0), (True, 105.0)]
    assert _closes(r) == [("take_profit", 105.0, 1.0)]
    assert (left, position) == ([], None)  # the stop went with the position


async def test_when_one_candle_reaches_both_exits_the_stop_fills_and_the_take_profit_is_gone() -> None:
    async with rig() as r:
        await _limit_bracket(r)
        await r.candle(100.0, low=94.0, high=106.0)
        left = await r.sim.fetch_open_orders(BTC)
    assert _closes(r) == [("stop_loss", 95.0, 1.0)]
    assert left == []


async def test_a_take_profit_the_market_gaps_through_fills_at_the_open() -> None:
    async with rig() as r:
        await _limit_bracket(r)
        await r.candle(107.0, open_=107.0, low=106.0, high=108.0)
    assert _closes(r) == [("take_profit", 107.0, 1.0)]


async def test_a_market_entry_gets_its_take_profit_on_the_fill() -> None:
    async with rig() as r:
        await r.candle(100.0)
        await _signal(r, "sell", take_profit_price=90.0)
        resting = await r.sim.fetch_open_orders(BTC)
        await r.candle(91.0, low=89.0, open_=92.0)
    assert sorted((o.take_profit, o.side, o.stop_price) for o in resting) == [
        (False, "buy", 102.0),
        (True, "buy", 90.0),
    ]
    assert _closes(r) == [("take_profit", 90.0, 1.0)]


async def test_an_ioc_limit_that_cannot_fill_at_once_is_cancelled_and_nothing_rests() -> None:
    async with rig() as r:
        await r.candle(100.0)
        await _signal(r, "buy", order_type="limit", limit_price=99.0, time_in_force="ioc")
        await r.candle(98.0, low=97.0)
        left = await r.sim.fetch_open_orders(BTC)
    [placed] = r.tap.of(OrderPlaced)
    assert (placed.status, placed.filled_qty) == ("canceled", 0.0)  # type: ignore[attr-defined]
    assert (left, r.tap.of(PositionOpened)) == ([], [])


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ({"take_profit_price": 95.0}, "take-profit 95 is on the wrong side of a buy entry at 100 (must be above)"),
        (
            {"order_type": "limit", "limit_price": 101.0, "time_in_force": "post_only"},
            "post-only buy at 101 would take liquidity (last price 100); a post-only order only ever adds to the book",
        ),
        ({"order_type": "limit", "limit_price": 0.0}, "a limit order needs a positive limit price, got 0.0"),
    ],
)
async def test_a_bad_entry_is_refused_before_any_request_even_the_close_of_the_other_side(
    entry: dict[str, Any], reason: str
) -> None:
    async with rig() as r:
        await r.candle(100.0)
        await _signal(r, "sell")  # a short the refused buy must leave alone
        sent = dict(r.sim._orders)
        await r.candle(100.0)
        await _signal(r, "buy", **entry)
        position = await r.sim.fetch_position(BTC)
    [failed] = r.tap.of(OrderFailed)
    assert (failed.intent, failed.error_kind, failed.attempts, failed.message) == (  # type: ignore[attr-defined]
        "open",
        "invalid_order",
        0,
        reason,
    )
    assert r.sim._orders == sent  # nothing went out
    assert position is not None and position.side == "short"


async def test_the_same_orders_replay_to_the_same_bytes() -> None:
    streams = []
    for _ in range(2):
        async with rig(msgspec.structs.replace(config(), sim=msgspec.structs.replace(config().sim))) as r:
            await _limit_bracket(r)
            await r.candle(106.0, high=106.5)
            await r.candle(100.0)
            await _signal(r, "sell", take_profit_price=90.0)
            await r.candle(89.0, low=88.0)
        streams.append(b"".join(encode(e) for e in r.tap.events))
    assert streams[0] == streams[1]
    assert len(streams[0]) > 1_000


async def test_a_new_signal_replaces_the_resting_entry_of_its_symbol() -> None:
    async with rig() as r:
        await r.candle(100.0)
        await _signal(r, "buy", order_type="limit", limit_price=98.0)
        await r.candle(99.0)
        await _signal(r, "buy", order_type="limit", limit_price=97.0)
        resting = [(o.price, o.client_order_id[:4]) for o in await r.sim.fetch_open_orders(BTC)]
        first = await r.sim.fetch_order(BTC, r.tap.of(OrderPlaced)[0].client_order_id)  # type: ignore[attr-defined]
    assert resting == [(97.0, "two-")]
    assert first.status == "canceled"
