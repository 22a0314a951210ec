"""RecordedExchange answers as the recording says, and nothing it does not say."""

from __future__ import annotations

from typing import Any

import pytest

from twinstar.adapters.base import ErrorKind, Exchange, OrderResult, Position
from twinstar.bus.events import (
    CandleClosed,
    Event,
    OrderFailed,
    OrderPlaced,
    PositionClosed,
    SLUpdated,
    SLUpdateFailed,
)
from twinstar.clock import SimClock
from twinstar.replay.answers import VenueAnswers, index_answers
from twinstar.replay.recorded import RecordedExchange

pytestmark = pytest.mark.anyio

VENUE, SYMBOL = "binanceusdm", "BTC/USDT:USDT"


def candle(minute: int) -> CandleClosed:
    return CandleClosed(
        ts_ns=minute * 60_000_000_000,
        exchange=VENUE,
        symbol=SYMBOL,
        interval="1m",
        open_time_ms=minute * 60_000,
        open=100.0,
        high=101.0,
        low=99.0,
        close=100.0,
        volume=1.0,
    )


def placed(cid: str, **fields: Any) -> OrderPlaced:
    values: dict[str, Any] = {
        "ts_ns": 0,
        "client_order_id": cid,
        "order_id": "7",
        "exchange": VENUE,
        "symbol": SYMBOL,
        "side": "buy",
        "intent": "open",
        "requested_qty": 0.016,
        "filled_qty": 0.01,
        "avg_price": 30_300.0,
        "fee": 0.1515,
        "status": "canceled",
        "attempts": 1,
        "partial": True,
    }
    return OrderPlaced(**(values | fields))


def stop_closed() -> PositionClosed:
    return PositionClosed(
        ts_ns=0,
        exchange=VENUE,
        symbol=SYMBOL,
        side="long",
        qty=0.01,
        entry_price=30_300.0,
        exit_price=29_000.0,
        pnl=-13.2965,
        fees=0.2965,
        reason="stop_loss",
    )


def stop_placed(price: float) -> SLUpdated:
    return SLUpdated(ts_ns=0, exchange=VENUE, symbol=SYMBOL, stop_price=price, qty=0.01)


def exchange(events: list[Event]) -> RecordedExchange:
    _, answers = index_answers(events)
    return RecordedExchange(answers.get(VENUE) or VenueAnswers(VENUE), SimClock(0))


def test_it_is_an_exchange() -> None:
    assert isinstance(exchange([]), Exchange)


async def test_an_order_gets_its_recorded_fill_by_client_id() -> None:
    venue = exchange([candle(1), placed("two-a")])
    result = await venue.place_market_order(SYMBOL, "buy", 0.02, client_order_id="two-a")
    expected = OrderResult(
        ok=True,
        client_order_id="two-a",
        order_id="7",
        status="canceled",
        requested_qty=0.016,
        filled_qty=0.01,
        avg_price=30_300.0,
        fee=0.1515,
    )
    assert (result, venue.departure) == (expected, "")
    assert await venue.fetch_position(SYMBOL) == Position(symbol=SYMBOL, side="long", qty=0.01, entry_price=30_300.0)


async def test_a_recorded_rejection_is_refused_again_with_its_kind_and_message() -> None:
    refused = OrderFailed(
        ts_ns=0,
        client_order_id="two-a",
        exchange=VENUE,
        symbol=SYMBOL,
        side="buy",
        intent="open",
        error_kind="insufficient_funds",
        message="Margin is insufficient.",
        attempts=1,
    )
    result = await exchange([refused]).place_market_order(SYMBOL, "buy", 1.0, client_order_id="two-a")
    assert (result.ok, result.error_kind, result.message) == (False, ErrorKind.INSUFFICIENT_FUNDS, refused.message)


async def test_an_order_that_took_live_two_tries_takes_two() -> None:
    venue = exchange([placed("two-a", attempts=2)])
    first = await venue.place_market_order(SYMBOL, "buy", 0.02, client_order_id="two-a")
    second = await venue.place_market_order(SYMBOL, "buy", 0.02, client_order_id="two-a")
    assert (first.error_kind, second.ok, second.filled_qty) == (ErrorKind.RATE_LIMIT, True, 0.01)


async def test_an_order_live_never_sent_is_a_departure_naming_its_client_id() -> None:
    venue = exchange([placed("two-a")])
    result = await venue.place_market_order(SYMBOL, "sell", 0.02, client_order_id="two-b")
    assert (result.ok, result.error_kind) == (False, ErrorKind.INVALID_ORDER)
    assert venue.departure == (f"a sell order on {SYMBOL} (client id two-b): the live recording has no answer for it")


async def test_a_stop_at_another_price_than_live_is_a_departure() -> None:
    venue = exchange([placed("two-a"), stop_placed(29_694.0)])
    await venue.place_market_order(SYMBOL, "buy", 0.02, client_order_id="two-a")
    result = await venue.update_stop_loss(SYMBOL, "long", 0.01, 29_391.0, client_order_id="tws-1")
    assert not result.ok
    assert venue.departure.startswith(f"a stop for {SYMBOL} at 29391 where live placed one at 29694 (client id tws-1)")


async def test_a_stop_live_could_not_place_fails_as_often_as_live_tried() -> None:
    failed = SLUpdateFailed(
        ts_ns=0,
        exchange=VENUE,
        symbol=SYMBOL,
        stop_price=29_694.0,
        attempts=3,
        error_kind="invalid_order",
        message="Order would immediately trigger.",
    )
    venue = exchange([placed("two-a"), failed])
    await venue.place_market_order(SYMBOL, "buy", 0.02, client_order_id="two-a")
    tries = [await venue.update_stop_loss(SYMBOL, "long", 0.01, 29_694.0, client_order_id=f"tws-{n}") for n in range(3)]
    assert [(t.ok, t.error_kind, t.message) for t in tries] == [(False, ErrorKind.INVALID_ORDER, failed.message)] * 3
    assert venue.departure == ""
    await venue.update_stop_loss(SYMBOL, "long", 0.01, 29_694.0, client_order_id="tws-4")
    assert venue.departure.startswith(f"a stop for {SYMBOL} at 29694 (client id tws-4)")


async def test_a_stop_the_venue_fired_shows_where_live_learnt_of_it_at_its_recorded_fill() -> None:
    # inputs 1 and 2, the entry and its stop after input 1, the venue's stop-out known after input 2
    venue = exchange([candle(1), placed("two-a"), stop_placed(29_694.0), candle(2), stop_closed()])
    venue.segment = 1
    await venue.place_market_order(SYMBOL, "buy", 0.02, client_order_id="two-a")
    assert not venue.exit_due()  # its stop is not even placed yet
    await venue.update_stop_loss(SYMBOL, "long", 0.01, 29_694.0, client_order_id="tws-1")
    assert (not venue.exit_due(), await venue.fetch_position(SYMBOL) is not None) == (True, True)
    venue.segment = 2
    assert venue.exit_due()
    assert await venue.fetch_position(SYMBOL) is None
    assert await venue.fetch_open_orders(SYMBOL) == []
    fill = await venue.fetch_order(SYMBOL, "tws-1")
    assert (fill.status, fill.filled_qty, fill.avg_price) == ("filled", 0.01, 29_000.0)
    assert 0.1515 + fill.fee == 0.2965  # the entry's fee and the stop's sum to the fees live booked
