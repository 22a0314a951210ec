"""`twinstar run` on candles as a user meets it: run folders, the bundled data's symbol, own strategies."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from twinstar.bus.events import SignalFired
from twinstar.bus.record import read_stream

from .helpers import walk, write

MOMENTUM = """
from twinstar.handlers.strategy import Signal


class Momentum:
    name = "momentum"

    def __init__(self, run: int = 3) -> None:
        self.run = run
        self.rising = 0
        self.last = 0.0

    def on_candle(self, candle):
        self.rising = self.rising + 1 if candle.close > self.last else 0
        self.last = candle.close
        return Signal("buy", reason="rising") if self.rising == self.run else None
"""


def _twinstar(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "twinstar", *args], capture_output=True, text=True, cwd=cwd, timeout=50, check=False
    )


def test_a_non_empty_out_folder_is_refused_unless_forced(tmp_path: Path) -> None:
    data = write(walk(300), tmp_path / "walk.csv")
    out = tmp_path / "out"
    first = _twinstar("run", "--data", str(data), "--out", str(out), "--quiet", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    again = _twinstar("run", "--data", str(data), "--out", str(out), "--quiet", cwd=tmp_path)
    assert (again.returncode, again.stderr) == (
        2,
        f"twinstar: error: --out {out}: the folder is not empty (pass --force to replace an earlier run)\n",
    )
    (out / "notes.txt").write_text("mine")
    forced = _twinstar("run", "--data", str(data), "--out", str(out), "--quiet", "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "events.tws",
        "notes.txt",
        "report.html",
        "stats.json",
        "trades.csv",
        "trades.parquet",
    ]


def test_the_bundled_candles_cannot_be_relabelled(tmp_path: Path) -> None:
    refused = _twinstar("run", "--symbol", "ETH/USDT", cwd=tmp_path)
    assert (refused.returncode, refused.stderr) == (
        2,
        "twinstar: error: --symbol ETH/USDT: the bundled candles are BTC/USD; pass --data FILE with ETH/USDT candles\n",
    )
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("how", ["module", "file", "config"])
def test_a_users_strategy_runs_by_name_with_its_parameters(tmp_path: Path, how: str) -> None:
    (tmp_path / "my_strategies.py").write_text(MOMENTUM)
    data = write(walk(2_000), tmp_path / "walk.parquet")
    out = tmp_path / "out"
    name = {"module": "my_strategies:Momentum", "file": "my_strategies.py:Momentum"}.get(how, "my_strategies:Momentum")
    options = ["--strategy", name]
    if how == "config":
        (tmp_path / "run.toml").write_text(
            'symbols = ["SIM/USD"]\n[strategy]\nname = "./my_strategies.py:Momentum"\nparams = { run = 4 }\n'
        )
        options = ["--config", "run.toml"]
    result = _twinstar("run", "--data", str(data), "--out", str(out), "--quiet", *options, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    stats = json.loads((out / "stats.json").read_text())
    assert stats["trades"] > 5
    stream = read_stream(out / "events.tws")
    signals = [e for e in stream if isinstance(e, SignalFired)]
    assert {s.strategy for s in signals} == {"momentum"}
    recorded = stream.header.config["strategy"]
    expected = str((tmp_path / "my_strategies.py").resolve()) + ":Momentum" if how != "module" else name
    assert recorded == {"name": expected, "params": {"run": 4} if how == "config" else {}}
    # The replay loads the same class again (from the absolute path for a file) and decides the same.
    replayed = _twinstar("replay", str(out / "events.tws"), "--output", str(tmp_path / "again.tws"), cwd=out)
    if how == "module":  # a module name is found on the path of the folder it is run from, as Python finds it
        replayed = _twinstar("replay", str(out / "events.tws"), "--output", str(tmp_path / "again.tws"), cwd=tmp_path)
    assert replayed.returncode == 0, replayed.stderr
    assert (tmp_path / "again.tws").read_bytes() == (out / "events.tws").read_bytes()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("nowhere:Thing", "strategy 'nowhere:Thing': no module named 'nowhere'"),
        ("missing.py:Thing", "strategy 'missing.py:Thing': no such file missing.py"),
        ("my_strategies:Nope", "strategy 'my_strategies:Nope': my_strategies has no class Nope"),
        (
            "my_strategies:Signal",
            "strategy 'my_strategies:Signal': Signal is not a strategy (it has no on_candle method)",
        ),
        ("my_strategies:RUN", "strategy 'my_strategies:RUN': RUN is not a class"),
        (
            "my_strategies:Nameless",
            "strategy 'my_strategies:Nameless': is not a strategy (it has no name attribute holding a string)",
        ),
        (
            "broken.py:Thing",
            "strategy 'broken.py:Thing': importing broken.py failed: ZeroDivisionError: division by zero",
        ),
        (":Thing", "strategy ':Thing': expected module:Class or path/to/file.py:Class"),
    ],
)
def test_a_wrong_strategy_name_or_an_unfit_class_is_one_line(tmp_path: Path, name: str, message: str) -> None:
    (tmp_path / "my_strategies.py").write_text(
        MOMENTUM + "\nRUN = 3\n\nclass Nameless:\n    def on_candle(self, candle):\n        return None\n"
    )
    (tmp_path / "broken.py").write_text("1 / 0\n")
    data = write(walk(100), tmp_path / "walk.csv")
    result = _twinstar("run", "--data", str(data), "--strategy", name, "--quiet", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (2, f"twinstar: error: {message}\n")


def test_a_bad_parameter_of_a_users_strategy_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "my_strategies.py").write_text(MOMENTUM)
    (tmp_path / "run.toml").write_text('[strategy]\nname = "my_strategies:Momentum"\nparams = { speed = 2 }\n')
    data = write(walk(100), tmp_path / "walk.csv")
    result = _twinstar("run", "--config", "run.toml", "--data", str(data), "--quiet", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (
        2,
        "twinstar: error: strategy my_strategies:Momentum: Momentum.__init__() got an unexpected keyword argument "
        "'speed'\n",
    )
