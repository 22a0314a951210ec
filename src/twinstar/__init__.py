"""TwinStar: an asyncio-native, event-driven trading kernel for crypto exchanges."""

from __future__ import annotations

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
from twinstar.kernel import Component as Component
from twinstar.kernel import Kernel as Kernel
from twinstar.replay import replay as replay

__all__ = [
    "Bar",
    "Bus",
    "Clock",
    "Component",
    "Config",
    "ConfigError",
    "ErrorKind",
    "Exchange",
    "ExchangeError",
    "Kernel",
    "LiveClock",
    "OrderResult",
    "Recorder",
    "SimClock",
    "__version__",
    "events",
    "read_stream",
    "replay",
]
