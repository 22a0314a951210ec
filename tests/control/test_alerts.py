"""Alerts reach a loopback server playing the Telegram Bot API and a webhook: rate-limited, never in the way."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import msgspec
import pytest

from tests.control.telegram import FakeTelegram, fake_telegram
from twinstar import Kernel
from twinstar.bus.events import (
    CandleClosed,
    EmergencyExit,
    FeedStopped,
    RiskLimitBreached,
    SLUpdateFailed,
)
from twinstar.clock import SimClock
from twinstar.config import AlertsConfig, ConfigError
from twinstar.control.alerts import Alerts

pytestmark = pytest.mark.anyio
TOKEN_ENV, TOKEN = "TW_TELEGRAM_TOKEN", "123456:fake-bot-token-for-tests"
T0 = 1_700_000_000 * 1_000_000_000


def _failed(n: int) -> SLUpdateFailed:
    return SLUpdateFailed(
        ts_ns=T0, exchange="v", symbol=f"S{n}", stop_price=99.0, attempts=3, error_kind="network", message="down"
    )


@asynccontextmanager
async def alerting(tg: FakeTelegram, **settings: object) -> AsyncIterator[tuple[Kernel, Alerts, SimClock]]:
    os.environ[TOKEN_ENV] = TOKEN
    config = AlertsConfig(
        telegram_token_env=TOKEN_ENV,
        telegram_chat_id="42",
        telegram_api_url=tg.base,
        webhook_url=f"{tg.base}/hook",
        **settings,  # type: ignore[arg-type]
    )
    clock = SimClock(T0)
    alerts = Alerts(config, clock)
    async with Kernel(clock=clock, components=[alerts]) as kernel:
        yield kernel, alerts, clock


async def _until(check: object, what: str) -> None:
    for _ in range(500):
        if callable(check) and check():
            return
        await anyio.sleep(0.01)
    raise AssertionError(f"never: {what}")


async def test_alerts_go_to_telegram_and_the_webhook_at_most_n_a_minute() -> None:
    async with fake_telegram(TOKEN) as tg, alerting(tg, max_per_minute=2) as (kernel, alerts, clock):
        await kernel.publish(_failed(1))
        await _until(lambda: len(tg.messages) == 1, "the first alert")
        await kernel.publish(_failed(2))
        await _until(lambda: len(tg.messages) == 2, "the second alert")
        for n in range(3, 7):
            await kernel.publish(_failed(n))
        await _until(lambda: clock.pending_sleepers == 1, "the sender waiting for the next minute")
        assert len(tg.messages) == 2  # the minute's budget is spent: the rest waits, piled up
        await clock.advance(60)
        await _until(lambda: len(tg.messages) == 3, "the rest, together")
    assert [m["chat_id"] for m in tg.messages] == ["42"] * 3
    first, second, rest = (m["text"].splitlines() for m in tg.messages)
    assert first == ["v S1  stop to 99 failed after 3 attempts (network): down; the previous stop stays"]
    assert [line.split("  ")[0] for line in second] == ["v S2"]
    assert [line.split("  ")[0] for line in rest] == [f"v S{n}" for n in range(3, 7)]
    assert [m["text"] for m in tg.webhook] == [m["text"] for m in tg.messages]
    assert (alerts.sent, alerts.dropped, alerts.failures) == (6, 0, 0)
    assert set(tg.paths) == {f"/bot{TOKEN}/sendMessage"}


async def test_only_what_a_person_must_hear_of_is_sent() -> None:
    async with fake_telegram(TOKEN) as tg, alerting(tg) as (kernel, _, _):
        await kernel.publish(
            CandleClosed(
                ts_ns=T0,
                exchange="v",
                symbol="X",
                interval="1m",
                open_time_ms=0,
                open=1,
                high=1,
                low=1,
                close=1,
                volume=1,
            )
        )
        await kernel.publish(FeedStopped(ts_ns=T0, exchange="v", symbol="X", interval="1m", reason="shutdown"))
        await kernel.publish(FeedStopped(ts_ns=T0, exchange="v", symbol="X", interval="1m", reason="gave up"))
        await kernel.publish(EmergencyExit(ts_ns=T0, exchange="v", symbol="X", qty=1.0, reason="no stop"))
        await kernel.publish(RiskLimitBreached(ts_ns=T0, limit="daily_loss", value=120.0, threshold=100.0))
        await _until(lambda: sum(len(m["text"].splitlines()) for m in tg.messages) == 3, "three alerts")
    lines = [line for m in tg.messages for line in m["text"].splitlines()]
    assert lines[0] == "v X  1m feed stopped: gave up"
    assert lines[1] == "v X  EMERGENCY EXIT: closing 1 at market: no stop"
    assert lines[2].startswith("RiskLimitBreached: limit=daily_loss, value=120")


async def test_a_hung_api_never_holds_trading_and_a_full_queue_drops_the_oldest() -> None:
    async with fake_telegram(TOKEN) as tg, alerting(tg, queue_size=3, timeout_s=30.0) as (kernel, alerts, _):
        tg.stalled = True
        await kernel.publish(_failed(0))
        await _until(lambda: len(tg.paths) == 1, "the first send, now hanging")
        for n in range(1, 101):  # publishing returns at once although nothing can be sent
            await kernel.publish(_failed(n))
        await kernel.bus.idle()
        assert alerts.dropped == 97
        tg.release.set()
        await _until(lambda: len(tg.messages) == 2, "the first alert and what the queue kept")
    assert [line.split("  ")[0] for line in tg.messages[1]["text"].splitlines()] == ["v S98", "v S99", "v S100"]


async def test_a_429_is_honoured_and_a_refusal_is_counted() -> None:
    async with fake_telegram(TOKEN) as tg, alerting(tg) as (kernel, alerts, clock):
        tg.replies.append((429, {"ok": False, "error_code": 429, "parameters": {"retry_after": 5}}))
        await kernel.publish(_failed(1))
        await _until(lambda: clock.pending_sleepers == 1, "the wait Telegram asked for")
        await clock.advance(5)
        await _until(lambda: len(tg.messages) == 1, "the alert, sent again")
        tg.replies.append((400, {"ok": False, "error_code": 400, "description": "chat not found"}))
        await kernel.publish(_failed(2))
        await _until(lambda: alerts.failures == 1, "the refusal")
    assert alerts.sent == 3  # webhook twice, Telegram once


def test_a_missing_token_is_a_clear_error() -> None:
    os.environ.pop("TW_NO_SUCH_TOKEN", None)
    settings = msgspec.structs.replace(AlertsConfig(), telegram_token_env="TW_NO_SUCH_TOKEN", telegram_chat_id="1")
    with pytest.raises(ConfigError, match="environment variable TW_NO_SUCH_TOKEN"):
        Alerts(settings, SimClock())
