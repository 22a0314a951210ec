"""Reaching NATS: one connection attempt at a time, and the JetStream stream every kernel shares.

The bridge reconnects by itself (a fresh connection per attempt, see
`Bridge.run`), so nats-py's own reconnect loop is off: an outage is then one
clear failure, and what was in flight is sent again from the outbox.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import anyio

from twinstar.bridge.subjects import everything
from twinstar.config import BridgeConfig

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.js import JetStreamContext

log: Final = logging.getLogger("twinstar.bridge")

CONNECT_TIMEOUT_S: Final = 2.0


def nats_errors() -> tuple[type[BaseException], ...]:
    """What a lost or refused NATS connection raises (nats-py's errors, sockets, timeouts)."""
    import nats.errors

    return (nats.errors.Error, OSError, asyncio.TimeoutError)


async def connect(
    url: str, on_closed: Callable[[], None] | None = None, *, within_s: float = 2 * CONNECT_TIMEOUT_S
) -> Client:
    """Open one connection to the NATS servers in `url` (comma separated), without nats-py's reconnects.

    `on_closed` is called once the connection is gone, whichever side ended it.
    """
    import nats

    async def quiet(exc: Exception) -> None:
        log.debug("nats: %s", exc)  # every failure also surfaces where the bridge awaits; logged there once

    async def closed() -> None:
        if on_closed is not None:
            on_closed()

    # nats-py keeps trying the servers of the first connect by itself: bound it, so an outage is reported.
    with anyio.fail_after(within_s):
        return await nats.connect(
            [part.strip() for part in url.split(",")],
            allow_reconnect=False,
            connect_timeout=CONNECT_TIMEOUT_S,
            max_reconnect_attempts=0,
            error_cb=quiet,
            closed_cb=closed,
        )


def signal_future() -> tuple[asyncio.Future[None], Callable[[], None]]:
    """A future and the callback that completes it (once; later calls do nothing)."""
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def complete() -> None:
        if not future.done():
            future.set_result(None)

    return future, complete


async def ensure_stream(js: JetStreamContext, settings: BridgeConfig) -> None:
    """Create the shared stream if it is missing (file storage, the duplicate window of `settings`)."""
    from nats.js.api import StorageType, StreamConfig
    from nats.js.errors import NotFoundError

    try:
        await js.stream_info(settings.stream)
    except NotFoundError:
        config = StreamConfig(
            name=settings.stream,
            subjects=[everything(settings.subject_prefix)],
            storage=StorageType.FILE,
            duplicate_window=settings.duplicate_window_s,
        )
        await js.add_stream(config)
