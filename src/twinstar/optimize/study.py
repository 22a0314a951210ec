"""Run a search: open (or join) the study, start the worker processes and follow them, pick the best trials.

Worker processes are fresh interpreters (never forks: a fork would copy the
parent's loop and Optuna's storage connections), given their job as JSON and
followed by polling their exit codes and the study's trial count, without
threads.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from twinstar.optimize.objective import figure
from twinstar.optimize.split import Segments
from twinstar.optimize.worker import WorkerJob
from twinstar.report.statistics import Statistics

if TYPE_CHECKING:
    import optuna

_POLL_S = 0.25
_STOP_S = 30.0  # a stopped worker ends its trial at the next candle boundary; past this it is killed
_FINISHED = ("COMPLETE", "PRUNED", "FAIL")


class StudyMismatchError(ValueError):
    """The named study exists but searches something else (another strategy, objective or data)."""


class WorkerFailedError(RuntimeError):
    """A worker process ended with an error (it printed the reason itself)."""


class TrialResult(msgspec.Struct, frozen=True, kw_only=True):
    """One of the best trials: its parameters and its figures on both parts of the data."""

    number: int
    params: dict[str, Any]
    worker: str
    value: float | None  # the objective in-sample (None: the run had no such figure)
    in_sample: Statistics
    out_of_sample: Statistics | None = None


def study_attrs(job: WorkerJob, segments: Segments, holdout: float) -> dict[str, object]:
    """What every worker of one study must agree on."""
    return {
        "strategy": job.strategy,
        "objective": job.objective,
        "interval": job.interval,
        "holdout": holdout,
        "in_sample_bars": segments.in_sample_bars,
        "in_sample_digest": segments.in_sample_digest,
        "fixed": dict(job.space.fixed),
    }


def open_study(job: WorkerJob, attrs: dict[str, object]) -> optuna.Study:
    """Create the study, or join it after checking it searches the same thing."""
    import optuna

    from twinstar.optimize.storage import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        storage=open_storage(job.storage), study_name=job.study, direction="maximize", load_if_exists=True
    )
    known = study.user_attrs
    if not known:
        for key, value in attrs.items():
            study.set_user_attr(key, value)
        return study
    differs = [f"{key} {known.get(key)!r} here {value!r}" for key, value in attrs.items() if known.get(key) != value]
    if differs:
        raise StudyMismatchError(f"study {job.study!r} searches something else: {'; '.join(differs)}")
    return study


def finished(study: optuna.Study) -> int:
    """How many trials of the study (all workers, all machines) have ended."""
    return sum(trial.state.name in _FINISHED for trial in study.get_trials(deepcopy=False))


def shares(trials: int, jobs: int) -> list[int]:
    """Split `trials` over `jobs` workers as evenly as whole numbers allow; no worker gets none."""
    jobs = max(1, min(jobs, trials))
    return [trials // jobs + (index < trials % jobs) for index in range(jobs)]


def _start_worker(job: WorkerJob) -> subprocess.Popen[bytes]:
    # -P: the working directory is not put on sys.path, so nothing there can shadow a module the worker imports.
    command = [sys.executable, "-P", "-m", "twinstar.optimize.worker", msgspec.json.encode(job).decode()]
    return subprocess.Popen(command, stdin=subprocess.DEVNULL)  # its errors go to our stderr


async def run_workers(
    job: WorkerJob, study: optuna.Study, jobs: int, *, on_progress: Callable[[int], None] | None = None
) -> None:
    """Run `job.trials` trials over `jobs` worker processes; raise if one fails."""
    before = finished(study)
    jobs_per_worker = [
        msgspec.structs.replace(job, trials=count, seed=None if job.seed is None else job.seed + index)
        for index, count in enumerate(shares(job.trials, jobs))
    ]
    workers: list[subprocess.Popen[bytes]] = []
    done = 0
    try:
        workers += [_start_worker(one) for one in jobs_per_worker]
        # Polled: asyncio's child watcher would start a thread.
        while any(worker.poll() is None for worker in workers):
            await asyncio.sleep(_POLL_S)
            if on_progress is not None and (now := min(job.trials, finished(study) - before)) > done:
                done = now
                on_progress(done)
    finally:
        stopped = [worker for worker in workers if worker.poll() is None]  # only on cancellation (Ctrl-C)
        for worker in stopped:
            worker.terminate()  # the worker ends its trial at the next candle boundary, recorded as failed
        for worker in workers:
            try:
                worker.wait(timeout=_STOP_S)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        if stopped:
            _fail_abandoned(study, {worker.pid for worker in stopped})  # what a killed worker left running
    failed = [f"worker {index} exit code {w.returncode}" for index, w in enumerate(workers) if w.returncode != 0]
    if failed:
        raise WorkerFailedError(f"worker processes failed ({', '.join(failed)}); their errors are above")
    if on_progress is not None and done < job.trials:
        on_progress(job.trials)


def _fail_abandoned(study: optuna.Study, pids: set[int]) -> None:
    """Mark the trials that stopped workers left running as failed, so no one waits for them."""
    from optuna.trial import TrialState

    owners = {f"{socket.gethostname()}:{pid}" for pid in pids}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.user_attrs.get("worker") in owners:
            study.tell(trial.number, state=TrialState.FAIL)


def best_trials(study: optuna.Study, objective: str, top: int, fixed: dict[str, Any]) -> list[TrialResult]:
    """The `top` completed trials of the study with the highest objective, best first, with `fixed` params too."""
    done = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE" and "in_sample" in t.user_attrs]
    done.sort(key=lambda t: (-(t.value if t.value is not None else float("-inf")), t.number))
    results = []
    for trial in done[:top]:
        statistics = msgspec.convert(trial.user_attrs["in_sample"], Statistics)
        results.append(
            TrialResult(
                number=trial.number,
                params={**fixed, **trial.params},
                worker=str(trial.user_attrs.get("worker", "")),
                value=figure(statistics, objective),
                in_sample=statistics,
            )
        )
    return results
