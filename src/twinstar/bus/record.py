"""Event streams on disk: the Recorder writes them, `read_stream` reads them.

Format (version 1): the 8-byte magic ``TWSTREAM``, then frames. A frame is a
4-byte little-endian length followed by that many bytes of msgpack. Frame 0
is the `StreamHeader` (format version, TwinStar version, the run's config);
every later frame is one tagged event. Length-prefixed msgpack because
msgspec encodes and decodes it at memory speed, the tag restores the exact
event type, and a torn last frame (a crash mid-write) is detectable: readers
stop there and report it instead of failing the whole file.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Final

import msgspec

from twinstar.bus.bus import Bus
from twinstar.bus.events import EVENT_TYPES, AnyEvent, Event

log: Final = logging.getLogger("twinstar.record")

MAGIC: Final = b"TWSTREAM"
FORMAT_VERSION: Final = 1
_LENGTH: Final = struct.Struct("<I")
_pack_length: Final = _LENGTH.pack


class StreamHeader(msgspec.Struct, frozen=True, kw_only=True):
    """First frame of every stream file."""

    format_version: int
    twinstar_version: str
    config: dict[str, Any]
    meta: dict[str, str] = msgspec.field(default_factory=dict)


class StreamFormatError(ValueError):
    """A file is not a readable TwinStar stream; the message says why, in one line."""


_header_decoder: Final = msgspec.msgpack.Decoder(StreamHeader)
_event_decoder: Final[msgspec.msgpack.Decoder[AnyEvent]] = msgspec.msgpack.Decoder(AnyEvent)
_encoder: Final = msgspec.msgpack.Encoder()


class Recorder:
    """Component that appends every event on the bus to a stream file.

    In live mode each event is handed to the OS as it comes (a crashed process
    loses nothing the OS got); in replay, writes are batched for speed.
    Events of the `skip` types are left out: a backtest's candles, which its
    stream names by file and digest instead of copying them.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        config: dict[str, Any],
        meta: dict[str, str] | None = None,
        flush_bytes: int | None = None,
        skip: tuple[type[Event], ...] = (),
    ) -> None:
        from twinstar import __version__

        self.path = Path(path)
        self._header = StreamHeader(
            format_version=FORMAT_VERSION, twinstar_version=__version__, config=config, meta=meta or {}
        )
        self._flush_bytes = flush_bytes
        self._skip = frozenset(skip)
        self._file: BinaryIO | None = None
        self._buffer = bytearray()
        self.events_written = 0

    def attach(self, bus: Bus) -> None:
        """Open the file, write the header and subscribe to every event."""
        if self._flush_bytes is None:
            self._flush_bytes = 1 << 20 if bus.mode == "replay" else 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("wb")
        self._buffer += MAGIC
        self._append(_encoder.encode(self._header))
        self._flush()
        if not self._skip:
            bus.subscribe(Event, self.handle, name="Recorder", eager=False)
        elif bus.mode == "replay":
            # One subscription per recorded type: a skipped event (a backtest's every candle) costs no call.
            # Replay runs a type's subscribers in subscription order, so the order recorded is the same.
            for event_type in EVENT_TYPES:
                if event_type not in self._skip:
                    bus.subscribe(event_type, self.handle, name="Recorder", eager=False)
        else:  # live mailboxes are per subscription: one, so events stay in publish order
            bus.subscribe(Event, self._handle_unskipped, name="Recorder", eager=False)

    def _append(self, payload: bytes) -> None:
        self._buffer += _LENGTH.pack(len(payload))
        self._buffer += payload

    def handle(self, event: Event) -> None:
        """Append one event (buffered up to the flush threshold)."""
        # encode() then append: msgspec's encode_into(-1) resizes the buffer exactly and costs twice as much.
        payload = _encoder.encode(event)
        buffer = self._buffer
        buffer += _pack_length(len(payload))
        buffer += payload
        self.events_written += 1
        if len(buffer) > self._flush_bytes:  # type: ignore[operator]
            self._flush()

    def _handle_unskipped(self, event: Event) -> None:
        if type(event) not in self._skip:
            self.handle(event)

    def _flush(self) -> None:
        if self._file is not None and self._buffer:
            self._file.write(self._buffer)
            self._file.flush()
            self._buffer.clear()

    async def stop(self) -> None:
        """Write what is buffered, fsync and close."""
        if self._file is None:
            return
        self._flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None

    def __repr__(self) -> str:
        return f"Recorder(path={str(self.path)!r}, events_written={self.events_written}, buffered={len(self._buffer)})"


class Stream:
    """An opened stream file: its header, then its events on iteration."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._data = self.path.read_bytes()
        except OSError as exc:
            raise StreamFormatError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        if not self._data.startswith(MAGIC):
            raise StreamFormatError(f"{self.path} is not a TwinStar event stream (bad magic bytes)")
        payload, self._events_start = self._frame(len(MAGIC))
        if payload is None:
            raise StreamFormatError(f"{self.path}: the header frame is missing or torn")
        try:
            self.header = _header_decoder.decode(payload)
        except msgspec.DecodeError as exc:
            raise StreamFormatError(f"{self.path}: unreadable header ({exc})") from None
        if self.header.format_version > FORMAT_VERSION:
            raise StreamFormatError(
                f"{self.path}: stream format {self.header.format_version} is newer than this "
                f"TwinStar reads ({FORMAT_VERSION}); upgrade twinstar"
            )
        self.torn_tail = False

    def _frame(self, offset: int) -> tuple[bytes | None, int]:
        data = self._data
        end = offset + _LENGTH.size
        if end > len(data):
            return None, offset
        (length,) = _LENGTH.unpack_from(data, offset)
        if end + length > len(data):
            return None, offset
        return data[end : end + length], end + length

    def __iter__(self) -> Iterator[AnyEvent]:
        data = self._data
        offset = self._events_start
        index = 1
        size = len(data)
        unpack = _LENGTH.unpack_from
        decode = _event_decoder.decode
        while offset < size:
            if offset + 4 > size:
                break
            (length,) = unpack(data, offset)
            start = offset + 4
            if start + length > size:
                break
            try:
                yield decode(data[start : start + length])
            except msgspec.DecodeError as exc:
                raise StreamFormatError(f"{self.path}: frame {index} is not a known event ({exc})") from None
            offset = start + length
            index += 1
        if offset < size:
            self.torn_tail = True
            log.warning("%s: last frame is torn (crash while writing?); read %d events", self.path, index - 1)

    def __repr__(self) -> str:
        return f"Stream(path={str(self.path)!r}, version={self.header.format_version})"


def read_stream(path: str | Path) -> Stream:
    """Open a stream file; raise StreamFormatError with a one-line reason."""
    return Stream(path)
