"""The command REST API under /api/command: categories, intake, events with their timeline, actions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from citybrain.apps.command import schemas, services
from citybrain.sdk import Ctx, CurrentActor

router = APIRouter()
MAX_INT = 2**31 - 1
Id = Annotated[int, Path(ge=1, le=MAX_INT)]
ActionCode = Annotated[str, Path(pattern=r"^[a-z][a-z_]{1,23}$")]
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=MAX_INT)]


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
