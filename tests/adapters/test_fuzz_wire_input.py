"""Whatever a venue sends, a feed drops what is bad with an event and goes on; nothing leaks out of it.

Hypothesis generates kline rows, stream updates, trades and server times the
way a broken proxy, a changed API or a buggy venue would: wrong types, NaN
and infinities, negative and zero prices, open times off the interval's
grid, truncated rows, nested junk. Each goes through the code that takes it
off the wire (ccxt's own parsers of every venue for REST kline bodies, then
ours), and the property is the same everywhere: no exception escapes, and
only well-formed, grid-aligned candles with finite positive prices reach the
bus.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import ccxt.async_support as ccxt_async
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.pipeline.harness import Tap
from twinstar.adapters.base import Bar, ExchangeError, bar_from_row
from twinstar.adapters.feeds import PollingCandleFeed, StreamCandleFeed, TradeCandleFeed
from twinstar.adapters.sim import SimExchange
from twinstar.bus.bus import Bus
from twinstar.bus.events import CandleClosed
from twinstar.clock import SimClock
from twinstar.config import ExchangeConfig
from twinstar.timesync import MAX_OFFSET_MS, ImplausibleTimeError, measure

MIN = 60_000
NOW_MS = 1_800_000_000_000  # the kernel's clock: every candle below is long closed by then
VENUES = ["binanceusdm", "bybit", "okx", "bitget", "bingx", "upbit", "bithumb", "lighter"]

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from(["1e400", "-0", "NaN", "inf", "", "0x10", "1,5"]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
open_times = st.one_of(st.integers(NOW_MS // MIN - 500, NOW_MS // MIN).map(lambda m: m * MIN), junk)
rows = st.lists(st.one_of(open_times, junk), min_size=0, max_size=8)
minutes = st.integers(NOW_MS // MIN - 500, NOW_MS // MIN).map(lambda m: m * MIN + st_offset(m))
noisy_rows = st.tuples(
    minutes,
    *(st.one_of(st.floats(min_value=-10, max_value=1e6), st.sampled_from([math.nan, math.inf])) for _ in range(5)),
).map(list)
# Candles a venue would send, good but for the odd one off the grid: the rows a filter must still sort out.
well_formed_rows = st.tuples(
    minutes, st.floats(1, 1e5), st.floats(0, 1e3), st.floats(0, 1), st.floats(0, 1), st.floats(0, 1e3)
).map(lambda r: [r[0], r[1] + r[3] * r[2], r[1] + r[2], r[1], r[1] + r[4] * r[2], r[5]])
plausible_rows = st.one_of(noisy_rows, well_formed_rows)


def st_offset(minute: int) -> int:
    return 0 if minute % 7 else 17  # every seventh candle is off the one-minute grid


def _bus() -> tuple[Bus, Tap]:
    bus = Bus(SimClock(NOW_MS * 1_000_000), mode="replay")
    tap = Tap()
    tap.attach(bus)
    return bus, tap


def _assert_only_good_candles(tap: Tap) -> None:
    opens = []
    for event in tap.of(CandleClosed):
        assert isinstance(event, CandleClosed)
        prices = (event.open, event.high, event.low, event.close)
        assert all(math.isfinite(p) and p > 0 for p in prices)
        assert event.low <= min(event.open, event.close) <= max(event.open, event.close) <= event.high
        assert event.open_time_ms % MIN == 0
        opens.append(event.open_time_ms)
    assert opens == sorted(set(opens))  # in order, once each


@settings(max_examples=300, deadline=None)
@given(st.one_of(rows, plausible_rows))
def test_a_row_is_a_bar_or_nothing(row: list[Any]) -> None:
    bar = bar_from_row(row)
    if bar is not None:
        assert isinstance(bar, Bar) and isinstance(bar.open_time_ms, int)


@pytest.mark.anyio
@pytest.mark.parametrize("venue", VENUES)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.lists(st.one_of(rows, plausible_rows), max_size=6))
async def test_each_venues_ccxt_parser_and_ours_let_only_usable_bars_through(venue: str, body: list[Any]) -> None:
    exchange = getattr(ccxt_async, venue)()
    try:
        parsed = exchange.parse_ohlcvs(body, None, "1m")
    except Exception:  # ccxt refusing a body is an ExchangeError for the feed (see `CcxtExchange._call`)
        return
    bus, tap = _bus()
    feed = PollingCandleFeed(SimExchange(bus.clock), "BTC/USDT", "1m", bus.clock)
    feed.attach(bus)
    await feed.publish_closed([b for b in map(bar_from_row, parsed) if b is not None])  # as `fetch_ohlcv` hands over
    _assert_only_good_candles(tap)


@pytest.mark.anyio
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bars=st.lists(plausible_rows, max_size=12))
async def test_the_rest_path_publishes_only_good_aligned_candles(bars: list[list[Any]]) -> None:
    bus, tap = _bus()
    clock = bus.clock
    feed = PollingCandleFeed(SimExchange(clock), "BTC/USDT", "1m", clock)
    feed.attach(bus)
    parsed = [b for b in map(bar_from_row, bars) if b is not None]
    await feed.publish_closed(parsed)
    await feed.publish_closed(parsed)  # the same reply twice: nothing twice
    _assert_only_good_candles(tap)


class _NoStream:
    """What the stream feeds ask of an exchange, without a network: nothing here is used by `_absorb`."""

    name = "fuzz"
    supports_native_stop = True
    config = ExchangeConfig(id="binanceusdm")
    ccxt: Any = type("Ccxt", (), {"options": {}, "has": {}, "clients": {}, "markets": {}, "timeframes": {}})()

    def scrub(self, text: str) -> str:
        return text

    async def fetch_ohlcv(self, *_: Any, **__: Any) -> list[Bar]:
        return []  # REST has nothing to add: the stream's own candles are what gets checked


@pytest.mark.anyio
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(updates=st.lists(st.one_of(junk, st.lists(st.one_of(rows, plausible_rows), max_size=4)), max_size=6))
async def test_stream_updates_of_any_shape_never_escape_the_kline_feed(updates: list[Any]) -> None:
    bus, tap = _bus()
    feed = StreamCandleFeed(_NoStream(), "BTC/USDT", "1m", bus.clock)  # type: ignore[arg-type]
    feed.attach(bus)
    for update in updates:
        with contextlib.suppress(ExchangeError):  # a backfill asked of the absent REST side: a reconnect
            await feed._absorb(update)
    _assert_only_good_candles(tap)


trades = st.dictionaries(
    st.sampled_from(["timestamp", "price", "amount", "id", "side"]),
    st.one_of(junk, st.integers(NOW_MS - 3 * MIN, NOW_MS), st.floats(min_value=-5, max_value=1e5)),
    max_size=5,
)


@pytest.mark.anyio
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.lists(trades, max_size=6), max_size=6))
async def test_trades_of_any_shape_never_escape_the_trade_feed(batches: list[list[dict[str, Any]]]) -> None:
    bus, tap = _bus()
    feed = TradeCandleFeed(_NoStream(), "BTC/USDT", "1m", bus.clock)  # type: ignore[arg-type]
    feed.attach(bus)
    for batch in batches:
        with contextlib.suppress(ExchangeError):
            await feed._absorb(batch)
    _assert_only_good_candles(tap)


class _Clockface:
    """An exchange whose only answer is a server time (whatever the venue sent)."""

    name = "fuzz"

    def __init__(self, value: Any) -> None:
        self.value = value

    async def server_time(self) -> Any:
        return self.value


@pytest.mark.anyio
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.one_of(junk, st.integers(NOW_MS - 10**12, NOW_MS + 10**12)))
async def test_a_server_time_is_applied_only_when_it_is_a_plausible_reading(value: Any) -> None:
    clock = SimClock(NOW_MS * 1_000_000)
    try:
        sample = await measure(_Clockface(value), clock, samples=1)  # type: ignore[arg-type]
    except ImplausibleTimeError:
        return
    assert isinstance(value, int) and not isinstance(value, bool)
    assert abs(sample.offset_ms) <= MAX_OFFSET_MS
