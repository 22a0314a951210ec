"""An entry carries its stop: Bybit over the wire (real ccxt, loopback venue), OKX by its request payload.

On Bybit the stop rides on the entry's create, becomes the position's own
stop-loss at the fill (no window at all), moves by trading-stop (no second
stop, nothing to cancel), is adopted after a restart and, when it fires, the
close is booked at its fill. On OKX it rides in `attachAlgoOrds` under our
client id; a stop known only by that id (no venue id yet) is found and
cancelled once replaced (over the wire, on the Binance loopback).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tests.adapters.recorded_venue import recorded, recorded_venue, venue_adapter
from tests.adapters.test_adapters_wire import _config
from tests.adapters.test_bybit_wire import bybit_config
from tests.pipeline.harness import Tap
from twinstar.adapters.base import OpenOrder
from twinstar.adapters.binance import BinanceUsdm
from twinstar.adapters.bybit import POSITION_STOP_CID, Bybit
from twinstar.bus.bus import Bus
from twinstar.bus.events import (
    CandleClosed,
    OrderFailed,
    OrderPlaced,
    PositionClosed,
    PositionOpened,
    PositionReconciled,
    SignalFired,
    SLUpdated,
)
from twinstar.clock import LiveClock, SimClock
from twinstar.config import ExecutionConfig, RiskConfig
from twinstar.handlers.execution import ExecutionHandler, client_order_id
from twinstar.handlers.journal import Journal
from twinstar.handlers.position import PositionHandler
from twinstar.testing import BybitVenue, bybit_venue, venue

pytestmark = pytest.mark.anyio
BTC = "BTC/USDT:USDT"
T0 = 1_700_000_000_000
CID = client_order_id("t", BTC, T0, "open")


def _signal(stop_price: float, side: str = "buy") -> SignalFired:
    return SignalFired(
        ts_ns=1,
        strategy="t",
        exchange="bybit",
        symbol=BTC,
        side=side,  # type: ignore[arg-type]
        price=30_000.0,
        stop_price=stop_price,
        reason="test",
        candle_open_time_ms=T0,
    )


def _candle(minute: int, close: float) -> CandleClosed:
    return CandleClosed(
        ts_ns=minute,
        exchange="bybit",
        symbol=BTC,
        interval="1m",
        open_time_ms=T0 + minute * 60_000,
        open=close,
        high=close,
        low=close,
        close=close,
        volume=1.0,
    )


class Kit:
    """The real execution and position handlers over the real Bybit adapter, on a replay bus."""

    def __init__(self, v: BybitVenue, journal: Path, qty: float) -> None:
        self.clock = SimClock(0, autojump=True)
        self.adapter = Bybit(config=bybit_config(), clock=self.clock)
        v.point(self.adapter.ccxt)
        self.bus = Bus(self.clock, mode="replay")
        self.tap = Tap()
        self.tap.attach(self.bus)
        risk = RiskConfig(order_qty=qty, stop_loss_pct=2.0, trail_step_pct=0.1)
        self.journal = Journal(journal)
        self.positions = PositionHandler(self.adapter, self.clock, risk, journal=self.journal, symbols=[BTC])
        self.positions.attach(self.bus)
        ExecutionHandler(self.adapter, self.clock, ExecutionConfig(), risk, journal=self.journal).attach(self.bus)

    async def close(self) -> None:
        self.journal.close()
        await self.adapter.close()


def _stops(v: BybitVenue) -> list[dict[str, Any]]:
    return [o for o in v.orders.values() if o["stopOrderType"]]


async def test_the_entry_carries_its_stop_and_the_fill_is_protected_in_the_same_request(tmp_path: Path) -> None:
    async with bybit_venue() as v:
        kit = Kit(v, tmp_path / "journal", qty=0.01)
        try:
            await kit.adapter.ccxt.load_markets()
            await kit.bus.publish(_signal(29_000.0))
        finally:
            await kit.close()
    [create] = v.created  # one request: the entry and its stop
    assert (create["orderLinkId"], create["stopLoss"], create["tpslMode"]) == (CID, "29000", "Full")
    [stop] = _stops(v)  # the position's own stop-loss, made by the venue at the fill
    assert (stop["stopOrderType"], stop["orderStatus"], stop["triggerPrice"], stop["qty"]) == (
        "StopLoss",
        "Untriggered",
        "29000",
        "0.01",
    )
    [fill] = v.executions
    assert int(stop["createdTime"]) - int(fill["execTime"]) == 0  # no unprotected window, by the venue's clock
    assert v.position_tpsl == {"BTCUSDT": {"stopLoss": "29000.00"}}
    [placed] = kit.tap.of(OrderPlaced)
    assert (placed.stop_price, placed.stop_cid) == (29_000.0, POSITION_STOP_CID)  # type: ignore[attr-defined]
    assert [(e.stop_price, e.qty) for e in kit.tap.of(SLUpdated)] == [(29_000.0, 0.01)]  # type: ignore[attr-defined]
    recorded_stop = kit.journal.stop_for("bybit", BTC)
    assert recorded_stop is not None
    assert (recorded_stop.cid, recorded_stop.stop_price) == (POSITION_STOP_CID, 29_000.0)


async def test_a_partial_fill_is_protected_for_exactly_what_filled(tmp_path: Path) -> None:
    async with bybit_venue() as v:
        v.fill_ratio = 0.4
        kit = Kit(v, tmp_path / "journal", qty=0.1)
        try:
            await kit.adapter.ccxt.load_markets()
            await kit.bus.publish(_signal(29_000.0))
        finally:
            await kit.close()
    [placed] = kit.tap.of(OrderPlaced)
    assert (placed.requested_qty, placed.filled_qty) == (0.1, 0.04)  # type: ignore[attr-defined]
    [stop] = _stops(v)
    assert (stop["side"], stop["qty"], stop["triggerPrice"], stop["triggerDirection"]) == ("Sell", "0.04", "29000", 2)
    assert v.positions == {"BTCUSDT": 0.04}
    assert len(v.created) == 1  # nothing placed after the fill


async def test_a_stop_that_would_trigger_at_once_refuses_the_entry_never_leaves_it_unprotected(
    tmp_path: Path,
) -> None:
    async with bybit_venue() as v:
        kit = Kit(v, tmp_path / "journal", qty=0.1)
        try:
            await kit.adapter.ccxt.load_markets()
            await kit.bus.publish(_signal(30_500.0))  # a long's stop above the market
        finally:
            await kit.close()
    [failed] = kit.tap.of(OrderFailed)
    assert (failed.error_kind, failed.attempts) == ("invalid_order", 1)  # type: ignore[attr-defined]
    assert "StopLoss" in failed.message  # type: ignore[attr-defined]  # Bybit's own reason
    assert kit.tap.of(PositionOpened) == []
    assert v.orders == {}
    assert v.positions.get("BTCUSDT", 0.0) == 0.0


async def test_a_trailing_move_amends_the_attached_stop_no_second_stop_no_orphan(tmp_path: Path) -> None:
    async with bybit_venue() as v:
        kit = Kit(v, tmp_path / "journal", qty=0.01)
        try:
            await kit.adapter.ccxt.load_markets()
            await kit.bus.publish(_signal(29_000.0))
            [stop] = _stops(v)
            await v.move_price(31_000.0)
            await kit.bus.publish(_candle(1, 31_000.0))  # trails to 31,000 x 0.98 = 30,380
            await v.move_price(32_000.0)
            await kit.bus.publish(_candle(2, 32_000.0))  # 31,360
            moved = [dict(o) for o in _stops(v)]
            await v.move_price(31_000.0)  # through the stop: the venue fires it
            await kit.bus.publish(_candle(3, 31_000.0))
        finally:
            await kit.close()
    assert [(b["stopLoss"], b["tpslMode"], b["positionIdx"]) for b in v.trading_stops] == [
        ("30380", "Full", 0),
        ("31360", "Full", 0),
    ]
    assert len(v.created) == 1 and v.cancels == [] and v.amends == []  # no new stop, nothing to cancel
    assert [(o["orderId"], o["triggerPrice"]) for o in moved if o["orderStatus"] == "Untriggered"] == [
        (moved[-1]["orderId"], "31360")
    ]
    assert stop["orderStatus"] == "Deactivated"  # replaced in place by the venue, not left behind
    assert [e.stop_price for e in kit.tap.of(SLUpdated)] == [29_000.0, 30_380.0, 31_360.0]  # type: ignore[attr-defined]
    [closed] = kit.tap.of(PositionClosed)
    assert (closed.reason, closed.exit_price) == ("stop_loss", 31_000.0)  # type: ignore[attr-defined]
    assert v.positions == {"BTCUSDT": 0.0}
    assert [o["orderStatus"] for o in _stops(v)].count("Untriggered") == 0


async def test_after_a_restart_the_attached_stop_is_adopted_not_doubled(tmp_path: Path) -> None:
    async with bybit_venue() as v:
        first = Kit(v, tmp_path / "journal", qty=0.01)
        try:
            await first.adapter.ccxt.load_markets()
            await first.bus.publish(_signal(29_000.0))
        finally:
            await first.close()  # the kernel goes away; the position and its stop stay on the venue
        creates, stops_before = len(v.created), [dict(o) for o in _stops(v)]
        again = Kit(v, tmp_path / "journal", qty=0.01)
        try:
            await again.adapter.ccxt.load_markets()
            await again.positions.start()
            await v.move_price(31_000.0)
            await again.bus.publish(_candle(1, 31_000.0))  # the adopted stop trails, in place
        finally:
            await again.close()
    actions = [e.action for e in again.tap.of(PositionReconciled)]  # type: ignore[attr-defined]
    assert actions == ["adopted", "stop_adopted"]
    assert len(v.created) == creates and v.cancels == []  # nothing placed, nothing cancelled
    assert [b["stopLoss"] for b in v.trading_stops] == ["30380"]
    untriggered = [o for o in _stops(v) if o["orderStatus"] == "Untriggered"]
    assert [(o["stopOrderType"], o["triggerPrice"]) for o in untriggered] == [("StopLoss", "30380")]
    assert [o["orderStatus"] for o in stops_before] == ["Untriggered"]
    position = again.positions.positions[BTC]
    assert (position.qty, position.stop_price, position.stop_cid) == (0.01, 30_380.0, POSITION_STOP_CID)


async def test_okx_entry_carries_its_stop_as_an_attached_algo_order_with_our_client_id() -> None:
    okx = recorded("okx")
    replies = {
        ("POST", "/api/v5/trade/batch-orders"): [okx["createOrder"]["httpResponse"]],
        ("GET", "/api/v5/trade/order"): [okx["filledSwapMarketOrder"]["httpResponse"]],
    }
    async with recorded_venue(replies) as venue:
        adapter = venue_adapter("okx", venue, okx["markets"].values())
        try:
            placed = await adapter.place_market_order(
                "LTC/USDT:USDT",
                "buy",
                1.0,
                client_order_id="two-okx-1",
                stop_price=60.004,
                stop_client_order_id="tws-okx-1",
            )
        finally:
            await adapter.close()
    [create] = venue.sent("POST", "/api/v5/trade/batch-orders")
    [body] = json.loads(create.body)
    assert body["attachAlgoOrds"] == [
        {"attachAlgoClOrdId": "tws-okx-1", "slTriggerPx": "60", "slOrdPx": "-1", "slTriggerPxType": "last"}
    ]
    assert (body["clOrdId"], body["side"], body["ordType"]) == ("two-okx-1", "buy", "market")
    # OKX takes both or neither: the accepted entry is protected, by the stop listed under our client id.
    assert (placed.ok, placed.stop_price, placed.stop_client_order_id) == (True, 60.0, "tws-okx-1")


async def test_okx_entry_filled_in_part_is_not_taken_as_protected_by_its_attached_stop() -> None:
    okx = recorded("okx")
    partial = copy.deepcopy(okx["filledSwapMarketOrder"]["httpResponse"])
    partial["data"][0] |= {"sz": "2", "state": "canceled"}  # 1 of 2 filled: OKX places the stop on a full fill
    replies = {
        ("POST", "/api/v5/trade/batch-orders"): [okx["createOrder"]["httpResponse"]],
        ("GET", "/api/v5/trade/order"): [partial],
    }
    async with recorded_venue(replies) as venue:
        adapter = venue_adapter("okx", venue, okx["markets"].values())
        try:
            placed = await adapter.place_market_order(
                "LTC/USDT:USDT", "buy", 2.0, client_order_id="two-okx-2", stop_price=60.0, stop_client_order_id="tws-2"
            )
        finally:
            await adapter.close()
    assert (placed.ok, placed.filled_qty, placed.requested_qty) == (True, 1.0, 2.0)
    assert (placed.stop_price, placed.stop_client_order_id) == (0.0, "")  # the kernel places one on the fill


async def test_a_stop_known_only_by_our_client_id_is_found_and_cancelled_once_replaced() -> None:
    # OKX's attached stop gets its venue id only at the fill; here the Binance loopback plays that part.
    async with venue() as v:
        adapter = BinanceUsdm(config=_config("binanceusdm"), clock=LiveClock())
        v.point(adapter.ccxt)
        try:
            await adapter.place_market_order(BTC, "buy", 0.01, client_order_id="two-1")
            await adapter.update_stop_loss(BTC, "long", 0.01, 29_000.0, client_order_id="tws-first")
            known = OpenOrder(symbol=BTC, order_id="", client_order_id="tws-first", side="sell", qty=0.01)
            adapter.adopt_stop(BTC, known)  # as the position handler adopts an attached stop
            moved = await adapter.update_stop_loss(BTC, "long", 0.01, 29_500.0, client_order_id="tws-second")
        finally:
            await adapter.close()
    assert moved.ok
    assert {a["clientAlgoId"]: a["algoStatus"] for a in v.algo_orders.values()} == {
        "tws-first": "CANCELED",
        "tws-second": "NEW",
    }
