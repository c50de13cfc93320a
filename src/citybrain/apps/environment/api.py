"""The environment REST API under /api/environment: air quality now, a station's last day, AQI on demand."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from citybrain.apps.environment import aqi, schemas, series, services
from citybrain.sdk import Ctx, CurrentActor, ValidationFailed

router = APIRouter()
EntityId = Annotated[str, Path(min_length=1, max_length=256)]


@router.get("/air", response_model=schemas.AirQualityRead)
def air(ctx: Ctx, actor: CurrentActor) -> schemas.AirQualityRead:
    """The city's AQI now and over the last hours, every district's and every station's AQI now."""
    return schemas.air_quality_read(services.air_quality(ctx, actor))


@router.get("/stations/{entity_id}", response_model=schemas.StationHistoryRead)
def station(entity_id: EntityId, ctx: Ctx, actor: CurrentActor) -> schemas.StationHistoryRead:
    """One station's hourly AQI and 1-hour mean concentrations over the last hours."""
    return schemas.station_history_read(services.station(ctx, actor, entity_id))


@router.get("/stations/{entity_id}/forecast", response_model=list[schemas.StationForecastRead])
def station_forecast(entity_id: EntityId, ctx: Ctx, actor: CurrentActor) -> list[schemas.StationForecastRead]:
    """The platform's forecast of the station's PM2.5, PM10 and O3 for the next 24 hours, with 80 % intervals."""
    return [schemas.station_forecast_read(f) for f in series.station_forecasts(ctx, actor, entity_id)]


@router.post("/aqi", response_model=schemas.AqiRead)
def compute(data: schemas.AqiRequest, ctx: Ctx, actor: CurrentActor) -> schemas.AqiRead:
    """Compute the AQI (HJ 633—2012 or —2026, hourly or daily) of given concentrations; nothing is stored."""
    try:
        result = services.calculate(
            actor,
            data.concentrations,
            report=data.report,
            version=data.version,
            at=data.time,
            units=data.units,
        )
    except aqi.AqiInputError as exc:
        loc = ["body", *exc.location]
        raise ValidationFailed(
            exc.message,
            extra={
                "errors": [{"loc": loc, "msg": str(exc), "type": "value_error"}],
                "pointer": "/" + "/".join(loc[1:]),
            },
            **exc.params,
        ) from None
    return schemas.aqi_read(result)
