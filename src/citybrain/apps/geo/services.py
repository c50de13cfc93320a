"""Geo services: Mianyang's boundaries, the map layers and their features, the road graph and routes.

Other apps call the functions without an actor (`districts`, `district_at`, `roads`, `route`,
`set_road_speeds`): boundaries and roads are reference data of the platform. The functions behind the
HTTP API and the map page take the actor and check `geo.map.read`, and the layer's own permission.
Boundaries and the road graph are loaded on first use and kept in the platform context.
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import shapely
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry
from shapely.ops import polylabel

from citybrain.apps.context import entities as ent
from citybrain.apps.context import services as context
from citybrain.apps.context.geo import GeoQuery, GeoQueryError, parse_geoquery
from citybrain.apps.context.jsonld import Context
from citybrain.apps.context.query import parse_q
from citybrain.apps.geo.boundaries import Boundaries, District, load
from citybrain.apps.geo.layers import Layer, Swatch
from citybrain.apps.geo.roads import NoRoute, Road, RoadNetwork, Route, build_network, load_roads
from citybrain.apps.geo.settings import GeoSettings
from citybrain.sdk import SYSTEM, Actor, AppContext, BadRequest, NotFound

__all__ = [
    "DEFAULT_LIMIT",
    "MAP_READ",
    "District",
    "Layer",
    "MapLayer",
    "NoRoute",
    "Road",
    "Route",
    "Swatch",
    "check_layers",
    "city",
    "district",
    "district_at",
    "district_codes_at",
    "district_collection",
    "districts",
    "layer_features",
    "layers",
    "road_speeds",
    "roads",
    "route",
    "set_road_speeds",
]

MAP_READ = "geo.map.read"
ENTITY_READ = "context.entity.read"
TENANT = ""  # the map shows the default tenant
STATE = "geo.state"
DEFAULT_LIMIT = 10_000
# Attributes a default layer's popup shows, at most (the entity's name aside).
AUTO_POPUP = 6
MAX_SIMPLIFY = 0.05  # degrees
MAX_FILTER_VALUES = 20
# How long the features of a default layer trust the last discovery of the default layers.
DEFAULTS_SECONDS = 10.0
# The central city (涪城, 游仙, 高新区, 经开区) the map's "central city" view shows: west, south, east, north.
CENTRAL_CITY = (104.62, 31.39, 104.80, 31.53)
# Calm colours for default layers (red and orange are left to alarms and congestion).
PALETTE = ("#0b5cad", "#00838f", "#6a1b9a", "#2e7d32", "#3949ab", "#5d4037", "#00695c", "#455a64", "#8e24aa")
_SLUG_RE = re.compile(r"[^a-z0-9_-]+")


# --- state kept in the platform context -----------------------------------------------------------


@dataclass
class _State:
    """What the app loads once per platform context."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    boundaries: Boundaries | None = None
    network: RoadNetwork | None = None
    declared: list[MapLayer] | None = None
    # The default layers last found, and when (the features of a default layer look them up here).
    defaults: tuple[float, list[MapLayer]] | None = None


def _state(ctx: AppContext) -> _State:
    state: _State = ctx.extensions.setdefault(STATE, _State())
    return state


def _boundaries(ctx: AppContext) -> Boundaries:
    state = _state(ctx)
    if state.boundaries is None:
        with state.lock:
            if state.boundaries is None:
                state.boundaries = load()
    return state.boundaries


def _network(ctx: AppContext) -> RoadNetwork:
    state = _state(ctx)
    if state.network is None:
        with state.lock:
            if state.network is None:
                state.network = build_network(load_roads())
    return state.network


def settings(ctx: AppContext) -> GeoSettings:
    """The geo app's settings."""
    return ctx.app_setting("geo", GeoSettings)


# --- boundaries ----------------------------------------------------------------------------------


def districts(ctx: AppContext) -> list[District]:
    """The nine districts and counties of Mianyang, by code."""
    return list(_boundaries(ctx).districts)


def district(ctx: AppContext, code: str) -> District | None:
    """A district by its six-digit code, or None."""
    return _boundaries(ctx).get(code)


def city(ctx: AppContext) -> District:
    """Mianyang's outline (code 510700)."""
    return _boundaries(ctx).city


