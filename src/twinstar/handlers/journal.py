"""The order-intent journal: what was sent, what came of it, which stop protects what.

Execution writes `sent` before an order leaves and `outcome` once the venue
answered, and `resting` with a limit entry that rests (the exits its signal
asked for, so an entry adopted after a restart gets them); the position
handler writes the stop in force per position and `flat` when a position is
gone. After a crash the journal tells a restarted
kernel which orders may still be unresolved (look them up, never resend) and
which stop was ours, so reconciliation with the exchange can finish the work.

On disk: ``TWJOURNL`` then records, each a 4-byte length, a 4-byte CRC32 and
msgpack. A record is appended with one `os.write` on an ``O_APPEND`` file, so a
SIGKILL at any instant leaves either the whole record or none of it with the
OS; a torn or corrupt tail (power loss mid-write) is ignored on reading.
`fsync` per record is optional: it costs up to milliseconds per order, and
what a power cut loses is found again on the exchange by our client-id prefix.
The file is compacted (rewritten atomically to its live state) when opened,
and again after every `compact_after` records appended, so a kernel that runs
for months keeps a file (and a next start's read) the size of its live state.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from pathlib import Path
from typing import Final, Literal, TypeAlias

import msgspec

from twinstar.atomic import ensure_dir, write_bytes_atomically
from twinstar.bus.events import OrderIntent, PositionSide, Side

log: Final = logging.getLogger("twinstar.journal")

MAGIC: Final = b"TWJOURNL"
_HEAD: Final = struct.Struct("<II")  # length, crc32
Key: TypeAlias = tuple[str, str]  # (exchange, symbol)


class Sent(msgspec.Struct, frozen=True, kw_only=True, tag="sent"):
    """An order about to leave: until its outcome is known it may exist on the venue."""

    cid: str
    exchange: str
    symbol: str
    side: Side
    qty: float
    intent: OrderIntent
    reduce_only: bool
    sent_ms: int
    #: After this time the venue refuses the request (its receive window); 0: no such guarantee.
    expires_ms: int = 0


class Outcome(msgspec.Struct, frozen=True, kw_only=True, tag="outcome"):
    """What became of a sent order: filled (fully or in part), never executed, or resting on the book.

    A resting limit is settled as far as the journal goes: its client id is
    never sent again, and the bracket handler follows it on the venue.
    """

    cid: str
    status: Literal["filled", "failed", "unknown", "resting"]
    filled_qty: float = 0.0
    avg_price: float = 0.0


class StopInForce(msgspec.Struct, frozen=True, kw_only=True, tag="stop"):
    """The stop protecting a position (synthetic stops have an empty `cid`)."""

    exchange: str
    symbol: str
    side: PositionSide
    qty: float
    entry_price: float
    stop_price: float
    cid: str
    order_id: str = ""
    fees: float = 0.0
    #: The take-profit that may close it instead (its trigger and client id; OKX lists it under `cid`).
    take_profit_price: float = 0.0
    take_profit_cid: str = ""


class Resting(msgspec.Struct, frozen=True, kw_only=True, tag="resting"):
    """A limit entry resting on the book and the exits its signal asked for (0: none, the defaults apply)."""

    cid: str
    exchange: str
    symbol: str
    stop_price: float = 0.0
    take_profit_price: float = 0.0


class Done(msgspec.Struct, frozen=True, kw_only=True, tag="done"):
    """An order already resolved (kept through compaction): its client id must never be sent again."""

    cid: str
    exchange: str
    symbol: str


class Flat(msgspec.Struct, frozen=True, kw_only=True, tag="flat"):
    """The position is gone; no stop of ours should rest for it any more."""

    exchange: str
    symbol: str


Record: TypeAlias = Sent | Outcome | StopInForce | Flat | Done | Resting
#: Resolved client ids kept per (exchange, symbol): a restart re-deciding the last candles must find
#: their orders already done (the venue itself accepts a filled order's client id again).
DONE_KEPT: Final = 64
#: Records appended before the file is compacted again while running (a few MB; the rewrite is the live
#: state only, a few hundred KB at most, once per this many orders, stops and outcomes).
COMPACT_AFTER: Final = 20_000
_encoder: Final = msgspec.msgpack.Encoder()
_decoder: Final[msgspec.msgpack.Decoder[Record]] = msgspec.msgpack.Decoder(Record)


class JournalState(msgspec.Struct):
    """The journal's live content: unresolved orders and stops in force."""

    pending: dict[str, Sent] = msgspec.field(default_factory=dict)
    stops: dict[Key, StopInForce] = msgspec.field(default_factory=dict)
    done: dict[Key, dict[str, None]] = msgspec.field(default_factory=dict)  # insertion-ordered, newest last
    resting: dict[Key, Resting] = msgspec.field(default_factory=dict)  # the latest resting entry per symbol

    def apply(self, record: Record) -> None:
        """Fold one record into the state."""
        if isinstance(record, Sent):
            self.pending[record.cid] = record
        elif isinstance(record, Outcome):
            sent = self.pending.pop(record.cid, None)
            if sent is not None:
                self._done(record.cid, (sent.exchange, sent.symbol))
        elif isinstance(record, Done):
            self._done(record.cid, (record.exchange, record.symbol))
        elif isinstance(record, StopInForce):
            self.stops[(record.exchange, record.symbol)] = record
        elif isinstance(record, Resting):
            self.resting[(record.exchange, record.symbol)] = record
        else:
            self.stops.pop((record.exchange, record.symbol), None)

    def _done(self, cid: str, key: Key) -> None:
        kept = self.done.setdefault(key, {})
        kept[cid] = None
        while len(kept) > DONE_KEPT:
            del kept[next(iter(kept))]

    def records(self) -> list[Record]:
        """The fewest records that rebuild this state."""
        done = [Done(cid=cid, exchange=key[0], symbol=key[1]) for key, cids in self.done.items() for cid in cids]
        return [*done, *self.pending.values(), *self.stops.values(), *self.resting.values()]


