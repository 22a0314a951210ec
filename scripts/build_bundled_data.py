"""Rebuild src/twinstar/data/coinbase_btcusd_1h.parquet from the upstream CSV.

Usage: python scripts/build_bundled_data.py PATH/TO/Coinbase_BTCUSD_1h.csv.gz
Run by hand when the bundled set changes; nothing runs it at install or run time.
"""

from __future__ import annotations

import sys
from pathlib import Path

from twinstar.candles import COLUMNS, load_candles

TARGET = Path(__file__).parents[1] / "src" / "twinstar" / "data" / "coinbase_btcusd_1h.parquet"


def main(source: str) -> None:
    series = load_candles(source, interval="1h")
    series.frame.select(COLUMNS).write_parquet(TARGET, compression="zstd", compression_level=19, statistics=True)
    print(f"wrote {TARGET} ({series.frame.height} candles, {TARGET.stat().st_size} bytes)")


if __name__ == "__main__":
    main(sys.argv[1])
