"""Trades in, candles out: `python bench/bench_trades.py [--trades N] [--burst N]`.

Ten trade-built candle feeds (`TradeCandleFeed`, one-minute candles) share
one real ccxt.pro client against the loopback Binance USD-M venue on one
uvloop loop; the venue pushes `@trade` frames, one trade per frame, as
Binance, Upbit and Bithumb send them. ccxt.pro parses every frame; the feeds
fold what its store holds. Printed, for the code before the change and after
it, in the same run:

1. frame by frame: trades/s over ten symbols, the venue yielding to the loop
   after every frame, so each frame is received, parsed and folded on its own
   (and, stricter, with one frame in flight: the next is sent only once the
   last one is folded);
2. a burst of `--burst` trades on one symbol, written as fast as the venue
   can (well within one second): how long until all are folded, and how many
   were lost against the count the venue sent;
3. the lag during that burst: how far the last trade folded trailed its own
   time, and what the feed itself reported of it.

The venue runs in the same process, so its own sending is in the figures too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import uvloop

sys.path.insert(0, str(Path(__file__).parents[1]))

from twinstar.adapters.binance import BinanceUsdm
from twinstar.adapters.feeds import LAG_WARN_MS, TradeCandleFeed
from twinstar.adapters.trade_candles import trade_from_ccxt
from twinstar.clock import LiveClock
from twinstar.config import ExchangeConfig
from twinstar.kernel import Kernel
from twinstar.testing.venue import INFO, Venue, venue

SYMBOLS = 10


class BeforeTradeCandleFeed(TradeCandleFeed):
    """The trade path as it was before this bench: same shared loop, the old read, wait and fold."""

    reports_lag = False  # it kept no lag measure: its figures are left out

    async def _watch(self) -> Any:
        waiting = self._old_unread()
        if waiting:
            return waiting
        current = self.candles.current
        timeout_s = math.inf
        if current is not None:
            close_at_ms = current.open_time_ms + self._length_ms + round(self.settle_s * 1000)
            timeout_s = max(0.0, (close_at_ms - self.clock.now_ms()) / 1000)
        with anyio.move_on_after(timeout_s):
            update = await self.exchange.ccxt.watch_trades(self.symbol)
            fresh = self._old_unread()
            return update if fresh is None else fresh
        return None

    def _old_unread(self) -> list[dict[str, Any]] | None:
        stored = (getattr(self.exchange.ccxt, "trades", None) or {}).get(self.symbol)
        if stored is None:
            return None
        fresh: list[dict[str, Any]] = []
        for trade in reversed(stored):
            if trade is self._last_read:
                break
            fresh.append(trade)
        if fresh:
            self._last_read = fresh[0]
        return fresh[::-1]

    async def _absorb(self, update: Any) -> bool:
        if update is None:
            closed = self.candles.close_until(self.clock.now_ms() - round(self.settle_s * 1000))
            bars = [] if closed is None else [closed]
        else:
            trades = [trade_from_ccxt(t) for t in update]
            first = next((t for t in trades if t is not None), None)
            if first is not None:
                self._usable()
            if self._complete_from_ms is None and first is not None:
                self._complete_from_ms = first.timestamp_ms - first.timestamp_ms % self._length_ms + self._length_ms
            bars = [bar for bar in map(self.candles.add, trades) if bar is not None]
        for bar in bars:
            if self._complete_from_ms is None or bar.open_time_ms < self._complete_from_ms:
                continue
            last = self.rest._last_open_ms
            if last is None or bar.open_time_ms > last + self._length_ms:
                await self.rest.backfill_before(bar.open_time_ms)
            await self.rest.publish_closed([bar], closed_by_ms=bar.open_time_ms + self._length_ms)
        await self._price_moved(self.candles.current)
        return False


class Said(logging.Handler):
    """Counts the feed's lag warnings."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.behind = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.behind += "behind the market" in record.getMessage()


VARIANTS: dict[str, type[TradeCandleFeed]] = {"before": BeforeTradeCandleFeed, "after": TradeCandleFeed}


