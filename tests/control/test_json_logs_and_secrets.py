"""A whole live session with the control plane and alerts on, logging JSON: no key, secret or token anywhere.

`python -m twinstar -v --log-format json run` trades on the loopback Binance
venue with known fake credentials, a control token and a Telegram bot token
(alerts to a loopback Telegram). The test opens the page with the token in
its URL, sends commands, makes the venue echo the API key in an error, then
searches every log line, every file the run wrote (recorded stream, journal),
every alert and every answer of the control API for each secret.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest

from tests.control.telegram import fake_telegram
from tests.project.live_cli import INTERVAL_S, KEY_ENV, SECRET_ENV, live_config, live_run
from twinstar.testing.loopback import Failure
from twinstar.testing.venue import venue

pytestmark = pytest.mark.anyio
KEY = "json-fake-api-key-83bd19c7a2"
SECRET = "json-fake-api-secret-0c4d+/=e5"
CONTROL_ENV, CONTROL = "TW_JSON_CONTROL", "json-control-token-5b7e2a9f"
TELEGRAM_ENV, TELEGRAM = "TW_JSON_TELEGRAM", "987654:json-fake-telegram-token"
NEEDLES = (KEY, SECRET, "json-fake-api-secret-0c4d%2B%2F%3De5", CONTROL, TELEGRAM)


def _log_lines(stderr: str) -> list[dict[str, str]]:
    """Every line of stderr, parsed: the CLI's own notices ("trading live ...") are JSON records too."""
    return [json.loads(line) for line in stderr.splitlines()]


def _control_url(stderr: str) -> str:
    for line in _log_lines(stderr):
        message = line["message"]
        if message.startswith("control plane on "):
            return str(message.split()[3]).rstrip("/")
    raise AssertionError("the control plane never said where it listens")


@pytest.mark.timeout(240)
async def test_a_live_session_logs_json_and_writes_no_secret_anywhere(tmp_path: Path) -> None:
    async with venue() as v, fake_telegram(TELEGRAM) as tg:
        v.live_klines_ms = INTERVAL_S * 1000
        extra = (
            f'[control]\nenabled = true\nport = 0\ntoken_env = "{CONTROL_ENV}"\npoll_interval_s = 1.0\n'
            f'[alerts]\ntelegram_token_env = "{TELEGRAM_ENV}"\ntelegram_chat_id = "7"\n'
            f'telegram_api_url = "{tg.base}"\n'
        )
        env = {KEY_ENV: KEY, SECRET_ENV: SECRET, CONTROL_ENV: CONTROL, TELEGRAM_ENV: TELEGRAM}
        served: list[bytes] = []
        async with live_run(tmp_path, live_config(v.base, extra=extra), env, "-v", "--log-format", "json") as run:
            await run.wait_for(lambda err: "stop placed at" in err, what="a stop-loss placed")
            url = _control_url(run.stderr)
            failure = Failure(status=400, body={"code": -1000, "msg": f"bad apiKey={KEY}"}, path="/openOrders")
            v.failures.append(failure)
            auth = {"Authorization": f"Bearer {CONTROL}"}
            async with aiohttp.ClientSession() as http:
                for path, headers in ((f"/?token={CONTROL}", {}), ("/api/status", auth), ("/metrics", auth)):
                    async with http.get(url + path, headers=headers) as reply:
                        assert reply.status == 200
                        served.append(await reply.read())
                async with http.post(url + "/api/pause", json={}, headers={"Authorization": "Bearer no"}) as reply:
                    assert reply.status == 401
                    served.append(await reply.read())
                async with http.post(url + "/api/flatten", json={"symbol": "BTC/USDT:USDT"}, headers=auth) as reply:
                    assert reply.status == 202
                    served.append(await reply.read())
                await run.wait_for(lambda err: "flatten)" in err, what="the flatten's close")
                for _ in range(100):  # a poll of the status model meets the scripted error
                    async with http.get(url + "/api/status", headers=auth) as reply:
                        served.append(body := await reply.read())
                    if json.loads(body)["venues"][0]["read_error"]:
                        break
                    if not v.failures:  # taken by a reconciliation's read: script it again
                        v.failures.append(failure)
                    await asyncio.sleep(0.1)
            assert await run.interrupt() == 0, run.stderr[-3000:]
            written = run.written()
    errors = [json.loads(body)["venues"][0]["read_error"] for body in served if body.startswith(b'{"kernel"')]
    assert errors[-1] == 'fetch_open_orders: OperationFailed: binanceusdm {"code": -1000, "msg": "bad apiKey=***"}'
    assert tg.messages, "no alert reached Telegram"
    alerts = [json.dumps(m).encode() for m in tg.messages]
    leaks = {
        (name, needle)
        for name, data in [*written.items(), *(("<served>", b) for b in served), *(("<alert>", a) for a in alerts)]
        for needle in NEEDLES
        if needle.encode() in data
    }
    assert leaks == set()
    assert any(name.endswith("events.tws") for name in written), list(written)
    # One JSON object per line, each with time, level, logger and message; the live log's with venue and symbol.
    lines = _log_lines(written["<stderr>"].decode())
    assert len(lines) > 50
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    assert all(line["time"].endswith("Z") for line in lines)
    fills = [line for line in lines if line.get("event") == "order_placed"]
    assert fills and all(f["venue"] == "binanceusdm" and f["symbol"] == "BTC/USDT:USDT" for f in fills)
    assert all(f["event_id"].startswith("tw") for f in fills)
    assert any(line["logger"] == "ccxt.base.exchange" and "signature=***" in line["message"] for line in lines)
    assert any(line["logger"] == "twinstar.cli" and line["message"].startswith("trading live on") for line in lines)
