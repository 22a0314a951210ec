from __future__ import annotations

import subprocess
import sys
from pathlib import Path

FIXTURE = Path(__file__).parents[1] / "kernel" / "data" / "stream_v1.tws"


def diff(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "twinstar", "diff", str(path)], capture_output=True, text=True, check=False, timeout=50
    )


def test_diff_shows_the_recorded_signal_the_simulation_does_not_make() -> None:
    # the fixture's signals came from a toy strategy the sim components do not contain
    result = diff(FIXTURE)
    assert result.returncode == 1, result.stderr
    assert "first differing decision (#0)" in result.stdout
    assert "recorded:    SignalFired" in result.stdout
    assert "simulated:   (nothing)" in result.stdout


def test_diff_of_a_missing_file_is_one_line(tmp_path: Path) -> None:
    result = diff(tmp_path / "absent.tws")
    assert result.returncode == 2
    assert result.stdout.count("\n") == 1 and "No such file" in result.stdout
