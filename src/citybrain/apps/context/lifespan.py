"""The context app's background work: matching entity events to subscriptions and delivering notifications."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from citybrain.apps.context.subscriptions import SubscriptionEngine, SubscriptionSettings
from citybrain.sdk import AppContext


@asynccontextmanager
async def lifespan(ctx: AppContext) -> AsyncIterator[None]:
    """Subscribe the engine to entity events (before the bus starts) and run its loops until shutdown."""
    engine = SubscriptionEngine(ctx, SubscriptionSettings())
    engine.register(ctx.bus)
    await engine.start()
    try:
        yield
    finally:
        await engine.stop()
