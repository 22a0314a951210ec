"""Candles built from trades: the aggregator against a straightforward group-by of the same trades."""

from __future__ import annotations

import math
from itertools import groupby

from hypothesis import given
from hypothesis import strategies as st

from twinstar.adapters.base import Bar
from twinstar.adapters.feeds import bar_problem
from twinstar.adapters.trade_candles import Trade, TradeCandles, trade_from_ccxt

MIN = 60_000


def group_by_interval(trades: list[Trade], length_ms: int) -> list[Bar]:
    """The reference: sort by time (stable), group by interval, first/max/min/last/sum."""
    ordered = sorted(trades, key=lambda t: t.timestamp_ms)
    bars = []
    for start, group in groupby(ordered, key=lambda t: t.timestamp_ms // length_ms * length_ms):
        items = list(group)
        prices = [t.price for t in items]
        bars.append(Bar(start, prices[0], max(prices), min(prices), prices[-1], sum(t.amount for t in items)))
    return bars


def run(trades: list[Trade], length_ms: int) -> tuple[list[Bar], TradeCandles]:
    candles = TradeCandles(length_ms)
    closed = [bar for bar in map(candles.add, trades) if bar is not None]
    last = candles.close_until(2**62)
    return [*closed, *([last] if last is not None else [])], candles


# Amounts are multiples of 1/1024 and prices come from a small set, so float sums are exact in any order.
prices = st.sampled_from([99.5, 100.0, 100.25, 101.0, 102.75, 0.0063077])
amounts = st.integers(min_value=0, max_value=10**6).map(lambda k: k / 1024)


@st.composite
def trade_streams(draw: st.DrawFn) -> tuple[list[Trade], list[Trade], int]:
    """Unique trades, intervals in order (with empty intervals), shuffled inside each interval, plus replays."""
    length = draw(st.sampled_from([1_000, MIN, 15 * MIN]))
    gaps = draw(st.lists(st.integers(min_value=1, max_value=4), min_size=1, max_size=6))
    starts = [sum(gaps[: i + 1]) * length for i in range(len(gaps))]
    arrivals: list[Trade] = []
    unique: list[Trade] = []
    for start in starts:
        offsets = draw(st.lists(st.integers(min_value=0, max_value=length - 1), min_size=1, max_size=12))
        batch = [Trade(start + offset, draw(prices), draw(amounts), f"{start}-{i}") for i, offset in enumerate(offsets)]
        unique += batch
        arrivals += draw(st.permutations(batch))
        # A reconnect may replay any trade already seen, in this interval or an earlier one.
        arrivals += draw(st.lists(st.sampled_from(unique), max_size=3))
    return unique, arrivals, length


@given(trade_streams())
def test_candles_equal_a_group_by_of_the_same_trades(stream: tuple[list[Trade], list[Trade], int]) -> None:
    unique, arrivals, length = stream
    bars, candles = run(arrivals, length)
    # The same trades as received: first arrival of each id, arrival order kept for equal timestamps.
    received: list[Trade] = []
    for trade in arrivals:
        if all(trade.id != seen.id for seen in received):
            received.append(trade)
    assert sorted(received, key=lambda t: str(t.id)) == sorted(unique, key=lambda t: str(t.id))
    assert bars == group_by_interval(received, length)
    assert candles.accepted == len(unique)
    assert candles.duplicates + candles.stale == len(arrivals) - len(unique)


@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=10 * MIN), prices, amounts, st.integers(0, 40)),
        max_size=60,
    )
)
def test_any_arrival_order_gives_valid_increasing_candles_and_loses_no_volume(
    rows: list[tuple[int, float, float, int]],
) -> None:
    trades = [Trade(ts, price, amount, str(trade_id)) for ts, price, amount, trade_id in rows]
    bars, candles = run(trades, MIN)
    assert [b.open_time_ms for b in bars] == sorted({b.open_time_ms for b in bars})
    assert all(bar_problem(b) is None for b in bars)
    assert candles.accepted + candles.duplicates + candles.stale == len(trades)
    # Every accepted trade is in exactly one candle: the candles' volume is the accepted trades' volume.
    accepted_volume = sum(b.volume for b in bars)
    assert accepted_volume <= sum(t.amount for t in trades)
    assert candles.stale > 0 or candles.duplicates > 0 or accepted_volume == sum(t.amount for t in trades)


