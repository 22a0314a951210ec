"""The phases of `twinstar run --data FILE`, one by one: `python bench/cli_phases.py FILE CONFIG`.

Run by bench/bench_cli.py in a child process of its own. The last line
printed is JSON with each phase's seconds: import, load (read and check),
convert (every candle to an event), trade (the engine alone on ready events,
timed as bench/bench_pipeline.py times it), record (what the recorder and the
equity curve add to the same trading), report (statistics, trades, chart).
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

started = time.perf_counter()
from twinstar.backtest.runner import check_data, run_checked  # noqa: E402  (timed: the import phase)
from twinstar.backtest.source import source_batches  # noqa: E402
from twinstar.cli import build_parser  # noqa: E402
from twinstar.config import Config  # noqa: E402

imported = time.perf_counter() - started
sys.path.insert(0, str(Path(__file__).parents[1]))
from bench.peers import run_twinstar  # noqa: E402


def main(path: Path, config_path: Path) -> None:
    """Time each phase and print them."""
    build_parser()
    phases = {"import": imported}
    mark = time.perf_counter()
    checked = check_data(Config.load(config_path), path)
    phases["load"] = time.perf_counter() - mark
    mark = time.perf_counter()
    events = [event for batch in source_batches(checked.frame, checked.source) for event in batch]
    phases["convert"] = time.perf_counter() - mark
    engine = asyncio.run(run_twinstar(events, checked.config))  # type: ignore[arg-type]  # candles only
    phases["trade"] = engine.seconds
    del events
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(run_checked(checked, Path(tmp)))
    # The run minus converting and trading leaves what recording and the equity curve add.
    phases["record"] = result.seconds["run"] - phases["convert"] - phases["trade"]
    phases["report"] = result.seconds["report"]
    print(json.dumps(phases))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
