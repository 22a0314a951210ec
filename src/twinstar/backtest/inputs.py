"""Every shape of input a backtest reads: candle or trade tables, archives, folders, headerless files.

- A file: CSV, CSV.gz, Parquet (`twinstar.candles` reads it), a zip of such
  files, or a folder of any of them (read in name order and joined).
- Headerless CSV: `columns` names the columns in order ("-" skips one), e.g.
  ``time,open,high,low,close,volume``. The time column ``ms_of_day`` is
  milliseconds since midnight UTC of the date in the file's name (YYYYMMDD):
  QuantConnect Lean's minute files, which are recognised by their names
  (``20180404_trade.zip``) and need no `columns`.
- Trades: a table with a time, ``price`` and a size (``size``, ``amount``,
  ``qty``, ``quantity``) and no ``open``, or the Binance combined-stream lines
  that hftbacktest records (``<receive ns> {"stream":"btcusdt@trade",...}``),
  become candles of the interval asked for (1m by default) through the live
  trade feed's own `TradeCandles`. The first candle is dropped when the data
  starts inside it, and the last when its interval is not over: they saw only
  part of their trades.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import zipfile
from pathlib import Path
from typing import Final, Literal, TypeAlias

import msgspec
import polars as pl

from twinstar.adapters.trade_candles import TradeCandles
from twinstar.candle_errors import CandleFileError
from twinstar.candles import SUFFIXES, CandleSeries, candles_from_frame, read_table, times_ms
from twinstar.intervals import interval_ms

InputFormat: TypeAlias = Literal["auto", "candles", "lean", "trades", "binance-trades"]
INPUT_FORMATS: Final[tuple[InputFormat, ...]] = ("auto", "candles", "lean", "trades", "binance-trades")

LEAN_COLUMNS: Final = "ms_of_day,open,high,low,close,volume"
_LEAN_NAME: Final = re.compile(r"^(\d{8})_trade\.zip$")
_DATE_IN_NAME: Final = re.compile(r"(\d{8})")
_SIZE_NAMES: Final = ("size", "amount", "qty", "quantity", "volume")
_FEED_LINE: Final = re.compile(rb"^\d+ \{")


class _FeedTrade(msgspec.Struct):
    T: int  # trade time, ms
    p: str  # price, as Binance sends it
    q: str  # quantity
    t: int = 0  # trade id


class _FeedFrame(msgspec.Struct):
    stream: str
    data: _FeedTrade | None = None


_feed_decoder: Final = msgspec.json.Decoder(_FeedFrame)


def read_series(
    path: Path, *, columns: str = "", fmt: InputFormat = "auto", interval: str | None = None
) -> CandleSeries:
    """Read `path` (file, zip or folder) as candles; trades become candles of `interval` (1m if None)."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and _known(p))
        if not files:
            raise CandleFileError(f"{path}: the folder holds no candle or trade files ({', '.join(SUFFIXES)}, .zip)")
    elif path.is_file():
        files = [path]
    else:
        raise CandleFileError(f"{path}: no such file or folder")
    tables = [table for file in files for table in _tables(file, columns, fmt)]
    kinds = {kind for kind, _ in tables}
    if len(kinds) > 1:
        raise CandleFileError(f"{path}: holds both candles and trades; give one kind at a time")
    frames = [frame for _, frame in tables]
    try:
        raw = pl.concat(frames, how="vertical_relaxed") if len(frames) > 1 else frames[0]
    except pl.exceptions.PolarsError as exc:
        raise CandleFileError(f"{path}: its files do not have the same columns ({exc})") from None
    if kinds == {"trades"}:
        raw = _candles_from_trades(raw, interval_ms(interval or "1m"), path)
    return candles_from_frame(raw, path, interval=interval)


def input_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes, or of a folder's files (names and bytes, in name order)."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.iterdir() if p.is_file() and _known(p)) if path.is_dir() else [path]:
        if path.is_dir():
            digest.update(file.name.encode() + b"\0")
        with file.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def _known(path: Path) -> bool:
    return path.name.lower().endswith((*SUFFIXES, ".zip", ".gz"))


def _lean(path: Path) -> bool:
    return _LEAN_NAME.match(path.name) is not None


def _feed_lines(path: Path) -> bool:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            return _FEED_LINE.match(handle.readline()) is not None
    except (OSError, EOFError):
        return False


def _tables(path: Path, columns: str, fmt: InputFormat) -> list[tuple[str, pl.DataFrame]]:
    """The tables in one file: ("candles" or "trades", raw columns)."""
    if fmt == "binance-trades" or (fmt == "auto" and not path.name.lower().endswith(".zip") and _feed_lines(path)):
        return [("trades", _binance_feed(path))]
    if path.name.lower().endswith(".zip"):
        if fmt == "auto" and not columns and _lean(path):
            columns = LEAN_COLUMNS
        try:
            with zipfile.ZipFile(path) as archive:
                members = sorted(n for n in archive.namelist() if n.lower().endswith(SUFFIXES))
                if not members:
                    raise CandleFileError(f"{path}: the zip holds no {', '.join(SUFFIXES)} file")
                return [_table(archive.read(name), f"{path}:{name}", path.name, columns, fmt) for name in members]
        except zipfile.BadZipFile as exc:
            raise CandleFileError(f"{path}: not a readable zip ({exc})") from None
    return [_table(path.read_bytes() if columns else None, str(path), path.name, columns, fmt, file=path)]


