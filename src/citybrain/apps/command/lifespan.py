"""The command app's background work: warnings becoming events and emergency responses, the overdue scan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from citybrain.apps.command import emergency, services
from citybrain.apps.command.classifier import default_model
from citybrain.apps.warning.events import WarningChanged, WarningLifted, WarningRaised
from citybrain.sdk import AppContext

log = logging.getLogger(__name__)
DURABLE = "command-warnings"
# Emergency plans follow warnings with consumers of their own.
EMERGENCY = "command-emergency"


async def run_overdue(ctx: AppContext, seconds: float) -> None:
    """Flag overdue events and those running out of time (临期预警) every `seconds`, in a worker thread."""
    while True:
        try:
            await asyncio.to_thread(services.scan_overdue, ctx)
            await asyncio.to_thread(services.scan_due_soon, ctx)
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
    """Check the declared categories and plans (a bad declaration stops the start), subscribe, start the scan."""
    services.load_categories(ctx)
    emergency.load_plans(ctx)

    async def on_raised(event: WarningRaised) -> None:
        await asyncio.to_thread(services.from_warning, ctx, event)

    async def on_raised_plan(event: WarningRaised) -> None:
        await asyncio.to_thread(emergency.from_warning, ctx, event)

    async def on_changed(event: WarningChanged) -> None:
        await asyncio.to_thread(emergency.on_warning_changed, ctx, event)

    async def on_lifted(event: WarningLifted) -> None:
        await asyncio.to_thread(emergency.on_warning_lifted, ctx, event)

    ctx.bus.subscribe(WarningRaised, on_raised, durable=DURABLE)
    ctx.bus.subscribe(WarningRaised, on_raised_plan, durable=f"{EMERGENCY}-raised")
    ctx.bus.subscribe(WarningChanged, on_changed, durable=f"{EMERGENCY}-changed")
    ctx.bus.subscribe(WarningLifted, on_lifted, durable=f"{EMERGENCY}-lifted")
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
        ctx.extensions.pop(emergency.PLANS_KEY, None)
