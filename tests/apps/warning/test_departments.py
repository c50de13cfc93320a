"""Warnings belong to a department: readers see their departments' warnings, the operations centre every one.

Also the public CAP feed (public rules' warnings only, for anyone) and in-app notifications following the
same rule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from citybrain.apps.identity import schemas as ids
from citybrain.apps.identity import services as identity
from citybrain.apps.warning import demo, services
from citybrain.apps.warning.models import Delivery, IssuedWarning, Rule, Subscription
from citybrain.apps.warning.schemas import RuleSpec
from citybrain.core.context import AppContext
from citybrain.core.permissions import SYSTEM, Actor
from tests.apps.warning.conftest import FULESHAN, T0, observe, rule_body, settle, station, warnings_of
from tests.conftest import Seeded, login

PASSWORD = "a-long-password-123"
OFFICER = ["warning.warning.read", "warning.warning.acknowledge", "warning.warning.lift"]


def make_user(
    ctx: AppContext, seeded: Seeded, username: str, department: int, permissions: list[str] | None = None
) -> int:
    """A user of a department holding a role with these permissions in that department only."""
    if permissions is None:
        role_id = demo.ensure_duty_role(ctx)
    else:
        role_id = identity.create_role(
            ctx, SYSTEM, ids.RoleCreate(code=f"r_{username}", name_zh=username, permissions=permissions)
        ).id
    user = identity.create_user(
        ctx,
        SYSTEM,
        ids.UserCreate(username=username, display_name=username, department_id=department, password=PASSWORD),
    )
    identity.assign_role(
        ctx, SYSTEM, user.id, ids.AssignmentCreate(role_id=role_id, department_id=department)
    )
    return user.id


@pytest.fixture
def other(app: FastAPI) -> Iterator[Callable[[str], TestClient]]:
    """Clients of the same running app signed in as other users."""
    made: list[TestClient] = []

    def make(username: str) -> TestClient:
        found = TestClient(app, base_url="http://testserver")
        made.append(found)
        login(found, username, PASSWORD)
        return found

    yield make
    for found in made:
        found.close()


def two_warnings(api: TestClient, ctx: AppContext) -> tuple[dict[str, Any], dict[str, Any]]:
    """A rule of no department (created by the system) and two stations: warnings in 涪城区 and 游仙区."""
    fc, yx = station(ctx, "fc-dept"), station(ctx, "yx-dept", where=FULESHAN)
    services.create_rule(ctx, SYSTEM, RuleSpec.model_validate(rule_body()))
    observe(ctx, fc, T0, pm25=160.0)
    observe(ctx, yx, T0, pm25=90.0)
    settle(ctx)
    found = {w["district"]: w for w in warnings_of(api)}
    return found["510703"], found["510704"]


def test_a_warning_belongs_to_its_rules_department_else_its_districts(
    api: TestClient, ctx: AppContext, seeded: Seeded
) -> None:
    """An operator's rule is their department's; a rule of none leaves it to the district's government."""
    fucheng, youxian = two_warnings(api, ctx)
    assert (fucheng["department_id"], youxian["department_id"]) == (seeded.district, seeded.other_district)
    station(ctx, "fc-owned")
    created = api.post("/api/warning/rules", json=rule_body("no2-high", conditions=[no2_condition()]))
    assert created.status_code == 201, created.text
    assert created.json()["department_id"] == seeded.city_dept  # the admin's department
    named = api.post(
        "/api/warning/rules",
        json=rule_body("no2-named", conditions=[no2_condition()], department="510704"),
    )
    assert named.status_code == 201 and named.json()["department_id"] == seeded.other_district
    observe(ctx, "urn:ngsi-ld:AirQualityObserved:fc-owned", T0, no2=300.0)
    settle(ctx)
    owners = {w["rule_code"]: w["department_id"] for w in warnings_of(api, status="active")}
    assert owners["no2-high"] == seeded.city_dept and owners["no2-named"] == seeded.other_district


