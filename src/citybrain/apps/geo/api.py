"""The geo REST API under /api/geo: districts, map layers and their features, routes over the main roads.

Numbers in the query string are parsed here so that a malformed one gets a 400 problem naming it.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from citybrain.apps.geo import schemas, services
from citybrain.apps.geo.layers import RESERVED_PARAMS
from citybrain.sdk import BadRequest, Ctx, CurrentActor, Locale, NotFound

router = APIRouter()
GEOJSON = "application/geo+json"
Text = Annotated[str | None, Query(max_length=200)]


def geojson(body: dict[str, Any]) -> Response:
    """A GeoJSON response (serialised with orjson: layers may hold tens of thousands of features)."""
    return Response(orjson.dumps(body), media_type=GEOJSON)


def parse_number(text: str | None, name: str, low: float, high: float) -> float:
    """A finite decimal number within [low, high] from a query parameter."""
    if text is None or not text.strip():
        raise BadRequest("The parameter {name} is required.", name=name)
    try:
        value = float(text)
    except ValueError:
        raise BadRequest("{name} must be a number, not {value}.", name=name, value=text[:50]) from None
    if not math.isfinite(value) or not low <= value <= high:
        raise BadRequest("{name} must be a number from {low} to {high}.", name=name, low=low, high=high)
    return value


def parse_point(text: str | None, name: str) -> tuple[float, float]:
    """A 'lon,lat' pair."""
    if text is None or not text.strip():
        raise BadRequest("The parameter {name} is required.", name=name)
    parts = text.split(",")
    if len(parts) != 2:
        raise BadRequest("{name} must be longitude,latitude, not {value}.", name=name, value=text[:50])
    return (
        parse_number(parts[0], f"{name} longitude", -180, 180),
        parse_number(parts[1], f"{name} latitude", -90, 90),
    )


def parse_bbox(text: str | None) -> tuple[float, float, float, float] | None:
    """A 'minLon,minLat,maxLon,maxLat' box, or None when not given."""
    if text is None:
        return None
    parts = text.split(",")
    if len(parts) != 4:
        raise BadRequest("bbox must be minLon,minLat,maxLon,maxLat, not {value}.", value=text[:100])
    west = parse_number(parts[0], "bbox minLon", -180, 180)
    south = parse_number(parts[1], "bbox minLat", -90, 90)
    east = parse_number(parts[2], "bbox maxLon", -180, 180)
    north = parse_number(parts[3], "bbox maxLat", -90, 90)
    if west >= east or south >= north:
        raise BadRequest("bbox must have minLon < maxLon and minLat < maxLat.")
    return (west, south, east, north)


def parse_limit(text: str | None) -> int | None:
    """A whole number of features, or None when not given."""
    if text is None:
        return None
    if not text.isdigit() or len(text) > 9:
        raise BadRequest("limit must be a whole number, not {value}.", value=text[:50])
    return int(text)


@router.get("/districts", response_class=Response, responses={200: {"content": {GEOJSON: {}}}})
def district_collection(ctx: Ctx, actor: CurrentActor, simplify: Text = None) -> Response:
    """Mianyang's nine districts and counties as GeoJSON (code, Chinese and English name, label point)."""
    actor.require(services.MAP_READ)
    tolerance = None if simplify is None else parse_number(simplify, "simplify", 0, services.MAX_SIMPLIFY)
    return geojson(services.district_collection(ctx, tolerance))


@router.get("/districts/at", response_model=schemas.DistrictRead)
def district_at(
    ctx: Ctx, actor: CurrentActor, locale: Locale, lon: Text = None, lat: Text = None
) -> schemas.DistrictRead:
    """The district holding a WGS84 point; 404 outside Mianyang."""
    actor.require(services.MAP_READ)
    x, y = parse_number(lon, "lon", -180, 180), parse_number(lat, "lat", -90, 90)
    found = services.district_at(ctx, x, y)
    if found is None:
        raise NotFound("The point {lon},{lat} is not in Mianyang.", lon=x, lat=y)
    name = found.name_zh if locale == "zh_CN" else found.name_en
    return schemas.DistrictRead(code=found.code, name=name, name_zh=found.name_zh, name_en=found.name_en)


@router.get("/city", response_class=Response, responses={200: {"content": {GEOJSON: {}}}})
def city_outline(ctx: Ctx, actor: CurrentActor) -> Response:
    """Mianyang's outline as a GeoJSON Feature."""
    actor.require(services.MAP_READ)
    return geojson(services.city_feature(ctx))


@router.get("/layers", response_model=list[schemas.LayerRead])
def layer_list(ctx: Ctx, actor: CurrentActor, locale: Locale) -> list[schemas.LayerRead]:
    """The map layers the caller may see: declared by apps, and one per undeclared located entity type."""
    return [schemas.LayerRead(**item.as_json(locale)) for item in services.layers(ctx, actor)]


@router.get(
    "/layers/{layer_id}/features", response_class=Response, responses={200: {"content": {GEOJSON: {}}}}
)
def layer_features(
    layer_id: str,
    request: Request,
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    bbox: Annotated[str | None, Query(max_length=200, description="minLon,minLat,maxLon,maxLat")] = None,
    district: Annotated[str | None, Query(max_length=20, description="a district code, e.g. 510703")] = None,
    limit: Annotated[str | None, Query(max_length=20, description="at most this many features")] = None,
) -> Response:
    """The layer's entities in a box (default: the whole city) as GeoJSON; other parameters filter by attribute."""
    filters = {key: value for key, value in request.query_params.items() if key not in RESERVED_PARAMS}
    body = services.layer_features(
        ctx,
        actor,
        layer_id,
        bbox=parse_bbox(bbox),
        district_code=district or None,
        limit=parse_limit(limit),
        filters=filters,
        locale=locale,
    )
    response = geojson(body)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/route", response_model=schemas.RouteRead)
def route(
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    start: Annotated[str | None, Query(alias="from", max_length=100, description="lon,lat")] = None,
    end: Annotated[str | None, Query(alias="to", max_length=100, description="lon,lat")] = None,
) -> schemas.RouteRead:
    """The fastest route over the central city's main roads between the nodes nearest to two points."""
    found = services.route_for(ctx, actor, parse_point(start, "from"), parse_point(end, "to"))
    coordinates = [list(c) for c in found.coordinates]
    if len(coordinates) == 1:  # both points nearest to one node: a line needs two positions
        coordinates.append(coordinates[0])
    return schemas.RouteRead(
        meters=round(found.meters, 1),
        seconds=round(found.seconds, 1),
        geometry={"type": "LineString", "coordinates": coordinates},
        roads=[
            schemas.RouteRoad(id=road_id, name=zh if locale == "zh_CN" else en, name_zh=zh, name_en=en)
            for road_id, zh, en in zip(found.road_ids, found.roads, found.roads_en, strict=True)
        ],
        start_offset_m=round(found.start_offset_m, 1),
        end_offset_m=round(found.end_offset_m, 1),
    )
