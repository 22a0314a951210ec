"""The error of an unusable candle file, apart from the loader, so the CLI can name it without importing polars."""

from __future__ import annotations


class CandleFileError(ValueError):
    """A candle file cannot be used; the message names the file and the problem in one line."""
