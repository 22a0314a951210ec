"""Entry sizing and position limits: several symbols share one account."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec
import pytest

from tests.pipeline.harness import MINUTE_NS, Tap
from twinstar import Config, Kernel
from twinstar.adapters.base import Balance, OpenOrder
from twinstar.adapters.sim import SimExchange
from twinstar.bus.events import CandleClosed, OrderFailed, OrderPlaced, PositionOpened, Side, SignalFired
from twinstar.clock import SimClock
from twinstar.config import ConfigError, RiskConfig
from twinstar.handlers import build_pipeline
from twinstar.handlers.sizing import FREE_HEADROOM, Sizer

SYMBOLS = ["AAA/USD", "BBB/USD", "CCC/USD"]


def balance(free: float, total: float | None = None) -> Balance:
    return Balance(currency="USD", free=free, total=free if total is None else total)


def test_one_symbol_sizes_as_before_a_fraction_of_equity() -> None:
    sizer = Sizer(RiskConfig(), ["BTC/USD"])
    assert sizer.qty("BTC/USD", balance(10_000.0), 100.0, 98.0) == pytest.approx(95.0)


def test_a_fraction_is_split_between_the_symbols_and_scaled_by_leverage() -> None:
    sizer = Sizer(RiskConfig(), SYMBOLS, {"AAA/USD": 3.0})
    assert sizer.qty("BBB/USD", balance(9_000.0), 10.0, 9.0) == pytest.approx(9_000 * 0.95 / 3 / 10)
    assert sizer.qty("AAA/USD", balance(9_000.0), 10.0, 9.0) == pytest.approx(9_000 * 0.95 / 10)


def test_a_fixed_quote_amount_per_entry() -> None:
    sizer = Sizer(RiskConfig(sizing="quote", quote_per_entry=500.0), SYMBOLS)
    assert sizer.qty("AAA/USD", balance(10_000.0), 25.0, 24.0) == pytest.approx(20.0)


def test_risk_per_trade_loses_that_share_of_equity_at_the_stop() -> None:
    sizer = Sizer(RiskConfig(sizing="risk", risk_per_trade_pct=1.0, max_symbol_share=1.0), SYMBOLS)
    qty = sizer.qty("AAA/USD", balance(10_000.0), 100.0, 95.0)
    assert qty == pytest.approx(20.0)  # 20 x (100 - 95) = 100 = 1% of 10,000
    assert sizer.qty("AAA/USD", balance(10_000.0), 100.0, 100.0) == 0.0  # no distance: nothing can be risked


def test_a_symbol_never_takes_more_than_its_share_nor_more_than_the_free_balance() -> None:
    tight = Sizer(RiskConfig(sizing="risk", risk_per_trade_pct=2.0), SYMBOLS)  # equal slots: a third each
    assert tight.qty("AAA/USD", balance(9_000.0), 100.0, 99.9) == pytest.approx(9_000 / 3 / 100)
    one = Sizer(RiskConfig(sizing="quote", quote_per_entry=50_000.0), ["AAA/USD"])
    assert one.qty("AAA/USD", balance(2_000.0, 10_000.0), 100.0, 99.0) == pytest.approx(FREE_HEADROOM * 2_000 / 100)


@pytest.mark.parametrize(
    ("toml", "says"),
    [
        ('[risk]\nsizing = "quote"', 'risk.quote_per_entry must be positive with sizing "quote": 0'),
        ("[risk]\nquote_per_entry = -5", "risk.quote_per_entry must be 0 or more, not -5"),
        ("[risk]\nrisk_per_trade_pct = 0", "risk.risk_per_trade_pct must be in (0, 100], not 0"),
        ("[risk]\nrisk_per_trade_pct = 150", "risk.risk_per_trade_pct must be in (0, 100], not 150"),
        ("[risk]\nmax_open_positions = -1", "risk.max_open_positions must be 0 (one per symbol) or more: -1"),
        ("[risk]\nmax_symbol_share = 1.5", "risk.max_symbol_share must be in [0, 1] (0: equal slots): 1.5"),
        ('[risk]\nsizing = "kelly"', "Invalid enum value 'kelly' - at `$.risk.sizing`"),
    ],
)
def test_sizing_values_out_of_range_are_refused_naming_the_key(toml: str, says: str) -> None:
    with pytest.raises(ConfigError) as refused:
        Config.from_toml(toml)
    assert says in str(refused.value)


@asynccontextmanager
async def venue(**risk: object) -> AsyncIterator[tuple[Kernel, SimClock, Tap]]:
    base = Config(symbols=SYMBOLS, interval="1m")
    cfg = msgspec.structs.replace(
        base,
        risk=msgspec.structs.replace(base.risk, trailing_stop=False, **risk),
        sim=msgspec.structs.replace(base.sim, taker_fee=0.0, initial_balance=9_000.0),
    )
    clock = SimClock(MINUTE_NS, autojump=True)
    parts = [
        p for p in build_pipeline(cfg, clock, SimExchange(clock, cfg.sim)) if type(p).__name__ != "StrategyHandler"
    ]
    tap = Tap()
    async with Kernel(cfg, clock=clock, components=[tap, *parts], mode="replay") as kernel:
        yield kernel, clock, tap


async def candle(kernel: Kernel, clock: SimClock, minute: int, symbol: str, close: float) -> None:
    clock.set_ns((minute + 1) * MINUTE_NS)
    await kernel.publish(
        CandleClosed(
            ts_ns=clock.now_ns(),
            exchange="sim",
            symbol=symbol,
            interval="1m",
            open_time_ms=minute * 60_000,
            open=close,
            high=close,
            low=close,
            close=close,
            volume=1.0,
        )
    )


async def signal(kernel: Kernel, clock: SimClock, minute: int, symbol: str, side: Side) -> None:
    await kernel.publish(
        SignalFired(
            ts_ns=clock.now_ns(),
            strategy="test",
            exchange="sim",
            symbol=symbol,
            side=side,
            price=100.0,
            stop_price=0.0,
            reason="test",
            candle_open_time_ms=minute * 60_000,
        )
    )


@pytest.mark.anyio
async def test_three_symbols_each_get_a_third_instead_of_the_first_taking_everything() -> None:
    async with venue() as (kernel, clock, tap):
        for symbol in SYMBOLS:
            await candle(kernel, clock, 1, symbol, 100.0)
        for symbol in SYMBOLS:
            await signal(kernel, clock, 1, symbol, "buy")
        opened = [e for e in tap.of(PositionOpened) if isinstance(e, PositionOpened)]
        assert [(e.symbol, round(e.qty, 9)) for e in opened] == [(s, 28.5) for s in SYMBOLS]  # 9,000 x 0.95 / 3 / 100
        assert tap.of(OrderFailed) == []


@pytest.mark.anyio
async def test_max_open_positions_refuses_the_entry_beyond_it_until_a_slot_frees() -> None:
    async with venue(max_open_positions=2) as (kernel, clock, tap):
        for symbol in SYMBOLS:
            await candle(kernel, clock, 1, symbol, 100.0)
        for symbol in SYMBOLS:
            await signal(kernel, clock, 1, symbol, "buy")
        failed = [e for e in tap.of(OrderFailed) if isinstance(e, OrderFailed)]
        assert [(e.symbol, e.intent, e.error_kind, e.message, e.attempts) for e in failed] == [
            ("CCC/USD", "open", "invalid_order", "risk.max_open_positions (2) reached: no entry sent", 0)
        ]
        opened = [(e.symbol, round(e.qty, 9)) for e in tap.of(PositionOpened) if isinstance(e, PositionOpened)]
        assert opened == [("AAA/USD", 42.75), ("BBB/USD", 42.75)]  # two slots: 9,000 x 0.95 / 2 / 100 each
        await signal(kernel, clock, 2, "AAA/USD", "sell")  # reverses AAA: still two positions, CCC still waits
        await signal(kernel, clock, 3, "CCC/USD", "buy")
        assert [e.symbol for e in tap.of(OrderFailed) if isinstance(e, OrderFailed)] == ["CCC/USD", "CCC/USD"]
        orders = [(e.symbol, e.intent) for e in tap.of(OrderPlaced) if isinstance(e, OrderPlaced)]
        assert orders[2:] == [("AAA/USD", "close"), ("AAA/USD", "open")]


async def limit_buy(kernel: Kernel, clock: SimClock, minute: int, symbol: str, limit_price: float) -> None:
    await kernel.publish(
        SignalFired(
            ts_ns=clock.now_ns(),
            strategy="test",
            exchange="sim",
            symbol=symbol,
            side="buy",
            price=100.0,
            stop_price=0.0,
            reason="test",
            candle_open_time_ms=minute * 60_000,
            order_type="limit",
            limit_price=limit_price,
        )
    )


@pytest.mark.anyio
async def test_a_limit_entry_is_sized_and_capped_at_its_limit_price_not_the_signals_close() -> None:
    async with venue(sizing="quote", quote_per_entry=1_000.0, max_notional_per_symbol=600.0) as (kernel, clock, tap):
        for symbol in SYMBOLS:
            await candle(kernel, clock, 1, symbol, 100.0)
        await limit_buy(kernel, clock, 1, "AAA/USD", 80.0)
        placed = [e for e in tap.of(OrderPlaced) if isinstance(e, OrderPlaced)]
        # 1,000 quote at 80 is 12.5, capped to 600 / 80 = 7.5 (at the close of 100 it would be 6).
        assert [(e.symbol, e.status, round(e.requested_qty, 9)) for e in placed] == [("AAA/USD", "open", 7.5)]


@pytest.mark.anyio
async def test_a_resting_limit_entry_holds_a_position_slot_until_it_is_cancelled() -> None:
    async with venue(max_open_positions=2) as (kernel, clock, tap):
        for symbol in SYMBOLS:
            await candle(kernel, clock, 1, symbol, 100.0)
        await limit_buy(kernel, clock, 1, "AAA/USD", 80.0)  # rests below the market
        await signal(kernel, clock, 1, "BBB/USD", "buy")
        await signal(kernel, clock, 1, "CCC/USD", "buy")  # AAA's resting entry and BBB's position: no slot
        failed = [(e.symbol, e.message) for e in tap.of(OrderFailed) if isinstance(e, OrderFailed)]
        assert failed == [("CCC/USD", "risk.max_open_positions (2) reached: no entry sent")]
        placed = [e for e in tap.of(OrderPlaced) if isinstance(e, OrderPlaced)]
        resting = next(e for e in placed if e.symbol == "AAA/USD")
        sim = next(c for c in kernel.components if isinstance(c, SimExchange))
        order = OpenOrder(
            symbol="AAA/USD",
            order_id=resting.order_id,
            client_order_id=resting.client_order_id,
            side="buy",
            qty=resting.requested_qty,
            price=80.0,
        )
        assert (await sim.cancel_order("AAA/USD", order)).ok
        await signal(kernel, clock, 2, "CCC/USD", "buy")  # the cancelled entry gave its slot back
        opened = [e.symbol for e in tap.of(PositionOpened) if isinstance(e, PositionOpened)]
        assert opened == ["BBB/USD", "CCC/USD"]
