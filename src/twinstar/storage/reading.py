"""One consistent snapshot of the stored layers: month files, then pieces, oldest first.

Only the writer deletes pieces, and only after a compaction made their rows
durable in the month files. A reader in another process may still race it, so
a read is retried until the list of pieces is the same before and after: then
the month files it read hold nothing newer than those pieces, and applying the
pieces on top (again) gives the right series.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Final

import polars as pl

from twinstar.storage.layout import one_line
from twinstar.storage.pieces import list_pieces, read_piece

log: Final = logging.getLogger("twinstar.storage")
_ATTEMPTS: Final = 5


def read_layers(root: Path, read_months: Callable[[], list[pl.DataFrame]]) -> list[pl.DataFrame]:
    """Return the month frames `read_months` gives, then every piece's rows, oldest first.

    An unreadable piece is skipped and logged (the next start sets it aside).
    """
    layers: list[pl.DataFrame] = []
    for _ in range(_ATTEMPTS):
        listed = list_pieces(root)
        pieces = _read_all(p for _, p in listed)
        if pieces is None:
            continue  # a piece vanished: a compaction just finished; read again
        layers = [*read_months(), *pieces]
        if list_pieces(root) == listed:
            return layers
    log.warning("pieces under %s kept changing during %d reads; returning the last one", root, _ATTEMPTS)
    return layers


def _read_all(paths: Iterable[Path]) -> list[pl.DataFrame] | None:
    frames = []
    for path in paths:
        try:
            frames.append(read_piece(path))
        except FileNotFoundError:
            return None
        except (pl.exceptions.PolarsError, OSError) as exc:
            log.error("skipping unreadable candle piece %s: %s", path, one_line(exc))
    return frames