def district_at(ctx: AppContext, lon: float, lat: float) -> District | None:
    """The district of Mianyang holding a WGS84 point, or None outside the city."""
    return _boundaries(ctx).at(lon, lat)


def district_codes_at(ctx: AppContext, points: Sequence[tuple[float, float]]) -> list[str | None]:
    """The district code of each (lon, lat) point, None outside the city (vectorised: for many points)."""
    return _boundaries(ctx).codes_at([p[0] for p in points], [p[1] for p in points])


def _label_point(geometry: BaseGeometry) -> tuple[float, float]:
    """Where a district's name reads best: the pole of inaccessibility of its largest part."""
    parts = list(getattr(geometry, "geoms", [geometry]))
    largest = max(parts, key=lambda part: part.area)
    point = polylabel(largest, tolerance=0.002)
    return (round(point.x, 5), round(point.y, 5))


def district_feature(item: District, simplify: float | None = None) -> dict[str, Any]:
    """A district as a GeoJSON Feature (code, names and where its label goes)."""
    geometry = item.geometry
    if simplify:
        geometry = shapely.simplify(geometry, simplify, preserve_topology=True)
    return {
        "type": "Feature",
        "id": item.code,
        "geometry": mapping(geometry),
        "properties": {
            "code": item.code,
            "name_zh": item.name_zh,
            "name_en": item.name_en,
            "label": _label_point(item.geometry),
        },
    }


def district_collection(ctx: AppContext, simplify: float | None = None) -> dict[str, Any]:
    """The districts as a GeoJSON FeatureCollection, optionally simplified (tolerance in degrees)."""
    if simplify is not None and not 0 <= simplify <= MAX_SIMPLIFY:
        raise BadRequest("simplify must be a tolerance from 0 to {maximum} degrees.", maximum=MAX_SIMPLIFY)
    return {
        "type": "FeatureCollection",
        "features": [district_feature(item, simplify) for item in districts(ctx)],
    }


def city_feature(ctx: AppContext) -> dict[str, Any]:
    """Mianyang's outline as a GeoJSON Feature."""
    outline = city(ctx)
    return {
        "type": "Feature",
        "id": outline.code,
        "geometry": mapping(outline.geometry),
        "properties": {"code": outline.code, "name_zh": outline.name_zh, "name_en": outline.name_en},
    }


# --- roads and routes ----------------------------------------------------------------------------


def roads(ctx: AppContext) -> list[Road]:
    """The main roads and bridges of the central city."""
    return list(_network(ctx).roads)


def route(ctx: AppContext, start: tuple[float, float], end: tuple[float, float]) -> Route:
    """The fastest route over the open roads between the graph nodes nearest to two points (NoRoute if none)."""
    return _network(ctx).route(start, end)


def set_road_speeds(ctx: AppContext, speeds: Mapping[str, float | None]) -> None:
    """Set the current speed (km/h) of roads by id; None goes back to the speed limit, 0 closes the road."""
    _network(ctx).set_speeds(speeds)


def road_speeds(ctx: AppContext) -> dict[str, float]:
    """The current speeds that were set, by road id."""
    return dict(_network(ctx).speeds)


def road_feature(network: RoadNetwork, road: Road, locale: str) -> dict[str, Any]:
    """A road as a GeoJSON Feature with its names, class and speeds."""
    return {
        "type": "Feature",
        "id": road.id,
        "geometry": {"type": "LineString", "coordinates": [list(c) for c in road.coordinates]},
        "properties": {
            "id": road.id,
            "name": road.name_zh if locale == "zh_CN" else road.name_en,
            "name_zh": road.name_zh,
            "name_en": road.name_en,
            "road_class": road.road_class,
            "speed_limit_kmh": road.speed_limit_kmh,
            "speed_kmh": network.speed_of(road),
            "bridge": road.bridge,
        },
    }


def route_for(ctx: AppContext, actor: Actor, start: tuple[float, float], end: tuple[float, float]) -> Route:
    """A route for an actor allowed to read the map; NotFound when no open road joins the points."""
    actor.require(MAP_READ)
    try:
        return route(ctx, start, end)
    except NoRoute as exc:
        if exc.off_graph == "start":
            raise NotFound(
                "The start lies {km} km from the nearest main road of the central city.",
                km=round(exc.distance_m / 1000, 1),
            ) from None
        if exc.off_graph == "end":
            raise NotFound(
                "The end lies {km} km from the nearest main road of the central city.",
                km=round(exc.distance_m / 1000, 1),
            ) from None
        raise NotFound("No open road joins the two points.") from None


