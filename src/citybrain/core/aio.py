"""Small asyncio helpers the kernel and apps share."""

from __future__ import annotations

import asyncio


async def wait_event(event: asyncio.Event, seconds: float) -> bool:
    """Wait until `event` is set or `seconds` pass (True if set); a cancellation always goes through."""
    # Not asyncio.wait_for: on Python 3.11 it loses a cancellation that arrives as the event is set, and a
    # worker loop cancelled at that moment would run on forever.
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True
