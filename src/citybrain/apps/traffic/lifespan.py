"""The traffic app's background work: learn free-flow speeds, record the index, delete old records.

At startup the free-flow speeds are learned and the index recorded at once; then the index is recorded
once per interval (`record_minutes`), the free-flow speeds learned again every `learn_hours`, and old
records deleted daily. Each process of `citybrain serve --workers N` does the same: a record replaces
the one of the same area and interval, so several processes leave one row each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from citybrain.apps.traffic import services
from citybrain.sdk import AppContext, utcnow

log = logging.getLogger(__name__)
PURGE_SECONDS = 86400.0
# Set in the platform context's extensions once the first round (learn, record) has finished.
STARTED = "traffic.started"


@asynccontextmanager
async def lifespan(ctx: AppContext) -> AsyncIterator[None]:
    """Run the periodic task while the platform runs."""
    ctx.extensions[STARTED] = threading.Event()
    task = asyncio.create_task(_periodic(ctx), name="citybrain-traffic-index")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _periodic(ctx: AppContext) -> None:
    """Learn free flow (at start and every learn_hours), record each interval, purge daily."""
    config = services.settings(ctx)
    learned: float | None = None
    purged: float | None = None
    step = config.record_minutes * 60.0
    while True:
        try:
            if learned is None or time.monotonic() - learned > config.learn_hours * 3600:
                await asyncio.to_thread(services.learn_free_flow, ctx)
                learned = time.monotonic()
            await asyncio.to_thread(services.record, ctx)
            if purged is None or time.monotonic() - purged > PURGE_SECONDS:
                await asyncio.to_thread(services.purge, ctx)
                purged = time.monotonic()
        except Exception:
            log.exception("recording the traffic index failed; trying again next interval")
        ctx.extensions[STARTED].set()
        # sleep to the start of the next interval (plus a few seconds for late readings)
        now = utcnow().timestamp()
        await asyncio.sleep(step - now % step + 5.0)
