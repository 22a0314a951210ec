"""Real recorded exchange payloads through ccxt's own parsers into TwinStar candles.

Fixtures (copied with licences into tests/adapters/data, see PROVENANCE.md):
ccxt's recorded Binance USD-M, Upbit and Lighter REST klines and Bybit v5 kline
frames, each with the parse ccxt's developers recorded beside it; cryptofeed's
captures of real Binance USD-M kline, Bitget v1 candle, OKX v5 trade and
Bithumb transaction frames; and hftbacktest's real Binance USD-M trade frames.
Trades go through ccxt.pro's own WebSocket handlers, then `TradeCandles`, and
are checked against the raw frames grouped by minute.
"""

from __future__ import annotations

import datetime as dt
import gzip
import itertools
import json
import math
from pathlib import Path
from typing import Any

import ccxt
import ccxt.pro
import pytest

import twinstar.testing
from twinstar.adapters import lighter
from twinstar.adapters.base import Bar
from twinstar.adapters.feeds import bar_problem
from twinstar.adapters.trade_candles import TradeCandles

DATA = Path(__file__).parent / "data"


def _cases(file: str, method: str) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = json.loads((DATA / file).read_text())["methods"][method]
    return cases


def _bars(rows: list[list[Any]]) -> list[Bar]:
    return [Bar(int(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4]), float(r[5] or 0)) for r in rows]


@pytest.mark.parametrize(
    ("exchange", "file"),
    [
        (ccxt.binanceusdm, "binance.usdm-extract.json"),
        (ccxt.binance, "binance.usdm-extract.json"),
        (ccxt.upbit, "upbit.json"),
    ],
)
def test_recorded_rest_klines_parse_into_valid_candles(exchange: Any, file: str) -> None:
    parser = exchange()
    checked = 0
    for case in _cases(file, "fetchOHLCV"):
        symbol, timeframe = case["input"][0], case["input"][1]
        if (exchange is ccxt.binanceusdm and ":" not in symbol) or (exchange is ccxt.binance and ":" in symbol):
            continue
        market = {"id": symbol.replace("/", ""), "symbol": symbol, "spot": ":" not in symbol}
        parsed = parser.parse_ohlcvs(case["httpResponse"], market, timeframe)
        bars = _bars(parsed)
        assert bars == _bars(case["parsedResponse"])
        assert all(bar_problem(b) is None for b in bars)
        assert [b.open_time_ms for b in bars] == sorted(b.open_time_ms for b in bars)
        checked += 1
    assert checked >= 1


def test_recorded_bybit_v5_kline_frames_parse_into_candles() -> None:
    parser = ccxt.pro.bybit()
    for case in _cases("bybit.ws.extract.json", "watchOHLCV"):
        frames = [m for m in case["messages"] if str(m.get("topic", "")).startswith("kline.")]
        parsed = [[parser.parse_ws_ohlcv(item) for item in frame["data"]] for frame in frames]
        assert [_bars(p) for p in parsed] == [_bars(p) for p in case["parsedResponses"]]
        assert frames[0]["data"][0]["confirm"] is False  # open candles are marked; only confirmed ones close


def test_recorded_binance_usdm_kline_frames_mark_closes_and_parse() -> None:
    frames = []
    for line in (DATA / "binance_usdm_kline_ws.txt").read_text().splitlines():
        head, _, body = line.partition(": ")
        if head.replace(".", "").isdigit():
            frames.append(json.loads(body))
    klines = [f["data"]["k"] for f in frames]
    closed = [k for k in klines if k["x"]]
    assert len(klines) == 67
    assert {k["s"] for k in closed} == {"SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT"}
    for k in closed:
        bar = Bar(int(k["t"]), float(k["o"]), float(k["h"]), float(k["l"]), float(k["c"]), float(k["v"]))
        assert bar_problem(bar) is None
        assert int(k["T"]) == bar.open_time_ms + 59_999  # a one-minute candle, closed


# -- trades through ccxt.pro's own parsers, then into candles ------------------------------------------

MIN = 60_000


def _received(file: str) -> list[dict[str, Any]]:
    """The frames a cryptofeed capture received (`<ts>: <json>`), not the ones it sent."""
    opener = gzip.open if file.endswith(".gz") else open
    with opener(DATA / file, "rt") as lines:
        return [json.loads(body) for head, _, body in (line.partition(": ") for line in lines) if " " not in head]


