"""`python -m twinstar optimize`: search strategy parameters with Optuna, checked on held-out data."""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from twinstar.optimize.objective import OBJECTIVES
from twinstar.optimize.space import ParamValue

if TYPE_CHECKING:
    from twinstar.config import Config
    from twinstar.optimize.split import Segments
    from twinstar.optimize.study import TrialResult


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `optimize` options to `parser` (cheap: Optuna is imported only to run)."""
    parser.add_argument("--data", help="CSV or Parquet candles to search on (default: the bundled set)")
    parser.add_argument("--strategy", default="sma_cross", help="strategy name (default: sma_cross)")
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=LOW:HIGH[:STEP]",
        help="a searched range (integers when both bounds are) or NAME=VALUE fixed; repeat for each",
    )
    parser.add_argument("--trials", type=int, default=100, help="trials this command adds to the study (default 100)")
    parser.add_argument("--objective", choices=sorted(OBJECTIVES), default="sharpe", help="figure to maximise")
    parser.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="worker processes on this machine (default: cores)"
    )
    parser.add_argument(
        "--storage",
        help="Optuna storage shared by every worker: sqlite:///FILE, an RDB URL, or journal:FILE "
        "(default: a journal file in --out); point other machines at the same one to search together",
    )
    parser.add_argument("--study", help="study name (default: <strategy>-<data file name>)")
    parser.add_argument("--holdout", type=float, default=0.25, help="share of the bars held out at the end (0.25)")
    parser.add_argument("--top", type=int, default=5, help="best trials scored on the held-out bars (default 5)")
    parser.add_argument("--config", help="TOML config with the other settings (fees, risk, symbol)")
    parser.add_argument("--symbol", help="symbol the candles belong to (default from config)")
    parser.add_argument("--interval", help="candle interval (default: inferred from --data)")
    parser.add_argument("--seed", type=int, help="sampler seed of the first worker, the next get +1 (default: fresh)")
    parser.add_argument("--out", help="results folder (default: runs/optimize-<time>-<strategy>)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def _check_counts(args: argparse.Namespace) -> None:
    for name in ("trials", "jobs", "top"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be at least 1")


def _check_strategy(strategy: str, samples: list[dict[str, ParamValue]]) -> None:
    """Refuse a strategy that none of `samples` builds: a wrong name or parameter, not one bad corner."""
    from twinstar.handlers.strategy import make_strategy

    errors = []
    for params in samples:
        try:
            make_strategy(strategy, params)
        except ValueError as exc:
            errors.append(exc)
        else:
            return
    raise errors[0]


async def run(args: argparse.Namespace) -> int:
    """Run the search and print the best trials, in-sample beside out-of-sample."""
    import msgspec

    from twinstar.config import Config
    from twinstar.data import bundled_candles_path
    from twinstar.optimize.backtest import prepare
    from twinstar.optimize.space import parse_space
    from twinstar.optimize.split import write_segments
    from twinstar.optimize.study import WorkerFailedError, best_trials, finished, open_study, run_workers, study_attrs
    from twinstar.optimize.worker import WorkerJob
    from twinstar.report.terminal import Progress

    if importlib.util.find_spec("optuna") is None or importlib.util.find_spec("tomli_w") is None:
        raise ValueError("optimize needs Optuna: pip install 'twinstar[optimize]'")
    _check_counts(args)
    space = parse_space(args.param)
    _check_strategy(args.strategy, space.samples())
    base = Config.load(args.config) if args.config else Config()
    if args.symbol:
        base = msgspec.structs.replace(base, symbols=[args.symbol])
    data = Path(args.data) if args.data else bundled_candles_path()
    checked = prepare(base, data, args.interval or None)
    interval = checked.report.interval
    stamp = dt.datetime.now(tz=dt.UTC).strftime("%Y%m%d-%H%M%S")
    out = Path(args.out) if args.out else Path("runs") / f"optimize-{stamp}-{args.strategy}"
    segments = write_segments(checked.frame, args.holdout, out)
    job = WorkerJob(
        storage=args.storage or f"journal:{(out / 'study.journal').resolve()}",
        study=args.study or f"{args.strategy}-{data.stem}",
        strategy=args.strategy,
        space=space,
        objective=args.objective,
        data=segments.in_sample,
        interval=interval,
        config=base.to_dict(),
        trials=args.trials,
        seed=args.seed,
    )
    study = open_study(job, study_attrs(job, segments, args.holdout))
    if not args.quiet:
        print("\n".join(checked.report.lines()), file=sys.stderr)
        print(
            f"optimize: {args.strategy} on {checked.frame.height:,} {interval} candles "
            f"({segments.in_sample_bars:,} searched, last {segments.out_of_sample_bars:,} held out), "
            f"{args.trials} trials over {min(args.jobs, args.trials)} worker processes, study {job.study!r}",
            file=sys.stderr,
        )
    progress = None if args.quiet else Progress(args.trials, "trials")
    try:
        await run_workers(job, study, args.jobs, on_progress=progress.update if progress else None)
    except WorkerFailedError as exc:
        print(f"twinstar: error: {exc}", file=sys.stderr)
        return 1
    best = best_trials(study, args.objective, args.top, space.fixed)
    scored = await _score_held_out(best, base, args.strategy, segments, interval, out)
    print(f"study {job.study!r}: {finished(study)} trials finished in {job.storage}")
    _print_results(scored, args.objective, segments, out)
    return 0


async def _score_held_out(
    best: list[TrialResult], base: Config, strategy: str, segments: Segments, interval: str, out: Path
) -> list[TrialResult]:
    """Write each best trial's config, run it on the held-out tail, and return it with those figures."""
    import msgspec

    from twinstar.optimize.backtest import backtest, prepare
    from twinstar.optimize.results import config_name
    from twinstar.optimize.trial import trial_config, write_config

    held_out = prepare(
        trial_config(base, strategy, {}, segments.out_of_sample, interval), segments.out_of_sample, interval
    )
    scored = []
    for result in best:
        write_config(
            trial_config(base, strategy, result.params, segments.in_sample, interval), out / config_name(result.number)
        )
        scored.append(msgspec.structs.replace(result, out_of_sample=await backtest(held_out, strategy, result.params)))
    return scored


def _print_results(scored: list[TrialResult], objective: str, segments: Segments, out: Path) -> None:
    from twinstar.optimize.results import config_name, format_table, rows, run_command, write_results

    json_path, csv_path = write_results(out, scored, objective)
    print(f"best {len(scored)} by {objective}, in-sample (IS) beside out-of-sample (OOS):")
    print(format_table(rows(scored, objective)))
    if scored:
        config_path = out / config_name(scored[0].number)
        print(f"reproduce trial {scored[0].number}:")
        print(f"  in-sample:     {run_command(config_path)}")
        print(f"  out-of-sample: {run_command(config_path, segments.out_of_sample)}")
    print(f"results: {json_path} (and {csv_path.name}); one trial-<n>.toml per best trial")
