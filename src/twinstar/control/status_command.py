"""`python -m twinstar status`: a running kernel's status as tables, read from its control API."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from twinstar.control.status import Status

DEFAULT_URL = "http://127.0.0.1:8787"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `status` sub-command's options."""
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        help="a kernel's TOML config: its [control] host, port and token_env (repeat it for several kernels)",
    )
    parser.add_argument(
        "--url",
        action="append",
        default=[],
        help=f"a control API's base URL (repeatable; default: from --config, else {DEFAULT_URL})",
    )
    parser.add_argument("--token-env", help="environment variable holding the bearer token (default: from --config)")
    parser.add_argument("--json", action="store_true", help="print the status as JSON instead of tables")


def _targets(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(base URL, token variable) of every kernel asked about: one status view for many kernels."""
    from twinstar.config import Config

    targets = [(url, args.token_env or "") for url in args.url]
    for path in args.config:
        control = Config.load(path).control
        targets.append((f"http://{control.host}:{control.port}", args.token_env or control.token_env))
    return targets or [(DEFAULT_URL, args.token_env or "")]


async def run(args: argparse.Namespace) -> int:
    """Fetch every kernel's /api/status and print it; exit 1 when one cannot be reached or refuses."""
    targets = _targets(args)
    failed = 0
    for index, (url, token_env) in enumerate(targets):
        if len(targets) > 1:
            print(("\n" if index else "") + f"== {url}")
        failed += await _one(url, token_env, as_json=args.json)
    return 1 if failed else 0


async def _one(url: str, token_env: str, *, as_json: bool) -> int:
    import aiohttp
    import msgspec

    from twinstar.control.status import Status

    token = os.environ.get(token_env, "") if token_env else ""
    if token_env and not token:
        raise ValueError(f"environment variable {token_env} (the control token) is not set")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    timeout = aiohttp.ClientTimeout(total=10)
    connector = aiohttp.TCPConnector(resolver=aiohttp.AsyncResolver())  # aiodns: no resolver thread
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout, connector=connector) as http,
            http.get(url.rstrip("/") + "/api/status", headers=headers) as reply,
        ):
            body = await reply.read()
            if reply.status != 200:
                answer = body.decode(errors="replace")[:200]
                print(f"twinstar: {url} answered HTTP {reply.status}: {answer}", file=sys.stderr)
                return 1
    except (aiohttp.ClientError, TimeoutError) as exc:
        print(f"twinstar: cannot reach the control API at {url}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if as_json:
        print(body.decode())
        return 0
    try:
        status = msgspec.json.decode(body, type=Status)
    except msgspec.DecodeError as exc:
        print(f"twinstar: {url} did not answer with a status: {exc}", file=sys.stderr)
        return 1
    print_status(status)
    return 0


def _num(value: float) -> str:
    return format(value, ",.10g")


def print_status(status: Status, stream: TextIO | None = None) -> None:
    """Print a `Status` as a few tables."""
    out = stream or sys.stdout
    state = f"entries {status.entries}" + (f" ({status.entries_reason})" if status.entries_reason else "")
    print(f"kernel {status.kernel}, {state}", file=out)
    for breach in status.breaches:
        print(f"  breached: {breach}", file=out)
    sections: list[tuple[str, Sequence[str], list[Sequence[str]]]] = [
        (
            "venues",
            ("venue", "balance", "equity", "pnl today", "clock ms", "rate limit", "reconciliation"),
            [
                (
                    v.exchange,
                    f"{_num(v.balance_total)} {v.currency}" if v.currency else (v.read_error or "-"),
                    _num(v.equity) if v.currency else "-",
                    f"{v.realised_pnl_today:+,.2f}",
                    f"{v.clock_offset_ms:+,.1f}",
                    f"{v.rate_limit_used:,.0f}/{v.rate_limit_capacity:,.0f}" if v.rate_limit_capacity else "-",
                    v.reconciliation or "-",
                )
                for v in status.venues
            ],
        ),
        (
            "feeds",
            ("feed", "health", "candles", "last close", "lag s", "reconnects"),
            [
                (
                    f"{f.exchange} {f.symbol} {f.interval}",
                    f.health + (f" ({f.detail})" if f.detail else ""),
                    f"{f.candles:,}",
                    _num(f.last_close) if f.candles else "-",
                    f"{f.lag_ms / 1000:,.1f}" if f.candles else "-",
                    str(f.reconnects),
                )
                for f in status.feeds
            ],
        ),
        (
            "positions",
            ("position", "side", "size", "entry", "stop", "mark", "open pnl"),
            [
                (
                    f"{p.exchange} {p.symbol}",
                    p.side,
                    _num(p.qty),
                    _num(p.entry_price),
                    _num(p.stop_price) if p.stop_price else "NONE",
                    _num(p.mark_price),
                    f"{p.unrealised_pnl:+,.2f}",
                )
                for p in status.positions
            ],
        ),
        (
            "open orders",
            ("order", "symbol", "side", "size", "stop"),
            [
                (o.client_order_id, f"{o.exchange} {o.symbol}", o.side, _num(o.qty), _num(o.stop_price))
                for o in status.orders
            ],
        ),
    ]
    for title, head, rows in sections:
        print(file=out)
        print(_columns(title, head, rows), file=out)


def _columns(title: str, head: Sequence[str], rows: list[Sequence[str]]) -> str:
    """A plain aligned table (first column left, the rest right); "none" when empty."""
    if not rows:
        return f"{title}: none"
    widths = [max(len(str(row[i])) for row in [head, *rows]) for i in range(len(head))]

    def line(cells: Sequence[str]) -> str:
        first, *rest = cells
        return "  ".join([first.ljust(widths[0]), *(c.rjust(w) for c, w in zip(rest, widths[1:], strict=True))])

    return "\n".join([f"{title}:", line(head), *(line(row) for row in rows)])
