"""The optional compiled build: which build is running, and the class hints the compiled modules need.

`TWINSTAR_COMPILE=1 pip install '.[compiled]'` compiles the hot modules with mypyc (see hatch_build.py
at the project root); any other install is pure Python. Both builds record the same events, byte for
byte (tests/project/test_compiled_build.py).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, TypeVar

__all__ = ["build_kind", "mypyc_attr"]

_T = TypeVar("_T")
_PROBE = "twinstar.bus.bus"  # one of the compiled modules: the build is what it is


def build_kind() -> Literal["compiled", "pure"]:
    """Say whether this install runs the mypyc-compiled modules ("compiled") or pure Python ("pure")."""
    spec = importlib.util.find_spec(_PROBE)
    origin = "" if spec is None or spec.origin is None else spec.origin
    return "pure" if origin.endswith(".py") else "compiled"


if TYPE_CHECKING:
    # mypyc reads `@mypyc_attr(...)` by this name; at run time the decorator below stands in, so a pure
    # install needs no mypy_extensions.
    from mypy_extensions import mypyc_attr
else:

    def mypyc_attr(*_: object, **__: object) -> Callable[[_T], _T]:
        """Leave the class as it is (pure Python); mypyc acts on the hint at compile time."""
        return lambda cls: cls