def listing(count: int) -> str:
    """The recorded exchangeInfo with `count` perpetuals cloned from BTCUSDT (S0USDT, S1USDT, ...)."""
    info = json.loads(INFO)
    btc = next(s for s in info["symbols"] if s["symbol"] == "BTCUSDT")
    info["symbols"] = [{**btc, "symbol": f"S{i}USDT", "pair": f"S{i}USDT", "baseAsset": f"S{i}"} for i in range(count)]
    return json.dumps(info)


class Pusher:
    """The venue's side: `@trade` frames written straight to the socket subscribed to each symbol."""

    def __init__(self, v: Venue) -> None:
        self.v = v
        self.sockets = [next(s for s in v.streams.values() if f"s{i}usdt@trade" in s.topics) for i in range(SYMBOLS)]
        self.sent = [0] * SYMBOLS  # the venue's own count of trades sent, per symbol
        self.trade_id = 0

    async def send(self, i: int, t_ms: int) -> None:
        self.trade_id += 1
        price = 100.0 + self.trade_id % 7
        frame = {"e": "trade", "E": t_ms, "T": t_ms, "s": f"S{i}USDT", "t": self.trade_id}
        frame |= {"p": f"{price}", "q": "0.01", "X": "MARKET", "m": False}
        stream = self.sockets[i]
        await stream.ws.send_str(json.dumps({"stream": f"s{i}usdt@trade", "data": frame} if stream.combined else frame))
        self.sent[i] += 1


def folded(feed: TradeCandleFeed) -> int:
    c = feed.candles
    return c.accepted + c.duplicates + c.stale + c.rejected


def total(feeds: list[TradeCandleFeed]) -> int:
    return sum(map(folded, feeds))


def reported(cls: type[TradeCandleFeed], lag_ms: int) -> float:
    return lag_ms if getattr(cls, "reports_lag", True) else -1


async def paced(v: Venue, push: Pusher, feeds: list[TradeCandleFeed], rate: int, seconds: float) -> dict[str, float]:
    """Frame by frame at the venue's pace: an open loop, as a market does not wait for us."""
    count, start = int(rate * seconds), time.perf_counter()
    sent_before, backlog, k = sum(push.sent), 0, 0
    while k < count:
        due = min(count, int((time.perf_counter() - start) * rate) + 1)
        while k < due:
            await push.send(k % SYMBOLS, v.now_ms())
            k += 1
        backlog = max(backlog, sum(push.sent) - total(feeds))
        await asyncio.sleep(0.0005)
    while total(feeds) < sum(push.sent):
        await asyncio.sleep(0.0005)
    lag = reported(type(feeds[0]), max(f.lag_max_ms for f in feeds))
    rate_folded = (sum(push.sent) - sent_before) / (time.perf_counter() - start)
    return {"paced": rate_folded, "paced_backlog_ms": backlog / rate * 1000, "paced_lag_ms": lag}


