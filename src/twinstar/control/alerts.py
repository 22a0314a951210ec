"""Alerts to a webhook and/or Telegram: fills, stop failures, emergency exits, feed stops, repairs, breaches.

Trading never waits for an alert: the bus handler only formats a line and
puts it in a bounded queue (when full, the oldest waiting line is dropped and
counted). A sender task sends what is queued over aiohttp, at most
`max_per_minute` messages a minute: lines that pile up meanwhile go out
together as one message. A channel that fails is logged and retried with the
next message, never raised into the kernel. The Telegram bot token lives in
the URL, so it is registered with the redactor before anything is sent.
"""

from __future__ import annotations

import collections
import logging
import os
from typing import Any, Final

import aiohttp
import anyio

from twinstar.bus.bus import Bus
from twinstar.bus.events import (
    EmergencyExit,
    Event,
    FeedStopped,
    OrderPlaced,
    PositionReconciled,
    RiskLimitBreached,
    SLUpdateFailed,
)
from twinstar.clock import Clock
from twinstar.config import AlertsConfig, ConfigError
from twinstar.live_log import LiveLog
from twinstar.redact import redact, register_secrets

log: Final = logging.getLogger("twinstar.alerts")

_MINUTE_NS: Final = 60 * 1_000_000_000
_MAX_LINES: Final = 30  # per message; Telegram takes at most 4096 characters
_MAX_CHARS: Final = 4000
#: Reconciliation actions that found nothing to repair.
_QUIET_ACTIONS: Final = frozenset({"pending_resolved"})


def worth_an_alert(event: Event) -> bool:
    """Whether a person should hear of `event` now."""
    match event:
        case OrderPlaced():
            return event.filled_qty > 0
        case FeedStopped():
            return event.reason != "shutdown"
        case PositionReconciled():
            return event.action not in _QUIET_ACTIONS
        case SLUpdateFailed() | EmergencyExit() | RiskLimitBreached():
            return True
        case _:
            return False


class Alerts:
    """Component: queues alert lines from the bus and sends them, rate-limited, from its own task."""

    def __init__(self, settings: AlertsConfig, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self._token = ""
        if settings.telegram_token_env:
            self._token = os.environ.get(settings.telegram_token_env, "")
            if not self._token:
                raise ConfigError(f"environment variable {settings.telegram_token_env} (alerts) is not set")
            register_secrets([self._token])
        self._queue: collections.deque[str] = collections.deque(maxlen=settings.queue_size)
        self._wanted = anyio.Event()
        self._sent_ns: collections.deque[int] = collections.deque()
        self._describer = LiveLog()
        self.sent = 0
        self.dropped = 0
        self.failures = 0

    def attach(self, bus: Bus) -> None:
        """Follow every event; only those worth an alert are queued."""
        bus.subscribe(Event, self.handle, name="Alerts", eager=False)

    def handle(self, event: Event) -> None:
        """Queue `event`'s line if it is worth an alert; never waits."""
        if not worth_an_alert(event):
            return
        line = self._describer.describe(event)
        if line is None:
            return
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
        self._queue.append(redact(line[1]))
        self._wanted.set()

    async def run(self) -> None:
        """Send queued lines until the kernel stops."""
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout_s)
        resolver = aiohttp.AsyncResolver()  # aiodns: no resolver thread
        async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(resolver=resolver)) as http:
            while True:
                await self._wanted.wait()
                self._wanted = anyio.Event()
                await self._room()
                lines = [self._queue.popleft() for _ in range(min(_MAX_LINES, len(self._queue)))]
                if self._queue:
                    self._wanted.set()
                if lines:
                    await self.send(http, "\n".join(lines)[:_MAX_CHARS])

    async def _room(self) -> None:
        """Wait until one more message fits in the last minute's budget."""
        while True:
            now = self.clock.now_ns()
            while self._sent_ns and self._sent_ns[0] <= now - _MINUTE_NS:
                self._sent_ns.popleft()
            if len(self._sent_ns) < self.settings.max_per_minute:
                self._sent_ns.append(now)
                return
            await self.clock.sleep((self._sent_ns[0] + _MINUTE_NS - now) / 1e9)

    async def send(self, http: aiohttp.ClientSession, text: str) -> None:
        """Send `text` to every configured channel; failures are logged, never raised."""
        settings = self.settings
        if settings.webhook_url:
            await self._post(http, "webhook", settings.webhook_url, {"text": text})
        if self._token:
            url = f"{settings.telegram_api_url.rstrip('/')}/bot{self._token}/sendMessage"
            body = {"chat_id": settings.telegram_chat_id, "text": text, "disable_web_page_preview": True}
            await self._post(http, "telegram", url, body)

    async def _post(self, http: aiohttp.ClientSession, channel: str, url: str, body: dict[str, Any]) -> None:
        for _ in range(2):  # once more after a 429 that says how long to wait
            try:
                async with http.post(url, json=body) as reply:
                    if reply.status < 300:
                        self.sent += 1
                        return
                    answer = await reply.json(content_type=None) if reply.status == 429 else {}
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                self.failures += 1
                log.warning("alert to %s failed: %s", channel, redact(f"{type(exc).__name__}: {exc}"))
                return
            retry_after = (answer.get("parameters") or {}).get("retry_after") if isinstance(answer, dict) else None
            if not isinstance(retry_after, int | float):
                break
            await self.clock.sleep(min(float(retry_after), 60.0))
        self.failures += 1
        log.warning("alert to %s refused (HTTP %d)", channel, reply.status)

    def __repr__(self) -> str:
        return f"Alerts(queued={len(self._queue)}, sent={self.sent}, dropped={self.dropped}, failures={self.failures})"
