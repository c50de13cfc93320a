"""The kernel's expiring cache: deadlines, the size bound and clears racing lookups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from citybrain.core.cache import ExpiringCache


def test_entry_lives_until_its_deadline() -> None:
    cache: ExpiringCache[str, int, float] = ExpiringCache(max_entries=10)
    cache.put("a", 1, until=10.0, generation=cache.generation)
    assert cache.lookup("a", 9.9) == (True, 1)
    assert cache.lookup("a", 10.0) == (False, None)
    assert cache.get("b", 0.0) is None


def test_none_is_a_value_that_can_be_cached() -> None:
    cache: ExpiringCache[str, int | None, float] = ExpiringCache(max_entries=10)
    cache.put("missing", None, until=5.0, generation=cache.generation)
    assert cache.lookup("missing", 1.0) == (True, None)


def test_datetime_deadlines() -> None:
    now = datetime(2026, 11, 25, 8, tzinfo=UTC)
    cache: ExpiringCache[str, str, datetime] = ExpiringCache(max_entries=10)
    cache.put("t", "actor", until=now + timedelta(seconds=30), generation=cache.generation)
    assert cache.get("t", now) == "actor"
    assert cache.get("t", now + timedelta(seconds=31)) is None


def test_a_full_cache_starts_over() -> None:
    cache: ExpiringCache[int, int, float] = ExpiringCache(max_entries=3)
    cache.put_many({1: 1, 2: 2, 3: 3}, until=9.0, generation=cache.generation)
    cache.put(4, 4, until=9.0, generation=cache.generation)
    assert cache.get(1, 0.0) is None
    assert cache.get(4, 0.0) == 4


def test_a_lookup_begun_before_a_clear_stores_nothing() -> None:
    cache: ExpiringCache[str, int, float] = ExpiringCache(max_entries=10)
    generation = cache.generation
    cache.put("a", 1, until=9.0, generation=generation)
    cache.clear()
    assert cache.get("a", 0.0) is None
    cache.put("a", 2, until=9.0, generation=generation)
    assert cache.get("a", 0.0) is None
    cache.put("a", 3, until=9.0, generation=cache.generation)
    assert cache.get("a", 0.0) == 3
