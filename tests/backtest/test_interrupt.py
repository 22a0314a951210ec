"""Ctrl-C during `twinstar run`: a real process, a real SIGINT."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from twinstar.bus.record import read_stream

from .helpers import walk, write

# A strategy that takes `pause_s` per candle, so the run is still going when the signal comes.
SLOW = """
import time

class Slow:
    name = "slow"

    def __init__(self, pause_s: float = 0.001) -> None:
        self.pause_s = pause_s

    def on_candle(self, candle):
        time.sleep(self.pause_s)
        return None
"""


def _start(tmp_path: Path, pause_s: float, candles: int) -> tuple[subprocess.Popen[str], Path]:
    (tmp_path / "slow.py").write_text(SLOW)
    (tmp_path / "run.toml").write_text(
        f'symbols = ["SIM/USD"]\n[strategy]\nname = "slow.py:Slow"\nparams = {{ pause_s = {pause_s} }}\n'
    )
    data = write(walk(candles), tmp_path / "walk.parquet")
    out = tmp_path / "out"
    command = ["run", "--config", "run.toml", "--data", str(data), "--out", str(out), "--quiet", "--gaps", "reset"]
    process = subprocess.Popen(
        [sys.executable, "-m", "twinstar", *command],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    return process, out


def _wait_for(process: subprocess.Popen[str], text: str) -> list[str]:
    assert process.stderr is not None
    seen: list[str] = []
    while not any(text in line for line in seen):
        line = process.stderr.readline()
        assert line, f"the process ended before printing {text!r}: {seen}"
        seen.append(line)
    return seen


def test_ctrl_c_stops_at_a_candle_and_still_reports_what_ran(tmp_path: Path) -> None:
    process, out = _start(tmp_path, pause_s=0.001, candles=50_000)
    # --quiet prints nothing before trading; the stream's existence says the run is on.
    while not (out / "events.tws").exists():
        assert process.poll() is None, process.communicate()
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=50)
    assert process.returncode == 130, stderr
    assert "stopping at the next candle (Ctrl-C again to quit at once)" in stderr
    summary = json.loads((out / "stats.json").read_text())
    assert 0 < summary["bars"] < 50_000
    assert f"interrupted: the report covers the first {summary['bars']:,} candles" in stderr
    assert "net PnL" in stdout
    # The recording holds what ran and replays to the same bytes.
    replayed = subprocess.run(
        [sys.executable, "-m", "twinstar", "replay", str(out / "events.tws"), "--output", str(tmp_path / "again.tws")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert replayed.returncode == 0, replayed.stderr
    assert f"replayed {summary['bars']} input events" in replayed.stdout
    assert (tmp_path / "again.tws").read_bytes() == (out / "events.tws").read_bytes()
    assert read_stream(out / "events.tws").torn_tail is False


def test_a_second_ctrl_c_quits_at_once_without_a_report(tmp_path: Path) -> None:
    process, out = _start(tmp_path, pause_s=0.02, candles=5_000)  # 1,024 candles to the next stop check: 20 s
    while not (out / "events.tws").exists():
        assert process.poll() is None, process.communicate()
    process.send_signal(signal.SIGINT)
    _wait_for(process, "stopping at the next candle")
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=50)
    assert process.returncode == 130
    assert "interrupted again: quitting without a report" in stderr
    assert not (out / "stats.json").exists()
    assert stdout == ""
