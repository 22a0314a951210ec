"""Two venues in one live kernel, trading the same symbol: every order goes where its candle came from.

Real ccxt over HTTP and WebSocket to the loopback Binance USD-M and Bybit
venues at once, the production `live_components` (one adapter, clock,
journal, execution and position handler and order stream per venue, one
strategy handler); only the candle feeds are left out. Candles are published
straight into the live kernel, each just closed by the kernel's clock: both
venues see BTC/USDT:USDT at once, with prices of their own, so they signal on
the same candle in opposite directions and later only one of them reverses.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeAlias

import pytest

from tests.pipeline.harness import Tap
from twinstar import Config, Kernel
from twinstar.adapters.feeds import PollingCandleFeed
from twinstar.bus.events import (
    CandleClosed,
    ClockSynced,
    HandlerFailed,
    OrderFailed,
    OrderPlaced,
    PositionOpened,
    SignalFired,
    SLUpdated,
)
from twinstar.clock import LiveClock
from twinstar.handlers.journal import read_journal
from twinstar.handlers.position import PositionHandler
from twinstar.live import live_components
from twinstar.testing import BybitVenue, Venue, bybit_venue, venue

pytestmark = pytest.mark.anyio
AnyVenue: TypeAlias = Venue | BybitVenue
Venues: TypeAlias = dict[str, tuple[str, AnyVenue]]  # venue name -> (exchange id, its loopback venue)
BTC = "BTC/USDT:USDT"
SECOND_MS = 1_000
# sma_cross 2/3 over each venue's own closes (thousands): the first venue buys on the 4th and reverses on the
# 6th; the second sells on the 4th, the same candle, and then stays put. No close reaches a stop (2% away).
FIRST = [100.0, 100.0, 99.0, 102.0, 102.0, 101.0]
SECOND = [100.0, 100.0, 101.0, 98.0, 98.0, 98.0]


async def _until(check: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


def _block(name: str, exchange_id: str, base: str) -> str:
    # A key of its own per venue and run: the rate budget is shared per (exchange, key), as in production.
    prefix = f"TW_TWO_{name.upper()}"
    os.environ[f"{prefix}_KEY"] = f"two-venues-key-{uuid.uuid4().hex}"
    os.environ[f"{prefix}_SECRET"] = "two-venues-secret"
    return (
        f'[[exchanges]]\nid = "{exchange_id}"\nname = "{name}"\nsymbols = ["{BTC}"]\n'
        f'api_key_env = "{prefix}_KEY"\napi_secret_env = "{prefix}_SECRET"\n'
        f'api_base_url = "{base}"\ncandle_feed = "poll"\noptions = {{ fetchCurrencies = false }}\n'
    )


def _config(venues: Venues, state: Path) -> Config:
    return Config.from_toml(
        'interval = "1s"\n'
        + "".join(_block(name, exchange_id, v.base) for name, (exchange_id, v) in venues.items())
        + '[strategy]\nname = "sma_cross"\nparams = { fast = 2, slow = 3 }\n'
        "[risk]\norder_qty = 0.01\nstop_loss_pct = 2.0\nreconcile_every = 1000\ntrailing_stop = false\n"
        f'[journal]\ndir = "{state}"\n[kernel]\ndrain_timeout_s = 5\n'
    )


def _candle(clock: LiveClock, exchange: str, open_ms: int, close: float) -> CandleClosed:
    return CandleClosed(
        ts_ns=clock.now_ns(),
        exchange=exchange,
        symbol=BTC,
        interval="1s",
        open_time_ms=open_ms,
        open=close,
        high=close,
        low=close,
        close=close,
        volume=1.0,
    )


def _private_stream_open(v: AnyVenue) -> bool:
    # Binance pushes to the listen key's socket unasked; Bybit once the socket subscribed to "order".
    return any(s.private for s in v.streams.values()) and (not isinstance(v, BybitVenue) or "order" in v.subscriptions)


async def _trade(venues: Venues, tmp_path: Path) -> tuple[Tap, dict[str, PositionHandler]]:
    """Publish the first venue's candles (`FIRST`) and the second's (`SECOND`); the first keeps the kernel's time."""
    config = _config(venues, tmp_path / "state")
    clock = LiveClock()
    parts = [p for p in live_components(config, clock, run_dir=tmp_path) if not isinstance(p, PollingCandleFeed)]
    handlers = {p.exchange.name: p for p in parts if isinstance(p, PositionHandler)}
    first = next(iter(venues.values()))[1]
    tap = Tap()
    async with Kernel(config, clock=clock, components=[tap, *parts]) as kernel:
        # Both private order streams are open before anything happens on the accounts.
        assert await _until(lambda: all(_private_stream_open(v) for _, v in venues.values()))
        start_ms = clock.now_ms() // SECOND_MS * SECOND_MS
        for i in range(len(FIRST)):
            open_ms = start_ms + i * SECOND_MS
            # The kernel's clock (the first venue's) just after this candle's close: fresh, never warm-up.
            clock.set_offset_ms(clock.offset_ms + (open_ms + SECOND_MS + 50 - clock.now_ms()))
            first.offset_ms = round(clock.offset_ms)  # the first venue keeps that time; the second its own
            for (name, (_, v)), prices in zip(venues.items(), (FIRST, SECOND), strict=True):
                v.price = prices[i] * 1_000
                await kernel.publish(_candle(clock, name, open_ms, prices[i] * 1_000))
            await kernel.bus.idle()
            await asyncio.sleep(0.2)  # upkeep runs in each position handler's own task once the bus is idle
            await kernel.bus.idle()
        assert await _until(lambda: len(tap.of(SLUpdated)) >= 3), "an entry got no stop"
        await kernel.stop("test done")
    return tap, handlers


