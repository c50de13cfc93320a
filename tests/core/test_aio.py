"""wait_event: set, timed out, and cancelled at the moment the event is set."""

from __future__ import annotations

import asyncio

import pytest

from citybrain.core.aio import wait_event


async def test_it_tells_set_from_timed_out() -> None:
    event = asyncio.Event()
    assert await wait_event(event, 0.01) is False
    event.set()
    assert await wait_event(event, 1) is True


async def test_a_cancellation_as_the_event_is_set_is_never_lost() -> None:
    # The loop shape of the platform's workers: a cancelled worker must end, whenever the cancel comes.
    for _ in range(200):
        event = asyncio.Event()

        async def worker(wake: asyncio.Event) -> None:
            while True:
                await wait_event(wake, 0.05)
                wake.clear()

        task = asyncio.create_task(worker(event))
        await asyncio.sleep(0)
        event.set()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=1)
