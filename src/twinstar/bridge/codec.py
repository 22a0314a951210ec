"""What crosses NATS: one event in an envelope with a schema version, its id and the kernel it came from.

msgpack through msgspec, like the recordings: the event keeps its tag, so it
decodes to its exact type. `SCHEMA_VERSION` moves only when the envelope
changes in a way an older reader cannot follow; new event fields never move
it (they go last, with defaults).
"""

from __future__ import annotations

from typing import Final

import msgspec

from twinstar.bus.events import AnyEvent, Event

SCHEMA_VERSION: Final = 1


class BridgeFormatError(ValueError):
    """A message on the bridge is not one this TwinStar can read; the message says why, in one line."""


class BridgeMessage(msgspec.Struct, frozen=True, kw_only=True):
    """An event on the bridge: `id` is unique per event and stays the same on every re-send."""

    schema: int
    id: str
    source: str
    event: AnyEvent


class _Envelope(msgspec.Struct, frozen=True, kw_only=True):
    """The envelope alone, read to explain a message whose event cannot be decoded."""

    schema: int = 0
    id: str = ""


_encoder: Final = msgspec.msgpack.Encoder()
_decoder: Final = msgspec.msgpack.Decoder(BridgeMessage)
_envelope_decoder: Final = msgspec.msgpack.Decoder(_Envelope)


def encode_message(event_id: str, source: str, event: Event) -> bytes:
    """Encode `event` with its id and source in the current schema."""
    return _encoder.encode({"schema": SCHEMA_VERSION, "id": event_id, "source": source, "event": event})


def decode_message(data: bytes) -> BridgeMessage:
    """Decode a message written by `encode_message`; raise BridgeFormatError if it is not readable."""
    try:
        message = _decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        try:
            envelope = _envelope_decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise BridgeFormatError(f"not a TwinStar bridge message ({exc})") from None
        if envelope.schema > SCHEMA_VERSION:
            raise BridgeFormatError(
                f"message {envelope.id!r} has schema {envelope.schema}, newer than this TwinStar reads "
                f"({SCHEMA_VERSION}); upgrade twinstar"
            ) from None
        raise BridgeFormatError(f"message {envelope.id!r}: unknown or malformed event ({exc})") from None
    if message.schema > SCHEMA_VERSION:
        raise BridgeFormatError(
            f"message {message.id!r} has schema {message.schema}, newer than this TwinStar reads ({SCHEMA_VERSION})"
        )
    return message
