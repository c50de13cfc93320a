"""Demo runner: the traffic index of the demo's first day, recorded from the detectors' backfilled history.

The iot demo's seed fills a day of detector readings; the index is recorded only while the platform runs,
so on a new demo the day's trend would start at the start. Once the demo serves, the index of the last
`BACKFILL_HOURS` is recorded from that history (intervals already recorded are kept), in a worker
thread: the start does not wait for it.
"""

from __future__ import annotations

import asyncio
import logging
import time

from citybrain.apps.traffic import services
from citybrain.sdk import AppContext

log = logging.getLogger(__name__)
BACKFILL_HOURS = 24.0


async def run(ctx: AppContext) -> None:
    """Record the index of the last day from the detectors' history, once."""
    began = time.perf_counter()
    rows = await asyncio.to_thread(services.backfill_records, ctx, BACKFILL_HOURS)
    log.info(
        "traffic index: %d values of the last %g h recorded from the detectors' history in %.1f s",
        rows,
        BACKFILL_HOURS,
        time.perf_counter() - began,
    )
