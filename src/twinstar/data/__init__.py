"""Market data that ships with TwinStar (origin and licence: PROVENANCE.md beside this file)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from twinstar.candles import CandleSeries

BUNDLED_FILE: Final = "coinbase_btcusd_1h.parquet"
BUNDLED_SYMBOL: Final = "BTC/USD"
BUNDLED_INTERVAL: Final = "1h"


def bundled_candles_path() -> Path:
    """Return the path of the bundled Coinbase BTC-USD hourly candles (2017-07 to 2019-10).

    Resolved with importlib.resources, so it works from a source checkout and
    from an installed wheel alike (wheels install unzipped, so it is a real file).
    """
    return Path(str(resources.files(__name__).joinpath(BUNDLED_FILE)))


def load_bundled() -> CandleSeries:
    """Load the bundled candles: 20,111 hourly BTC/USD bars from Coinbase, ascending."""
    # Imported here: `twinstar.candles` pulls in polars, which `--help` does not need.
    from twinstar.candles import load_candles

    return load_candles(bundled_candles_path(), symbol=BUNDLED_SYMBOL, interval=BUNDLED_INTERVAL)
