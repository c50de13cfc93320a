"""The rules API: CRUD, versions, enable/disable, validation (422 naming the field), permissions, dry run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from citybrain.apps.warning.models import Rule
from citybrain.core.context import AppContext
from tests.apps.iot.conftest import user_token
from tests.apps.warning.conftest import observe, rule_body, settle, station, warnings_of
from tests.apps.warning.test_lifecycle import create_rule
from tests.conftest import Seeded


def problem(response: Any, status: int) -> dict[str, Any]:
    """Assert a problem+json answer with the status; return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    return body


def rule_count(ctx: AppContext) -> int:
    """Stored rules of operators (other apps may declare rules of their own)."""
    with ctx.read() as session:
        return session.query(Rule).filter(Rule.origin == "operator").count()


def test_crud_versions_enable_disable(api: TestClient, ctx: AppContext) -> None:
    """Create, read, list, edit (a new version), disable, enable, delete."""
    station(ctx, "crud-01")
    created = create_rule(api, rule_body())
    assert (created["version"], created["enabled"], created["origin"]) == (1, True, "operator")
    url = f"/api/warning/rules/{created['id']}"
    assert api.get(url).json()["code"] == "pm25-high"
    listed = api.get("/api/warning/rules").json()
    assert [r["code"] for r in listed if r["origin"] == "operator"] == ["pm25-high"]
    edited = api.patch(url, json={"name_zh": "细颗粒物超标", "hysteresis": {"margin": 2, "hold_seconds": 60}})
    assert edited.status_code == 200, edited.text
    assert edited.json()["version"] == 2 and edited.json()["definition"]["hysteresis"]["margin"] == 2
    versions = api.get(f"{url}/versions").json()
    assert [v["version"] for v in versions] == [2, 1]
    assert versions[1]["definition"]["name_zh"] == "PM2.5 超标"
    same = api.patch(url, json={"name_zh": "细颗粒物超标"})
    assert same.json()["version"] == 2  # nothing changed: no new version
    assert api.post(f"{url}/disable").json()["enabled"] is False
    assert api.post(f"{url}/enable").json()["enabled"] is True
    assert api.delete(url).status_code == 204
    problem(api.get(url), 404)


def test_disabled_rule_does_not_fire(api: TestClient, ctx: AppContext) -> None:
    """A disabled rule raises nothing; enabled again, it does."""
    sid = station(ctx, "dis-01")
    created = create_rule(api, rule_body())
    api.post(f"/api/warning/rules/{created['id']}/disable")
    now = datetime.now(UTC)
    observe(ctx, sid, now, pm25=200.0)
    settle(ctx)
    assert warnings_of(api) == []
    api.post(f"/api/warning/rules/{created['id']}/enable")
    observe(ctx, sid, now + timedelta(seconds=1), pm25=201.0)
    settle(ctx)
    assert len(warnings_of(api)) == 1


def test_rule_with_warnings_cannot_be_deleted(api: TestClient, ctx: AppContext) -> None:
    """Deleting a rule that raised warnings is a conflict; the rule stays."""
    sid = station(ctx, "del-01")
    created = create_rule(api, rule_body())
    observe(ctx, sid, datetime.now(UTC), pm25=200.0)
    settle(ctx)
    problem(api.delete(f"/api/warning/rules/{created['id']}"), 409)
    assert rule_count(ctx) == 1


BAD_RULES: list[tuple[str, dict[str, Any], str]] = [
    ("unknown type", {"entity_type": "NoSuchThing"}, "entity_type"),
    (
        "unknown attr",
        {"conditions": [{"attr": "pm99", "levels": [{"level": "blue", "threshold": 1}]}]},
        "conditions.0.attr",
    ),
    (
        "text attr",
        {"conditions": [{"attr": "quality", "levels": [{"level": "blue", "threshold": 1}]}]},
        "conditions.0.attr",
    ),
    (
        "wrong value type",
        {"conditions": [{"attr": "pm25", "levels": [{"level": "blue", "threshold": "high"}]}]},
        "threshold",
    ),
    (
        "negative duration",
        {"conditions": [{"attr": "pm25", "for_seconds": -5, "levels": [{"level": "blue", "threshold": 1}]}]},
        "for_seconds",
    ),
    (
        "too long duration",
        {
            "conditions": [
                {"attr": "pm25", "for_seconds": 10**9, "levels": [{"level": "blue", "threshold": 1}]}
            ]
        },
        "for_seconds",
    ),
    (
        "levels out of order",
        {
            "conditions": [
                {
                    "attr": "pm25",
                    "levels": [{"level": "blue", "threshold": 100}, {"level": "red", "threshold": 50}],
                }
            ]
        },
        "levels out of order",
    ),
    (
        "unknown level",
        {"conditions": [{"attr": "pm25", "levels": [{"level": "purple", "threshold": 1}]}]},
        "level",
    ),
    (
        "duplicate level",
        {
            "conditions": [
                {
                    "attr": "pm25",
                    "levels": [{"level": "blue", "threshold": 1}, {"level": "blue", "threshold": 2}],
                }
            ]
        },
        "appears twice",
    ),
    ("rate without period", {"kind": "rate"}, "period_seconds"),
    (
        "absence with zero minutes",
        {"kind": "absence", "conditions": [{"attr": "pm25", "levels": [{"level": "blue", "threshold": 0}]}]},
        "minutes",
    ),
    ("composite of one", {"kind": "composite"}, "at least two"),
    ("forecast without its forecast", {"kind": "forecast"}, "a forecast rule has a forecast"),
    ("bad code", {"code": "Bad Code!"}, "code"),
    ("unknown district", {"scope": {"kind": "district", "district": "110101"}}, "scope.district"),
    ("district without code", {"scope": {"kind": "district"}}, "district"),
    (
        "unknown entity",
        {"scope": {"kind": "entity", "entity_id": "urn:ngsi-ld:AirQualityObserved:none"}},
        "scope.entity_id",
    ),
    ("unknown field", {"colour": "red"}, "colour"),
]


