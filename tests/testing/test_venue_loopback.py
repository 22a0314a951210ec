"""What both loopback venues share: one-way position arithmetic and bounded state."""

from __future__ import annotations

import pytest

from twinstar.testing.loopback import LOG_LIMIT, apply_fill, bounded_append, evict_closed


@pytest.mark.parametrize(
    ("size", "entry", "fill", "price", "after"),
    [
        (0.0, 0.0, 0.01, 30_000.0, (0.01, 30_000.0, 0.0)),  # open
        (0.01, 30_000.0, 0.01, 32_000.0, (0.02, 31_000.0, 0.0)),  # add: size-weighted entry
        (0.02, 31_000.0, -0.01, 33_000.0, (0.01, 31_000.0, 20.0)),  # reduce: realize, keep the entry
        (0.01, 31_000.0, -0.01, 30_000.0, (0.0, 0.0, -10.0)),  # close
        (-0.01, 30_000.0, 0.03, 29_000.0, (0.02, 29_000.0, 10.0)),  # flip: the rest opens at the fill price
    ],
)
def test_a_fill_moves_a_one_way_position_as_a_venue_books_it(
    size: float, entry: float, fill: float, price: float, after: tuple[float, float, float]
) -> None:
    assert apply_fill(size, entry, fill, price) == pytest.approx(after)


def test_logs_and_books_stay_bounded_and_open_orders_are_never_dropped() -> None:
    log: list[int] = []
    for i in range(LOG_LIMIT + 1):
        bounded_append(log, i)
    assert (len(log), log[0], log[-1]) == (LOG_LIMIT // 2 + 1, LOG_LIMIT // 2, LOG_LIMIT)
    book = {i: {"open": i % 2 == 0} for i in range(6)}
    evict_closed(book, lambda o: o["open"], limit=4)
    assert list(book) == [0, 2, 4, 5]
