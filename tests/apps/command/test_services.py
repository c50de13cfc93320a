"""Intake, routing, both workflows with role and state checks, masking, scoping, deadlines and warnings."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from citybrain.apps.command import services
from citybrain.apps.command.events import EventChanged
from citybrain.apps.command.schemas import ActionTake, ReportCreate, TicketCreate
from citybrain.apps.command.settings import CommandSettings
from citybrain.apps.warning.events import WarningRaised
from citybrain.core.context import AppContext
from citybrain.core.db import OutboxRow
from citybrain.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from citybrain.core.permissions import SYSTEM
from citybrain.sdk import utcnow
from tests.apps.command.conftest import CITY_HALL, Org


def ticket(
    ctx: AppContext, org: Org, category: str | None = "hotline.noise", content: str = "楼下KTV深夜噪声扰民"
) -> int:
    """A 12345 ticket at the city hall (by default about noise)."""
    data = TicketCreate(
        caller_name="张三", caller_phone="13812345678", caller_id_number="51070319800101123X",
        content=content, category=category,
        location={"lon": CITY_HALL[0], "lat": CITY_HALL[1]}, address="涪城区临园路",
    )  # fmt: skip
    return services.take_ticket(ctx, org.operator, data).id


def take(ctx: AppContext, actor: object, event_id: int, action: str, **body: object) -> str:
    """Take an action; return the new state."""
    return services.act(ctx, actor, event_id, action, ActionTake(**body)).state  # type: ignore[arg-type]


def steps(ctx: AppContext, org: Org, event_id: int) -> list[str]:
    """The timeline's actions."""
    return [s.action for s in services.get_event(ctx, org.leader, event_id).timeline]


def test_a_ticket_is_numbered_routed_and_timed(ctx: AppContext, org: Org) -> None:
    event = services.get_event(ctx, org.operator, ticket(ctx, org))
    today = utcnow().astimezone(services._zone(ctx)).strftime("%Y%m%d")
    assert event.number == f"{today}00001" and event.state == "accepted" and event.workflow == "hotline"
    assert (event.district, event.department_id) == ("510703", org.sthj)
    assert event.deadline is not None and event.deadline > utcnow()
    assert event.caller_phone == "13812345678"
    second = services.get_event(ctx, org.operator, ticket(ctx, org))
    assert second.number == f"{today}00002"


def test_caller_data_is_masked_for_all_but_the_handling_roles(ctx: AppContext, org: Org) -> None:
    event_id = ticket(ctx, org)
    seen = services.get_event(ctx, org.dispatcher, event_id)
    assert (seen.caller_phone, seen.caller_id_number) == ("138****5678", "510703********123X")
    assert services.get_event(ctx, org.handler, event_id).caller_phone == "13812345678"  # the main department
    listed = services.list_events(ctx, org.dispatcher).items[0]
    assert listed.caller_phone == "138****5678"


def test_hotline_workflow_with_roles_states_and_joint_handling(ctx: AppContext, org: Org) -> None:
    event_id = ticket(ctx, org)
    with pytest.raises(Forbidden):  # a department may not assign
        take(ctx, org.handler, event_id, "assign")
    with pytest.raises(NotFound):  # other departments do not see it
        services.get_event(ctx, org.cg_handler, event_id)
    assert take(ctx, org.dispatcher, event_id, "assign", assisting_department_ids=[org.cgzf]) == "assigned"
    assert services.get_event(ctx, org.cg_handler, event_id).assisting_department_ids == [org.cgzf]
    with pytest.raises(Forbidden):  # the assisting department may not sign for it
        take(ctx, org.cg_handler, event_id, "sign")
    assert take(ctx, org.cg_handler, event_id, "assist", note="已配合现场检查") == "assigned"
    assert take(ctx, org.handler, event_id, "sign") == "handling"
    before = steps(ctx, org, event_id)
    with pytest.raises(Conflict):  # 回访 before 办结
        take(ctx, org.operator, event_id, "visit", note="x")
    with pytest.raises(ValidationFailed):  # 回复 needs a note
        take(ctx, org.handler, event_id, "reply")
    assert steps(ctx, org, event_id) == before  # refused actions change nothing
    assert take(ctx, org.leader, event_id, "supervise") == "handling"
    assert take(ctx, org.handler, event_id, "reply", note="已责令整改") == "replied"
    assert take(ctx, org.leader, event_id, "complete") == "completed"
    assert take(ctx, org.operator, event_id, "visit", note="来电人确认已整改") == "visited"
    with pytest.raises(ValidationFailed):
        take(ctx, org.operator, event_id, "rate")
    assert take(ctx, org.operator, event_id, "rate", rating="satisfied") == "rated"
    done = services.get_event(ctx, org.leader, event_id)
    # 办结 lifts the 督办 flag, in the timeline
    assert (
        not done.supervised
        and done.rating == "satisfied"
        and done.closed_at is not None
        and done.actions == []
    )
    assert [s.action for s in done.timeline] == [
        "intake", "assign", "assist", "sign", "supervise", "reply", "complete", "supervision_lifted", "visit",
        "rate",
    ]  # fmt: skip
    assert done.timeline[1].by == "user:13" and done.timeline[1].by_name == "派遣员"


