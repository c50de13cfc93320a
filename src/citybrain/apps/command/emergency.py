"""Emergency command (应急指挥): plans activated as responses with their task lists, resources and dispatch,
the nearest resources by road travel time, and the command log.

A response starts by hand or from a warning whose rule a plan names; there is one active response per plan
and district (a second warning joins it, raising the level when it is more severe). Every write runs in a
unit of work (audited in the ledger), writes a command log entry and publishes ResponseChanged. A write
refused for the actor's role (403) or the response's or resource's state (409) changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from citybrain.apps.command import response_plans as rp
from citybrain.apps.command import services
from citybrain.apps.command.events import ResponseChanged
from citybrain.apps.command.models import (
    CityEvent,
    CommandLogEntry,
    EmergencyResource,
    EmergencyResponse,
    ResponseTask,
)
from citybrain.apps.command.schemas import (
    DispatchCreate,
    LevelChange,
    LogRead,
    NearestItem,
    NearestResult,
    NoteCreate,
    Page,
    PlanLevelRead,
    PlanRead,
    PlanTaskRead,
    ReleaseCreate,
    ResourceCreate,
    ResourceRead,
    ResourceUpdate,
    ResponseCreate,
    ResponseDetail,
    ResponseEnd,
    ResponseRead,
    TaskRead,
    TaskUpdate,
)
from citybrain.apps.geo import services as geo
from citybrain.apps.geo.roads import haversine_m
from citybrain.apps.warning import services as warning
from citybrain.apps.warning.events import WarningChanged, WarningLifted, WarningRaised
from citybrain.sdk import (
    SYSTEM,
    Actor,
    AllDepartments,
    AppContext,
    Conflict,
    Forbidden,
    NotFound,
    ProblemError,
    mask_phone,
    utcnow,
)

log = logging.getLogger(__name__)
PLANS_KEY = "command.emergency.plans"
READ = "command.emergency.read"
COMMAND = "command.emergency.command"
TASK = "command.emergency.task"
MANAGE = "command.resource.manage"
ACTIVE, ENDED = "active", "ended"
TASK_STATUSES = ("todo", "doing", "done")
N_ = services.N_


# --- plans ----------------------------------------------------------------------------------------


def load_plans(ctx: AppContext) -> dict[str, rp.Plan]:
    """Collect and check every declared plan (against the declared categories); keep them for this platform."""
    found = rp.collect(ctx, services.categories(ctx))
    ctx.extensions[PLANS_KEY] = found
    return found


def plans(ctx: AppContext) -> dict[str, rp.Plan]:
    """The declared plans by code."""
    found: dict[str, rp.Plan] | None = ctx.extensions.get(PLANS_KEY)
    return found if found is not None else load_plans(ctx)


def _plan_read(plan: rp.Plan) -> PlanRead:
    return PlanRead(
        code=plan.code,
        name_zh=plan.name_zh,
        name_en=plan.name_en,
        rules=list(plan.rules),
        categories=list(plan.categories),
        levels=[
            PlanLevelRead(
                level=level,
                roman=rp.ROMAN[level],
                color=rp.LEVEL_COLORS[level],
                name_zh=rp.LEVEL_NAMES[level][0],
                name_en=rp.LEVEL_NAMES[level][1],
                departments=plan.departments(level),
                tasks=[
                    PlanTaskRead(department=t.department, name_zh=t.name_zh, name_en=t.name_en)
                    for t in plan.tasks(level)
                ],
            )
            for level in rp.LEVELS
        ],
    )


def list_plans(ctx: AppContext, actor: Actor) -> list[PlanRead]:
    """Every plan with the departments and tasks of each level."""
    actor.require(READ)
    return [_plan_read(p) for p in plans(ctx).values()]


def get_plan(ctx: AppContext, actor: Actor, code: str) -> PlanRead:
    """One plan (404 when unknown)."""
    actor.require(READ)
    found = plans(ctx).get(code)
    if found is None:
        raise NotFound("There is no emergency plan {code}.", code=code)
    return _plan_read(found)


# --- reading --------------------------------------------------------------------------------------


def _sees_contact(actor: Actor) -> bool:
    return actor.can(MANAGE) or actor.can(COMMAND)


def _resource_read(actor: Actor, row: EmergencyResource) -> ResourceRead:
    return ResourceRead(
        id=row.id,
        name=row.name,
        kind=row.kind,
        department_id=row.department_id,
        lon=row.lon,
        lat=row.lat,
        district=row.district,
        address=row.address,
        status=row.status,
        capacity=row.capacity,
        unit=row.unit,
        contact_name=row.contact_name,
        contact_phone=row.contact_phone if _sees_contact(actor) else mask_phone(row.contact_phone),
        response_id=row.response_id,
        dispatched_at=row.dispatched_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _response_read(ctx: AppContext, row: EmergencyResponse, counts: tuple[int, int]) -> ResponseRead:
    plan = plans(ctx).get(row.plan)
    return ResponseRead(
        id=row.id,
        plan=row.plan,
        plan_name_zh=plan.name_zh if plan else row.plan,
        plan_name_en=plan.name_en if plan else row.plan,
        level=row.level,
        level_roman=rp.ROMAN[row.level],
        color=rp.LEVEL_COLORS[row.level],
        state=row.state,
        district=row.district,
        lon=row.lon,
        lat=row.lat,
        address=row.address,
        title=row.title,
        source=row.source,
        warning_id=row.warning_id,
        rule_code=row.rule_code,
        event_id=row.event_id,
        end_suggested=row.end_suggested,
        started_by=row.started_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
        ended_at=row.ended_at,
        tasks_total=counts[0],
        tasks_done=counts[1],
    )


def _task_counts(session: Session, ids: Sequence[int]) -> dict[int, tuple[int, int]]:
    found = dict.fromkeys(ids, (0, 0))
    if ids:
        done = func.sum(case((ResponseTask.status == "done", 1), else_=0))
        stmt = (
            select(ResponseTask.response_id, func.count(), done)
            .where(ResponseTask.response_id.in_(ids))
            .group_by(ResponseTask.response_id)
        )
        for response_id, total, finished in session.execute(stmt):
            found[response_id] = (int(total), int(finished or 0))
    return found


def list_responses(
    ctx: AppContext, actor: Actor, *, state: str | None = ACTIVE, limit: int = 50, offset: int = 0
) -> Page[ResponseRead]:
    """Responses, the most severe and newest first; `state` None lists every one."""
    actor.require(READ)
    stmt = select(EmergencyResponse)
    if state:
        stmt = stmt.where(EmergencyResponse.state == state)
    with ctx.read() as session:
        total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        rows = list(
            session.scalars(
                stmt.order_by(EmergencyResponse.state, EmergencyResponse.level, EmergencyResponse.id.desc())
                .limit(limit)
                .offset(offset)
            )
        )
        counts = _task_counts(session, [r.id for r in rows])
        items = [_response_read(ctx, r, counts[r.id]) for r in rows]
    return Page[ResponseRead](items=items, total=total, limit=limit, offset=offset)


def _get_response(session: Session, response_id: int) -> EmergencyResponse:
    row = session.get(EmergencyResponse, response_id)
    if row is None:
        raise NotFound("Emergency response {id} does not exist.", id=response_id)
    return row


def get_response(ctx: AppContext, actor: Actor, response_id: int) -> ResponseDetail:
    """A response with its tasks, dispatched resources and command log."""
    actor.require(READ)
    with ctx.read() as session:
        row = _get_response(session, response_id)
        tasks = list(
            session.scalars(
                select(ResponseTask).where(ResponseTask.response_id == response_id).order_by(ResponseTask.id)
            )
        )
        resources = session.scalars(
            select(EmergencyResource)
            .where(EmergencyResource.response_id == response_id)
            .order_by(EmergencyResource.id)
        )
        entries = session.scalars(
            select(CommandLogEntry)
            .where(CommandLogEntry.response_id == response_id)
            .order_by(CommandLogEntry.id)
        )
        done = sum(1 for t in tasks if t.status == "done")
        return ResponseDetail(
            **_response_read(ctx, row, (len(tasks), done)).model_dump(),
            tasks=[TaskRead.model_validate(t) for t in tasks],
            resources=[_resource_read(actor, r) for r in resources],
            log=[LogRead.model_validate(e) for e in entries],
        )


def response_log(ctx: AppContext, actor: Actor, response_id: int) -> list[LogRead]:
    """A response's command log, oldest first."""
    return get_response(ctx, actor, response_id).log