# --- layers --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MapLayer:
    """A layer as the map offers it: the declaration (or a default one) and where it comes from."""

    layer: Layer
    app: str | None  # the declaring app; None for a default layer of an undeclared entity type
    type_iri: str  # the expanded entity type ("" for the road layer)
    count: int = 0  # entities of the type (roads: how many roads)

    @property
    def id(self) -> str:
        """The layer id."""
        return self.layer.id

    def title(self, locale: str) -> str:
        """The title in a locale."""
        return self.layer.title_zh if locale == "zh_CN" else self.layer.title_en

    def as_json(self, locale: str) -> dict[str, Any]:
        """What the API and the map page say about the layer."""
        layer = self.layer
        return {
            "id": layer.id,
            "title": self.title(locale),
            "title_zh": layer.title_zh,
            "title_en": layer.title_en,
            "source": layer.source,
            "entity_type": Context().compact_type(self.type_iri) if self.type_iri else None,
            "color": layer.color,
            "icon": layer.icon,
            "popup": list(layer.popup),
            "filters": list(layer.filters),
            "color_by": layer.color_by,
            "palette": [
                {
                    "value": swatch.value,
                    "color": swatch.color,
                    "label": swatch.label(locale),
                    "label_zh": swatch.label_zh,
                    "label_en": swatch.label_en,
                }
                for swatch in layer.palette
            ],
            "permission": layer.permission,
            "app": self.app,
            "count": self.count,
            "features": f"/api/geo/layers/{layer.id}/features",
        }


def _declared(ctx: AppContext) -> list[MapLayer]:
    """The layers the enabled apps declare in their layers.py (checked once: ids are unique)."""
    state = _state(ctx)
    if state.declared is not None:
        return state.declared
    found: list[MapLayer] = []
    seen: dict[str, str] = {}
    jctx = Context()
    for spec in ctx.apps:
        module = spec.module("layers")
        for item in getattr(module, "LAYERS", ()) if module is not None else ():
            if not isinstance(item, Layer):
                raise TypeError(f"app {spec.label!r} declares a layer that is not a Layer: {item!r}")
            if item.id in seen:
                raise ValueError(f"layer {item.id!r} is declared by {seen[item.id]!r} and {spec.label!r}")
            seen[item.id] = spec.label
            type_iri = jctx.expand_type(item.entity_type) if item.source == "entities" else ""
            found.append(MapLayer(item, spec.label, type_iri))
    state.declared = found
    return found


def check_layers(ctx: AppContext) -> int:
    """Load and check every enabled app's layer declarations (at startup); return how many there are."""
    return len(_declared(ctx))


def _default_layer(type_iri: str, taken: set[str]) -> Layer:
    """The layer of an entity type that no app declares: named after the type, coloured by it."""
    name = Context().compact_type(type_iri)
    digest = hashlib.sha256(type_iri.encode()).hexdigest()
    slug = _SLUG_RE.sub("-", name.lower()).strip("-")[:40]
    layer_id = f"type-{slug}" if slug else f"type-{digest[:10]}"
    if layer_id in taken:
        layer_id = f"{layer_id}-{digest[:6]}"
    color = PALETTE[int(digest[:8], 16) % len(PALETTE)]
    glyph = next((c for c in name.rsplit("/", 1)[-1].rsplit("#", 1)[-1] if c.isalnum()), "")
    return Layer(
        id=layer_id, entity_type=type_iri, title_zh=name, title_en=name, color=color, icon=glyph.upper()
    )


def _located(ctx: AppContext, type_iri: str) -> bool:
    """Whether any entity of a type has a location."""
    query = context.EntityQuery(types=[type_iri], q=parse_q("location", Context().expand), limit=1)
    return bool(context.query_entities(ctx, SYSTEM, TENANT, query).entities)


