"""One worker process: load the in-sample candles once, then run trials of the shared study."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from types import FrameType

import msgspec
import uvloop

from twinstar.config import Config
from twinstar.handlers.strategy import make_strategy
from twinstar.optimize.backtest import backtest, prepare
from twinstar.optimize.objective import score
from twinstar.optimize.space import SearchSpace
from twinstar.optimize.storage import open_storage
from twinstar.optimize.trial import trial_config


class WorkerJob(msgspec.Struct, frozen=True, kw_only=True):
    """What a worker needs; plain data, handed to the worker process as JSON."""

    storage: str
    study: str
    strategy: str
    space: SearchSpace
    objective: str
    data: str  # the in-sample Parquet file
    interval: str
    config: dict[str, object]  # the base Config as plain data
    trials: int
    seed: int | None  # None: a fresh seed, so workers on other machines do not repeat this one's samples


class StoppedError(Exception):
    """The parent asked this worker to stop (SIGTERM); the running trial ends as failed."""


class _StopRequest:
    """SIGTERM sets it; trials look at it between candles, so no write is ever cut in half."""

    def __init__(self) -> None:
        self.requested = False

    def handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True

    def __call__(self) -> bool:
        return self.requested


def main(argv: list[str]) -> int:
    """Run the trials of the job given as JSON in `argv[0]`; exit code 2 and one line on a user error.

    Ctrl-C reaches the whole process group; the parent alone handles it and
    stops the workers with SIGTERM: the running backtest ends at its next
    candle boundary and its trial is recorded as failed, never left running.
    """
    stop = _StopRequest()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, stop.handle)
    try:
        run_trials(msgspec.json.decode(argv[0], type=WorkerJob), should_stop=stop)
    except ValueError as exc:  # msgspec's DecodeError is one too
        print(f"twinstar optimize worker: error: {exc}", file=sys.stderr)
        return 2
    except StoppedError:
        return 130
    return 0


def run_trials(job: WorkerJob, *, should_stop: Callable[[], bool] = lambda: False) -> None:
    """Add `job.trials` trials to the study, each a backtest on the in-sample candles, until `should_stop`."""
    import optuna

    optuna.logging.set_verbosity(logging.ERROR)  # a failed trial's error ends the worker and is printed then
    logging.getLogger("twinstar").setLevel(logging.ERROR)  # one warning per trial would drown the progress
    study = optuna.load_study(
        study_name=job.study, storage=open_storage(job.storage), sampler=optuna.samplers.TPESampler(seed=job.seed)
    )
    base = Config.from_dict(job.config)
    checked = prepare(trial_config(base, job.strategy, {}, job.data, job.interval), job.data, job.interval)  # once
    worker = f"{socket.gethostname()}:{os.getpid()}"

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("worker", worker)  # first: the parent fails a killed worker's trials by this
        if should_stop():
            raise StoppedError  # Optuna records the trial as failed and ends `optimize` with this
        params = job.space.suggest(trial)
        try:
            make_strategy(job.strategy, params)
        except ValueError as exc:  # e.g. fast >= slow: no backtest, and the sampler learns to avoid it
            trial.set_user_attr("refused", str(exc))
            raise optuna.TrialPruned(str(exc)) from None
        statistics = uvloop.run(backtest(checked, job.strategy, params, should_stop=should_stop))
        if statistics is None:
            raise StoppedError
        trial.set_user_attr("in_sample", msgspec.to_builtins(statistics))
        return score(statistics, job.objective)

    # n_jobs=1: trials run one after another in this process, never on Optuna's thread pool.
    study.optimize(objective, n_trials=job.trials, n_jobs=1, gc_after_trial=False)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
