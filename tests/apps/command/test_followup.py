"""并单 (duplicates and merging), 催办, 延期, 重办, 临期预警 and lifting 督办: services, API and pages."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from citybrain.apps.command import deadlines, services, supervision
from citybrain.apps.command import workflows as wf
from citybrain.apps.command.events import EventChanged
from citybrain.apps.command.schemas import MergeCreate, TicketCreate
from citybrain.apps.command.settings import CommandSettings
from citybrain.core.context import AppContext
from citybrain.core.db import OutboxRow
from citybrain.core.errors import Conflict, Forbidden, ValidationFailed
from citybrain.core.permissions import ALL, SYSTEM, Actor
from tests.apps.command.conftest import CITY_HALL, Org, person
from tests.apps.command.test_api import problem
from tests.apps.command.test_services import take, ticket
from tests.apps.command.test_supervision import _deadline
from tests.apps.context.conftest import token_for
from tests.conftest import Seeded, login

ZONE = ZoneInfo("Asia/Shanghai")
# A Wednesday, a working day, in office hours.
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=ZONE)


def merger(org: Org) -> Actor:
    """A shift leader who may merge (并单)."""
    return person(30, org.district, "并单员", dict.fromkeys((wf.READ, wf.MERGE, wf.SUPERVISE, wf.CLOSE), ALL))


def far_ticket(ctx: AppContext, org: Org, content: str) -> int:
    """A noise ticket about 1 km north of the city hall."""
    data = TicketCreate(
        caller_phone="13600000000", content=content, category="hotline.noise",
        location={"lon": CITY_HALL[0], "lat": CITY_HALL[1] + 0.01},
    )  # fmt: skip
    return services.take_ticket(ctx, org.operator, data).id


def timeline(ctx: AppContext, org: Org, event_id: int) -> list[str]:
    """The timeline's actions."""
    return [s.action for s in services.get_event(ctx, org.leader, event_id).timeline]


def test_similar_nearby_events_are_suggested(ctx: AppContext, org: Org) -> None:
    first = ticket(ctx, org, content="楼下KTV深夜噪声扰民，每晚唱到两点")
    far = far_ticket(ctx, org, "楼下KTV深夜噪声扰民，每晚唱到两点")
    other = ticket(ctx, org, content="小区门口早市摊贩叫卖声吵")
    water = ticket(ctx, org, category="hotline.water_supply", content="楼下KTV深夜噪声扰民，每晚唱到两点")
    second = services.get_event(
        ctx, org.dispatcher, ticket(ctx, org, content="楼下KTV深夜噪声扰民，唱到凌晨两点")
    )
    assert [d.id for d in second.suggested_duplicates] == [first]
    found = second.suggested_duplicates[0]
    assert found.distance_m == 0 and found.similarity is not None and found.similarity >= 0.3
    assert found.caller_phone == "138****5678"  # masked for a reader who does not handle it
    assert far not in {d.id for d in second.suggested_duplicates}
    assert other not in {d.id for d in second.suggested_duplicates}
    assert water not in {d.id for d in second.suggested_duplicates}
    assert services.similarity("噪声扰民", "噪声扰民") == 1 and services.similarity("", "x") == 0
    assert 1100 < services.metres(CITY_HALL[0], CITY_HALL[1], CITY_HALL[0], CITY_HALL[1] + 0.01) < 1120
    # older than the window: no longer suggested
    ctx.app_settings["command"] = CommandSettings(duplicate_hours=1)
    with ctx.uow(SYSTEM, "test.age") as uow:
        row = uow.session.get(services.CityEvent, first)
        assert row is not None
        row.created_at = row.created_at - timedelta(hours=3)
    assert services.get_event(ctx, org.dispatcher, second.id).suggested_duplicates == []