def _table(
    data: bytes | None, where: str, file_name: str, columns: str, fmt: InputFormat, *, file: Path | None = None
) -> tuple[str, pl.DataFrame]:
    if columns:
        names = [name.strip() for name in columns.split(",")]
        if data is not None and where.lower().endswith(".gz"):
            data = gzip.decompress(data)
        raw = pl.read_csv(io.BytesIO(data or b""), has_header=False, infer_schema=False)
        if raw.width != len(names):
            raise CandleFileError(f"{where}: has {raw.width} columns, --columns names {len(names)}")
        raw = raw.rename(dict(zip(raw.columns, names, strict=True))).drop([n for n in names if n == "-"])
        if "ms_of_day" in names:
            raw = _dated(raw, file_name, where)
    elif file is not None:
        raw = read_table(file)
    else:
        name = where.rsplit(":", 1)[1].lower()
        raw = pl.read_parquet(io.BytesIO(data or b"")) if name.endswith((".parquet", ".pq")) else _csv(data or b"")
    lowered = {c.strip().lower() for c in raw.columns}
    trades = fmt == "trades" or (fmt == "auto" and "price" in lowered and "open" not in lowered)
    return ("trades" if trades else "candles"), raw


def _csv(data: bytes) -> pl.DataFrame:
    return pl.read_csv(io.BytesIO(data), infer_schema=False)


def _dated(raw: pl.DataFrame, file_name: str, where: str) -> pl.DataFrame:
    """Milliseconds since midnight plus the date in the file's name, as epoch milliseconds."""
    found = _DATE_IN_NAME.search(file_name)
    if found is None:
        raise CandleFileError(f"{where}: column 'ms_of_day' needs a date (YYYYMMDD) in the file name")
    day = pl.Series([found.group(1)]).str.strptime(pl.Date, "%Y%m%d", strict=False)
    if day.is_null().any():
        raise CandleFileError(f"{where}: {found.group(1)!r} in the file name is not a date (YYYYMMDD)")
    midnight_ms = int(day.cast(pl.Datetime("ms")).dt.epoch("ms")[0])
    offsets = raw["ms_of_day"].cast(pl.Int64, strict=False)
    if offsets.is_null().any():
        raise CandleFileError(f"{where}: non-numeric value in column 'ms_of_day'")
    return raw.with_columns((offsets + midnight_ms).alias("open_time_ms")).drop("ms_of_day")


def _binance_feed(path: Path) -> pl.DataFrame:
    """The trades of a Binance combined-stream recording (hftbacktest's format)."""
    times: list[int] = []
    prices: list[str] = []
    sizes: list[str] = []
    ids: list[str] = []
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            _, _, payload = line.partition(b" ")
            try:
                frame = _feed_decoder.decode(payload)
            except msgspec.DecodeError as exc:
                raise CandleFileError(f"{path}: line {number} is not a Binance stream frame ({exc})") from None
            if frame.data is None or not frame.stream.endswith("@trade"):
                continue  # depth updates, snapshots: not trades
            times.append(frame.data.T)
            prices.append(frame.data.p)
            sizes.append(frame.data.q)
            ids.append(str(frame.data.t))
    if not times:
        raise CandleFileError(f"{path}: no @trade lines")
    return pl.DataFrame({"time": times, "price": prices, "size": sizes, "id": ids})


def _candles_from_trades(raw: pl.DataFrame, length_ms: int, path: Path) -> pl.DataFrame:
    by_name = {c.strip().lower(): c for c in raw.columns}
    time_col = next(
        (by_name[n] for n in ("time", "timestamp", "open_time_ms", "date", "datetime") if n in by_name), None
    )
    size_col = next((by_name[n] for n in _SIZE_NAMES if n in by_name), None)
    if time_col is None or size_col is None or "price" not in by_name:
        raise CandleFileError(f"{path}: a trade file needs a time, a price and a size column")
    ordered = (
        raw.select(
            times_ms(raw[time_col], path).alias("timestamp"),
            pl.col(by_name["price"]).alias("price"),
            pl.col(size_col).alias("amount"),
            (pl.col(by_name["id"]).cast(pl.String) if "id" in by_name else pl.lit(None, pl.String)).alias("id"),
        )
        .with_row_index("row")
        .sort("timestamp", "row")  # time order; trades of the same millisecond keep the file's order
        .drop("row")
    )
    # As the live trade feed does: ccxt-shaped trades through `trade_from_ccxt` into `TradeCandles`.
    candles = TradeCandles(length_ms)
    bars = candles.add_ccxt(ordered.iter_rows(named=True))
    if candles.rejected:
        raise CandleFileError(f"{path}: {candles.rejected:,} trades without a usable time, price or size")
    first_ms = int(ordered["timestamp"][0])
    if bars and first_ms > bars[0].open_time_ms:
        bars = bars[1:]  # the data starts inside the first candle: it saw part of its trades
    return pl.DataFrame(
        [msgspec.structs.astuple(bar) for bar in bars],
        schema={"open_time_ms": pl.Int64, **dict.fromkeys(("open", "high", "low", "close", "volume"), pl.Float64)},
        orient="row",
    )
