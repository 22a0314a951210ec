"""The CLI as a user runs it: a real subprocess, exit codes and what it prints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

KERNEL_DATA = Path(__file__).parents[1] / "kernel" / "data"


def twinstar(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "twinstar", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        check=False,
    )


def test_help_lists_the_commands() -> None:
    result = twinstar("--help")
    assert result.returncode == 0
    for command in ("run", "replay"):
        assert command in result.stdout


@pytest.mark.parametrize("args", [["bogus"], ["replay"], ["run", "--nope"], []])
def test_bad_arguments_get_one_line_and_exit_code_2(args: list[str]) -> None:
    result = twinstar(*args)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("symbols = [", "not valid TOML"),
        ("api_key = 'secret'", "Object contains unknown field `api_key`"),
        ("[risk]\nstop_loss_pct = -1", "stop_loss_pct must be in (0, 100)"),
        ("interval = 5", "Expected `str`, got `int`"),
    ],
)
def test_bad_config_files_get_one_line_and_exit_code_2(tmp_path: Path, content: str, message: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(content)
    result = twinstar("run", "--config", str(config))
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "secret" not in result.stderr


def test_a_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    result = twinstar("run", "--config", str(tmp_path / "none.toml"))
    assert result.returncode == 2
    assert result.stderr.startswith("twinstar: error: cannot read config")


def test_replay_prints_a_summary(tmp_path: Path) -> None:
    result = twinstar("replay", str(KERNEL_DATA / "stream_v1.tws"), "--output", str(tmp_path / "out.tws"))
    assert result.returncode == 0, result.stderr
    assert "replayed 3 input events" in result.stdout
    assert "CandleClosed" in result.stdout
    assert "buy & hold return" in result.stdout
    assert (tmp_path / "out.tws").stat().st_size > 0
    assert {p.name for p in tmp_path.iterdir()} == {
        "out.tws",
        "stats.json",
        "trades.parquet",
        "trades.csv",
        "report.html",
    }


def test_replay_of_a_non_stream_is_a_one_line_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tws"
    junk.write_text("hello")
    result = twinstar("replay", str(junk))
    assert result.returncode == 2
    assert result.stderr == f"twinstar: error: {junk} is not a TwinStar event stream (bad magic bytes)\n"
