"""The emergency command page (/command/emergency): active responses with their level colour, the task list
with status buttons, the map with the incident and the resources, the nearest resources with a dispatch
button, and the command log with a note box.

Views stay thin: parse the form, call one service, render or redirect. A refused write re-renders the page
with the reason and the problem's status.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from citybrain.apps.command import emergency, schemas
from citybrain.apps.command import response_plans as rp
from citybrain.apps.geo import services as geo
from citybrain.sdk import Actor, AppContext, Ctx, CurrentActor, Locale, ProblemError

router = APIRouter()
MAX_INT = 2**31 - 1
Id = Annotated[int, Path(ge=1, le=MAX_INT)]
Note = Annotated[str, Form(max_length=1000)]
NEAREST = 8
RESOURCE_ROWS = 500
ACTION_NAMES = {
    "activate": ("启动响应", "Response started"),
    "raise": ("提升响应级别", "Level raised"),
    "lower": ("降低响应级别", "Level lowered"),
    "task": ("任务更新", "Task updated"),
    "dispatch": ("调派资源", "Resource dispatched"),
    "release": ("释放资源", "Resource released"),
    "note": ("指挥记录", "Note"),
    "warning": ("预警关联", "Warning linked"),
    "end_suggested": ("建议终止", "Ending suggested"),
    "end": ("响应终止", "Response ended"),
}
TASK_NAMES = {"todo": ("待办", "To do"), "doing": ("进行中", "In progress"), "done": ("完成", "Done")}
KIND_NAMES = {
    "team": ("救援队伍", "Team"),
    "vehicle": ("车辆装备", "Vehicle"),
    "shelter": ("避难场所", "Shelter"),
    "supply": ("应急物资", "Supplies"),
}
STATUS_NAMES = {
    "available": ("可用", "Available"),
    "dispatched": ("已调派", "Dispatched"),
    "maintenance": ("维护中", "Maintenance"),
}


def _page(
    request: Request,
    ctx: AppContext,
    actor: Actor,
    locale: str,
    selected: int | None,
    status_code: int = 200,
    **values: Any,
) -> Response:
    """Render the emergency command page with the selected response (the most severe active one by default)."""
    from citybrain.apps.command.views import _page as command_page  # the shared helpers of the command pages

    active = emergency.list_responses(ctx, actor, state="active", limit=100)
    ended = emergency.list_responses(ctx, actor, state="ended", limit=10)
    if selected is None and active.items:
        selected = active.items[0].id
    detail = emergency.get_response(ctx, actor, selected) if selected is not None else None
    resources = emergency.list_resources(ctx, actor, limit=RESOURCE_ROWS)
    near = (
        emergency.nearest(ctx, actor, detail.lon, detail.lat, limit=NEAREST)
        if detail is not None
        and detail.state == "active"
        and detail.lon is not None
        and detail.lat is not None
        else None
    )
    west, south, east, north = geo.city(ctx).geometry.bounds
    map_config = {
        "locale": locale,
        "districts": geo.district_collection(ctx, simplify=0.002),
        "bounds": [west, south, east, north],
        "incident": (
            {"lon": detail.lon, "lat": detail.lat, "title": detail.title, "color": detail.color}
            if detail is not None and detail.lon is not None and detail.lat is not None
            else None
        ),
        "resources": [
            {"id": r.id, "name": r.name, "kind": r.kind, "status": r.status, "lon": r.lon, "lat": r.lat}
            for r in resources.items
        ],
        "nearest": [i.resource.id for i in near.items] if near else [],
    }
    names: Callable[[tuple[str, str]], str] = lambda pair: pair[1] if locale == "en" else pair[0]  # noqa: E731
    return command_page(
        request,
        ctx,
        locale,
        "command/emergency.html",
        status_code=status_code,
        active=active,
        ended=ended,
        detail=detail,
        near=near,
        resources=resources,
        plans=list(emergency.plans(ctx).values()),
        levels=[
            (level, rp.ROMAN[level], rp.LEVEL_COLORS[level], rp.LEVEL_NAMES[level]) for level in rp.LEVELS
        ],
        districts=[(d.code, d.name_zh, d.name_en) for d in geo.districts(ctx)],
        action_name=lambda code: names(ACTION_NAMES[code]) if code in ACTION_NAMES else code,
        task_name=lambda code: names(TASK_NAMES[code]) if code in TASK_NAMES else code,
        kind_name=lambda code: names(KIND_NAMES[code]) if code in KIND_NAMES else code,
        status_name=lambda code: names(STATUS_NAMES[code]) if code in STATUS_NAMES else code,
        level_name=lambda level: names(rp.LEVEL_NAMES[level]),
        task_statuses=emergency.TASK_STATUSES,
        may_command=actor.can(emergency.COMMAND),
        map_config=map_config,
        **values,
    )


def _minutes(seconds: float | None) -> str:
    """A travel time as minutes with one decimal."""
    return "" if seconds is None else f"{seconds / 60:.1f}"


@router.get("/emergency")
def emergency_page(
    request: Request,
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    response: Annotated[int | None, Query(ge=1, le=MAX_INT)] = None,
    ok: Annotated[str, Query(pattern=r"^[a-z_]{0,16}$")] = "",
) -> Response:
    """The emergency command view."""
    actor.require(emergency.READ)
    return _page(request, ctx, actor, locale, response, ok=ok, minutes=_minutes)


def _act(
    request: Request,
    ctx: AppContext,
    actor: Actor,
    locale: str,
    response_id: int | None,
    done: str,
    call: Callable[[], int],
) -> Response:
    """Run a write from a form; a refusal re-renders the page with its reason, success redirects."""
    try:
        target = call()
    except ValidationError as exc:
        fields = ", ".join(sorted({str(e["loc"][0]) for e in exc.errors() if e["loc"]}))
        message = ctx.i18n.gettext(locale, "Check these fields: {fields}.", fields=fields)
        return _page(request, ctx, actor, locale, response_id, 422, error=message, minutes=_minutes)
    except ProblemError as exc:
        if exc.status in (401,) or (exc.status == 404 and response_id is None):
            raise
        message = ctx.i18n.gettext(locale, exc.detail, **exc.params)
        keep = response_id if exc.status != 404 else None
        return _page(request, ctx, actor, locale, keep, exc.status, error=message, minutes=_minutes)
    return RedirectResponse(f"/command/emergency?response={target}&ok={done}", status_code=303)


@router.post("/emergency")
def activate(
    request: Request,
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    plan: Annotated[str, Form(max_length=64)] = "",
    level: Annotated[str, Form(max_length=2)] = "",
    district: Annotated[str, Form(max_length=6)] = "",
    lon: Annotated[str, Form(max_length=20)] = "",
    lat: Annotated[str, Form(max_length=20)] = "",
    address: Annotated[str, Form(max_length=300)] = "",
    title: Annotated[str, Form(max_length=200)] = "",
    note: Note = "",
) -> Response:
    """Start a response from the page's form."""
    body: dict[str, Any] = {
        "plan": plan,
        "level": level or None,
        "note": note,
        "title": title,
        "address": address,
    }
    if district:
        body["district"] = district
    if lon.strip() and lat.strip():
        body["location"] = {"lon": lon.strip(), "lat": lat.strip()}

    def call() -> int:
        return emergency.activate(ctx, actor, schemas.ResponseCreate.model_validate(body)).id

    return _act(request, ctx, actor, locale, None, "activate", call)