def test_return_and_reassign(ctx: AppContext, org: Org) -> None:
    event_id = ticket(ctx, org)
    take(ctx, org.dispatcher, event_id, "assign")
    assert take(ctx, org.handler, event_id, "return", note="不属于本部门职责") == "accepted"
    with pytest.raises(Conflict):
        take(
            ctx, org.dispatcher, event_id, "reassign", department_id=org.cgzf
        )  # 改派 is for assigned tickets
    take(ctx, org.dispatcher, event_id, "assign", department_id=org.cgzf)
    assert take(ctx, org.dispatcher, event_id, "reassign", department_id=org.sthj) == "assigned"
    assert services.get_event(ctx, org.leader, event_id).department_id == org.sthj
    with pytest.raises(ValidationFailed):
        take(ctx, org.dispatcher, event_id, "reassign", department_id=99999)


def test_city_case_loop_with_rework_and_events(ctx: AppContext, org: Org) -> None:
    data = ReportCreate(
        category="event.street_vending",
        description="人行道占道经营",
        location={"lon": CITY_HALL[0], "lat": CITY_HALL[1]},
    )
    event = services.report(ctx, org.inspector, data)
    assert (event.state, event.department_id, event.source) == ("reported", org.district, "inspector")
    assert take(ctx, org.leader, event.id, "file") == "filed"
    assert take(ctx, org.dispatcher, event.id, "dispatch") == "dispatched"
    assert take(ctx, org.district_handler, event.id, "accept") == "handling"
    assert take(ctx, org.district_handler, event.id, "feedback", note="已清理") == "handled"
    with pytest.raises(Forbidden):
        take(ctx, org.district_handler, event.id, "verify")
    assert take(ctx, org.inspector, event.id, "rework", note="仍有摊贩") == "dispatched"
    take(ctx, org.district_handler, event.id, "accept")
    take(ctx, org.district_handler, event.id, "feedback", note="已再次清理")
    assert take(ctx, org.inspector, event.id, "verify") == "verified"
    assert take(ctx, org.leader, event.id, "close") == "closed"
    with pytest.raises(Conflict):
        take(ctx, org.leader, event.id, "close")
    with pytest.raises(NotFound):
        take(ctx, org.leader, event.id, "assign")  # not an action of this workflow
    with ctx.read() as session:
        n = session.scalar(
            select(func.count()).select_from(OutboxRow).where(OutboxRow.event_type.like("%:EventChanged"))
        )
    assert n == 10  # intake and nine actions
    assert EventChanged.subject == "command.event.changed"


def test_a_cancelled_report_and_a_department_self_report(ctx: AppContext, org: Org) -> None:
    own = services.report(
        ctx,
        org.cg_handler,
        ReportCreate(
            source="department", category="part.street_lamp", description="路灯不亮", address="临园路"
        ),
    )
    assert own.department_id == org.cgzf and own.source == "department"
    assert services.list_events(ctx, org.cg_handler, inbox=True).total == 1
    assert services.list_events(ctx, org.handler, inbox=True).total == 0
    assert take(ctx, org.leader, own.id, "cancel", note="重复上报") == "cancelled"


