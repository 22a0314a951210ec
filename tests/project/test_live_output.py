"""Live mode says what it does: one line per order, fill, stop, reconciliation and reconnect.

The lines themselves (`LiveLog.describe`) are checked whole; then real
`twinstar run` subprocesses show them at the default level against a loopback
venue that trades, and against a port where nothing listens.
"""

from __future__ import annotations

import logging
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.project.live_cli import INTERVAL_S, KEY_ENV, SECRET_ENV, live_config, live_run
from twinstar.bus.events import (
    CandleClosed,
    ClockSynced,
    EmergencyExit,
    Event,
    FeedConnected,
    FeedDisconnected,
    HandlerFailed,
    OrderFailed,
    OrderPlaced,
    PositionClosed,
    PositionOpened,
    PositionReconciled,
    ReconciliationCompleted,
    SLUpdated,
    SLUpdateFailed,
)
from twinstar.live_log import LiveLog
from twinstar.testing.venue import venue

pytestmark = pytest.mark.anyio
EX, BTC = "binanceusdm", "BTC/USDT:USDT"
STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d "
ENV = {KEY_ENV: "live-output-key-0123456789", SECRET_ENV: "live-output-secret-abcdef"}


class StopOrphaned(Event, frozen=True, kw_only=True, tag="test_stop_orphaned"):
    """An event type LiveLog has never heard of (as other parts add theirs)."""

    exchange: str
    symbol: str
    stop_price: float
    reason: str


def _order(**changes: object) -> OrderPlaced:
    fields: dict[str, object] = {
        "ts_ns": 1,
        "client_order_id": "twx-1a2b",
        "order_id": "9",
        "exchange": EX,
        "symbol": BTC,
        "side": "buy",
        "intent": "open",
        "requested_qty": 0.01,
        "filled_qty": 0.01,
        "avg_price": 30_012.5,
        "fee": 0.12,
        "status": "filled",
        "attempts": 1,
        "partial": False,
    }
    return OrderPlaced(**{**fields, **changes})  # type: ignore[arg-type]