@router.post("/emergency/{response_id}/level")
def change_level(
    response_id: Id,
    request: Request,
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    level: Annotated[str, Form(max_length=2)] = "",
    note: Note = "",
) -> Response:
    """Raise or lower the response from the page."""

    def call() -> int:
        data = schemas.LevelChange.model_validate({"level": level or None, "note": note})
        return emergency.change_level(ctx, actor, response_id, data).id

    return _act(request, ctx, actor, locale, response_id, "level", call)


@router.post("/emergency/{response_id}/end")
def end(
    response_id: Id, request: Request, ctx: Ctx, actor: CurrentActor, locale: Locale, note: Note = ""
) -> Response:
    """End the response from the page."""

    def call() -> int:
        return emergency.end(ctx, actor, response_id, schemas.ResponseEnd(note=note)).id

    return _act(request, ctx, actor, locale, response_id, "end", call)


@router.post("/emergency/{response_id}/tasks/{task_id}")
def task(
    response_id: Id,
    task_id: Id,
    request: Request,
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    status: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """Move a task with its status button."""

    def call() -> int:
        return emergency.update_task(
            ctx, actor, task_id, schemas.TaskUpdate.model_validate({"status": status})
        ).response_id

    return _act(request, ctx, actor, locale, response_id, "task", call)


@router.post("/emergency/{response_id}/dispatch")
def dispatch(
    response_id: Id,
    request: Request,
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    resource_id: Annotated[str, Form(max_length=12)] = "",
    note: Note = "",
) -> Response:
    """Dispatch a resource from the nearest list."""

    def call() -> int:
        data = schemas.DispatchCreate.model_validate({"resource_id": resource_id or None, "note": note})
        emergency.dispatch(ctx, actor, response_id, data)
        return response_id

    return _act(request, ctx, actor, locale, response_id, "dispatch", call)


@router.post("/emergency/{response_id}/release/{resource_id}")
def release(
    response_id: Id,
    resource_id: Id,
    request: Request,
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    note: Note = "",
) -> Response:
    """Release a dispatched resource from the page."""

    def call() -> int:
        emergency.release(ctx, actor, resource_id, schemas.ReleaseCreate(note=note))
        return response_id

    return _act(request, ctx, actor, locale, response_id, "release", call)


@router.post("/emergency/{response_id}/notes")
def note(
    response_id: Id,
    request: Request,
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    note: Note = "",
) -> Response:
    """Type a note into the command log."""

    def call() -> int:
        emergency.add_note(ctx, actor, response_id, schemas.NoteCreate.model_validate({"note": note}))
        return response_id

    return _act(request, ctx, actor, locale, response_id, "note", call)
