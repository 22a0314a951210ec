"""How long a fresh fill goes without a stop: `python bench/bench_unprotected.py [--entries N]`.

Per venue, on the loopback venues (twinstar.testing: Binance USD-M and Bybit
v5), real ccxt adapters under the real execution and position handlers on a
live bus take N flip signals: each closes the previous position and opens
the other way, so every signal is an entry. Measured by the venue's own
records and clock (milliseconds): from the entry's fill to the moment the
stop protecting it was on the venue's book, and how many stops the venue
made in the entry's own request. Bybit takes the stop on the entry order
itself (the position's stop-loss is made with the fill); Binance USD-M has no
such thing, so the stop is placed when the fill is known, one more signed
round trip later. A stop the venue made in the entry's own request has no
window at all (the venue handles one request at a time, so nothing can see
the fill without its stop): 0, whatever its two millisecond stamps say.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import uvloop

sys.path.insert(0, str(Path(__file__).parents[1]))

from twinstar.adapters.binance import BinanceUsdm
from twinstar.adapters.bybit import Bybit
from twinstar.adapters.ccxt_base import CcxtExchange
from twinstar.bus.bus import Bus
from twinstar.bus.events import OrderPlaced, SignalFired
from twinstar.clock import LiveClock
from twinstar.config import ExchangeConfig, ExecutionConfig, RiskConfig
from twinstar.handlers.execution import ExecutionHandler
from twinstar.handlers.position import PositionHandler
from twinstar.testing import BybitVenue, Venue, bybit_venue, venue

SYMBOL = "BTC/USDT:USDT"
T0 = 1_704_067_200_000


def percentile(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def binance_window(v: Venue, entry: OrderPlaced, stop_cid: str) -> int:
    """Fill (the entry's last update, when it filled) to the stop's creation on the algo book."""
    [stop] = [a for a in v.algo_orders.values() if a["clientAlgoId"] == stop_cid]
    return int(stop["createTime"]) - int(v.orders[entry.client_order_id]["updateTime"])


def bybit_window(v: BybitVenue, entry: OrderPlaced, stop_cid: str) -> int:
    """The entry's execution to the creation of the stop order protecting it."""
    [fill] = [e for e in v.executions if e["orderLinkId"] == entry.client_order_id]
    made = [o for o in v.orders.values() if o["parentOrderLinkId"] == entry.client_order_id]
    if made and made[0]["createType"] == "CreateByStopLoss":
        return 0  # the position's stop-loss, made by the venue with the fill, in the same request
    return int(v.orders[stop_cid]["createdTime"]) - int(fill["execTime"])


def requests_per_entry(requests: list[tuple[str, str]], order_path: str, stop_path: str) -> int:
    """Order and stop requests the venue saw (the flips' closes included)."""
    return sum(1 for method, path in requests if method == "POST" and path in (order_path, stop_path))


async def measure(adapter: CcxtExchange, entries: int, window: Callable[[OrderPlaced, str], int]) -> list[int]:
    clock = adapter.clock
    risk = RiskConfig(order_qty=0.01, trailing_stop=False)
    windows: list[int] = []
    async with anyio.create_task_group() as tasks:
        bus = Bus(clock, mode="live")
        positions = PositionHandler(adapter, clock, risk, symbols=[SYMBOL])
        positions.attach(bus)
        ExecutionHandler(adapter, clock, ExecutionConfig(), risk).attach(bus)
        placed: list[OrderPlaced] = []
        bus.subscribe(OrderPlaced, lambda e: placed.append(e) if e.intent == "open" else None, name="bench")
        bus.start(tasks)
        await adapter.ccxt.load_markets()
        for i in range(entries):
            side: Any = "buy" if i % 2 == 0 else "sell"
            signal = SignalFired(
                ts_ns=clock.now_ns(),
                strategy="bench",
                exchange=adapter.name,
                symbol=SYMBOL,
                side=side,
                price=30_000.0,
                stop_price=0.0,
                reason="flip",
                candle_open_time_ms=T0 + i * 60_000,
            )
            await bus.publish(signal)
            await bus.idle()
            windows.append(window(placed[-1], positions.positions[SYMBOL].stop_cid))
        bus.close()
        tasks.cancel_scope.cancel()
    await adapter.close()
    return windows


def _config(exchange_id: str) -> ExchangeConfig:
    os.environ.setdefault("TW_BENCH_KEY", "bench-key")
    os.environ.setdefault("TW_BENCH_SECRET", "bench-secret")
    return ExchangeConfig(
        id=exchange_id,
        api_key_env="TW_BENCH_KEY",
        api_secret_env="TW_BENCH_SECRET",
        options={"fetchCurrencies": False, "weight_per_window": 1e9},  # the pipeline, not the rate limiter
    )


async def main(entries: int) -> None:
    results: dict[str, tuple[list[int], int]] = {}
    async with venue() as binance:
        adapter: CcxtExchange = BinanceUsdm(config=_config("binanceusdm"), clock=LiveClock())
        binance.point(adapter.ccxt)
        windows = await measure(adapter, entries, lambda e, s: binance_window(binance, e, s))
        sent = requests_per_entry(binance.requests, "/fapi/v1/order", "/fapi/v1/algoOrder")
        results["binanceusdm (stop placed on the fill)"] = (windows, sent)
    async with bybit_venue() as bybit:
        adapter = Bybit(config=_config("bybit"), clock=LiveClock())
        bybit.point(adapter.ccxt)
        windows = await measure(adapter, entries, lambda e, s: bybit_window(bybit, e, s))
        sent = requests_per_entry(bybit.requests, "/v5/order/create", "/v5/position/trading-stop")
        results["bybit (stop attached to the entry)"] = (windows, sent)
    print(f"unprotected window, entry fill -> its stop on the venue's book, {entries} flips per venue,")
    print("by the venue's own clock (whole ms); real ccxt over loopback HTTP, live bus (uvloop):")
    for name, (windows, sent) in results.items():
        stats = "  ".join(f"p{q}={percentile(windows, q):,.0f}" for q in (50, 99))
        print(f"  {name:38} ms: {stats}  max={max(windows):,}   order+stop requests: {sent:,}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=200)
    uvloop.run(main(parser.parse_args().entries))
