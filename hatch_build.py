"""The optional compiled build: `TWINSTAR_COMPILE=1 pip install '.[compiled]'` compiles the hot modules with mypyc.

Without TWINSTAR_COMPILE=1 this hook does nothing and the wheel is pure Python. With it, the modules
listed under `compile` in pyproject.toml's `[tool.hatch.build.targets.wheel.hooks.custom]` are compiled
by mypyc from a copy of the package in a temporary folder (nothing is written into the checkout), and
the extension modules go into the wheel beside the .py sources, which Python then imports first.
hatch-mypyc does the same but builds inside the source tree and renames pyproject.toml meanwhile,
which a checkout shared with running tests cannot have.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.config import BuilderConfig
from hatchling.builders.hooks.plugin.interface import BuildHookInterface

ENV_VAR = "TWINSTAR_COMPILE"
EXTRA = "compiled"  # the optional-dependencies extra that names the build tools
OPT_LEVEL = "3"
# The heavy typed libraries the hot modules do not use on their hot paths: mypy skips them (their values
# are then `Any`, handled generically by the compiled code), which cuts the type analysis to a third.
# `silent`: only the compiled modules must type-check; the rest is analysed but its errors are mypy's job.
_SKIPPED = ("polars", "pyarrow", "aiohttp", "numpy", "ccxt", "plotly", "rich", "optuna", "nats", "prometheus_client")
_MYPY_CONFIG = "[mypy]\nignore_missing_imports = True\nfollow_imports = silent\n" + "".join(
    f"[mypy-{name}.*]\nfollow_imports = skip\n" for name in _SKIPPED
)
# Run in the copied tree: argv is the optimisation level, a scratch folder, then mypy's arguments.
_SETUP = """\
import sys
from setuptools import setup
from mypyc.build import mypycify
opt_level, scratch, *args = sys.argv[1:]
setup(
    name="twinstar-compiled",
    ext_modules=mypycify(args, opt_level=opt_level, debug_level="0"),
    script_args=["build_ext", "--inplace", "--build-temp", scratch + "/temp", "--build-lib", scratch + "/lib"],
)
"""


def compile_enabled() -> bool:
    """Whether this build compiles (TWINSTAR_COMPILE=1)."""
    return os.environ.get(ENV_VAR, "") == "1"


def refuse_unsupported(path: Path) -> None:
    """Raise ValueError where mypyc would compile `path` into something that behaves differently.

    mypyc builds a Python class from (name, bases, namespace) only, so class keywords such as
    msgspec's ``frozen=True`` or ``tag=`` are silently dropped; and it cannot apply
    ``@runtime_checkable`` to a protocol. Both stay in modules that are not compiled.
    """
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.ClassDef):
            continue
        if node.keywords:
            raise ValueError(f"{path}:{node.lineno}: class {node.name} has class keywords, which mypyc drops")
        for decorator in node.decorator_list:
            if "runtime_checkable" in ast.unparse(decorator):
                raise ValueError(f"{path}:{node.lineno}: mypyc cannot compile a runtime_checkable protocol")


def compile_modules(package: Path, modules: list[str], work: Path) -> dict[str, str]:
    """Compile `modules` (paths under `package`'s parent, e.g. "twinstar/bus/bus.py") in a copy under `work`.

    Return the extension modules built, as {absolute path: path inside the wheel}.
    """
    tree = work / "src"
    shutil.copytree(package, tree / package.name, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    for module in modules:
        refuse_unsupported(tree / module)
    (work / "mypy.ini").write_text(_MYPY_CONFIG, encoding="utf-8")
    args = [f"--config-file={work / 'mypy.ini'}", f"--cache-dir={work / 'mypy_cache'}", *modules]
    command = [sys.executable, "-c", _SETUP, OPT_LEVEL, str(work / "scratch"), *args]
    done = subprocess.run(command, cwd=tree, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"mypyc failed (exit {done.returncode}):\n{done.stdout[-4000:]}{done.stderr[-4000:]}")
    built = {str(path): path.relative_to(tree).as_posix() for path in tree.rglob("*.so")}
    if not built:
        raise RuntimeError("mypyc built no extension modules")
    return built


class CompiledBuildHook(BuildHookInterface[BuilderConfig]):
    """With TWINSTAR_COMPILE=1, add the mypyc-compiled hot modules to the wheel."""

    PLUGIN_NAME = "custom"

    def dependencies(self) -> list[str]:
        """The `compiled` extra's build tools, when compiling."""
        if not compile_enabled():
            return []
        return list(self.metadata.core.optional_dependencies[EXTRA])

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        """Compile into a temporary folder and force-include the extension modules."""
        if self.target_name != "wheel" or not compile_enabled():
            return
        if version == "editable":
            raise RuntimeError(f"{ENV_VAR}=1 builds a regular wheel; install without -e")
        modules = self.config.get("compile", [])
        if not modules:
            raise RuntimeError("no modules listed under `compile` in the custom build hook's config")
        self._work = tempfile.mkdtemp(prefix="twinstar-mypyc-")
        package = Path(self.root) / "src" / "twinstar"
        build_data["force_include"].update(compile_modules(package, list(modules), Path(self._work)))
        build_data["pure_python"] = False
        build_data["infer_tag"] = True

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        """Remove the temporary build folder."""
        work = getattr(self, "_work", None)
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
