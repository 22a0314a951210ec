"""Public test kit: a loopback exchange venue that real ccxt code talks to.

People who embed the kernel test their own apps with it; nothing here is used
at run time.
"""

from __future__ import annotations

from twinstar.testing.venue import Failure as Failure
from twinstar.testing.venue import Venue as Venue
from twinstar.testing.venue import venue as venue

__all__ = ["Failure", "Venue", "venue"]
