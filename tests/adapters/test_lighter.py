"""Lighter: the signer library lookup, ccxt's use of it, and both candle bodies over the wire."""

from __future__ import annotations

import importlib.metadata
import json
import platform
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from twinstar.adapters import lighter
from twinstar.adapters.base import Bar
from twinstar.adapters.lighter import Lighter, signer_library_path
from twinstar.clock import LiveClock
from twinstar.config import ConfigError, ExchangeConfig

DATA = Path(__file__).parent / "data"
SIGNER = lighter._SIGNERS.get((platform.system(), platform.machine()))


def _installed_sdk() -> str | None:
    try:
        return importlib.metadata.version("lighter-sdk")
    except importlib.metadata.PackageNotFoundError:
        return None


def test_the_signer_is_found_in_an_installed_package_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site-packages"
    signers = site / "lighter" / "signers"
    signers.mkdir(parents=True)
    (site / "lighter" / "__init__.py").write_text("raise ImportError('the lookup must not import lighter')\n")
    monkeypatch.syspath_prepend(str(site))
    if SIGNER is None:  # a platform lighter-sdk ships no signer for
        assert signer_library_path() is None
        return
    assert signer_library_path() is None  # the package is there, the library is not
    (signers / SIGNER).write_bytes(b"\x7fELF not really")
    assert signer_library_path() == signers / SIGNER
    assert "lighter" not in sys.modules


def test_the_adapter_points_ccxt_at_the_signer_and_keeps_the_config_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site-packages"
    (site / "lighter" / "signers").mkdir(parents=True)
    (site / "lighter" / "__init__.py").write_text("")  # a regular package: it shadows an installed lighter-sdk
    monkeypatch.syspath_prepend(str(site))
    options = {"accountIndex": "7", "apiKeyIndex": "3", "fetchCurrencies": False}
    without = Lighter(config=ExchangeConfig(id="lighter", options=options), clock=LiveClock())
    assert (without.signer, without.ccxt.options["libraryPath"]) == (None, None)
    if SIGNER is not None:
        (site / "lighter" / "signers" / SIGNER).write_bytes(b"")
        found = Lighter(config=ExchangeConfig(id="lighter", options=options), clock=LiveClock())
        assert found.ccxt.options["libraryPath"] == str(site / "lighter" / "signers" / SIGNER)
        assert found.signer == site / "lighter" / "signers" / SIGNER
        assert {k: found.ccxt.options[k] for k in options} == options
        assert found.ccxt.options["defaultType"] == "swap"
    chosen = Lighter(
        config=ExchangeConfig(id="lighter", options={**options, "libraryPath": "/opt/signer.so"}), clock=LiveClock()
    )
    assert (chosen.ccxt.options["libraryPath"], chosen.signer) == ("/opt/signer.so", Path("/opt/signer.so"))


