"""Fees in the quote currency whatever asset paid them, and funding in PnL: simulated, and read from venues."""

from __future__ import annotations

from pathlib import Path

import msgspec
import polars as pl
import pytest

from tests.money.test_leverage_wire import binance, bybit
from tests.pipeline.harness import Rig, rig
from twinstar import Config
from twinstar.adapters.sim import SimExchange
from twinstar.bus.events import CandleClosed, PositionClosed
from twinstar.clock import SimClock
from twinstar.config import ConfigError, SimConfig
from twinstar.money.costs import market_fill_price
from twinstar.money.fees import fee_in_quote, third_assets
from twinstar.money.funding import FundingDataError, FundingRates
from twinstar.report.statistics import compute_statistics
from twinstar.report.trades import TradeBook
from twinstar.testing import bybit_venue
from twinstar.testing.venue import venue

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
HOUR_MS = 3_600_000


def test_fees_in_quote_base_and_a_third_asset_are_all_counted_in_quote() -> None:
    order = {"fees": [{"cost": 0.5, "currency": "USDT"}, {"cost": 0.001, "currency": "BTC"}]}
    assert fee_in_quote(order, base="BTC", quote="USDT", price=30_000.0) == pytest.approx(30.5)
    bnb = {"fee": {"cost": 0.02, "currency": "BNB"}, "fees": []}
    assert third_assets(bnb, base="BTC", quote="USDT") == {"BNB"}
    assert fee_in_quote(bnb, base="BTC", quote="USDT", price=30_000.0, rates={"BNB": 600.0}) == pytest.approx(12.0)
    with pytest.raises(ValueError, match=r"a fee of 0.02 BNB has no BNB/USDT price to convert it"):
        fee_in_quote(bnb, base="BTC", quote="USDT", price=30_000.0)
    assert fee_in_quote({"fee": {"cost": 1.25, "currency": None}}, base="BTC", quote="USDT", price=1.0) == 1.25
    assert fee_in_quote({"fee": None}, base="BTC", quote="USDT", price=1.0) == 0.0


@pytest.mark.anyio
async def test_a_fee_paid_in_a_third_asset_is_priced_by_a_ticker_fetched_on_the_fill() -> None:
    async with venue() as v:
        v.prices["ETHUSDT"] = 2_000.0
        adapter = binance(v)
        try:
            await adapter.ccxt.load_markets()
            fill = {"symbol": BTC, "filled": 0.01, "amount": 0.01, "average": 30_000.0, "status": "closed"}
            fill |= {"id": "1", "clientOrderId": "twc-1", "fee": {"cost": 0.0001, "currency": "ETH"}}
            await adapter.price_fee_assets(fill, BTC)
            priced = adapter._result(fill, "twc-1", 0.01, BTC)
            base_fee = adapter._result(fill | {"fee": {"cost": 0.00001, "currency": "BTC"}}, "twc-1", 0.01, BTC)
        finally:
            await adapter.close()
    assert (round(priced.fee, 12), round(base_fee.fee, 12)) == (0.2, 0.3)  # 0.0001 x 2,000; 0.00001 x 30,000
    assert ("GET", "/fapi/v1/ticker/24hr") in v.requests


def test_the_spread_and_slippage_move_a_market_fill_against_the_taker() -> None:
    last = CandleClosed(
        ts_ns=0,
        exchange="sim",
        symbol="X",
        interval="1m",
        open_time_ms=0,
        open=100,
        high=102,
        low=98,
        close=100,
        volume=1,
    )
    costs = SimConfig(slippage_bps=10.0, spread_bps=20.0, spread_range_share=0.5)
    assert market_fill_price(costs, "buy", last) == pytest.approx(100 * 1.002 + 1.0)  # 10 bps + 10 bps + half of 2
    assert market_fill_price(costs, "sell", last) == pytest.approx(100 * 0.998 - 1.0)
    assert market_fill_price(SimConfig(), "buy", last) == 100.0


def test_fee_and_spread_values_out_of_range_are_refused_naming_the_key() -> None:
    for toml, says in {
        "[sim]\ntaker_fee = 0.5": "sim.taker_fee must be in [-0.01, 0.1)",
        "[sim]\nmaker_fee = -0.5": "sim.maker_fee must be in [-0.01, 0.1)",
        "[sim]\nspread_bps = -1": "sim.spread_bps must be in [0, 10000) basis points, not -1",
        "[sim]\nspread_range_share = 2": "sim.spread_range_share must be in [0, 1], not 2",
        "[sim]\nleverage = 0": "sim.leverage must be in [1, 125], not 0",
    }.items():
        with pytest.raises(ConfigError) as refused:
            Config.from_toml(toml)
        assert says in str(refused.value), toml


def write_rates(path: Path, rows: list[tuple[int, float]]) -> Path:
    path.write_text("time_ms,rate\n" + "".join(f"{t},{r}\n" for t, r in rows))
    return path


