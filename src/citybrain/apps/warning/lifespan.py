"""The warning app's background work: the rule evaluator on the bus and its periodic tick."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from citybrain.apps.context.events import AttributesChanged
from citybrain.apps.warning import forecasts, publishing, services
from citybrain.apps.warning.runtime import DURABLE, Runtime
from citybrain.sdk import AppContext


@asynccontextmanager
async def lifespan(ctx: AppContext) -> AsyncIterator[None]:
    """Store declared rules, load rules and active warnings, subscribe the evaluator (before the bus starts)."""
    runtime = Runtime(ctx)
    await asyncio.to_thread(services.sync_declared, ctx)
    await asyncio.to_thread(runtime.load)
    runtime.loop = asyncio.get_running_loop()
    ctx.extensions[services.RUNTIME] = runtime
    ctx.bus.subscribe(AttributesChanged, runtime.on_changed, durable=DURABLE)
    tasks = [
        asyncio.create_task(
            runtime.run_ticks(services.settings(ctx).tick_seconds), name="citybrain-warning-tick"
        ),
        asyncio.create_task(runtime.run_writer(), name="citybrain-warning-writer"),
    ]
    tasks.append(publishing.start(ctx))  # deliveries to subscribers: queued from the bus, sent by a worker
    # forecasts: soon after start, then periodically, in a worker thread
    tasks.append(asyncio.create_task(forecasts.run_forever(ctx), name="citybrain-warning-forecasts"))
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        ctx.extensions.pop(services.RUNTIME, None)
        ctx.extensions.pop(publishing.PUBLISHER, None)
        await runtime.flush()  # what the evaluator decided last is kept (its events wait in the outbox)
