"""SIGKILL a real writer process at random instants; the month file must always read back whole."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from twinstar.atomic import TEMP_MARK
from twinstar.handlers.storage import CandleStorage

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")

KILLS = 40
BATCH = 200
JAN_2024_MS = 1_704_067_200_000
WRITER = Path(__file__).with_name("writer_process.py")
SRC = Path(__file__).parents[2] / "src"


def _spawn(root: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WRITER), str(root), str(SRC), str(BATCH)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,  # only a few log lines: it never fills the pipe
        text=True,
    )


def _expected(rows: int) -> pl.DataFrame:
    """What the writer commits for seconds 0..rows-1 (see writer_process.py)."""
    second = pl.int_range(0, rows, dtype=pl.Int64, eager=True)
    price = (second % 97 + 100).cast(pl.Float64)
    return pl.DataFrame(
        {
            "open_time_ms": second * 1_000 + JAN_2024_MS,
            "open": price,
            "high": price + 1,
            "low": price - 1,
            "close": price,
            "volume": pl.Series([1.0] * rows),
        }
    )


def test_sigkill_at_random_instants_always_leaves_a_whole_month_file(tmp_path: Path) -> None:
    """40 writers are killed at random moments; after each, the file is whole and has only committed rows.

    A committed count is the count before the writer started, one the writer
    printed after a flush, or the next one (killed after the rename, before
    the print). Anything else, a torn file, or a lost row fails the test.
    """
    rng = random.Random(20_261_124)
    storage = CandleStorage(tmp_path)  # the parent only reads; it never starts (locks) the root
    month_file = storage.path_for("sim", "BTC/USD", "1s", "2024-01")
    committed = 0
    kills_leaving_temp = 0
    began = time.monotonic()
    writer = _spawn(tmp_path)
    children = [writer]
    try:
        for _ in range(KILLS):
            current, writer = writer, _spawn(tmp_path)  # the next one imports while this one writes
            children.append(writer)
            assert current.stdin is not None and current.stdout is not None
            leftovers = list(tmp_path.rglob(f"*{TEMP_MARK}*"))
            current.stdin.write(f"{committed}\n")
            current.stdin.flush()
            assert current.stdout.readline() == "ready\n"
            assert not any(p.exists() for p in leftovers)  # start() removed the previous writer's temp files
            time.sleep(rng.uniform(0.0, 0.12))
            current.send_signal(signal.SIGKILL)
            assert current.wait() == -signal.SIGKILL
            printed = [int(line) for line in current.stdout.read().split()]
            assert current.stderr is not None
            errors = [line for line in current.stderr.read().splitlines() if "unfinished temp files" not in line]
            assert errors == []  # no traceback, no set-aside file: the kill never corrupted anything
            for pipe in (current.stdin, current.stdout, current.stderr):
                pipe.close()

            kills_leaving_temp += any(tmp_path.rglob(f"*{TEMP_MARK}*"))
            if not month_file.exists():
                assert (committed, printed) == (0, [])
                continue
            frame = pl.read_parquet(month_file)  # raises if the file is torn (load() would skip it)
            allowed = {committed, *printed, committed + BATCH * (len(printed) + 1)}
            assert frame.height in allowed
            assert frame.height >= committed  # nothing committed is ever lost
            assert storage.load("sim", "BTC/USD", "1s").equals(frame)
            assert frame.select("open_time_ms", "open", "high", "low", "close", "volume").equals(
                _expected(frame.height)
            )  # sorted, no duplicates, every value exactly as written
            committed = frame.height
    finally:
        for child in children:  # only the processes this test started
            if child.poll() is None:
                child.kill()
                child.wait()
            for stream in (child.stdin, child.stdout, child.stderr):
                if stream is not None and not stream.closed:
                    stream.close()
    elapsed = time.monotonic() - began
    assert committed > 0  # the work is bounded by KILLS; how long it takes depends on the host, never asserted
    print(
        f"\n{KILLS} SIGKILLs in {elapsed:.1f}s, {kills_leaving_temp} landed mid-write (temp file left), "
        f"{committed} rows committed, every intermediate state whole"
    )
