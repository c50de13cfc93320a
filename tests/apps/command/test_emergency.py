"""Emergency command: plan declarations, responses by hand and from warnings, levels, tasks, resources,
dispatch, the nearest resources over the real road graph, the command log, the API and the page."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from citybrain.apps.command import emergency, emergency_plans, services
from citybrain.apps.command import response_plans as rp
from citybrain.apps.command.models import CommandLogEntry, EmergencyResponse
from citybrain.apps.command.schemas import (
    DispatchCreate,
    LevelChange,
    NoteCreate,
    Point,
    ReleaseCreate,
    ResourceCreate,
    ResourceUpdate,
    ResponseCreate,
    ResponseEnd,
    TaskUpdate,
)
from citybrain.apps.warning.events import WarningChanged, WarningLifted, WarningRaised
from citybrain.core.context import AppContext
from citybrain.core.ledger import LedgerRecord
from citybrain.core.permissions import ALL, Actor, Scope
from citybrain.sdk import Conflict, Forbidden, NotFound, ValidationFailed, utcnow
from tests.apps.command.conftest import CITY_HALL, Org, person
from tests.apps.command.test_api import problem
from tests.apps.context.conftest import token_for
from tests.conftest import Seeded, login

# 三江大桥东桥头, the south end of 东津路: a node of the road graph.
INCIDENT = (104.764, 31.446)
PERMS = (emergency.READ, emergency.COMMAND, emergency.TASK, emergency.MANAGE)


@dataclasses.dataclass
class Crew:
    """The emergency posts of a test."""

    commander: Actor
    viewer: Actor
    sthj_staff: Actor  # 市生态环境局, may update its own department's tasks
    cgzf_manager: Actor  # 市城管执法局, manages its own department's resources


@pytest.fixture
def crew(org: Org, seeded: Seeded) -> Crew:
    """A city-wide commander, a read-only viewer and two department-scoped posts."""
    everything: dict[str, Scope] = dict.fromkeys(PERMS, ALL)
    return Crew(
        commander=person(31, seeded.city_dept, "指挥长", everything),
        viewer=person(32, seeded.city_dept, "值守员", {emergency.READ: ALL}),
        sthj_staff=person(
            33, org.sthj, "环保联络员", {emergency.READ: ALL, emergency.TASK: frozenset({org.sthj})}
        ),
        cgzf_manager=person(
            34, org.cgzf, "城管资源员", {emergency.READ: ALL, emergency.MANAGE: frozenset({org.cgzf})}
        ),
    )


def start(ctx: AppContext, actor: Actor, plan: str = "heavy_pollution", level: int = 3, **kw: Any) -> int:
    """Start a response by hand; its id."""
    body: dict[str, Any] = {"plan": plan, "level": level, "district": "510703"} | kw
    return emergency.activate(ctx, actor, ResponseCreate.model_validate(body)).id


def resource(ctx: AppContext, actor: Actor, name: str, at: tuple[float, float], **kw: Any) -> int:
    """Register a resource; its id."""
    body: dict[str, Any] = {"name": name, "kind": "team", "location": {"lon": at[0], "lat": at[1]}} | kw
    return emergency.create_resource(ctx, actor, ResourceCreate.model_validate(body)).id


def raised(
    warning_id: int, level: str, rule: str = "heavy-pollution", district: str | None = "510703"
) -> WarningRaised:
    """A warning raised for a district."""
    return WarningRaised(
        warning_id=warning_id, rule_code=rule, level=level, entity_id=f"urn:ngsi-ld:AirQualityForecast:{warning_id}",
        district=district, scope_key=f"k{warning_id}", at=utcnow(), values={"heavyPollutionLevel": 2},
    )  # fmt: skip


# --- declarations ---------------------------------------------------------------------------------


def test_the_declared_plans_are_checked(ctx: AppContext, org: Org) -> None:
    found = emergency.plans(ctx)
    assert set(found) == {"flood", "heavy_pollution", "road_traffic", "gas_leak"}
    flood = found["flood"]
    # each level also activates everything of the levels below it; I is the largest
    assert set(flood.tasks(4)) < set(flood.tasks(3)) < set(flood.tasks(2)) < set(flood.tasks(1))
    assert flood.departments(4) == ["slj", "qxj", "cgzf"] and "510700" in flood.departments(1)
    assert "heavy-pollution" in found["heavy_pollution"].rules
    assert rp.LEVEL_OF_WARNING == {"red": 1, "orange": 2, "yellow": 3, "blue": 4}
    categories = list(services.categories(ctx))
    good = emergency_plans.GAS_LEAK
    assert rp.check("command", good, categories) is good
    broken = {
        "code": "Bad Code",
        "name_en": "",
        "rules": ("NOT A RULE",),
        "categories": ("event.nothing",),
        "levels": {1: good.levels[1]},
    }
    for field, value in broken.items():
        with pytest.raises(rp.PlanError, match=r"gas_leak|Bad Code"):
            rp.check("command", dataclasses.replace(good, **{field: value}), categories)
    twice = {**good.levels, 4: (good.levels[4][0], good.levels[4][0])}
    with pytest.raises(rp.PlanError, match="twice"):
        rp.check("command", dataclasses.replace(good, levels=twice), categories)
    nobody = {**good.levels, 4: (rp.PlanTask("Not A Dept", "任务", "Task"),)}
    with pytest.raises(rp.PlanError, match="department code"):
        rp.check("command", dataclasses.replace(good, levels=nobody), categories)
    with pytest.raises(rp.PlanError, match="not a Plan"):
        rp.check("command", object(), categories)
    assert (
        rp.department_for(rp.DISTRICT, "510704") == "510704"
        and rp.department_for(rp.DISTRICT, None) == "510700"
    )


# --- activation, levels, tasks, end ----------------------------------------------------------------


def test_activation_by_hand_creates_the_task_list(ctx: AppContext, org: Org, crew: Crew) -> None:
    detail = emergency.get_response(ctx, crew.viewer, start(ctx, crew.commander, note="会商决定"))
    plan = emergency.plans(ctx)["heavy_pollution"]
    assert (detail.state, detail.level, detail.level_roman, detail.color) == ("active", 3, "III", "#fbc02d")
    assert [(t.department, t.name_zh) for t in detail.tasks] == [
        (t.department, t.name_zh) for t in plan.tasks(3)
    ]
    assert all(t.status == "todo" for t in detail.tasks)
    sthj = [t for t in detail.tasks if t.department == "sthj"]
    assert sthj and sthj[0].department_id == org.sthj  # resolved against the org tree
    assert detail.title == "涪城区重污染天气应急预案响应" and detail.district == "510703"
    assert [(e.action, e.level, e.by) for e in detail.log] == [("activate", 3, "user:31")]
    assert "会商决定" in detail.log[0].note
    listed = emergency.list_responses(ctx, crew.viewer)
    assert listed.total == 1 and listed.items[0].tasks_total == len(plan.tasks(3))


def test_one_active_response_per_plan_and_district(ctx: AppContext, org: Org, crew: Crew) -> None:
    first = start(ctx, crew.commander)
    with pytest.raises(Conflict):
        start(ctx, crew.commander, level=1)
    other = start(ctx, crew.commander, district="510704")  # another district is another response
    city = start(ctx, crew.commander, district=None)  # and so is the whole city
    assert len({first, other, city}) == 3
    emergency.end(ctx, crew.commander, first, ResponseEnd(note="解除"))
    again = start(ctx, crew.commander)  # once ended, the plan can start again there
    assert again not in (first, other, city)
    with ctx.read() as session:
        assert session.scalar(select(func.count()).select_from(EmergencyResponse)) == 4


def test_raise_lower_and_end(ctx: AppContext, org: Org, crew: Crew) -> None:
    response_id = start(ctx, crew.commander, level=4)
    plan = emergency.plans(ctx)["heavy_pollution"]
    raised_to = emergency.change_level(
        ctx, crew.commander, response_id, LevelChange(level=2, note="污染加重")
    )
    assert raised_to.level == 2 and len(raised_to.tasks) == len(plan.tasks(2))
    assert {t.level for t in raised_to.tasks} == {4, 2}  # the tasks say which level added them
    with pytest.raises(Conflict):
        emergency.change_level(ctx, crew.commander, response_id, LevelChange(level=2))
    lowered = emergency.change_level(ctx, crew.commander, response_id, LevelChange(level=3))
    assert lowered.level == 3 and len(lowered.tasks) == len(plan.tasks(2))  # nothing is taken away
    ended = emergency.end(ctx, crew.commander, response_id, ResponseEnd())
    assert ended.state == "ended" and ended.ended_at is not None
    assert [e.action for e in ended.log] == ["activate", "raise", "lower", "end"]
    assert "污染加重" in ended.log[1].note
    for call in (
        lambda: emergency.end(ctx, crew.commander, response_id, ResponseEnd()),
        lambda: emergency.change_level(ctx, crew.commander, response_id, LevelChange(level=1)),
        lambda: emergency.update_task(ctx, crew.commander, ended.tasks[0].id, TaskUpdate(status="done")),
    ):
        with pytest.raises(Conflict):
            call()
    assert emergency.list_responses(ctx, crew.viewer).total == 0
    assert emergency.list_responses(ctx, crew.viewer, state="ended").total == 1


def test_tasks_move_by_their_department_or_the_commander(ctx: AppContext, org: Org, crew: Crew) -> None:
    detail = emergency.get_response(ctx, crew.viewer, start(ctx, crew.commander, level=4))
    mine = next(t for t in detail.tasks if t.department == "sthj")
    theirs = next(t for t in detail.tasks if t.department == "cgzf")
    moved = emergency.update_task(
        ctx, crew.sthj_staff, mine.id, TaskUpdate(status="doing", note="已加密监测")
    )
    assert (moved.status, moved.updated_by, moved.updated_by_name) == ("doing", "user:33", "环保联络员")
    with pytest.raises(Forbidden):
        emergency.update_task(ctx, crew.sthj_staff, theirs.id, TaskUpdate(status="doing"))
    with pytest.raises(Forbidden):
        emergency.update_task(ctx, crew.viewer, mine.id, TaskUpdate(status="done"))
    with pytest.raises(Conflict):
        emergency.update_task(ctx, crew.sthj_staff, mine.id, TaskUpdate(status="doing"))
    with pytest.raises(NotFound):
        emergency.update_task(ctx, crew.commander, 424242, TaskUpdate(status="done"))
    assert emergency.update_task(ctx, crew.commander, theirs.id, TaskUpdate(status="done")).status == "done"
    after = emergency.get_response(ctx, crew.viewer, detail.id)
    assert after.tasks_done == 1
    notes = [e.note for e in after.log if e.action == "task"]
    assert notes[0].endswith("待办 → 进行中（已加密监测）") and notes[1].endswith("待办 → 完成")


def test_refusals_change_nothing(ctx: AppContext, org: Org, crew: Crew) -> None:
    with pytest.raises(Forbidden):
        start(ctx, crew.viewer)
    with pytest.raises(ValidationFailed):
        start(ctx, crew.commander, plan="no_such_plan")
    with pytest.raises(ValidationFailed):
        start(ctx, crew.commander, district="510799")
    with pytest.raises(ValidationFailed):
        start(ctx, crew.commander, event_id=424242)
    with pytest.raises(NotFound):
        emergency.get_response(ctx, crew.viewer, 424242)
    with pytest.raises(NotFound):
        emergency.get_plan(ctx, crew.viewer, "nothing")
    assert emergency.list_responses(ctx, crew.viewer, state=None).total == 0


# --- warnings -------------------------------------------------------------------------------------


def test_a_warning_starts_joins_raises_and_suggests_ending(ctx: AppContext, org: Org, crew: Crew) -> None:
    [first] = emergency.from_warning(ctx, raised(41, "yellow"))
    assert emergency.from_warning(ctx, raised(41, "yellow")) == [first]  # delivered twice, one response
    detail = emergency.get_response(ctx, crew.viewer, first)
    assert (detail.source, detail.level, detail.warning_id, detail.rule_code) == (
        "warning",
        3,
        41,
        "heavy-pollution",
    )
    # another warning for the same plan and district joins it; a more severe one raises it
    assert emergency.from_warning(ctx, raised(42, "blue")) == [first]
    assert emergency.get_response(ctx, crew.viewer, first).level == 3
    assert emergency.from_warning(ctx, raised(43, "orange")) == [first]
    assert emergency.get_response(ctx, crew.viewer, first).level == 2
    # an upgrade of a linked warning raises; a downgrade is only logged
    up = WarningChanged(
        warning_id=42, rule_code="heavy-pollution", change="upgraded", level="red", previous_level="blue",
        district="510703", at=utcnow(), by="rule", values={},
    )  # fmt: skip
    assert emergency.on_warning_changed(ctx, up) == [first]
    assert emergency.get_response(ctx, crew.viewer, first).level == 1
    down = up.model_copy(update={"change": "downgraded", "level": "yellow", "previous_level": "red"})
    assert emergency.on_warning_changed(ctx, down) == [first]
    assert emergency.get_response(ctx, crew.viewer, first).level == 1
    lifted = WarningLifted(
        warning_id=41,
        rule_code="heavy-pollution",
        previous_level="yellow",
        district="510703",
        at=utcnow(),
        by="rule",
    )
    assert emergency.on_warning_lifted(ctx, lifted) == [first]
    assert emergency.on_warning_lifted(ctx, lifted) == []  # said once
    after = emergency.get_response(ctx, crew.viewer, first)
    assert after.end_suggested and after.state == "active"  # never ended by itself
    assert [e.action for e in after.log] == [
        "activate",
        "warning",
        "raise",
        "raise",
        "warning",
        "end_suggested",
    ]
    assert emergency.from_warning(ctx, raised(44, "red", rule="unrelated")) == []
    assert emergency.from_warning(ctx, raised(45, "red", rule="flood", district=None)) != [first]


def test_a_warning_on_the_bus_starts_a_response(
    client: TestClient, ctx: AppContext, org: Org, crew: Crew
) -> None:
    client.portal.call(ctx.bus.publish, raised(51, "orange", rule="rainstorm", district="510704"))
    deadline = time.monotonic() + 10
    found = emergency.list_responses(ctx, crew.viewer)
    while not found.total and time.monotonic() < deadline:
        time.sleep(0.05)
        found = emergency.list_responses(ctx, crew.viewer)
    assert found.total == 1
    item = found.items[0]
    assert (item.plan, item.level, item.district, item.warning_id) == ("flood", 2, "510704", 51)


# --- resources, dispatch, nearest -----------------------------------------------------------------


def test_resources_crud_and_scopes(ctx: AppContext, org: Org, crew: Crew) -> None:
    made = emergency.create_resource(
        ctx,
        crew.cgzf_manager,
        ResourceCreate(
            name="排水抢险队", kind="team", department_id=org.cgzf, location=Point(lon=CITY_HALL[0], lat=CITY_HALL[1]),
            capacity=25, unit="人", contact_name="王队长", contact_phone="13800001234",
        ),
    )  # fmt: skip
    assert (made.district, made.status, made.contact_phone) == ("510703", "available", "13800001234")
    assert emergency.get_resource(ctx, crew.viewer, made.id).contact_phone == "138****1234"  # masked
    with pytest.raises(Forbidden):  # another department's resource
        resource(ctx, crew.cgzf_manager, "环境监测车", CITY_HALL, department_id=org.sthj)
    with pytest.raises(Forbidden):
        resource(ctx, crew.viewer, "x", CITY_HALL)
    with pytest.raises(ValidationFailed):
        resource(ctx, crew.commander, "x", CITY_HALL, department_id=424242)
    moved = emergency.update_resource(
        ctx,
        crew.cgzf_manager,
        made.id,
        ResourceUpdate(location=Point(lon=104.77, lat=31.478), status="maintenance"),
    )
    assert (moved.district, moved.status, moved.name) == ("510704", "maintenance", "排水抢险队")
    page = emergency.list_resources(ctx, crew.viewer, status="maintenance", district="510704")
    assert [r.id for r in page.items] == [made.id]
    emergency.delete_resource(ctx, crew.cgzf_manager, made.id)
    with pytest.raises(NotFound):
        emergency.get_resource(ctx, crew.viewer, made.id)


def test_dispatch_and_release(ctx: AppContext, org: Org, crew: Crew) -> None:
    response_id = start(
        ctx, crew.commander, plan="flood", level=3, location={"lon": INCIDENT[0], "lat": INCIDENT[1]}
    )
    team = resource(ctx, crew.commander, "防汛突击队", CITY_HALL)
    spare = resource(ctx, crew.commander, "备用泵车", CITY_HALL, kind="vehicle", status="maintenance")
    sent = emergency.dispatch(
        ctx, crew.commander, response_id, DispatchCreate(resource_id=team, note="立即出发")
    )
    assert (sent.status, sent.response_id) == ("dispatched", response_id)
    for call, error in (
        (lambda: emergency.dispatch(ctx, crew.commander, response_id, DispatchCreate(resource_id=team)), Conflict),
        (lambda: emergency.dispatch(ctx, crew.commander, response_id, DispatchCreate(resource_id=spare)), Conflict),
        (lambda: emergency.dispatch(ctx, crew.commander, response_id, DispatchCreate(resource_id=424242)), ValidationFailed),
        (lambda: emergency.dispatch(ctx, crew.viewer, response_id, DispatchCreate(resource_id=spare)), Forbidden),
        (lambda: emergency.update_resource(ctx, crew.commander, team, ResourceUpdate(status="available")), Conflict),
        (lambda: emergency.delete_resource(ctx, crew.commander, team), Conflict),
        (lambda: emergency.release(ctx, crew.commander, spare, ReleaseCreate()), Conflict),
    ):  # fmt: skip
        with pytest.raises(error):
            call()
    assert [r.id for r in emergency.get_response(ctx, crew.viewer, response_id).resources] == [team]
    back = emergency.release(ctx, crew.commander, team, ReleaseCreate(note="任务完成"))
    assert (back.status, back.response_id) == ("available", None)
    emergency.dispatch(ctx, crew.commander, response_id, DispatchCreate(resource_id=team))
    ended = emergency.end(ctx, crew.commander, response_id, ResponseEnd())
    assert emergency.get_resource(ctx, crew.viewer, team).status == "available"  # ending releases
    assert [e.action for e in ended.log] == ["activate", "dispatch", "release", "dispatch", "release", "end"]
    assert ended.log[1].resource_id == team and ended.log[1].note == "调派防汛突击队：立即出发"
    with pytest.raises(Conflict):
        emergency.dispatch(ctx, crew.commander, response_id, DispatchCreate(resource_id=spare))


def test_nearest_ranks_by_road_travel_time(ctx: AppContext, org: Org, crew: Crew) -> None:
    c = crew.commander
    bridge = resource(ctx, c, "三江大桥西桥头", (104.752, 31.446))  # 1.14 km straight, over the bridge
    ring = resource(ctx, c, "一环路东段南端", (104.75, 31.455))  # 1.66 km straight, but across the river
    dongjin = resource(ctx, c, "东津路剑门路口", (104.76, 31.4625))  # 1.87 km straight, one road down
    far = resource(ctx, c, "远郊物资点", (104.85, 31.44))  # 6.4 km from the nearest main road: no route
    resource(ctx, c, "维护中的泵车", INCIDENT, status="maintenance")  # not available
    shelter = resource(ctx, c, "避难场所", INCIDENT, kind="shelter")
    found = emergency.nearest(ctx, crew.viewer, *INCIDENT, kind="team", limit=10)
    assert [i.resource.id for i in found.items] == [bridge, dongjin, ring, far]
    by_id = {i.resource.id: i for i in found.items}
    # 三江大桥 is 1,138 m at 50 km/h: 82 s; 东津路 from 剑门路 is 1,874 m at 50 km/h: 135 s
    assert by_id[bridge].seconds == pytest.approx(1138 / (50 / 3.6), abs=2)
    assert by_id[bridge].roads == ["三江大桥"]
    assert by_id[dongjin].seconds == pytest.approx(1874 / (50 / 3.6), abs=2)
    assert by_id[dongjin].roads == ["东津路"]
    # the ring road's corner is closer in a straight line but drives round by 涪江大桥: slower
    assert by_id[ring].straight_m < by_id[dongjin].straight_m and by_id[ring].seconds > by_id[dongjin].seconds  # type: ignore[operator]
    assert by_id[ring].roads == ["一环路东段", "涪江大桥", "东津路"]
    assert not by_id[far].by_road and by_id[far].seconds is None and by_id[far].straight_m > 8000
    assert [i.resource.id for i in emergency.nearest(ctx, crew.viewer, *INCIDENT, limit=1).items] == [shelter]
    # off the road graph altogether: every resource by straight line, nearest first
    remote = emergency.nearest(ctx, crew.viewer, 104.55, 32.41, kind="team", limit=4)
    assert all(not i.by_road for i in remote.items)
    assert [i.resource.id for i in remote.items] == [dongjin, ring, bridge, far]  # the northernmost first
    assert [i.straight_m for i in remote.items] == sorted(i.straight_m for i in remote.items)


# --- the command log ------------------------------------------------------------------------------


def test_notes_are_logged_and_audited(ctx: AppContext, org: Org, crew: Crew) -> None:
    response_id = start(ctx, crew.commander)
    entry = emergency.add_note(ctx, crew.commander, response_id, NoteCreate(note="已通知各成员单位"))
    assert (entry.action, entry.by, entry.by_name, entry.note) == (
        "note",
        "user:31",
        "指挥长",
        "已通知各成员单位",
    )
    with pytest.raises(Forbidden):
        emergency.add_note(ctx, crew.viewer, response_id, NoteCreate(note="x"))
    with pytest.raises(NotFound):
        emergency.add_note(ctx, crew.commander, 424242, NoteCreate(note="x"))
    assert [e.action for e in emergency.response_log(ctx, crew.viewer, response_id)] == ["activate", "note"]
    with ctx.read() as session:
        assert session.scalar(select(func.count()).select_from(CommandLogEntry)) == 2
        audited = session.scalars(
            select(LedgerRecord.action).where(LedgerRecord.obj.like("command_response_log:%"))
        ).all()
    assert audited == ["command.emergency.activate", "command.emergency.note"]


# --- API ------------------------------------------------------------------------------------------


@pytest.fixture
def api(client: TestClient, ctx: AppContext, seeded: Seeded, org: Org) -> TestClient:
    """A client with a token of the platform admin for every emergency permission."""
    token = token_for(ctx, seeded, [*PERMS, "command.event.read"])
    client.headers["Authorization"] = f"Bearer {token}"
    return client


def test_the_api(api: TestClient, org: Org) -> None:
    base = "/api/command/emergency"
    plans = api.get(f"{base}/plans").json()
    assert [p["code"] for p in plans] == ["flood", "heavy_pollution", "road_traffic", "gas_leak"]
    assert [lv["roman"] for lv in plans[0]["levels"]] == ["I", "II", "III", "IV"]
    assert api.get(f"{base}/plans/flood").json()["levels"][3]["departments"] == ["slj", "qxj", "cgzf"]
    problem(api.get(f"{base}/plans/nothing"), 404)
    made = api.post(
        f"{base}/responses",
        json={"plan": "gas_leak", "level": 4, "location": {"lon": INCIDENT[0], "lat": INCIDENT[1]}},
    )
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["level_roman"] == "IV" and [t["department"] for t in body["tasks"]] == ["rqgs", "xfzd"]
    rid = body["id"]
    problem(
        api.post(
            f"{base}/responses",
            json={"plan": "gas_leak", "level": 2, "location": {"lon": INCIDENT[0], "lat": INCIDENT[1]}},
        ),
        409,
    )
    problem(api.post(f"{base}/responses", json={"plan": "gas_leak", "level": 5}), 422)
    problem(api.post(f"{base}/responses", json={"plan": "nothing", "level": 2}), 422)
    problem(api.post(f"{base}/responses", json={"plan": "gas_leak", "level": 2, "extra": 1}), 422)
    problem(api.get(f"{base}/responses/424242"), 404)
    problem(api.get(f"{base}/responses", params={"state": "odd"}), 422)
    raised_to = api.post(f"{base}/responses/{rid}/level", json={"level": 2, "note": "扩大响应"})
    assert raised_to.status_code == 200 and len(raised_to.json()["tasks"]) == 7
    problem(api.post(f"{base}/responses/{rid}/level", json={"level": 2}), 409)
    task_id = raised_to.json()["tasks"][0]["id"]
    assert api.patch(f"{base}/tasks/{task_id}", json={"status": "doing"}).json()["status"] == "doing"
    problem(api.patch(f"{base}/tasks/{task_id}", json={"status": "finished"}), 422)
    assert [t["status"] for t in api.get(f"{base}/responses/{rid}/tasks").json()][:1] == ["doing"]
    created = api.post(
        f"{base}/resources",
        json={
            "name": "燃气抢修车",
            "kind": "vehicle",
            "location": {"lon": 104.752, "lat": 31.446},
            "capacity": 2,
            "unit": "辆",
        },
    )
    assert created.status_code == 201, created.text
    res_id = created.json()["id"]
    problem(
        api.post(f"{base}/resources", json={"name": "x", "kind": "rocket", "location": {"lon": 1, "lat": 1}}),
        422,
    )
    problem(
        api.post(f"{base}/resources", json={"name": "x", "kind": "team", "location": {"lon": 200, "lat": 1}}),
        422,
    )
    problem(
        api.post(
            f"{base}/resources",
            json={"name": "x", "kind": "team", "location": {"lon": 1, "lat": 1}, "status": "dispatched"},
        ),
        422,
    )
    near = api.get(f"{base}/nearest", params={"lon": INCIDENT[0], "lat": INCIDENT[1]}).json()
    assert near["items"][0]["resource"]["id"] == res_id and near["items"][0]["by_road"]
    problem(api.get(f"{base}/nearest", params={"lon": 500, "lat": 31}), 422)
    problem(api.get(f"{base}/nearest", params={"lat": 31}), 422)
    sent = api.post(f"{base}/responses/{rid}/dispatch", json={"resource_id": res_id})
    assert sent.status_code == 200 and sent.json()["status"] == "dispatched"
    problem(api.post(f"{base}/responses/{rid}/dispatch", json={"resource_id": res_id}), 409)
    problem(api.patch(f"{base}/resources/{res_id}", json={"status": "maintenance"}), 409)
    problem(api.delete(f"{base}/resources/{res_id}"), 409)
    assert api.post(f"{base}/resources/{res_id}/release", json={}).json()["status"] == "available"
    problem(api.post(f"{base}/resources/{res_id}/release", json={}), 409)
    assert (
        api.patch(f"{base}/resources/{res_id}", json={"name": "燃气抢修车2"}).json()["name"] == "燃气抢修车2"
    )
    note = api.post(f"{base}/responses/{rid}/log", json={"note": "现场已警戒"})
    assert note.status_code == 201
    problem(api.post(f"{base}/responses/{rid}/log", json={"note": ""}), 422)
    log = api.get(f"{base}/responses/{rid}/log").json()
    assert [e["action"] for e in log] == ["activate", "raise", "task", "dispatch", "release", "note"]
    assert api.get(f"{base}/resources", params={"kind": "vehicle"}).json()["total"] == 1
    problem(api.get(f"{base}/resources", params={"kind": "rocket"}), 422)
    assert api.delete(f"{base}/resources/{res_id}").status_code == 204
    problem(api.get(f"{base}/resources/{res_id}"), 404)
    assert api.post(f"{base}/responses/{rid}/end", json={"note": "处置完毕"}).json()["state"] == "ended"
    problem(api.post(f"{base}/responses/{rid}/end", json={}), 409)
    assert api.get(f"{base}/responses", params={"state": "all"}).json()["total"] == 1


def test_the_api_refuses_without_permission(
    client: TestClient, ctx: AppContext, seeded: Seeded, org: Org
) -> None:
    client.headers["Authorization"] = f"Bearer {token_for(ctx, seeded, [emergency.READ])}"
    base = "/api/command/emergency"
    assert client.get(f"{base}/plans").status_code == 200
    problem(client.post(f"{base}/responses", json={"plan": "flood", "level": 3}), 403)
    problem(
        client.post(
            f"{base}/resources", json={"name": "x", "kind": "team", "location": {"lon": 104.7, "lat": 31.4}}
        ),
        403,
    )
    client.headers["Authorization"] = f"Bearer {token_for(ctx, seeded, ['command.event.read'])}"
    problem(client.get(f"{base}/responses"), 403)
    problem(client.get(f"{base}/nearest", params={"lon": 104.7, "lat": 31.4}), 403)
    del client.headers["Authorization"]
    problem(client.get(f"{base}/plans"), 401)


# --- the page -------------------------------------------------------------------------------------


def test_the_emergency_page(
    client: TestClient, ctx: AppContext, seeded: Seeded, org: Org, crew: Crew
) -> None:
    login(client, seeded.admin_username, seeded.admin_password)
    empty = client.get("/command/emergency")
    assert (
        empty.status_code == 200 and 'id="activate-form"' in empty.text and "/command/emergency" in empty.text
    )
    team = resource(ctx, crew.commander, "三江大桥西桥头救援队", (104.752, 31.446))
    token = client.cookies.get("cb_csrf") or ""
    made = client.post(
        "/command/emergency",
        data={
            "csrf_token": token,
            "plan": "flood",
            "level": "2",
            "lon": str(INCIDENT[0]),
            "lat": str(INCIDENT[1]),
        },
        follow_redirects=False,
    )
    assert made.status_code == 303, made.text
    page = client.get(made.headers["location"])
    assert page.status_code == 200
    assert 'data-level="2"' in page.text and "#f57c00" in page.text and 'id="task-list"' in page.text
    assert f'data-resource="{team}" data-by-road="true"' in page.text and "emergency.js" in page.text
    rid = int(made.headers["location"].split("response=")[1].split("&")[0])
    dup = client.post(
        "/command/emergency",
        data={
            "csrf_token": token,
            "plan": "flood",
            "level": "1",
            "lon": str(INCIDENT[0]),
            "lat": str(INCIDENT[1]),
        },
    )
    assert dup.status_code == 409 and 'role="alert"' in dup.text
    bad = client.post("/command/emergency", data={"csrf_token": token, "plan": "flood", "level": "9"})
    assert bad.status_code == 422 and "level" in bad.text
    task_id = emergency.get_response(ctx, crew.viewer, rid).tasks[0].id
    moved = client.post(
        f"/command/emergency/{rid}/tasks/{task_id}",
        data={"csrf_token": token, "status": "done"},
        follow_redirects=False,
    )
    assert moved.status_code == 303
    sent = client.post(
        f"/command/emergency/{rid}/dispatch",
        data={"csrf_token": token, "resource_id": str(team)},
        follow_redirects=False,
    )
    assert sent.status_code == 303
    again = client.post(
        f"/command/emergency/{rid}/dispatch", data={"csrf_token": token, "resource_id": str(team)}
    )
    assert again.status_code == 409
    noted = client.post(
        f"/command/emergency/{rid}/notes",
        data={"csrf_token": token, "note": "现场指挥部已设立"},
        follow_redirects=False,
    )
    assert noted.status_code == 303
    assert (
        client.post(f"/command/emergency/{rid}/notes", data={"csrf_token": token, "note": ""}).status_code
        == 422
    )
    released = client.post(
        f"/command/emergency/{rid}/release/{team}", data={"csrf_token": token}, follow_redirects=False
    )
    assert released.status_code == 303
    level = client.post(
        f"/command/emergency/{rid}/level", data={"csrf_token": token, "level": "1"}, follow_redirects=False
    )
    assert level.status_code == 303
    final = client.get(f"/command/emergency?response={rid}")
    assert (
        "现场指挥部已设立" in final.text
        and 'data-level="1"' in final.text
        and 'data-status="done"' in final.text
    )
    ended = client.post(f"/command/emergency/{rid}/end", data={"csrf_token": token}, follow_redirects=False)
    assert ended.status_code == 303
    assert 'data-state="ended"' in client.get(f"/command/emergency?response={rid}").text
    assert client.get("/command/emergency?response=424242").status_code == 404
    assert 'href="/command/emergency"' in client.get("/command/events").text  # in the app's navigation


def test_the_demo_places_resources(ctx: AppContext, org: Org) -> None:
    from citybrain.apps.command import demo

    assert demo.seed_resources(ctx) == len(demo.RESOURCES) >= 20
    assert demo.seed_resources(ctx) == 0
    from citybrain.sdk import SYSTEM

    found = emergency.list_resources(ctx, SYSTEM, limit=100).items
    assert {r.district for r in found} >= {"510703", "510704", "510781", "510722", "510727"}
    assert {r.kind for r in found} == {"team", "vehicle", "shelter", "supply"}
