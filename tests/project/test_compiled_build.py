"""The optional compiled build (mypyc) decides exactly as the pure-Python build: byte-identical recordings.

A session fixture compiles this checkout's hot modules into a temporary folder through the real
build hook (`bench.compiled_build`: a copy of the project, `pip wheel` with TWINSTAR_COMPILE=1,
no cache). Every scenario then runs as a whole `python -m twinstar` process once with the pure
build (the checkout) and once with the compiled one (that folder first on PYTHONPATH), on the
same copy of the bundled candles, and the files each wrote must be equal byte for byte.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from bench.compiled_build import build_compiled, compiled_modules

from twinstar.data import bundled_candles_path

# A user's strategies: resting limit entries with take-profits and stops (brackets, emergency exits), and a
# subclass of a compiled strategy (the compiled build allows interpreted subclasses of the built-ins).
USER_STRATEGIES = """\
from twinstar import Signal
from twinstar.handlers.strategy import SmaCross


class Brackets:
    name = "brackets"

    def __init__(self) -> None:
        self.seen = 0

    def on_candle(self, candle):
        self.seen += 1
        if self.seen % 24:
            return None
        turn = self.seen // 24
        side, sign = ("buy", 1.0) if turn % 2 else ("sell", -1.0)
        close = candle.close
        kind = "limit" if turn % 4 >= 2 else "market"
        stop, limit, target = close * (1 - sign * 0.03), close * (1 - sign * 0.002), close * (1 + sign * 0.04)
        return Signal(side, stop, f"turn {turn}", kind, limit, "gtc", target)


class Faster(SmaCross):
    name = "faster"

    def __init__(self) -> None:
        super().__init__(fast=5, slow=20, stop_pct=1.5)
"""
RUN_FILES = ("events.tws", "stats.json", "trades.csv")
BUILDS = ("pure", "compiled")
PROBE = """\
import importlib, json
from twinstar.compiled import build_kind
print(json.dumps({"kind": build_kind(), "files": {m: importlib.import_module(m).__file__ for m in %r}}))
"""


@pytest.fixture(scope="session")
def compiled_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This checkout, compiled into a temporary folder (once per session, never cached across runs)."""
    return build_compiled(tmp_path_factory.mktemp("compiled-site"))


@pytest.fixture(scope="session")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One copy of the bundled candles and the user's strategies, read by both builds."""
    folder = tmp_path_factory.mktemp("inputs")
    shutil.copy2(bundled_candles_path(), folder / "candles.parquet")
    (folder / "user_strategies.py").write_text(USER_STRATEGIES)
    return folder


def python(build: str, site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run `python *args` with the pure build (the checkout) or the compiled one (`site` first on the path)."""
    env = dict(os.environ)
    if build == "compiled":
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH", "")]))
    result = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=120, cwd=cwd, env=env, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result


@pytest.mark.timeout(600)  # the first test pays the compile (about a minute on two cores)
def test_the_compiled_build_loads_compiled_modules(compiled_site: Path, tmp_path: Path) -> None:
    modules = compiled_modules()
    seen = {}
    for build in BUILDS:
        probe = python(build, compiled_site, "-c", PROBE % (modules,), cwd=tmp_path)
        seen[build] = probe.stdout
        version = python(build, compiled_site, "-m", "twinstar", "--version", cwd=tmp_path)
        assert version.stdout.strip().endswith(f"({build})")
    pure, compiled = json.loads(seen["pure"]), json.loads(seen["compiled"])
    assert pure["kind"] == "pure"
    assert compiled["kind"] == "compiled"
    assert sorted(pure["files"]) == sorted(compiled["files"]) == sorted(modules)
    for module in modules:
        assert pure["files"][module].endswith(".py"), pure["files"][module]
        assert compiled["files"][module].startswith(str(compiled_site)), compiled["files"][module]
        assert compiled["files"][module].endswith(".so"), compiled["files"][module]


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    "strategy",
    ["sma_cross", "atr_breakout", "user_strategies.py:Brackets", "user_strategies.py:Faster"],
)
def test_backtest_and_its_replay_record_the_same_bytes(
    compiled_site: Path, inputs: Path, tmp_path: Path, strategy: str
) -> None:
    outputs: dict[str, dict[str, bytes]] = {}
    for build in BUILDS:
        run, replayed = tmp_path / build, tmp_path / f"{build}-replay.tws"
        backtest = ["run", "--data", str(inputs / "candles.parquet"), "--strategy", strategy, "--out", str(run)]
        python(build, compiled_site, "-m", "twinstar", *backtest, "--quiet", cwd=inputs)
        replay = ["replay", str(run / "events.tws"), "--output", str(replayed)]
        python(build, compiled_site, "-m", "twinstar", *replay, cwd=inputs)
        outputs[build] = {name: (run / name).read_bytes() for name in RUN_FILES} | {"replay": replayed.read_bytes()}
    pure, compiled = outputs["pure"], outputs["compiled"]
    assert len(pure["events.tws"]) > 50_000  # the run traded: hundreds of orders, fills and stops
    for name, content in pure.items():
        assert compiled[name] == content, f"{name} differs between the pure and the compiled build"
