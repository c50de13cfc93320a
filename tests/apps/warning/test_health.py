"""Device health: anomaly findings become device-health warnings (设备健康) and data-quality flags."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from citybrain.apps.warning import evaluator as ev
from citybrain.apps.warning import health, services
from citybrain.apps.warning.schemas import HealthWatch, RuleSpec
from citybrain.core.context import AppContext
from citybrain.core.permissions import SYSTEM
from tests.apps.warning.conftest import CITY_HALL, FULESHAN, T0, observe, settle, station, warnings_of

VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"
TYPE_IRI = VOCAB + "AirQualityObserved"
PM25 = VOCAB + "pm25"
STATION_RULE = "health.air-quality-station"
START = datetime(2026, 3, 2, tzinfo=UTC)
STEP = timedelta(minutes=5)


def expand(term: str) -> str:
    """Expand a test term with the default vocabulary."""
    return term if ":" in term else VOCAB + term


def compact(iri: str) -> str:
    """The short name of a test IRI."""
    return iri.removeprefix(VOCAB)


def monitor(**health_fields: Any) -> health.Monitor:
    """A monitor running one health rule (id 7) on the pm25 of air-quality stations."""
    spec = HealthWatch(
        entity_type="AirQualityObserved", attrs=["pm25"], min_change={"pm25": 2}, **health_fields
    ).rule()
    found = health.Monitor(ev.Evaluator())
    found.set_watches([(7, spec)], expand, compact)
    return found


def varying(i: int) -> float:
    """A series that changes on every reading, within 4 µg/m³."""
    return 30.0 + (i % 5)


def feed(mon: health.Monitor, entity: str, values: list[float], first: int = 0) -> None:
    """Feed readings of an entity's pm25, one every five minutes."""
    for i, value in enumerate(values, start=first):
        mon.observe("", entity, [TYPE_IRI], PM25, value, START + i * STEP)


# --- the schema -----------------------------------------------------------------------------------


def test_a_watch_is_stored_as_a_health_rule_with_a_derived_code() -> None:
    spec = HealthWatch(entity_type="WaterObserved", attrs=["height"]).rule()
    assert (spec.code, spec.kind, spec.conditions, spec.category) == (
        "health.waterobserved",
        "health",
        [],
        "Infra",
    )
    assert spec.health is not None and spec.health.attrs == ["height"]
    assert spec.name_zh.startswith("设备健康")


