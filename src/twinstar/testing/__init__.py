"""Public test kit: a loopback exchange venue that real ccxt code talks to.

People who embed the kernel test their own apps with it; nothing here is used
at run time.
"""

from __future__ import annotations

from twinstar.testing.bybit_venue import BybitVenue as BybitVenue
from twinstar.testing.bybit_venue import bybit_venue as bybit_venue
from twinstar.testing.loopback import Failure as Failure
from twinstar.testing.venue import Venue as Venue
from twinstar.testing.venue import venue as venue

__all__ = ["BybitVenue", "Failure", "Venue", "bybit_venue", "venue"]
