from __future__ import annotations

import math

import msgspec
import pytest
from hypothesis import given

import twinstar.bus.events as ev
from tests.kernel.strategies import any_event

ALL_SUBCLASSES = {cls for cls in vars(ev).values() if isinstance(cls, type) and issubclass(cls, ev.Event)} - {ev.Event}


@given(any_event)
def test_every_event_round_trips_through_the_codec(event: ev.Event) -> None:
    assert ev.decode(ev.encode(event)) == event


def test_the_union_holds_every_event_class_once() -> None:
    assert set(ev.EVENT_TYPES) == ALL_SUBCLASSES
    assert len(ev.EVENT_TYPES) == len(ALL_SUBCLASSES)


def test_every_event_has_an_explicit_unique_tag() -> None:
    tags = [msgspec.inspect.type_info(cls).tag for cls in ev.EVENT_TYPES]  # type: ignore[attr-defined]
    assert all(isinstance(tag, str) and tag.islower() for tag in tags)
    assert len(set(tags)) == len(tags)
    # Tags are snake_case names that never follow a class rename.
    assert msgspec.inspect.type_info(ev.CandleClosed).tag == "candle_closed"  # type: ignore[attr-defined]


def test_events_are_frozen() -> None:
    event = ev.KernelStarted(ts_ns=1)
    with pytest.raises(AttributeError):
        event.ts_ns = 2  # type: ignore[misc]


def test_nan_prices_survive_the_codec_bit_for_bit() -> None:
    candle = ev.CandleClosed(
        ts_ns=1,
        exchange="x",
        symbol="S",
        interval="1m",
        open_time_ms=0,
        open=math.nan,
        high=1.0,
        low=1.0,
        close=1.0,
        volume=0.0,
    )
    assert ev.encode(ev.decode(ev.encode(candle))) == ev.encode(candle)


def test_garbage_is_a_decode_error_not_a_crash() -> None:
    with pytest.raises(msgspec.DecodeError):
        ev.decode(b"\x81\xa4type\xa7unknown")
