"""The search space from the command line: `name=LOW:HIGH[:STEP]` ranges and `name=VALUE` fixed values."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    import optuna

ParamValue = float | int | str | bool


class ParamError(ValueError):
    """A `--param` cannot be read; the message names it."""


class ParamRange(msgspec.Struct, frozen=True, kw_only=True):
    """One searched parameter: integers when both bounds (and the step) are integers, floats otherwise."""

    name: str
    low: float
    high: float
    step: float | None = None
    integer: bool = False

    def suggest(self, trial: optuna.Trial) -> int | float:
        """Ask `trial` for a value in the range."""
        if self.integer:
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1))
        return trial.suggest_float(self.name, self.low, self.high, step=self.step)

    def points(self) -> tuple[int | float, int | float, int | float]:
        """The middle and both ends of the range (to try the strategy before any trial)."""
        middle = (self.low + self.high) / 2
        if self.integer:
            return int(middle), int(self.low), int(self.high)
        return middle, self.low, self.high


class SearchSpace(msgspec.Struct, frozen=True, kw_only=True):
    """The ranges searched and the values passed unchanged to every trial."""

    ranges: list[ParamRange]
    fixed: dict[str, ParamValue]

    def suggest(self, trial: optuna.Trial) -> dict[str, ParamValue]:
        """Return one trial's full parameter set."""
        return {**self.fixed, **{r.name: r.suggest(trial) for r in self.ranges}}

    def samples(self) -> list[dict[str, ParamValue]]:
        """Three full parameter sets: every range at its middle, at its low end, at its high end."""
        return [{**self.fixed, **{r.name: r.points()[k] for r in self.ranges}} for k in range(3)]


def _number(text: str, spec: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ParamError(f"--param {spec!r}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ParamError(f"--param {spec!r}: {text!r} is not a finite number")
    return value


def _is_int(text: str) -> bool:
    return text.strip().lstrip("+-").isdigit()


def _fixed_value(text: str) -> ParamValue:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if _is_int(text):
        return int(text)
    try:
        return float(text)
    except ValueError:
        return text


def parse_param(spec: str) -> ParamRange | tuple[str, ParamValue]:
    """Read `name=LOW:HIGH[:STEP]` as a range, `name=VALUE` as a fixed value."""
    name, sep, value = spec.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier() or not value.strip():
        raise ParamError(f"--param {spec!r}: expected NAME=LOW:HIGH[:STEP] or NAME=VALUE")
    parts = [part.strip() for part in value.split(":")]
    if len(parts) == 1:
        return name, _fixed_value(parts[0])
    if len(parts) > 3:
        raise ParamError(f"--param {spec!r}: expected NAME=LOW:HIGH[:STEP]")
    low, high = _number(parts[0], spec), _number(parts[1], spec)
    step = _number(parts[2], spec) if len(parts) == 3 else None
    if not low < high:
        raise ParamError(f"--param {spec!r}: LOW must be below HIGH")
    if step is not None and step <= 0:
        raise ParamError(f"--param {spec!r}: STEP must be positive")
    return ParamRange(name=name, low=low, high=high, step=step, integer=all(_is_int(p) for p in parts))


def parse_space(specs: Sequence[str]) -> SearchSpace:
    """Read every `--param`; at least one must be a range, and no name may repeat."""
    ranges: list[ParamRange] = []
    fixed: dict[str, ParamValue] = {}
    seen: set[str] = set()
    for spec in specs:
        parsed = parse_param(spec)
        name = parsed.name if isinstance(parsed, ParamRange) else parsed[0]
        if name in seen:
            raise ParamError(f"--param {name} is given twice")
        seen.add(name)
        if isinstance(parsed, ParamRange):
            ranges.append(parsed)
        else:
            fixed[parsed[0]] = parsed[1]
    if not ranges:
        raise ParamError("nothing to search: give at least one --param NAME=LOW:HIGH")
    return SearchSpace(ranges=ranges, fixed=fixed)
