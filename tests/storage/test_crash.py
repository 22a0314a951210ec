"""SIGKILL a real writer process at random instants; every flushed candle must always read back.

The writer flushes a piece per round and compacts every few rounds in a child
process of its own. A kill takes the writer alone (its compaction runs on as
an orphan, holding the compaction lock against the next writer's) or its
whole process group (writer and compaction at once).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import polars as pl
import pytest

from twinstar.atomic import TEMP_MARK
from twinstar.handlers.storage import CandleStorage
from twinstar.storage.layout import COMPACT_LOCK_NAME
from twinstar.storage.pieces import list_pieces, read_piece

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")

KILLS = 24
BATCH = 50
COMPACT_EVERY = 25  # rounds; a round takes about a millisecond, a compaction a few hundred
JAN_2024_MS = 1_704_067_200_000
WRITER = Path(__file__).with_name("writer_process.py")
SRC = Path(__file__).parents[2] / "src"
# What a killed writer may leave on stderr besides tracebacks (which fail the test).
EXPECTED_LOG = ("unfinished temp files", "compaction under", "compaction: ")


def _spawn(root: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WRITER), str(root), str(SRC), str(BATCH), str(COMPACT_EVERY)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,  # only a few log lines: it never fills the pipe
        text=True,
        start_new_session=True,  # its own process group: writer and its compaction child die together
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


def _compaction_running(root: Path) -> bool:
    with (root / COMPACT_LOCK_NAME).open("ab") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return False


def _kill_group(child: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)  # the group of a writer this test started, orphans included


def test_sigkill_at_random_instants_never_loses_a_flushed_candle(tmp_path: Path) -> None:
    """24 writers are killed at random moments; after each, every file is whole and nothing flushed is lost.

    A committed count is the count before the writer started, one the writer
    printed after a flush, or the next one (killed after the rename, before
    the print). Anything else, a torn file, or a lost row fails the test.
    """
    rng = random.Random(20_261_124)
    storage = CandleStorage(tmp_path)  # the parent only reads; it never starts (locks) the root
    month_file = storage.path_for("sim", "BTC/USD", "1s", "2024-01")
    committed = 0
    kills_leaving_temp = kills_during_compaction = group_kills = 0
    began = time.monotonic()
    writer = _spawn(tmp_path)
    children = [writer]
    try:
        for _ in range(KILLS):
            current, writer = writer, _spawn(tmp_path)  # the next one imports while this one writes
            children.append(writer)
            assert current.stdin is not None and current.stdout is not None
            current.stdin.write(f"{committed}\n")
            current.stdin.flush()
            assert current.stdout.readline() == "ready\n"
            time.sleep(rng.uniform(0.0, 0.2))
            kills_during_compaction += _compaction_running(tmp_path)
            if rng.random() < 0.5:
                group_kills += 1
                _kill_group(current)
            else:
                current.send_signal(signal.SIGKILL)  # a compaction it started runs on, orphaned
            assert current.wait() == -signal.SIGKILL
            printed = [int(line) for line in current.stdout.read().split()]
            assert current.stderr is not None
            lines = current.stderr.read().splitlines()
            errors = [line for line in lines if not any(text in line for text in EXPECTED_LOG)]
            assert errors == []  # no traceback, no set-aside file: the kill never corrupted anything
            for pipe in (current.stdin, current.stdout, current.stderr):
                pipe.close()

            kills_leaving_temp += any(tmp_path.rglob(f"*{TEMP_MARK}*"))
            if month_file.exists():
                with month_file.open("rb") as handle:  # an orphaned compaction may be replacing it right now
                    pl.read_parquet(handle)  # raises if the file is torn (load() would skip it)
            for _, piece in list_pieces(tmp_path):
                read_piece(piece)  # likewise
            frame = storage.load("sim", "BTC/USD", "1s")
            allowed = {committed, *printed, committed + BATCH * (len(printed) + 1)}
            assert frame.height in allowed
            assert frame.height >= committed  # nothing committed is ever lost
            assert frame.select("open_time_ms", "open", "high", "low", "close", "volume").equals(
                _expected(frame.height)
            )  # sorted, no duplicates, every value exactly as written
            committed = frame.height
    finally:
        for child in children:  # only the processes this test started, and their process groups
            _kill_group(child)
            if child.poll() is None:
                child.kill()
            child.wait()
            for stream in (child.stdin, child.stdout, child.stderr):
                if stream is not None and not stream.closed:
                    stream.close()

    async def compact_what_is_left() -> None:
        final = CandleStorage(tmp_path)
        await final.start()
        await final.stop()  # compacts every piece left into the month file

    anyio.run(compact_what_is_left)
    assert list_pieces(tmp_path) == []
    assert pl.read_parquet(month_file).select(_expected(0).columns).equals(_expected(committed))
    elapsed = time.monotonic() - began
    assert committed > 0  # the work is bounded by KILLS; how long it takes depends on the host, never asserted
    print(
        f"\n{KILLS} SIGKILLs ({group_kills} of the whole group) in {elapsed:.1f}s: {kills_during_compaction} while "
        f"a compaction ran, {kills_leaving_temp} left a temp file; {committed} rows committed, none lost"
    )