def _frame(record: Record) -> bytes:
    body = _encoder.encode(record)
    return _HEAD.pack(len(body), zlib.crc32(body)) + body


def read_journal(path: Path) -> tuple[JournalState, bool]:
    """Rebuild the state from `path`; the flag says a torn or corrupt tail was dropped."""
    state = JournalState()
    data = path.read_bytes() if path.exists() else b""
    if not data:
        return state, False
    if not data.startswith(MAGIC):
        raise ValueError(f"{path} is not a TwinStar journal (bad magic)")
    offset = len(MAGIC)
    while offset < len(data):
        if offset + _HEAD.size > len(data):
            return state, True
        length, crc = _HEAD.unpack_from(data, offset)
        body = data[offset + _HEAD.size : offset + _HEAD.size + length]
        if len(body) < length or zlib.crc32(body) != crc:
            return state, True
        try:
            state.apply(_decoder.decode(body))
        except msgspec.DecodeError:
            return state, True
        offset += _HEAD.size + length
    return state, False


class Journal:
    """Durable order intent for one kernel; with no path it keeps the state in memory only."""

    def __init__(
        self, path: str | Path | None = None, *, fsync: bool = False, compact_after: int = COMPACT_AFTER
    ) -> None:
        self.path = Path(path) if path else None
        self.fsync = fsync
        self.compact_after = compact_after
        self._appended = 0  # records written since the file was last compacted
        self.state = JournalState()
        self._fd: int | None = None
        self._touched: dict[Key, int] = {}  # (exchange, symbol) -> records written for it, ever
        #: Orders this process is sending or looking up right now (not for the reconciler to settle).
        self.in_flight: set[str] = set()
        if self.path is not None:
            self._open(self.path)

    def _open(self, path: Path) -> None:
        ensure_dir(path.parent)
        self.state, torn = read_journal(path)
        if torn:
            log.warning("journal %s had a torn tail (a crash mid-write); the complete records were kept", path)
        self._compact(path)

    def _compact(self, path: Path) -> None:
        """Replace the file by the live state alone, atomically (a kill leaves the old file or the new), then append."""
        self.close()
        write_bytes_atomically(path, MAGIC + b"".join(_frame(r) for r in self.state.records()))
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        self._appended = 0

    def write(self, record: Record) -> None:
        """Apply `record` and hand it to the OS in one write (durable against a process kill)."""
        key = self._key_of(record.cid) if isinstance(record, Outcome) else (record.exchange, record.symbol)
        self.state.apply(record)
        if key is not None:
            self._touched[key] = self._touched.get(key, 0) + 1
        if self._fd is None:
            return
        os.write(self._fd, _frame(record))
        if self.fsync:
            os.fsync(self._fd)
        self._appended += 1
        # Never between a decision and its request: a `Sent` is written just before the order goes out.
        if self._appended >= self.compact_after and self.path is not None and not isinstance(record, Sent):
            self._compact(self.path)

    def _key_of(self, cid: str) -> Key | None:
        sent = self.state.pending.get(cid)
        return (sent.exchange, sent.symbol) if sent is not None else None

    def sent(self, record: Sent) -> None:
        """Record an order about to be sent (call before the request goes out)."""
        self.in_flight.add(record.cid)
        self.write(record)

    def outcome(
        self, cid: str, status: Literal["filled", "failed", "unknown", "resting"], filled: float, price: float
    ) -> None:
        """Record the venue's answer for `cid` ("unknown": given up looking; the reconciler settles it)."""
        self.in_flight.discard(cid)
        if status != "unknown":
            self.write(Outcome(cid=cid, status=status, filled_qty=filled, avg_price=price))

    def known(self, exchange: str, symbol: str, cid: str) -> bool:
        """Whether `cid` was ever sent (still unresolved, or done): sending it again could double it."""
        return cid in self.state.pending or cid in self.state.done.get((exchange, symbol), {})

    def pending_for(self, exchange: str, symbol: str) -> list[Sent]:
        """Orders for (exchange, symbol) sent and not yet resolved."""
        return [s for s in self.state.pending.values() if s.exchange == exchange and s.symbol == symbol]

    def stop_for(self, exchange: str, symbol: str) -> StopInForce | None:
        """The stop recorded as protecting (exchange, symbol), if any."""
        return self.state.stops.get((exchange, symbol))

    def resting_exits(self, exchange: str, symbol: str, cid: str) -> Resting | None:
        """The exits journaled with resting entry `cid` of (exchange, symbol), if it is the latest one there."""
        found = self.state.resting.get((exchange, symbol))
        return found if found is not None and found.cid == cid else None

    def generation(self, exchange: str, symbol: str) -> int:
        """A counter that moves whenever anything is written for (exchange, symbol)."""
        return self._touched.get((exchange, symbol), 0)

    def close(self) -> None:
        """Close the file; the state stays readable."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __repr__(self) -> str:
        where = str(self.path) if self.path else None
        return f"Journal(path={where!r}, pending={len(self.state.pending)}, stops={len(self.state.stops)})"