def test_each_event_is_one_readable_line_at_its_level() -> None:
    events: list[Event] = [
        ClockSynced(ts_ns=1, exchange=EX, offset_ms=-12.34, rtt_ms=3.2),
        FeedConnected(ts_ns=1, exchange=EX, symbol=BTC, interval="1m"),
        CandleClosed(
            ts_ns=1,
            exchange=EX,
            symbol=BTC,
            interval="1m",
            open_time_ms=1_700_000_040_000,
            open=1.0,
            high=2.0,
            low=0.5,
            close=1.5,
            volume=3.0,
        ),
        _order(),
        _order(side="sell", intent="close", filled_qty=0.006, status="partial", partial=True, attempts=2),
        OrderFailed(
            ts_ns=1,
            client_order_id="twx-9",
            exchange=EX,
            symbol=BTC,
            side="buy",
            intent="open",
            error_kind="insufficient_funds",
            message="Margin is insufficient.",
            attempts=1,
        ),
        PositionOpened(ts_ns=1, exchange=EX, symbol=BTC, side="long", qty=0.01, entry_price=30_012.5, fee=0.12),
        SLUpdated(ts_ns=1, exchange=EX, symbol=BTC, stop_price=29_412.3, qty=0.01),
        SLUpdated(ts_ns=1, exchange=EX, symbol=BTC, stop_price=29_600.0, qty=0.01),
        SLUpdateFailed(
            ts_ns=1, exchange=EX, symbol=BTC, stop_price=29_700.0, attempts=3, error_kind="network", message="timeout"
        ),
        PositionClosed(
            ts_ns=1,
            exchange=EX,
            symbol=BTC,
            side="long",
            qty=0.01,
            entry_price=30_012.5,
            exit_price=30_100.0,
            pnl=0.63,
            fees=0.24,
            reason="signal",
        ),
        SLUpdated(ts_ns=1, exchange=EX, symbol=BTC, stop_price=30_700.0, qty=0.01),  # a new position's first stop
        PositionReconciled(ts_ns=1, exchange=EX, symbol=BTC, before=0.0, after=0.02, action="adopted", side="long"),
        ReconciliationCompleted(ts_ns=1, exchange=EX, trigger="timer", symbols=1, repairs=1, failures=0),
        ReconciliationCompleted(ts_ns=1, exchange=EX, trigger="start", symbols=2, repairs=0, failures=0),
        FeedDisconnected(
            ts_ns=1,
            exchange=EX,
            symbol=BTC,
            interval="1m",
            reason="fetch_ohlcv: ExchangeNotAvailable: binanceusdm GET http://127.0.0.1:9/fapi/v1/klines",
            attempt=3,
        ),
        FeedDisconnected(
            ts_ns=1, exchange=EX, symbol=BTC, interval="1m", reason="stream silent", attempt=1, retry_in_s=2.0
        ),
        FeedDisconnected(ts_ns=1, exchange=EX, symbol="*", interval="orders", reason="stream closed", attempt=2),
        EmergencyExit(ts_ns=1, exchange=EX, symbol=BTC, qty=0.01, reason="no stop could be placed"),
        HandlerFailed(ts_ns=1, handler="Strategy", event_type="CandleClosed", error="ValueError: bad"),
        StopOrphaned(ts_ns=1, exchange=EX, symbol=BTC, stop_price=29_000.0, reason="no position"),
    ]
    live_log = LiveLog()
    info, warn = logging.INFO, logging.WARNING
    assert [live_log.describe(e) for e in events] == [
        (info, "binanceusdm  clock offset -12.3 ms (round trip 3.2 ms)"),
        (info, "binanceusdm BTC/USDT:USDT  1m feed connected"),
        (logging.DEBUG, "binanceusdm BTC/USDT:USDT  1m candle 2023-11-14 22:14:00 O 1 H 2 L 0.5 C 1.5 V 3"),
        (info, "binanceusdm BTC/USDT:USDT  BUY 0.01 filled @ 30,012.5 (open, cid twx-1a2b)"),
        (warn, "binanceusdm BTC/USDT:USDT  SELL 0.006 of 0.01 partial @ 30,012.5 (close, cid twx-1a2b, 2 attempts)"),
        (
            warn,
            "binanceusdm BTC/USDT:USDT  BUY order failed (open, insufficient_funds, 1 attempt, cid twx-9): "
            "Margin is insufficient.",
        ),
        (info, "binanceusdm BTC/USDT:USDT  LONG 0.01 opened @ 30,012.5 (fee 0.12)"),
        (info, "binanceusdm BTC/USDT:USDT  stop placed at 29,412.3 for 0.01"),
        (info, "binanceusdm BTC/USDT:USDT  stop moved 29,412.3 -> 29,600 for 0.01"),
        (
            warn,
            "binanceusdm BTC/USDT:USDT  stop to 29,700 failed after 3 attempts (network): timeout; "
            "the previous stop stays",
        ),
        (
            info,
            "binanceusdm BTC/USDT:USDT  LONG 0.01 closed @ 30,100 (entry 30,012.5, pnl +0.63, fees 0.24, signal)",
        ),
        (info, "binanceusdm BTC/USDT:USDT  stop placed at 30,700 for 0.01"),
        (info, "binanceusdm BTC/USDT:USDT  reconciled: adopted long 0 -> 0.02"),
        (info, "binanceusdm  reconciliation (timer): 1 symbol, 1 repaired"),
        (info, "binanceusdm  reconciliation (start): 2 symbols, in sync"),
        (
            warn,
            "binanceusdm unreachable (BTC/USDT:USDT 1m feed): fetch_ohlcv: ExchangeNotAvailable: binanceusdm GET "
            "http://127.0.0.1:9/fapi/v1/klines; retrying (attempt 3)",
        ),
        (warn, "binanceusdm feed down (BTC/USDT:USDT 1m feed): stream silent; retrying in 2.0s (attempt 1)"),
        (warn, "binanceusdm feed down (order stream): stream closed; retrying (attempt 2)"),
        (logging.ERROR, "binanceusdm BTC/USDT:USDT  EMERGENCY EXIT: closing 0.01 at market: no stop could be placed"),
        (logging.ERROR, "handler Strategy failed on CandleClosed: ValueError: bad"),
        (info, "binanceusdm BTC/USDT:USDT  StopOrphaned: stop_price=29,000, reason=no position"),
    ]