def _placed(tap: Tap) -> dict[str, list[tuple[str, str]]]:
    placed: dict[str, list[tuple[str, str]]] = {}
    for order in tap.of(OrderPlaced):
        placed.setdefault(order.exchange, []).append((order.side, order.intent))  # type: ignore[attr-defined]
    return placed


def _stops(handlers: dict[str, PositionHandler], state: Path) -> dict[str, Any]:
    """Per venue: the position handler's (entry, stop) and the stops its own journal holds."""
    found: dict[str, Any] = {}
    for name, handler in handlers.items():
        journal = read_journal(state / f"{name}.journal")[0]
        position = handler.positions[BTC]
        found[name] = ((position.entry_price, position.stop_price), {k: s.stop_price for k, s in journal.stops.items()})
    return found


def _binance_market_orders(v: Venue) -> list[tuple[str, bool]]:
    orders: list[dict[str, Any]] = sorted(v.orders.values(), key=lambda o: o["orderId"])
    return [(o["side"], o["reduceOnly"]) for o in orders if o["type"] == "MARKET"]


async def test_each_order_reaches_the_venue_whose_candle_caused_it(tmp_path: Path) -> None:
    async with venue() as binance, bybit_venue() as bybit:
        tap, handlers = await _trade({"binanceusdm": ("binanceusdm", binance), "bybit": ("bybit", bybit)}, tmp_path)
    assert tap.of(HandlerFailed) == [] and tap.of(OrderFailed) == []
    # Each venue signs on its own clock: while the kernel's clock follows Binance's (moved on by the test),
    # Bybit never refuses a timestamp, so neither clock needed a resync after the first.
    assert sorted(e.exchange for e in tap.of(ClockSynced)) == ["binanceusdm", "bybit"]  # type: ignore[attr-defined]
    assert sorted((s.exchange, s.side) for s in tap.of(SignalFired)) == [  # type: ignore[attr-defined]
        ("binanceusdm", "buy"),
        ("binanceusdm", "sell"),
        ("bybit", "sell"),
    ]
    assert _placed(tap) == {
        "binanceusdm": [("buy", "open"), ("sell", "close"), ("sell", "open")],
        "bybit": [("sell", "open")],
    }
    # What reached each venue: Binance's three market orders and none of Bybit's, Bybit's one entry and
    # none of Binance's (with its stop on the order, as Bybit takes it).
    assert _binance_market_orders(binance) == [("BUY", False), ("SELL", True), ("SELL", False)]
    assert [(b["side"], b["orderType"], b.get("stopLoss")) for b in bybit.created] == [("Sell", "Market", "99960")]
    assert binance.positions["BTCUSDT"] == -0.01 and bybit.positions["BTCUSDT"] == -0.01
    opened = [(e.exchange, e.side, e.entry_price) for e in tap.of(PositionOpened)]  # type: ignore[attr-defined]
    assert sorted(opened) == [
        ("binanceusdm", "long", 102_000.0),
        ("binanceusdm", "short", 101_000.0),
        ("bybit", "short", 98_000.0),
    ]
    # Positions and stops kept apart although the symbol is the same; one journal per venue, each holding
    # only its own venue's stop.
    assert _stops(handlers, tmp_path / "state") == {
        "binanceusdm": ((101_000.0, 103_020.0), {("binanceusdm", BTC): 103_020.0}),
        "bybit": ((98_000.0, 99_960.0), {("bybit", BTC): 99_960.0}),
    }


async def test_two_accounts_on_one_exchange_are_told_apart_by_name(tmp_path: Path) -> None:
    async with venue() as main, venue() as hedge:
        tap, handlers = await _trade({"main": ("binanceusdm", main), "hedge": ("binanceusdm", hedge)}, tmp_path)
    assert tap.of(HandlerFailed) == [] and tap.of(OrderFailed) == []
    assert _placed(tap) == {"main": [("buy", "open"), ("sell", "close"), ("sell", "open")], "hedge": [("sell", "open")]}
    assert _binance_market_orders(main) == [("BUY", False), ("SELL", True), ("SELL", False)]
    assert _binance_market_orders(hedge) == [("SELL", False)]
    assert _stops(handlers, tmp_path / "state") == {
        "main": ((101_000.0, 103_020.0), {("main", BTC): 103_020.0}),
        "hedge": ((98_000.0, 99_960.0), {("hedge", BTC): 99_960.0}),
    }


async def test_check_checks_every_venue(tmp_path: Path) -> None:
    async with venue() as binance, bybit_venue() as bybit:
        config = tmp_path / "two.toml"
        blocks = _block("binanceusdm", "binanceusdm", binance.base) + _block("bybit", "bybit", bybit.base)
        config.write_text(blocks.replace(f'symbols = ["{BTC}"]', f'symbols = ["{BTC}", "NOPE/USDT:USDT"]', 1))
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "twinstar",
            "check",
            "--config",
            str(config),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
    text = out.decode() + err.decode()
    assert proc.returncode == 1, text  # NOPE is on neither venue
    lines = out.decode().splitlines()
    binance_at, bybit_at = lines.index(f"binanceusdm: {BTC}, NOPE/USDT:USDT"), lines.index(f"bybit: {BTC}")
    assert binance_at < bybit_at
    markets = [line.split(None, 2)[1:] for line in lines if line.startswith("  markets ")]
    assert [(status, detail.split("; ", 1)[1]) for status, detail in markets] == [
        ("FAILED", "unknown: NOPE/USDT:USDT"),
        ("OK", f"{BTC} found"),
    ]
    assert sum("account access    OK" in line for line in lines) == 2
