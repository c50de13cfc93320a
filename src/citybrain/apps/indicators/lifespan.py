"""The indicators app's background work: compute the due indicators once a round, delete old history.

The declarations are checked before anything starts: an invalid one stops startup with a message that
names the app, the indicator and the fault. The warning app's events are kept (for the daily brief's
list of the day's warnings) as they come. The first round runs at once; then a round every
`compute_seconds`, in a worker thread, so the event loop never waits on a compute function. Each process
of `citybrain serve --workers N` does the same: a value replaces the one of the same indicator, area and
period, so several processes leave one row each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from citybrain.apps.indicators import screen, services
from citybrain.apps.indicators.events import WarningChangedSeen, WarningLiftedSeen, WarningRaisedSeen
from citybrain.sdk import AppContext, utcnow

log = logging.getLogger(__name__)
PURGE_SECONDS = 86400.0
# Set in the platform context's extensions once the first round has finished.
STARTED = "indicators.started"


@asynccontextmanager
async def lifespan(ctx: AppContext) -> AsyncIterator[None]:
    """Check the declarations (refusing to start on a bad one), follow the screen's changes, run the rounds."""
    services.declared(ctx)
    screen.subscribe(ctx)

    async def on_warning(event: WarningRaisedSeen | WarningChangedSeen | WarningLiftedSeen) -> None:
        await asyncio.to_thread(services.seen_warning, ctx, event)

    ctx.bus.subscribe(WarningRaisedSeen, on_warning, durable="indicators.warnings.raised")
    ctx.bus.subscribe(WarningChangedSeen, on_warning, durable="indicators.warnings.changed")
    ctx.bus.subscribe(WarningLiftedSeen, on_warning, durable="indicators.warnings.lifted")
    ctx.extensions[STARTED] = threading.Event()
    config = services.settings(ctx)
    task = None
    if config.compute_seconds > 0:
        ctx.extensions[services.FIRST_ROUND] = {"began": utcnow(), "finished": None}
        task = asyncio.create_task(_periodic(ctx, config.compute_seconds), name="citybrain-indicators")
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _periodic(ctx: AppContext, step: float) -> None:
    """A round every `step` seconds (aligned to the clock), a purge daily."""
    purged: float | None = None
    while True:
        try:
            await asyncio.to_thread(services.compute_round, ctx)
            if purged is None or time.monotonic() - purged > PURGE_SECONDS:
                await asyncio.to_thread(services.purge, ctx)
                purged = time.monotonic()
        except Exception:
            log.exception("computing the indicators failed; trying again next round")
        rounds = ctx.extensions.get(services.FIRST_ROUND)
        if rounds is not None and rounds.get("finished") is None:
            rounds["finished"] = utcnow()
        ctx.extensions[STARTED].set()
        await asyncio.sleep(step - time.time() % step)
