"""What the control tests share: a live config on a loopback venue, and a reader of the served page."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import aiohttp
import msgspec

from tests.pipeline.harness import Tap
from twinstar import Config, Kernel
from twinstar.adapters.feeds import PollingCandleFeed
from twinstar.clock import LiveClock
from twinstar.control.server import ControlServer
from twinstar.live import live_components
from twinstar.testing.venue import Venue, venue

TOKEN_ENV = "TW_CONTROL_TOKEN"
TOKEN = "control-token-for-tests-9d1e"  # a fake token, for loopback tests only
KEY_ENV, SECRET_ENV = "TW_CONTROL_KEY", "TW_CONTROL_SECRET"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def live_config(base_url: str, journal_dir: str, *, extra: str = "") -> Config:
    """Trade BTC/USDT:USDT on one-second candles (sma_cross 2/3) on a loopback Binance, control on port 0."""
    config = Config.from_toml(
        'symbols = ["BTC/USDT:USDT"]\ninterval = "1s"\n'
        f'[exchange]\nid = "binanceusdm"\napi_key_env = "{KEY_ENV}"\napi_secret_env = "{SECRET_ENV}"\n'
        f'api_base_url = "{base_url}"\ncandle_feed = "poll"\noptions = {{ fetchCurrencies = false }}\n'
        '[strategy]\nname = "sma_cross"\nparams = { fast = 2, slow = 3 }\n'
        "[risk]\nposition_fraction = 0.05\nstop_loss_pct = 2.0\n"
        f'[control]\nenabled = true\nport = 0\ntoken_env = "{TOKEN_ENV}"\n'
        "poll_interval_s = 0.5\npush_interval_s = 0.1\n"
        f"{extra}"
    )
    return msgspec.structs.replace(
        config,
        kernel=msgspec.structs.replace(config.kernel, drain_timeout_s=5),
        journal=msgspec.structs.replace(config.journal, dir=journal_dir),
    )


class PageRows(HTMLParser):
    """The rows of the page's tables, by table: {"position": {key: [cell texts]}, "feed": {...}}."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tables: dict[str, dict[str, list[str]]] = {}
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            for name, value in attrs:
                if name.startswith("data-") and value is not None:
                    self._row = self.tables.setdefault(name[5:], {}).setdefault(value, [])
        elif tag == "td" and self._row is not None:
            self._cell = []

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._row is not None and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr":
            self._row = None


@dataclass
class Session:
    kernel: Kernel
    tap: Tap
    venue: Venue
    url: str
    http: aiohttp.ClientSession

    async def until(self, done: Callable[[], bool], what: str, tries: int = 200) -> None:
        """Wait (0.1 s steps, bounded) until `done()`."""
        for _ in range(tries):
            if done():
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"no {what}: {[type(e).__name__ for e in self.tap.events][-30:]}")

    async def get_json(self, path: str) -> dict[str, object]:
        async with self.http.get(self.url + path, headers=AUTH) as reply:
            assert reply.status == 200, await reply.text()
            body: dict[str, object] = await reply.json()
            return body

    async def post(self, path: str, body: object, headers: dict[str, str] | None = None) -> tuple[int, str]:
        async with self.http.post(self.url + path, json=body, headers=AUTH if headers is None else headers) as reply:
            return reply.status, await reply.text()


@asynccontextmanager
async def live_session(
    tmp_path: Path, adjust: Callable[[Config], Config] = lambda config: config
) -> AsyncIterator[Session]:
    """A live kernel (control on) trading on a fresh loopback Binance; `adjust` changes its config first."""
    os.environ[KEY_ENV], os.environ[SECRET_ENV], os.environ[TOKEN_ENV] = "ctl-key-1a2b3c", "ctl-secret-4d5e6f", TOKEN
    async with venue() as v:
        v.live_klines_ms = 1_000
        config = adjust(live_config(v.base, str(tmp_path / "state")))
        clock = LiveClock()
        parts = live_components(config, clock, run_dir=tmp_path)
        for part in parts:
            if isinstance(part, PollingCandleFeed):
                part.settle_s = 0.05
        [server] = [p for p in parts if isinstance(p, ControlServer)]
        tap = Tap()
        async with Kernel(config, clock=clock, components=[tap, *parts]) as kernel, aiohttp.ClientSession() as http:
            yield Session(kernel, tap, v, server.url, http)
            await kernel.stop("test done")
