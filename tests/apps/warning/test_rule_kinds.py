"""Rate, absence and composite rules, and a rule failing at run time, on real context writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from citybrain.core.context import AppContext
from citybrain.core.permissions import SYSTEM
from tests.apps.warning.conftest import FULESHAN, T0, observe, rule_body, settle, station, warnings_of
from tests.apps.warning.test_lifecycle import create_rule


def test_rate_of_change(api: TestClient, ctx: AppContext) -> None:
    """Δ pm25 per hour: a slow rise does not fire; a jump of 60 in 30 minutes (120/h) is 黄."""
    sid = station(ctx, "rate-01")
    body = rule_body("pm25-rising", kind="rate")
    body["conditions"][0] = {
        "attr": "pm25",
        "op": ">",
        "period_seconds": 3600,
        "levels": [{"level": "blue", "threshold": 50}, {"level": "yellow", "threshold": 100}],
    }
    create_rule(api, body)
    observe(ctx, sid, T0, pm25=20.0)
    observe(ctx, sid, T0 + timedelta(hours=1), pm25=40.0)  # +20/h
    settle(ctx)
    assert warnings_of(api) == []
    observe(ctx, sid, T0 + timedelta(hours=1, minutes=30), pm25=100.0)  # +60 in 30 min = +120/h
    settle(ctx)
    (warning,) = warnings_of(api)
    assert warning["level"] == "yellow"
    assert warning["values"] == {"pm25": 100.0}


def test_absence_of_data(api: TestClient, client: TestClient, ctx: AppContext) -> None:
    """No pm25 update for 10 minutes is 蓝, for 60 minutes 黄; a new value lifts the warning."""
    sid = station(ctx, "silent-01")
    body = rule_body("pm25-silent", kind="absence", hysteresis={"hold_seconds": 0})
    body["conditions"][0] = {
        "attr": "pm25",
        "levels": [{"level": "blue", "threshold": 10}, {"level": "yellow", "threshold": 60}],
    }
    create_rule(api, body)
    settle(ctx)
    runtime: Any = ctx.extensions["warning.runtime"]
    assert client.portal is not None
    now = datetime.now(UTC)
    client.portal.call(runtime.tick, now + timedelta(minutes=5))
    assert warnings_of(api) == []
    client.portal.call(runtime.tick, now + timedelta(minutes=11))
    (warning,) = warnings_of(api)
    assert (warning["level"], warning["entity_id"]) == ("blue", sid)
    client.portal.call(runtime.tick, now + timedelta(minutes=61))
    assert warnings_of(api)[0]["level"] == "yellow"
    observe(ctx, sid, now, pm25=12.0)
    settle(ctx)
    assert warnings_of(api, status="active") == []


def test_composite_over_attributes_and_entities(api: TestClient, ctx: AppContext) -> None:
    """pm25 AND no2 of a station, and a condition on another station: the level is what all reach."""
    a = station(ctx, "comp-01")
    upwind = station(ctx, "comp-up", where=FULESHAN)
    body = rule_body("smog", kind="composite", combine="all")
    body["conditions"] = [
        {
            "attr": "pm25",
            "levels": [{"level": "blue", "threshold": 75}, {"level": "orange", "threshold": 150}],
        },
        {
            "attr": "no2",
            "levels": [{"level": "blue", "threshold": 80}, {"level": "orange", "threshold": 180}],
        },
        {
            "attr": "pm25",
            "entity_id": upwind,
            "levels": [{"level": "blue", "threshold": 50}, {"level": "orange", "threshold": 50}],
        },
    ]
    body["scope"] = {"kind": "entity", "entity_id": a}
    create_rule(api, body)
    observe(ctx, a, T0, pm25=200.0, no2=90.0)  # pm25 orange, no2 blue, upwind low
    settle(ctx)
    assert warnings_of(api) == []
    observe(ctx, upwind, T0 + timedelta(minutes=1), pm25=60.0)  # upwind high: min(orange, blue, orange)
    settle(ctx)
    (warning,) = warnings_of(api)
    assert (warning["entity_id"], warning["level"]) == (a, "blue")
    observe(ctx, a, T0 + timedelta(minutes=2), no2=200.0)
    settle(ctx)
    assert warnings_of(api)[0]["level"] == "orange"
    any_body = rule_body("smog-any", kind="composite", combine="any")
    any_body["conditions"] = [
        {"attr": "pm25", "levels": [{"level": "red", "threshold": 500}]},
        {"attr": "no2", "levels": [{"level": "yellow", "threshold": 150}]},
    ]
    create_rule(api, any_body)
    observe(ctx, a, T0 + timedelta(minutes=3), no2=210.0)
    settle(ctx)
    (any_warning,) = warnings_of(api, rule="smog-any")
    assert any_warning["level"] == "yellow"


def test_a_rule_failing_at_run_time_is_disabled(api: TestClient, client: TestClient, ctx: AppContext) -> None:
    """A stored rule the evaluator cannot run is disabled with the error on record; others keep working."""
    from citybrain.apps.warning.models import Rule

    sid = station(ctx, "bad-01")
    failing = create_rule(api, rule_body("pm25-fragile"))
    other = rule_body("no2-high")
    other["conditions"][0]["attr"] = "no2"
    create_rule(api, other)
    with ctx.uow(SYSTEM, "warning.rule.update") as uow:  # a definition written by an older release
        row = uow.session.get_one(Rule, failing["id"])
        broken = dict(row.definition)
        broken["conditions"] = [{**broken["conditions"][0], "op": "between"}]
        row.definition = broken
    runtime: Any = ctx.extensions["warning.runtime"]
    runtime.evaluator.remove(failing["id"])
    assert client.portal is not None
    client.portal.call(runtime.tick)
    rule = api.get(f"/api/warning/rules/{failing['id']}").json()
    assert rule["enabled"] is False
    assert rule["failure"].startswith("ValidationError") and rule["failed_at"]
    observe(ctx, sid, T0 + timedelta(minutes=1), pm25=300.0, no2=100.0)
    settle(ctx)
    assert [w["rule_code"] for w in warnings_of(api)] == ["no2-high"]


def test_evaluation_errors_disable_only_their_rule() -> None:
    """An exception while evaluating (here: the context broker failing to load an entity) disables that rule."""
    from citybrain.apps.warning import evaluator as ev
    from citybrain.apps.warning.schemas import RuleSpec

    def loader(tenant: str, entity_id: str) -> Any:
        raise ConnectionError("database unavailable")

    evaluator = ev.Evaluator(loader=loader)
    composite = rule_body("composite", kind="composite")
    composite["conditions"] = [
        {"attr": "pm25", "levels": [{"level": "blue", "threshold": 75}]},
        {"attr": "no2", "levels": [{"level": "blue", "threshold": 80}]},
    ]
    evaluator.add(ev.compile_rule(1, RuleSpec.model_validate(composite), lambda t: t))
    evaluator.add(ev.compile_rule(2, RuleSpec.model_validate(rule_body()), lambda t: t))
    now = datetime.now(UTC)
    evaluator.change("", "s1", ["AirQualityObserved"], "pm25", 100.0, now, now)
    transitions, failures = evaluator.drain()
    assert [(f.rule_id, f.error) for f in failures] == [(1, "ConnectionError: database unavailable")]
    assert [(t.rule_id, t.to_rank) for t in transitions] == [(2, 1)]
    assert 1 not in evaluator.rules and 2 in evaluator.rules
    evaluator.change("", "s1", ["AirQualityObserved"], "pm25", 300.0, now, now)
    assert [(t.rule_id, t.to_rank) for t in evaluator.drain()[0]] == [(2, 4)]


def test_rules_edited_by_another_process_are_reloaded(
    api: TestClient, client: TestClient, ctx: AppContext
) -> None:
    """The tick notices a rule stored without this process's evaluator being told, and loads it."""
    from citybrain.apps.warning import schemas, services

    sid = station(ctx, "other-01")
    runtime: Any = ctx.extensions.pop("warning.runtime")
    try:
        services.create_rule(ctx, SYSTEM, schemas.RuleSpec.model_validate(rule_body()))
    finally:
        ctx.extensions["warning.runtime"] = runtime
    assert client.portal is not None
    client.portal.call(runtime.tick)
    observe(ctx, sid, T0, pm25=90.0)
    settle(ctx)
    assert len(warnings_of(api)) == 1
