"""The geo app at startup: check every enabled app's map layer declarations, so a bad one stops the start."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from citybrain.apps.geo import services
from citybrain.sdk import AppContext


@asynccontextmanager
async def lifespan(ctx: AppContext) -> AsyncIterator[None]:
    """Load and check the layers before the platform serves a request."""
    services.check_layers(ctx)
    yield
