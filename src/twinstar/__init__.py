"""TwinStar: an asyncio-native, event-driven trading kernel for crypto exchanges.

The names that need polars or the handlers (backtests, sessions, strategies) load on first use, so
``import twinstar`` and ``python -m twinstar --help`` stay fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from twinstar.adapters.base import Bar as Bar
from twinstar.adapters.base import ErrorKind as ErrorKind
from twinstar.adapters.base import Exchange as Exchange
from twinstar.adapters.base import ExchangeError as ExchangeError
from twinstar.adapters.base import OrderResult as OrderResult
from twinstar.bus import events as events
from twinstar.bus.bus import Bus as Bus
from twinstar.bus.record import Recorder as Recorder
from twinstar.bus.record import read_stream as read_stream
from twinstar.clock import Clock as Clock
from twinstar.clock import LiveClock as LiveClock
from twinstar.clock import SimClock as SimClock
from twinstar.config import Config as Config
from twinstar.config import ConfigError as ConfigError
from twinstar.data import bundled_candles_path as bundled_candles_path
from twinstar.kernel import Component as Component
from twinstar.kernel import Kernel as Kernel
from twinstar.replay import replay as replay

if TYPE_CHECKING:
    from twinstar.backtest import BacktestResult as BacktestResult
    from twinstar.backtest import DataReport as DataReport
    from twinstar.backtest import run_backtest as run_backtest
    from twinstar.handlers.strategy import Signal as Signal
    from twinstar.handlers.strategy import Strategy as Strategy
    from twinstar.session import PaperResult as PaperResult
    from twinstar.session import live_kernel as live_kernel
    from twinstar.session import run_paper as run_paper

_LAZY = {
    "BacktestResult": "twinstar.backtest",
    "DataReport": "twinstar.backtest",
    "run_backtest": "twinstar.backtest",
    "PaperResult": "twinstar.session",
    "live_kernel": "twinstar.session",
    "run_paper": "twinstar.session",
    "Signal": "twinstar.handlers.strategy",
    "Strategy": "twinstar.handlers.strategy",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'twinstar' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "BacktestResult",
    "Bar",
    "Bus",
    "Clock",
    "Component",
    "Config",
    "ConfigError",
    "DataReport",
    "ErrorKind",
    "Exchange",
    "ExchangeError",
    "Kernel",
    "LiveClock",
    "OrderResult",
    "PaperResult",
    "Recorder",
    "Signal",
    "SimClock",
    "Strategy",
    "__version__",
    "bundled_candles_path",
    "events",
    "live_kernel",
    "read_stream",
    "replay",
    "run_backtest",
    "run_paper",
]