def test_candles_are_not_even_formatted_unless_debug_is_on(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="twinstar.live")
    live_log = LiveLog()
    candle = CandleClosed(
        ts_ns=1, exchange=EX, symbol=BTC, interval="1m", open_time_ms=0, open=1, high=1, low=1, close=1, volume=1
    )
    live_log.handle(candle)
    live_log.handle(_order())
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        ("twinstar.live", logging.INFO, "binanceusdm BTC/USDT:USDT  BUY 0.01 filled @ 30,012.5 (open, cid twx-1a2b)")
    ]
    assert repr(live_log) == "LiveLog(lines=1, stops={})"


# -- the CLI -------------------------------------------------------------------------------------------------

ORDER_LINE = re.compile(
    rf"{STAMP}binanceusdm BTC/USDT:USDT  (BUY|SELL) [\d.]+ filled @ [\d,.]+ \((open|close), cid \S+\)"
)
STOP_LINE = re.compile(rf"{STAMP}binanceusdm BTC/USDT:USDT  stop (placed at|moved [\d,.]+ ->) [\d,.]+ for [\d.]+")
OPENED_LINE = re.compile(rf"{STAMP}binanceusdm BTC/USDT:USDT  (LONG|SHORT) [\d.]+ opened @ [\d,.]+ \(fee [\d.]+\)")


@pytest.mark.timeout(240)
async def test_a_live_run_prints_one_line_per_order_fill_and_stop_at_the_default_level(tmp_path: Path) -> None:
    async with venue() as v:
        v.live_klines_ms = INTERVAL_S * 1000
        async with live_run(tmp_path, live_config(v.base), ENV) as run:

            def traded(err: str) -> bool:
                lines = err.splitlines()
                orders = [line for line in lines if ORDER_LINE.fullmatch(line)]
                return len(orders) >= 2 and any(STOP_LINE.fullmatch(line) for line in lines)

            await run.wait_for(traded, what="two orders and a stop")
            assert await run.interrupt() == 0, run.stderr[-3000:]
            lines = run.stderr.splitlines()
    banner = "twinstar: trading live on binanceusdm (Ctrl-C stops; stop-losses stay on the exchange)"
    assert banner in lines
    logged = [line for line in lines if line != banner]
    assert [line for line in logged if not re.match(STAMP, line)] == []  # every line time-stamped, plain text
    assert [line for line in logged if "DEBUG" in line or "ccxt" in line] == []  # no debug at the default level
    sent = [path for method, path in v.requests if method == "POST"]
    orders = [line for line in logged if ORDER_LINE.fullmatch(line)]
    stops = [line for line in logged if STOP_LINE.fullmatch(line)]
    assert (len(orders), len(stops)) == (sent.count("/fapi/v1/order"), sent.count("/fapi/v1/algoOrder"))
    assert any(OPENED_LINE.fullmatch(line) for line in logged)
    assert any(line.endswith(f"binanceusdm BTC/USDT:USDT  {INTERVAL_S}s feed connected") for line in logged)
    assert any("binanceusdm  clock offset " in line for line in logged)
    assert any(line.endswith("stopping (exit); stop-losses stay on the exchange") for line in logged)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # closed again: connecting is refused at once


@pytest.mark.timeout(240)
async def test_an_unreachable_exchange_is_said_at_once_and_every_retry_is_visible(tmp_path: Path) -> None:
    base = f"http://127.0.0.1:{_closed_port()}"
    unreachable = re.compile(
        rf"{STAMP}WARNING binanceusdm unreachable \(BTC/USDT:USDT {INTERVAL_S}s feed\): .*ExchangeNotAvailable.*; "
        r"retrying in [\d.]+s \(attempt (\d+)\)"
    )

    def attempts(err: str) -> list[int]:
        return [int(m[1]) for line in err.splitlines() if (m := unreachable.fullmatch(line))]

    async with live_run(tmp_path, live_config(base), ENV) as run:
        await run.wait_for(lambda err: len(attempts(err)) >= 3, what="three unreachable/retrying lines")
        assert await run.interrupt() == 0, run.stderr[-3000:]
        err = run.stderr
    assert attempts(err)[:3] == [1, 2, 3]
    assert "Traceback" not in err
    assert err.splitlines()[-1].endswith(f"binanceusdm BTC/USDT:USDT  {INTERVAL_S}s feed stopped: shutdown")


def test_a_paper_run_stays_quiet(tmp_path: Path) -> None:
    config = tmp_path / "paper.toml"
    config.write_text('[exchange]\nid = "sim"\n')
    result = subprocess.run(
        [sys.executable, "-m", "twinstar", "run", "--config", str(config), "--quiet", "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, "")
