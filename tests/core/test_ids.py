"""Random ids drawn from the per-thread pool."""

from __future__ import annotations

import os
import threading

from citybrain.core import ids


def test_ids_are_version_4_and_distinct_across_many_pool_refills() -> None:
    drawn = [ids.uuid4() for _ in range(2000)]  # 32,000 bytes: several 4 KiB blocks
    assert len(set(drawn)) == len(drawn)
    assert {u.version for u in drawn} == {4}
    assert {u.variant for u in drawn} == {"specified in RFC 4122"}


def test_requests_larger_than_a_block_are_served_whole() -> None:
    assert len(ids.random_bytes(10_000)) == 10_000
    assert len(ids.random_bytes(7)) == 7


def test_threads_draw_from_their_own_pools() -> None:
    found: list[bytes] = []

    def draw() -> None:
        found.append(ids.random_bytes(64))

    workers = [threading.Thread(target=draw) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(set(found)) == 4


def test_a_forked_child_does_not_repeat_its_parents_next_bytes() -> None:
    ids.random_bytes(1)  # the pool now holds unused bytes the parent will hand out next
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next bytes and leave at once
        os.write(writer, ids.random_bytes(16))
        os._exit(0)
    os.close(writer)
    child = os.read(reader, 16)
    os.close(reader)
    os.waitpid(pid, 0)
    assert child != ids.random_bytes(16)
