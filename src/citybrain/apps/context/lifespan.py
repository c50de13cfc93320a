"""The context app's background work: group commit of writes, history retention, subscriptions."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from citybrain.apps.context.services import WRITER, purge_history
from citybrain.apps.context.settings import ContextSettings
from citybrain.apps.context.subscriptions import SubscriptionEngine
from citybrain.apps.context.writer import GroupCommit
from citybrain.sdk import SYSTEM, AppContext, utcnow

log = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(ctx: AppContext) -> AsyncIterator[None]:
    """Start the writer, subscribe the engine to entity events (before the bus starts); stop both at shutdown."""
    writer = GroupCommit(ctx)
    await writer.start()
    ctx.extensions[WRITER] = writer
    settings = ctx.app_setting("context", ContextSettings)
    engine = SubscriptionEngine(ctx, settings)
    engine.register(ctx.bus)
    await engine.start()
    retention = asyncio.create_task(_purge_history(ctx, settings), name="citybrain-context-retention")
    try:
        yield
    finally:
        retention.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await retention
        ctx.extensions.pop(WRITER, None)
        await writer.stop()
        await engine.stop()


async def _purge_history(ctx: AppContext, settings: ContextSettings) -> None:
    """Delete attribute history older than the retention period, now and then periodically."""
    while settings.history_retention_days > 0:
        try:
            cutoff = utcnow() - timedelta(days=settings.history_retention_days)
            deleted = await asyncio.to_thread(purge_history, ctx, SYSTEM, cutoff)
            if deleted:
                log.info("history retention: deleted %d rows older than %s", deleted, cutoff.isoformat())
        except Exception:
            log.exception("history retention failed; trying again later")
        await asyncio.sleep(settings.history_purge_seconds)
