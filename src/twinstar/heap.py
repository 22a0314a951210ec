"""The garbage collector's view of a long-running live process.

A full collection walks every tracked object. What start-up builds (ccxt's
market tables and parsers, the adapters, the handlers' state) lives as long as
the process, yet each full collection walked it again: 70-120 ms with the loop
held, felt by every feed as lag and by the next order as latency. Freezing it
once start-up is done leaves the collector only what is created afterwards.

This is process-wide state, so the kernel never does it on its own: the CLI
does it for a live run, and a host that embeds kernels may do it once its own
start-up is over.
"""

from __future__ import annotations

import gc


def settle_heap() -> None:
    """Collect what start-up left behind, then exempt the survivors from later collections (`gc.freeze`)."""
    gc.collect()
    gc.freeze()
