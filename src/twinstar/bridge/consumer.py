"""The bridge in: other kernels' events for this kernel's venues (remote `SignalFired`) onto the local bus.

A durable JetStream consumer per kernel, so nothing published while this
kernel was down is missed (made at its first start, it takes what comes from
then on, not every old signal in the stream). Each message is acknowledged
only once the local bus handled it (every handler idle), so a kernel killed
mid-way gets it again; one message is unacknowledged at a time, so that
redelivery comes before anything newer and signals run in their order. A
redelivered signal never places a second order: execution derives the client
order id from the signal and its journal knows every id already sent (see
`handlers.execution`); a message seen before in this run is not put on the
bus twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final

import anyio

from twinstar.bridge.codec import BridgeFormatError, decode_message
from twinstar.bridge.connection import connect, ensure_stream, nats_errors
from twinstar.bridge.recent import RecentIds
from twinstar.bridge.subjects import venue_filter
from twinstar.bus.bus import Bus
from twinstar.bus.events import Event
from twinstar.config import BridgeConfig

if TYPE_CHECKING:
    from nats.aio.msg import Msg
    from nats.js import JetStreamContext

log: Final = logging.getLogger("twinstar.bridge")

FETCH_WAIT_S: Final = 1.0
REMEMBERED_IDS: Final = 100_000  # ids of handled messages kept to refuse a second copy within this run


class RemoteEvents:
    """Component that takes the `consume` event types of other kernels for `venues` onto the local bus."""

    def __init__(
        self,
        settings: BridgeConfig,
        source: str,
        venues: Sequence[str],
        *,
        on_publish: Callable[[Event], None] | None = None,
    ) -> None:
        self.settings = settings
        self._on_publish = on_publish  # told of each event before it goes on the bus (the bridge sends it not back)
        self.source = source
        self.filters = [venue_filter(settings.subject_prefix, v, tag) for v in venues for tag in settings.consume]
        self.durable = f"{source}-in"
        self._bus: Bus | None = None
        self._seen = RecentIds(REMEMBERED_IDS)
        self._paused = False
        self.received = 0
        self.redelivered = 0
        self.refused = 0

    def attach(self, bus: Bus) -> None:
        """Keep the bus: remote events are published on it."""
        self._bus = bus

    async def run(self) -> None:
        """Consume for as long as the kernel runs, reconnecting after every failure."""
        while True:
            try:
                await self._session()
            except nats_errors() as exc:
                if not self._paused:  # once per outage
                    log.warning(
                        "bridge %s: remote events paused, NATS unreachable (%s)", self.source, type(exc).__name__
                    )
                self._paused = True
            await anyio.sleep(self.settings.reconnect_s)  # real time: NATS is a real server

    async def _session(self) -> None:
        from nats.errors import TimeoutError as FetchTimeoutError  # also raised for "nothing yet"

        client = await connect(self.settings.url)
        try:
            js: JetStreamContext = client.jetstream()
            await ensure_stream(js, self.settings)
            await self._ensure_consumer(js)
            subscription = await js.pull_subscribe_bind(durable=self.durable, stream=self.settings.stream)
            self._paused = False
            while True:
                try:
                    # One at a time (max_ack_pending=1): a larger batch would wait out FETCH_WAIT_S.
                    messages = await subscription.fetch(1, timeout=FETCH_WAIT_S)
                except FetchTimeoutError:
                    continue
                for message in messages:
                    await self._handle(message)
        finally:
            with anyio.CancelScope(shield=True):
                await client.close()

    async def _ensure_consumer(self, js: JetStreamContext) -> None:
        """Make the durable consumer, or bring an existing one's filters and limits up to date.

        A new one starts with what is published from now on: a kernel's first start must not act
        on every old signal the stream still holds. An existing one keeps its position, so
        nothing published while this kernel was down is missed.
        """
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
        from nats.js.errors import NotFoundError

        try:
            config = (await js.consumer_info(self.settings.stream, self.durable)).config
        except NotFoundError:
            config = ConsumerConfig(
                durable_name=self.durable, ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.NEW
            )
        config.filter_subject = None
        config.filter_subjects = self.filters
        config.ack_wait = self.settings.ack_wait_s
        # One unacknowledged at a time: a signal delivered again comes before any newer one, so a stale
        # signal never runs after the one that replaced it (its close id would go out a second time).
        config.max_ack_pending = 1
        await js.add_consumer(self.settings.stream, config)

    async def _handle(self, message: Msg) -> None:
        bus = self._bus
        assert bus is not None, "attach() comes before run()"
        try:
            decoded = decode_message(message.data)
        except BridgeFormatError as exc:
            self.refused += 1
            log.error("bridge %s: refused a message on %s: %s", self.source, message.subject, exc)
            await message.term()  # never readable here: redelivering it would not help
            return
        if decoded.source != self.source:
            if decoded.id in self._seen:
                self.redelivered += 1
            else:
                self._seen.add(decoded.id)
                self.received += 1
                if self._on_publish is not None:
                    self._on_publish(decoded.event)
                await bus.publish(decoded.event)
            with anyio.move_on_after(self.settings.ack_wait_s / 2) as waited:
                await bus.idle()  # handled: every handler is done with it
            if waited.cancelled_caught:
                return  # still being handled: no ack, so it comes again (and is then only acknowledged)
        await message.ack()

    def __repr__(self) -> str:
        return (
            f"RemoteEvents(source={self.source!r}, filters={self.filters}, received={self.received}, "
            f"redelivered={self.redelivered}, refused={self.refused})"
        )