def response_tasks(ctx: AppContext, actor: Actor, response_id: int) -> list[TaskRead]:
    """A response's tasks in the order they were added."""
    return get_response(ctx, actor, response_id).tasks


# --- writing helpers ------------------------------------------------------------------------------


def _log(
    session: Session,
    row: EmergencyResponse,
    action: str,
    actor: Actor,
    at: datetime,
    note: str = "",
    **refs: Any,
) -> None:
    session.add(
        CommandLogEntry(
            response_id=row.id,
            action=action,
            at=at,
            by=actor.ref,
            by_name=actor.display_name,
            note=note[:1000],
            **refs,
        )
    )


def _changed(row: EmergencyResponse, action: str, at: datetime, actor: Actor) -> ResponseChanged:
    return ResponseChanged(
        response_id=row.id,
        plan=row.plan,
        level=row.level,
        state=row.state,
        district=row.district,
        action=action,
        at=at,
        by=actor.ref,
    )


def _add_tasks(
    ctx: AppContext,
    session: Session,
    row: EmergencyResponse,
    plan: rp.Plan,
    level: int,
    actor: Actor,
    at: datetime,
) -> int:
    """Add the level's tasks the response does not have yet; return how many were added."""
    have = {
        (department, name)
        for department, name in session.execute(
            select(ResponseTask.department, ResponseTask.name_zh).where(ResponseTask.response_id == row.id)
        )
    }
    depts = services.departments(ctx)
    added = 0
    for task in plan.tasks(level):
        code = rp.department_for(task.department, row.district)
        if (code, task.name_zh) in have:
            continue
        dept = depts.get(code)
        session.add(
            ResponseTask(
                response_id=row.id,
                level=level,
                department=code,
                department_id=dept.id if dept is not None else None,
                name_zh=task.name_zh,
                name_en=task.name_en,
                status="todo",
                updated_at=at,
                updated_by=actor.ref,
                updated_by_name=actor.display_name,
            )
        )
        have.add((code, task.name_zh))
        added += 1
    return added


