"""The supervision board (督办看板): overdue and escalated events, due soon, scoping, filters, the page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from citybrain.apps.command import deadlines, services, supervision
from citybrain.apps.command.models import CityEvent
from citybrain.core.context import AppContext
from citybrain.core.errors import BadRequest, Forbidden
from citybrain.core.permissions import SYSTEM, Actor
from citybrain.sdk import utcnow
from tests.apps.command.conftest import Org
from tests.apps.command.test_api import problem
from tests.apps.command.test_kpi import case
from tests.apps.command.test_services import take, ticket
from tests.apps.context.conftest import token_for
from tests.conftest import Seeded, login

ZONE = ZoneInfo("Asia/Shanghai")
OFFICE = (datetime(2026, 1, 1, 9).time(), datetime(2026, 1, 1, 17).time())
# A Wednesday, a working day, in office hours.
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=ZONE)


@dataclass
class Board:
    """The events of the scenario by role."""

    late: int  # 环保局 ticket, two days past its deadline (flagged and escalated by the scan)
    supervised: int  # 环保局 ticket, 督办 by the dispatcher, not yet due
    later: int  # 环保局 ticket, due in a month
    soon: int  # 涪城区 case, due within the next working hours
    oldest: int  # 涪城区 case, five days past its deadline


def _deadline(ctx: AppContext, event_id: int, moment: datetime) -> None:
    with ctx.uow(SYSTEM, "test.deadline") as uow:
        uow.session.execute(update(CityEvent).where(CityEvent.id == event_id).values(deadline=moment))


def scenario(ctx: AppContext, org: Org, now: datetime, oldest_days: int = 5) -> Board:
    """Five open events around `now`; the overdue scan runs at `now`."""
    dispatched = ((org.leader, "file", ""), (org.dispatcher, "dispatch", ""))
    board = Board(
        late=ticket(ctx, org),
        supervised=ticket(ctx, org),
        later=ticket(ctx, org),
        soon=case(ctx, org, *dispatched),
        oldest=case(ctx, org, *dispatched),
    )
    take(ctx, org.dispatcher, board.supervised, "assign")
    take(ctx, org.dispatcher, board.supervised, "supervise")
    until = deadlines.add_working_hours(now, 4, ZONE, OFFICE)
    for event_id, moment in (
        (board.late, now - timedelta(days=2)),
        (board.supervised, now + timedelta(days=30)),
        (board.later, now + timedelta(days=30)),
        (board.soon, until - timedelta(minutes=1)),
        (board.oldest, now - timedelta(days=oldest_days)),
    ):
        _deadline(ctx, event_id, moment)
    assert services.scan_overdue(ctx, now) == 2
    return board


def test_working_time_past_a_deadline() -> None:
    # Monday 10:00 to Wednesday 10:00: 7 + 8 + 1 office hours
    start = datetime(2026, 11, 23, 10, 0, tzinfo=ZONE)
    assert deadlines.working_hours_between(start, NOW, ZONE, OFFICE) == timedelta(hours=16)
    # National Day 2024: 30 September 16:00 to 8 October 10:00 crosses the holiday (1 h + 1 h)
    holiday = deadlines.working_hours_between(
        datetime(2024, 9, 30, 16, tzinfo=ZONE), datetime(2024, 10, 8, 10, tzinfo=ZONE), ZONE, OFFICE
    )
    assert holiday == timedelta(hours=2)
    assert deadlines.working_hours_between(NOW, start, ZONE, OFFICE) == timedelta()
    assert deadlines.office_day(OFFICE) == timedelta(hours=8)


def test_board_lists_overdue_and_escalated_most_overdue_first(ctx: AppContext, org: Org) -> None:
    b = scenario(ctx, org, NOW)
    found = supervision.board(ctx, org.leader, "zh_CN", now=NOW)
    assert [r.id for r in found.items] == [b.oldest, b.late, b.supervised]
    assert (found.overdue, found.escalated, found.due_soon, found.total) == (2, 3, 1, 3)
    assert [r.id for r in found.due_soon_items] == [b.soon]  # the event due in a month is nowhere
    oldest, late, supervised = found.items
    # Friday 10:00 to Wednesday 10:00: 7 + 8 + 8 + 1 office hours = 3 working days
    assert (oldest.overdue_working_hours, oldest.overdue_working_days, oldest.overdue_hours) == (
        24.0,
        3.0,
        120.0,
    )
    assert (late.overdue_working_hours, late.overdue_working_days) == (16.0, 2.0)
    assert late.overdue and late.supervised and late.escalations == 1 and late.department == "市生态环境局"
    assert not supervised.overdue and supervised.overdue_working_days is None
    assert supervised.supervised and supervised.escalations == 1 and supervised.escalated_at is not None
    by_dept = {d.department_id: (d.overdue, d.escalated, d.due_soon) for d in found.departments}
    assert by_dept == {org.sthj: (1, 2, 0), org.district: (1, 1, 1)}
    assert found.due_soon_until == deadlines.add_working_hours(NOW, 4, ZONE, OFFICE)

    # filters
    mine = supervision.board(ctx, org.leader, "en", department=str(org.sthj), now=NOW)
    assert [r.id for r in mine.items] == [b.late, b.supervised] and mine.due_soon == 0
    here = supervision.board(ctx, org.leader, "zh_CN", district="510703", now=NOW)
    assert here.total == 3
    elsewhere = supervision.board(ctx, org.leader, "zh_CN", district="510704", now=NOW)
    assert elsewhere.total == 0 and elsewhere.items == [] and elsewhere.departments == []
    for bad in ({"department": "abc"}, {"department": "99999"}, {"district": "51"}, {"district": "999999"}):
        with pytest.raises(BadRequest):
            supervision.board(ctx, org.leader, "zh_CN", now=NOW, **bad)

    # an event moved on leaves the board: its new stage has a fresh deadline
    take(ctx, org.district_handler, b.oldest, "accept")
    later = supervision.board(ctx, org.leader, "zh_CN", now=NOW)
    assert b.oldest not in [r.id for r in later.items if not r.supervised]


def test_department_staff_see_their_department_only(ctx: AppContext, org: Org) -> None:
    b = scenario(ctx, org, NOW)
    env = supervision.board(ctx, org.handler, "zh_CN", now=NOW)
    assert [r.id for r in env.items] == [b.late, b.supervised] and env.due_soon_items == []
    assert [d.department_id for d in env.departments] == [org.sthj]
    district = supervision.board(ctx, org.district_handler, "zh_CN", now=NOW)
    assert [r.id for r in district.items] == [b.oldest] and [r.id for r in district.due_soon_items] == [
        b.soon
    ]
    # another department's filter shows nothing of it
    assert supervision.board(ctx, org.cg_handler, "zh_CN", department=str(org.sthj), now=NOW).total == 0
    nobody = Actor(kind="user", id=99, username="x", department_id=org.sthj, grants={})
    with pytest.raises(Forbidden):
        supervision.board(ctx, nobody, "zh_CN", now=NOW)


def test_api(client: TestClient, ctx: AppContext, seeded: Seeded, org: Org) -> None:
    b = scenario(ctx, org, utcnow())
    client.headers["Authorization"] = f"Bearer {token_for(ctx, seeded, ['command.event.read'])}"
    body = client.get("/api/command/supervision").json()
    assert [r["id"] for r in body["items"]] == [b.oldest, b.late, b.supervised]
    assert (body["overdue"], body["escalated"], body["due_soon"]) == (2, 3, 1)
    assert [r["id"] for r in body["due_soon_items"]] == [b.soon]
    filtered = client.get("/api/command/supervision", params={"department": org.sthj, "district": "510703"})
    assert filtered.status_code == 200 and filtered.json()["total"] == 2
    for bad in ({"department": "x"}, {"department": "0"}, {"district": "5107031"}, {"district": "000000"}):
        problem(client.get("/api/command/supervision", params=bad), 400)
    del client.headers["Authorization"]
    problem(client.get("/api/command/supervision"), 401)


def test_page_in_both_languages(client: TestClient, ctx: AppContext, seeded: Seeded, org: Org) -> None:
    b = scenario(ctx, org, utcnow(), oldest_days=30)  # whole working days past, holidays or not
    login(client, seeded.admin_username, seeded.admin_password)
    page = client.get("/command/supervision")
    assert page.status_code == 200 and "督办看板" in page.text and "echarts.min.js" in page.text
    assert f'href="/command/events/{b.late}"' in page.text and f'data-event="{b.later}"' not in page.text
    assert 'data-count="overdue">2<' in page.text and 'data-count="due_soon">1<' in page.text
    assert "个工作日" in page.text and 'href="/command/supervision"' in page.text  # in the navigation
    client.cookies.set("cb_lang", "en")
    english = client.get("/command/supervision", params={"district": "510703"})
    assert (
        english.status_code == 200 and "Supervision board" in english.text and "working days" in english.text
    )
    assert "督办看板" not in english.text
    bad = client.get("/command/supervision", params={"department": "abc"})
    assert bad.status_code == 400 and 'role="alert"' in bad.text
