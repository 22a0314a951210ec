"""Reading `--param` specs into a search space."""

from __future__ import annotations

import pytest

from twinstar.optimize.space import ParamError, ParamRange, SearchSpace, parse_param, parse_space


def test_ranges_and_fixed_values() -> None:
    space = parse_space(["fast=5:50", "slow=20:200:10", "stop_pct=0.5:3", "mode=fixed", "k=2"])
    assert space == SearchSpace(
        ranges=[
            ParamRange(name="fast", low=5, high=50, integer=True),
            ParamRange(name="slow", low=20, high=200, step=10, integer=True),
            ParamRange(name="stop_pct", low=0.5, high=3.0),
        ],
        fixed={"mode": "fixed", "k": 2},
    )
    assert space.samples() == [
        {"mode": "fixed", "k": 2, "fast": 27, "slow": 110, "stop_pct": 1.75},
        {"mode": "fixed", "k": 2, "fast": 5, "slow": 20, "stop_pct": 0.5},
        {"mode": "fixed", "k": 2, "fast": 50, "slow": 200, "stop_pct": 3.0},
    ]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("fast", "--param 'fast': expected NAME=LOW:HIGH[:STEP] or NAME=VALUE"),
        ("fast=50:5", "--param 'fast=50:5': LOW must be below HIGH"),
        ("fast=5:x", "--param 'fast=5:x': 'x' is not a number"),
        ("fast=5:50:0", "--param 'fast=5:50:0': STEP must be positive"),
        ("fast=1:2:3:4", "--param 'fast=1:2:3:4': expected NAME=LOW:HIGH[:STEP]"),
        ("fast=1:inf", "--param 'fast=1:inf': 'inf' is not a finite number"),
    ],
)
def test_bad_specs_get_one_line(spec: str, message: str) -> None:
    with pytest.raises(ParamError) as raised:
        parse_param(spec)
    assert str(raised.value) == message


def test_a_space_needs_a_range_and_unique_names() -> None:
    with pytest.raises(ParamError, match="nothing to search"):
        parse_space(["fast=5"])
    with pytest.raises(ParamError, match="--param fast is given twice"):
        parse_space(["fast=5:10", "fast=6:9"])
