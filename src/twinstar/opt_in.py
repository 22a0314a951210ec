"""The opt-in parts of a kernel: risk limits, alerts, the control plane and the NATS bridge.

Each is imported only when the config asks for it, so a kernel without them
never loads `twinstar.control` or `twinstar.bridge`. Live sessions, paper
sessions and backtests all take them from here, so none is forgotten on one
path. The risk monitor is a trading rule and runs wherever trading does;
alerts, the control plane and the bridge serve a session someone watches
(`watched`), never the trials of a parameter search.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from twinstar.clock import Clock
    from twinstar.config import Config
    from twinstar.control import Venue
    from twinstar.kernel import Component


def opt_in_components(
    config: Config, clock: Clock, venues: Sequence[Venue] = (), *, watched: bool = True
) -> list[Component]:
    """What `config` opts into; `venues` are read by the status page (none in a simulated run)."""
    parts: list[Component] = []
    if watched and (config.control.enabled or config.alerts.enabled or config.risk.limits_set):
        from twinstar.control import operations_components

        parts += operations_components(config, clock, venues)
    elif config.risk.limits_set:
        from twinstar.control.risk import RiskMonitor

        parts.append(RiskMonitor(config.risk, clock))
    if watched and config.bridge.url:
        from twinstar.bridge.components import bridge_components

        parts += bridge_components(config)
    return parts