def test_merge_closes_the_duplicate_and_links_it(ctx: AppContext, org: Org) -> None:
    lead = merger(org)
    main = ticket(ctx, org, content="楼下KTV深夜噪声扰民")
    dup = ticket(ctx, org, content="楼下KTV半夜噪声扰民")
    take(ctx, org.dispatcher, dup, "assign")
    take(ctx, org.dispatcher, dup, "supervise")
    with pytest.raises(Forbidden):
        services.merge(ctx, org.dispatcher, dup, MergeCreate(into=main))
    merged = services.merge(ctx, lead, dup, MergeCreate(into=main, note="同一KTV"))
    assert merged.state == wf.MERGED and merged.merged_into_id == main and merged.closed_at is not None
    assert not merged.supervised and merged.merged_into_number == services.get_event(ctx, lead, main).number
    assert timeline(ctx, org, dup)[-2:] == ["merge", "supervision_lifted"]
    assert timeline(ctx, org, main)[-1] == "merged_in"
    seen = services.get_event(ctx, org.dispatcher, main)
    assert [m.id for m in seen.merged] == [dup] and seen.merged[0].caller_phone == "138****5678"
    assert services.get_event(ctx, org.handler, main).merged[0].caller_phone == "13812345678"
    # the main event's reply and completion reach the merged ticket's timeline
    take(ctx, org.dispatcher, main, "assign")
    take(ctx, org.handler, main, "sign")
    take(ctx, org.handler, main, "reply", note="已责令KTV整改")
    take(ctx, org.leader, main, "complete")
    assert timeline(ctx, org, dup)[-2:] == ["main_followed", "main_followed"]
    notes = [s.note for s in services.get_event(ctx, org.leader, dup).timeline]
    assert "已责令KTV整改" in notes[-2] and "已办结" in notes[-1]
    with ctx.read() as session:
        payloads = session.scalars(
            select(OutboxRow.payload).where(OutboxRow.event_type.like("%:EventChanged"))
        )
        changed = [EventChanged.model_validate_json(p) for p in payloads]
    assert any(c.action == "merge" and c.merged_into_id == main for c in changed)


def test_merge_refusals_change_nothing(ctx: AppContext, org: Org) -> None:
    lead = merger(org)
    main = ticket(ctx, org)
    dup = ticket(ctx, org)
    water = ticket(ctx, org, category="hotline.water_supply", content="小区停水")
    before = timeline(ctx, org, dup)
    with pytest.raises(ValidationFailed):  # into itself
        services.merge(ctx, lead, dup, MergeCreate(into=dup))
    with pytest.raises(ValidationFailed):  # no such event
        services.merge(ctx, lead, dup, MergeCreate(into=99999))
    with pytest.raises(Conflict):  # another category, not forced
        services.merge(ctx, lead, dup, MergeCreate(into=water))
    take(ctx, org.operator, main, "answer", note="已解释")
    take(ctx, org.operator, main, "visit", note="已回访")
    take(ctx, org.operator, main, "rate", rating="satisfied")
    with pytest.raises(Conflict):  # into a finished event
        services.merge(ctx, lead, dup, MergeCreate(into=main))
    assert timeline(ctx, org, dup) == before and services.get_event(ctx, lead, dup).state == "accepted"
    # forced across categories; then the merged event cannot be merged again, nor be a main event
    assert services.merge(ctx, lead, dup, MergeCreate(into=water, force=True)).state == wf.MERGED
    with pytest.raises(Conflict):
        services.merge(ctx, lead, dup, MergeCreate(into=water))
    with pytest.raises(Conflict):
        services.merge(ctx, lead, water, MergeCreate(into=dup, force=True))


def test_merging_a_main_event_moves_its_duplicates(ctx: AppContext, org: Org) -> None:
    lead = merger(org)
    a, b, c = ticket(ctx, org), ticket(ctx, org), ticket(ctx, org)
    services.merge(ctx, lead, c, MergeCreate(into=b))
    services.merge(ctx, lead, b, MergeCreate(into=a))
    assert services.get_event(ctx, lead, c).merged_into_id == a
    assert {m.id for m in services.get_event(ctx, lead, a).merged} == {b, c}
    # merged tickets count once in the KPI: only the main ticket
    from citybrain.apps.command import kpi

    start, end = kpi.bounds(NOW.date() - timedelta(days=400), NOW.date() + timedelta(days=400), ZONE)
    counts = kpi.count_rows(ctx, start, end, "department", ALL)
    assert sum(x.tickets for x in counts.values()) == 1


