"""The held-out tail: sizes, refusals, and parts that load back as `run` loads them."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from twinstar.candles import load_candles
from twinstar.optimize.split import digest, split_tail, write_segments


def _candles(count: int) -> pl.DataFrame:
    opens = [1_600_000_000_000 + k * 3_600_000 for k in range(count)]
    prices = [100.0 + k for k in range(count)]
    return pl.DataFrame(
        {"open_time_ms": opens, "open": prices, "high": prices, "low": prices, "close": prices, "volume": prices}
    )


def test_the_tail_is_held_out() -> None:
    head, tail = split_tail(_candles(100), 0.25)
    assert (head.height, tail.height) == (75, 25)
    assert head["open_time_ms"].to_list()[-1] < tail["open_time_ms"].to_list()[0]


@pytest.mark.parametrize("holdout", [0.0, 1.0, -0.1])
def test_a_share_outside_zero_to_one_is_refused(holdout: float) -> None:
    with pytest.raises(ValueError, match="--holdout must be between 0 and 1"):
        split_tail(_candles(100), holdout)


def test_too_few_bars_for_two_parts_are_refused() -> None:
    with pytest.raises(ValueError, match="3 bars split 2 in-sample / 1 out-of-sample"):
        split_tail(_candles(3), 0.25)


def test_written_parts_load_back_unchanged(tmp_path: Path) -> None:
    frame = _candles(40)
    segments = write_segments(frame, 0.5, tmp_path)
    head = load_candles(segments.in_sample).frame
    tail = load_candles(segments.out_of_sample).frame
    assert (head.equals(frame.head(20)), tail.equals(frame.tail(20))) == (True, True)
    assert segments.in_sample_digest == digest(head) != digest(tail)
