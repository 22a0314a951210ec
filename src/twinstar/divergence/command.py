"""`twinstar diff RECORDING`: re-simulate a recording and show where it departs from it."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from twinstar.bus.record import StreamFormatError, read_stream
from twinstar.divergence.compare import Fill


def _show(fill: Fill | None) -> str:
    return "-" if fill is None else f"{fill.client_order_id} {fill.filled_qty:g} @ {fill.avg_price:g}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="stream file written by a run (events.tws)")


async def run(args: argparse.Namespace) -> int:
    from twinstar.divergence.compare import compare
    from twinstar.replay import replay
    from twinstar.session import sim_components

    try:
        original = list(read_stream(args.file))
    except (OSError, StreamFormatError) as error:
        print(f"error: {error}")
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        output = Path(scratch) / "simulated.tws"
        await replay(args.file, output=output, components=sim_components, simulate=True)
        divergence = compare(original, read_stream(output))
    if divergence.index < 0:
        print("no departure: the re-simulated decisions equal the recorded ones")
    else:
        print(f"first differing decision (#{divergence.index}):")
        print(f"  recorded:    {divergence.original or '(nothing)'}")
        print(f"  simulated:   {divergence.replayed or '(nothing)'}")
    print(f"fills: recorded {len(divergence.original_fills)}, simulated {len(divergence.replayed_fills)}")
    for index in range(max(len(divergence.original_fills), len(divergence.replayed_fills))):
        left = divergence.original_fills[index] if index < len(divergence.original_fills) else None
        right = divergence.replayed_fills[index] if index < len(divergence.replayed_fills) else None
        print(f"  {_show(left):<40} | {_show(right)}")
    print(f"pnl: recorded {divergence.original_pnl:.6f}, simulated {divergence.replayed_pnl:.6f}")
    return 0 if divergence.index < 0 else 1