def _ccxt_trades(parser: Any, url: str, frames: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Push frames through the exchange's real WebSocket message handler; return its parsed trades."""
    parser.options["tradesLimit"] = 100_000
    client = parser.client(url)
    for frame in frames:
        parser.handle_message(client, frame)
    return {symbol: list(cache) for symbol, cache in parser.trades.items()}


def _candles(trades: list[dict[str, Any]], length_ms: int = MIN) -> list[Bar]:
    """Every candle of the trades: the ones later trades closed, then the last one closed by time."""
    candles = TradeCandles(length_ms)
    bars = candles.add_ccxt(trades)
    last = candles.close_until(2**62)
    assert candles.rejected == candles.stale == candles.duplicates == 0
    return [*bars, *([last] if last is not None else [])]


def _reference(rows: list[tuple[int, float, float]], length_ms: int = MIN) -> list[Bar]:
    """(time ms, price, amount) read straight from the raw frames, grouped by interval."""
    bars: list[Bar] = []
    for start, group in itertools.groupby(sorted(rows, key=lambda r: r[0]), key=lambda r: r[0] // length_ms):
        items = list(group)
        prices = [p for _, p, _ in items]
        volume = math.fsum(q for _, _, q in items)
        bars.append(Bar(start * length_ms, prices[0], max(prices), min(prices), prices[-1], volume))
    return bars


def _prices(bar: Bar) -> tuple[int, float, float, float, float]:
    return (bar.open_time_ms, bar.open, bar.high, bar.low, bar.close)


def _same(actual: list[Bar], expected: list[Bar]) -> None:
    """Prices exactly; volume up to float summation order."""
    assert [_prices(b) for b in actual] == [_prices(b) for b in expected]
    assert [b.volume for b in actual] == pytest.approx([b.volume for b in expected], rel=1e-12)


@pytest.mark.anyio
async def test_recorded_bithumb_legacy_transaction_frames_parse_into_candles() -> None:
    frames = _received("bithumb_transaction_ws.txt")
    parser = ccxt.pro.bithumb()
    try:
        trades = _ccxt_trades(parser, "wss://pubwss.bithumb.com/pub/ws", frames)
    finally:
        await parser.close()
    # The legacy (generation 1) shape still parses in ccxt 4.5.90; its trades carry no id.
    assert {symbol: len(items) for symbol, items in trades.items()} == {"CON/KRW": 1, "GOM2/KRW": 6}
    assert all(t["id"] is None for items in trades.values() for t in items)
    kst = dt.timezone(dt.timedelta(hours=9))  # contDtm is Korean local time
    raw = [t for f in frames if f.get("type") == "transaction" for t in f["content"]["list"]]
    for symbol, items in trades.items():
        rows = [
            (
                int(dt.datetime.fromisoformat(t["contDtm"]).replace(tzinfo=kst).timestamp() * 1000),
                float(t["contPrice"]),
                float(t["contQty"]),
            )
            for t in raw
            if t["symbol"] == symbol.replace("/", "_")
        ]
        _same(_candles(items), _reference(rows))
    assert _prices(_candles(trades["GOM2/KRW"])[0]) == (1622590980000, 7.524, 7.525, 7.523, 7.525)


@pytest.mark.anyio
async def test_recorded_binance_usdm_trade_frames_parse_into_candles() -> None:
    with gzip.open(DATA / "binance_usdm_btcusdt_trades.txt.gz", "rt") as lines:
        frames = [json.loads(line.partition(" ")[2])["data"] for line in lines]  # `<receive ns> <json>`
    parser = ccxt.pro.binanceusdm()
    info = json.loads((Path(twinstar.testing.__file__).parent / "data" / "binance_usdm_exchange_info.json").read_text())
    parser.set_markets(parser.parse_markets(info["symbols"]))
    try:
        trades = _ccxt_trades(parser, "wss://fstream.binance.com/public/ws/0", frames)
    finally:
        await parser.close()
    [(symbol, items)] = trades.items()
    assert (symbol, len(items)) == ("BTC/USDT:USDT", len(frames))
    assert [t["id"] for t in items] == [str(f["t"]) for f in frames]
    bars = _candles(items)
    _same(bars, _reference([(f["T"], float(f["p"]), float(f["q"])) for f in frames]))
    # 23:54:55 to 23:57:05 UTC: the slice cuts the first and last minute; 23:55 and 23:56 are whole.
    assert [b.open_time_ms for b in bars] == [1723161240000 + k * MIN for k in range(4)]
    assert all(bar_problem(b) is None for b in bars)


@pytest.mark.anyio
async def test_recorded_okx_v5_trade_frames_parse_into_candles() -> None:
    instruments = json.loads((DATA / "okx_instruments.json").read_text())["responses"]
    frames = _received("okx_trades_ws.txt")
    parser = ccxt.pro.okx()
    parser.set_markets(parser.parse_markets([item for reply in instruments for item in reply["data"]]))
    try:
        trades = _ccxt_trades(parser, "wss://ws.okx.com:8443/ws/v5/public", frames)
    finally:
        await parser.close()
    assert {symbol: len(items) for symbol, items in trades.items()} == {
        "BTC/USDT": 69,
        "BTC/USD:BTC-220527": 4,
        "UNI/USD:UNI": 1,
    }
    assert parser.markets["BTC/USD:BTC-220527"]["contractSize"] == 100.0  # amounts are contracts of 100 USD
    raw = [t for f in frames for t in f["data"]]
    for symbol, items in trades.items():
        market_id = parser.market(symbol)["id"]
        rows = [(int(t["ts"]), float(t["px"]), float(t["sz"])) for t in raw if t["instId"] == market_id]
        _same(_candles(items), _reference(rows))
    assert [b.open_time_ms for b in _candles(trades["BTC/USD:BTC-220527"])] == [1652459160000, 1652459220000]


@pytest.mark.anyio
async def test_recorded_bitget_v1_candle_frames_parse_through_ccxt_pro() -> None:
    frames = _received("bitget_mix_candle1m_ws.txt.gz")
    parser = ccxt.pro.bitget()
    try:
        client = parser.client("wss://ws.bitget.com/v2/ws/public")
        for frame in frames:
            parser.handle_message(client, frame)  # the retired v1 shape is still accepted by the v2 handler
        parsed = {symbol: _bars(list(by_tf["1m"])) for symbol, by_tf in parser.ohlcvs.items()}
    finally:
        await parser.close()
    assert set(parsed) == {"DASHUSDT", "UNIUSDT"}  # no markets loaded: ccxt keeps the venue's ids
    for symbol, bars in parsed.items():
        latest: dict[int, list[Any]] = {}  # an update frame replaces the candle with its timestamp
        for frame in frames:
            if frame["arg"]["instId"] == symbol:
                latest.update({int(row[0]): row for row in frame["data"]})
        expected = _bars([latest[t] for t in sorted(latest)])
        assert len(bars) == 1000  # ccxt keeps the newest OHLCVLimit candles
        assert bars == expected[-1000:]
        assert all(bar_problem(b) is None for b in bars)
        assert {b.open_time_ms - a.open_time_ms for a, b in itertools.pairwise(bars)} == {MIN}
        assert all(len(row) == 6 for row in latest.values())  # v1: [ts, o, h, l, c, base volume]


def test_recorded_lighter_candles_old_format_parse_and_ccxt_4_5_90_does_not() -> None:
    [case] = _cases("lighter.extract.json", "fetchOHLCV")
    body = case["httpResponse"]
    assert "candlesticks" in body
    assert lighter.parse_candles(body) == _bars(case["parsedResponse"])
    # ccxt 4.5.90 reads the current body, `{"c": [...]}`, and finds nothing in the old one.
    parser = ccxt.lighter()
    assert parser.parse_ohlcvs(parser.safe_list(body, "c", []), None, "1m") == []
    [row] = body["candlesticks"]
    current = {"code": 200, "r": "1m", "c": [{"t": row["timestamp"], "o": row["open"], "h": row["high"],
                                                "l": row["low"], "c": row["close"], "v": row["volume0"],
                                                "V": row["volume1"], "i": row["last_trade_id"]}]}  # fmt: skip
    assert _bars(parser.parse_ohlcvs(current["c"], None, "1m")) == lighter.parse_candles(current)
