"""The last N event ids seen: a copy arriving after JetStream's duplicate window is still recognised."""

from __future__ import annotations

import collections


class RecentIds:
    """A bounded set of event ids; past `size`, the oldest is forgotten first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._ids: set[str] = set()
        self._order: collections.deque[str] = collections.deque()

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids

    def add(self, event_id: str) -> None:
        """Remember `event_id`."""
        self._ids.add(event_id)
        self._order.append(event_id)
        if len(self._order) > self.size:
            self._ids.discard(self._order.popleft())

    def __len__(self) -> int:
        return len(self._ids)
