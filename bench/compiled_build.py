"""Build the mypyc-compiled twinstar of this checkout into a folder, as `TWINSTAR_COMPILE=1 pip install .` would.

The project files are copied to a temporary folder and built there into a wheel by pip, through the
real build hook (hatch_build.py), without build isolation and without the index: the build tools of
the `compiled` extra (which the `test` extra includes) must already be installed. The wheel is
unpacked into the target folder: put that folder first on PYTHONPATH and `import twinstar` loads the
compiled build. Nothing is cached: every call compiles afresh.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[1]
_PROJECT_FILES: Final = ("pyproject.toml", "README.md", "LICENSE", "hatch_build.py")


def compiled_modules() -> list[str]:
    """The dotted names of the modules the build hook compiles (pyproject.toml's list)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    paths: list[str] = config["tool"]["hatch"]["build"]["targets"]["wheel"]["hooks"]["custom"]["compile"]
    return [path.removesuffix(".py").replace("/", ".") for path in paths]


def build_compiled(target: Path) -> Path:
    """Compile this checkout into `target` (an importable folder) and return it; RuntimeError on failure."""
    with tempfile.TemporaryDirectory(prefix="twinstar-compiled-") as tmp:
        project, wheels = Path(tmp) / "project", Path(tmp) / "wheels"
        project.mkdir()
        for name in _PROJECT_FILES:
            shutil.copy2(ROOT / name, project / name)
        shutil.copytree(ROOT / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__", "*.so"))
        command = [sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "--no-index"]
        env = {**os.environ, "TWINSTAR_COMPILE": "1"}
        done = subprocess.run(
            [*command, "--wheel-dir", str(wheels), str(project)], env=env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"the compiled build failed:\n{done.stdout[-4000:]}{done.stderr[-4000:]}")
        (wheel,) = wheels.glob("twinstar-*.whl")
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(target)
    return target