def _all_layers(ctx: AppContext) -> list[MapLayer]:
    """Declared layers, then a default layer for each located entity type nobody declares."""
    declared = _declared(ctx)
    counts = context.entity_type_counts(ctx, SYSTEM, TENANT)
    roads_count = len(_network(ctx).roads)
    out = [
        MapLayer(
            m.layer,
            m.app,
            m.type_iri,
            roads_count if m.layer.source == "roads" else counts.get(m.type_iri, 0),
        )
        for m in declared
    ]
    covered = {m.type_iri for m in declared}
    taken = {m.id for m in declared}
    jctx = Context()
    for type_iri in sorted(counts, key=lambda iri: jctx.compact_type(iri).lower()):
        if type_iri in covered or not counts[type_iri] or not _located(ctx, type_iri):
            continue
        layer = _default_layer(type_iri, taken)
        taken.add(layer.id)
        out.append(MapLayer(layer, None, type_iri, counts[type_iri]))
    _state(ctx).defaults = (time.monotonic(), [m for m in out if m.app is None])
    return out


def layers(ctx: AppContext, actor: Actor) -> list[MapLayer]:
    """The layers the actor may see: declared ones and one for each undeclared located entity type."""
    actor.require(MAP_READ)
    return [m for m in _all_layers(ctx) if actor.can(m.layer.permission)]


def _default_layer_by_id(ctx: AppContext, layer_id: str) -> MapLayer | None:
    """A default layer, from the last discovery when it is recent and knows the id, else discovered anew."""
    cached = _state(ctx).defaults
    if (
        cached is None
        or time.monotonic() - cached[0] > DEFAULTS_SECONDS
        or all(m.id != layer_id for m in cached[1])
    ):
        _all_layers(ctx)
        cached = _state(ctx).defaults
    return next((m for m in cached[1] if m.id == layer_id), None) if cached else None


def _find_layer(ctx: AppContext, actor: Actor, layer_id: str) -> MapLayer:
    """A layer by id for an actor who may see it (a default layer is looked for only when undeclared)."""
    actor.require(MAP_READ)
    found = next((m for m in _declared(ctx) if m.id == layer_id), None)
    if found is None and layer_id.startswith("type-"):
        found = _default_layer_by_id(ctx, layer_id)
    if found is None:
        raise NotFound("There is no map layer {layer}.", layer=layer_id)
    actor.require(found.layer.permission)
    return found


# --- layer features ------------------------------------------------------------------------------


def _view_query(box: tuple[float, float, float, float]) -> GeoQuery:
    west, south, east, north = box
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    try:
        return parse_geoquery("intersects", "Polygon", [ring], ent.LOCATION)
    except GeoQueryError as exc:
        raise BadRequest("The bbox is not a valid box: {reason}", reason=str(exc)) from None


def _filter_q(ctx_layer: MapLayer, filters: Mapping[str, str]) -> str:
    """The q expression of a layer's filter parameters: each attribute equals one of the listed values."""
    allowed = set(ctx_layer.layer.filters)
    terms = []
    for name, raw in filters.items():
        if name not in allowed:
            if allowed:
                raise BadRequest(
                    "Layer {layer} cannot be filtered by {name}; it can be filtered by {allowed}.",
                    layer=ctx_layer.id,
                    name=name,
                    allowed=", ".join(sorted(allowed)),
                )
            raise BadRequest(
                "Layer {layer} cannot be filtered by {name}; only by district.", layer=ctx_layer.id, name=name
            )
        values = [v.strip() for v in raw.split(",") if v.strip()]
        if not values or len(values) > MAX_FILTER_VALUES:
            raise BadRequest(
                "Filter {name} needs from 1 to {maximum} comma-separated values.",
                name=name,
                maximum=MAX_FILTER_VALUES,
            )
        options = []
        for value in values:
            options.append(f"{name}=={_json_string(value)}")
            if _is_number(value):
                options.append(f"{name}=={value}")
        terms.append("(" + "|".join(options) + ")")
    return ";".join(terms)