@pytest.mark.parametrize(
    "body",
    [
        {"attrs": []},
        {"attrs": ["pm25", "pm25"]},
        {"attrs": ["pm25"], "min_change": {"no2": 1}},
        {"attrs": ["pm25"], "min_change": {"pm25": -1}},
        {"attrs": ["pm25"], "min_peers": 9, "max_peers": 4},
        {"attrs": ["pm25"], "peers_within_m": 0},
        {"attrs": ["pm25"], "quiet_hours": 0},
    ],
)
def test_bad_watches_are_refused(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        HealthWatch(entity_type="AirQualityObserved", **body)


def test_a_health_rule_needs_its_health_part_and_nothing_else() -> None:
    base = {"code": "h-1", "name_zh": "健康", "entity_type": "AirQualityObserved"}
    with pytest.raises(ValidationError, match="health rule has health"):
        RuleSpec.model_validate({**base, "kind": "health"})
    with pytest.raises(ValidationError, match="health belongs to health rules only"):
        RuleSpec.model_validate(
            {
                **base,
                "health": {"attrs": ["pm25"]},
                "conditions": [{"attr": "pm25", "levels": [{"level": "blue", "threshold": 1}]}],
            }
        )


# --- the monitor (pure) -----------------------------------------------------------------------------


def test_a_stuck_sensor_raises_once_upgrades_and_is_lifted_when_it_moves() -> None:
    mon = monitor(stuck_readings=12)
    entity = "urn:ngsi-ld:AirQualityObserved:s1"
    feed(mon, entity, [varying(i) for i in range(30)] + [32.0] * 40)
    transitions = mon.evaluator.drain()[0]
    assert [(t.from_rank, t.to_rank) for t in transitions] == [(0, 1), (1, 2)]  # blue, then yellow at 3 h
    raised = transitions[0]
    assert (raised.rule_id, raised.scope_key, raised.entity_id) == (7, f"{entity}|pm25|stuck", entity)
    assert raised.values["anomaly"] == "stuck" and raised.values["readings"] == 12
    assert raised.values["message"].startswith("pm25 of urn:ngsi-ld:AirQualityObserved:s1 has stayed at 32")
    feed(mon, entity, [33.0], first=70)
    (lifted,) = mon.evaluator.drain()[0]
    assert (lifted.from_rank, lifted.to_rank, lifted.values["anomaly"]) == (2, 0, "stuck")
    assert mon.evaluator.active == {}


def test_an_operator_lift_keeps_the_sensor_quiet_until_the_episode_ends() -> None:
    mon = monitor()
    entity = "urn:ngsi-ld:AirQualityObserved:s2"
    feed(mon, entity, [varying(i) for i in range(30)] + [32.0] * 13)
    assert len(mon.evaluator.drain()[0]) == 1
    mon.evaluator.forget_active(7, f"{entity}|pm25|stuck", suppress=True)
    feed(mon, entity, [32.0] * 30, first=43)  # it would be yellow now
    assert mon.evaluator.drain()[0] == []
    feed(mon, entity, [35.0], first=73)  # the episode ends: nothing to lift, the scope is free again
    assert mon.evaluator.drain()[0] == [] and mon.evaluator.active == {}


def test_a_spike_is_a_flag_not_a_warning() -> None:
    mon = monitor()
    entity = "urn:ngsi-ld:AirQualityObserved:s3"
    feed(mon, entity, [varying(i) for i in range(40)] + [95.0] + [varying(i) for i in range(41, 50)])
    assert mon.evaluator.drain()[0] == []
    (flag,) = mon.drain_flags()
    assert (flag.entity_id, flag.attr, flag.kind, flag.value) == (entity, "pm25", "spike", 95.0)
    assert flag.observed_at == START + 40 * STEP and flag.score > 6
    assert flag.message.format(**flag.params).startswith("pm25 of")


def test_peers_are_the_nearest_entities_within_the_radius() -> None:
    mon = monitor(peers_within_m=3000, max_peers=2, min_peers=2)
    assert mon.wanted == {("", TYPE_IRI)}
    mon.set_positions(
        "",
        TYPE_IRI,
        {
            "a": CITY_HALL,
            "b": (CITY_HALL[0] + 0.01, CITY_HALL[1]),  # about 950 m east
            "c": (CITY_HALL[0], CITY_HALL[1] + 0.02),  # about 2.2 km north
            "d": (CITY_HALL[0] - 0.005, CITY_HALL[1]),  # about 475 m west
            "far": FULESHAN,  # about 3.6 km away
        },
    )
    assert mon.wanted == set()
    watch = mon.watches[7]
    assert [k.entity for k in mon._peers_of(watch, "a", "pm25") or []] == ["d", "b"]
    assert mon._peers_of(watch, "new", "pm25") is None and mon.wanted == {("", TYPE_IRI)}


def test_a_drift_from_the_neighbours_raises_and_ends() -> None:
    mon = monitor(peers_within_m=5000, min_peers=3)
    ids = [f"st-{i}" for i in range(6)]
    mon.set_positions("", TYPE_IRI, {e: (CITY_HALL[0] + 0.001 * i, CITY_HALL[1]) for i, e in enumerate(ids)})
    for i in range(220):
        at = START + i * STEP
        for j, entity in enumerate(ids):
            value = 30.0 + 0.5 * j + (i % 3)
            if entity == "st-0" and 60 <= i < 110:
                value += 25  # the analyser of st-0 reads 25 µg/m³ too high for a while
            mon.observe("", entity, [TYPE_IRI], PM25, value, at)
    steps = [(t.entity_id, t.values["anomaly"], t.to_rank) for t in mon.evaluator.drain()[0]]
    drift = [s for s in steps if s[1] == "drift"]
    assert drift and drift[0][0] == "st-0" and drift[0][2] >= 1 and drift[-1][2] == 0
    assert {s[0] for s in steps} == {"st-0"}


def test_adopted_warnings_are_lifted_when_the_value_moves_or_after_the_quiet_period() -> None:
    mon = monitor(quiet_hours=1)
    stuck, drop = (
        "urn:ngsi-ld:AirQualityObserved:s5|pm25|stuck",
        "urn:ngsi-ld:AirQualityObserved:s6|pm25|drop",
    )
    for scope in (stuck, drop):
        mon.evaluator.set_active(7, scope, 2, scope.split("|")[0], None)
    mon.adopt(
        [
            (7, stuck, "urn:ngsi-ld:AirQualityObserved:s5", "pm25", "stuck", 41.0, START),
            (7, drop, "urn:ngsi-ld:AirQualityObserved:s6", "pm25", "drop", 3.0, START),
        ]
    )
    feed(mon, "urn:ngsi-ld:AirQualityObserved:s5", [41.0, 41.0])
    feed(mon, "urn:ngsi-ld:AirQualityObserved:s6", [3.0, 3.0])
    assert mon.evaluator.drain()[0] == []
    feed(mon, "urn:ngsi-ld:AirQualityObserved:s5", [42.0], first=2)
    feed(mon, "urn:ngsi-ld:AirQualityObserved:s6", [3.0], first=12)  # an hour after the last change
    lifted = {(t.scope_key, t.to_rank) for t in mon.evaluator.drain()[0]}
    assert lifted == {(stuck, 0), (drop, 0)} and mon.evaluator.active == {}


def test_scope_keys_fit_the_column() -> None:
    key = health.scope_key("urn:ngsi-ld:X:" + "y" * 300, "pm25", "stuck")
    assert len(key) <= health.SCOPE_MAX and key.endswith("|pm25|stuck")
    assert health.scope_key("a", "pm25", "drift") == "a|pm25|drift"


# --- the running platform ---------------------------------------------------------------------------


def test_the_declared_station_watch_is_stored_as_a_health_rule(ctx: AppContext) -> None:
    (rule,) = [r for r in services.list_rules(ctx, SYSTEM) if r.code == STATION_RULE]
    assert (rule.kind, rule.origin, rule.enabled) == ("health", "environment", True)
    runtime = ctx.extensions[services.RUNTIME]
    assert rule.id in runtime.health.watches
    assert ("", TYPE_IRI, PM25) in runtime.health.index


def test_a_stuck_station_raises_a_device_health_warning_and_moving_values_lift_it(
    api: TestClient, ctx: AppContext
) -> None:
    sid = station(ctx, "health-1", pm25=30.0)
    at = T0
    for i in range(30):
        observe(ctx, sid, at, pm25=varying(i))
        at += STEP
    for _ in range(13):
        observe(ctx, sid, at, pm25=32.0)
        at += STEP
    settle(ctx)
    (warning,) = warnings_of(api, kind="health")
    assert (warning["kind"], warning["rule_code"], warning["level"]) == ("health", STATION_RULE, "blue")
    assert warning["scope_key"] == f"{sid}|pm25|stuck" and warning["district"] == "510703"
    assert warning["values"]["anomaly"] == "stuck" and warning["values"]["value"] == 32.0
    assert warnings_of(api, kind="threshold") == []
    page = api.get(f"/warning/warnings/{warning['id']}")
    assert page.status_code == 200
    assert "设备健康" in page.text and "停留在 32" in page.text  # the finding, translated
    centre = api.get("/warning/warnings", params={"kind": "health"})
    assert centre.status_code == 200 and 'data-kind="health"' in centre.text and "数据质量" in centre.text
    observe(ctx, sid, at, pm25=34.0)
    settle(ctx)
    assert warnings_of(api, kind="health", status="active") == []
    detail = api.get(f"/api/warning/warnings/{warning['id']}").json()
    assert [(s["kind"], s["by"]) for s in detail["timeline"]] == [("raised", "rule"), ("lifted", "rule")]
    assert detail["timeline"][1]["values"]["anomaly"] == "stuck"


def test_a_spike_makes_a_data_quality_flag(api: TestClient, ctx: AppContext) -> None:
    sid = station(ctx, "health-2", pm25=30.0)
    at = T0
    readings = [varying(i) for i in range(26)] + [140.0] + [varying(i) for i in range(27, 30)]
    for value in readings:
        observe(ctx, sid, at, pm25=value)
        at += STEP
    settle(ctx)
    assert warnings_of(api, kind="health") == []
    response = api.get("/api/warning/quality-flags", params={"entity_id": sid, "attr": "pm25"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == 1
    (flag,) = body["items"]
    assert (flag["kind"], flag["attr"], flag["value"]) == ("spike", "pm25", 140.0)
    assert flag["observed_at"].startswith((T0 + 26 * STEP).isoformat()[:16])
    assert flag["message"].startswith(f"pm25 of {sid} spiked to 140")
    since = (T0 + 27 * STEP).isoformat()
    assert api.get("/api/warning/quality-flags", params={"since": since}).json()["total"] == 0
    assert api.get("/api/warning/quality-flags", params={"entity_id": "urn:x"}).json()["items"] == []
    centre = api.get("/warning/warnings")
    assert centre.status_code == 200 and f'data-flag="{flag["id"]}"' in centre.text


BAD_FLAG_QUERIES: list[dict[str, Any]] = [
    {"limit": 0},
    {"limit": 501},
    {"offset": -1},
    {"since": "yesterday"},
    {"since": "2026-01-01T08:00:00"},  # no UTC offset
    {"attr": "pm 25"},
    {"entity_id": "x" * 257},
]


def test_bad_flag_queries_are_problems(api: TestClient) -> None:
    for params in BAD_FLAG_QUERIES:
        response = api.get("/api/warning/quality-flags", params=params)
        assert response.status_code in (400, 422), (params, response.text)
        assert response.headers["content-type"].startswith("application/problem+json"), params


def test_flags_need_the_read_permission_and_a_bad_kind_is_refused(
    client: TestClient, api: TestClient
) -> None:
    assert api.get("/api/warning/warnings", params={"kind": "bogus"}).status_code == 422
    api.cookies.clear()
    api.headers.pop("X-CSRF-Token", None)
    response = client.get("/api/warning/quality-flags")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")


def test_old_flags_are_purged(ctx: AppContext) -> None:
    now = datetime.now(UTC)
    flags = [
        health.Flag("", "urn:a", "pm25", now - timedelta(days=age), "spike", 9.0, 90.0, 30.0, "m", {})
        for age in (1, 29, 31, 400)
    ]
    assert services.record_flags(ctx, flags) == 4
    assert services.purge_flags(ctx, now) == 2
    left = services.list_quality_flags(ctx, SYSTEM)
    assert left.total == 2 and {f.message for f in left.items} == {"m"}


def test_an_operator_creates_a_health_rule_through_the_api(api: TestClient, ctx: AppContext) -> None:
    station(ctx, "health-3")
    body = {
        "code": "health-no2",
        "name_zh": "二氧化氮监测健康",
        "kind": "health",
        "entity_type": "AirQualityObserved",
    }
    bad = api.post("/api/warning/rules", json=body | {"health": {"attrs": ["nothere"]}})
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == ["body", "health", "attrs", "0"]
    text = api.post("/api/warning/rules", json=body | {"health": {"attrs": ["quality"]}})
    assert text.status_code == 422  # quality holds strings
    created = api.post(
        "/api/warning/rules", json=body | {"health": {"attrs": ["no2"], "peers_within_m": None}}
    )
    assert created.status_code == 201, created.text
    runtime = ctx.extensions[services.RUNTIME]
    settle(ctx)
    assert created.json()["id"] in runtime.health.watches
    assert api.post(f"/api/warning/rules/{created.json()['id']}/disable").status_code == 200
    settle(ctx)
    assert created.json()["id"] not in runtime.health.watches


def drifting_monitor() -> tuple[health.Monitor, list[str], datetime]:
    """Six close stations; st-0 reads 25 µg/m³ too high from reading 60 on: a drift warning is raised."""
    mon = monitor(peers_within_m=5000, min_peers=3)
    ids = [f"st-{i}" for i in range(6)]
    mon.set_positions("", TYPE_IRI, {e: (CITY_HALL[0] + 0.001 * i, CITY_HALL[1]) for i, e in enumerate(ids)})
    at = START
    for i in range(100):
        at = START + i * STEP
        for j, entity in enumerate(ids):
            value = 30.0 + 0.5 * j + (i % 3) + (25 if entity == "st-0" and i >= 60 else 0)
            mon.observe("", entity, [TYPE_IRI], PM25, value, at, at)
    raised = [t for t in mon.evaluator.drain()[0] if t.values["anomaly"] == "drift"]
    assert raised and raised[-1].to_rank >= 1 and (7, "st-0|pm25|drift") in mon.evaluator.active
    return mon, ids, at


STALE = timedelta(hours=6)


def drifts(mon: health.Monitor) -> list[ev.Transition]:
    """The drift warnings' transitions collected so far (the other detectors' are dropped)."""
    return [t for t in mon.evaluator.drain()[0] if t.scope_key.endswith("|drift")]


def test_a_drift_whose_peers_went_silent_is_lifted_after_the_stale_period() -> None:
    mon, _ids, at = drifting_monitor()
    mon.tick(at, STALE)  # the drift is being compared: it stays
    for i in range(1, 100):  # only st-0 reports on: no comparison can be made
        later = at + i * STEP
        mon.observe("", "st-0", [TYPE_IRI], PM25, 56.0 + (i % 3), later, later)
        mon.tick(later, STALE)
        if later - at < STALE:
            assert drifts(mon) == [], later - at
    (lifted,) = drifts(mon)
    assert (lifted.scope_key, lifted.from_rank > 0, lifted.to_rank) == ("st-0|pm25|drift", True, 0)
    assert lifted.values["stale"] is True and lifted.values["attr"] == "pm25"
    assert (7, "st-0|pm25|drift") not in mon.evaluator.active


def test_a_drift_still_compared_stays_and_an_evicted_series_is_lifted() -> None:
    mon, ids, at = drifting_monitor()
    mon.tick(at, STALE)
    later = at
    for i in range(1, 80):  # every station reports: st-0 is still compared (and still drifting)
        later = at + i * STEP
        for j, entity in enumerate(ids):
            value = 30.0 + 0.5 * j + (i % 3) + (25 if entity == "st-0" else 0)
            mon.observe("", entity, [TYPE_IRI], PM25, value, later, later)
        mon.tick(later, STALE)
    assert not [t for t in drifts(mon) if t.to_rank == 0]
    mon.watches[7].detector.reset(("st-0", "pm25"))  # the detectors forget the series (their bound)
    mon.tick(later + STALE - STEP, STALE)
    assert drifts(mon) == []
    mon.tick(later + STALE, STALE)
    (lifted,) = drifts(mon)
    assert lifted.to_rank == 0 and lifted.values["stale"] is True


def test_an_adopted_drift_of_a_silent_station_is_lifted() -> None:
    mon = monitor(peers_within_m=5000)
    scope = "urn:ngsi-ld:AirQualityObserved:s9|pm25|drift"
    mon.evaluator.set_active(7, scope, 2, "urn:ngsi-ld:AirQualityObserved:s9", None)
    mon.adopt([(7, scope, "urn:ngsi-ld:AirQualityObserved:s9", "pm25", "drift", 60.0, START)])
    mon.tick(START, STALE)
    mon.tick(START + STALE - timedelta(seconds=1), STALE)
    assert mon.evaluator.drain()[0] == []
    mon.tick(START + STALE, STALE)
    (lifted,) = mon.evaluator.drain()[0]
    assert (lifted.scope_key, lifted.to_rank) == (scope, 0) and mon.evaluator.active == {}
    mon.evaluator.set_active(7, scope, 2, "urn:ngsi-ld:AirQualityObserved:s9", None)
    mon.evaluator.forget_active(7, scope, suppress=True)  # lifted by an operator: just forgotten
    mon.tick(START + 3 * STALE, STALE)
    mon.tick(START + 5 * STALE, STALE)
    assert mon.evaluator.drain()[0] == [] and mon.evaluator.active == {}