def no2_condition() -> dict[str, Any]:
    """no2 above 200: yellow."""
    return {"attr": "no2", "op": ">", "levels": [{"level": "yellow", "threshold": 200}]}


def test_an_unknown_department_is_refused_and_nothing_is_written(api: TestClient, ctx: AppContext) -> None:
    station(ctx, "fc-bad")
    for department in ("nowhere", "x"):
        response = api.post("/api/warning/rules", json=rule_body(department=department))
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["errors"][0]["loc"] == ["body", "department"]
    with ctx.read() as session:
        assert session.scalar(select(Rule.id).where(Rule.code == "pm25-high")) is None
    created = api.post("/api/warning/rules", json=rule_body()).json()
    bad = api.patch(f"/api/warning/rules/{created['id']}", json={"department": "nowhere"})
    assert bad.status_code == 422
    assert api.get(f"/api/warning/rules/{created['id']}").json()["version"] == 1


def test_readers_see_their_departments_warnings_and_the_centre_every_one(
    api: TestClient, ctx: AppContext, seeded: Seeded, other: Callable[[str], TestClient]
) -> None:
    """List, counts, detail, CAP, acknowledge and lift honour the department; read_all widens reading only."""
    fucheng, youxian = two_warnings(api, ctx)
    make_user(ctx, seeded, "fc_officer", seeded.district, OFFICER)
    make_user(ctx, seeded, "yx_officer", seeded.other_district, OFFICER)
    make_user(ctx, seeded, "duty", seeded.city_dept)  # the operations centre's duty officer (read_all)
    fc, yx, duty = other("fc_officer"), other("yx_officer"), other("duty")
    assert [w["id"] for w in warnings_of(fc)] == [fucheng["id"]]
    assert [w["id"] for w in warnings_of(yx)] == [youxian["id"]]
    assert {w["id"] for w in warnings_of(duty)} == {fucheng["id"], youxian["id"]}
    page = fc.get("/warning/warnings")
    assert page.status_code == 200 and "fc-dept" in page.text and "yx-dept" not in page.text
    for path in ("", ".cap", "/trigger"):
        assert yx.get(f"/api/warning/warnings/{fucheng['id']}{path}").status_code == 404
        assert fc.get(f"/api/warning/warnings/{fucheng['id']}{path}").status_code == 200
        assert duty.get(f"/api/warning/warnings/{fucheng['id']}{path}").status_code == 200
    assert yx.get(f"/warning/warnings/{fucheng['id']}").status_code == 404
    feed = fc.get("/api/warning/warnings/feed.atom").text
    assert f"{fucheng['id']}.cap" in feed and f"{youxian['id']}.cap" not in feed
    for action in ("acknowledge", "lift"):
        assert yx.post(f"/api/warning/warnings/{fucheng['id']}/{action}", json={}).status_code == 404
        refused = duty.post(f"/api/warning/warnings/{fucheng['id']}/{action}", json={})
        assert refused.status_code == 403 and refused.headers["content-type"].startswith(
            "application/problem"
        )
    with ctx.read() as session:
        row = session.get(IssuedWarning, fucheng["id"])
        assert row is not None and (row.status, row.acknowledged_at) == ("active", None)
    acked = fc.post(f"/api/warning/warnings/{fucheng['id']}/acknowledge", json={"note": "收到"})
    assert acked.status_code == 200 and acked.json()["acknowledged_by"] is not None
    lifted = fc.post(f"/api/warning/warnings/{fucheng['id']}/lift", json={})
    assert lifted.status_code == 200 and lifted.json()["status"] == "lifted"
    nobody = TestClient(api.app, base_url="http://testserver")
    assert nobody.get("/api/warning/warnings").status_code == 401
    assert nobody.get("/api/warning/warnings/feed.atom").status_code == 401