async def closed_loops(v: Venue, push: Pusher, feeds: list[TradeCandleFeed], trades: int) -> dict[str, float]:
    """Bounded by the loop's turn, not its capacity: the venue yields after each frame, or waits for its fold."""
    start = time.perf_counter()
    for k in range(trades // 2):
        await push.send(k % SYMBOLS, v.now_ms())
        await asyncio.sleep(0)
    while total(feeds) < sum(push.sent):
        await asyncio.sleep(0.0005)
    yielding = trades // 2 / (time.perf_counter() - start)
    start = time.perf_counter()
    for k in range(trades // 4):
        feed = feeds[k % SYMBOLS]
        before = folded(feed)
        await push.send(k % SYMBOLS, v.now_ms())
        while folded(feed) == before:
            await asyncio.sleep(0)
    return {"frame_by_frame": yielding, "one_in_flight": trades // 4 / (time.perf_counter() - start)}


async def one_burst(v: Venue, push: Pusher, feed: TradeCandleFeed, burst: int, said: Said) -> dict[str, float]:
    """A burst on one symbol; its true lag is measured here, beside what the feed says of it."""
    expected = folded(feed) + burst
    said.behind = 0
    start = time.perf_counter()
    for _ in range(burst):
        await push.send(0, v.now_ms())
    sent_s = time.perf_counter() - start
    while folded(feed) < expected and time.perf_counter() - start < 60:
        await asyncio.sleep(0.0005)
    folded_s = time.perf_counter() - start
    await asyncio.sleep(0.1)  # anything more than sent would show as a negative loss
    return {
        "burst_sent_s": sent_s,
        "burst_folded_s": folded_s,
        "true_lag_ms": (folded_s - sent_s) * 1000,
        "burst_lost": push.sent[0] - folded(feed),
        "said_behind": said.behind,
        "reported_lag_ms": reported(type(feed), feed.lag_max_ms),
    }


async def run(cls: type[TradeCandleFeed], rate: int, seconds: float, trades: int, burst: int) -> dict[str, float]:
    said = Said()
    logging.getLogger("twinstar.feed").addHandler(said)
    results: dict[str, float] = {}
    async with venue() as v:
        v.exchange_info = listing(SYMBOLS)
        clock = LiveClock()
        adapter = BinanceUsdm(config=ExchangeConfig(id="binanceusdm", options={"fetchCurrencies": False}), clock=clock)
        v.point(adapter.ccxt)
        feeds = [cls(adapter, f"S{i}/USDT:USDT", "1m", clock) for i in range(SYMBOLS)]
        try:
            async with Kernel(clock=clock, components=feeds) as kernel:
                while len(set(v.subscriptions)) < SYMBOLS:
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.3)
                push = Pusher(v)
                results |= await paced(v, push, feeds, rate, seconds)
                results |= await closed_loops(v, push, feeds, trades)
                results |= await one_burst(v, push, feeds[0], burst, said)
                await kernel.stop("bench done")
        finally:
            await adapter.close()
            logging.getLogger("twinstar.feed").removeHandler(said)
    return results


def said_ms(ms: float) -> str:
    return f"{ms:,.0f} ms" if ms >= 0 else "not measured"


async def main(rate: int, seconds: float, trades: int, burst: int) -> None:
    logging.getLogger("twinstar.feed").setLevel(logging.INFO)
    logging.getLogger("twinstar.feed").propagate = False  # the figures, not the feed's lines
    rows = {name: await run(cls, rate, seconds, trades, burst) for name, cls in VARIANTS.items()}
    print(f"trade-built candles, {SYMBOLS} symbols on one uvloop loop, real ccxt.pro over loopback WebSocket:")
    for name, r in rows.items():
        print(
            f"  {name:6}  (1) frame by frame, {rate:,}/s offered for {seconds:g} s: {r['paced']:,.0f} trades/s folded,"
            f" backlog at most {r['paced_backlog_ms']:,.0f} ms, the feed's lag at most {said_ms(r['paced_lag_ms'])}\n"
            f"              closed loops: {r['frame_by_frame']:,.0f} trades/s yielding after each frame,"
            f" {r['one_in_flight']:,.0f}/s with one frame in flight\n"
            f"          (2) burst of {burst:,} on one symbol sent in {r['burst_sent_s']:.2f} s, all folded after"
            f" {r['burst_folded_s']:.2f} s, lost {int(r['burst_lost'])} of {burst:,}\n"
            f"          (3) lag when the burst's last trade was folded {r['true_lag_ms']:,.0f} ms;"
            f" the feed's own measure at most {said_ms(r['reported_lag_ms'])}, warnings (at >= {LAG_WARN_MS:,} ms)"
            f" {int(r['said_behind']) if r['reported_lag_ms'] >= 0 else 'none'}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=int, default=10_000, help="trades/s offered in (1)")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--trades", type=int, default=20_000, help="trades in the closed loops of (1)")
    parser.add_argument("--burst", type=int, default=50_000)
    args = parser.parse_args()
    uvloop.run(main(args.rate, args.seconds, args.trades, args.burst))
