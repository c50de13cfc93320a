"""Random bytes and ids from a per-thread pool: one system call per 4 KiB instead of one per id.

A system call for randomness gives up the GIL, and a busy thread then waits to take it back behind
the process's other threads; drawing in blocks keeps hot paths (an event id per written entity) on it.
"""

from __future__ import annotations

import os
import threading
from uuid import UUID

_BLOCK = 4096


class _Pool(threading.local):
    """One thread's unused random bytes."""

    def __init__(self) -> None:
        """Start empty: the first draw fills it."""
        self.data, self.used = b"", 0


_pool = _Pool()


def _forget() -> None:
    """A forked child must not hand out the bytes its parent will also use."""
    _pool.data, _pool.used = b"", 0


os.register_at_fork(after_in_child=_forget)


def random_bytes(size: int) -> bytes:
    """`size` bytes from the operating system's generator, drawn in blocks."""
    pool = _pool
    if pool.used + size > len(pool.data):
        pool.data, pool.used = os.urandom(max(_BLOCK, size)), 0
    start = pool.used
    pool.used = start + size
    return pool.data[start : start + size]


def uuid4() -> UUID:
    """A random (version 4) UUID."""
    return UUID(bytes=random_bytes(16), version=4)
