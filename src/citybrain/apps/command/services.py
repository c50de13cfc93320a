"""Command services: categories and routing, intake from every source, the workflows' actions, deadlines.

Every write goes through a unit of work (audited in the ledger); every change writes a timeline step and
publishes EventChanged through the outbox. An action refused for the actor's role (403) or the event's
state (409) changes nothing.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

from shapely.geometry import shape
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from citybrain.apps.command import deadlines, taxonomy
from citybrain.apps.command import workflows as wf
from citybrain.apps.command.classifier import default_model
from citybrain.apps.command.events import EventChanged
from citybrain.apps.command.models import CityEvent, EventDepartment, EventStep, NumberDay
from citybrain.apps.command.permissions import ROLES
from citybrain.apps.command.schemas import (
    ActionRead,
    ActionTake,
    CategoryRead,
    EventDetail,
    EventRead,
    LinkedEvent,
    MergeCreate,
    Page,
    ReportCreate,
    StepRead,
    TicketCreate,
)
from citybrain.apps.command.settings import CommandSettings
from citybrain.apps.context import entities as ent
from citybrain.apps.context import services as context
from citybrain.apps.geo import services as geo
from citybrain.apps.identity import schemas as identity_schemas
from citybrain.apps.identity import services as identity
from citybrain.apps.warning import services as warning
from citybrain.apps.warning.events import WarningRaised
from citybrain.sdk import (
    SYSTEM,
    Actor,
    AllDepartments,
    AppContext,
    Conflict,
    ExpiringCache,
    Forbidden,
    NotFound,
    ProblemError,
    UnitOfWork,
    ValidationFailed,
    mask_id_number,
    mask_phone,
    utcnow,
)

log = logging.getLogger(__name__)
CATEGORIES_KEY = "command.categories"
# Routing remembers a department's id by its code this long (ids of existing departments do not change).
DEPARTMENT_CACHE_KEY = "command.department_ids"
DEPARTMENT_CACHE_SECONDS = 60.0
# The demo's warning rules becoming events (demo.py), kept while the demo serves.
DEMO_WARNINGS_KEY = "command.demo_warning_categories"


def N_(message: str) -> str:  # noqa: N802
    """Mark a message for the catalogue; it is translated where it is shown."""
    return message


def settings(ctx: AppContext) -> CommandSettings:
    """The app's settings."""
    return ctx.app_setting("command", CommandSettings)


def _zone(ctx: AppContext) -> ZoneInfo:
    return ZoneInfo(ctx.settings.timezone)


def _field_error(field: str, detail: str, **params: Any) -> ValidationFailed:
    """A 422 naming the body field at fault."""
    return ValidationFailed(
        detail,
        extra={"errors": [{"loc": ["body", field], "msg": detail.format(**params), "type": "value_error"}]},
        **params,
    )


# --- categories and routing -----------------------------------------------------------------------


def load_categories(ctx: AppContext) -> dict[str, taxonomy.Category]:
    """Collect and check every declared category and the limit overrides; keep them for this platform."""
    found = taxonomy.collect(ctx)
    for code, stages in settings(ctx).limits.items():
        if code not in found:
            raise taxonomy.CategoryError(f"CITYBRAIN_COMMAND_LIMITS names an unknown category {code!r}")
        for stage in stages:
            if stage not in taxonomy.STAGES[found[code].workflow]:
                raise taxonomy.CategoryError(
                    f"CITYBRAIN_COMMAND_LIMITS: the {found[code].workflow} workflow has no stage {stage!r}"
                )
    for rule, code in settings(ctx).warning_categories.items():
        if code not in found:
            raise taxonomy.CategoryError(
                f"CITYBRAIN_COMMAND_WARNING_CATEGORIES maps rule {rule!r} to an unknown category {code!r}"
            )
    ctx.extensions[CATEGORIES_KEY] = found
    return found


def categories(ctx: AppContext) -> dict[str, taxonomy.Category]:
    """The declared categories by code."""
    found: dict[str, taxonomy.Category] | None = ctx.extensions.get(CATEGORIES_KEY)
    return found if found is not None else load_categories(ctx)


def list_categories(ctx: AppContext, actor: Actor) -> list[CategoryRead]:
    """Every category with its limits (overrides applied) and responsible departments."""
    actor.require(wf.READ)
    overrides = settings(ctx).limits
    return [
        CategoryRead(
            code=c.code,
            name_zh=c.name_zh,
            name_en=c.name_en,
            workflow=c.workflow,
            group_zh=list(c.group_zh),
            group_en=list(c.group_en),
            limits={**c.limits, **overrides.get(c.code, {})},
            department=c.department,
            districts=dict(c.districts),
        )
        for c in categories(ctx).values()
    ]


def limit(ctx: AppContext, category: str | None, stage: str) -> taxonomy.Limit | None:
    """The time limit of a stage for a category (the setting's override first), None without one."""
    found = categories(ctx).get(category) if category else None
    if found is None:
        return None
    text = settings(ctx).limits.get(found.code, {}).get(stage) or found.limits.get(stage)  # type: ignore[call-overload]
    return taxonomy.Limit.parse(text) if text else None


def stage_deadline(
    ctx: AppContext, workflow: str, state: str, category: str | None, start: datetime
) -> datetime | None:
    """When the stage an event enters at `start` must be done, None if no clock runs there."""
    stage = wf.workflow(workflow).state(state).stage
    found = limit(ctx, category, stage) if stage else None
    if found is None:
        return None
    s = settings(ctx)
    return deadlines.deadline(start, found, _zone(ctx), (s.office_start, s.office_end))


def departments(ctx: AppContext) -> dict[str, identity_schemas.DepartmentRead]:
    """The identity app's departments by code."""
    return {d.code: d for d in identity.list_departments(ctx, SYSTEM)}


