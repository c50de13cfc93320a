"""Duration clocks outlive a restart: "PM2.5 > 115 for 2 h" goes on counting in the next process."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select

from citybrain.apps.warning import services
from citybrain.apps.warning.models import Clock
from citybrain.apps.warning.schemas import RuleSpec, RuleUpdate
from citybrain.core.asgi import create_app
from citybrain.core.context import AppContext
from citybrain.core.permissions import SYSTEM
from citybrain.core.settings import Settings
from tests.apps.warning.conftest import T0, observe, rule_body, settle, station


def two_hours_rule() -> RuleSpec:
    """pm25 > 115 for two hours: yellow."""
    body = rule_body("pm25-2h")
    body["conditions"][0]["levels"] = [{"level": "yellow", "threshold": 115}]
    body["conditions"][0]["for_seconds"] = 7200
    return RuleSpec.model_validate(body)


def clocks(ctx: AppContext) -> list[tuple[str, int, int]]:
    """(entity, condition, rank) of the stored clocks."""
    with ctx.read() as session:
        return [(c.entity_id, c.condition, c.rank) for c in session.scalars(select(Clock).order_by(Clock.id))]


def test_a_restart_resumes_the_clock(settings: Settings) -> None:
    """The condition began before the restart: the warning is raised two hours after that, not after the restart."""
    app = create_app(settings)
    with TestClient(app, base_url="http://testserver"):
        ctx: AppContext = app.state.ctx
        sid = station(ctx, "fc-clock")
        rule = services.create_rule(ctx, SYSTEM, two_hours_rule())
        observe(ctx, sid, T0, pm25=130.0)
        observe(ctx, sid, T0 + timedelta(hours=1), pm25=131.0)
        settle(ctx)
        assert clocks(ctx) == [(sid, 0, 2)]
        assert services.list_warnings(ctx, SYSTEM).total == 0
    again = create_app(settings)  # the platform restarts on the same database
    with TestClient(again, base_url="http://testserver"):
        ctx = again.state.ctx
        observe(ctx, sid, T0 + timedelta(hours=2), pm25=132.0)
        settle(ctx)
        (warning,) = services.list_warnings(ctx, SYSTEM).items
        assert (warning.level, warning.raised_at) == ("yellow", T0 + timedelta(hours=2))
        observe(ctx, sid, T0 + timedelta(hours=3), pm25=40.0)  # the condition clears: the clock stops
        settle(ctx)
        assert clocks(ctx) == []
        observe(ctx, sid, T0 + timedelta(hours=4), pm25=130.0)
        settle(ctx)
        assert clocks(ctx) == [(sid, 0, 2)]
        # a new version of the rule starts its evaluation afresh: its clocks go
        services.update_rule(ctx, SYSTEM, rule.id, RuleUpdate(name_zh="PM2.5 两小时"))
        settle(ctx)
        assert clocks(ctx) == []


def test_without_the_stored_clock_the_count_would_start_again(settings: Settings) -> None:
    """The same readings with the clock dropped at the restart raise nothing: the stored clock is what counts."""
    app = create_app(settings)
    with TestClient(app, base_url="http://testserver"):
        ctx: AppContext = app.state.ctx
        sid = station(ctx, "fc-noclock")
        services.create_rule(ctx, SYSTEM, two_hours_rule())
        observe(ctx, sid, T0, pm25=130.0)
        settle(ctx)
        services.record_clocks(ctx, [r.id for r in services.list_rules(ctx, SYSTEM)], {})
        assert clocks(ctx) == []
    again = create_app(settings)
    with TestClient(again, base_url="http://testserver"):
        ctx = again.state.ctx
        observe(ctx, sid, T0 + timedelta(hours=2), pm25=132.0)
        settle(ctx)
        assert services.list_warnings(ctx, SYSTEM).total == 0
        assert clocks(ctx) == [(sid, 0, 2)]  # counting from now on
