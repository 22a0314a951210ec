"""No key, secret, passphrase, private key or signature in anything TwinStar writes, at any verbosity.

From the redactor's patterns, through every venue's real ccxt `sign()` output
as ccxt's own debug logger prints it, to whole live sessions run with `-v` on
the loopback venues: the output is searched for the credentials and for every
signature the venue received, after showing that the debug output did carry
the signed requests (so there was something to redact).
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import anyio
import pytest
from aiohttp import web

from tests.project.live_cli import INTERVAL_S, KEY_ENV, SECRET_ENV, live_config, live_run
from twinstar.adapters import make_exchange
from twinstar.adapters.ccxt_base import CcxtExchange
from twinstar.clock import LiveClock
from twinstar.config import ExchangeConfig
from twinstar.redact import REDACTED, RedactingFilter, redact, register_secrets
from twinstar.testing.bybit_venue import KLINE_MINUTES, BybitVenue
from twinstar.testing.loopback import serve
from twinstar.testing.venue import Venue

pytestmark = pytest.mark.anyio

KEY = "e2e-fake-api-key-7f3a9c21d4b8e5"
SECRET = "e2e-fake-api-secret-5e61b0aa93c7+/="  # URL-special characters: the encoded form must go too
PASSWORD = "e2e-fake-passphrase-41d2"
SOURCE = Path(__file__).parents[2] / "src" / "twinstar"

# Every header and parameter that ccxt's sign() of our venues fills with a key, passphrase or signature.
SENSITIVE_HEADERS = {
    "x-mbx-apikey",  # Binance
    "x-bapi-api-key",  # Bybit
    "x-bapi-sign",
    "ok-access-key",  # OKX
    "ok-access-sign",
    "ok-access-passphrase",
    "access-key",  # Bitget
    "access-sign",
    "access-passphrase",
    "x-bx-apikey",  # BingX
    "authorization",  # Upbit, Bithumb (JWT bearer), Lighter (auth token)
    "api-key",  # Bithumb's HMAC API
    "api-sign",
}
SENSITIVE_PARAMS = {"signature", "sign", "api_key", "apikey", "passphrase", "auth", "listenkey"}


def _values(headers: Any, params: dict[str, str]) -> set[str]:
    """The credential-bearing values of one request, as the venue received them."""
    found = {v.split()[-1] for k, v in headers.items() if k.lower() in SENSITIVE_HEADERS and v.strip()}
    return found | {v for k, v in params.items() if k.lower() in SENSITIVE_PARAMS and v}


async def _params(request: web.Request) -> dict[str, str]:
    """Query and body parameters (form or JSON) of a request; reading the body leaves it readable."""
    body = await request.text()
    params: dict[str, str] = dict(request.query)
    try:
        decoded = json.loads(body) if body else {}
        params |= {str(k): str(v) for k, v in decoded.items()} if isinstance(decoded, dict) else {}
    except ValueError:
        params |= dict(parse_qsl(body, keep_blank_values=True))
    return params


def _leaks(texts: dict[str, bytes], needles: set[str]) -> set[tuple[str, str]]:
    return {(name, needle) for name, data in texts.items() for needle in needles if needle.encode() in data}


# -- the redactor ------------------------------------------------------------------------------------------


def test_registered_values_go_in_every_form_they_are_written() -> None:
    register_secrets([KEY, SECRET, "short"])  # too short to be a credential: words stay readable
    text = f"key {KEY}, secret {SECRET}, url-encoded secret=e2e-fake-api-secret-5e61b0aa93c7%2B%2F%3D, short"
    assert redact(text) == "key ***, secret ***, url-encoded secret=***, short"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "POST http://h/fapi/v1/order, Request: {'X-MBX-APIKEY': 'k1', 'Content-Type': 'application/x-www-form-"
            "urlencoded'} symbol=BTCUSDT&side=BUY&timestamp=1&recvWindow=5000&signature=9f8e7d",
            "POST http://h/fapi/v1/order, Request: {'X-MBX-APIKEY': '***', 'Content-Type': 'application/x-www-form-"
            "urlencoded'} symbol=BTCUSDT&side=BUY&timestamp=1&recvWindow=5000&signature=***",
        ),
        (
            "{'X-BAPI-API-KEY': 'k2', 'X-BAPI-TIMESTAMP': '1', 'X-BAPI-SIGN-TYPE': '2', 'X-BAPI-SIGN': 'ab12'}",
            "{'X-BAPI-API-KEY': '***', 'X-BAPI-TIMESTAMP': '1', 'X-BAPI-SIGN-TYPE': '2', 'X-BAPI-SIGN': '***'}",
        ),
        (
            "{'OK-ACCESS-KEY': 'k3', 'OK-ACCESS-PASSPHRASE': 'p w', 'OK-ACCESS-SIGN': 'x+/='}",
            "{'OK-ACCESS-KEY': '***', 'OK-ACCESS-PASSPHRASE': '***', 'OK-ACCESS-SIGN': '***'}",
        ),
        (
            "{'ACCESS-KEY': 'k4', 'ACCESS-SIGN': 's4', 'ACCESS-TIMESTAMP': '1', 'ACCESS-PASSPHRASE': 'p4'}",
            "{'ACCESS-KEY': '***', 'ACCESS-SIGN': '***', 'ACCESS-TIMESTAMP': '1', 'ACCESS-PASSPHRASE': '***'}",
        ),
        (
            "GET http://h/openApi/swap/v2/user/balance?timestamp=1&signature=c0ffee, Request: {'X-BX-APIKEY': 'k5'}",
            "GET http://h/openApi/swap/v2/user/balance?timestamp=1&signature=***, Request: {'X-BX-APIKEY': '***'}",
        ),
        (
            "{'Authorization': 'Bearer eyJhbGciOiJIUzI1NiJ9.eyJhY2Nlc3Nfa2V5IjoiayJ9.c2ln'}",
            "{'Authorization': '***'}",
        ),
        (
            "{'Api-Key': 'k6', 'Api-Sign': 'czY=', 'Api-Nonce': '1'}",
            "{'Api-Key': '***', 'Api-Sign': '***', 'Api-Nonce': '1'}",
        ),
        (  # Lighter: auth token header, signed transaction inside a multipart form, auth on subscriptions
            "{'Authorization': '1760000000:7:3:0a1b'} {'tx_type': 14, 'tx_info': '{\"Nonce\":5,\"Sig\":\"c2ln\"}'}",
            "{'Authorization': '***'} {'tx_type': 14, 'tx_info': '{\"Nonce\":5,\"Sig\":\"***\"}'}",
        ),
        (
            '{"type":"subscribe","channel":"account_all/7","auth":"1760000000:7:3:0a1b"}',
            '{"type":"subscribe","channel":"account_all/7","auth":"***"}',
        ),
        ('{"ChangePubKey":{"PubKey":"0x01","L1Sig":"0xabc"}}', '{"ChangePubKey":{"PubKey":"0x01","L1Sig":"***"}}'),
        ("Authorization: Bearer abc.def.ghi\nnext", "Authorization: Bearer ***\nnext"),
        ("wss://h/ws/user?listenKey=Ab12Cd34", "wss://h/ws/user?listenKey=***"),
        ("a token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig-nat_ure in free text", "a token *** in free text"),
        # What must stay: business errors, amounts, ids, timestamps.
        (
            'bybit {"retCode":10003,"retMsg":"API key is invalid."} amount 0.01 cid twx-1a2b recvWindow=5000',
            'bybit {"retCode":10003,"retMsg":"API key is invalid."} amount 0.01 cid twx-1a2b recvWindow=5000',
        ),
    ],
)
def test_signatures_and_credential_fields_are_redacted_in_the_shapes_ccxt_prints(line: str, expected: str) -> None:
    assert redact(line) == expected


def test_the_filter_redacts_message_arguments_and_traceback_in_place() -> None:
    register_secrets([KEY])
    exc = RuntimeError(f"GET http://h/x?timestamp=1&signature=abc123 key {KEY}")
    record = logging.LogRecord(
        "ccxt.base.exchange", logging.DEBUG, "f", 1, "%s %s", ("k", KEY), (RuntimeError, exc, None)
    )
    assert RedactingFilter().filter(record) is True
    text = logging.Formatter("%(name)s: %(message)s").format(record)
    assert text == "ccxt.base.exchange: k ***\nRuntimeError: GET http://h/x?timestamp=1&signature=*** key ***"
    assert (record.msg, record.args) == ("k ***", None)


def test_nothing_turns_ccxt_verbose_printing_on() -> None:
    # ccxt's `verbose` prints requests with print(), past every logging filter: -v goes through logging instead.
    pattern = re.compile(r"""verbose["']?\s*[:=]\s*True""")
    assert [str(p) for p in SOURCE.rglob("*.py") if pattern.search(p.read_text())] == []