def _active_key(plan: str, district: str | None) -> str:
    return f"{plan}:{district or 'city'}"


def _active(session: Session, plan: str, district: str | None) -> EmergencyResponse | None:
    return session.scalar(
        select(EmergencyResponse).where(EmergencyResponse.active_key == _active_key(plan, district))
    )


def _level_name(level: int) -> str:
    return rp.LEVEL_NAMES[level][0]


def _field(field: str, detail: str, **params: Any) -> ProblemError:
    return services._field_error(field, detail, **params)


# --- activation -----------------------------------------------------------------------------------


def activate(ctx: AppContext, actor: Actor, data: ResponseCreate) -> ResponseDetail:
    """Start a response by hand at a level (409 when the plan is already active in that district)."""
    actor.require(COMMAND)
    plan = plans(ctx).get(data.plan)
    if plan is None:
        raise _field("plan", N_("There is no emergency plan {code}."), code=data.plan)
    services._check_place(ctx, data.district)
    district = data.district
    if district is None and data.location is not None:
        district = services.district_at(ctx, data.location.lon, data.location.lat)
    if data.event_id is not None:
        with ctx.read() as session:
            if session.get(CityEvent, data.event_id) is None:
                raise _field("event_id", N_("There is no event {id}."), id=data.event_id)
    title = data.title or _default_title(ctx, plan, district)
    try:
        response_id = _start(
            ctx,
            actor,
            plan,
            data.level,
            district=district,
            lon=data.location.lon if data.location else None,
            lat=data.location.lat if data.location else None,
            address=data.address,
            title=title,
            source="manual",
            event_id=data.event_id,
            note=data.note,
        )
    except IntegrityError:
        with ctx.read() as session:
            existing = _active(session, plan.code, district)
        raise Conflict(
            "The plan {plan} is already active here: response {id}.",
            plan=plan.code,
            id=existing.id if existing else 0,
        ) from None
    return get_response(ctx, actor, response_id)


