"""Market data that ships with TwinStar (see PROVENANCE.md beside this file)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def bundled_candles_path() -> Path:
    """Path of the bundled Coinbase BTC-USD hourly candles (2017-07 to 2019-10)."""
    return Path(str(resources.files(__package__).joinpath("coinbase_btcusd_1h.parquet")))
