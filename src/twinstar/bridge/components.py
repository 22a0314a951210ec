"""The bridge's components for a kernel whose config has a `[bridge]` url."""

from __future__ import annotations

from twinstar.bridge.consumer import RemoteEvents
from twinstar.bridge.outbox import Outbox
from twinstar.bridge.publisher import Bridge
from twinstar.config import Config
from twinstar.kernel import Component


def bridge_source(config: Config) -> str:
    """This kernel's name on the bridge: `bridge.source`, else its venue names joined."""
    return config.bridge.source or "-".join(venue.name for venue in config.venues())


def bridge_components(config: Config) -> list[Component]:
    """The publishing bridge (outbox included) and, with `bridge.consume`, the remote-event consumer."""
    settings = config.bridge
    source = bridge_source(config)
    outbox = Outbox(settings.outbox_dir, source, fsync=settings.fsync)
    bridge = Bridge(settings, source, outbox, flush_timeout_s=config.kernel.drain_timeout_s)
    parts: list[Component] = [bridge]
    if settings.consume:
        venues = [venue.name for venue in config.venues()]
        parts.append(RemoteEvents(settings, source, venues, on_publish=bridge.came_from_bridge))
    return parts
