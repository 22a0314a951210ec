"""The bridge out: selected bus events -> outbox -> JetStream, with the event id as `Nats-Msg-Id`.

The bus handler only appends to the outbox (no await, no network): trading
never waits on NATS. A task sends what the outbox holds, up to
`max_in_flight` at a time, and drops each entry once JetStream confirmed it;
after any failure it reconnects and sends again from the first unconfirmed
entry, under the same ids, so JetStream's duplicate window drops what had in
fact arrived. What is unsent at shutdown stays in the outbox for the next start.
One kernel's events reach the stream in publish order, with one exception: an
event that a crashing server received but never stored is sent again after
later ones that reached the new server (nothing is lost; a recording follows
the stream's order).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import anyio

from twinstar.bridge.codec import encode_message
from twinstar.bridge.connection import CONNECT_TIMEOUT_S, connect, ensure_stream, nats_errors, signal_future
from twinstar.bridge.outbox import Entry, Outbox
from twinstar.bridge.subjects import event_tag, subject_for
from twinstar.bus.bus import Bus
from twinstar.bus.events import EVENT_TYPES, Event
from twinstar.config import BridgeConfig

if TYPE_CHECKING:
    from nats.js import JetStreamContext
    from nats.js.api import PubAck

log: Final = logging.getLogger("twinstar.bridge")

#: A publish JetStream has not confirmed within this time counts as lost (the server died with it).
CONFIRM_TIMEOUT_S: Final = 5.0
#: At shutdown with NATS down, how long one last attempt to reach it may take.
STOP_CONNECT_S: Final = 1.0


class Bridge:
    """Component that publishes the bus's selected events to JetStream through the outbox."""

    def __init__(self, settings: BridgeConfig, source: str, outbox: Outbox, *, flush_timeout_s: float = 10.0) -> None:
        self.settings = settings
        self.source = source
        self.outbox = outbox
        self._flush_timeout_s = flush_timeout_s
        wanted = set(settings.publish)
        self._types: frozenset[type[Event]] | None = (
            None if "*" in wanted else frozenset(t for t in EVENT_TYPES if event_tag(t) in wanted)
        )
        self._wake: Callable[[], None] | None = None  # completes the sending task's wait for new entries
        self._foreign: set[int] = set()  # events that came from the bridge (by object id): never sent back
        self.connected = False
        self.confirmed = 0
        self.duplicates = 0  # confirmed as already stored: a re-send the duplicate window dropped
        self.outages = 0  # working connections lost
        self.failures = 0  # attempts that failed, outages included

    def attach(self, bus: Bus) -> None:
        """Subscribe once to every event: one mailbox keeps the outbox in publish order."""
        bus.subscribe(Event, self.handle, name="Bridge", eager=False)

    def came_from_bridge(self, event: Event) -> None:
        """`event` is about to be published on the bus by a consumer of the bridge: do not send it back."""
        self._foreign.add(id(event))

    def handle(self, event: Event) -> None:
        """Append a selected event to the outbox; the sending task takes it from there."""
        if self._foreign and id(event) in self._foreign:
            self._foreign.discard(id(event))  # the bus holds the event until every handler had it: the id is its own
            return
        if self._types is not None and type(event) not in self._types:
            return
        outbox = self.outbox
        data = encode_message(outbox.event_id(self.source, outbox.next_seq), self.source, event)
        outbox.append(subject_for(self.settings.subject_prefix, event), data)
        if self._wake is not None:
            self._wake()

    async def run(self) -> None:
        """Send the outbox to JetStream for as long as the kernel runs, reconnecting after every failure."""
        while True:
            try:
                await self._session(until_empty=False)
            except nats_errors() as exc:
                self._lost(exc)
            await anyio.sleep(self.settings.reconnect_s)  # real time: NATS is a real server, also under replay

    def _lost(self, exc: BaseException) -> None:
        """Log an outage once: when a working connection is lost, or when the first attempt fails."""
        if self.connected or self.failures == 0:
            log.warning(
                "bridge %s: NATS unreachable (%s); trading goes on, %d events wait in the outbox",
                self.source,
                type(exc).__name__,
                len(self.outbox.pending),
            )
        self.outages += self.connected
        self.connected = False
        self.failures += 1

    async def _session(self, *, until_empty: bool, connect_within_s: float = 2 * CONNECT_TIMEOUT_S) -> None:
        closed, on_closed = signal_future()
        client = await connect(self.settings.url, on_closed, within_s=connect_within_s)
        try:
            js = client.jetstream()
            await ensure_stream(js, self.settings)
            if not self.connected:
                log.info("bridge %s: connected; %d events to send", self.source, len(self.outbox.pending))
            self.connected = True
            await self._send(js, closed, until_empty=until_empty)
        finally:
            with anyio.CancelScope(shield=True):
                await client.close()

    async def _send(self, js: JetStreamContext, closed: asyncio.Future[None], *, until_empty: bool) -> None:
        """Keep up to `max_in_flight` entries unconfirmed; confirm in order; raise on the first failure."""
        outbox = self.outbox
        in_flight: collections.deque[tuple[Entry, asyncio.Future[PubAck]]] = collections.deque()
        sent_to = outbox.acked
        try:
            while True:
                pending = outbox.pending
                while len(in_flight) < self.settings.max_in_flight and pending and pending[-1].seq > sent_to:
                    entry = pending[sent_to + 1 - pending[0].seq]
                    headers = {"Nats-Msg-Id": outbox.event_id(self.source, entry.seq)}
                    in_flight.append((entry, await js.publish_async(entry.subject, entry.data, headers=headers)))
                    sent_to = entry.seq
                if not in_flight:
                    if until_empty:
                        return
                    woken, self._wake = signal_future()
                    try:
                        await asyncio.wait([closed, woken], return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        self._wake = None
                    if closed.done():
                        raise ConnectionError("the NATS connection closed")
                    continue
                entry, future = in_flight[0]
                waits: list[asyncio.Future[object]] = [future, closed]  # type: ignore[list-item]  # wait() takes one type
                await asyncio.wait(waits, timeout=CONFIRM_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
                if not future.done():
                    raise TimeoutError(f"JetStream did not confirm event {entry.seq} in {CONFIRM_TIMEOUT_S:g}s")
                ack = future.result()  # raises JetStream's refusal
                in_flight.popleft()
                self.confirmed += 1
                self.duplicates += bool(ack.duplicate)
                outbox.confirm(entry.seq)
        finally:
            for _, future in in_flight:
                future.cancel()

    async def stop(self) -> None:
        """Send what the outbox still holds (bounded in time), then close it; the rest goes at the next start.

        While NATS is known to be down the attempt is short: shutdown does not wait long for a server that is gone.
        """
        if self.outbox.pending:
            connect_within_s = 2 * CONNECT_TIMEOUT_S if self.connected else STOP_CONNECT_S
            with anyio.move_on_after(self._flush_timeout_s):
                try:
                    await self._session(until_empty=True, connect_within_s=connect_within_s)
                except nats_errors() as exc:
                    log.warning(
                        "bridge %s: %d events stay in the outbox (%s)",
                        self.source,
                        len(self.outbox.pending),
                        type(exc).__name__,
                    )
        self.outbox.close()

    def __repr__(self) -> str:
        return (
            f"Bridge(source={self.source!r}, connected={self.connected}, confirmed={self.confirmed}, "
            f"duplicates={self.duplicates}, outages={self.outages}, failures={self.failures}, outbox={self.outbox!r})"
        )
