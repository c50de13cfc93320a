"""Warnings raised from real context writes: levels, duration, hysteresis, dedupe, ack, lift, events."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient

from citybrain.apps.warning.events import WarningChanged, WarningLifted, WarningRaised
from citybrain.core.context import AppContext
from tests.apps.warning.conftest import T0, observe, rule_body, settle, station, warnings_of


def create_rule(api: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    """Create a rule through the API."""
    response = api.post("/api/warning/rules", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def test_threshold_raises_upgrades_downgrades_and_lifts(api: TestClient, ctx: AppContext) -> None:
    """A value crossing the levels moves one warning up and down, then lifts it; the timeline has it all."""
    sid = station(ctx, "fc-01")
    create_rule(api, rule_body())
    observe(ctx, sid, T0, pm25=80.0)
    settle(ctx)
    (raised,) = warnings_of(api, status="active")
    assert (raised["level"], raised["entity_id"], raised["district"]) == ("blue", sid, "510703")
    observe(ctx, sid, T0 + timedelta(minutes=1), pm25=160.0)
    observe(ctx, sid, T0 + timedelta(minutes=2), pm25=120.0)
    settle(ctx)
    (current,) = warnings_of(api, status="active")
    assert current["id"] == raised["id"] and current["level"] == "yellow"
    observe(ctx, sid, T0 + timedelta(minutes=3), pm25=20.0)
    settle(ctx)
    assert warnings_of(api, status="active") == []
    detail = api.get(f"/api/warning/warnings/{raised['id']}").json()
    steps = [(s["kind"], s["from_level"], s["to_level"]) for s in detail["timeline"]]
    assert steps == [
        ("raised", None, "blue"),
        ("upgraded", "blue", "orange"),
        ("downgraded", "orange", "yellow"),
        ("lifted", "yellow", None),
    ]
    assert detail["status"] == "lifted" and detail["lifted_by"] == "rule"
    assert detail["timeline"][1]["values"] == {"pm25": 160.0}


def test_duration_must_hold(api: TestClient, ctx: AppContext) -> None:
    """'pm25 > 115 for 2 h': nothing before two hours of exceedance, and a dip restarts the clock."""
    sid = station(ctx, "fc-02")
    body = rule_body("pm25-2h")
    body["conditions"][0]["levels"] = [{"level": "yellow", "threshold": 115}]
    body["conditions"][0]["for_seconds"] = 7200
    create_rule(api, body)
    observe(ctx, sid, T0, pm25=130.0)
    observe(ctx, sid, T0 + timedelta(hours=1), pm25=130.0)
    observe(ctx, sid, T0 + timedelta(hours=1, minutes=30), pm25=50.0)  # a dip
    observe(ctx, sid, T0 + timedelta(hours=2), pm25=130.0)
    observe(ctx, sid, T0 + timedelta(hours=3, minutes=30), pm25=130.0)
    settle(ctx)
    assert warnings_of(api) == []
    observe(ctx, sid, T0 + timedelta(hours=4), pm25=131.0)
    settle(ctx)
    (warning,) = warnings_of(api)
    assert warning["level"] == "yellow"
    assert warning["raised_at"].startswith((T0 + timedelta(hours=4)).isoformat()[:16])


def test_hysteresis_does_not_flap(api: TestClient, ctx: AppContext) -> None:
    """A value hovering around a threshold raises once; it is lifted only past the margin, after the hold."""
    sid = station(ctx, "fc-03")
    body = rule_body("pm25-hover", hysteresis={"margin": 5, "hold_seconds": 600})
    create_rule(api, body)
    at = T0
    for value in (76, 74, 77, 73, 76, 72, 78, 74):  # around 75, never below 70
        observe(ctx, sid, at, pm25=float(value))
        at += timedelta(minutes=1)
    settle(ctx)
    (warning,) = warnings_of(api)
    assert warning["status"] == "active"
    detail = api.get(f"/api/warning/warnings/{warning['id']}").json()
    assert [s["kind"] for s in detail["timeline"]] == ["raised"]
    observe(ctx, sid, at, pm25=60.0)  # below the margin: the hold starts
    observe(ctx, sid, at + timedelta(minutes=5), pm25=60.0)
    settle(ctx)
    assert warnings_of(api, status="active")
    observe(ctx, sid, at + timedelta(minutes=11), pm25=60.0)  # held for 11 minutes: lifted
    settle(ctx)
    assert warnings_of(api, status="active") == []
    assert len(warnings_of(api)) == 1


def test_one_active_warning_per_rule_and_scope(api: TestClient, ctx: AppContext) -> None:
    """Two stations give two warnings; repeated exceedance keeps one each; a district rule gives one."""
    a = station(ctx, "fc-04")
    b = station(ctx, "yx-01", where=(104.772, 31.482))
    create_rule(api, rule_body())
    district_rule = rule_body("pm25-fucheng", scope={"kind": "district", "district": "510703"})
    create_rule(api, district_rule)
    for minute in range(3):
        observe(ctx, a, T0 + timedelta(minutes=minute), pm25=90.0)
        observe(ctx, b, T0 + timedelta(minutes=minute), pm25=200.0)
    settle(ctx)
    per_station = warnings_of(api, rule="pm25-high")
    assert sorted((w["entity_id"], w["level"]) for w in per_station) == [(a, "blue"), (b, "orange")]
    (district,) = warnings_of(api, rule="pm25-fucheng")
    assert (district["scope_key"], district["district"], district["level"]) == ("510703", "510703", "blue")
    assert [w["entity_id"] for w in warnings_of(api, district="510704")] == [b]
    assert [w["entity_id"] for w in warnings_of(api, level="orange")] == [b]


def test_acknowledge_and_operator_lift(api: TestClient, ctx: AppContext) -> None:
    """An operator acknowledges, then lifts; the rule stays quiet until the value clears, then can raise again."""
    sid = station(ctx, "fc-05")
    create_rule(api, rule_body())
    observe(ctx, sid, T0, pm25=130.0)
    settle(ctx)
    (warning,) = warnings_of(api)
    url = f"/api/warning/warnings/{warning['id']}"
    acked = api.post(f"{url}/acknowledge", json={"note": "已通知环保局"})
    assert acked.status_code == 200, acked.text
    assert acked.json()["acknowledged_by"].startswith("user:")
    assert api.post(f"{url}/acknowledge", json={}).status_code == 409
    lifted = api.post(f"{url}/lift", json={"note": "现场核实"})
    assert lifted.status_code == 200 and lifted.json()["status"] == "lifted"
    assert [s["kind"] for s in lifted.json()["timeline"]] == ["raised", "acknowledged", "lifted"]
    assert api.post(f"{url}/lift", json={}).status_code == 409
    observe(ctx, sid, T0 + timedelta(minutes=1), pm25=140.0)  # still high: no new warning
    settle(ctx)
    assert len(warnings_of(api)) == 1
    observe(ctx, sid, T0 + timedelta(minutes=2), pm25=10.0)  # clears
    observe(ctx, sid, T0 + timedelta(minutes=3), pm25=90.0)  # high again: a new warning
    settle(ctx)
    active = warnings_of(api, status="active")
    assert len(active) == 1 and active[0]["id"] != warning["id"] and active[0]["level"] == "blue"


def test_bus_events_are_published(api: TestClient, client: TestClient, ctx: AppContext) -> None:
    """Raised, changed and lifted go out on the bus through the outbox."""
    seen: list[Any] = []

    async def keep(event: Any) -> None:
        seen.append(event)

    assert client.portal is not None
    for cls, name in ((WarningRaised, "raised"), (WarningChanged, "changed"), (WarningLifted, "lifted")):
        client.portal.call(lambda c=cls, n=name: ctx.bus.subscribe(c, keep, durable=f"test-warning-{n}"))
    sid = station(ctx, "fc-06")
    create_rule(api, rule_body())
    observe(ctx, sid, T0, pm25=80.0)
    observe(ctx, sid, T0 + timedelta(minutes=1), pm25=300.0)
    observe(ctx, sid, T0 + timedelta(minutes=2), pm25=10.0)
    settle(ctx)
    settle(ctx)
    kinds = [(type(e).__name__, getattr(e, "level", None)) for e in seen]
    assert kinds == [("WarningRaised", "blue"), ("WarningChanged", "red"), ("WarningLifted", None)]
    assert seen[0].entity_id == sid and seen[0].district == "510703"
