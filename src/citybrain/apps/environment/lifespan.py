"""The environment app's background work: grading each new daily-AQI forecast bulletin as it arrives."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from citybrain.apps.context.events import AttributesChanged
from citybrain.apps.context.jsonld import Context
from citybrain.apps.environment import forecasts
from citybrain.sdk import AppContext

log = logging.getLogger(__name__)
DURABLE = "environment.heavy-pollution"


class Grader:
    """Grades forecast bulletins announced on the bus (AttributesChanged of the forecast type)."""

    def __init__(self, ctx: AppContext) -> None:
        """Watch the configured forecast type and its bulletin attributes."""
        self.ctx = ctx
        jsonld = Context()
        self.type_iri = jsonld.expand_type(forecasts.settings(ctx).forecast_type)
        self.attrs = frozenset(jsonld.expand(term) for term in forecasts.BULLETIN_ATTRS)
        self.graded = 0

    async def on_changed(self, event: AttributesChanged) -> None:
        """Grade the entity when a change of a forecast touches its bulletin (not the level written back)."""
        if self.type_iri not in event.types:
            return
        if not any(change.attr in self.attrs and not change.dataset_id for change in event.changes):
            return
        try:
            judged = await asyncio.to_thread(forecasts.judge, self.ctx, event.tenant, event.entity_id)
        except Exception:
            log.exception("grading the forecast %s failed", event.entity_id)
            return
        if judged is not None:
            self.graded += 1


@asynccontextmanager
async def lifespan(ctx: AppContext) -> AsyncIterator[None]:
    """Grade bulletins published while the platform was down, then subscribe to new ones (before the bus starts)."""
    grader = Grader(ctx)
    try:
        await asyncio.to_thread(forecasts.judge_all, ctx)
    except Exception:
        log.exception("grading the stored forecasts failed; new bulletins are graded as they come")
    ctx.bus.subscribe(AttributesChanged, grader.on_changed, durable=DURABLE)
    yield
