"""Kline frame in, order request out: `python bench/bench_latency.py [--candles N]`.

A loopback Binance USD-M venue (twinstar.testing) pushes kline frames over a
real WebSocket; the live components run unchanged: ccxt.pro parses the
frame, the stream feed closes the candle on its final update (`x`: true, as
the venue sends it at the close), the strategy signals, execution sends a
signed market order through ccxt over HTTP. Measured: from the push of that
final frame to the order request reaching the venue (one process, one
clock), p50 and p99. The strategy flips side on every candle so every candle
yields an order. The weight budget is lifted: this measures the pipeline,
not the rate limiter.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).parents[1]))

from twinstar import Config, Kernel
from twinstar.clock import LiveClock
from twinstar.handlers.strategy import STRATEGIES
from twinstar.live import live_components
from twinstar.testing import Flip, venue

MIN = 60_000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


async def main(candles: int) -> None:
    STRATEGIES["flip"] = Flip
    os.environ.setdefault("TW_BENCH_KEY", "bench-key")
    os.environ.setdefault("TW_BENCH_SECRET", "bench-secret")
    latencies: list[float] = []
    async with venue() as v:
        config = Config.from_toml(
            'symbols = ["BTC/USDT:USDT"]\ninterval = "1m"\n'
            '[exchange]\nid = "binanceusdm"\napi_key_env = "TW_BENCH_KEY"\napi_secret_env = "TW_BENCH_SECRET"\n'
            f'api_base_url = "{v.base}"\ncandle_feed = "stream"\n'
            "options = { fetchCurrencies = false, weight_per_window = 1e9 }\n"
            '[strategy]\nname = "flip"\n[risk]\norder_qty = 0.01\n'
        )
        now_min = int(time.time() * 1000) // MIN * MIN
        start = now_min - (candles + 5) * MIN  # closed candles, recent enough not to count as warm-up
        clock = LiveClock()
        with tempfile.TemporaryDirectory() as tmp:
            async with Kernel(config, clock=clock, components=live_components(config, clock, Path(tmp))) as kernel:
                while not v.subscriptions:
                    await asyncio.sleep(0.01)
                await v.push_kline("BTCUSDT", "1m", start, MIN, 30_000.0)
                await asyncio.sleep(0.2)
                for i in range(1, candles + 1):
                    # Replayed history: put our clock just after the close of the candle this frame ends.
                    clock.set_offset_ms(clock.offset_ms + (start + i * MIN + 500 - clock.now_ms()))
                    v.offset_ms = round(clock.offset_ms)  # the venue keeps the same time, or it refuses our stamps
                    pushed = time.perf_counter_ns()
                    # The candle's final update (`x`: true), as the venue sends it at the close: it closes the candle.
                    await v.push_kline("BTCUSDT", "1m", start + (i - 1) * MIN, MIN, 30_000.0 + i - 1, final=True)
                    while not v.order_arrivals or v.order_arrivals[-1][0] < pushed:
                        await asyncio.sleep(0)
                    arrived = next(ns for ns, _ in v.order_arrivals if ns >= pushed)
                    latencies.append((arrived - pushed) / 1000)
                    await kernel.bus.idle()
                    await v.push_kline("BTCUSDT", "1m", start + i * MIN, MIN, 30_000.0 + i)  # the next one begins
                    await asyncio.sleep(0.005)
                await kernel.stop("bench done")
    print(f"kline frame -> order request, {candles} candles, real ccxt over loopback WebSocket and HTTP (uvloop):")
    print("  microseconds: " + "  ".join(f"p{q}={percentile(latencies, q):,.0f}" for q in (50, 90, 99)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--candles", type=int, default=300)
    uvloop.run(main(parser.parse_args().candles))
