"""Subject names: ``<prefix>.<venue>.<symbol>.<event tag>``, so a consumer picks by venue, symbol or type.

A subject token may not hold '.', '*', '>' or white space, and symbols hold
'/' and ':' (``BTC/USDT:USDT``): every character outside [A-Za-z0-9_-] becomes
'_'. Events of no venue or symbol (the kernel's own) use '_' there.
"""

from __future__ import annotations

import functools
import re
from typing import Final

from twinstar.bus.events import Event

_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_-]")


def token(text: str) -> str:
    """`text` as one subject token ('_' when empty)."""
    return _UNSAFE.sub("_", text) or "_"


def event_tag(event_type: type[Event]) -> str:
    """The never-changing tag of an event type (its name in recordings and subjects)."""
    return str(event_type.__struct_config__.tag)


@functools.cache
def _subject(prefix: str, venue: str, symbol: str, tag: str) -> str:
    return f"{prefix}.{token(venue)}.{token(symbol)}.{tag}"


def subject_for(prefix: str, event: Event) -> str:
    """The subject `event` is published on."""
    venue = getattr(event, "exchange", "")
    symbol = getattr(event, "symbol", "")
    return _subject(
        prefix,
        venue if isinstance(venue, str) else "",
        symbol if isinstance(symbol, str) else "",
        event_tag(type(event)),
    )


def venue_filter(prefix: str, venue: str, tag: str) -> str:
    """The subject filter of every `tag` event for `venue`, whatever the symbol."""
    return f"{prefix}.{token(venue)}.*.{tag}"


def everything(prefix: str) -> str:
    """The filter of every subject under `prefix` (what the stream holds)."""
    return f"{prefix}.>"