def department_id(ctx: AppContext, code: str) -> int | None:
    """The id of the department with this code, remembered a while (an unknown code is asked again)."""
    cache: ExpiringCache[str, int, float] = ctx.extensions.setdefault(
        DEPARTMENT_CACHE_KEY, ExpiringCache(max_entries=1024)
    )
    now = time.monotonic()
    found, dept = cache.lookup(code, now)
    if found:
        return dept
    generation = cache.generation
    ids = identity.department_ids_by_code(ctx, SYSTEM, [code])
    if code in ids:
        cache.put(code, ids[code], now + DEPARTMENT_CACHE_SECONDS, generation)
    return ids.get(code)


def route(ctx: AppContext, category: str | None, district: str | None) -> int | None:
    """The responsible department's id for a category in a district (权责清单), None if unknown."""
    found = categories(ctx).get(category) if category else None
    if found is None:
        return None
    return department_id(ctx, found.department_for(district))


def district_at(ctx: AppContext, lon: float, lat: float) -> str | None:
    """The code of the district holding a point, None outside the city."""
    found = geo.district_at(ctx, lon, lat)
    return found.code if found is not None else None


def classify(ctx: AppContext, text: str) -> tuple[str, float] | None:
    """The classifier's category for a complaint and its confidence; None when it is unsure (a person decides)."""
    try:
        prediction = default_model().classify(text)
    except Exception:  # a broken classifier must not stop intake: a person classifies the ticket
        log.exception("the classifier failed; the ticket waits for a person")
        return None
    if prediction.label not in categories(ctx):
        return None
    if prediction.confidence < settings(ctx).classifier_min_confidence:
        return None
    return prediction.label, prediction.confidence


# --- intake ---------------------------------------------------------------------------------------


@dataclass
class Intake:
    """What every source gives a new event."""

    source: str
    workflow: str
    state: str
    title: str
    description: str
    category: str | None = None
    district: str | None = None
    lon: float | None = None
    lat: float | None = None
    address: str = ""
    caller_name: str | None = None
    caller_phone: str | None = None
    caller_id_number: str | None = None
    caller_email: str | None = None
    media_url: str | None = None
    department_id: int | None = None
    source_ref: str | None = None
    note: str = ""


def _next_number(session: Session, day: str) -> str:
    """The next 编号 of a local day: YYYYMMDD and a 5-digit daily sequence, from the day's counter row.

    The upsert locks the day's row until the intake commits, so concurrent intakes get consecutive numbers.
    """
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = (
        insert(NumberDay)
        .values(day=day, last=1)
        .on_conflict_do_update(index_elements=[NumberDay.day], set_={"last": NumberDay.last + 1})
        .returning(NumberDay.last)
    )
    return f"{day}{session.execute(stmt).scalar_one():05d}"


def _changed(row: CityEvent, action: str, from_state: str | None, at: datetime, by: str) -> EventChanged:
    return EventChanged(
        case_id=row.id,
        number=row.number,
        workflow=row.workflow,
        action=action,
        from_state=from_state,
        state=row.state,
        category=row.category,
        district=row.district,
        department_id=row.department_id,
        overdue=row.overdue,
        supervised=row.supervised,
        at=at,
        by=by,
        due_soon=row.due_soon,
        merged_into_id=row.merged_into_id,
    )


def _existing(ctx: AppContext, source: str, ref: str | None) -> int | None:
    if ref is None:
        return None
    with ctx.read() as session:
        return session.scalar(
            select(CityEvent.id).where(CityEvent.source == source, CityEvent.source_ref == ref)
        )


def create(ctx: AppContext, actor: Actor, intake: Intake) -> int:
    """Store a new event in its first state with its deadline, its first timeline step and EventChanged."""
    return _create(ctx, actor, intake, None)[0]


def _create(
    ctx: AppContext, actor: Actor, intake: Intake, reader: Actor | None
) -> tuple[int, EventDetail | None]:
    """Store a new event; with a reader who may see it, also its detail as that reader reads it.

    The detail of a new event is built from the rows just written (one step, nothing merged, no
    assisting department), without reading them back; its duplicates are suggested when it is read.
    """
    if intake.district is None and intake.lon is not None and intake.lat is not None:
        intake.district = district_at(ctx, intake.lon, intake.lat)
    if intake.department_id is None:
        intake.department_id = route(ctx, intake.category, intake.district)
    now = utcnow()
    try:
        with ctx.uow(actor, "command.event.intake") as uow:
            row = CityEvent(
                number=_next_number(uow.session, now.astimezone(_zone(ctx)).strftime("%Y%m%d")),
                source=intake.source,
                source_ref=intake.source_ref,
                workflow=intake.workflow,
                state=intake.state,
                category=intake.category,
                district=intake.district,
                lon=intake.lon,
                lat=intake.lat,
                address=intake.address,
                title=intake.title[:200],
                description=intake.description,
                caller_name=intake.caller_name or None,
                caller_phone=intake.caller_phone,
                caller_id_number=intake.caller_id_number,
                caller_email=intake.caller_email,
                media_url=intake.media_url,
                department_id=intake.department_id,
                deadline=stage_deadline(ctx, intake.workflow, intake.state, intake.category, now),
                filed_at=now if intake.state == wf.FILED_STATE else None,
                reported_by=actor.ref,
                created_at=now,
                updated_at=now,
            )
            uow.session.add(row)
            uow.session.flush()
            step = EventStep(
                event_id=row.id,
                action="intake",
                from_state=None,
                to_state=row.state,
                at=now,
                by=actor.ref,
                by_name=actor.display_name,
                department_id=row.department_id,
                note=intake.note,
            )
            uow.session.add(step)
            uow.emit(_changed(row, "intake", None, now, actor.ref))
            detail = None
            if reader is not None and _sees(reader, row):
                uow.session.flush()
                detail = _detail(ctx, reader, row, [], [step], [], None, [])
            return row.id, detail
    except IntegrityError:
        existing = _existing(ctx, intake.source, intake.source_ref)
        if existing is not None:  # the same source's item delivered twice: one event
            return existing, None
        raise


