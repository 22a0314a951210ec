"""The search's answer: the best trials with in-sample and out-of-sample figures side by side.

Written as `results.json` and `results.csv` beside the two data parts and
one `trial-<n>.toml` per best trial, and printed with the `run` commands that
reproduce each figure.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import msgspec
import polars as pl

from twinstar.atomic import replace_atomically, write_bytes_atomically
from twinstar.optimize.objective import figure
from twinstar.optimize.study import TrialResult
from twinstar.report.statistics import Statistics


def config_name(number: int) -> str:
    """The TOML file holding trial `number`'s full config."""
    return f"trial-{number:04d}.toml"


def run_command(config: Path, data: str | None = None) -> str:
    """The plain `run` that reproduces a trial (on its in-sample part, or on `data`)."""
    words = [sys.executable, "-m", "twinstar", "run", "--config", str(config)]
    if data is not None:
        words += ["--data", data]
    return shlex.join(words)


def _cell(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _figures(statistics: Statistics | None, objective: str) -> list[str]:
    if statistics is None:
        return ["-"] * 4
    return [
        _cell(figure(statistics, objective)),
        _cell(statistics.return_pct),
        _cell(statistics.max_drawdown_pct),
        str(statistics.trades),
    ]


def rows(results: Sequence[TrialResult], objective: str) -> list[dict[str, str]]:
    """One row per trial: parameters, then each figure in-sample (IS) beside out-of-sample (OOS)."""
    names = (objective, "return %", "max DD %", "trades")
    table = []
    for result in results:
        row = {"trial": str(result.number), "params": " ".join(f"{k}={v}" for k, v in result.params.items())}
        for name, inside, outside in zip(
            names, _figures(result.in_sample, objective), _figures(result.out_of_sample, objective), strict=True
        ):
            row[f"IS {name}"] = inside
            row[f"OOS {name}"] = outside
        table.append(row)
    return table


def format_table(table: Sequence[dict[str, str]]) -> str:
    """Align `table`'s rows under their column names (text, numbers right-aligned)."""
    if not table:
        return "no completed trial"
    columns = list(table[0])
    widths = {c: max(len(c), *(len(row[c]) for row in table)) for c in columns}
    left = {"trial", "params"}

    def line(cells: dict[str, str]) -> str:
        return "  ".join(cells[c].ljust(widths[c]) if c in left else cells[c].rjust(widths[c]) for c in columns)

    return "\n".join([line({c: c for c in columns}), *(line(row) for row in table)])


def write_results(folder: Path, results: Sequence[TrialResult], objective: str) -> tuple[Path, Path]:
    """Write the best trials in full (JSON) and as the printed table (CSV); return both paths."""
    json_path, csv_path = folder / "results.json", folder / "results.csv"
    write_bytes_atomically(json_path, msgspec.json.format(msgspec.json.encode(list(results))) + b"\n")
    frame = pl.DataFrame(rows(results, objective)) if results else pl.DataFrame()
    replace_atomically(csv_path, frame.write_csv)
    return json_path, csv_path
