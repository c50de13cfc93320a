"""The supervision board (督办看板): open events past their deadline or escalated to 督办, and those due soon.

An event is overdue when its stage's deadline has passed (whether or not the overdue scan has flagged it
yet) and escalated when the scan or a 督办 action has supervised it. 即将超期 counts the open events whose
deadline falls within the next few working hours (CommandSettings.supervision_soon_hours) and those the
deadline scan warned about (临期预警: less than a share of their time limit left). Every count and
list holds only the events the reader may see, as the console and the inbox do.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, case, func, not_, or_, select

from citybrain.apps.command import deadlines, services
from citybrain.apps.command import workflows as wf
from citybrain.apps.command.models import CityEvent, EventStep
from citybrain.apps.command.schemas import SupervisionBoard, SupervisionDepartment, SupervisionRow
from citybrain.apps.geo import services as geo
from citybrain.sdk import Actor, AppContext, BadRequest, utcnow

# Timeline actions that escalate an event: the overdue scan's flag and a 督办 action.
ESCALATIONS = ("overdue", "supervise")
MAX_FILTER = 12


def parse_filters(ctx: AppContext, department: str, district: str) -> tuple[int | None, str | None]:
    """The department id and district code of the board's filters (empty: all); 400 for a bad value."""
    department, district = department.strip(), district.strip()
    dept_id: int | None = None
    if department:
        if len(department) > MAX_FILTER or not department.isascii() or not department.isdigit():
            raise BadRequest("{value} is not a department.", value=department[:MAX_FILTER])
        dept_id = int(department)
        if dept_id not in {d.id for d in services.departments(ctx).values()}:
            raise BadRequest("There is no department {id}.", id=dept_id)
    if district:
        if len(district) != 6 or not district.isascii() or not district.isdigit():
            raise BadRequest("{value} is not a district code.", value=district[:MAX_FILTER])
        if geo.district(ctx, district) is None:
            raise BadRequest("There is no district {code}.", code=district)
    return dept_id, district or None


def _row(
    event: CityEvent,
    name: str,
    now: datetime,
    zone: ZoneInfo,
    office: tuple[Any, Any],
    escalations: tuple[int, datetime | None],
) -> SupervisionRow:
    """A board row, with the time past the deadline in clock hours, working hours and working days."""
    late = event.deadline is not None and event.deadline < now
    hours = working = days = None
    if late and event.deadline is not None:
        hours = round((now - event.deadline) / timedelta(hours=1), 1)
        spent = deadlines.working_hours_between(event.deadline, now, zone, office)
        working = round(spent / timedelta(hours=1), 1)
        days = round(spent / deadlines.office_day(office), 1)
    return SupervisionRow(
        id=event.id,
        number=event.number,
        title=event.title,
        workflow=event.workflow,
        state=event.state,
        category=event.category,
        district=event.district,
        department_id=event.department_id,
        department=name,
        deadline=event.deadline,
        overdue=late or event.overdue,
        supervised=event.supervised,
        overdue_hours=hours,
        overdue_working_hours=working,
        overdue_working_days=days,
        escalations=escalations[0],
        escalated_at=escalations[1],
        urges=event.urges,
        warned=event.due_soon and not late,
        extension_days=event.extension_days,
    )


def board(
    ctx: AppContext,
    actor: Actor,
    locale: str,
    *,
    department: str = "",
    district: str = "",
    now: datetime | None = None,
) -> SupervisionBoard:
    """The board for the reader: counts, counts by department and the events, filtered (400 for bad filters)."""
    scope = actor.visible_departments(wf.READ)
    dept_id, district_code = parse_filters(ctx, department, district)
    s = services.settings(ctx)
    zone = ZoneInfo(ctx.settings.timezone)
    office = (s.office_start, s.office_end)
    now = now or utcnow()
    until = deadlines.add_working_hours(now, s.supervision_soon_hours, zone, office)

    e = CityEvent
    late: ColumnElement[bool] = or_(e.overdue.is_(True), and_(e.deadline.is_not(None), e.deadline < now))
    soon: ColumnElement[bool] = and_(
        e.overdue.is_(False),
        e.deadline.is_not(None),
        e.deadline >= now,
        or_(e.deadline <= until, e.due_soon.is_(True)),
    )
    warned: ColumnElement[bool] = and_(e.due_soon.is_(True), not_(late))
    listed = or_(late, e.supervised.is_(True))

    def where(stmt: Any) -> Any:
        stmt = services._visible(stmt, scope).where(e.state.in_(services._open_states()))
        if dept_id is not None:
            stmt = stmt.where(e.department_id == dept_id)
        if district_code is not None:
            stmt = stmt.where(e.district == district_code)
        return stmt

    def flag(condition: ColumnElement[bool]) -> Any:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    counts = where(
        select(
            e.department_id,
            flag(late),
            flag(e.supervised.is_(True)),
            flag(soon),
            flag(listed),
            flag(warned),
        )
        .where(or_(listed, soon))
        .group_by(e.department_id)
    )
    by_deadline = (e.deadline.is_(None), e.deadline, e.id)
    with ctx.read() as session:
        grouped = [
            (d, int(a), int(b), int(c), int(n), int(w)) for d, a, b, c, n, w in session.execute(counts)
        ]
        rows = list(
            session.scalars(where(select(e).where(listed)).order_by(*by_deadline).limit(s.supervision_rows))
        )
        coming = list(
            session.scalars(
                where(select(e).where(soon, not_(e.supervised.is_(True))))
                .order_by(*by_deadline)
                .limit(s.supervision_rows)
            )
        )
        ids = [r.id for r in rows]
        escalated: dict[int, tuple[int, datetime | None]] = {}
        if ids:
            steps = (
                select(EventStep.event_id, func.count(), func.max(EventStep.at))
                .where(EventStep.event_id.in_(ids), EventStep.action.in_(ESCALATIONS))
                .group_by(EventStep.event_id)
            )
            escalated = {i: (int(n), at) for i, n, at in session.execute(steps)}

    def name_of(zh: str, en: str) -> str:
        return (en or zh) if locale == "en" else (zh or en)

    names = {d.id: name_of(d.name_zh, d.name_en) for d in services.departments(ctx).values()}
    unassigned = name_of("未指定", "Not assigned")

    def named(dept: int | None) -> str:
        return names.get(dept, str(dept)) if dept is not None else unassigned

    departments = sorted(
        (
            SupervisionDepartment(department_id=d, name=named(d), overdue=a, escalated=b, due_soon=c)
            for d, a, b, c, _, _ in grouped
        ),
        key=lambda r: (-r.overdue, -r.escalated, -r.due_soon, r.name),
    )
    return SupervisionBoard(
        now=now,
        due_soon_until=until,
        due_soon_hours=s.supervision_soon_hours,
        department_id=dept_id,
        district=district_code,
        overdue=sum(g[1] for g in grouped),
        escalated=sum(g[2] for g in grouped),
        due_soon=sum(g[3] for g in grouped),
        total=sum(g[4] for g in grouped),
        warned=sum(g[5] for g in grouped),
        limit=s.supervision_rows,
        items=[
            _row(r, named(r.department_id), now, zone, office, escalated.get(r.id, (0, None))) for r in rows
        ],
        due_soon_items=[_row(r, named(r.department_id), now, zone, office, (0, None)) for r in coming],
        departments=departments,
    )
