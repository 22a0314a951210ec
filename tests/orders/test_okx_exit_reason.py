"""OKX keeps an entry's stop and take-profit in one attached algo order: the close is booked as what fired.

Real ccxt (`okx`) against a venue on 127.0.0.1 serving OKX v5 bodies, through
the real execution and position handlers. The entry is ccxt's recorded create
and filled LTC-USDT-SWAP order (tests/adapters/data/ccxt-static/okx.json).
What happens once an exit fired is shaped as OKX documents it: the order the
algo placed has no `clOrdId` of ours (`/trade/order` answers 51603, "Order
does not exist"); `GET /api/v5/trade/order-algo?algoClOrdId=` answers the algo
order with `state` effective, `actualSide` tp or sl, and the placed order's id
in `ordIdList`; `GET /api/v5/trade/order?ordId=` answers that order's fill.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tests.adapters.recorded_venue import recorded, recorded_venue, venue_adapter
from tests.pipeline.harness import Tap
from twinstar.adapters.base import ErrorKind
from twinstar.bus.bus import Bus
from twinstar.bus.events import CandleClosed, OrderPlaced, PositionClosed, SignalFired
from twinstar.clock import LiveClock
from twinstar.config import ExecutionConfig, RiskConfig
from twinstar.handlers.execution import ExecutionHandler, client_order_id
from twinstar.handlers.journal import Journal
from twinstar.handlers.position import PositionHandler

pytestmark = pytest.mark.anyio
LTC = "LTC/USDT:USDT"
T0 = 1_706_612_100_000
ENTRY = client_order_id("t", LTC, T0, "open")
STOP = client_order_id("t", LTC, T0, "stop_loss")  # the attached algo order's client id (attachAlgoClOrdId)
EXIT_ORD_ID = "672515999999999999"


def _ok(*data: dict[str, Any]) -> dict[str, Any]:
    return {"code": "0", "data": list(data), "msg": ""}


def _algo(actual_side: str) -> dict[str, Any]:
    """The attached algo order once it fired (an `oco`: both exits), as Get algo order details lists it."""
    return _ok(
        {
            "instType": "SWAP",
            "instId": "LTC-USDT-SWAP",
            "ordId": EXIT_ORD_ID,
            "ordIdList": [EXIT_ORD_ID],
            "algoId": "1836487817828872192",
            "clOrdId": "",
            "algoClOrdId": STOP,
            "sz": "1",
            "ordType": "oco",
            "side": "sell",
            "posSide": "net",
            "tdMode": "cross",
            "state": "effective",
            "actualSide": actual_side,
            "actualSz": "1",
            "actualPx": "",
            "slTriggerPx": "60",
            "slOrdPx": "-1",
            "slTriggerPxType": "last",
            "tpTriggerPx": "75",
            "tpOrdPx": "-1",
            "tpTriggerPxType": "last",
            "reduceOnly": "true",
            "triggerTime": "1706612400000",
            "cTime": "1706612162995",
            "uTime": "1706612400001",
        }
    )


def _exit_fill(price: str) -> dict[str, Any]:
    """The market sell the algo placed: ccxt's recorded filled order, turned into that close."""
    body: dict[str, Any] = copy.deepcopy(recorded("okx")["filledSwapMarketOrder"]["httpResponse"])
    body["data"][0] |= {
        "ordId": EXIT_ORD_ID,
        "clOrdId": "",
        "algoClOrdId": STOP,
        "side": "sell",
        "reduceOnly": "true",
        "avgPx": price,
        "fillPx": price,
        "fee": "-0.0375",
        "tag": "",
    }
    return body


def _replies(actual_side: str, exit_price: str) -> dict[tuple[str, str], list[Any]]:
    okx = recorded("okx")
    entry = copy.deepcopy(okx["filledSwapMarketOrder"]["httpResponse"])
    entry["data"][0]["clOrdId"] = ENTRY
    gone = {"code": "51603", "data": [], "msg": "Order does not exist"}
    return {
        ("GET", "/api/v5/account/positions"): [_ok()],  # flat before the entry's read, and once the exit fired
        ("POST", "/api/v5/trade/batch-orders"): [okx["createOrder"]["httpResponse"]],
        ("GET", "/api/v5/trade/order"): [entry, gone, _exit_fill(exit_price)],
        ("GET", "/api/v5/trade/order-algo"): [_algo(actual_side)],
        ("GET", "/api/v5/trade/orders-pending"): [_ok()],  # nothing rests any more
        ("GET", "/api/v5/trade/orders-algo-pending"): [_ok()],
    }


