"""The warning REST API under /api/warning: rules (with a dry run), warnings, acknowledgement, lifting,
data-quality flags."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response, status

from citybrain.apps.warning import forecasts_api, pages, publishing_api, schemas, services
from citybrain.sdk import BadRequest, Ctx, CurrentActor

router = APIRouter()
MAX_INT = 2**31 - 1
Id = Annotated[int, Path(ge=1, le=MAX_INT)]
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=MAX_INT)]


# --- rules ----------------------------------------------------------------------------------------


@router.get("/rules", response_model=list[schemas.RuleRead])
def rules(ctx: Ctx, actor: CurrentActor) -> list[schemas.RuleRead]:
    """Every rule, with whether it runs and its last run-time failure."""
    return services.list_rules(ctx, actor)


@router.post("/rules", response_model=schemas.RuleRead, status_code=status.HTTP_201_CREATED)
def create_rule(data: schemas.RuleSpec, ctx: Ctx, actor: CurrentActor) -> schemas.RuleRead:
    """Create a rule; its entity type and attributes must exist in the context broker."""
    return services.create_rule(ctx, actor, data)


@router.get("/rules/{rule_id}", response_model=schemas.RuleRead)
def rule(rule_id: Id, ctx: Ctx, actor: CurrentActor) -> schemas.RuleRead:
    """One rule."""
    return services.get_rule(ctx, actor, rule_id)


@router.patch("/rules/{rule_id}", response_model=schemas.RuleRead)
def update_rule(rule_id: Id, data: schemas.RuleUpdate, ctx: Ctx, actor: CurrentActor) -> schemas.RuleRead:
    """Save a new version of a rule."""
    return services.update_rule(ctx, actor, rule_id, data)


@router.delete("/rules/{rule_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_rule(rule_id: Id, ctx: Ctx, actor: CurrentActor) -> Response:
    """Delete a rule that never raised a warning."""
    services.delete_rule(ctx, actor, rule_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/rules/{rule_id}/versions", response_model=list[schemas.RuleVersionRead])
def rule_versions(rule_id: Id, ctx: Ctx, actor: CurrentActor) -> list[schemas.RuleVersionRead]:
    """Every saved definition of a rule, newest first."""
    return services.rule_versions(ctx, actor, rule_id)


@router.post("/rules/{rule_id}/enable", response_model=schemas.RuleRead)
def enable_rule(rule_id: Id, ctx: Ctx, actor: CurrentActor) -> schemas.RuleRead:
    """Enable a rule (also after a run-time failure)."""
    return services.set_enabled(ctx, actor, rule_id, True)


@router.post("/rules/{rule_id}/disable", response_model=schemas.RuleRead)
def disable_rule(rule_id: Id, ctx: Ctx, actor: CurrentActor) -> schemas.RuleRead:
    """Disable a rule."""
    return services.set_enabled(ctx, actor, rule_id, False)


@router.post("/rules/{rule_id}/dry-run", response_model=schemas.DryRunResult)
async def dry_run(rule_id: Id, ctx: Ctx, actor: CurrentActor) -> schemas.DryRunResult:
    """Replay the last days of history through the rule: how often and when it would have fired."""
    return await asyncio.to_thread(services.dry_run, ctx, actor, rule_id)


# --- warnings -------------------------------------------------------------------------------------


@router.get("/warnings", response_model=schemas.Page[schemas.WarningRead])
def warnings(
    ctx: Ctx,
    actor: CurrentActor,
    level: Annotated[schemas.Level | None, Query()] = None,
    state: Annotated[Literal["active", "lifted"] | None, Query(alias="status")] = None,
    district: Annotated[str | None, Query(pattern=r"^\d{6}$")] = None,
    rule: Annotated[str | None, Query(pattern=schemas.CODE_RE)] = None,
    kind: Annotated[schemas.RuleKind | None, Query()] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> schemas.Page[schemas.WarningRead]:
    """Warnings, newest change first, filtered by level, status, district, rule code and kind (health: devices)."""
    return services.list_warnings(
        ctx, actor, level=level, status=state, district=district, rule=rule, kind=kind, limit=limit,
        offset=offset,
    )  # fmt: skip


@router.get("/warnings/feed.atom", response_class=Response)
def cap_feed(request: Request, ctx: Ctx, actor: CurrentActor) -> Response:
    """An Atom feed of the active warnings, each entry linking to its CAP 1.2 message."""
    self_url = str(request.url_for("cap_feed"))
    cap_url = self_url.replace("feed.atom", "{id}.cap")
    body = services.cap_feed(ctx, actor, self_url, cap_url)
    return Response(body, media_type="application/atom+xml")


@router.get("/warnings/{warning_id}.cap", response_class=Response)
def cap_alert(warning_id: Id, ctx: Ctx, actor: CurrentActor) -> Response:
    """A warning as an OASIS CAP 1.2 alert message."""
    return Response(services.cap_alert(ctx, actor, warning_id), media_type="application/cap+xml")


@router.get("/warnings/{warning_id}", response_model=schemas.WarningDetail)
def warning(warning_id: Id, ctx: Ctx, actor: CurrentActor) -> schemas.WarningDetail:
    """A warning with its timeline."""
    return services.get_warning(ctx, actor, warning_id)


@router.get("/warnings/{warning_id}/trigger", response_model=schemas.TriggerRead)
def trigger(warning_id: Id, ctx: Ctx, actor: CurrentActor) -> schemas.TriggerRead:
    """The history that triggered a warning, read as you: a series you may not read has access=false."""
    return pages.trigger_read(pages.trigger(ctx, actor, services.get_warning(ctx, actor, warning_id)))


# --- the public feed: warnings of public rules only, for anyone --------------------------------------


@router.get("/public/feed.atom", response_class=Response)
def public_feed(request: Request, ctx: Ctx) -> Response:
    """The public Atom feed: active warnings of public rules (e.g. heavy pollution) only; no sign-in."""
    self_url = str(request.url_for("public_feed"))
    cap_url = self_url.replace("feed.atom", "{id}.cap")
    return Response(services.public_feed(ctx, self_url, cap_url), media_type="application/atom+xml")


@router.get("/public/{warning_id}.cap", response_class=Response)
def public_cap(warning_id: Id, ctx: Ctx) -> Response:
    """The CAP 1.2 message of a public rule's warning; no sign-in (404 for any other warning)."""
    return Response(services.public_cap(ctx, warning_id), media_type="application/cap+xml")


