"""Fixtures of the environment tests: air-quality stations in the context broker and their readings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from citybrain.apps.context import services as context
from citybrain.apps.environment import services
from citybrain.core.context import AppContext
from citybrain.core.permissions import SYSTEM

CITY_HALL = (104.741, 31.464)  # in 涪城区 (510703)
GAOXIN = (104.6885, 31.4385)  # in 涪城区 (510703)
FULESHAN = (104.772, 31.482)  # in 游仙区 (510704)
UNITS = {"pm25": "GQ", "pm10": "GQ", "no2": "GQ", "so2": "GQ", "o3": "GQ", "co": "GP"}


def station_id(code: str) -> str:
    """The entity id of a test station."""
    return f"urn:ngsi-ld:AirQualityObserved:{code}"


def add_station(ctx: AppContext, code: str, name: str, where: tuple[float, float]) -> str:
    """Create an air-quality station entity; return its id."""
    entity_id = station_id(code)
    result = context.upsert_entities(
        ctx,
        SYSTEM,
        "",
        [
            {
                "id": entity_id,
                "type": "AirQualityObserved",
                "name": {"type": "Property", "value": f"{name}空气质量监测站"},
                "stationName": {"type": "Property", "value": name},
                "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": list(where)}},
            }
        ],
    )
    assert result.success == [entity_id], result.errors
    services._cache(ctx).clear()  # a picture computed before (the indicators' first round) is not reused
    return entity_id


def read(
    ctx: AppContext,
    entity_id: str,
    readings: Sequence[tuple[datetime, Mapping[str, float]]],
    units: Mapping[str, str] = UNITS,
    fresh: bool = True,
) -> None:
    """Store readings of a station at the given instants (and forget the cached picture unless not `fresh`)."""
    batch = [
        context.Reading(entity_id, when, dict(values), {k: units[k] for k in values if k in units})
        for when, values in readings
    ]
    result = context.ingest(ctx, SYSTEM, "", batch)
    assert not result.unknown
    if fresh:
        services._cache(ctx).clear()