def test_urge_extension_and_lifting_supervision(ctx: AppContext, org: Org) -> None:
    ctx.app_settings["command"] = CommandSettings(extension_max=1)
    event_id = ticket(ctx, org)
    take(ctx, org.dispatcher, event_id, "assign")
    take(ctx, org.handler, event_id, "sign")
    assert take(ctx, org.leader, event_id, "urge") == "handling"
    take(ctx, org.dispatcher, event_id, "urge", note="请尽快办理")
    with pytest.raises(Forbidden):  # a department does not urge itself
        take(ctx, org.handler, event_id, "urge")
    with pytest.raises(Conflict):  # nothing to approve yet
        take(ctx, org.leader, event_id, "approve_extension")
    with pytest.raises(ValidationFailed):  # the number of days is needed
        take(ctx, org.handler, event_id, "request_extension", note="需协调物业")
    with pytest.raises(ValidationFailed):  # at most 15 working days by default
        take(ctx, org.handler, event_id, "request_extension", note="需协调物业", days=20)
    with pytest.raises(ValidationFailed):  # other actions take no days
        take(ctx, org.leader, event_id, "urge", days=2)
    take(ctx, org.handler, event_id, "request_extension", note="需协调物业", days=3)
    with pytest.raises(Conflict):  # one request at a time
        take(ctx, org.handler, event_id, "request_extension", note="再申请", days=1)
    before = services.get_event(ctx, org.leader, event_id)
    assert before.extension_days == 3 and before.urges == 2
    assert "approve_extension" in [a.code for a in before.actions]
    take(ctx, org.leader, event_id, "approve_extension")
    after = services.get_event(ctx, org.leader, event_id)
    assert before.deadline is not None
    assert after.deadline == deadlines.add_working_days(before.deadline, 3, ZONE)
    assert after.extensions == 1 and after.extension_days is None
    assert "延期 3 个工作日" in after.timeline[-1].note
    with pytest.raises(Conflict):  # at most one extension here
        take(ctx, org.handler, event_id, "request_extension", note="还要延期", days=1)
    # 督办, then lifted by a supervisor, both in the timeline
    with pytest.raises(Conflict):
        take(ctx, org.leader, event_id, "lift_supervision")
    take(ctx, org.leader, event_id, "supervise")
    take(ctx, org.leader, event_id, "lift_supervision", note="已落实")
    done = services.get_event(ctx, org.leader, event_id)
    assert not done.supervised and [s.action for s in done.timeline][-2:] == ["supervise", "lift_supervision"]
    assert [s.action for s in done.timeline].count("urge") == 2


def test_an_extension_is_rejected_with_a_reason(ctx: AppContext, org: Org) -> None:
    event_id = ticket(ctx, org)
    take(ctx, org.dispatcher, event_id, "assign")
    deadline = services.get_event(ctx, org.leader, event_id).deadline
    take(ctx, org.handler, event_id, "request_extension", note="人手不足", days=2)
    with pytest.raises(ValidationFailed):
        take(ctx, org.leader, event_id, "reject_extension")
    take(ctx, org.leader, event_id, "reject_extension", note="理由不充分")
    found = services.get_event(ctx, org.leader, event_id)
    assert found.deadline == deadline and found.extension_days is None and found.extensions == 0


def test_an_unsatisfied_ticket_is_sent_back_for_rehandling(ctx: AppContext, org: Org) -> None:
    event_id = ticket(ctx, org)
    for actor, code, body in (
        (org.dispatcher, "assign", {}),
        (org.handler, "sign", {}),
        (org.handler, "reply", {"note": "已处理"}),
        (org.leader, "complete", {}),
        (org.operator, "visit", {"note": "来电人称仍有噪声"}),
        (org.operator, "rate", {"rating": "unsatisfied"}),
    ):
        take(ctx, actor, event_id, code, **body)
    with pytest.raises(Forbidden):
        take(ctx, org.operator, event_id, "rehandle", note="x")
    assert take(ctx, org.leader, event_id, "rehandle", note="不满意，重办") == "handling"
    found = services.get_event(ctx, org.leader, event_id)
    assert found.reworks == 1 and found.rating is None and found.closed_at is None
    assert found.department_id == org.sthj and found.deadline is not None
    satisfied = ticket(ctx, org)
    take(ctx, org.operator, satisfied, "answer", note="已答复")
    take(ctx, org.operator, satisfied, "visit", note="已回访")
    take(ctx, org.operator, satisfied, "rate", rating="satisfied")
    with pytest.raises(Conflict):  # a satisfied ticket is not re-handled
        take(ctx, org.leader, satisfied, "rehandle", note="x")


