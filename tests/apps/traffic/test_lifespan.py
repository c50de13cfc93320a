"""The periodic task: at startup it learns free-flow speeds and records the index of the current interval."""

from __future__ import annotations

import threading
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select

from citybrain.apps.traffic import services
from citybrain.apps.traffic.lifespan import STARTED
from citybrain.apps.traffic.models import FreeFlowSpeed, IndexRecord
from citybrain.core.asgi import create_app
from citybrain.core.context import AppContext
from citybrain.core.platform import build_context
from citybrain.core.settings import Settings
from citybrain.sdk import utcnow
from tests.apps.traffic.conftest import add_detector, read, segment


def test_startup_learns_free_flow_and_records_the_index(settings: Settings) -> None:
    before: AppContext = build_context(settings)
    det = add_detector(before, "boot", segment(before, "jiuzhou-2"))
    read(before, det, [(utcnow() - timedelta(seconds=30), 15.0, 600.0)])
    before.db.dispose()
    app = create_app(settings)
    with TestClient(app):
        ctx: AppContext = app.state.ctx
        event: threading.Event = ctx.extensions[STARTED]
        assert event.wait(60)
        with ctx.read() as session:
            free = session.scalars(select(FreeFlowSpeed)).all()
            records = session.scalars(select(IndexRecord).order_by(IndexRecord.area_code)).all()
        assert len(free) == len(services.segments(ctx))
        assert {f.source for f in free} == {"speed_limit"}  # half a minute of history is not 30 days
        assert [r.area_code for r in records] == ["510700", "510703"]
        assert records[0].grade == 5  # 15 km/h on a 60 km/h road: DTP 0.75
        assert records[0].at == services.interval_start(records[0].at, 5)