async def _bracket_then_exit(actual_side: str, exit_price: str, *, restart_at: Path | None = None) -> tuple[Any, Tap]:
    """Enter with both exits attached; the exit fires, seen by the next candle's check or, after a restart, at start."""
    async with recorded_venue(_replies(actual_side, exit_price)) as venue:
        adapter = venue_adapter("okx", venue, recorded("okx")["markets"].values())
        clock = LiveClock()
        bus = Bus(clock, mode="replay")
        tap = Tap()
        tap.attach(bus)
        risk = RiskConfig(order_qty=1.0, trailing_stop=False, reconcile_every=1)
        journal = Journal(restart_at)
        PositionHandler(adapter, clock, risk, journal=journal, symbols=[LTC]).attach(bus)
        ExecutionHandler(adapter, clock, ExecutionConfig(), risk, journal=journal).attach(bus)
        try:
            signal = SignalFired(
                ts_ns=clock.now_ns(),
                strategy="t",
                exchange="okx",
                symbol=LTC,
                side="buy",
                price=68.0,
                stop_price=60.0,
                reason="test",
                candle_open_time_ms=T0,
                take_profit_price=75.0,
            )
            await bus.publish(signal)
            if restart_at is not None:  # the kernel goes away; the position and its exits stay on OKX
                journal.close()
                again = PositionHandler(adapter, clock, risk, journal=Journal(restart_at), symbols=[LTC])
                again.attach(bus)
                await again.start()  # the start reconciliation finds it flat: closed while the kernel was down
                again.journal.close()
                return venue, tap
            close = float(exit_price)
            candle = CandleClosed(
                ts_ns=clock.now_ns(),
                exchange="okx",
                symbol=LTC,
                interval="1m",
                open_time_ms=T0 + 60_000,
                open=68.0,
                high=max(68.0, close),
                low=min(68.5, close),
                close=close,
                volume=1.0,
            )
            await bus.publish(candle)  # the routine check finds the position flat
        finally:
            await adapter.close()
    return venue, tap


async def test_a_take_profit_fired_from_the_attached_algo_order_is_booked_as_take_profit() -> None:
    venue, tap = await _bracket_then_exit("tp", "75.1")
    [create] = venue.sent("POST", "/api/v5/trade/batch-orders")
    [body] = json.loads(create.body)
    assert body["attachAlgoOrds"] == [  # both exits in one attached algo order, under the stop's client id
        {
            "attachAlgoClOrdId": STOP,
            "slTriggerPx": "60",
            "slOrdPx": "-1",
            "slTriggerPxType": "last",
            "tpTriggerPx": "75",
            "tpOrdPx": "-1",
            "tpTriggerPxType": "last",
        }
    ]
    [placed] = tap.of(OrderPlaced)
    assert (placed.stop_cid, placed.take_profit_cid, placed.take_profit_price) == (STOP, STOP, 75.0)  # type: ignore[attr-defined]
    assert [r.query.get("algoClOrdId") for r in venue.sent("GET", "/api/v5/trade/order-algo")] == [STOP]
    assert [r.query.get("ordId") for r in venue.sent("GET", "/api/v5/trade/order")][-1] == EXIT_ORD_ID
    [closed] = tap.of(PositionClosed)
    assert (closed.reason, closed.exit_price, closed.qty) == ("take_profit", 75.1, 1.0)  # type: ignore[attr-defined]
    assert round(closed.pnl, 8) == round(75.1 - 68.24 - 0.00003412 - 0.0375, 8)  # type: ignore[attr-defined]


async def test_the_stop_side_of_the_same_algo_order_is_booked_as_stop_loss() -> None:
    _, tap = await _bracket_then_exit("sl", "59.9")
    [closed] = tap.of(PositionClosed)
    assert (closed.reason, closed.exit_price) == ("stop_loss", 59.9)  # type: ignore[attr-defined]


async def test_a_take_profit_that_fired_while_the_kernel_was_down_is_booked_as_take_profit(tmp_path: Path) -> None:
    _, tap = await _bracket_then_exit("tp", "75.1", restart_at=tmp_path / "journal")
    [closed] = tap.of(PositionClosed)
    assert (closed.reason, closed.exit_price, closed.qty) == ("take_profit", 75.1, 1.0)  # type: ignore[attr-defined]


async def test_an_id_okx_knows_neither_as_order_nor_as_algo_order_is_not_found() -> None:
    gone = {"code": "51603", "data": [], "msg": "Order does not exist"}
    replies = {("GET", "/api/v5/trade/order"): [gone], ("GET", "/api/v5/trade/order-algo"): [gone]}
    async with recorded_venue(replies) as venue:
        adapter = venue_adapter("okx", venue, recorded("okx")["markets"].values())
        try:
            found = await adapter.fetch_order(LTC, ENTRY)
        finally:
            await adapter.close()
    assert (found.ok, found.error_kind) == (False, ErrorKind.ORDER_NOT_FOUND)  # "never arrived" keeps its meaning
    assert [r.path for r in venue.requests] == ["/api/v5/trade/order", "/api/v5/trade/order-algo"]