@pytest.mark.skipif(_installed_sdk() is None, reason="lighter-sdk is not installed (pip install --no-deps lighter-sdk)")
def test_the_installed_lighter_sdk_signer_loads_and_signs_with_ccxt() -> None:
    path = signer_library_path()
    assert path is not None and path.is_file()
    files = importlib.metadata.files("lighter-sdk") or []
    assert any(str(f.locate()) == str(path) for f in files)  # the library of the installed wheel
    assert Lighter(config=ExchangeConfig(id="lighter"), clock=LiveClock()).ccxt.options["libraryPath"] == str(path)
    # ctypes loads a Go runtime into the process: do it in a child, so this test process stays plain Python.
    script = """
import json, sys
import ccxt
from ccxt.static_dependencies.lighter_client import signer
library = signer.load_lighter_library(sys.argv[1])  # checks the exported symbols against ccxt's FFI
private_key, public_key, error = signer.decode_api_key(library.GenerateAPIKey())
assert error is None, error
exchange = ccxt.lighter({"options": {"libraryPath": sys.argv[1]}})
exchange.lighter_create_client(library, 304, private_key, 3, 1)
tx_type, tx_info = exchange.lighter_sign_create_order(library, {
    "market_index": 0, "client_order_index": 1, "base_amount": 100, "avg_execution_price": 300000,
    "is_ask": 0, "order_type": 1, "time_in_force": 0, "reduce_only": 0, "trigger_price": 0,
    "order_expiry": 0, "nonce": 5, "api_key_index": 3, "account_index": 1,
})
print(json.dumps({"tx_type": tx_type, "tx_info": json.loads(tx_info)}))
"""
    done = subprocess.run(  # our own interpreter and script
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    signed = json.loads(done.stdout)
    assert signed["tx_type"] == 14  # create order, as in ccxt's recorded sendTx requests
    info = signed["tx_info"]
    assert {k: info[k] for k in ("AccountIndex", "ApiKeyIndex", "MarketIndex", "BaseAmount", "Price", "Nonce")} == {
        "AccountIndex": 1,
        "ApiKeyIndex": 3,
        "MarketIndex": 0,
        "BaseAmount": 100,
        "Price": 300000,
        "Nonce": 5,
    }
    assert info["Sig"]


# -- candles over the wire: a Lighter REST server on 127.0.0.1 serving ccxt's recorded bodies ------------------


def _recorded(method: str) -> dict[str, Any]:
    cases = json.loads((DATA / "lighter.extract.json").read_text())["methods"][method]
    body: dict[str, Any] = cases[0]["httpResponse"]
    return body


@asynccontextmanager
async def lighter_server(candles: dict[str, Any]) -> AsyncIterator[tuple[str, list[str]]]:
    """Serve the recorded markets and the given candle body; yield the base URL and the request paths."""
    seen: list[str] = []
    replies = {
        "/api/v1/orderBookDetails": _recorded("fetchMarkets"),
        "/api/v1/assetDetails": _recorded("fetchCurrencies"),
        "/api/v1/candles": candles,
    }

    async def handle(request: web.Request) -> web.Response:
        seen.append(request.path_qs)
        reply = replies.get(request.path)
        return web.json_response(reply) if reply is not None else web.json_response({"code": 404}, status=404)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


def _current_body(old: dict[str, Any]) -> dict[str, Any]:
    """The same recorded candle in the body ccxt 4.5.90 reads (`GET /api/v1/candles`)."""
    keys = {"t": "timestamp", "o": "open", "h": "high", "l": "low", "c": "close", "v": "volume0", "V": "volume1"}
    rows = [
        {new: candle[was] for new, was in keys.items()} | {"i": candle["last_trade_id"]}
        for candle in old["candlesticks"]
    ]
    return {"code": 200, "r": old["resolution"], "c": rows}


@pytest.mark.anyio
@pytest.mark.parametrize("shape", ["old candlesticks", "current candles"])
async def test_fetch_ohlcv_reads_both_lighter_candle_bodies(shape: str) -> None:
    old = json.loads((DATA / "lighter.extract.json").read_text())["methods"]["fetchOHLCV"][0]
    body = old["httpResponse"] if shape == "old candlesticks" else _current_body(old["httpResponse"])
    async with lighter_server(body) as (base, seen):
        adapter = Lighter(
            config=ExchangeConfig(id="lighter", api_base_url=base, options={"fetchCurrencies": False}),
            clock=LiveClock(),
        )
        try:
            # The recorded markets predate `market_type`, so ccxt 4.5.90 lists ETH as a spot market.
            bars = await adapter.fetch_ohlcv("ETH/USDC", "1m", limit=1)
            since = await adapter.fetch_ohlcv("ETH/USDC", "1m", since_ms=old["parsedResponse"][0][0] + 1, limit=5)
        finally:
            await adapter.close()
    assert bars == [Bar(*old["parsedResponse"][0])]
    assert since == []  # the since filter applies to either body
    candles = [path for path in seen if path.startswith("/api/v1/candles?")]
    assert len(candles) == 2 and all("market_id=0" in path and "resolution=1m" in path for path in candles)


def test_the_private_key_comes_from_the_environment_and_ccxt_options_merge_with_the_config(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TW_LIGHTER_KEY", "0x" + "ab" * 40)
    config = ExchangeConfig(id="lighter", private_key_env="TW_LIGHTER_KEY", options={"accountIndex": "7"})
    adapter = Lighter(config=config, clock=LiveClock(), ccxt_options={"options": {"apiKeyIndex": "3"}})
    assert adapter.ccxt.privateKey == "0x" + "ab" * 40
    assert (adapter.ccxt.options["accountIndex"], adapter.ccxt.options["apiKeyIndex"]) == ("7", "3")
    assert adapter.scrub(f"signing with {adapter.ccxt.privateKey} failed") == "signing with *** failed"
    monkeypatch.delenv("TW_LIGHTER_KEY")
    with pytest.raises(ConfigError, match="TW_LIGHTER_KEY"):
        Lighter(config=config, clock=LiveClock())