def test_counts_and_services_follow_the_scope(api: TestClient, ctx: AppContext, seeded: Seeded) -> None:
    _fucheng, youxian = two_warnings(api, ctx)
    reader = Actor(
        kind="user", id=999, department_id=seeded.district,
        grants={"warning.warning.read": frozenset({seeded.district})},
    )  # fmt: skip
    city = Actor(kind="user", id=998, grants={"warning.warning.read_all": frozenset({seeded.city_dept})})
    assert (
        services.active_counts(ctx, reader)["orange"] == 1
        and services.active_counts(ctx, reader)["blue"] == 0
    )
    assert sum(services.active_counts(ctx, city).values()) == 2
    assert services.list_warnings(ctx, reader).total == 1
    assert services.get_warning(ctx, city, youxian["id"]).id == youxian["id"]
    outsider = Actor(kind="user", id=997, grants={"warning.warning.read": frozenset({seeded.city_dept})})
    assert services.list_warnings(ctx, outsider).total == 0  # a department with no warnings sees none


def test_the_public_feed_carries_public_rules_only(api: TestClient, ctx: AppContext) -> None:
    """Anyone reads the public feed: warnings of rules marked public (or named in public_rules), nothing else."""
    sid = station(ctx, "fc-public")
    public = api.post("/api/warning/rules", json=rule_body("pm25-public", public=True)).json()
    api.post("/api/warning/rules", json=rule_body("pm25-internal"))
    observe(ctx, sid, T0, pm25=160.0)
    settle(ctx)
    found = {w["rule_code"]: w["id"] for w in warnings_of(api)}
    anyone = TestClient(api.app, base_url="http://testserver")
    feed = anyone.get("/api/warning/public/feed.atom")
    assert feed.status_code == 200 and feed.headers["content-type"].startswith("application/atom+xml")
    assert f"public/{found['pm25-public']}.cap" in feed.text
    assert f"{found['pm25-internal']}.cap" not in feed.text
    cap = anyone.get(f"/api/warning/public/{found['pm25-public']}.cap")
    assert cap.status_code == 200 and "<alert" in cap.text
    hidden = anyone.get(f"/api/warning/public/{found['pm25-internal']}.cap")
    assert hidden.status_code == 404 and hidden.headers["content-type"].startswith("application/problem+json")
    assert anyone.get("/api/warning/public/999999.cap").status_code == 404
    assert anyone.get("/api/warning/public/0.cap").status_code == 422
    assert public["definition"]["public"] is True


def test_inapp_subscribers_hear_only_of_warnings_they_may_read(
    api: TestClient, ctx: AppContext, seeded: Seeded, other: Callable[[str], TestClient]
) -> None:
    make_user(ctx, seeded, "fc_reader", seeded.district, ["warning.warning.read"])
    make_user(ctx, seeded, "yx_reader", seeded.other_district, ["warning.warning.read"])
    subs = {}
    for name in ("fc_reader", "yx_reader"):
        created = other(name).post("/api/warning/subscriptions", json={"channel": "inapp"})
        assert created.status_code == 201, created.text
        subs[name] = created.json()["id"]
    fucheng, _youxian = two_warnings(api, ctx)
    settle(ctx)

    def queued(name: str) -> set[int]:
        with ctx.read() as session:
            rows = session.scalars(select(Delivery.warning_id).where(Delivery.subscription_id == subs[name]))
            return set(rows)

    assert fucheng["id"] in queued("fc_reader")
    assert fucheng["id"] not in queued("yx_reader")
    with ctx.read() as session:
        assert session.scalar(select(func.count()).select_from(Subscription)) == 2


def test_the_duty_role_is_created_once(ctx: AppContext) -> None:
    first = demo.ensure_duty_role(ctx)
    assert demo.ensure_duty_role(ctx) == first
    (role,) = [r for r in identity.list_roles(ctx, SYSTEM) if r.code == "warning_duty_officer"]
    assert "warning.warning.read_all" in role.permissions