@pytest.mark.parametrize(("case", "change", "named"), BAD_RULES, ids=[c[0] for c in BAD_RULES])
def test_bad_rules_are_refused(
    api: TestClient, ctx: AppContext, case: str, change: dict[str, Any], named: str
) -> None:
    """Each bad rule is a 422 problem naming the field, and nothing is stored."""
    station(ctx, "val-01")
    body = problem(api.post("/api/warning/rules", json=rule_body(**change)), 422)
    assert named in str(body), body
    assert rule_count(ctx) == 0


def test_bad_edits_and_unknown_ids(api: TestClient, ctx: AppContext) -> None:
    """Edits are validated like new rules; unknown ids are 404; duplicate codes 409; nothing changes."""
    station(ctx, "val-02")
    created = create_rule(api, rule_body())
    url = f"/api/warning/rules/{created['id']}"
    body = problem(api.patch(url, json={"entity_type": "NoSuchThing"}), 422)
    assert "entity_type" in str(body)
    problem(api.patch(url, json={"conditions": []}), 422)
    problem(api.patch(url, json={"version": 7}), 422)
    assert api.get(url).json()["version"] == 1
    problem(api.post("/api/warning/rules", json=rule_body()), 409)
    for method, path in (
        ("get", "/rules/999"),
        ("patch", "/rules/999"),
        ("post", "/rules/999/enable"),
        ("post", "/rules/999/dry-run"),
        ("get", "/rules/999/versions"),
        ("delete", "/rules/999"),
    ):
        kwargs = {"json": {}} if method == "patch" else {}
        problem(getattr(api, method)(f"/api/warning{path}", **kwargs), 404)
    problem(api.get("/api/warning/rules/0"), 422)
    problem(api.get("/api/warning/rules/abc"), 422)


def test_warning_endpoints_bad_input(api: TestClient) -> None:
    """Bad filters, unknown warnings, bad bodies."""
    problem(api.get("/api/warning/warnings", params={"level": "purple"}), 422)
    problem(api.get("/api/warning/warnings", params={"status": "open"}), 422)
    problem(api.get("/api/warning/warnings", params={"district": "涪城"}), 422)
    problem(api.get("/api/warning/warnings", params={"limit": 0}), 422)
    problem(api.get("/api/warning/warnings/999"), 404)
    problem(api.post("/api/warning/warnings/999/acknowledge", json={}), 404)
    problem(api.post("/api/warning/warnings/999/lift", json={}), 404)
    problem(api.post("/api/warning/warnings/1/lift", json={"note": "x" * 501}), 422)
    problem(api.post("/api/warning/warnings/1/acknowledge", json={"other": 1}), 422)


def test_permissions(client: TestClient, ctx: AppContext, seeded: Seeded) -> None:
    """Anonymous: 401; a reader may read but not write, acknowledge or lift."""
    problem(client.get("/api/warning/rules"), 401)
    problem(client.get("/api/warning/warnings"), 401)
    token = user_token(ctx, seeded, "warning_reader", ["warning.rule.read", "warning.warning.read"], None)
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/warning/rules", headers=headers).status_code == 200
    assert client.get("/api/warning/warnings", headers=headers).status_code == 200
    station(ctx, "perm-01")
    problem(client.post("/api/warning/rules", json=rule_body(), headers=headers), 403)
    problem(client.post("/api/warning/warnings/1/acknowledge", json={}, headers=headers), 403)
    problem(client.post("/api/warning/warnings/1/lift", json={}, headers=headers), 403)
    assert rule_count(ctx) == 0


def test_dry_run_replays_history(api: TestClient, ctx: AppContext) -> None:
    """The dry run counts how often the rule would have fired over the stored history, with the times."""
    sid = station(ctx, "dry-01")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    series = [30, 90, 95, 40, 30, 130, 20, 10]  # fires at 1 h (蓝) and at 5 h (黄), each lifted after
    for hour, value in enumerate(series):
        observe(ctx, sid, start + timedelta(hours=hour), pm25=float(value))
    observe(ctx, sid, datetime.now(UTC) - timedelta(days=9), pm25=500.0)  # older than 7 days: ignored
    created = create_rule(api, rule_body())
    settle(ctx)
    result = api.post(f"/api/warning/rules/{created['id']}/dry-run")
    assert result.status_code == 200, result.text
    body = result.json()
    assert body["fired"] == 2
    fired = [(datetime.fromisoformat(f["at"]), f["to_level"]) for f in body["firings"]]
    assert fired == [(start + timedelta(hours=1), "blue"), (start + timedelta(hours=5), "yellow")]
    assert body["entities"] == 1