def test_a_funding_file_without_its_columns_is_refused_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "rates.csv"
    bad.write_text("when,rate\n1,0.1\n")
    with pytest.raises(FundingDataError, match=r"^funding rates .*rates.csv: no column time_ms$"):
        FundingRates.load(bad)
    with pytest.raises(ConfigError, match="cannot read funding rates"):
        SimExchange(SimClock(0), SimConfig(funding_path=str(tmp_path / "missing.csv")))


@pytest.mark.anyio
async def test_the_simulator_charges_funding_on_what_is_held_and_it_lands_in_pnl_and_the_report(tmp_path: Path) -> None:
    # Funding at minutes 2 (before the entry), 3 and 4 (held, long, at rate 0.001 and -0.0005), 9 (after the exit).
    rates = write_rates(tmp_path / "rates.csv", [(2 * 60_000, 0.01), (3 * 60_000, 0.001), (4 * 60_000, -0.0005)])
    with (tmp_path / "rates.csv").open("a") as extra:
        extra.write(f"{9 * 60_000},0.01\n")
    base = Config(symbols=["BTC/USD"], interval="1m")
    cfg = msgspec.structs.replace(
        base,
        risk=msgspec.structs.replace(base.risk, order_qty=2.0, trailing_stop=False),
        sim=msgspec.structs.replace(base.sim, taker_fee=0.0, initial_balance=1_000.0, funding_path=str(rates)),
    )
    book = TradeBook()
    async with rig(cfg) as r:
        book.attach(r.kernel.bus)
        await r.candle(100.0)  # closes at minute 2: the rate at 2 falls due on nothing
        await r.signal("buy", stop=50.0)
        await r.candle(110.0)  # minute 3: long 2 pays 2 x 110 x 0.001 = 0.22
        await r.candle(120.0)  # minute 4: receives 2 x 120 x 0.0005 = 0.12
        await r.signal("sell", stop=200.0)  # reverses: the long closes with its funding, a short opens
        closed = _closed(r)
        cash = r.sim.cash
    assert [(e.reason, round(e.funding, 12), round(e.pnl, 12)) for e in closed] == [("signal", -0.10, 39.90)]
    assert cash == pytest.approx(1_000.0 + closed[0].pnl)  # the simulator's books agree with the position's
    trades = book.frame()
    assert trades["funding"].to_list() == [pytest.approx(-0.10), 0.0]  # the open short is marked, no funding yet
    stats = compute_statistics(_curve(), trades.head(1), initial_equity=1_000.0)
    assert (round(stats.funding, 12), round(stats.net_pnl, 12), round(stats.gross_pnl, 12)) == (-0.10, 39.90, 40.0)


def _closed(r: Rig) -> list[PositionClosed]:
    return [e for e in r.tap.of(PositionClosed) if isinstance(e, PositionClosed)]


def _curve() -> pl.DataFrame:
    return pl.DataFrame(
        {"time_ms": [60_000, 120_000, 180_000], "equity": [1_000.0, 1_020.0, 1_039.9], "close": [100.0, 110.0, 120.0]}
    )


@pytest.mark.anyio
async def test_binance_funding_is_read_from_the_income_history_after_the_open() -> None:
    async with venue() as v:
        v.incomes = [
            {"symbol": "BTCUSDT", "incomeType": "FUNDING_FEE", "income": income, "asset": "USDT"}
            | {"info": "FUNDING_FEE", "time": at, "tranId": str(at), "tradeId": ""}
            for at, income in ((1_000, "-9.0"), (2_000, "-0.37"), (3_000, "0.12"))
        ]
        v.incomes.append(v.incomes[1] | {"symbol": "ETHUSDT", "tranId": "eth"})
        adapter = binance(v)
        try:
            received = await adapter.fetch_funding(BTC, 1_000)
            asked = v.requests.count(("GET", "/fapi/v1/income"))
            this_hour = adapter.clock.now_ms() // HOUR_MS * HOUR_MS
            none_due = await adapter.fetch_funding(BTC, this_hour)  # funding falls due on the hour: nothing to ask
        finally:
            await adapter.close()
    assert received == pytest.approx(-0.25)  # the payment at 1,000 belongs to what was held before
    assert (asked, none_due, v.requests.count(("GET", "/fapi/v1/income"))) == (1, 0.0, 1)


@pytest.mark.anyio
async def test_bybit_funding_comes_from_funding_executions_whose_fee_is_what_was_paid() -> None:
    async with bybit_venue() as v:
        funding = {"symbol": "BTCUSDT", "execType": "Funding", "execFee": "0.5", "execTime": "5000", "execId": "f1"}
        funding |= {"orderId": "", "orderLinkId": "", "feeRate": "0.0001", "execPrice": "30000", "execQty": "1"}
        v.executions.append(funding)
        v.executions.append(funding | {"execFee": "-0.2", "execTime": "6000", "execId": "f2"})
        adapter = bybit(v)
        try:
            received = await adapter.fetch_funding(BTC, 1_000)
        finally:
            await adapter.close()
    assert received == pytest.approx(-0.3)  # paid 0.5, received 0.2


