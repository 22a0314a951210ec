"""A backtest needs neither ccxt nor aiohttp (they cost a second of start-up), and --help needs no polars."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .helpers import walk, write

PROBE = """
import sys
from twinstar.cli import main
code = main(sys.argv[1:])
heavy = sorted(name for name in ("ccxt", "aiohttp", "pandas") if name in sys.modules)
print("exit", code, "heavy", heavy)
"""


def _probe(*args: str, cwd: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, cwd=cwd, timeout=50, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()[-1]


def test_a_backtest_imports_neither_ccxt_nor_aiohttp(tmp_path: Path) -> None:
    data = write(walk(300), tmp_path / "walk.parquet")
    assert _probe("run", "--data", str(data), "--out", str(tmp_path / "out"), "--quiet", cwd=tmp_path) == (
        "exit 0 heavy []"
    )


def test_help_imports_no_polars_and_no_exchange_library(tmp_path: Path) -> None:
    probe = "import sys, twinstar.cli; print(sorted(m for m in ('polars', 'ccxt', 'aiohttp') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=50, check=False)
    assert (result.returncode, result.stdout) == (0, "[]\n"), result.stderr