def test_pre_deadline_warning_once_per_stage(ctx: AppContext, org: Org) -> None:
    office = (services.settings(ctx).office_start, services.settings(ctx).office_end)
    soon, later = ticket(ctx, org), ticket(ctx, org)
    for event_id in (soon, later):
        take(ctx, org.dispatcher, event_id, "assign")
    # hotline.noise has days to handle; one working hour left is under 20 %
    _deadline(ctx, soon, deadlines.add_working_hours(NOW, 1, ZONE, office))
    _deadline(ctx, later, NOW + timedelta(days=20))
    assert services.scan_due_soon(ctx, NOW) == 1
    assert services.scan_due_soon(ctx, NOW) == 0  # once
    found = services.get_event(ctx, org.leader, soon)
    assert found.due_soon and found.timeline[-1].action == "due_soon"
    assert not services.get_event(ctx, org.leader, later).due_soon
    with ctx.read() as session:
        payloads = session.scalars(
            select(OutboxRow.payload).where(OutboxRow.event_type.like("%:EventChanged"))
        )
        actions = [EventChanged.model_validate_json(p).action for p in payloads]
    assert actions.count("due_soon") == 1
    assert [e.id for e in services.list_events(ctx, org.leader, due_soon=True).items] == [soon]
    assert services.counts(ctx, org.leader)["flags"]["due_soon"] == 1
    board = supervision.board(ctx, org.leader, "zh", now=NOW)
    assert board.warned == 1 and [r.id for r in board.due_soon_items if r.warned] == [soon]
    take(ctx, org.handler, soon, "sign")  # a new stage: the flag is cleared
    assert not services.get_event(ctx, org.leader, soon).due_soon


def test_api_merge_and_problems(client: TestClient, ctx: AppContext, seeded: Seeded, org: Org) -> None:
    scopes = ["command.event.read", "command.event.merge", "command.ticket.create"]
    client.headers["Authorization"] = f"Bearer {token_for(ctx, seeded, scopes)}"
    main, dup = ticket(ctx, org), ticket(ctx, org)
    water = ticket(ctx, org, category="hotline.water_supply", content="小区停水")
    detail = client.get(f"/api/command/events/{dup}").json()
    assert [d["id"] for d in detail["suggested_duplicates"]] == [main] and detail["may_merge"]
    problem(client.post(f"/api/command/events/{dup}/merge", json={"into": dup}), 422)
    problem(client.post(f"/api/command/events/{dup}/merge", json={"into": 0}), 422)
    problem(client.post(f"/api/command/events/{dup}/merge", json={"into": main, "x": 1}), 422)
    problem(client.post(f"/api/command/events/{dup}/merge", json={"into": water}), 409)
    problem(client.post(f"/api/command/events/{dup}/actions/assign", json={"days": 0}), 422)
    done = client.post(f"/api/command/events/{dup}/merge", json={"into": main})
    assert done.status_code == 200 and done.json()["state"] == "merged"
    problem(client.post(f"/api/command/events/{main}/merge", json={"into": dup}), 409)
    assert client.get("/api/command/events", params={"due_soon": "true"}).json()["total"] == 0
    with ctx.read() as session:
        assert session.scalar(select(func.count()).select_from(services.CityEvent)) == 3


def test_pages_show_duplicates_and_merge(
    client: TestClient, ctx: AppContext, seeded: Seeded, org: Org
) -> None:
    login(client, seeded.admin_username, seeded.admin_password)
    token = client.cookies.get("cb_csrf") or ""
    main, dup = ticket(ctx, org), ticket(ctx, org)
    page = client.get(f"/command/events/{dup}")
    assert (
        page.status_code == 200
        and 'id="suggested-duplicates"' in page.text
        and 'id="merge-form"' in page.text
    )
    number = services.get_event(ctx, org.leader, main).number
    refused = client.post(f"/command/events/{dup}/merge", data={"csrf_token": token, "into": str(dup)})
    assert refused.status_code == 422
    bad = client.post(f"/command/events/{dup}/merge", data={"csrf_token": token, "into": "abc"})
    assert bad.status_code == 422
    done = client.post(
        f"/command/events/{dup}/merge", data={"csrf_token": token, "into": number}, follow_redirects=False
    )
    assert done.status_code == 303
    merged = client.get(f"/command/events/{dup}")
    assert 'id="merged-into"' in merged.text and number in merged.text
    assert 'id="merged-events"' in client.get(f"/command/events/{main}").text
    assert client.get("/command/events?due_soon=1").status_code == 200
    take(ctx, org.dispatcher, main, "assign")
    form = client.get(f"/command/events/{main}")
    assert 'name="days"' in form.text  # 申请延期 asks for the working days
    english = client.get("/command/supervision", headers={"Accept-Language": "en"})
    assert english.status_code == 200 and 'data-count="warned"' in english.text