def _check_category(ctx: AppContext, code: str | None, workflow: str | None) -> taxonomy.Category | None:
    if code is None:
        return None
    found = categories(ctx).get(code)
    if found is None:
        raise _field_error("category", N_("There is no category {code}."), code=code)
    if workflow is not None and found.workflow != workflow:
        raise _field_error("category", N_("Category {code} does not belong to this workflow."), code=code)
    return found


def _check_place(ctx: AppContext, district: str | None) -> None:
    if district is not None and geo.district(ctx, district) is None:
        raise _field_error("district", N_("There is no district {code}."), code=district)


def take_ticket(ctx: AppContext, actor: Actor, data: TicketCreate) -> EventDetail:
    """An operator takes in a 12345 ticket; without a category the classifier (if any) suggests one."""
    actor.require(wf.TICKET)
    category = _check_category(ctx, data.category, None)
    _check_place(ctx, data.district)
    code, note = data.category, ""
    if category is None:
        guess = classify(ctx, data.content)
        if guess is not None:
            code = guess[0]
            category = categories(ctx)[code]
            # kept in the timeline like an operator's note (notes are Chinese text)
            note = f"自动分类：{category.name_zh}（置信度 {guess[1]:.2f}）"
    workflow = category.workflow if category is not None else "hotline"
    title = data.title or data.content.splitlines()[0][:60]
    event_id, detail = _create(
        ctx,
        actor,
        Intake(
            source="hotline",
            workflow=workflow,
            state=wf.INITIAL["hotline"] if workflow == "hotline" else "reported",
            title=title,
            description=data.content,
            category=code,
            district=data.district,
            lon=data.location.lon if data.location else None,
            lat=data.location.lat if data.location else None,
            address=data.address,
            caller_name=data.caller_name,
            caller_phone=data.caller_phone,
            caller_id_number=data.caller_id_number.upper() if data.caller_id_number else None,
            note=note,
        ),
        actor,
    )
    return detail if detail is not None else get_event(ctx, actor, event_id)


def report(ctx: AppContext, actor: Actor, data: ReportCreate) -> EventDetail:
    """An inspector's report or a department's own report (自行上报) enters the 数字城管 loop."""
    actor.require(wf.REPORT)
    _check_category(ctx, data.category, "city")
    _check_place(ctx, data.district)
    department = actor.department_id if data.source == "department" else None
    reader = actor if actor.can(wf.READ) else SYSTEM
    event_id, detail = _create(
        ctx,
        actor,
        Intake(
            source=data.source,
            workflow="city",
            state="reported",
            title=data.title or data.description[:60],
            description=data.description,
            category=data.category,
            district=data.district,
            lon=data.location.lon if data.location else None,
            lat=data.location.lat if data.location else None,
            address=data.address,
            department_id=department,
        ),
        reader,
    )
    return detail if detail is not None else get_event(ctx, reader, event_id)


def _entity_point(ctx: AppContext, entity_id: str) -> tuple[float, float] | None:
    """A point of an entity's location in the context broker."""
    try:
        stored = context.get_entity(ctx, SYSTEM, "", entity_id)
    except Exception:  # gone, or not an entity of the default tenant
        return None
    geometry = ent.geometry_of(stored, ent.LOCATION)
    if not isinstance(geometry, dict):
        return None
    try:
        point = shape(geometry).representative_point()
    except (ValueError, TypeError, AttributeError):
        return None
    return (round(point.x, 6), round(point.y, 6))


def use_demo_warnings(ctx: AppContext, mapping: dict[str, str]) -> None:
    """While the demo serves, warnings of these rules become events of the mapped categories, filed at once."""
    for rule, code in mapping.items():
        if code not in categories(ctx):
            raise taxonomy.CategoryError(f"the demo maps rule {rule!r} to an unknown category {code!r}")
    ctx.extensions[DEMO_WARNINGS_KEY] = dict(mapping)


def warning_category(ctx: AppContext, rule_code: str) -> tuple[str, str] | None:
    """The category a rule's warnings become and how ("create", "suggest"); the settings before the demo's."""
    s = settings(ctx)
    code = s.warning_categories.get(rule_code)
    if code is not None:
        return code, s.warning_intake
    demo: dict[str, str] = ctx.extensions.get(DEMO_WARNINGS_KEY) or {}
    return (demo[rule_code], "create") if rule_code in demo else None


def from_warning(ctx: AppContext, event: WarningRaised) -> int | None:
    """A raised warning whose rule is mapped to a category becomes an event (once per warning)."""
    mapped = warning_category(ctx, event.rule_code)
    if mapped is None:
        return None
    code, intake = mapped
    category = categories(ctx)[code]
    try:
        title = warning.get_warning(ctx, SYSTEM, event.warning_id).title
    except ProblemError:
        title = event.rule_code
    point = _entity_point(ctx, event.entity_id)
    state = (wf.FILED if intake == "create" else wf.INITIAL)[category.workflow]
    values = ", ".join(f"{k}={v}" for k, v in sorted(event.values.items()))
    return create(
        ctx,
        SYSTEM,
        Intake(
            source="warning",
            workflow=category.workflow,
            state=state,
            title=title,
            description=f"{title} ({event.level}) {values}".strip(),
            category=code,
            district=event.district,
            lon=point[0] if point else None,
            lat=point[1] if point else None,
            source_ref=str(event.warning_id),
            note=f"warning {event.warning_id}, rule {event.rule_code}",
        ),
    )


# --- reading --------------------------------------------------------------------------------------


