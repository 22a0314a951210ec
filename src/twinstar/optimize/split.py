"""The guard against overfitting: the search sees only the head of the data, the best trials also the tail.

Both parts are written as Parquet files beside the study's results, so a
trial is reproduced with a plain `python -m twinstar run --data <part>`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import msgspec
import polars as pl

from twinstar.atomic import replace_atomically
from twinstar.candles import COLUMNS

IN_SAMPLE = "in_sample.parquet"
OUT_OF_SAMPLE = "out_of_sample.parquet"
MIN_BARS = 2  # fewer bars leave a part without a single return to measure


class Segments(msgspec.Struct, frozen=True, kw_only=True):
    """Where the two parts of the data were written, and what the search part holds."""

    in_sample: str
    out_of_sample: str
    in_sample_bars: int
    out_of_sample_bars: int
    in_sample_digest: str  # equal on every machine that searches the same data


def digest(frame: pl.DataFrame) -> str:
    """Fingerprint candles by their values (not their file bytes, which vary by writer)."""
    hashed = hashlib.sha256()
    for name in COLUMNS:
        hashed.update(frame[name].to_numpy().tobytes())
    return hashed.hexdigest()[:32]


def split_tail(frame: pl.DataFrame, holdout: float) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split off the last `holdout` share of the bars (0 < holdout < 1)."""
    if not 0 < holdout < 1:
        raise ValueError(f"--holdout must be between 0 and 1 (a share of the bars), not {holdout:g}")
    tail = round(frame.height * holdout)
    head = frame.height - tail
    if min(head, tail) < MIN_BARS:
        raise ValueError(
            f"{frame.height} bars split {head} in-sample / {tail} out-of-sample: each part needs {MIN_BARS} or more"
        )
    return frame.head(head), frame.tail(tail)


def write_segments(frame: pl.DataFrame, holdout: float, folder: Path) -> Segments:
    """Split `frame` and write both parts into `folder`."""
    head, tail = split_tail(frame, holdout)
    folder.mkdir(parents=True, exist_ok=True)
    paths = (folder / IN_SAMPLE, folder / OUT_OF_SAMPLE)
    for part, path in zip((head, tail), paths, strict=True):
        replace_atomically(path, part.select(COLUMNS).write_parquet)
    return Segments(
        in_sample=str(paths[0].resolve()),
        out_of_sample=str(paths[1].resolve()),
        in_sample_bars=head.height,
        out_of_sample_bars=tail.height,
        in_sample_digest=digest(head),
    )
