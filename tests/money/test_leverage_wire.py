"""Leverage and margin mode over real ccxt to the loopback Binance USD-M and Bybit v5 venues."""

from __future__ import annotations

import os
import uuid

import msgspec
import pytest

from tests.adapters.test_adapters_wire import _config
from twinstar.adapters.binance import BinanceUsdm
from twinstar.adapters.bybit import Bybit
from twinstar.adapters.margin import MarginSettings
from twinstar.check import check_venue
from twinstar.clock import LiveClock
from twinstar.config import ConfigError, ExchangeConfig, VenueConfig
from twinstar.handlers.leverage import MarginCheck, MarginSettingError, settle_margin
from twinstar.testing import bybit_venue
from twinstar.testing.venue import venue

pytestmark = pytest.mark.anyio
BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"


def _own_key(config: ExchangeConfig, name: str) -> ExchangeConfig:
    """A key of its own: each test gets a fresh process-wide rate budget."""
    os.environ[name] = f"test-api-key-{uuid.uuid4().hex}"
    return msgspec.structs.replace(config, api_key_env=name)


def binance(v: object, **margin: object) -> BinanceUsdm:
    config = msgspec.structs.replace(_own_key(_config("binanceusdm"), "TW_LEV_BINANCE_KEY"), **margin)
    adapter = BinanceUsdm(config=config, clock=LiveClock())
    v.point(adapter.ccxt)  # type: ignore[attr-defined]
    return adapter


def bybit(v: object, **margin: object) -> Bybit:
    config = msgspec.structs.replace(_own_key(_config("bybit"), "TW_LEV_BYBIT_KEY"), **margin)
    adapter = Bybit(config=config, clock=LiveClock())
    v.point(adapter.ccxt)  # type: ignore[attr-defined]
    return adapter


async def test_binance_sets_leverage_and_isolated_margin_per_symbol_and_reads_them_back() -> None:
    async with venue() as v:
        adapter = binance(v, leverage=5.0, symbol_leverage={ETH: 3.0}, margin_mode="isolated")
        try:
            first = await settle_margin(adapter, [BTC, ETH])
            again = await settle_margin(adapter, [BTC, ETH])  # already so: -4046 "No need to change margin type"
        finally:
            await adapter.close()
    expected = [
        MarginCheck(
            symbol=BTC,
            wanted_leverage=5.0,
            wanted_mode="isolated",
            found=MarginSettings(symbol=BTC, leverage=5.0, margin_mode="isolated"),
        ),
        MarginCheck(
            symbol=ETH,
            wanted_leverage=3.0,
            wanted_mode="isolated",
            found=MarginSettings(symbol=ETH, leverage=3.0, margin_mode="isolated"),
        ),
    ]
    assert (first, again) == (expected, expected)
    assert (v.leverage, v.margin_types) == (
        {"BTCUSDT": 5, "ETHUSDT": 3},
        {"BTCUSDT": "ISOLATED", "ETHUSDT": "ISOLATED"},
    )
    posts = [path for method, path in v.requests if method == "POST" and "order" not in path]
    assert posts.count("/fapi/v1/marginType") == 4 and posts.count("/fapi/v1/leverage") == 4


async def test_binance_refusing_a_margin_change_with_a_position_open_stops_the_start_naming_the_symbol() -> None:
    async with venue() as v:
        v.positions["BTCUSDT"] = 0.01
        v.entry_prices["BTCUSDT"] = 30_000.0
        adapter = binance(v, margin_mode="isolated")
        try:
            with pytest.raises(MarginSettingError) as refused:
                await settle_margin(adapter, [BTC])
        finally:
            await adapter.close()
    message = str(refused.value)
    assert message.startswith("exchange 'binanceusdm' BTC/USDT:USDT: 20x, cross (config sets isolated); setting it")
    assert "-4048" in message and isinstance(refused.value, ConfigError)


async def test_bybit_sets_leverage_and_the_unified_accounts_margin_mode_and_not_modified_is_no_error() -> None:
    async with bybit_venue() as v:
        adapter = bybit(v, leverage=7.5, margin_mode="isolated")
        try:
            first = await settle_margin(adapter, [BTC])
            again = await settle_margin(adapter, [BTC])  # 110043 "Set leverage not modified"
        finally:
            await adapter.close()
    expected = [
        MarginCheck(
            symbol=BTC,
            wanted_leverage=7.5,
            wanted_mode="isolated",
            found=MarginSettings(symbol=BTC, leverage=7.5, margin_mode="isolated"),
        )
    ]
    assert (first, again) == (expected, expected)  # read from Bybit's own "7.5", not ccxt's integer
    assert (v.leverages, v.margin_mode) == ({"BTCUSDT": "7.5"}, "ISOLATED_MARGIN")


