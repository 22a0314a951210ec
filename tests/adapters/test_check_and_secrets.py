"""`twinstar check` against a loopback venue, and keys never leaking into output or streams."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from twinstar.testing.venue import venue

pytestmark = pytest.mark.anyio
KEY = "live-key-do-not-leak-0123456789"
SECRET = "live-secret-do-not-leak-abcdef"


async def test_check_prints_a_table_and_never_the_keys(tmp_path: Path) -> None:
    async with venue() as v:
        v.offset_ms = 150
        config = tmp_path / "live.toml"
        config.write_text(
            'symbols = ["BTC/USDT:USDT", "DOGE/USDT:USDT"]\ninterval = "1m"\n[exchange]\nid = "binanceusdm"\n'
            f'api_key_env = "TW_KEY"\napi_secret_env = "TW_SECRET"\napi_base_url = "{v.base}"\n'
            "options = { fetchCurrencies = false }\n"
        )
        env = {**os.environ, "TW_KEY": KEY, "TW_SECRET": SECRET}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "twinstar",
            "check",
            "--config",
            str(config),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
    text = out.decode() + err.decode()
    assert proc.returncode == 1, text  # DOGE is not in the recorded market list
    assert "API credentials   OK" in text
    assert "clock offset      OK" in text
    assert "markets           FAILED  2 loaded; unknown: DOGE/USDT:USDT" in text
    assert "account access    OK      USDT free 10,000.00" in text
    assert KEY not in text and SECRET not in text


def test_a_missing_key_variable_is_named_not_shown(tmp_path: Path) -> None:
    config = tmp_path / "live.toml"
    config.write_text('[exchange]\nid = "binanceusdm"\napi_key_env = "TW_UNSET_KEY"\n')
    env = {k: v for k, v in os.environ.items() if k != "TW_UNSET_KEY"}
    result = subprocess.run(
        [sys.executable, "-m", "twinstar", "check", "--config", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "environment variable TW_UNSET_KEY (exchange.apiKey) is not set" in result.stdout
    assert result.returncode == 1


async def test_keys_stay_out_of_recorded_streams_and_adapter_errors(tmp_path: Path) -> None:
    from twinstar.adapters.binance import BinanceUsdm
    from twinstar.bus.record import Recorder
    from twinstar.clock import LiveClock
    from twinstar.config import Config, ExchangeConfig
    from twinstar.kernel import Kernel

    os.environ["TW_KEY2"], os.environ["TW_SECRET2"] = KEY, SECRET
    exchange_config = ExchangeConfig(id="binanceusdm", api_key_env="TW_KEY2", api_secret_env="TW_SECRET2")
    config = Config(exchange=exchange_config)
    async with venue() as v:
        v.down = True
        adapter = BinanceUsdm(config=exchange_config, clock=LiveClock())
        v.point(adapter.ccxt)
        try:
            result = await adapter.place_market_order("BTC/USDT:USDT", "buy", 1.0, client_order_id="x")
        finally:
            await adapter.close()
    assert not result.ok
    stream = tmp_path / "s.tws"
    async with Kernel(config, components=[Recorder(stream, config=config.to_dict())]):
        pass
    data = stream.read_bytes()
    assert KEY.encode() not in data and SECRET.encode() not in data
    assert b"TW_KEY2" in data  # the variable's name is recorded, its value never
    assert KEY not in repr(adapter) and KEY not in result.message