def test_late_duplicate_bad_and_id_less_trades() -> None:
    candles = TradeCandles(MIN)
    assert candles.add(Trade(5_000, 100.0, 1.0, "a")) is None
    assert candles.add(Trade(5_000, 100.0, 1.0, "a")) is None  # replayed
    assert candles.add(Trade(1_000, 99.0, 2.0, "b")) is None  # earlier, same interval: becomes the open
    assert candles.add(Trade(7_000, 101.0, 1.0, None)) is None  # no id: counted
    assert candles.add(Trade(7_000, 101.0, 1.0, None)) is None  # no id: cannot be told apart, counted again
    assert candles.add(None) is None  # what trade_from_ccxt gives for a broken trade
    closed = candles.add(Trade(3 * MIN + 1, 105.0, 0.5, "c"))  # two empty minutes: no candle for them
    assert closed == Bar(0, 99.0, 101.0, 99.0, 101.0, 5.0)
    assert candles.add(Trade(2 * MIN, 90.0, 1.0, "d")) is None  # older than the open candle: stale
    assert candles.add(Trade(30_000, 90.0, 1.0, "e")) is None  # in a closed candle: stale, never patched in
    assert candles.close_until(4 * MIN - 1) is None  # its interval is not over yet
    assert candles.close_until(4 * MIN) == Bar(3 * MIN, 105.0, 105.0, 105.0, 105.0, 0.5)
    assert candles.add(Trade(3 * MIN + 2, 106.0, 1.0, "f")) is None  # after a close by time: stale
    assert repr(candles) == (
        "TradeCandles(length_ms=60000, current=None, accepted=5, duplicates=1, stale=3, rejected=1)"
    )


def test_ccxt_trades_are_converted_or_refused() -> None:
    good = {"id": 42, "timestamp": 1_000, "price": 10.5, "amount": 2.0, "symbol": "BTC/KRW"}
    assert trade_from_ccxt(good) == Trade(1_000, 10.5, 2.0, "42")
    assert trade_from_ccxt({**good, "id": None}) == Trade(1_000, 10.5, 2.0, None)
    for broken in ({"timestamp": None}, {"price": None}, {"price": math.nan}, {"price": 0}, {"amount": -1}):
        assert trade_from_ccxt({**good, **broken}) is None
    assert trade_from_ccxt({**good, "price": "not a number"}) is None
    candles = TradeCandles(1_000)
    assert candles.add_ccxt([good, {**good, "timestamp": 2_500, "id": 43}, {**good, "price": None}]) == [
        Bar(1_000, 10.5, 10.5, 10.5, 10.5, 2.0)
    ]
    assert candles.rejected == 1


def test_the_newest_trade_time_counts_every_usable_trade_even_a_stale_or_duplicate_one() -> None:
    candles = TradeCandles(MIN)
    assert candles.newest_ms is None
    candles.add(Trade(MIN + 5, 10.0, 1.0, "a"))
    candles.add(Trade(MIN + 1, 10.0, 1.0, "b"))  # earlier: the newest stays
    candles.add(None)  # unusable: no time to count
    assert candles.newest_ms == MIN + 5
    candles.add(Trade(2 * MIN + 7, 10.0, 1.0, "c"))  # closes the first minute
    candles.add(Trade(MIN + 9, 10.0, 1.0, "d"))  # stale, yet it did arrive: the market reached it
    assert (candles.newest_ms, candles.stale, candles.rejected) == (2 * MIN + 7, 1, 1)


def test_a_trade_at_an_infinite_time_is_refused_not_raised() -> None:
    # Found by the fuzz test: int(inf) raises OverflowError, which no other bad value does.
    assert trade_from_ccxt({"timestamp": float("inf"), "price": 1.0, "amount": 1.0}) is None
