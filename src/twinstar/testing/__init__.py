"""Public test kit: loopback exchange venues that real ccxt code talks to, and test strategies.

People who embed the kernel test their own apps with it; nothing here is used
at run time.
"""

from __future__ import annotations

from twinstar.testing.bybit_venue import BybitVenue as BybitVenue
from twinstar.testing.bybit_venue import bybit_venue as bybit_venue
from twinstar.testing.loopback import Failure as Failure
from twinstar.testing.strategies import Flip as Flip
from twinstar.testing.venue import Venue as Venue
from twinstar.testing.venue import venue as venue

__all__ = ["BybitVenue", "Failure", "Flip", "Venue", "bybit_venue", "venue"]
