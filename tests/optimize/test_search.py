"""`python -m twinstar optimize` end to end: worker processes, one shared study, reproducible trials."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

import msgspec
import optuna
import polars as pl
import pytest

from twinstar.config import Config
from twinstar.data import bundled_candles_path
from twinstar.optimize.space import parse_space
from twinstar.optimize.split import write_segments
from twinstar.optimize.storage import open_storage
from twinstar.optimize.study import open_study, study_attrs
from twinstar.optimize.worker import WorkerJob, run_trials
from twinstar.report.statistics import Statistics

SEARCH = ["--param", "fast=5:30", "--param", "slow=20:100", "--quiet"]


def _twinstar(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "twinstar", *args], capture_output=True, text=True, cwd=cwd, timeout=50, check=False
    )


@pytest.fixture(scope="module")
def candles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "btc_1h.parquet"
    pl.read_parquet(bundled_candles_path()).head(1_000).write_parquet(path)  # 750 searched, 250 held out
    return path


@pytest.fixture(scope="module")
def searched(candles: Path) -> tuple[Path, str]:
    """One search: two worker processes, one journal file; its folder and printed output."""
    out = candles.parent / "search"
    done = _twinstar(
        "optimize", "--data", str(candles), *SEARCH, "--trials", "6", "--jobs", "2", "--top", "2", "--out", str(out),
        cwd=candles.parent,
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (0, "")
    return out, done.stdout


def test_two_worker_processes_share_one_study(searched: tuple[Path, str]) -> None:
    out, _ = searched
    study = optuna.load_study(study_name="sma_cross-btc_1h", storage=open_storage(f"journal:{out / 'study.journal'}"))
    trials = study.get_trials()
    workers = {trial.user_attrs["worker"] for trial in trials}
    assert sorted(trial.number for trial in trials) == list(range(6))  # one numbering: one study
    assert len(workers) == 2
    assert all(not worker.endswith(f":{os.getpid()}") for worker in workers)


def _printed_command(stdout: str, label: str, out: Path) -> list[str]:
    [line] = [line for line in stdout.splitlines() if line.strip().startswith(label)]
    words = shlex.split(line.split(label, 1)[1])
    assert words[:4] == [sys.executable, "-m", "twinstar", "run"]
    return [*words[3:], "--quiet", "--out", str(out)]


def test_the_best_trial_is_reproduced_by_the_printed_run(searched: tuple[Path, str], tmp_path: Path) -> None:
    out, stdout = searched
    best = msgspec.json.decode((out / "results.json").read_bytes())[0]
    for label, part in (("in-sample:", "in_sample"), ("out-of-sample:", "out_of_sample")):
        folder = tmp_path / part
        done = _twinstar(*_printed_command(stdout, label, folder), cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        ran = msgspec.json.decode((folder / "stats.json").read_bytes(), type=Statistics)
        assert ran == msgspec.convert(best[part], Statistics)
    assert best["in_sample"]["bars"] == 750


def test_the_report_shows_in_and_out_of_sample_side_by_side(searched: tuple[Path, str]) -> None:
    out, stdout = searched
    header = next(line for line in stdout.splitlines() if line.startswith("trial"))
    figures = [f"{side} {name}" for name in ("sharpe", "return %", "max DD %", "trades") for side in ("IS", "OOS")]
    assert header.split() == " ".join(["trial", "params", *figures]).split()
    table = pl.read_csv(out / "results.csv")
    assert table.height == 2
    assert table.columns[:4] == ["trial", "params", "IS sharpe", "OOS sharpe"]


def test_a_second_machine_joins_the_study_and_a_different_search_is_refused(candles: Path, tmp_path: Path) -> None:
    storage = ["--storage", f"sqlite:///{tmp_path / 'study.db'}", "--study", "shared", "--jobs", "1", "--trials", "2"]
    for machine in ("a", "b"):
        done = _twinstar(
            "optimize", "--data", str(candles), *SEARCH, *storage, "--out", str(tmp_path / machine), cwd=tmp_path
        )
        assert (done.returncode, done.stderr) == (0, "")
    assert "study 'shared': 4 trials finished" in done.stdout
    refused = _twinstar(
        "optimize", "--data", str(candles), *SEARCH, *storage, "--objective", "sortino", "--out", str(tmp_path / "c"),
        cwd=tmp_path,
    )  # fmt: skip
    assert (refused.returncode, refused.stderr) == (
        2,
        "twinstar: error: study 'shared' searches something else: objective 'sharpe' here 'sortino'\n",
    )


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--param", "fsat=5:30"], "strategy sma_cross: SmaCross.__init__() got an unexpected keyword argument 'fsat'"),
        (["--param", "fast=5"], "nothing to search: give at least one --param NAME=LOW:HIGH"),
        (["--param", "fast=5:30", "--strategy", "nope"], "unknown strategy 'nope' (known: atr_breakout, sma_cross)"),
        (["--param", "fast=5:30", "--trials", "0"], "--trials must be at least 1"),
    ],
)
def test_bad_input_gets_one_line(candles: Path, tmp_path: Path, args: list[str], error: str) -> None:
    done = _twinstar("optimize", "--data", str(candles), *args, "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert (done.returncode, done.stderr) == (2, f"twinstar: error: {error}\n")


@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_trials_start_no_thread(candles: Path, tmp_path: Path, kind: str) -> None:
    storage = f"journal:{tmp_path / 'study.journal'}" if kind == "journal" else f"sqlite:///{tmp_path / 'study.db'}"
    segments = write_segments(pl.read_parquet(candles), 0.25, tmp_path)
    job = WorkerJob(
        storage=storage,
        study="threads",
        strategy="sma_cross",
        space=parse_space(["fast=5:30", "slow=20:100"]),
        objective="sharpe",
        data=segments.in_sample,
        interval="1h",
        config=Config().to_dict(),
        trials=2,
        seed=0,
    )
    study = open_study(job, study_attrs(job, segments, 0.25))
    started: list[int] = []

    def on_new_thread(frame: FrameType, event: str, arg: Any) -> None:  # runs first in every thread started
        started.append(threading.get_ident())
        sys.setprofile(None)

    threading.setprofile(on_new_thread)
    try:
        run_trials(job)
    finally:
        threading.setprofile(None)
    assert (len(study.get_trials()), started) == (2, [])


def test_ctrl_c_stops_the_workers_and_leaves_no_trial_running(candles: Path, tmp_path: Path) -> None:
    journal = tmp_path / "study.journal"
    search = subprocess.Popen(
        [sys.executable, "-m", "twinstar", "optimize", "--data", str(candles), *SEARCH, "--trials", "200",
         "--jobs", "2", "--storage", f"journal:{journal}", "--study", "stopped", "--out", str(tmp_path / "out")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )  # fmt: skip
    storage = None
    complete = optuna.trial.TrialState.COMPLETE
    for _ in range(400):  # bounded: until a trial has completed (one pruned at once, fast >= slow, does not count)
        time.sleep(0.1)
        if storage is None and journal.exists():
            storage = open_storage(f"journal:{journal}")
        if storage is not None and any(t.state == complete for t in storage.get_all_trials(0, deepcopy=False)):
            break
    search.send_signal(signal.SIGINT)  # to the parent alone, as a terminal sends it to the whole group
    _, stderr = search.communicate(timeout=30)
    study = optuna.load_study(study_name="stopped", storage=open_storage(f"journal:{journal}"))
    states = [trial.state for trial in study.get_trials()]
    assert (search.returncode, "Traceback" in stderr) == (130, False)
    assert complete in states
    assert optuna.trial.TrialState.RUNNING not in states
    assert len(states) < 200