def _visible(stmt: Any, scope: frozenset[int] | AllDepartments) -> Any:
    """Filter a query of events by the departments the reader may see (main or assisting)."""
    if isinstance(scope, AllDepartments):
        return stmt
    assisted = select(EventDepartment.event_id).where(EventDepartment.department_id.in_(scope))
    return stmt.where(or_(CityEvent.department_id.in_(scope), CityEvent.id.in_(assisted)))


def _assists(session: Session, event_ids: Sequence[int]) -> dict[int, list[int]]:
    found: dict[int, list[int]] = {i: [] for i in event_ids}
    if event_ids:
        rows = session.execute(
            select(EventDepartment.event_id, EventDepartment.department_id)
            .where(EventDepartment.event_id.in_(event_ids))
            .order_by(EventDepartment.id)
        )
        for event_id, dept in rows:
            found[event_id].append(dept)
    return found


def sees_caller(actor: Actor, row: CityEvent) -> bool:
    """Whether the reader handles the event and so sees the caller's phone and ID number unmasked."""
    if actor.can(wf.CALLER):
        return True
    return row.department_id is not None and actor.can(wf.HANDLE, row.department_id)


def _read(actor: Actor, row: CityEvent, assists: list[int]) -> EventRead:
    plain = sees_caller(actor, row)
    return EventRead(
        id=row.id,
        number=row.number,
        source=row.source,
        workflow=row.workflow,
        state=row.state,
        category=row.category,
        district=row.district,
        lon=row.lon,
        lat=row.lat,
        address=row.address,
        title=row.title,
        description=row.description,
        caller_name=row.caller_name,
        caller_phone=row.caller_phone if plain else mask_phone(row.caller_phone),
        caller_id_number=row.caller_id_number if plain else mask_id_number(row.caller_id_number),
        department_id=row.department_id,
        assisting_department_ids=assists,
        deadline=row.deadline,
        overdue=row.overdue,
        supervised=row.supervised,
        rating=row.rating,
        reported_by=row.reported_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
        closed_at=row.closed_at,
        merged_into_id=row.merged_into_id,
        urges=row.urges,
        extensions=row.extensions,
        extension_days=row.extension_days,
        reworks=row.reworks,
        due_soon=row.due_soon,
    )


def list_events(
    ctx: AppContext,
    actor: Actor,
    *,
    state: str | None = None,
    workflow: str | None = None,
    category: str | None = None,
    district: str | None = None,
    department_id: int | None = None,
    overdue: bool | None = None,
    supervised: bool | None = None,
    due_soon: bool | None = None,
    text: str | None = None,
    inbox: bool = False,
    open_only: bool = False,
    limit: int = 50,
    offset: int = 0,
) -> Page[EventRead]:
    """Events the reader may see, newest change first, filtered; `inbox`: my department's open events."""
    scope = actor.visible_departments(wf.READ)
    stmt = _visible(select(CityEvent), scope)
    if inbox:
        handle = actor.scope(wf.HANDLE)
        mine = (
            frozenset({actor.department_id} if actor.department_id else ())
            if isinstance(handle, AllDepartments)
            else handle
        )
        stmt = _visible(stmt, mine)
        open_only = True
    if open_only:
        stmt = stmt.where(CityEvent.state.in_(_open_states()))
    if state:
        stmt = stmt.where(CityEvent.state == state)
    if workflow:
        stmt = stmt.where(CityEvent.workflow == workflow)
    if category:
        stmt = stmt.where(or_(CityEvent.category == category, CityEvent.category.like(f"{category}.%")))
    if district:
        stmt = stmt.where(CityEvent.district == district)
    if department_id:
        stmt = stmt.where(CityEvent.department_id == department_id)
    if overdue is not None:
        stmt = stmt.where(CityEvent.overdue.is_(overdue))
    if supervised is not None:
        stmt = stmt.where(CityEvent.supervised.is_(supervised))
    if due_soon is not None:
        stmt = stmt.where(CityEvent.due_soon.is_(due_soon))
    if text:
        like = f"%{text.replace('%', '').replace('_', '')}%"
        stmt = stmt.where(
            or_(
                CityEvent.number == text,
                CityEvent.title.ilike(like),
                CityEvent.description.ilike(like),
                CityEvent.address.ilike(like),
            )
        )
    with ctx.read() as session:
        total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        rows = list(
            session.scalars(
                stmt.order_by(CityEvent.updated_at.desc(), CityEvent.id.desc()).limit(limit).offset(offset)
            )
        )
        assists = _assists(session, [r.id for r in rows])
        items = [_read(actor, r, assists[r.id]) for r in rows]
    return Page[EventRead](items=items, total=total, limit=limit, offset=offset)


def _open_states() -> list[str]:
    return sorted({s for w in wf.WORKFLOWS.values() for s in w.open_states})


def counts(ctx: AppContext, actor: Actor) -> dict[str, dict[str, int]]:
    """How many visible events each workflow has in each state, and how many are overdue or supervised."""
    scope = actor.visible_departments(wf.READ)
    stmt = _visible(select(CityEvent.workflow, CityEvent.state, func.count()), scope).group_by(
        CityEvent.workflow, CityEvent.state
    )
    found: dict[str, dict[str, int]] = {
        code: {s.code: 0 for s in w.states} for code, w in wf.WORKFLOWS.items()
    }
    with ctx.read() as session:
        for workflow, state, n in session.execute(stmt):
            if workflow in found:
                found[workflow][state] = int(n)
        flags = _visible(
            select(func.count())
            .select_from(CityEvent)
            .where(CityEvent.overdue.is_(True), CityEvent.state.in_(_open_states())),
            scope,
        )
        found["flags"] = {"overdue": int(session.scalar(flags) or 0)}
        supervised = _visible(
            select(func.count())
            .select_from(CityEvent)
            .where(CityEvent.supervised.is_(True), CityEvent.state.in_(_open_states())),
            scope,
        )
        found["flags"]["supervised"] = int(session.scalar(supervised) or 0)
        warned = _visible(
            select(func.count())
            .select_from(CityEvent)
            .where(CityEvent.due_soon.is_(True), CityEvent.state.in_(_open_states())),
            scope,
        )
        found["flags"]["due_soon"] = int(session.scalar(warned) or 0)
    return found


