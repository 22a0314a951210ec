"""Flush pieces: one small immutable Arrow IPC stream per flush, holding every series' new rows.

A flush costs one file and one fsync however many series it carries, and never
reads what is stored: O(new candles). Pieces are numbered; a higher number is
newer, which is the order readers apply them in, after the month files. Each
appears under its final name only once whole (`replace_atomically`). The IPC
stream format, built from columns: 0.1 ms for 50 rows, where Parquet or the
IPC file format cost 0.3-0.8 ms, and pyarrow's own builder imports pandas.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

import polars as pl

from twinstar.atomic import replace_atomically
from twinstar.storage.layout import PIECES_DIR
from twinstar.storage.schema import SCHEMA, Row, SeriesKey, conform

_PREFIX: Final = "piece-"
_SUFFIX: Final = ".arrows"  # Arrow's name for its stream format


def pieces_dir(root: Path) -> Path:
    """Return the folder of the pieces below a storage root."""
    return root / PIECES_DIR


def piece_path(root: Path, seq: int) -> Path:
    """Return the path of piece number `seq` (zero-padded: names sort as numbers)."""
    return pieces_dir(root) / f"{_PREFIX}{seq:012d}{_SUFFIX}"


def list_pieces(root: Path) -> list[tuple[int, Path]]:
    """Return every committed piece as (seq, path), oldest first; temp and set-aside files never match."""
    folder = pieces_dir(root)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.glob(f"{_PREFIX}*{_SUFFIX}"):
        digits = path.name[len(_PREFIX) : -len(_SUFFIX)]
        if digits.isdigit():
            found.append((int(digits), path))
    return sorted(found)


def piece_frame(pending: Mapping[SeriesKey, Sequence[Row]]) -> pl.DataFrame:
    """Return the buffered rows of every series as one frame in the storage schema."""
    columns: list[list[object]] = [[] for _ in SCHEMA]
    exchanges, symbols, intervals, *values = columns
    for (exchange, symbol, interval), rows in pending.items():
        exchanges.extend([exchange] * len(rows))
        symbols.extend([symbol] * len(rows))
        intervals.extend([interval] * len(rows))
        for column, part in zip(values, zip(*rows, strict=True), strict=True):
            column.extend(part)
    return pl.DataFrame(
        [pl.Series(name, column, dtype=dtype) for (name, dtype), column in zip(SCHEMA.items(), columns, strict=True)]
    )


def write_piece(root: Path, seq: int, pending: Mapping[SeriesKey, Sequence[Row]]) -> Path:
    """Write the buffered rows as piece `seq`, durably and atomically; return its path."""
    frame = piece_frame(pending)
    path = piece_path(root, seq)
    replace_atomically(path, lambda temp: frame.write_ipc_stream(temp, compression="uncompressed"))
    return path


def read_piece(path: Path) -> pl.DataFrame:
    """Read one piece in the storage schema; raise if it is unreadable or foreign."""
    # Read whole, not memory-mapped: the writer deletes compacted pieces, and a piece is small.
    return conform(pl.read_ipc_stream(io.BytesIO(path.read_bytes())))
