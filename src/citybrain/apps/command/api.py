"""The command REST API under /api/command: categories, intake, events with their timeline, actions, KPIs,
the supervision board, and emergency command (/api/command/emergency, emergency_api.py)."""

from __future__ import annotations

from datetime import date
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Response, status

from citybrain.apps.command import emergency_api, kpi, schemas, services, supervision
from citybrain.sdk import Ctx, CurrentActor, Locale

router = APIRouter()
router.include_router(emergency_api.router)
MAX_INT = 2**31 - 1
Id = Annotated[int, Path(ge=1, le=MAX_INT)]
ActionCode = Annotated[str, Path(pattern=r"^[a-z][a-z_]{1,23}$")]
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=MAX_INT)]
Dimension = Annotated[kpi.Dimension, Query(description="Evaluate departments or districts.")]
Period = Annotated[
    kpi.Period, Query(description="A local day, ISO week or month holding `day`, or start … end.")
]
Day = Annotated[date | None, Query(description="A day of the period (default: today, China time).")]
CSV = "text/csv; charset=utf-8"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@router.get("/categories", response_model=list[schemas.CategoryRead])
def categories(ctx: Ctx, actor: CurrentActor) -> list[schemas.CategoryRead]:
    """Every category with its time limits and responsible departments (权责清单)."""
    return services.list_categories(ctx, actor)


@router.post("/tickets", response_model=schemas.EventDetail, status_code=status.HTTP_201_CREATED)
def take_ticket(data: schemas.TicketCreate, ctx: Ctx, actor: CurrentActor) -> schemas.EventDetail:
    """Take in a 12345 hotline ticket."""
    return services.take_ticket(ctx, actor, data)


@router.post("/reports", response_model=schemas.EventDetail, status_code=status.HTTP_201_CREATED)
def report(data: schemas.ReportCreate, ctx: Ctx, actor: CurrentActor) -> schemas.EventDetail:
    """An inspector's report or a department's own report."""
    return services.report(ctx, actor, data)


@router.get("/counts")
def counts(ctx: Ctx, actor: CurrentActor) -> dict[str, dict[str, int]]:
    """How many visible events are in each state of each workflow; overdue and supervised ones."""
    return services.counts(ctx, actor)


@router.get("/events", response_model=schemas.Page[schemas.EventRead])
def events(
    ctx: Ctx,
    actor: CurrentActor,
    state: Annotated[str | None, Query(pattern=r"^[a-z_]{2,16}$")] = None,
    workflow: Annotated[str | None, Query(pattern=r"^(city|hotline)$")] = None,
    category: Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9_.]{0,63}$")] = None,
    district: Annotated[str | None, Query(pattern=r"^\d{6}$")] = None,
    department_id: Annotated[int | None, Query(ge=1, le=MAX_INT)] = None,
    overdue: bool | None = None,
    supervised: bool | None = None,
    due_soon: bool | None = None,
    q: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
    inbox: bool = False,
    limit: Limit = 50,
    offset: Offset = 0,
) -> schemas.Page[schemas.EventRead]:
    """Events the reader may see, newest change first, with filters; `inbox`: my department's open ones."""
    return services.list_events(
        ctx,
        actor,
        state=state,
        workflow=workflow,
        category=category,
        district=district,
        department_id=department_id,
        overdue=overdue,
        supervised=supervised,
        due_soon=due_soon,
        text=q,
        inbox=inbox,
        limit=limit,
        offset=offset,
    )


@router.get("/events/{event_id}", response_model=schemas.EventDetail)
def event(event_id: Id, ctx: Ctx, actor: CurrentActor) -> schemas.EventDetail:
    """An event with its timeline and the actions the reader may take now."""
    return services.get_event(ctx, actor, event_id)


@router.post("/events/{event_id}/actions/{action}", response_model=schemas.EventDetail)
def act(
    event_id: Id, action: ActionCode, data: schemas.ActionTake, ctx: Ctx, actor: CurrentActor
) -> schemas.EventDetail:
    """Take a workflow action (403: not for your role; 409: not in this state)."""
    return services.act(ctx, actor, event_id, action, data)


@router.post("/events/{event_id}/merge", response_model=schemas.EventDetail)
def merge(event_id: Id, data: schemas.MergeCreate, ctx: Ctx, actor: CurrentActor) -> schemas.EventDetail:
    """并单: merge this event into the main event `into` (409: finished, other category unless forced, loop)."""
    return services.merge(ctx, actor, event_id, data)


@router.get("/kpi", response_model=schemas.KpiReport)
def kpi_report(
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    dimension: Dimension = "department",
    period: Period = "month",
    day: Day = None,
    start: date | None = None,
    end: date | None = None,
) -> schemas.KpiReport:
    """GB/T 30428 KPIs and 12345 satisfaction by department or district over a period, with the city's."""
    return kpi.report(ctx, actor, locale, dimension=dimension, period=period, day=day, start=start, end=end)


def _export(found: schemas.KpiReport, suffix: str) -> str:
    """The attachment header of an export."""
    name = f"kpi-{found.dimension}-{found.start.isoformat()}-{found.end.isoformat()}.{suffix}"
    return f"attachment; filename*=UTF-8''{quote(name)}"


@router.get("/kpi.csv", response_class=Response, responses={200: {"content": {CSV: {}}}})
def kpi_csv(
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    dimension: Dimension = "department",
    period: Period = "month",
    day: Day = None,
    start: date | None = None,
    end: date | None = None,
) -> Response:
    """The KPI report as CSV (UTF-8 with BOM), the city's row last."""
    found = kpi.report(ctx, actor, locale, dimension=dimension, period=period, day=day, start=start, end=end)
    body = kpi.to_csv(kpi.table(found, locale))
    return Response(body, media_type=CSV, headers={"Content-Disposition": _export(found, "csv")})


@router.get("/kpi.xlsx", response_class=Response, responses={200: {"content": {XLSX: {}}}})
def kpi_xlsx(
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    dimension: Dimension = "department",
    period: Period = "month",
    day: Day = None,
    start: date | None = None,
    end: date | None = None,
) -> Response:
    """The KPI report as an Excel workbook, the city's row last."""
    found = kpi.report(ctx, actor, locale, dimension=dimension, period=period, day=day, start=start, end=end)
    body = kpi.to_xlsx(kpi.table(found, locale), "KPI")
    return Response(body, media_type=XLSX, headers={"Content-Disposition": _export(found, "xlsx")})


@router.get("/supervision", response_model=schemas.SupervisionBoard)
def supervision_board(
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    department: Annotated[str, Query(description="A responsible department's id (empty: all).")] = "",
    district: Annotated[str, Query(description="A district's 6-digit code (empty: all).")] = "",
) -> schemas.SupervisionBoard:
    """The supervision board (督办看板): overdue and escalated events, those due soon, counts (400: bad filter)."""
    return supervision.board(ctx, actor, locale, department=department, district=district)
