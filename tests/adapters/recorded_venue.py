"""A venue on 127.0.0.1 that answers with ccxt's recorded reply bodies and logs every request."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from twinstar.adapters import make_exchange
from twinstar.adapters.ccxt_base import CcxtExchange
from twinstar.clock import LiveClock
from twinstar.config import ExchangeConfig

STATIC = Path(__file__).parent / "data" / "ccxt-static"


def recorded(exchange: str) -> dict[str, Any]:
    """The slices of ccxt's static fixtures kept for `exchange` (see data/PROVENANCE.md)."""
    data: dict[str, Any] = json.loads((STATIC / f"{exchange}.json").read_text())
    return data


@dataclass(frozen=True)
class Request:
    """One request as it reached the venue."""

    method: str
    path: str
    query: dict[str, str]
    body: str


@dataclass
class RecordedVenue:
    """Answers `(method, path)` with the queued recorded bodies; the last body of a route repeats."""

    replies: dict[tuple[str, str], list[Any]]
    requests: list[Request] = field(default_factory=list)
    base_url: str = ""

    def sent(self, method: str, path: str) -> list[Request]:
        """The requests that went to `method path`, in order."""
        return [r for r in self.requests if (r.method, r.path) == (method, path)]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        self.requests.append(Request(request.method, request.path, dict(request.query), body))
        queue = self.replies.get((request.method, request.path))
        if not queue:
            return web.json_response({"code": "404", "msg": f"no recorded reply for {request.path}"}, status=404)
        reply = queue.pop(0) if len(queue) > 1 else queue[0]
        return web.json_response(reply)


@asynccontextmanager
async def recorded_venue(replies: dict[tuple[str, str], list[Any]]) -> AsyncIterator[RecordedVenue]:
    """Serve `replies` on a random port of 127.0.0.1."""
    venue = RecordedVenue(replies={key: list(bodies) for key, bodies in replies.items()})
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", venue._handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    venue.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield venue
    finally:
        await runner.cleanup()


def venue_adapter(
    exchange_id: str, venue: RecordedVenue, markets: Iterable[dict[str, Any]], *, market_type: str = "swap"
) -> CcxtExchange:
    """The adapter `make_exchange` builds for `exchange_id`, pointed at `venue`, with ccxt's recorded markets."""
    os.environ["TWINSTAR_PARITY_KEY"] = "parity-api-key-0123456789"
    os.environ["TWINSTAR_PARITY_SECRET"] = "parity-secret-abcdefghijklmnop"
    os.environ["TWINSTAR_PARITY_PASS"] = "parity-passphrase"
    config = ExchangeConfig(
        id=exchange_id,
        market_type="spot" if market_type == "spot" else "swap",
        api_key_env="TWINSTAR_PARITY_KEY",
        api_secret_env="TWINSTAR_PARITY_SECRET",
        password_env="TWINSTAR_PARITY_PASS",
        api_base_url=venue.base_url,
        options={"fetchCurrencies": False},
    )
    adapter = make_exchange(config, LiveClock())
    assert isinstance(adapter, CcxtExchange)
    adapter.ccxt.set_markets(list(markets))  # recorded markets: no market endpoint is needed
    adapter._markets_loaded = True
    return adapter


def unsigned(query: dict[str, str]) -> dict[str, str]:
    """A signed query (Binance, BingX) without its per-call timestamp and signature, after checking both are there."""
    assert query.keys() >= {"timestamp", "signature"}
    return {k: v for k, v in query.items() if k not in ("timestamp", "signature")}
