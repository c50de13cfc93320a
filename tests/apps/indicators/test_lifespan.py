"""The scheduler: the first round runs when the platform starts, then one every `compute_seconds`."""

from __future__ import annotations

import threading

import pytest
from fastapi.testclient import TestClient

from citybrain.apps.indicators import services
from citybrain.apps.indicators.lifespan import STARTED
from citybrain.core.asgi import create_app
from citybrain.core.permissions import SYSTEM
from citybrain.core.settings import Settings
from tests.apps.indicators import declaring
from tests.apps.indicators.conftest import specs
from tests.apps.indicators.declaring import indicators as declared


def test_the_first_round_runs_at_start(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the scheduler on, values are stored without anyone asking for a round."""
    monkeypatch.setenv("CITYBRAIN_INDICATORS_COMPUTE_SECONDS", "60")
    declared.VALUES.clear()
    declared.VALUES.update({"510700": 42.0})
    app = create_app(settings, specs(("tests.apps.indicators.declaring", declaring.APP)))
    try:
        with TestClient(app):
            ctx = app.state.ctx
            started: threading.Event = ctx.extensions[STARTED]
            assert started.wait(30)
            now = services.current(ctx, SYSTEM, codes=["ideclare.level"]).indicators
            assert [(i.item.spec.code, i.city.value if i.city else None) for i in now] == [
                ("ideclare.level", 42.0)
            ]
    finally:
        declared.VALUES.clear()