def _default_title(ctx: AppContext, plan: rp.Plan, district: str | None) -> str:
    place = geo.district(ctx, district) if district else None
    return f"{place.name_zh}{plan.name_zh}响应" if place else f"{plan.name_zh}响应"


def _start(
    ctx: AppContext,
    actor: Actor,
    plan: rp.Plan,
    level: int,
    *,
    district: str | None,
    lon: float | None,
    lat: float | None,
    address: str,
    title: str,
    source: str,
    event_id: int | None = None,
    warning_id: int | None = None,
    rule_code: str | None = None,
    note: str = "",
) -> int:
    """Insert an active response with its level's tasks; IntegrityError when one is active already."""
    now = utcnow()
    with ctx.uow(actor, "command.emergency.activate") as uow:
        if _active(uow.session, plan.code, district) is not None:
            raise IntegrityError("active response exists", None, ValueError(plan.code))
        row = EmergencyResponse(
            plan=plan.code,
            level=level,
            state=ACTIVE,
            active_key=_active_key(plan.code, district),
            district=district,
            lon=lon,
            lat=lat,
            address=address,
            title=title[:200],
            source=source,
            warning_id=warning_id,
            rule_code=rule_code,
            event_id=event_id,
            started_by=actor.ref,
            created_at=now,
            updated_at=now,
        )
        uow.session.add(row)
        uow.session.flush()
        _add_tasks(ctx, uow.session, row, plan, level, actor, now)
        text = f"启动{plan.name_zh}{_level_name(level)}响应"
        _log(
            uow.session,
            row,
            "activate",
            actor,
            now,
            f"{text}：{note}" if note else text,
            level=level,
            warning_id=warning_id,
        )
        uow.emit(_changed(row, "activate", now, actor))
        return row.id


def change_level(ctx: AppContext, actor: Actor, response_id: int, data: LevelChange) -> ResponseDetail:
    """Raise or lower an active response; the new level's tasks are added (409: ended or same level)."""
    actor.require(COMMAND)
    _set_level(ctx, actor, response_id, data.level, data.note)
    return get_response(ctx, actor, response_id)


def _set_level(
    ctx: AppContext, actor: Actor, response_id: int, level: int, note: str, warning_id: int | None = None
) -> None:
    now = utcnow()
    with ctx.uow(actor, "command.emergency.level") as uow:
        row = _get_response(uow.session, response_id)
        if row.state != ACTIVE:
            raise Conflict("Emergency response {id} has ended.", id=response_id)
        if row.level == level:
            raise Conflict("Emergency response {id} is at this level already.", id=response_id)
        plan = plans(ctx).get(row.plan)
        if plan is None:
            raise Conflict("The plan {plan} of this response is no longer declared.", plan=row.plan)
        action = "raise" if level < row.level else "lower"
        text = (
            f"{'提升' if action == 'raise' else '降低'}为{_level_name(level)}（原{_level_name(row.level)}）"
        )
        row.level, row.updated_at = level, now
        _add_tasks(ctx, uow.session, row, plan, level, actor, now)
        _log(
            uow.session,
            row,
            action,
            actor,
            now,
            f"{text}：{note}" if note else text,
            level=level,
            warning_id=warning_id,
        )
        uow.emit(_changed(row, action, now, actor))


def end(ctx: AppContext, actor: Actor, response_id: int, data: ResponseEnd) -> ResponseDetail:
    """End (终止) an active response; the resources dispatched to it are released (409: ended already)."""
    actor.require(COMMAND)
    now = utcnow()
    with ctx.uow(actor, "command.emergency.end") as uow:
        row = _get_response(uow.session, response_id)
        if row.state != ACTIVE:
            raise Conflict("Emergency response {id} has ended.", id=response_id)
        for resource in uow.session.scalars(
            select(EmergencyResource).where(EmergencyResource.response_id == row.id)
        ):
            _release_row(uow.session, row, resource, actor, now, "响应终止，自动释放")
        row.state, row.active_key, row.ended_at, row.updated_at = ENDED, None, now, now
        _log(
            uow.session,
            row,
            "end",
            actor,
            now,
            f"响应终止：{data.note}" if data.note else "响应终止",
            level=row.level,
        )
        uow.emit(_changed(row, "end", now, actor))
    return get_response(ctx, actor, response_id)