@router.post("/warnings/{warning_id}/acknowledge", response_model=schemas.WarningDetail)
def acknowledge(warning_id: Id, data: schemas.Note, ctx: Ctx, actor: CurrentActor) -> schemas.WarningDetail:
    """Acknowledge an active warning."""
    return services.acknowledge(ctx, actor, warning_id, data.note)


@router.post("/warnings/{warning_id}/lift", response_model=schemas.WarningDetail)
def lift(warning_id: Id, data: schemas.Note, ctx: Ctx, actor: CurrentActor) -> schemas.WarningDetail:
    """Lift (解除) an active warning."""
    return services.lift(ctx, actor, warning_id, data.note)


# --- data-quality flags ----------------------------------------------------------------------------


@router.get("/quality-flags", response_model=schemas.Page[schemas.QualityFlagRead])
def quality_flags(
    ctx: Ctx,
    actor: CurrentActor,
    entity_id: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
    attr: Annotated[str | None, Query(pattern=schemas.TERM_RE, max_length=300)] = None,
    since: Annotated[datetime | None, Query()] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> schemas.Page[schemas.QualityFlagRead]:
    """Data-quality flags (readings the anomaly detectors found implausible), the latest first."""
    if since is not None and since.utcoffset() is None:
        raise BadRequest("{name} needs a UTC offset, e.g. 2026-01-01T08:00:00+08:00.", name="since")
    return services.list_quality_flags(
        ctx, actor, entity_id=entity_id, attr=attr, since=since, limit=limit, offset=offset
    )


router.include_router(publishing_api.router)
router.include_router(forecasts_api.router)
