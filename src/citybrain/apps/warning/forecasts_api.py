"""The forecast API under /api/warning/forecasts: series, their latest forecast, history and declarations."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response, status

from citybrain.apps.warning import forecasts, schemas
from citybrain.sdk import Ctx, CurrentActor

router = APIRouter()
MAX_INT = 2**31 - 1
Id = Annotated[int, Path(ge=1, le=MAX_INT)]
Code = Annotated[str, Path(pattern=schemas.CODE_RE)]


@router.get("/forecasts/series", response_model=schemas.Page[schemas.SeriesRead])
def series(
    ctx: Ctx,
    actor: CurrentActor,
    declaration: Annotated[str | None, Query(pattern=schemas.CODE_RE)] = None,
    state: Annotated[Literal["pending", "ok", "short", "failed"] | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
) -> schemas.Page[schemas.SeriesRead]:
    """Forecast series with their status, model, margin over seasonal-naive and last run."""
    return forecasts.list_series(
        ctx, actor, declaration=declaration, status=state, limit=limit, offset=offset
    )


@router.get("/forecasts/series/{series_id}", response_model=schemas.SeriesDetail)
def one_series(series_id: Id, ctx: Ctx, actor: CurrentActor) -> schemas.SeriesDetail:
    """One series: its latest forecast with intervals and the backtest report of its model."""
    return forecasts.get_series(ctx, actor, series_id)


@router.get("/forecasts/series/{series_id}/history", response_model=list[schemas.ForecastRead])
def history(
    series_id: Id,
    ctx: Ctx,
    actor: CurrentActor,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 48,
) -> list[schemas.ForecastRead]:
    """The kept past forecasts of a series, newest first."""
    return forecasts.series_history(ctx, actor, series_id, limit)


@router.get("/forecasts/declarations", response_model=list[schemas.SeriesDeclarationRead])
def declarations(ctx: Ctx, actor: CurrentActor) -> list[schemas.SeriesDeclarationRead]:
    """Every series declaration (the apps' and the operators')."""
    return forecasts.list_declarations(ctx, actor)


@router.post(
    "/forecasts/declarations",
    response_model=schemas.SeriesDeclarationRead,
    status_code=status.HTTP_201_CREATED,
)
def create_declaration(
    data: schemas.SeriesSpec, ctx: Ctx, actor: CurrentActor
) -> schemas.SeriesDeclarationRead:
    """Add a series declaration; its entity type, entity and numeric attribute must exist."""
    return forecasts.create_declaration(ctx, actor, data)


@router.delete("/forecasts/declarations/{code}", status_code=status.HTTP_204_NO_CONTENT)
def delete_declaration(code: Code, ctx: Ctx, actor: CurrentActor) -> Response:
    """Remove an operator's series declaration with its series and forecasts."""
    forecasts.delete_declaration(ctx, actor, code)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