def add_note(ctx: AppContext, actor: Actor, response_id: int, data: NoteCreate) -> LogRead:
    """An operator's note in the command log (of an active or ended response)."""
    actor.require(COMMAND)
    now = utcnow()
    with ctx.uow(actor, "command.emergency.note") as uow:
        row = _get_response(uow.session, response_id)
        entry = CommandLogEntry(
            response_id=row.id,
            action="note",
            at=now,
            by=actor.ref,
            by_name=actor.display_name,
            note=data.note,
        )
        uow.session.add(entry)
        uow.session.flush()
        uow.emit(_changed(row, "note", now, actor))
        return LogRead.model_validate(entry)


# --- tasks ----------------------------------------------------------------------------------------


def update_task(ctx: AppContext, actor: Actor, task_id: int, data: TaskUpdate) -> TaskRead:
    """Move a task to 待办/进行中/完成: its department's staff or a commander (409: response ended)."""
    actor.require(READ)
    now = utcnow()
    with ctx.uow(actor, "command.emergency.task") as uow:
        task = uow.session.get(ResponseTask, task_id)
        if task is None:
            raise NotFound("Emergency task {id} does not exist.", id=task_id)
        scope = actor.scope(TASK)
        mine = isinstance(scope, AllDepartments) or (
            task.department_id is not None and task.department_id in scope
        )
        if not (mine or actor.can(COMMAND)):
            raise Forbidden("You may not update the tasks of this department.")
        row = _get_response(uow.session, task.response_id)
        if row.state != ACTIVE:
            raise Conflict("Emergency response {id} has ended.", id=row.id)
        if task.status == data.status:
            raise Conflict("The task is in this status already.")
        before = task.status
        task.status, task.updated_at = data.status, now
        task.updated_by, task.updated_by_name = actor.ref, actor.display_name
        row.updated_at = now
        names = {"todo": "待办", "doing": "进行中", "done": "完成"}
        text = f"{task.name_zh}：{names[before]} → {names[data.status]}"
        _log(
            uow.session,
            row,
            "task",
            actor,
            now,
            f"{text}（{data.note}）" if data.note else text,
            task_id=task.id,
        )
        uow.emit(_changed(row, "task", now, actor))
        uow.session.flush()
        return TaskRead.model_validate(task)


# --- resources ------------------------------------------------------------------------------------


def _may_manage(actor: Actor, department_id: int | None) -> None:
    actor.require(MANAGE)
    scope = actor.scope(MANAGE)
    if not isinstance(scope, AllDepartments) and (department_id is None or department_id not in scope):
        raise Forbidden("You may not manage the resources of this department.")


def _check_department(ctx: AppContext, department_id: int | None) -> None:
    if department_id is not None and department_id not in {d.id for d in services.departments(ctx).values()}:
        raise _field("department_id", N_("There is no department {id}."), id=department_id)


