"""A user's own strategy class, named ``module:Class`` or ``path/to/file.py:Class``.

The name goes where a built-in strategy's name goes (``--strategy`` and
``strategy.name`` in the config), its parameters in ``strategy.params``.
The class needs a ``name`` and an ``on_candle(candle)`` method (see
`twinstar.handlers.strategy.Strategy`); every problem is one `ValueError`
line that names the strategy. A file path is read relative to the working
directory; the CLI records it as an absolute path, so a replay finds it.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, Final

_modules: Final[dict[str, ModuleType]] = {}  # by file path: one module object however many series use it


def is_user_strategy(name: str) -> bool:
    """Whether `name` names a user's class rather than a built-in strategy."""
    return ":" in name


def resolved(name: str) -> str:
    """`name` with a file path made absolute (a module name stays as it is)."""
    where, _, cls = name.rpartition(":")
    return f"{Path(where).resolve()}:{cls}" if where.endswith(".py") else name


def load_strategy_class(name: str) -> Callable[..., Any]:
    """Import the class `name` names and check that it has `on_candle`; ValueError otherwise."""
    where, _, cls_name = name.rpartition(":")
    if not where or not cls_name:
        raise ValueError(f"strategy {name!r}: expected module:Class or path/to/file.py:Class")
    module = _from_file(name, Path(where)) if where.endswith(".py") else _from_module(name, where)
    cls = getattr(module, cls_name, None)
    if cls is None:
        raise ValueError(f"strategy {name!r}: {where} has no class {cls_name}")
    if not inspect.isclass(cls):
        raise ValueError(f"strategy {name!r}: {cls_name} is not a class")
    if not callable(getattr(cls, "on_candle", None)):
        raise ValueError(f"strategy {name!r}: {cls_name} is not a strategy (it has no on_candle method)")
    return cls


def checked_instance(name: str, strategy: object) -> object:
    """Refuse a built user strategy without a string `name` (signals carry it)."""
    if not isinstance(getattr(strategy, "name", None), str):
        raise ValueError(f"strategy {name!r}: is not a strategy (it has no name attribute holding a string)")
    return strategy


def _from_module(name: str, module_name: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ValueError(f"strategy {name!r}: no module named {module_name!r}") from None
        raise ValueError(f"strategy {name!r}: importing {module_name} failed: {_one_line(exc)}") from None
    except Exception as exc:  # the user's module raised while importing: one line, no traceback
        raise ValueError(f"strategy {name!r}: importing {module_name} failed: {_one_line(exc)}") from None


def _from_file(name: str, path: Path) -> ModuleType:
    key = str(path.resolve())
    cached = _modules.get(key)
    if cached is not None:
        return cached
    if not path.is_file():
        raise ValueError(f"strategy {name!r}: no such file {path}")
    # A name of its own per file, so two users' `strategy.py` never meet in sys.modules.
    module_name = f"twinstar_user_strategy_{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ValueError(f"strategy {name!r}: cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look the module up by name
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's file raised while importing: one line, no traceback
        del sys.modules[module_name]
        raise ValueError(f"strategy {name!r}: importing {path} failed: {_one_line(exc)}") from None
    _modules[key] = module
    return module


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