def test_filters_and_counts(ctx: AppContext, org: Org) -> None:
    first, second = ticket(ctx, org), ticket(ctx, org, "hotline.water_supply")
    take(ctx, org.dispatcher, first, "assign")
    assert services.list_events(ctx, org.leader, state="assigned").total == 1
    assert services.list_events(ctx, org.leader, category="hotline").total == 2
    assert services.list_events(ctx, org.leader, category="hotline.water_supply").items[0].id == second
    assert services.list_events(ctx, org.leader, district="510703").total == 2
    assert services.list_events(ctx, org.leader, text="KTV").total == 2
    assert services.list_events(ctx, org.leader, department_id=org.sthj).total == 1
    counts = services.counts(ctx, org.leader)
    assert counts["hotline"]["assigned"] == 1 and counts["hotline"]["accepted"] == 1
    assert services.counts(ctx, org.handler)["hotline"]["assigned"] == 1


def test_overdue_scan_flags_and_escalates_once(ctx: AppContext, org: Org) -> None:
    event_id = ticket(ctx, org)
    assert services.scan_overdue(ctx) == 0
    later = utcnow() + timedelta(days=60)
    assert services.scan_overdue(ctx, later) == 1
    assert services.scan_overdue(ctx, later) == 0
    event = services.get_event(ctx, org.leader, event_id)
    assert event.overdue and event.supervised and event.timeline[-1].action == "overdue"
    assert services.list_events(ctx, org.leader, overdue=True).total == 1
    take(ctx, org.dispatcher, event_id, "assign")  # a new stage starts its own clock
    assert not services.get_event(ctx, org.leader, event_id).overdue


def test_a_mapped_warning_becomes_one_event(ctx: AppContext, org: Org) -> None:
    ctx.app_settings["command"] = CommandSettings(
        warning_categories={"flood": "event.waterlogging"}, warning_intake="create"
    )
    raised = WarningRaised(
        warning_id=7, rule_code="flood", level="orange", entity_id="urn:ngsi-ld:X:1", district="510703",
        scope_key="urn:ngsi-ld:X:1", at=utcnow(), values={"waterLevel": 4.5},
    )  # fmt: skip
    event_id = services.from_warning(ctx, raised)
    assert (
        event_id is not None and services.from_warning(ctx, raised) == event_id
    )  # delivered twice, one event
    event = services.get_event(ctx, org.leader, event_id)
    assert (event.source, event.state, event.category, event.department_id) == (
        "warning",
        "filed",
        "event.waterlogging",
        org.cgzf,
    )
    other = raised.model_copy(update={"rule_code": "other"})
    assert services.from_warning(ctx, other) is None


def test_a_ticket_without_a_category_is_classified(ctx: AppContext, org: Org) -> None:
    content = "市民来电反映：楼下KTV每天深夜唱歌到两点，噪声扰民，吵得孩子睡不着"
    event = services.get_event(ctx, org.operator, ticket(ctx, org, None, content))
    assert (event.category, event.state) == ("hotline.noise", "accepted")
    assert event.timeline[0].note.startswith("自动分类：噪声扰民")  # the timeline says who decided


def test_an_unclear_ticket_waits_for_a_person(ctx: AppContext, org: Org) -> None:
    event = services.get_event(ctx, org.operator, ticket(ctx, org, None, "你好，我想问一下那个事情怎么办"))
    assert (event.category, event.state) == (None, "accepted")
    with pytest.raises(ValidationFailed):  # nobody to route it to until a department is named
        take(ctx, org.dispatcher, event.id, "assign")
    assert take(ctx, org.dispatcher, event.id, "assign", department_id=org.sthj) == "assigned"


def test_roles_are_created_once(ctx: AppContext, org: Org) -> None:
    first = services.ensure_roles(ctx)
    assert set(first) == {
        "command_operator",
        "command_shift_leader",
        "command_dispatcher",
        "command_handler",
        "command_inspector",
        "command_emergency_commander",
        "command_emergency_responder",
    }
    assert services.ensure_roles(ctx) == first
    assert services.list_categories(ctx, SYSTEM)[0].code == "part.manhole_cover"


def test_demo_seed_runs_twice(ctx: AppContext, org: Org) -> None:
    from citybrain.apps.command import demo

    demo.seed(ctx)
    demo.seed(ctx)
    assert services.list_events(ctx, org.leader).total == 3
    assert "gdgs" in services.departments(ctx)
