"""A process-local cache whose entries expire, and whose clearing beats lookups that began before it."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T", float, datetime)


class ExpiringCache(Generic[K, V, T]):
    """Values remembered until a deadline (monotonic seconds or a datetime); `clear()` bumps a generation."""

    def __init__(self, max_entries: int) -> None:
        """Start empty; at `max_entries` the cache starts over rather than grow."""
        self.max_entries = max_entries
        self._entries: dict[K, tuple[V, T]] = {}
        self._generation = 0
        self._lock = threading.Lock()

    @property
    def generation(self) -> int:
        """Bumped by every clear: a lookup started before a clear must not store its (stale) result."""
        return self._generation

    def lookup(self, key: K, now: T) -> tuple[bool, V | None]:
        """(found, value): found is False when the key is unknown or its entry has expired."""
        entry = self._entries.get(key)
        if entry is None or entry[1] <= now:
            return False, None
        return True, entry[0]

    def get(self, key: K, now: T) -> V | None:
        """The value, or None when the key is unknown or its entry has expired."""
        return self.lookup(key, now)[1]

    def put(self, key: K, value: V, until: T, generation: int) -> None:
        """Remember a value until `until`, unless the cache was cleared since `generation` was read."""
        self.put_many({key: value}, until, generation)

    def put_many(self, items: Mapping[K, V], until: T, generation: int) -> None:
        """Remember values until `until`, unless the cache was cleared since `generation` was read."""
        with self._lock:
            if generation != self._generation:
                return
            if len(self._entries) + len(items) > self.max_entries:
                self._entries.clear()
            for key, value in items.items():
                self._entries[key] = (value, until)

    def clear(self) -> None:
        """Forget everything (and make lookups begun before now store nothing)."""
        with self._lock:
            self._generation += 1
            self._entries.clear()
