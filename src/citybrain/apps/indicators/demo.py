"""Demo runner: a day of vital-sign history, so the trends of a new demo hold more than its first minutes.

The other apps' demo seeds fill the sensors' history; the vital signs are recorded only while the
platform runs. Once the demo serves, the last `demo_backfill_hours` of every indicator whose compute
function reads the past (declared with `backfill`) are computed from that history, one value an hour,
in a worker thread: the start does not wait for it. The others are skipped, with the reason logged.
"""

from __future__ import annotations

import asyncio
import logging

from citybrain.apps.indicators import services
from citybrain.sdk import AppContext

log = logging.getLogger(__name__)


async def run(ctx: AppContext) -> None:
    """Fill the vital signs' recent history once (periods already recorded are kept)."""
    hours = services.settings(ctx).demo_backfill_hours
    if hours <= 0:
        return
    report = await asyncio.to_thread(services.backfill, ctx, hours)
    log.info(
        "vital signs: %d values of the last %d h filled for %s in %.1f s",
        report.rows,
        hours,
        ", ".join(report.filled) or "no indicator",
        report.seconds,
    )
    by_reason: dict[str, list[str]] = {}
    for code, reason in report.skipped.items():
        by_reason.setdefault(reason, []).append(code)
    for reason, codes in by_reason.items():
        log.info("vital signs not filled (%s): %s", reason, ", ".join(codes))
