"""The design has no threads and no locks: prove it over the whole package source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import twinstar

SOURCE = Path(twinstar.__file__).parent
FORBIDDEN_MODULES = {"threading", "_thread", "concurrent.futures", "concurrent", "multiprocessing"}
FORBIDDEN_NAMES = {
    "to_thread",
    "run_in_executor",
    "ThreadPoolExecutor",
    "ProcessPoolExecutor",
    "Lock",
    "RLock",
    "Semaphore",
    "BoundedSemaphore",
    "Condition",
    "CapacityLimiter",
    "open_file",
}


def _violations(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [
                f"import {a.name}"
                for a in node.names
                if a.name.split(".")[0] in FORBIDDEN_MODULES or a.name in FORBIDDEN_MODULES
            ]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if module in FORBIDDEN_MODULES or module.split(".")[0] in FORBIDDEN_MODULES:
                found.append(f"from {module} import ...")
            found += [f"from {module} import {a.name}" for a in node.names if a.name in FORBIDDEN_NAMES]
        elif isinstance(node, ast.Attribute):
            if node.attr in FORBIDDEN_NAMES:
                found.append(f".{node.attr}")
            if node.attr == "Path" and isinstance(node.value, ast.Name) and node.value.id == "anyio":
                found.append("anyio.Path")
    return found


def _package_files() -> list[Path]:
    return sorted(SOURCE.rglob("*.py"))


@pytest.mark.parametrize("path", _package_files(), ids=lambda p: str(p.relative_to(SOURCE)))
def test_no_threads_executors_or_locks(path: Path) -> None:
    assert _violations(ast.parse(path.read_text(), str(path))) == []


@pytest.mark.parametrize(
    "snippet",
    [
        "import threading",
        "from concurrent.futures import ThreadPoolExecutor",
        "await asyncio.to_thread(f)",
        "loop.run_in_executor(None, f)",
        "lock = asyncio.Lock()",
        "p = anyio.Path('x')",
        "f = await anyio.open_file('x')",
    ],
)
def test_the_checker_catches_each_forbidden_form(snippet: str) -> None:
    assert _violations(ast.parse(snippet.replace("await ", ""))) != []
