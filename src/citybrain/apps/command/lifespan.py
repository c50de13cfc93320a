"""The command app's background work: warnings becoming events, and the periodic overdue scan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from citybrain.apps.command import services
from citybrain.apps.command.classifier import default_model
from citybrain.apps.warning.events import WarningRaised
from citybrain.sdk import AppContext

log = logging.getLogger(__name__)
DURABLE = "command-warnings"


async def run_overdue(ctx: AppContext, seconds: float) -> None:
    """Flag overdue events every `seconds`, in a worker thread."""
    while True:
        try:
            await asyncio.to_thread(services.scan_overdue, ctx)
        except Exception:
            log.exception("overdue scan failed; retrying next round")
        await asyncio.sleep(seconds)


async def train_classifier() -> None:
    """Train the complaint classifier in a worker thread (a failure leaves tickets to people)."""
    try:
        await asyncio.to_thread(default_model)
    except Exception:
        log.exception(
            "training the complaint classifier failed; tickets without a category wait for a person"
        )


@asynccontextmanager
async def lifespan(ctx: AppContext) -> AsyncIterator[None]:
    """Check the declared categories (a bad declaration stops the start), subscribe, start the scan."""
    services.load_categories(ctx)

    async def on_raised(event: WarningRaised) -> None:
        await asyncio.to_thread(services.from_warning, ctx, event)

    ctx.bus.subscribe(WarningRaised, on_raised, durable=DURABLE)
    # the classifier is trained once per process: now, rather than on the first ticket
    warm = asyncio.create_task(train_classifier(), name="citybrain-command-classifier")
    task = asyncio.create_task(
        run_overdue(ctx, services.settings(ctx).overdue_seconds), name="citybrain-command-overdue"
    )
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await warm
        ctx.extensions.pop(services.CATEGORIES_KEY, None)
