"""Rebuild ``coinbase_btcusd_1h.parquet`` (beside this file) from the upstream CSV.

Usage::

    python -m twinstar.data.build_bundled PATH/TO/Coinbase_BTCUSD_1h.csv[.gz]

Run by hand when the bundled set changes; nothing imports or runs this at
install or run time. It documents, as code, every step between the upstream
file and the shipped one (see PROVENANCE.md):

1. read the CSV with `twinstar.candles.load_candles`: the CryptoDataDownload
   banner line is skipped, dates like ``2019-10-17 09-AM`` are parsed as UTC
   hours, ``volume_btc`` (base units) is kept as ``volume`` and the quote
   ``volume`` (USD) is dropped;
2. sort ascending by open time (upstream is newest first); there are no
   duplicates, gaps or invalid values to remove, and the script checks that;
3. write columns ``open_time_ms, open, high, low, close, volume`` as zstd
   Parquet. No value is changed.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Final

import polars as pl

from twinstar.candles import COLUMNS, load_candles

TARGET: Final = Path(__file__).with_name("coinbase_btcusd_1h.parquet")
EXPECTED_ROWS: Final = 20_111
HOUR_MS: Final = 3_600_000


def build(source: Path, target: Path = TARGET) -> pl.DataFrame:
    """Convert the upstream CSV at `source` into the bundled Parquet at `target`."""
    series = load_candles(source, symbol="BTC/USD", interval="1h")
    frame = series.frame.select(COLUMNS)
    steps = frame["open_time_ms"].diff().drop_nulls().unique().to_list()
    if frame.height != EXPECTED_ROWS or steps != [HOUR_MS]:
        raise SystemExit(f"{source}: expected {EXPECTED_ROWS} gapless hourly rows, got {frame.height}, steps {steps}")
    frame.write_parquet(target, compression="zstd", compression_level=19, statistics=True)
    return frame


def main(argv: list[str]) -> int:
    """Build the bundled file from the CSV named in `argv` and print its checksums."""
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    source = Path(argv[0])
    frame = build(source)
    print(f"source sha256 {hashlib.sha256(source.read_bytes()).hexdigest()}  {source.name}")
    print(f"target sha256 {hashlib.sha256(TARGET.read_bytes()).hexdigest()}  {TARGET.name}")
    print(f"{frame.height} candles, {TARGET.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