def _get(session: Session, actor: Actor, event_id: int) -> tuple[CityEvent, list[int]]:
    """An event the actor may see, with its assisting departments (404 otherwise)."""
    scope = actor.visible_departments(wf.READ)
    row = session.get(CityEvent, event_id)
    assists = _assists(session, [event_id])[event_id] if row is not None else []
    if row is None or not (
        isinstance(scope, AllDepartments) or row.department_id in scope or any(d in scope for d in assists)
    ):
        raise NotFound("Event {id} does not exist.", id=event_id)
    return row, assists


def _may(actor: Actor, action: wf.Action, row: CityEvent, assists: Iterable[int]) -> bool:
    """Whether the actor's role allows the action on this event (its state aside)."""
    if action.where == "city":
        return actor.can(action.permission)
    scope = actor.scope(action.permission)
    if isinstance(scope, AllDepartments):
        return True
    depts = {row.department_id} if action.where == "main" else {row.department_id, *assists}
    return any(d is not None and d in scope for d in depts)


def _refusal(action: wf.Action, row: CityEvent, extension_max: int) -> Conflict | None:
    """Why the event itself does not allow the action now (its state aside), None when it does."""
    if action.guard == "extension_open":
        if row.deadline is None:
            return Conflict("No time limit runs for this event now.")
        if row.extension_days is not None:
            return Conflict("An extension request is already waiting for a decision.")
        if row.extensions >= extension_max:
            return Conflict("This event has had {count} extensions, the most allowed.", count=row.extensions)
    elif action.guard == "extension_pending" and row.extension_days is None:
        return Conflict("No extension request is waiting.")
    elif action.guard == "supervised" and not row.supervised:
        return Conflict("This event is not under supervision (督办).")
    elif action.guard == "unresolved" and row.state != "visited" and row.rating != "unsatisfied":
        return Conflict("Only a ticket rated unsatisfied, or visited and unresolved, can be re-handled.")
    return None


def allowed(actor: Actor, row: CityEvent, assists: Iterable[int], extension_max: int = 2) -> list[wf.Action]:
    """The actions the actor may take on the event now."""
    flow = wf.workflow(row.workflow)
    items = list(assists)
    return [
        a
        for a in flow.actions
        if row.state in a.sources and _may(actor, a, row, items) and _refusal(a, row, extension_max) is None
    ]


def get_event(ctx: AppContext, actor: Actor, event_id: int) -> EventDetail:
    """An event with its timeline, the actions the reader may take, merged events and suggested duplicates."""
    with ctx.read() as session:
        row, assists = _get(session, actor, event_id)
        steps = list(
            session.scalars(select(EventStep).where(EventStep.event_id == event_id).order_by(EventStep.id))
        )
        merged = list(
            session.scalars(
                select(CityEvent).where(CityEvent.merged_into_id == row.id).order_by(CityEvent.id)
            )
        )
        main = session.get(CityEvent, row.merged_into_id) if row.merged_into_id is not None else None
        return _detail(ctx, actor, row, assists, steps, merged, main, duplicates(ctx, session, actor, row))


def _detail(
    ctx: AppContext,
    actor: Actor,
    row: CityEvent,
    assists: list[int],
    steps: Iterable[EventStep],
    merged: Iterable[CityEvent],
    main: CityEvent | None,
    suggested: list[LinkedEvent],
) -> EventDetail:
    """The detail of an event read with its steps, the events merged into it and its main event."""
    actions = [
        ActionRead(
            code=a.code,
            name_zh=a.name_zh,
            name_en=a.name_en,
            note_required=a.note_required,
            department=a.department,
            rating=a.rating,
            days=a.days,
        )
        for a in allowed(actor, row, assists, settings(ctx).extension_max)
    ]
    plain = sees_caller(actor, row)
    return EventDetail(
        **_read(actor, row, assists).model_dump(),
        timeline=[StepRead.model_validate(s) for s in steps],
        actions=actions,
        merged_into_number=main.number if main is not None else None,
        merged=[_linked(m, plain) for m in merged],
        suggested_duplicates=suggested,
        may_merge=actor.can(wf.MERGE) and row.state in _open_states(),
    )


def _sees(actor: Actor, row: CityEvent) -> bool:
    """Whether the reader may see a new event (its main department; a new event has no assisting ones)."""
    scope = actor.visible_departments(wf.READ)
    return isinstance(scope, AllDepartments) or row.department_id in scope


# --- duplicates (并单) -----------------------------------------------------------------------------

# The mean Earth radius (IUGG), for distances between nearby points.
EARTH_RADIUS_M = 6_371_008.8
# Suggestions are picked from at most this many candidates of the same category, place and time.
DUPLICATE_CANDIDATES = 200


def _bigrams(text: str) -> frozenset[str]:
    """The character bigrams of a text's letters and digits (single characters for a one-character text)."""
    chars = [c for c in text.lower() if c.isalnum()]
    return frozenset(a + b for a, b in pairwise(chars)) or frozenset(chars)


def similarity(first: str, second: str) -> float:
    """How alike two texts are: the Jaccard similarity of their character bigrams (0–1)."""
    a, b = _bigrams(first), _bigrams(second)
    return len(a & b) / len(a | b) if a and b else 0.0


