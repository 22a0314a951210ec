"""The bridge's outbox: every event for NATS is on disk before it is sent, and stays until JetStream confirmed it.

A kernel that loses NATS keeps trading; its events pile up here and go out,
in order and under their original ids, once NATS is back (or after a
restart). Two files per kernel: ``<source>.outbox`` holds the entries, each
appended with one `os.write` on an ``O_APPEND`` file (a SIGKILL leaves the
whole entry or none of it; a torn tail from a power cut is ignored), and
``<source>.outbox.acked`` holds the highest sequence JetStream confirmed, as
appended 8-byte numbers. Opening compacts both to what is still unconfirmed,
the confirmed number first, so an id is never handed out twice.
"""

from __future__ import annotations

import collections
import logging
import os
import struct
import time
import zlib
from pathlib import Path
from typing import Final

import msgspec

from twinstar.atomic import ensure_dir, write_bytes_atomically

log: Final = logging.getLogger("twinstar.bridge.outbox")

MAGIC: Final = b"TWOUTBOX"
ACKED_MAGIC: Final = b"TWOUTACK"
_EPOCH: Final = struct.Struct("<Q")
_HEAD: Final = struct.Struct("<II")  # length, crc32
_SEQ: Final = struct.Struct("<Q")


class OutboxError(ValueError):
    """An outbox file is not one; the message says which and why."""


class Entry(msgspec.Struct, frozen=True, array_like=True):
    """One event waiting for JetStream's confirmation: its sequence, subject and encoded message."""

    seq: int
    subject: str
    data: bytes


_encoder: Final = msgspec.msgpack.Encoder()
_decoder: Final = msgspec.msgpack.Decoder(Entry)


def _frame(entry: Entry) -> bytes:
    payload = _encoder.encode(entry)
    return _HEAD.pack(len(payload), zlib.crc32(payload)) + payload


def read_outbox(path: Path) -> tuple[int, list[Entry]]:
    """Return the epoch and every entry of an outbox file (a torn or corrupt tail is left out)."""
    data = path.read_bytes()
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + _EPOCH.size:
        raise OutboxError(f"{path} is not a TwinStar outbox (bad magic bytes)")
    (epoch,) = _EPOCH.unpack_from(data, len(MAGIC))
    offset = len(MAGIC) + _EPOCH.size
    entries: list[Entry] = []
    while offset + _HEAD.size <= len(data):
        length, crc = _HEAD.unpack_from(data, offset)
        payload = data[offset + _HEAD.size : offset + _HEAD.size + length]
        if len(payload) < length or zlib.crc32(payload) != crc:
            log.warning("%s: torn or corrupt tail after %d entries; ignored", path, len(entries))
            break
        entries.append(_decoder.decode(payload))
        offset += _HEAD.size + length
    return epoch, entries


def _read_acked(path: Path) -> int:
    if not path.exists():
        return 0
    data = path.read_bytes()
    if not data.startswith(ACKED_MAGIC):
        raise OutboxError(f"{path} is not a TwinStar outbox confirmation file (bad magic bytes)")
    body = data[len(ACKED_MAGIC) :]
    whole = len(body) - len(body) % _SEQ.size
    return max((value for (value,) in _SEQ.iter_unpack(body[:whole])), default=0)


class Outbox:
    """Entries not yet confirmed by JetStream, on disk and in memory, in sequence order."""

    def __init__(self, folder: str | Path, name: str, *, fsync: bool = False) -> None:
        folder = Path(folder)
        ensure_dir(folder)
        self.path = folder / f"{name}.outbox"
        self.acked_path = folder / f"{name}.outbox.acked"
        self._fsync = fsync
        acked = _read_acked(self.acked_path)
        if self.path.exists():
            self.epoch, entries = read_outbox(self.path)
        else:
            # Wall time on purpose: it only has to differ from any earlier outbox of this name.
            self.epoch, entries = time.time_ns(), []
        self.pending: collections.deque[Entry] = collections.deque(e for e in entries if e.seq > acked)
        self.acked = acked
        self.next_seq = max(acked, entries[-1].seq if entries else 0) + 1
        # Compact: the confirmation first, so a crash in between never makes a sequence look unused.
        write_bytes_atomically(self.acked_path, ACKED_MAGIC + _SEQ.pack(acked))
        write_bytes_atomically(self.path, MAGIC + _EPOCH.pack(self.epoch) + b"".join(map(_frame, self.pending)))
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        self._acked_fd = os.open(self.acked_path, os.O_WRONLY | os.O_APPEND)
        if self.pending:
            log.info("outbox %s: %d events from before still to send", self.path, len(self.pending))

    def event_id(self, source: str, seq: int) -> str:
        """The bridge id of the `seq`-th event of `source` (unique across outboxes of one name, too)."""
        return f"{source}:{self.epoch:x}:{seq}"

    def append(self, subject: str, data: bytes) -> Entry:
        """Write the next entry (sequence `next_seq`) before anything is sent."""
        entry = Entry(self.next_seq, subject, data)
        os.write(self._fd, _frame(entry))
        if self._fsync:
            os.fsync(self._fd)
        self.next_seq += 1
        self.pending.append(entry)
        return entry

    def confirm(self, seq: int) -> None:
        """JetStream stored every entry up to `seq`: drop them."""
        if seq <= self.acked:
            return
        while self.pending and self.pending[0].seq <= seq:
            self.pending.popleft()
        self.acked = seq
        os.write(self._acked_fd, _SEQ.pack(seq))

    def close(self) -> None:
        """Make what was written durable and close the files."""
        for fd in (self._fd, self._acked_fd):
            if fd >= 0:
                os.fsync(fd)
                os.close(fd)
        self._fd = self._acked_fd = -1

    def __repr__(self) -> str:
        return f"Outbox(path={str(self.path)!r}, acked={self.acked}, pending={len(self.pending)})"