# -- every venue's signed requests, as ccxt's own debug logger prints them ---------------------------------


@dataclass
class _CatchAll:
    """Answers `{}` to everything and keeps the credential-bearing values of every request."""

    sensitive: set[str] = field(default_factory=set)
    requests: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        self.sensitive |= _values(request.headers, await _params(request))
        return web.json_response({})


SIGNED_CALLS: list[tuple[str, str, str, dict[str, Any]]] = [
    ("binanceusdm", "swap", "fapiprivatev3GetPositionrisk", {}),
    (
        "binanceusdm",
        "swap",
        "fapiprivatePostOrder",
        {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01"},
    ),
    ("bybit", "swap", "privateGetV5PositionList", {"category": "linear", "symbol": "BTCUSDT"}),
    (
        "bybit",
        "swap",
        "privatePostV5OrderCreate",
        {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Market", "qty": "0.01"},
    ),
    ("okx", "swap", "privateGetAccountBalance", {}),
    (
        "okx",
        "swap",
        "privatePostTradeOrder",
        {"instId": "BTC-USDT-SWAP", "tdMode": "cross", "side": "buy", "ordType": "market", "sz": "1"},
    ),
    ("bitget", "swap", "privateMixGetV2MixAccountAccounts", {"productType": "USDT-FUTURES"}),
    (
        "bitget",
        "swap",
        "privateMixPostV2MixOrderPlaceOrder",
        {"symbol": "BTCUSDT", "productType": "USDT-FUTURES", "side": "buy", "orderType": "market", "size": "0.01"},
    ),
    ("bingx", "swap", "swapV2PrivateGetUserBalance", {}),
    (
        "bingx",
        "swap",
        "swapV2PrivatePostTradeOrder",
        {"symbol": "BTC-USDT", "side": "BUY", "type": "MARKET", "quantity": "0.01"},
    ),
    ("upbit", "spot", "privateGetAccounts", {}),
    ("upbit", "spot", "privatePostOrders", {"market": "KRW-BTC", "side": "bid", "ord_type": "price", "price": "10000"}),
    ("bithumb", "spot", "privateGetV1Accounts", {}),
    (
        "bithumb",
        "spot",
        "privatePostV2Orders",
        {"market": "KRW-BTC", "side": "bid", "order_type": "price", "price": "1"},
    ),
    ("bithumb", "spot", "privatePostInfoAccount", {"order_currency": "BTC"}),  # the older HMAC API
]


@pytest.mark.parametrize(
    ("exchange", "market_type", "method", "params"), SIGNED_CALLS, ids=[f"{c[0]}-{c[2]}" for c in SIGNED_CALLS]
)
async def test_ccxt_debug_lines_of_every_venues_signed_requests_are_redacted_without_the_cli(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    exchange: str,
    market_type: str,
    method: str,
    params: dict[str, Any],
) -> None:
    # As an embedding host logs: its own handler (pytest's), no filter of ours on it.
    for name, value in (("TW_SIGN_KEY", KEY), ("TW_SIGN_SECRET", SECRET), ("TW_SIGN_PASS", PASSWORD)):
        monkeypatch.setenv(name, value)
    caplog.set_level(logging.DEBUG, logger="ccxt.base.exchange")
    state = _CatchAll()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", state.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    config = ExchangeConfig(
        id=exchange,
        market_type=market_type,  # type: ignore[arg-type]
        api_key_env="TW_SIGN_KEY",
        api_secret_env="TW_SIGN_SECRET",
        password_env="TW_SIGN_PASS",
        api_base_url=base,
        options={"fetchCurrencies": False},
    )
    adapter = make_exchange(config, LiveClock())
    assert isinstance(adapter, CcxtExchange)
    error = ""
    try:
        await getattr(adapter.ccxt, method)(params)
    except Exception as exc:  # whatever ccxt makes of `{}`: its message is checked too
        error = adapter.scrub(f"{type(exc).__name__}: {exc}")
    finally:
        await adapter.close()
        await runner.cleanup()
    assert adapter.ccxt.verbose is False
    assert state.requests == 1 and state.sensitive, "the venue received no signed request"
    assert f"{base}/" in caplog.text and ", Request: " in caplog.text  # ccxt's debug line was written...
    needles = {KEY, SECRET, PASSWORD, *state.sensitive}
    assert _leaks({"log": caplog.text.encode(), "error": error.encode()}, needles) == set()  # ...without them
    assert REDACTED in caplog.text


# -- whole live sessions, run as a user runs them, at the most verbose setting -------------------------------


@dataclass
class _SigningBinance(Venue):
    """The loopback Binance USD-M venue, keeping every key and signature it receives."""

    sensitive: set[str] = field(default_factory=set)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.sensitive |= _values(request.headers, await _params(request))
        return await super().handle(request)


@dataclass
class _SigningBybit(BybitVenue):
    """The loopback Bybit venue, keeping every key and signature it receives."""

    sensitive: set[str] = field(default_factory=set)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.sensitive |= _values(request.headers, await _params(request))
        return await super().handle(request)


def _zigzag_klines(now_ms: int) -> list[list[Any]]:
    """Bybit klines of `INTERVAL_S` up to now (the last one still open), closes zigzagging so SMAs cross."""
    length = INTERVAL_S * 1000
    rows: list[list[Any]] = []
    last_open = now_ms // length * length
    for open_ms in range(last_open - 299 * length, last_open + 1, length):
        step = open_ms // length
        close = 30_000 + 300 * (1 if step % 6 < 3 else -1) + (step % 3) * 10
        rows.append([open_ms, close - 5, close + 20, close - 20, close, 10, 10 * close])
    return rows


def _needles(venue_received: set[str]) -> set[str]:
    return {KEY, SECRET, "e2e-fake-api-secret-5e61b0aa93c7%2B%2F%3D", *venue_received}


def _assert_ran_and_leaked_nothing(written: dict[str, bytes], received: set[str], signed_header: str) -> None:
    stderr = written["<stderr>"].decode()
    assert KEY in received and len(received) > 2, "the venue saw no signed requests"
    assert "DEBUG ccxt.base.exchange: POST http://127.0.0.1:" in stderr  # the signed requests were logged...
    assert f"'{signed_header}': '***'" in stderr  # ...and redacted
    assert any(name.startswith("runs/") and name.endswith("events.tws") for name in written), list(written)
    assert any(name.startswith("candles/") for name in written), list(written)
    assert _leaks(written, _needles(received)) == set()


STORAGE = '[storage]\ndir = "candles"\nflush_every = 1\n'


@pytest.mark.timeout(240)
async def test_a_verbose_live_session_on_binance_writes_no_key_secret_or_signature(tmp_path: Path) -> None:
    async with serve(_SigningBinance()) as v:
        v.live_klines_ms = INTERVAL_S * 1000
        env = {KEY_ENV: KEY, SECRET_ENV: SECRET}
        async with live_run(tmp_path, live_config(v.base, extra=STORAGE), env, "-v") as run:
            await run.wait_for(lambda err: "stop placed at" in err, what="a stop-loss placed")
            assert await run.interrupt() == 0, run.stderr[-3000:]
            written = run.written()
        assert any(path == "/fapi/v1/algoOrder" for _, path in v.requests)  # orders and stops really went out
        assert "signature=***" in written["<stderr>"].decode()
        _assert_ran_and_leaked_nothing(written, v.sensitive, "X-MBX-APIKEY")


@pytest.mark.timeout(240)
async def test_a_verbose_live_session_on_bybit_writes_no_key_secret_or_signature(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Bybit has no seconds klines; this loopback serves the test's short candles all the same.
    monkeypatch.setitem(KLINE_MINUTES, f"{INTERVAL_S}s", INTERVAL_S / 60)
    async with serve(_SigningBybit()) as v, anyio.create_task_group() as tasks:

        async def live_klines() -> None:
            while True:
                v.klines = _zigzag_klines(int(time.time() * 1000))
                v.price = float(v.klines[-1][4])
                await anyio.sleep(0.2)

        tasks.start_soon(live_klines)
        env = {KEY_ENV: KEY, SECRET_ENV: SECRET}
        async with live_run(tmp_path, live_config(v.base, exchange="bybit", extra=STORAGE), env, "-v") as run:
            await run.wait_for(lambda err: "stop placed at" in err, what="a stop-loss placed")
            assert await run.interrupt() == 0, run.stderr[-3000:]
            written = run.written()
        tasks.cancel_scope.cancel()
    assert any("stopLoss" in body for body in v.created)  # orders with their stop attached really went out
    _assert_ran_and_leaked_nothing(written, v.sensitive, "X-BAPI-SIGN")