def metres(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """The great-circle distance between two WGS 84 points in metres (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def _linked(
    row: CityEvent, plain: bool, distance: float | None = None, alike: float | None = None
) -> LinkedEvent:
    """Another event as a link, its reporter's phone masked unless `plain`."""
    return LinkedEvent(
        id=row.id,
        number=row.number,
        title=row.title,
        state=row.state,
        workflow=row.workflow,
        category=row.category,
        created_at=row.created_at,
        caller_name=row.caller_name,
        caller_phone=row.caller_phone if plain else mask_phone(row.caller_phone),
        distance_m=round(distance, 1) if distance is not None else None,
        similarity=round(alike, 3) if alike is not None else None,
    )


def duplicates(ctx: AppContext, session: Session, actor: Actor, row: CityEvent) -> list[LinkedEvent]:
    """Open events the reader sees of the same category, near in place and time, with similar text."""
    s = settings(ctx)
    if row.category is None or row.state not in _open_states():
        return []
    window = timedelta(hours=s.duplicate_hours)
    e = CityEvent
    stmt = select(e).where(
        e.id != row.id,
        e.category == row.category,
        e.state.in_(_open_states()),
        e.created_at >= row.created_at - window,
        e.created_at <= row.created_at + window,
    )
    if row.lon is not None and row.lat is not None:
        dlat = math.degrees(s.duplicate_metres / EARTH_RADIUS_M)
        dlon = dlat / max(math.cos(math.radians(row.lat)), 0.01)
        stmt = stmt.where(
            e.lon.between(row.lon - dlon, row.lon + dlon), e.lat.between(row.lat - dlat, row.lat + dlat)
        )
    elif row.address:
        stmt = stmt.where(e.address == row.address)
    else:
        return []
    stmt = (
        _visible(stmt, actor.visible_departments(wf.READ)).order_by(e.created_at).limit(DUPLICATE_CANDIDATES)
    )
    text = f"{row.title} {row.description}"
    found: list[tuple[float, float, CityEvent]] = []
    for other in session.scalars(stmt):
        distance = None
        if row.lon is not None and row.lat is not None and other.lon is not None and other.lat is not None:
            distance = metres(row.lon, row.lat, other.lon, other.lat)
            if distance > s.duplicate_metres:
                continue
        alike = similarity(text, f"{other.title} {other.description}")
        if alike >= s.duplicate_similarity:
            found.append((alike, distance if distance is not None else 0.0, other))
    found.sort(key=lambda f: (-f[0], f[1], f[2].id))
    return [
        _linked(other, sees_caller(actor, other), dist if row.lon is not None else None, alike)
        for alike, dist, other in found[: s.duplicate_rows]
    ]


def event_id_of(ctx: AppContext, actor: Actor, text: str) -> int:
    """The id of a visible event named by its id or its 13-digit case number (422 when there is none)."""
    text = text.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 13:
        raise _field_error("into", N_("{value} is not an event."), value=text[:16])
    if len(text) < 13:
        return int(text)
    with ctx.read() as session:
        found = session.scalar(
            _visible(select(CityEvent.id), actor.visible_departments(wf.READ)).where(CityEvent.number == text)
        )
    if found is None:
        raise _field_error("into", N_("There is no event {id}."), id=text)
    return int(found)


def merge(ctx: AppContext, actor: Actor, event_id: int, data: MergeCreate) -> EventDetail:
    """并单: close a duplicate as merged into a main event, its own duplicates following; all or nothing."""
    actor.require(wf.MERGE)
    if data.into == event_id:
        raise _field_error("into", N_("An event cannot be merged into itself."))
    now = utcnow()
    with ctx.uow(actor, "command.event.merge") as uow:
        session = uow.session
        row, _ = _get(session, actor, event_id)
        try:
            main, _ = _get(session, actor, data.into)
        except NotFound:
            raise _field_error("into", N_("There is no event {id}."), id=data.into) from None
        if wf.workflow(row.workflow).state(row.state).final:
            raise Conflict("Event {number} is finished and cannot be merged.", number=row.number)
        if wf.workflow(main.workflow).state(main.state).final:
            raise Conflict("Event {number} is finished: merge into an open event.", number=main.number)
        if row.category != main.category and not data.force:
            raise Conflict(
                "Events {number} and {main} are of different categories; merge them only on purpose (force).",
                number=row.number,
                main=main.number,
            )
        seen, link = {row.id, main.id}, main.merged_into_id
        while link is not None:  # a main event merged elsewhere must not lead back to this one
            if link in seen:
                raise Conflict(
                    "Merging {number} into {main} would make a loop.", number=row.number, main=main.number
                )
            seen.add(link)
            link = session.scalar(select(CityEvent.merged_into_id).where(CityEvent.id == link))
        note = data.note.strip()
        for child in session.scalars(select(CityEvent).where(CityEvent.merged_into_id == row.id)):
            child.merged_into_id, child.updated_at = main.id, now
        from_state, lifted = row.state, row.supervised
        row.state, row.merged_into_id, row.closed_at, row.updated_at = wf.MERGED, main.id, now, now
        row.deadline, row.overdue, row.due_soon, row.supervised, row.extension_days = (
            None,
            False,
            False,
            False,
            None,
        )
        main.updated_at = now

        def step(event: CityEvent, action: str, before: str | None, text: str) -> None:
            session.add(
                EventStep(
                    event_id=event.id,
                    action=action,
                    from_state=before,
                    to_state=event.state,
                    at=now,
                    by=actor.ref,
                    by_name=actor.display_name,
                    department_id=event.department_id,
                    note=text[:1000],
                )
            )

        # notes are Chinese text, as operators write them
        step(row, "merge", from_state, f"并入 {main.number}" + (f"：{note}" if note else ""))
        if lifted:
            step(row, "supervision_lifted", wf.MERGED, "并单后解除督办")
        step(main, "merged_in", main.state, f"{row.number} 并入本事件" + (f"：{note}" if note else ""))
        uow.emit(_changed(row, "merge", from_state, now, actor.ref))
        uow.emit(_changed(main, "merged_in", main.state, now, actor.ref))
    return get_event(ctx, actor, event_id)


# --- actions --------------------------------------------------------------------------------------


def act(ctx: AppContext, actor: Actor, event_id: int, code: str, data: ActionTake) -> EventDetail:
    """Take a workflow action: 403 if the role may not, 409 if the state does not allow it; all or nothing."""
    actor.require(wf.READ)
    ids = (
        {d.id for d in departments(ctx).values()}
        if data.department_id or data.assisting_department_ids
        else set()
    )
    now = utcnow()
    with ctx.uow(actor, f"command.event.{code}") as uow:
        row, assists = _get(uow.session, actor, event_id)
        flow = wf.workflow(row.workflow)
        action = flow.action(code)
        if action is None:
            raise NotFound("The {workflow} workflow has no action {action}.", workflow=flow.code, action=code)
        if not _may(actor, action, row, assists):
            raise Forbidden("You may not take the action {action} on this event.", action=code)
        if row.state not in action.sources:
            raise Conflict(
                "The action {action} cannot be taken on an event in the state {state}.",
                action=code,
                state=row.state,
            )
        s = settings(ctx)
        refusal = _refusal(action, row, s.extension_max)
        if refusal is not None:
            raise refusal
        note = data.note.strip()
        if action.note_required and not note:
            raise _field_error("note", N_("The action {action} needs a note."), action=code)
        if action.rating and data.rating is None:
            raise _field_error("rating", N_("Choose a rating."))
        if action.days and data.days is None:
            raise _field_error("days", N_("Give the number of working days."))
        if action.days and data.days is not None and data.days > s.extension_max_days:
            raise _field_error(
                "days", N_("An extension is at most {days} working days."), days=s.extension_max_days
            )
        if not action.days and data.days is not None:
            raise _field_error("days", N_("The action {action} takes no number of days."), action=code)
        department = row.department_id
        if action.department != "no":
            if data.department_id is not None:
                if data.department_id not in ids:
                    raise _field_error(
                        "department_id", N_("There is no department {id}."), id=data.department_id
                    )
                department = data.department_id
            elif action.department == "required" or department is None:
                department = (
                    route(ctx, row.category, row.district) if action.department == "optional" else None
                )
                if department is None:
                    raise _field_error("department_id", N_("Name the department to send the event to."))
            for dept in data.assisting_department_ids:
                if dept not in ids or dept == department:
                    raise _field_error(
                        "assisting_department_ids", N_("There is no department {id}."), id=dept
                    )
        elif data.department_id is not None or data.assisting_department_ids:
            raise _field_error("department_id", N_("The action {action} takes no department."), action=code)
        from_state = row.state
        target = action.target or row.state
        moved = action.target is not None
        row.state, row.department_id, row.updated_at = target, department, now
        if action.department != "no" and data.assisting_department_ids:
            for old in uow.session.scalars(select(EventDepartment).where(EventDepartment.event_id == row.id)):
                uow.session.delete(old)
            uow.session.flush()
            for dept in dict.fromkeys(data.assisting_department_ids):
                uow.session.add(EventDepartment(event_id=row.id, department_id=dept))
        if action.supervise:
            row.supervised = True
        if action.rating:
            row.rating = data.rating
        extra = _supervision_effects(ctx, row, code, data, now)
        note = f"{note}（{extra}）" if note and extra else (note or extra)
        if target == wf.FILED_STATE and row.filed_at is None:
            row.filed_at = now
        if target in wf.HANDLED_STATES and row.handled_at is None:
            row.handled_at = now
        if code in wf.REWORK_ACTIONS:
            row.reworks += 1
        final = flow.state(target).final
        lifted = moved and (final or target in wf.COMPLETED_STATES) and row.supervised
        if moved:
            row.deadline = stage_deadline(ctx, row.workflow, target, row.category, now)
            row.overdue = row.due_soon = False
            row.closed_at = now if final else None
            if action.reopens:
                row.rating = None
            extend = flow.action("request_extension")
            if extend is None or target not in extend.sources:
                row.extension_days = None
            if lifted:  # 督办 ends with the event
                row.supervised = False
        uow.session.add(
            EventStep(
                event_id=row.id,
                action=code,
                from_state=from_state,
                to_state=target,
                at=now,
                by=actor.ref,
                by_name=actor.display_name,
                department_id=department,
                note=note[:1000],
            )
        )
        if lifted:
            uow.session.add(
                EventStep(
                    event_id=row.id,
                    action="supervision_lifted",
                    from_state=target,
                    to_state=target,
                    at=now,
                    by=actor.ref,
                    by_name=actor.display_name,
                    department_id=department,
                    note="办结后解除督办",
                )
            )
        uow.emit(_changed(row, code, from_state, now, actor.ref))
        if moved and (final or target in wf.HANDLED_STATES or target in wf.COMPLETED_STATES):
            _follow_main(uow, row, flow.state(target), note, now, actor)
    return get_event(ctx, actor, event_id)


def _supervision_effects(ctx: AppContext, row: CityEvent, code: str, data: ActionTake, now: datetime) -> str:
    """催办, 延期 and 解除督办 on the event; what the timeline adds to the note (Chinese text)."""
    if code == "urge":
        row.urges += 1
        return f"第 {row.urges} 次催办"
    if code == "request_extension" and data.days is not None:
        row.extension_days = data.days
        return f"申请延期 {data.days} 个工作日"
    if code == "approve_extension" and row.deadline is not None and row.extension_days is not None:
        zone = _zone(ctx)
        days, row.extension_days = row.extension_days, None
        row.deadline = deadlines.add_working_days(row.deadline, days, zone)
        row.extensions += 1
        row.overdue = row.deadline < now
        row.due_soon = False
        return f"延期 {days} 个工作日，新的截止时间 {row.deadline.astimezone(zone):%Y-%m-%d %H:%M}"
    if code == "reject_extension":
        row.extension_days = None
    if code == "lift_supervision":
        row.supervised = False
    return ""


def _follow_main(uow: Any, main: CityEvent, state: wf.State, note: str, now: datetime, actor: Actor) -> None:
    """The events merged into a main event follow its reply, completion and closing in their timelines."""
    followers = list(uow.session.scalars(select(CityEvent).where(CityEvent.merged_into_id == main.id)))
    for row in followers:
        row.updated_at = now
        uow.session.add(
            EventStep(
                event_id=row.id,
                action="main_followed",
                from_state=row.state,
                to_state=row.state,
                at=now,
                by=actor.ref,
                by_name=actor.display_name,
                department_id=main.department_id,
                note=(f"主办事件 {main.number} {state.name_zh}" + (f"：{note}" if note else ""))[:1000],
            )
        )
        uow.emit(_changed(row, "main_followed", row.state, now, actor.ref))


# --- deadlines ------------------------------------------------------------------------------------


def scan_overdue(ctx: AppContext, now: datetime | None = None) -> int:
    """Flag events past their stage's deadline as overdue and escalate them to 督办; return how many."""
    now = now or utcnow()
    batch = settings(ctx).overdue_batch
    due = and_(
        CityEvent.deadline.is_not(None),
        CityEvent.deadline < now,
        CityEvent.overdue.is_(False),
        CityEvent.state.in_(_open_states()),
    )
    with ctx.read() as session:
        ids = list(session.scalars(select(CityEvent.id).where(due).order_by(CityEvent.deadline).limit(batch)))
    if not ids:
        return 0
    with ctx.uow(SYSTEM, "command.event.overdue") as uow:
        session = uow.session
        result = session.execute(
            update(CityEvent)
            .where(CityEvent.id.in_(ids), due)
            .values(overdue=True, supervised=True, late=True, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        rows = list(
            session.scalars(
                select(CityEvent).where(
                    CityEvent.id.in_(ids), CityEvent.overdue.is_(True), CityEvent.updated_at == now
                )
            )
        )
        _flagged(uow, rows, "overdue", {"overdue": False}, {"overdue": True, "supervised": True}, now)
        return int(getattr(result, "rowcount", len(rows)) or len(rows))


def _flagged(
    uow: UnitOfWork,
    rows: Sequence[CityEvent],
    action: str,
    old: dict[str, Any],
    new: dict[str, Any],
    now: datetime,
) -> None:
    """A scan's flag on events: a timeline step, a ledger record and an EventChanged for each."""
    uow.session.add_all(
        EventStep(
            event_id=r.id,
            action=action,
            from_state=r.state,
            to_state=r.state,
            at=now,
            by=SYSTEM.ref,
            by_name="",
            department_id=r.department_id,
        )
        for r in rows
    )
    for r in rows:
        uow.record("update", f"command_event:{r.id}", old, new)
    uow.emit_many([_changed(r, action, r.state, now, SYSTEM.ref) for r in rows])


def _limit_time(lim: taxonomy.Limit, office: tuple[Any, Any]) -> timedelta:
    """A stage's whole time limit as office time: working hours, or working days of office hours."""
    if lim.unit == "d":
        return lim.amount * deadlines.office_day(office)
    return timedelta(hours=lim.amount)


def scan_due_soon(ctx: AppContext, now: datetime | None = None) -> int:
    """临期预警: flag open events with less than a share of their stage's time left, once a stage; how many."""
    now = now or utcnow()
    s = settings(ctx)
    zone, office = _zone(ctx), (s.office_start, s.office_end)
    e = CityEvent
    due = and_(
        e.deadline.is_not(None),
        e.deadline >= now,
        e.due_soon.is_(False),
        e.overdue.is_(False),
        e.state.in_(_open_states()),
    )
    with ctx.read() as session:
        candidates = session.execute(
            select(e.id, e.workflow, e.state, e.category, e.deadline)
            .where(due)
            .order_by(e.deadline)
            .limit(s.overdue_batch)
        ).all()
    ids = []
    for event_id, workflow, state, category, deadline in candidates:
        stage = wf.workflow(workflow).state(state).stage
        found = limit(ctx, category, stage) if stage else None
        if found is None or deadline is None:
            continue
        left = deadlines.working_hours_between(now, deadline, zone, office)
        if left < _limit_time(found, office) * s.due_soon_share:
            ids.append(event_id)
    if not ids:
        return 0
    with ctx.uow(SYSTEM, "command.event.due_soon") as uow:
        session = uow.session
        session.execute(
            update(e)
            .where(e.id.in_(ids), due)
            .values(due_soon=True, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        rows = list(
            session.scalars(select(e).where(e.id.in_(ids), e.due_soon.is_(True), e.updated_at == now))
        )
        _flagged(uow, rows, "due_soon", {"due_soon": False}, {"due_soon": True}, now)
        return len(rows)


# --- roles ----------------------------------------------------------------------------------------


def ensure_roles(ctx: AppContext) -> dict[str, int]:
    """Create the command centre's roles (受理员, 值班长, 派遣员, 处置人员, 监督员) if missing; ids by code."""
    have = {r.code: r.id for r in identity.list_roles(ctx, SYSTEM)}
    for code, name_zh, name_en, permissions in ROLES:
        if code not in have:
            created = identity.create_role(
                ctx,
                SYSTEM,
                identity_schemas.RoleCreate(
                    code=code, name_zh=name_zh, name_en=name_en, permissions=list(permissions)
                ),
            )
            have[code] = created.id
    return {code: have[code] for code, *_ in ROLES}
