"""The control plane of a live kernel on the loopback Binance venue: status, page, stream, commands, metrics.

Real ccxt talks to the loopback venue; a real aiohttp client talks to the
control server in the kernel's own loop. The page is read as served (HTML
parsed for its rows), the metrics by parsing Prometheus' text format.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.control.helpers import AUTH, TOKEN, PageRows, live_session
from tests.pipeline.harness import Tap
from twinstar.bus.events import (
    EntriesPaused,
    EntriesResumed,
    Event,
    FlattenRequested,
    HandlerFailed,
    OrderPlaced,
    PositionClosed,
    PositionOpened,
    SLUpdated,
)
from twinstar.bus.record import read_stream

pytestmark = pytest.mark.anyio


def _of(tap: Tap, kind: type[Event]) -> list[Event]:
    return tap.of(kind)


async def test_status_page_stream_and_commands_of_a_live_kernel(tmp_path: Path) -> None:
    async with live_session(tmp_path) as s:
        await s.until(lambda: bool(_of(s.tap, SLUpdated)) and bool(s.tap.of(PositionOpened)), "protected position")
        # No token, a wrong one: refused, whatever the route.
        for path in ("/", "/api/status", "/api/stream", "/metrics"):
            async with s.http.get(s.url + path) as reply:
                assert reply.status == 401
        async with s.http.get(s.url + "/api/status", headers={"Authorization": "Bearer wrong-token"}) as reply:
            assert reply.status == 401
        status = await s.get_json("/api/status")
        [position] = status["positions"]  # type: ignore[misc]
        assert position["exchange"] == "binanceusdm" and position["symbol"] == "BTC/USDT:USDT"
        assert position["side"] in ("long", "short") and position["qty"] > 0 and position["stop_price"] > 0
        assert position["entry_price"] > 0 and position["mark_price"] > 0
        [feed] = status["feeds"]  # type: ignore[misc]
        assert (feed["health"], feed["interval"]) == ("ok", "1s") and feed["candles"] >= 3
        assert feed["last_open_time_ms"] > 0 and feed["last_close"] > 0
        for _ in range(50):  # the next poll of balance and open orders (every 0.5 s) finds the stop
            status = await s.get_json("/api/status")
            if status["orders"]:
                break
            await asyncio.sleep(0.1)
        [row] = status["venues"]  # type: ignore[misc]
        assert row["currency"] == "USDT" and row["balance_total"] > 0 and row["equity"] > 0
        assert str(row["reconciliation"]).startswith("start: ")
        assert row["rate_limit_capacity"] > 0 and row["clock_rtt_ms"] >= 0
        assert [o["stop_price"] > 0 for o in status["orders"]] == [True]  # type: ignore[union-attr]
        assert status["entries"] == "open" and status["kernel"] == "running"

        # The page as served (the token in the URL, as a phone opens it) shows the position and the feed.
        async with s.http.get(f"{s.url}/?token={TOKEN}") as reply:
            assert reply.status == 200 and reply.content_type == "text/html"
            page = PageRows(await reply.text())
        [(key, cells)] = page.tables["position"].items()
        assert key == "binanceusdm BTC/USDT:USDT" and cells[0] == key and cells[1] == position["side"]
        assert page.tables["feed"]["binanceusdm BTC/USDT:USDT 1s"][1] == "ok"

        # The stream: the status now, as JSON or as the page's rendered tables.
        async with s.http.get(s.url + "/api/stream", headers=AUTH) as reply:
            assert reply.headers["Content-Type"] == "text/event-stream"
            first = json.loads((await reply.content.readuntil(b"\n\n")).decode().removeprefix("data: "))
        assert first["positions"][0]["symbol"] == "BTC/USDT:USDT"
        async with s.http.get(s.url + "/api/stream?format=html", headers=AUTH) as reply:
            html = json.loads((await reply.content.readuntil(b"\n\n")).decode().removeprefix("data: "))["html"]
        assert "binanceusdm BTC/USDT:USDT" in PageRows(html).tables["position"]

        # Commands: refused when not JSON or naming what is not traded; otherwise events on the bus.
        async with s.http.post(s.url + "/api/pause", data="reason=x", headers=AUTH) as reply:
            assert reply.status == 415
        assert (await s.post("/api/flatten", {"symbol": "ETH/USDT:USDT"}))[0] == 400
        assert (await s.post("/api/flatten", {"exchange": "bybit"}))[0] == 400
        assert (await s.post("/api/pause", {"reason": "lunch"}, headers={}))[0] == 401
        assert (await s.post("/api/pause", {"reason": "lunch"}))[0] == 202
        await s.until(lambda: s.kernel.config and bool(_of(s.tap, EntriesPaused)), "pause")
        assert (await s.get_json("/api/status"))["entries"] == "paused"
        assert (await s.post("/api/flatten", {"symbol": "BTC/USDT:USDT"}))[0] == 202
        await s.until(lambda: any(getattr(e, "reason", "") == "flatten" for e in _of(s.tap, PositionClosed)), "flat")
        assert s.venue.positions.get("BTCUSDT", 0.0) == 0.0
        opens = len([o for o in _of(s.tap, OrderPlaced) if getattr(o, "intent", "") == "open"])
        await asyncio.sleep(3)  # three more candles: signals come, no entry goes out while paused
        assert len([o for o in _of(s.tap, OrderPlaced) if getattr(o, "intent", "") == "open"]) == opens
        assert s.venue.positions.get("BTCUSDT", 0.0) == 0.0
        assert (await s.post("/api/resume", {}))[0] == 202
        await s.until(lambda: bool(_of(s.tap, EntriesResumed)), "resume")
        await s.until(lambda: s.venue.positions.get("BTCUSDT", 0.0) != 0.0, "an entry after the resume")
        # The venue filled it; its OrderPlaced reaches the bus once the reply is back.
        await s.until(
            lambda: len([o for o in _of(s.tap, OrderPlaced) if getattr(o, "intent", "") == "open"]) > opens, "its event"
        )

        # Metrics: Prometheus text, parsed (the metrics' own mailbox may trail the tap's by a moment).
        for _ in range(50):
            async with s.http.get(s.url + "/metrics", headers=AUTH) as reply:
                assert reply.status == 200
                families = {f.name: f for f in text_string_to_metric_families(await reply.text())}
            wanted = {"exchange": "binanceusdm", "intent": "open", "outcome": "filled"}
            opened = [x.value for x in families["twinstar_orders"].samples if x.labels == wanted]
            if opened and opened[0] >= 2:
                break
            await asyncio.sleep(0.1)
    assert _of(s.tap, HandlerFailed) == []
    labels = {"exchange": "binanceusdm", "symbol": "BTC/USDT:USDT", "interval": "1s"}
    [candles] = [x for x in families["twinstar_candles_received"].samples if x.name.endswith("_total")]
    assert candles.labels == labels and candles.value >= 6
    filled = {
        x.labels["intent"]: x.value
        for x in families["twinstar_orders"].samples
        if x.name.endswith("_total") and x.labels["outcome"] == "filled"
    }
    assert filled["open"] >= 2  # before the pause, and after the resume
    stops = {
        x.labels["outcome"]: x.value for x in families["twinstar_stop_updates"].samples if x.name.endswith("_total")
    }
    assert stops["ok"] >= 1
    [positions] = families["twinstar_positions"].samples
    assert positions.value == 1
    [equity] = families["twinstar_equity"].samples
    assert equity.value > 0
    trips = {x.name: x.value for x in families["twinstar_order_round_trip_seconds"].samples}
    assert trips["twinstar_order_round_trip_seconds_count"] >= 1
    lag = {x.name: x.value for x in families["twinstar_event_loop_lag_seconds"].samples}
    assert lag["twinstar_event_loop_lag_seconds_count"] >= 1
    # Every command is in the recorded stream, in order: a replay does them again.
    recorded = [
        e
        for e in read_stream(tmp_path / "events.tws")
        if isinstance(e, EntriesPaused | FlattenRequested | EntriesResumed)
    ]
    assert [type(e).__name__ for e in recorded] == ["EntriesPaused", "FlattenRequested", "EntriesResumed"]
    assert recorded == [e for e in s.tap.events if isinstance(e, EntriesPaused | FlattenRequested | EntriesResumed)]
