"""One recorder for many kernels: every event on the bridge's stream into one ordinary stream file.

The file is the format `twinstar.bus.record` writes (magic, header, one
length-prefixed msgpack frame per event), so `replay` and `report` read it
like a local recording; events are written in the stream's order. A durable
consumer delivers; each batch is written, then its position is noted in
``<file>.cursor`` (the stream sequence and the file's length, appended as
one 16-byte record), then acknowledged. Each connection makes the consumer
afresh from the noted sequence, and a restarted recorder first cuts the file
back to the last noted length, so a kill at any instant (of the recorder or
of NATS) neither loses nor doubles an event, nor changes their order.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import anyio
import msgspec

from twinstar.bridge.codec import BridgeFormatError, decode_message
from twinstar.bridge.connection import connect, nats_errors
from twinstar.bridge.recent import RecentIds
from twinstar.bus.events import encode
from twinstar.bus.record import FORMAT_VERSION, MAGIC, StreamHeader

if TYPE_CHECKING:
    from nats.aio.msg import Msg

log: Final = logging.getLogger("twinstar.bridge.recorder")

CURSOR_MAGIC: Final = b"TWRECCUR"
_CURSOR: Final = struct.Struct("<QQ")  # stream sequence, file length
_LENGTH: Final = struct.Struct("<I")  # a stream frame's length prefix (see twinstar.bus.record)
FETCH_BATCH: Final = 256
FETCH_WAIT_S: Final = 0.5
REMEMBERED_IDS: Final = 1_000_000  # ids kept to drop a re-send that arrives after JetStream's duplicate window


class RecordingError(ValueError):
    """The output file cannot be used for a recording; the message says why, in one line."""


def _read_cursor(path: Path) -> tuple[int, int] | None:
    if not path.exists():
        return None
    data = path.read_bytes()
    if not data.startswith(CURSOR_MAGIC):
        raise RecordingError(f"{path} is not a recorder cursor file")
    body = data[len(CURSOR_MAGIC) :]
    whole = len(body) - len(body) % _CURSOR.size
    if whole == 0:
        return None
    sequence, length = _CURSOR.unpack_from(body, whole - _CURSOR.size)
    return int(sequence), int(length)


class NatsRecorder:
    """Consumes `subjects` of `stream` durably and appends every event to `path`."""

    def __init__(
        self,
        url: str,
        path: str | Path,
        *,
        config: dict[str, Any],
        stream: str = "TWINSTAR",
        subjects: str = "twinstar.>",
        durable: str = "recorder",
    ) -> None:
        from twinstar import __version__

        self.url, self.path, self.stream, self.subjects, self.durable = url, Path(path), stream, subjects, durable
        self.cursor_path = self.path.with_name(self.path.name + ".cursor")
        self._header = StreamHeader(
            format_version=FORMAT_VERSION,
            twinstar_version=__version__,
            config=config,
            meta={"kind": "nats", "stream": stream, "subjects": subjects},
        )
        self._fd = -1
        self._cursor_fd = -1
        self.sequence = 0  # stream sequence of the last event written
        self.length = 0
        self.events_written = 0
        self.skipped = 0  # delivered again after a restart, or re-sent: already in the file
        self.refused = 0
        self._seen = RecentIds(REMEMBERED_IDS)
        self._stop = anyio.Event()

    def open(self) -> None:
        """Open the file: go on from its cursor, or start it with the header."""
        cursor = _read_cursor(self.cursor_path)
        if cursor is None:
            if self.path.exists() and self.path.stat().st_size > 0:
                raise RecordingError(f"{self.path} exists and is not a recording in progress: choose another --out")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            header = msgspec.msgpack.encode(self._header)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(self._fd, MAGIC + _LENGTH.pack(len(header)) + header)
            self.sequence, self.length = 0, len(MAGIC) + _LENGTH.size + len(header)
            self._cursor_fd = os.open(self.cursor_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(self._cursor_fd, CURSOR_MAGIC)
            self._note()
        else:
            self.sequence, self.length = cursor
            self._fd = os.open(self.path, os.O_WRONLY)
            os.truncate(self._fd, self.length)  # what was written after the last note is delivered again
            os.lseek(self._fd, self.length, os.SEEK_SET)
            self._cursor_fd = os.open(self.cursor_path, os.O_WRONLY | os.O_APPEND)
            log.info("recording %s continues after stream sequence %d", self.path, self.sequence)

    def _note(self) -> None:
        os.write(self._cursor_fd, _CURSOR.pack(self.sequence, self.length))

    def request_stop(self) -> None:
        """Finish the batch in hand and return from `run` (safe from a signal handler)."""
        self._stop.set()

    async def run(self) -> None:
        """Record until `request_stop`, reconnecting to NATS after every failure."""
        if self._fd < 0:
            self.open()
        try:
            while not self._stop.is_set():
                try:
                    await self._session()
                except nats_errors() as exc:
                    log.warning("recorder: NATS unreachable (%s); trying again", type(exc).__name__)
                    with anyio.move_on_after(1.0):
                        await self._stop.wait()
        finally:
            self.close()

    async def _session(self) -> None:
        from nats.errors import TimeoutError as FetchTimeoutError  # also raised for "nothing yet"
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
        from nats.js.errors import NotFoundError

        client = await connect(self.url)
        try:
            js = client.jetstream()
            try:
                await js.stream_info(self.stream)
            except NotFoundError:
                log.warning("recorder: stream %s does not exist yet; waiting for a kernel to create it", self.stream)
                with anyio.move_on_after(1.0):
                    await self._stop.wait()
                return
            # The file's cursor, not the consumer's acknowledgements, says where to go on: a consumer left by a
            # killed recorder would deliver newer messages before it redelivers the unacknowledged ones.
            with contextlib.suppress(NotFoundError):
                await js.delete_consumer(self.stream, self.durable)
            await js.add_consumer(
                self.stream,
                ConsumerConfig(
                    durable_name=self.durable,
                    filter_subject=self.subjects,
                    ack_policy=AckPolicy.EXPLICIT,
                    deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                    opt_start_seq=self.sequence + 1,
                    max_ack_pending=FETCH_BATCH * 4,
                ),
            )
            subscription = await js.pull_subscribe_bind(durable=self.durable, stream=self.stream)
            while not self._stop.is_set():
                try:
                    messages = await subscription.fetch(FETCH_BATCH, timeout=FETCH_WAIT_S)
                except FetchTimeoutError:
                    continue
                await self._write(messages)
        finally:
            with anyio.CancelScope(shield=True):
                await client.close()

    async def _write(self, messages: list[Msg]) -> None:
        """Write a batch, note the position, then acknowledge it."""
        frames = bytearray()
        sequence = self.sequence
        written = 0
        for message in messages:
            stream_sequence = message.metadata.sequence.stream
            if stream_sequence <= sequence:
                self.skipped += 1
                continue
            sequence = stream_sequence
            try:
                decoded = decode_message(message.data)
            except BridgeFormatError as exc:
                self.refused += 1
                log.error("recorder: left out a message on %s: %s", message.subject, exc)
                continue
            if decoded.id in self._seen:
                self.skipped += 1
                continue
            self._seen.add(decoded.id)
            payload = encode(decoded.event)
            frames += _LENGTH.pack(len(payload))
            frames += payload
            written += 1
        if frames:
            os.write(self._fd, frames)
        self.sequence, self.length = sequence, self.length + len(frames)
        self.events_written += written
        self._note()
        for message in messages:
            await message.ack()

    def close(self) -> None:
        """Make the file durable and close it."""
        for fd in (self._fd, self._cursor_fd):
            if fd >= 0:
                os.fsync(fd)
                os.close(fd)
        self._fd = self._cursor_fd = -1

    def __repr__(self) -> str:
        return (
            f"NatsRecorder(path={str(self.path)!r}, sequence={self.sequence}, events_written={self.events_written}, "
            f"skipped={self.skipped}, refused={self.refused})"
        )
