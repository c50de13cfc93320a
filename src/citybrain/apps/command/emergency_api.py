"""The emergency command API under /api/command/emergency: plans, responses, tasks, resources, nearest, log."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response, status

from citybrain.apps.command import emergency, schemas
from citybrain.sdk import Ctx, CurrentActor

router = APIRouter(prefix="/emergency")
MAX_INT = 2**31 - 1
Id = Annotated[int, Path(ge=1, le=MAX_INT)]
PlanCode = Annotated[str, Path(pattern=schemas.PLAN_RE, max_length=64)]
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=MAX_INT)]


@router.get("/plans", response_model=list[schemas.PlanRead])
def plans(ctx: Ctx, actor: CurrentActor) -> list[schemas.PlanRead]:
    """Every emergency plan (应急预案) with the departments and tasks of levels I–IV."""
    return emergency.list_plans(ctx, actor)


@router.get("/plans/{code}", response_model=schemas.PlanRead)
def plan(code: PlanCode, ctx: Ctx, actor: CurrentActor) -> schemas.PlanRead:
    """One emergency plan."""
    return emergency.get_plan(ctx, actor, code)


@router.get("/responses", response_model=schemas.Page[schemas.ResponseRead])
def responses(
    ctx: Ctx,
    actor: CurrentActor,
    state: Annotated[Literal["active", "ended", "all"], Query()] = "active",
    limit: Limit = 50,
    offset: Offset = 0,
) -> schemas.Page[schemas.ResponseRead]:
    """Emergency responses, the most severe first (active ones unless `state` says otherwise)."""
    return emergency.list_responses(
        ctx, actor, state=None if state == "all" else state, limit=limit, offset=offset
    )


@router.post("/responses", response_model=schemas.ResponseDetail, status_code=status.HTTP_201_CREATED)
def activate(data: schemas.ResponseCreate, ctx: Ctx, actor: CurrentActor) -> schemas.ResponseDetail:
    """Start a response by hand (409: the plan is already active in that district)."""
    return emergency.activate(ctx, actor, data)


@router.get("/responses/{response_id}", response_model=schemas.ResponseDetail)
def response(response_id: Id, ctx: Ctx, actor: CurrentActor) -> schemas.ResponseDetail:
    """A response with its tasks, dispatched resources and command log."""
    return emergency.get_response(ctx, actor, response_id)


@router.post("/responses/{response_id}/level", response_model=schemas.ResponseDetail)
def change_level(
    response_id: Id, data: schemas.LevelChange, ctx: Ctx, actor: CurrentActor
) -> schemas.ResponseDetail:
    """Raise or lower a response; the new level's tasks are added (409: ended or same level)."""
    return emergency.change_level(ctx, actor, response_id, data)


@router.post("/responses/{response_id}/end", response_model=schemas.ResponseDetail)
def end(response_id: Id, data: schemas.ResponseEnd, ctx: Ctx, actor: CurrentActor) -> schemas.ResponseDetail:
    """End (终止) a response and release its resources (409: ended already)."""
    return emergency.end(ctx, actor, response_id, data)


@router.get("/responses/{response_id}/tasks", response_model=list[schemas.TaskRead])
def tasks(response_id: Id, ctx: Ctx, actor: CurrentActor) -> list[schemas.TaskRead]:
    """A response's task list."""
    return emergency.response_tasks(ctx, actor, response_id)


@router.patch("/tasks/{task_id}", response_model=schemas.TaskRead)
def update_task(task_id: Id, data: schemas.TaskUpdate, ctx: Ctx, actor: CurrentActor) -> schemas.TaskRead:
    """Move a task to todo/doing/done (403: not your department's; 409: same status or response ended)."""
    return emergency.update_task(ctx, actor, task_id, data)


@router.get("/responses/{response_id}/log", response_model=list[schemas.LogRead])
def command_log(response_id: Id, ctx: Ctx, actor: CurrentActor) -> list[schemas.LogRead]:
    """A response's command log (指挥日志), oldest first."""
    return emergency.response_log(ctx, actor, response_id)


@router.post(
    "/responses/{response_id}/log", response_model=schemas.LogRead, status_code=status.HTTP_201_CREATED
)
def add_note(response_id: Id, data: schemas.NoteCreate, ctx: Ctx, actor: CurrentActor) -> schemas.LogRead:
    """Type a note into the command log."""
    return emergency.add_note(ctx, actor, response_id, data)


@router.post("/responses/{response_id}/dispatch", response_model=schemas.ResourceRead)
def dispatch(
    response_id: Id, data: schemas.DispatchCreate, ctx: Ctx, actor: CurrentActor
) -> schemas.ResourceRead:
    """Dispatch an available resource to the response (409: not available, or the response ended)."""
    return emergency.dispatch(ctx, actor, response_id, data)


@router.get("/resources", response_model=schemas.Page[schemas.ResourceRead])
def resources(
    ctx: Ctx,
    actor: CurrentActor,
    kind: schemas.ResourceKind | None = None,
    status: schemas.ResourceStatus | None = None,
    district: Annotated[str | None, Query(pattern=r"^\d{6}$")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> schemas.Page[schemas.ResourceRead]:
    """Emergency resources (teams, vehicles, shelters, supplies) with filters."""
    return emergency.list_resources(
        ctx, actor, kind=kind, status=status, district=district, limit=limit, offset=offset
    )


@router.post("/resources", response_model=schemas.ResourceRead, status_code=status.HTTP_201_CREATED)
def create_resource(data: schemas.ResourceCreate, ctx: Ctx, actor: CurrentActor) -> schemas.ResourceRead:
    """Register a resource."""
    return emergency.create_resource(ctx, actor, data)


@router.get("/resources/{resource_id}", response_model=schemas.ResourceRead)
def resource(resource_id: Id, ctx: Ctx, actor: CurrentActor) -> schemas.ResourceRead:
    """One resource."""
    return emergency.get_resource(ctx, actor, resource_id)


@router.patch("/resources/{resource_id}", response_model=schemas.ResourceRead)
def update_resource(
    resource_id: Id, data: schemas.ResourceUpdate, ctx: Ctx, actor: CurrentActor
) -> schemas.ResourceRead:
    """Change a resource (409: a dispatched one keeps its status until released)."""
    return emergency.update_resource(ctx, actor, resource_id, data)


@router.delete("/resources/{resource_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def delete_resource(resource_id: Id, ctx: Ctx, actor: CurrentActor) -> Response:
    """Remove a resource (409 while dispatched)."""
    emergency.delete_resource(ctx, actor, resource_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/resources/{resource_id}/release", response_model=schemas.ResourceRead)
def release(
    resource_id: Id, data: schemas.ReleaseCreate, ctx: Ctx, actor: CurrentActor
) -> schemas.ResourceRead:
    """Release a dispatched resource (409 when it is not dispatched)."""
    return emergency.release(ctx, actor, resource_id, data)


@router.get("/nearest", response_model=schemas.NearestResult)
def nearest(
    ctx: Ctx,
    actor: CurrentActor,
    lon: Annotated[float, Query(ge=-180, le=180)],
    lat: Annotated[float, Query(ge=-90, le=90)],
    kind: schemas.ResourceKind | None = None,
    limit: Annotated[int, Query(ge=1, le=50)] = 5,
) -> schemas.NearestResult:
    """The available resources quickest to reach a point by road (straight line, flagged, without a route)."""
    return emergency.nearest(ctx, actor, lon, lat, kind=kind, limit=limit)