def list_resources(
    ctx: AppContext,
    actor: Actor,
    *,
    kind: str | None = None,
    status: str | None = None,
    district: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Page[ResourceRead]:
    """Resources, filtered by kind, status and district."""
    actor.require(READ)
    stmt = select(EmergencyResource)
    if kind:
        stmt = stmt.where(EmergencyResource.kind == kind)
    if status:
        stmt = stmt.where(EmergencyResource.status == status)
    if district:
        stmt = stmt.where(EmergencyResource.district == district)
    with ctx.read() as session:
        total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        rows = session.scalars(stmt.order_by(EmergencyResource.id).limit(limit).offset(offset))
        items = [_resource_read(actor, r) for r in rows]
    return Page[ResourceRead](items=items, total=total, limit=limit, offset=offset)


def get_resource(ctx: AppContext, actor: Actor, resource_id: int) -> ResourceRead:
    """One resource (404 when unknown)."""
    actor.require(READ)
    with ctx.read() as session:
        return _resource_read(actor, _get_resource(session, resource_id))


def _get_resource(session: Session, resource_id: int) -> EmergencyResource:
    row = session.get(EmergencyResource, resource_id)
    if row is None:
        raise NotFound("Emergency resource {id} does not exist.", id=resource_id)
    return row


def create_resource(ctx: AppContext, actor: Actor, data: ResourceCreate) -> ResourceRead:
    """Register a resource at a location (its district found by the geo app)."""
    _may_manage(actor, data.department_id)
    _check_department(ctx, data.department_id)
    district = services.district_at(ctx, data.location.lon, data.location.lat)
    now = utcnow()
    with ctx.uow(actor, "command.resource.create") as uow:
        row = EmergencyResource(
            name=data.name,
            kind=data.kind,
            department_id=data.department_id,
            lon=data.location.lon,
            lat=data.location.lat,
            district=district,
            address=data.address,
            status=data.status,
            capacity=data.capacity,
            unit=data.unit,
            contact_name=data.contact_name,
            contact_phone=data.contact_phone,
            created_at=now,
            updated_at=now,
        )
        uow.session.add(row)
        uow.session.flush()
        return _resource_read(actor, row)


def update_resource(ctx: AppContext, actor: Actor, resource_id: int, data: ResourceUpdate) -> ResourceRead:
    """Change a resource (409: a dispatched one cannot change status; release it)."""
    actor.require(MANAGE)
    changes = data.model_dump(exclude_unset=True)
    if "department_id" in changes:
        _check_department(ctx, data.department_id)
    with ctx.uow(actor, "command.resource.update") as uow:
        row = _get_resource(uow.session, resource_id)
        _may_manage(actor, row.department_id)
        if "department_id" in changes:
            _may_manage(actor, data.department_id)
        if data.status is not None and row.status == "dispatched":
            raise Conflict("Resource {id} is dispatched; release it first.", id=resource_id)
        location = changes.pop("location", None)
        for name in ("name", "kind", "address", "unit", "contact_name", "status", "capacity"):
            if changes.get(name) is not None:
                setattr(row, name, changes[name])
        if "department_id" in changes:
            row.department_id = data.department_id
        if "contact_phone" in changes:
            row.contact_phone = data.contact_phone
        if location is not None:
            row.lon, row.lat = location["lon"], location["lat"]
            row.district = services.district_at(ctx, row.lon, row.lat)
        row.updated_at = utcnow()
        uow.session.flush()
        return _resource_read(actor, row)


def delete_resource(ctx: AppContext, actor: Actor, resource_id: int) -> None:
    """Remove a resource (409 while it is dispatched)."""
    actor.require(MANAGE)
    with ctx.uow(actor, "command.resource.delete") as uow:
        row = _get_resource(uow.session, resource_id)
        _may_manage(actor, row.department_id)
        if row.status == "dispatched":
            raise Conflict("Resource {id} is dispatched; release it first.", id=resource_id)
        uow.session.delete(row)


def dispatch(ctx: AppContext, actor: Actor, response_id: int, data: DispatchCreate) -> ResourceRead:
    """Dispatch an available resource to an active response (409: not available, or the response ended)."""
    actor.require(COMMAND)
    now = utcnow()
    with ctx.uow(actor, "command.emergency.dispatch") as uow:
        row = _get_response(uow.session, response_id)
        if row.state != ACTIVE:
            raise Conflict("Emergency response {id} has ended.", id=response_id)
        resource = uow.session.get(EmergencyResource, data.resource_id)
        if resource is None:
            raise _field("resource_id", N_("There is no resource {id}."), id=data.resource_id)
        if resource.status != "available":
            raise Conflict(
                "Resource {id} is not available (it is {status}).", id=resource.id, status=resource.status
            )
        resource.status, resource.response_id, resource.dispatched_at, resource.updated_at = (
            "dispatched",
            row.id,
            now,
            now,
        )
        row.updated_at = now
        text = f"调派{resource.name}"
        _log(
            uow.session,
            row,
            "dispatch",
            actor,
            now,
            f"{text}：{data.note}" if data.note else text,
            resource_id=resource.id,
        )
        uow.emit(_changed(row, "dispatch", now, actor))
        uow.session.flush()
        return _resource_read(actor, resource)


def _release_row(
    session: Session,
    row: EmergencyResponse,
    resource: EmergencyResource,
    actor: Actor,
    at: datetime,
    note: str,
) -> None:
    resource.status, resource.response_id, resource.dispatched_at, resource.updated_at = (
        "available",
        None,
        None,
        at,
    )
    text = f"释放{resource.name}"
    _log(session, row, "release", actor, at, f"{text}：{note}" if note else text, resource_id=resource.id)


def release(ctx: AppContext, actor: Actor, resource_id: int, data: ReleaseCreate) -> ResourceRead:
    """Release a dispatched resource back to available (409 when it is not dispatched)."""
    actor.require(COMMAND)
    now = utcnow()
    with ctx.uow(actor, "command.emergency.release") as uow:
        resource = _get_resource(uow.session, resource_id)
        if resource.status != "dispatched" or resource.response_id is None:
            raise Conflict("Resource {id} is not dispatched.", id=resource_id)
        row = _get_response(uow.session, resource.response_id)
        _release_row(uow.session, row, resource, actor, now, data.note)
        row.updated_at = now
        uow.emit(_changed(row, "release", now, actor))
        uow.session.flush()
        return _resource_read(actor, resource)


# --- the nearest resources ------------------------------------------------------------------------


def nearest(
    ctx: AppContext, actor: Actor, lon: float, lat: float, *, kind: str | None = None, limit: int = 5
) -> NearestResult:
    """The available resources quickest to reach a point by road; those without a route last, by straight line."""
    # The closest `emergency_candidates` in a straight line are routed over geo's road graph (its current
    # speeds); a route's time adds the legs between each end and its road node at `emergency_access_kmh`.
    actor.require(READ)
    s = services.settings(ctx)
    stmt = select(EmergencyResource).where(EmergencyResource.status == "available")
    if kind:
        stmt = stmt.where(EmergencyResource.kind == kind)
    with ctx.read() as session:
        rows = list(session.scalars(stmt))
    point = (lon, lat)
    ranked = sorted(((haversine_m((r.lon, r.lat), point), r) for r in rows), key=lambda x: (x[0], x[1].id))
    access = s.emergency_access_kmh / 3.6
    found: list[tuple[tuple[int, float, int], NearestItem]] = []
    for straight, row in ranked[: s.emergency_candidates]:
        try:
            way = geo.route(ctx, (row.lon, row.lat), point)
        except geo.NoRoute:
            item = NearestItem(
                resource=_resource_read(actor, row), by_road=False, seconds=None, meters=None,
                straight_m=round(straight, 1), roads=[],
            )  # fmt: skip
            found.append(((1, straight, row.id), item))
            continue
        legs = way.start_offset_m + way.end_offset_m
        seconds = way.seconds + legs / access
        item = NearestItem(
            resource=_resource_read(actor, row), by_road=True, seconds=round(seconds, 1),
            meters=round(way.meters + legs, 1), straight_m=round(straight, 1), roads=way.roads,
        )  # fmt: skip
        found.append(((0, seconds, row.id), item))
    found.sort(key=lambda x: x[0])
    return NearestResult(lon=lon, lat=lat, items=[item for _, item in found[:limit]])


# --- warnings -------------------------------------------------------------------------------------


def _linked(session: Session, warning_id: int) -> list[EmergencyResponse]:
    """Active responses a warning started or joined."""
    joined = select(CommandLogEntry.response_id).where(CommandLogEntry.warning_id == warning_id)
    return list(
        session.scalars(
            select(EmergencyResponse)
            .where(
                EmergencyResponse.state == ACTIVE,
                or_(EmergencyResponse.warning_id == warning_id, EmergencyResponse.id.in_(joined)),
            )
            .order_by(EmergencyResponse.id)
        )
    )


def from_warning(ctx: AppContext, event: WarningRaised) -> list[int]:
    """A raised warning starts (or joins, raising when more severe) the active response of each plan naming its rule."""
    level = rp.LEVEL_OF_WARNING.get(event.level)
    matched = rp.plans_for_rule(plans(ctx), event.rule_code)
    if level is None or not matched:
        return []
    try:
        title = warning.get_warning(ctx, SYSTEM, event.warning_id).title
    except ProblemError:
        title = event.rule_code
    point = services._entity_point(ctx, event.entity_id)
    found: list[int] = []
    for plan in matched:
        with ctx.read() as session:
            seen = session.scalar(
                select(EmergencyResponse.id)
                .join(CommandLogEntry, CommandLogEntry.response_id == EmergencyResponse.id)
                .where(CommandLogEntry.warning_id == event.warning_id, EmergencyResponse.plan == plan.code)
                .limit(1)
            )
            existing = _active(session, plan.code, event.district)
        if seen is not None:
            found.append(seen)
            continue
        if existing is None:
            try:
                found.append(
                    _start(
                        ctx, SYSTEM, plan, level, district=event.district,
                        lon=point[0] if point else None, lat=point[1] if point else None, address="",
                        title=f"{title}（{plan.name_zh}）", source="warning", warning_id=event.warning_id,
                        rule_code=event.rule_code, note=f"预警 {event.warning_id}（{event.rule_code}，{event.level}）",
                    )
                )  # fmt: skip
                continue
            except IntegrityError:  # started at the same moment by someone else: join it
                with ctx.read() as session:
                    existing = _active(session, plan.code, event.district)
                if existing is None:
                    raise
        found.append(_join(ctx, existing.id, event, level))
    return found


def _join(ctx: AppContext, response_id: int, event: WarningRaised, level: int) -> int:
    """Link a further warning to an active response, raising it when the warning is more severe."""
    note = f"预警 {event.warning_id}（{event.rule_code}，{event.level}）并入本响应"
    with ctx.read() as session:
        current = _get_response(session, response_id).level
    if level < current:
        _set_level(ctx, SYSTEM, response_id, level, note, warning_id=event.warning_id)
        return response_id
    now = utcnow()
    with ctx.uow(SYSTEM, "command.emergency.warning") as uow:
        row = _get_response(uow.session, response_id)
        _log(uow.session, row, "warning", SYSTEM, now, note, warning_id=event.warning_id)
        uow.emit(_changed(row, "warning", now, SYSTEM))
    return response_id


def on_warning_changed(ctx: AppContext, event: WarningChanged) -> list[int]:
    """An upgraded warning raises the responses it is linked to; a downgrade is only logged for the commander."""
    level = rp.LEVEL_OF_WARNING.get(event.level)
    if level is None or event.change not in ("upgraded", "downgraded"):
        return []
    with ctx.read() as session:
        rows = [(r.id, r.level) for r in _linked(session, event.warning_id)]
    changed: list[int] = []
    for response_id, current in rows:
        if event.change == "upgraded" and level < current:
            note = f"预警 {event.warning_id} 升级为{event.level}"
            _set_level(ctx, SYSTEM, response_id, level, note, warning_id=event.warning_id)
            changed.append(response_id)
        elif event.change == "downgraded":
            now = utcnow()
            with ctx.uow(SYSTEM, "command.emergency.warning") as uow:
                row = _get_response(uow.session, response_id)
                note = f"预警 {event.warning_id} 降级为{event.level}，请研判是否调整响应级别"
                _log(uow.session, row, "warning", SYSTEM, now, note, warning_id=event.warning_id)
                uow.emit(_changed(row, "warning", now, SYSTEM))
            changed.append(response_id)
    return changed


def on_warning_lifted(ctx: AppContext, event: WarningLifted) -> list[int]:
    """A lifted warning suggests ending the responses it is linked to; a commander decides."""
    now = utcnow()
    with ctx.uow(SYSTEM, "command.emergency.warning") as uow:
        told = select(CommandLogEntry.response_id).where(
            CommandLogEntry.warning_id == event.warning_id, CommandLogEntry.action == "end_suggested"
        )
        rows = [
            r for r in _linked(uow.session, event.warning_id) if r.id not in set(uow.session.scalars(told))
        ]
        for row in rows:
            row.end_suggested, row.updated_at = True, now
            note = f"预警 {event.warning_id} 已解除，建议终止响应"
            _log(uow.session, row, "end_suggested", SYSTEM, now, note, warning_id=event.warning_id)
        uow.emit_many([_changed(r, "end_suggested", now, SYSTEM) for r in rows])
        return [r.id for r in rows]