def test_a_position_closed_without_funding_still_round_trips() -> None:
    from twinstar.bus.events import decode, encode

    closed = PositionClosed(
        ts_ns=1, exchange="sim", symbol="X", side="long", qty=1, entry_price=1, exit_price=2, pnl=1, fees=0, reason="x"
    )
    assert decode(encode(closed)) == closed and closed.funding == 0.0


@pytest.mark.anyio
async def test_binance_entry_fees_paid_in_another_asset_are_read_from_its_trades_once_protected() -> None:
    from twinstar.bus.events import OrderPlaced
    from twinstar.clock import LiveClock
    from twinstar.config import RiskConfig
    from twinstar.handlers.position import PositionHandler

    async with venue() as v:
        v.commission_asset, v.prices["ETHUSDT"], v.prices["BTCUSDT"] = "ETH", 2_000.0, 30_000.0
        adapter = binance(v)
        handler = PositionHandler(adapter, LiveClock(), RiskConfig(), symbols=[BTC])
        try:
            placed = await adapter.place_market_order(BTC, "buy", 0.01, client_order_id="two-fee-1")
            await handler.on_order(
                OrderPlaced(
                    ts_ns=1,
                    client_order_id=placed.client_order_id,
                    order_id=placed.order_id,
                    exchange=adapter.name,
                    symbol=BTC,
                    side="buy",
                    intent="open",
                    requested_qty=0.01,
                    filled_qty=placed.filled_qty,
                    avg_price=placed.avg_price,
                    fee=placed.fee,
                    status=placed.status,
                    attempts=1,
                    partial=False,
                )
            )
        finally:
            await adapter.close()
    assert placed.fee == 0.0  # Binance's order reply carries no commission
    assert round(handler.positions[BTC].fees, 9) == round(0.01 * 30_000 * v.taker_fee, 9)  # 0.000075 ETH x 2,000
    requests = [path for _, path in v.requests]
    assert requests.index("/fapi/v1/algoOrder") < requests.index("/fapi/v1/userTrades")  # the stop went first


@pytest.mark.anyio
async def test_simulated_slippage_and_maker_taker_fees_show_in_the_trades_and_the_statistics() -> None:
    base = Config(symbols=["BTC/USD"], interval="1m")
    cfg = msgspec.structs.replace(
        base,
        risk=msgspec.structs.replace(base.risk, order_qty=1.0, trailing_stop=False),
        sim=msgspec.structs.replace(
            base.sim, taker_fee=0.001, maker_fee=0.0, slippage_bps=50.0, spread_bps=100.0, initial_balance=1_000.0
        ),
    )
    book = TradeBook()
    async with rig(cfg) as r:
        book.attach(r.kernel.bus)
        await r.candle(100.0)
        await r.signal("buy", stop=50.0)  # fills at 100 x (1 + 0.005 + 0.005) = 101
        await r.candle(110.0)
        await r.signal("sell", stop=200.0)  # the long closes at 110 x 0.99 = 108.9
        closed = _closed(r)
    assert [(round(e.exit_price, 9), round(e.slippage, 9), round(e.fees, 9)) for e in closed] == [(108.9, 2.1, 0.2099)]
    assert round(closed[0].pnl, 9) == round(108.9 - 101.0 - 0.2099, 9)  # the slippage is in the prices
    trades = book.frame().head(1)
    stats = compute_statistics(_curve(), trades, initial_equity=1_000.0)
    assert (round(stats.slippage, 9), round(stats.fees, 9)) == (2.1, 0.2099)
    assert ("slippage (in the prices)", "2.10") in stats.rows()


@pytest.mark.anyio
async def test_a_resting_limit_pays_the_maker_fee_and_a_market_order_the_taker_fee() -> None:
    clock = SimClock(60_000_000_000)
    sim = SimExchange(clock, SimConfig(taker_fee=0.001, maker_fee=0.0002))

    def bar(close: float, low: float) -> CandleClosed:
        return CandleClosed(
            ts_ns=clock.now_ns(), exchange="sim", symbol="X", interval="1m", open_time_ms=0,
            open=close, high=close, low=low, close=close, volume=1.0,
        )  # fmt: skip

    sim.on_candle(bar(100.0, 100.0))
    market = await sim.place_market_order("X", "buy", 1.0, client_order_id="m")
    resting = await sim.place_limit_order("X", "buy", 1.0, 95.0, client_order_id="l")
    sim.on_candle(bar(96.0, 94.0))  # trades through 95: the limit fills there, as a maker
    filled = await sim.fetch_order("X", "l")
    assert (round(market.fee, 9), resting.status, filled.status, round(filled.fee, 9)) == (0.1, "open", "filled", 0.019)
