"""Command pages under /command: the operator console, an event's page with its timeline and actions,
the 12345 intake form, the department inbox, the KPI reports, the supervision board and the emergency command
view (emergency_views.py).

Views stay thin: parse the form, call one service, render. Services check every permission; a refused
action re-renders the event's page with the reason and the problem's status.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from citybrain.apps.command import emergency_views, kpi, services, supervision
from citybrain.apps.command import workflows as wf
from citybrain.apps.command.schemas import ActionTake, MergeCreate, TicketCreate
from citybrain.apps.geo import services as geo
from citybrain.sdk import (
    Actor,
    AllDepartments,
    AppContext,
    Ctx,
    CurrentActor,
    Locale,
    ProblemError,
    ValidationFailed,
    render,
)

router = APIRouter()
router.include_router(emergency_views.router)
PAGE_SIZE = 50
MAX_INT = 2**31 - 1
Id = Annotated[int, Path(ge=1, le=MAX_INT)]
Text = Annotated[str, Form(max_length=5000)]


def _page(
    request: Request, ctx: AppContext, locale: str, template: str, status_code: int = 200, **values: Any
) -> HTMLResponse:
    """Render a command page with its helpers (China time, names in the reader's language)."""
    zone = ZoneInfo(ctx.settings.timezone)
    cats = services.categories(ctx)
    depts = {d.id: (d.name_zh, d.name_en) for d in services.departments(ctx).values()}
    districts = {d.code: (d.name_zh, d.name_en) for d in geo.districts(ctx)}

    def name_of(zh: str, en: str) -> str:
        return (en or zh) if locale == "en" else (zh or en)

    def when(moment: datetime | None) -> str:
        if moment is None:
            return ""
        aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
        return aware.astimezone(zone).strftime("%Y-%m-%d %H:%M")

    def category(code: str | None) -> str:
        found = cats.get(code) if code else None
        return name_of(found.name_zh, found.name_en) if found else (code or "—")

    def state(workflow: str, code: str) -> str:
        try:
            item = wf.workflow(workflow).state(code)
        except KeyError:
            return code
        return name_of(item.name_zh, item.name_en)

    def source(code: str) -> str:
        names = wf.SOURCES.get(code)
        return name_of(*names) if names else code

    def department(dept_id: int | None) -> str:
        names = depts.get(dept_id) if dept_id is not None else None
        return name_of(*names) if names else "—"

    def district(code: str | None) -> str:
        names = districts.get(code) if code else None
        return name_of(*names) if names else (code or "—")

    response = render(
        request,
        template,
        status_code=status_code,
        name_of=name_of,
        when=when,
        category_name=category,
        state_name=state,
        source_name=source,
        department_name=department,
        district_name=district,
        workflows=wf.WORKFLOWS,
        ratings=wf.RATINGS,
        **values,
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def _problem_text(ctx: AppContext, locale: str, exc: ProblemError) -> str:
    """A problem's detail in the reader's language."""
    return ctx.i18n.gettext(locale, exc.detail, **exc.params)


def _map(ctx: AppContext, items: list[Any]) -> dict[str, Any]:
    """The districts and the open events with a location, as the console's map draws them."""
    west, south, east, north = geo.city(ctx).geometry.bounds
    markers = [
        {"id": e.id, "number": e.number, "title": e.title, "lon": e.lon, "lat": e.lat, "overdue": e.overdue}
        for e in items
        if e.lon is not None and e.lat is not None
    ]
    return {
        "districts": geo.district_collection(ctx, simplify=0.002),
        "bounds": [west, south, east, north],
        "markers": markers,
    }


# --- the console and the inbox ------------------------------------------------------------------


@router.get("")
def command_home() -> Response:
    """The app's entry: the operator console."""
    return RedirectResponse("/command/events", status_code=303)


def _list_page(
    request: Request,
    ctx: AppContext,
    actor: Actor,
    locale: str,
    filters: dict[str, Any],
    inbox: bool,
    page_no: int,
) -> Response:
    result = services.list_events(
        ctx,
        actor,
        state=filters.get("state") or None,
        workflow=filters.get("workflow") or None,
        category=filters.get("category") or None,
        district=filters.get("district") or None,
        overdue=True if filters.get("overdue") else None,
        due_soon=True if filters.get("due_soon") else None,
        text=filters.get("q") or None,
        inbox=inbox,
        limit=PAGE_SIZE,
        offset=(page_no - 1) * PAGE_SIZE,
    )
    counts = services.counts(ctx, actor)
    base = "/command/inbox" if inbox else "/command/events"

    def page_url(number: int) -> str:
        query = {k: v for k, v in filters.items() if v} | ({"page": number} if number > 1 else {})
        return f"{base}?{urlencode(query)}" if query else base

    return _page(
        request,
        ctx,
        locale,
        "command/events.html",
        result=result,
        counts=counts,
        filters=filters,
        inbox=inbox,
        categories=list(services.categories(ctx).values()),
        districts=[(d.code, d.name_zh, d.name_en) for d in geo.districts(ctx)],
        map_config=_map(ctx, result.items) | {"locale": locale},
        page_no=page_no,
        pages=max(1, -(-result.total // PAGE_SIZE)),
        page_url=page_url,
        actor=actor,
    )


Filter = Annotated[str, Query(max_length=100)]
PageNo = Annotated[int, Query(ge=1, le=100_000)]


@router.get("/events")
def console(
    request: Request,
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    state: Annotated[str, Query(pattern=r"^[a-z_]{0,16}$")] = "",
    workflow: Annotated[str, Query(pattern=r"^(city|hotline)?$")] = "",
    category: Annotated[str, Query(pattern=r"^[a-z0-9_.]{0,64}$")] = "",
    district: Annotated[str, Query(pattern=r"^(\d{6})?$")] = "",
    overdue: Annotated[str, Query(pattern=r"^1?$")] = "",
    due_soon: Annotated[str, Query(pattern=r"^1?$")] = "",
    q: Filter = "",
    page: PageNo = 1,
) -> Response:
    """The operator console: counts by state, a map of the events listed and the list with filters."""
    filters = {
        "state": state,
        "workflow": workflow,
        "category": category,
        "district": district,
        "overdue": overdue,
        "due_soon": due_soon,
        "q": q,
    }
    return _list_page(request, ctx, actor, locale, filters, False, page)


@router.get("/inbox")
def inbox(request: Request, ctx: Ctx, actor: CurrentActor, locale: Locale, page: PageNo = 1) -> Response:
    """My department's open events, to act on."""
    return _list_page(request, ctx, actor, locale, {}, True, page)


# --- one event -----------------------------------------------------------------------------------


def _event_page(
    request: Request,
    ctx: AppContext,
    actor: Actor,
    locale: str,
    event_id: int,
    status_code: int = 200,
    **values: Any,
) -> Response:
    event = services.get_event(ctx, actor, event_id)
    needs_departments = any(a.department != "no" for a in event.actions)
    departments = (
        sorted(((d.id, d.name_zh, d.name_en) for d in services.departments(ctx).values()), key=lambda d: d[0])
        if needs_departments
        else []
    )
    return _page(
        request,
        ctx,
        locale,
        "command/event.html",
        status_code=status_code,
        event=event,
        all_departments=departments,
        map_config=_map(ctx, [event]) | {"locale": locale},
        **values,
    )


@router.get("/events/{event_id}")
def event_page(event_id: Id, request: Request, ctx: Ctx, actor: CurrentActor, locale: Locale) -> Response:
    """An event's page: its facts, map, timeline and the actions I may take."""
    ok = request.query_params.get("ok", "")
    return _event_page(request, ctx, actor, locale, event_id, ok=ok if ok.isidentifier() else "")


@router.post("/events/{event_id}/actions/{action}")
def event_action(
    event_id: Id,
    action: Annotated[str, Path(pattern=r"^[a-z][a-z_]{1,23}$")],
    request: Request,
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    note: Annotated[str, Form(max_length=1000)] = "",
    department_id: Annotated[str, Form(max_length=12)] = "",
    rating: Annotated[str, Form(max_length=24)] = "",
    days: Annotated[str, Form(max_length=4)] = "",
) -> Response:
    """Take an action from the event's page; a refusal shows its reason on the page."""
    try:
        data = ActionTake.model_validate(
            {
                "note": note,
                "department_id": department_id or None,
                "rating": rating or None,
                "days": days or None,
            }
        )
        services.act(ctx, actor, event_id, action, data)
    except ValidationError:
        return _event_page(
            request, ctx, actor, locale, event_id, 422, error=ctx.i18n.gettext(locale, "Check the form.")
        )
    except ProblemError as exc:
        if exc.status in (401, 404):
            raise
        return _event_page(
            request, ctx, actor, locale, event_id, exc.status, error=_problem_text(ctx, locale, exc)
        )
    return RedirectResponse(f"/command/events/{event_id}?ok={action}", status_code=303)


@router.post("/events/{event_id}/merge")
def event_merge(
    event_id: Id,
    request: Request,
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    into: Annotated[str, Form(max_length=16)] = "",
    note: Annotated[str, Form(max_length=1000)] = "",
    force: Annotated[str, Form(max_length=4)] = "",
) -> Response:
    """并单 from the event's page: merge it into the event named by id or case number."""
    try:
        target = services.event_id_of(ctx, actor, into)
        services.merge(ctx, actor, event_id, MergeCreate(into=target, note=note, force=bool(force)))
    except ValidationError:
        return _event_page(
            request, ctx, actor, locale, event_id, 422, error=ctx.i18n.gettext(locale, "Check the form.")
        )
    except ProblemError as exc:
        if exc.status in (401, 404):
            raise
        return _event_page(
            request, ctx, actor, locale, event_id, exc.status, error=_problem_text(ctx, locale, exc)
        )
    return RedirectResponse(f"/command/events/{event_id}?ok=merge", status_code=303)


# --- 12345 intake ---------------------------------------------------------------------------------


def _ticket_form(
    request: Request,
    ctx: AppContext,
    actor: Actor,
    locale: str,
    values: dict[str, str],
    error: str = "",
    status_code: int = 200,
) -> Response:
    actor.require(wf.TICKET)
    hotline = [c for c in services.categories(ctx).values()]
    return _page(
        request,
        ctx,
        locale,
        "command/ticket_new.html",
        status_code=status_code,
        values=values,
        error=error,
        all_categories=hotline,
        districts=[(d.code, d.name_zh, d.name_en) for d in geo.districts(ctx)],
    )


@router.get("/tickets/new")
def ticket_new(request: Request, ctx: Ctx, actor: CurrentActor, locale: Locale) -> Response:
    """The 12345 intake form."""
    return _ticket_form(request, ctx, actor, locale, {})


@router.post("/tickets/new")
def ticket_create(
    request: Request,
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    caller_name: Annotated[str, Form(max_length=64)] = "",
    caller_phone: Annotated[str, Form(max_length=32)] = "",
    content: Text = "",
    category: Annotated[str, Form(max_length=64)] = "",
    district: Annotated[str, Form(max_length=6)] = "",
    address: Annotated[str, Form(max_length=300)] = "",
    lon: Annotated[str, Form(max_length=20)] = "",
    lat: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """Take in a ticket from the form and open its page."""
    values = {
        "caller_name": caller_name,
        "caller_phone": caller_phone,
        "content": content,
        "category": category,
        "district": district,
        "address": address,
        "lon": lon,
        "lat": lat,
    }
    body: dict[str, Any] = {k: v.strip() for k, v in values.items() if v.strip() and k not in ("lon", "lat")}
    if lon.strip() and lat.strip():
        body["location"] = {"lon": lon.strip(), "lat": lat.strip()}
    try:
        created = services.take_ticket(ctx, actor, TicketCreate.model_validate(body))
    except ValidationError as exc:
        fields = ", ".join(sorted({str(e["loc"][0]) for e in exc.errors() if e["loc"]}))
        message = ctx.i18n.gettext(locale, "Check these fields: {fields}.", fields=fields)
        return _ticket_form(request, ctx, actor, locale, values, message, 422)
    except ProblemError as exc:
        if exc.status in (401, 403):
            raise
        return _ticket_form(request, ctx, actor, locale, values, _problem_text(ctx, locale, exc), exc.status)
    return RedirectResponse(f"/command/events/{created.id}?ok=intake", status_code=303)


# --- KPI reports ----------------------------------------------------------------------------------

DateText = Annotated[str, Query(pattern=r"^(\d{4}-\d{2}-\d{2})?$")]


def _day(text: str) -> date | None:
    """A date from a form's yyyy-mm-dd (None when empty); a 422 when it is no date."""
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        raise ValidationFailed("{value} is not a date.", value=text) from None


@router.get("/kpi")
def kpi_page(
    request: Request,
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    dimension: Annotated[kpi.Dimension, Query()] = "department",
    period: Annotated[kpi.Period, Query()] = "month",
    day: DateText = "",
    start: DateText = "",
    end: DateText = "",
) -> Response:
    """KPI reports (GB/T 30428 evaluation and 12345 satisfaction) with charts and exports."""
    values = {"dimension": dimension, "period": period, "day": day, "start": start, "end": end}
    error, status_code, found = "", 200, None
    try:
        found = kpi.report(
            ctx,
            actor,
            locale,
            dimension=dimension,
            period=period,
            day=_day(day),
            start=_day(start),
            end=_day(end),
        )
    except ProblemError as exc:
        if exc.status in (401, 403):
            raise
        error, status_code = _problem_text(ctx, locale, exc), exc.status
    query = urlencode({k: v for k, v in values.items() if v})
    chart = (
        {
            "names": [r.name for r in found.rows],
            "composite": [r.composite for r in found.rows],
            "closing": [r.closing_rate for r in found.rows],
            "on_time": [r.on_time_closing_rate for r in found.rows],
            "satisfaction": [r.satisfaction_rate for r in found.rows],
            "labels": {
                "composite": ctx.i18n.gettext(locale, "Composite score"),
                "closing": ctx.i18n.gettext(locale, "Closing rate (%)"),
                "on_time": ctx.i18n.gettext(locale, "On-time closing rate (%)"),
                "satisfaction": ctx.i18n.gettext(locale, "12345 satisfaction rate (%)"),
            },
        }
        if found is not None
        else None
    )
    return _page(
        request,
        ctx,
        locale,
        "command/kpi.html",
        status_code=status_code,
        report=found,
        values=values,
        error=error,
        export_query=query,
        chart=chart,
    )


# --- the supervision board ------------------------------------------------------------------------


def _overdue_text(ctx: AppContext, locale: str, row: Any) -> str:
    """How far past its deadline an event is, in working days (or working hours under one day)."""
    if row.overdue_working_days is None:
        return ""
    if row.overdue_working_days >= 1:
        return ctx.i18n.gettext(locale, "{days} working days", days=f"{row.overdue_working_days:g}")
    return ctx.i18n.gettext(locale, "{hours} working hours", hours=f"{row.overdue_working_hours:g}")


@router.get("/supervision")
def supervision_page(
    request: Request,
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    department: Annotated[str, Query()] = "",
    district: Annotated[str, Query()] = "",
) -> Response:
    """The supervision board (督办看板): overdue and escalated events, those due soon, counts by department."""
    values = {"department": department, "district": district}
    error, status_code, found = "", 200, None
    try:
        found = supervision.board(ctx, actor, locale, department=department, district=district)
    except ProblemError as exc:
        if exc.status in (401, 403):
            raise
        error, status_code = _problem_text(ctx, locale, exc), exc.status
    scope = actor.scope(wf.READ)
    chart = (
        {
            "names": [d.name for d in found.departments],
            "overdue": [d.overdue for d in found.departments],
            "escalated": [d.escalated for d in found.departments],
            "due_soon": [d.due_soon for d in found.departments],
            "labels": {
                "overdue": ctx.i18n.gettext(locale, "Overdue"),
                "escalated": ctx.i18n.gettext(locale, "Escalated (督办)"),
                "due_soon": ctx.i18n.gettext(locale, "Due soon (即将超期)"),
            },
        }
        if found is not None
        else None
    )
    departments = sorted(
        (
            (d.id, d.name_zh, d.name_en)
            for d in services.departments(ctx).values()
            if isinstance(scope, AllDepartments) or d.id in scope
        ),
        key=lambda d: d[0],
    )
    return _page(
        request,
        ctx,
        locale,
        "command/supervision.html",
        status_code=status_code,
        board=found,
        values=values,
        error=error,
        chart=chart,
        all_departments=departments,
        districts=[(d.code, d.name_zh, d.name_en) for d in geo.districts(ctx)],
        overdue_text=lambda row: _overdue_text(ctx, locale, row),
    )