async def test_bybit_whole_leverage_verifies_and_a_symbol_without_settings_is_left_alone() -> None:
    async with bybit_venue() as v:
        adapter = bybit(v, symbol_leverage={BTC: 4.0})
        try:
            checks = await settle_margin(adapter, [BTC, ETH])
        finally:
            await adapter.close()
    assert checks == [
        MarginCheck(
            symbol=BTC,
            wanted_leverage=4.0,
            wanted_mode="",
            found=MarginSettings(symbol=BTC, leverage=4.0, margin_mode="cross"),
        )
    ]
    assert v.leverages == {"BTCUSDT": "4"}
    assert [path for _, path in v.requests].count("/v5/account/set-margin-mode") == 0


async def test_check_reports_each_symbols_leverage_without_changing_it() -> None:
    async with venue() as v:
        config = _own_key(_config("binanceusdm"), "TW_LEV_CHECK_KEY")
        block = VenueConfig(
            **msgspec.structs.asdict(msgspec.structs.replace(config, api_base_url=v.base, leverage=5.0)), symbols=[BTC]
        )
        rows = await check_venue(block)
    assert [row for row in rows if row[0] == "leverage"] == [
        ("leverage", False, "BTC/USDT:USDT: 20x, cross (config sets 5x)")
    ]
    assert v.leverage == {}


def test_leverage_out_of_range_or_on_spot_is_refused_naming_the_key() -> None:
    from twinstar.config import Config

    cases = {
        '[exchange]\nid = "binanceusdm"\nleverage = 200': "exchange 'binanceusdm': leverage must be in [1, 125]",
        '[exchange]\nid = "bybit"\nsymbol_leverage = { "ETH/USDT:USDT" = 3 }': "symbol_leverage['ETH/USDT:USDT']: ",
        '[exchange]\nid = "upbit"\nmarket_type = "spot"\nmargin_mode = "cross"': "need a derivatives market",
    }
    for toml, says in cases.items():
        with pytest.raises(ConfigError) as refused:
            Config.from_toml(toml)
        assert says in str(refused.value), toml


async def test_a_live_start_sets_the_margin_before_reconciling_and_refuses_a_mismatch() -> None:
    from twinstar.config import RiskConfig
    from twinstar.handlers.position import PositionHandler

    async with venue() as v:
        adapter = binance(v, leverage=4.0)
        mismatched = binance(v, margin_mode="isolated")
        v.positions["ETHUSDT"] = 0.1  # an open position: Binance refuses the margin change (-4048)
        v.entry_prices["ETHUSDT"] = 2_000.0
        try:
            await PositionHandler(adapter, LiveClock(), RiskConfig(), symbols=[BTC]).start()
            with pytest.raises(MarginSettingError, match=r"^exchange 'binanceusdm' ETH/USDT:USDT: 20x, cross"):
                await PositionHandler(mismatched, LiveClock(), RiskConfig(), symbols=[ETH]).start()
        finally:
            await adapter.close()
            await mismatched.close()
    assert v.leverage == {"BTCUSDT": 4}
    first_reconcile = next(i for i, r in enumerate(v.requests) if r[1].endswith("positionRisk"))
    assert ("POST", "/fapi/v1/leverage") in v.requests[:first_reconcile]


def test_a_setting_the_venue_does_not_report_passes_unverified_and_a_different_one_fails() -> None:
    unreported = MarginCheck(symbol=BTC, wanted_leverage=5.0, wanted_mode="cross", found=MarginSettings(symbol=BTC))
    differs = MarginCheck(
        symbol=BTC, wanted_leverage=5.0, wanted_mode="", found=MarginSettings(symbol=BTC, leverage=10.0)
    )
    assert (unreported.ok, unreported.verified, differs.ok, differs.verified) == (True, False, False, True)
    assert unreported.describe() == "leverage not reported, margin mode not reported (config sets 5x, cross)"
    assert MarginCheck(symbol=BTC, wanted_leverage=5.0, wanted_mode="", error="boom").describe() == (
        "could not be read: boom"
    )
