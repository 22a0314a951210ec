"""Hypothesis strategies that build any event from its type hints."""

from __future__ import annotations

import typing

from hypothesis import strategies as st

from twinstar.bus.events import EVENT_TYPES, Event

_FLOATS = st.floats(allow_nan=False, allow_infinity=True, width=64)
_INTS = st.integers(min_value=-(2**63), max_value=2**63 - 1)


def _for_annotation(annotation: object) -> st.SearchStrategy[object]:
    if annotation is int:
        return _INTS
    if annotation is float:
        return _FLOATS
    if annotation is str:
        return st.text(max_size=40)
    if annotation is bool:
        return st.booleans()
    if typing.get_origin(annotation) is typing.Literal:
        return st.sampled_from(typing.get_args(annotation))
    raise NotImplementedError(f"no strategy for {annotation!r}")


def event_strategy(event_type: type[Event]) -> st.SearchStrategy[Event]:
    """Build instances of `event_type` with arbitrary field values."""
    hints = typing.get_type_hints(event_type)
    fields = {name: _for_annotation(hint) for name, hint in hints.items() if not name.startswith("_")}
    return st.builds(event_type, **fields)


any_event: st.SearchStrategy[Event] = st.one_of([event_strategy(t) for t in EVENT_TYPES])
