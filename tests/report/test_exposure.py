"""Exposure is the share of bars inside some trade, counted from the trades alone."""

from __future__ import annotations

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from twinstar.report.statistics import _exposure

SPAN = st.tuples(st.integers(0, 299), st.integers(0, 40))


@given(bars=st.integers(1, 300), spans=st.lists(SPAN, max_size=25))
def test_the_union_of_trade_spans_counts_each_covered_bar_once(bars: int, spans: list[tuple[int, int]]) -> None:
    rows = [(min(entry, bars - 1), min(entry + length, bars - 1)) for entry, length in spans]
    covered = {bar for entry, exit_ in rows for bar in range(entry, exit_ + 1)}
    frame = pl.DataFrame(rows, schema={"entry_bar": pl.Int64, "exit_bar": pl.Int64}, orient="row")
    assert _exposure(bars, frame) == 100 * (len(covered) / bars)


def test_no_bars_have_no_exposure() -> None:
    assert _exposure(0, pl.DataFrame(schema={"entry_bar": pl.Int64, "exit_bar": pl.Int64})) == 0.0