def _json_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _is_number(text: str) -> bool:
    return bool(re.fullmatch(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?", text))


def _language(language_map: Mapping[str, Any], locale: str) -> Any:
    wanted = ("zh-CN", "zh-Hans", "zh", "en") if locale == "zh_CN" else ("en", "zh-CN", "zh")
    for tag in (*wanted, "@none"):
        if tag in language_map:
            return language_map[tag]
    return next(iter(language_map.values()), None)


def _simple(instance: Mapping[str, Any], locale: str, jctx: Context) -> Any:
    """The keyValues value of an attribute instance (a LanguageProperty in the reader's language)."""
    kind = instance.get("type", "Property")
    value = instance.get(ent.VALUE_MEMBER.get(kind, "value"))
    if kind == "LanguageProperty" and isinstance(value, Mapping):
        return _language(value, locale)
    if kind == "VocabProperty":
        return jctx.compact(value) if isinstance(value, str) else [jctx.compact(v) for v in value or []]
    return value


@dataclass(frozen=True)
class _Popup:
    """What a layer's features carry: the popup attributes (term, IRI), or the first few of each entity."""

    attrs: tuple[tuple[str, str], ...]
    auto: bool
    locale: str
    jctx: Context = field(compare=False)
    name_iri: str = ""


_SIMPLE_KINDS = frozenset({"Property", "LanguageProperty", "VocabProperty", "Relationship"})


def _properties(stored: Mapping[str, Any], type_name: str, popup: _Popup) -> dict[str, Any]:
    """A feature's properties: id, type, name, the popup attributes and their observedAt and unitCode."""
    attrs: Mapping[str, list[dict[str, Any]]] = stored.get("attrs", {})
    name_instances = attrs.get(popup.name_iri)
    name = _simple(name_instances[0], popup.locale, popup.jctx) if name_instances else None
    props: dict[str, Any] = {
        "id": stored["id"],
        "type": type_name,
        "name": name if isinstance(name, str) else None,
    }
    observed: dict[str, str] = {}
    units: dict[str, str] = {}
    wanted: Sequence[tuple[str, str]] = popup.attrs
    if popup.auto:
        wanted = [
            (popup.jctx.compact(iri), iri)
            for iri, instances in attrs.items()
            if iri != popup.name_iri and instances[0].get("type") in _SIMPLE_KINDS
        ][:AUTO_POPUP]
    for term, iri in wanted:
        instances = attrs.get(iri)
        if not instances:
            continue
        instance = instances[0]
        props[term] = _simple(instance, popup.locale, popup.jctx)
        if "observedAt" in instance:
            observed[term] = instance["observedAt"]
        if "unitCode" in instance:
            units[term] = instance["unitCode"]
    props["observedAt"] = observed
    props["unitCode"] = units
    return props


def bounds(geometry: BaseGeometry) -> tuple[float, float, float, float]:
    """The (west, south, east, north) box of a geometry."""
    west, south, east, north = geometry.bounds
    return (float(west), float(south), float(east), float(north))


def _intersect(
    a: tuple[float, float, float, float], b: tuple[float, float, float, float]
) -> tuple[float, float, float, float] | None:
    west, south = max(a[0], b[0]), max(a[1], b[1])
    east, north = min(a[2], b[2]), min(a[3], b[3])
    return (west, south, east, north) if west <= east and south <= north else None


def _collection(layer_id: str, features: list[dict[str, Any]], truncated: bool) -> dict[str, Any]:
    return {
        "type": "FeatureCollection",
        "layer": layer_id,
        "numberReturned": len(features),
        "truncated": truncated,
        "timeStamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "features": features,
    }


def layer_features(
    ctx: AppContext,
    actor: Actor,
    layer_id: str,
    *,
    bbox: tuple[float, float, float, float] | None = None,
    district_code: str | None = None,
    limit: int | None = None,
    filters: Mapping[str, str] | None = None,
    locale: str = "zh_CN",
) -> dict[str, Any]:
    """A layer's features in a box (default: the city) and district, as a GeoJSON FeatureCollection."""
    found = _find_layer(ctx, actor, layer_id)
    maximum = settings(ctx).max_features
    if limit is None:
        limit = min(DEFAULT_LIMIT, maximum)
    if not 1 <= limit <= maximum:
        raise BadRequest("limit must be from 1 to {maximum}.", maximum=maximum)
    area = None
    box = bbox if bbox is not None else bounds(city(ctx).geometry)
    if district_code:
        area = district(ctx, district_code)
        if area is None:
            raise BadRequest("{code} is not a district of Mianyang.", code=district_code)
        narrowed = _intersect(box, bounds(area.geometry))
        if narrowed is None:
            return _collection(found.id, [], False)
        box = narrowed
    q_text = _filter_q(found, filters or {})
    if found.layer.source == "roads":
        return _road_features(ctx, found, box, area, limit, locale)
    return _entity_features(ctx, actor, found, box, area, limit, q_text, locale)


def _entity_features(
    ctx: AppContext,
    actor: Actor,
    found: MapLayer,
    box: tuple[float, float, float, float],
    area: District | None,
    limit: int,
    q_text: str,
    locale: str,
) -> dict[str, Any]:
    """The located entities of a layer's type in the box (and district), read through the context app."""
    jctx = Context()
    query = context.EntityQuery(
        types=[found.type_iri],
        geo=_view_query(box),
        q=parse_q(q_text, jctx.expand) if q_text else None,
        limit=limit + 1,
    )
    # The layer's permission was checked; an actor without context.entity.read sees what the layer shows.
    reader = actor if actor.can(ENTITY_READ) else SYSTEM
    found_entities = context.query_entities(ctx, reader, TENANT, query).entities
    truncated = len(found_entities) > limit
    located: list[tuple[dict[str, Any], dict[str, Any]]] = []
    points: list[tuple[float, float]] = []  # NaN for lines and areas
    for stored in found_entities[:limit]:
        geometry = ent.geometry_of(stored)
        if not isinstance(geometry, dict):
            continue
        located.append((stored, geometry))
        position = geometry.get("coordinates") if geometry.get("type") == "Point" else None
        if isinstance(position, list) and len(position) >= 2:
            points.append((float(position[0]), float(position[1])))
        else:
            points.append((math.nan, math.nan))
    # the features carry the popup attributes and the one the map colours them by
    carried = found.layer.popup
    if found.layer.color_by and found.layer.color_by not in carried:
        carried = (*carried, found.layer.color_by)
    popup = _Popup(
        attrs=tuple((term, jctx.expand(term)) for term in carried),
        auto=found.app is None and not found.layer.popup,
        locale=locale,
        jctx=jctx,
        name_iri=jctx.expand("name"),
    )
    type_name = jctx.compact_type(found.type_iri)
    features = []
    for (stored, geometry), code, point in zip(located, district_codes_at(ctx, points), points, strict=True):
        if math.isnan(point[0]):  # a line or an area: labelled with the first district it touches
            target = shape(geometry)
            if area is not None and not shapely.intersects(area.geometry, target):
                continue
            code = next((d.code for d in districts(ctx) if shapely.intersects(d.geometry, target)), None)
        elif area is not None and code != area.code:
            continue
        props = _properties(stored, type_name, popup)
        props["district"] = code
        features.append({"type": "Feature", "id": stored["id"], "geometry": geometry, "properties": props})
    return _collection(found.id, features, truncated)


def _road_features(
    ctx: AppContext,
    found: MapLayer,
    box: tuple[float, float, float, float],
    area: District | None,
    limit: int,
    locale: str,
) -> dict[str, Any]:
    network = _network(ctx)
    view = shapely.box(*box)
    features = []
    for road in network.roads:
        line = shapely.LineString(road.coordinates)
        if not shapely.intersects(view, line) or (
            area is not None and not shapely.intersects(area.geometry, line)
        ):
            continue
        features.append(road_feature(network, road, locale))
    return _collection(found.id, features[:limit], len(features) > limit)


# --- the map page --------------------------------------------------------------------------------


def map_page(ctx: AppContext, actor: Actor, locale: str) -> dict[str, Any]:
    """What the map page draws: boundaries, the layers the actor may see, the base layer and refresh."""
    visible = layers(ctx, actor)
    options = settings(ctx)
    outline = city(ctx)
    return {
        "locale": locale,
        "layers": [item.as_json(locale) for item in visible],
        "districts": district_collection(ctx),
        "city": city_feature(ctx),
        "bounds": bounds(outline.geometry),
        "central": CENTRAL_CITY,
        "tile_url": options.tile_url,
        "tile_attribution": options.tile_attribution,
        "refresh_ms": int(options.refresh_seconds * 1000),
        "limit": options.max_features,
        "entity_pages": actor.can(ENTITY_READ),
    }
