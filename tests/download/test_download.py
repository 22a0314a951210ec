"""`python -m twinstar download` over real ccxt to the loopback venues: pages, resume, store, gaps."""

from __future__ import annotations

import datetime as dt
import re
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from twinstar.cli import COMMANDS, build_parser
from twinstar.clock import LiveClock
from twinstar.handlers.storage import CandleStorage
from twinstar.ratelimit import shared_limiter
from twinstar.storage.layout import month_files, series_dir
from twinstar.testing import BybitVenue, Venue, bybit_venue, venue

pytestmark = pytest.mark.anyio

T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
MIN = 60_000
BTC = "BTC/USDT:USDT"
LACKS_7M = "binanceusdm has no 7m candles (it has 1s, 1m, 3m, 5m, 15m, 30m, 1h, 2h, 4h, 6h, 8h, 12h, 1d, 3d, 1w, 1M)"


def _close(k: int) -> float:
    return 100.0 + (k % 7)


def _row(exchange: str, k: int) -> list[Any]:
    t, c = T0 + k * MIN, _close(k)
    if exchange == "bybit":
        return [t, f"{c}", f"{c + 1}", f"{c - 1}", f"{c}", "2", f"{2 * c}"]
    return [t, f"{c}", f"{c + 1}", f"{c - 1}", f"{c}", "2", t + MIN - 1, f"{2 * c}", 5, "1", f"{c}", "0"]


def _expected(exchange: str, minutes: list[int]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "exchange": [exchange] * len(minutes),
            "symbol": [BTC] * len(minutes),
            "interval": ["1m"] * len(minutes),
            "open_time_ms": [T0 + k * MIN for k in minutes],
            "open": [_close(k) for k in minutes],
            "high": [_close(k) + 1 for k in minutes],
            "low": [_close(k) - 1 for k in minutes],
            "close": [_close(k) for k in minutes],
            "volume": [2.0] * len(minutes),
        }
    )


async def _download(v: Venue | BybitVenue, exchange: str, store: Path, since: str, until: str) -> int:
    args = build_parser().parse_args(
        ["download", exchange, BTC, "--interval", "1m", "--since", since, "--until", until, "--store", str(store),
         "--api-base-url", v.base, "--quiet"]
    )  # fmt: skip
    return await COMMANDS[args.command](args)


def _kline_requests(v: Venue | BybitVenue) -> int:
    return sum(path in ("/fapi/v1/klines", "/v5/market/kline") for _, path in v.requests)


@pytest.mark.parametrize("exchange", ["binanceusdm", "bybit"])
async def test_history_is_paged_into_the_store_with_the_venues_gap_reported(
    exchange: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    minutes = [k for k in range(2_500) if not 1_200 <= k < 1_290]  # the venue lacks 90 minutes
    serve = venue if exchange == "binanceusdm" else bybit_venue
    async with serve() as v:
        v.klines = [_row(exchange, k) for k in minutes]
        v.kline_interval = "1m" if exchange == "binanceusdm" else "1"
        code = await _download(v, exchange, tmp_path, "2024-01-01", "2024-01-02T18:00")  # 2,520 minutes asked
        requests = _kline_requests(v)
    out = capsys.readouterr().out.splitlines()
    stored = CandleStorage(tmp_path).load(exchange, BTC, "1m")
    assert code == 0
    assert stored.equals(_expected(exchange, minutes))
    assert month_files(series_dir(tmp_path, exchange, BTC, "1m"))[0].name == "2024-01.parquet"  # compacted
    assert requests == 4  # 1,000 + 1,000 + 410 candles, then an empty page: nothing more
    assert out == [
        f"{exchange} {BTC} 1m: 2,410 candles fetched in 4 requests, 0 were stored already; "
        "stored now: 2024-01-01 00:00 .. 2024-01-02 17:39",
        f"store: {tmp_path}",
        "gaps in the venue's history: 1, 90 candles missing, longest 90 from 2024-01-01 20:00",
        "  2024-01-01 20:00 .. 2024-01-01 21:30  (90 missing)",
    ]
    assert shared_limiter(exchange, "", 1, 60, LiveClock()).used >= requests  # every page drew on the shared budget


async def test_a_second_download_resumes_after_what_is_stored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with venue() as v:
        v.klines, v.kline_interval = [_row("binanceusdm", k) for k in range(300)], "1m"
        await _download(v, "binanceusdm", tmp_path, "2024-01-01T02:00", "2024-01-01T04:00")  # minutes 120..239
        v.klines += [_row("binanceusdm", k) for k in range(300, 400)]
        before = _kline_requests(v)
        await _download(v, "binanceusdm", tmp_path, "2024-01-01T01:00", "2024-01-01T06:00")  # minutes 60..359
        resumed = _kline_requests(v) - before
    out = capsys.readouterr().out.splitlines()
    stored = CandleStorage(tmp_path).load("binanceusdm", BTC, "1m")
    assert stored.equals(_expected("binanceusdm", list(range(60, 360))))
    assert resumed == 2  # one page before what was stored (60..119), one after it (240..359)
    assert out[3] == (
        f"binanceusdm {BTC} 1m: 180 candles fetched in 2 requests, 120 were stored already; "
        "stored now: 2024-01-01 01:00 .. 2024-01-01 05:59"
    )
    assert out[5] == "gaps in the venue's history: none"


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--since", "yesterday"], "--since 'yesterday': expected a date like 2024-01-01 or 2024-01-01T12:00"),
        (
            ["--since", "2024-01-02", "--until", "2024-01-01"],
            "--since 2024-01-02 is not before the end 2024-01-01 00:00",
        ),
        (
            ["--since", "2024-01-01", "--interval", "7x"],
            "unknown candle interval '7x' (expected like 1m, 15m, 1h, 4h, 1d)",
        ),
    ],
)
async def test_bad_input_gets_one_line(args: list[str], error: str, tmp_path: Path) -> None:
    parsed = build_parser().parse_args(["download", "binanceusdm", BTC, "--store", str(tmp_path), *args])
    with pytest.raises(ValueError, match=f"^{re.escape(error)}$"):
        await COMMANDS["download"](parsed)


async def test_an_interval_the_venue_lacks_is_refused(tmp_path: Path) -> None:
    async with venue() as v:
        parsed = build_parser().parse_args(
            ["download", "binanceusdm", BTC, "--since", "2024-01-01", "--interval", "7m", "--store", str(tmp_path),
             "--api-base-url", v.base]
        )  # fmt: skip
        with pytest.raises(ValueError, match=f"^{re.escape(LACKS_7M)}$"):
            await COMMANDS["download"](parsed)


async def test_the_candle_still_open_is_not_stored(tmp_path: Path) -> None:
    async with venue() as v:
        v.live_klines_ms = MIN  # candles up to now, the newest still open
        since = dt.datetime.fromtimestamp(time.time() - 1_800, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M")
        started_ms = int(time.time() * 1000)
        parsed = build_parser().parse_args(
            ["download", "binanceusdm", BTC, "--since", since, "--store", str(tmp_path), "--api-base-url", v.base,
             "--quiet"]
        )  # fmt: skip
        await COMMANDS["download"](parsed)
    opens = CandleStorage(tmp_path).load("binanceusdm", BTC, "1m")["open_time_ms"].to_list()
    assert opens == list(range(opens[0], opens[-1] + MIN, MIN))  # every minute from --since on, none twice
    assert opens[-1] + MIN <= int(time.time() * 1000)  # closed by now
    assert opens[-1] + MIN >= started_ms // MIN * MIN  # and the last one closed is there
