"""A loopback HTTP server that plays the Telegram Bot API's sendMessage (and a plain webhook)."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
from aiohttp import web


@dataclass
class FakeTelegram:
    """Records every message; `replies` scripts (status, body) answers ahead of the normal one."""

    token: str
    port: int = 0
    messages: list[dict[str, Any]] = field(default_factory=list)
    webhook: list[dict[str, Any]] = field(default_factory=list)
    replies: deque[tuple[int, dict[str, Any]]] = field(default_factory=deque)
    stalled: bool = False  # hold every request until released (a hung API)
    release: anyio.Event = field(default_factory=anyio.Event)
    paths: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def send_message(self, request: web.Request) -> web.Response:
        self.paths.append(request.path)
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        if self.stalled:
            await self.release.wait()
        body = await request.json()
        if self.replies:
            status, answer = self.replies.popleft()
            return web.json_response(answer, status=status)
        self.messages.append(body)
        return web.json_response({"ok": True, "result": {"message_id": len(self.messages), "text": body["text"]}})

    async def hook(self, request: web.Request) -> web.Response:
        self.webhook.append(await request.json())
        return web.Response(status=204)


@asynccontextmanager
async def fake_telegram(token: str) -> AsyncIterator[FakeTelegram]:
    state = FakeTelegram(token)
    app = web.Application()
    app.router.add_post("/bot{token}/sendMessage", state.send_message)
    app.router.add_post("/hook", state.hook)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.port = runner.addresses[0][1]
    try:
        yield state
    finally:
        state.release.set()
        await runner.cleanup()
