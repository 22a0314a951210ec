"""The opt-in operations layer: control plane (status API, live page, commands, metrics), alerts, risk limits.

A face on top of the kernel, like a host app: it follows the bus and
publishes commands on it, and nothing below imports it. `live_components`
and paper sessions add `operations_components` only when the config asks
for any of it (`[control] enabled`, an `[alerts]` channel, a `[risk]` max_*
limit), so a kernel without them never imports this package.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # the CLI imports this package for `status` and `--log-format json`: keep it light
    from twinstar.adapters.base import Exchange
    from twinstar.clock import Clock
    from twinstar.config import Config
    from twinstar.kernel import Component

__all__ = ["Venue", "operations_components"]


class Venue(NamedTuple):
    """A venue the status model reads balances and open orders from."""

    exchange: Exchange
    symbols: Sequence[str]


def operations_components(config: Config, clock: Clock, venues: Sequence[Venue]) -> list[Component]:
    """The risk monitor, alerts and control plane `config` asks for (each imported only then)."""
    from twinstar.config import ConfigError

    parts: list[Component] = []
    if config.risk.limits_set:
        from twinstar.control.risk import RiskMonitor

        parts.append(RiskMonitor(config.risk, clock))
    if config.alerts.enabled:
        from twinstar.control.alerts import Alerts

        parts.append(Alerts(config.alerts, clock))
    if config.control.enabled:
        from twinstar.control.auth import control_token
        from twinstar.control.server import ControlServer, ensure_can_listen
        from twinstar.control.status import StatusModel

        token = control_token(config.control)
        ensure_can_listen(config.control)
        status = StatusModel(clock, venues, poll_interval_s=config.control.poll_interval_s)
        parts.append(status)
        scrape = None
        if config.control.metrics:
            try:
                from twinstar.control.metrics import Metrics
            except ImportError:
                raise ConfigError(
                    "control.metrics needs prometheus-client: pip install 'twinstar[control]' (or metrics = false)"
                ) from None
            metrics = Metrics(status)
            parts.append(metrics)
            scrape = metrics.scrape
        parts.append(ControlServer(config.control, status, clock, token=token, metrics=scrape))
    return parts
