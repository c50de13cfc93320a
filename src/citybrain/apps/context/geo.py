"""NGSI-LD geo-queries (ETSI GS CIM 009 clause 4.10): validation, matching with shapely, and a prefilter box.

Coordinates are WGS84 longitude/latitude. Topological relations (within, contains, intersects, equals,
disjoint, overlaps) are the OGC simple-features predicates on those coordinates, lines being straight
in longitude/latitude as GeoJSON (RFC 7946) says. ``near`` measures metres from the reference point to
the nearest point of the target geometry: the haversine central angle times the WGS84 radius of
curvature at the mid-latitude in the direction of travel (within 0.01 % of the ellipsoidal geodesic up
to 2000 km, and never off by more than the 0.6 % a sphere would be); for lines and polygons, the same
distances in an azimuthal equidistant projection, centred on the reference point, of the densified
geometry.
``maxDistance`` matches at a distance <= d, ``minDistance`` at >= d. Geometries crossing the
antimeridian are not supported.

With PostGIS, PostgreSQL answers geo-queries on ``location`` itself: the same GEOS predicates on the
same lon/lat geometries and, for ``near``, ellipsoidal geodesic distances to the geometry densified as
here. The backends agree on every target except those whose distance lies within 0.01 % (+1 cm) of
the limit for points, 0.5 % (+1 m) for lines and polygons (this module's projection being the coarser),
and geometries the broker stores but OGC calls invalid (self-intersecting rings), which PostGIS tests
once repaired.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.errors import GEOSException
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

Georel = Literal["near", "within", "contains", "intersects", "equals", "disjoint", "overlaps"]
GEORELS: tuple[Georel, ...] = ("near", "within", "contains", "intersects", "equals", "disjoint", "overlaps")
GEOMETRY_TYPES = ("Point", "LineString", "Polygon", "MultiPoint", "MultiLineString", "MultiPolygon")
WGS84_A = 6_378_137.0
WGS84_E2 = 0.0066943799901413165  # first eccentricity squared, f * (2 - f) with f = 1 / 298.257223563
# The smallest radius of curvature of the ellipsoid (meridional, at the equator): no distance is shorter
# than the central angle times this, which keeps the near box conservative.
_MIN_RADIUS_M = WGS84_A * (1 - WGS84_E2)
MAX_COORDINATES_TEXT = 1_000_000
MAX_POSITIONS = 100_000

_NEAR_RE = re.compile(r"near;(maxDistance|minDistance)==((?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)")
# Densify lines to segments of at most this many degrees (or 1/256 of the geometry) before projecting.
DENSIFY_DEGREES = 0.01
DENSIFY_PARTS = 256
# Widen the near box a little: projected nearest points may lie a hair off the geometry.
_BOX_MARGIN = 1.001
_BOX_MARGIN_M = 1.0
_CONVERSE = {"within": "contains", "contains": "within"}


class GeoQueryError(ValueError):
    """An invalid geo-query: georel, geometry or coordinates."""


# Relations a point target answers with one call on the reference: (test, result meaning "matches").
_POINT_TESTS = {
    "within": (shapely.contains_xy, True),
    "intersects": (shapely.intersects_xy, True),
    "disjoint": (shapely.intersects_xy, False),
}


@dataclass(frozen=True)
class GeoQuery:
    """A validated geo-query: a relation to a reference geometry, for the GeoProperty ``geoproperty``."""

    georel: Georel
    geometry: dict[str, Any]
    geoproperty: str
    reference: BaseGeometry = field(compare=False, repr=False)
    max_distance: float | None = None
    min_distance: float | None = None

    def matches(self, geometry_geojson: dict[str, Any]) -> bool:
        """Whether a target GeoJSON geometry stands in the relation; unreadable geometries do not match."""
        if (
            isinstance(geometry_geojson, dict)
            and geometry_geojson.get("type") == "Point"
            and self.georel in _POINT_TESTS
        ):
            position = geometry_geojson.get("coordinates")
            if (
                isinstance(position, list)
                and len(position) in (2, 3)
                and all(type(n) in (int, float) for n in position)
            ):
                # A point needs no shape of its own: one test against the prepared reference.
                test, expected = _POINT_TESTS[self.georel]
                return bool(test(self.reference, float(position[0]), float(position[1]))) is expected
        try:
            target = _shape(geometry_geojson, allow_collection=True)
        except GeoQueryError:
            return False
        if self.georel == "near":
            origin = self.reference.coords[0]
            distance = _distance(origin[0], origin[1], target)
            if self.max_distance is not None:
                return distance <= self.max_distance
            return self.min_distance is not None and distance >= self.min_distance
        # Ask the (prepared) reference geometry: target within reference == reference contains target.
        predicate = getattr(shapely, _CONVERSE.get(self.georel, self.georel))
        try:
            return bool(predicate(self.reference, target))
        except GEOSException:
            return False

    def reference_wkb(self) -> bytes:
        """The reference geometry (longitude, latitude; no altitude) as WKB, for a spatial database."""
        return bytes(shapely.to_wkb(self.reference))

    def bbox(self) -> tuple[float, float, float, float] | None:
        """A (west, south, east, north) box that holds every match, or None when matches can lie anywhere."""
        if self.georel == "disjoint" or self.min_distance is not None:
            return None
        if self.max_distance is None:
            west, south, east, north = self.reference.bounds
            return (float(west), float(south), float(east), float(north))
        lon, lat = self.reference.coords[0][:2]
        return _cap_box(lon, lat, self.max_distance * _BOX_MARGIN + _BOX_MARGIN_M)


def parse_geoquery(
    georel: str, geometry: str, coordinates: str | list[Any], geoproperty_iri: str
) -> GeoQuery:
    """Validate the georel, geometry and coordinates parameters of a geo-query."""
    relation, distance_kind, distance = _parse_georel(georel)
    if geometry not in GEOMETRY_TYPES:
        raise GeoQueryError(f"geometry must be one of {', '.join(GEOMETRY_TYPES)}, not {geometry!r}")
    if isinstance(coordinates, str):
        if len(coordinates) > MAX_COORDINATES_TEXT:
            raise GeoQueryError(f"coordinates are longer than {MAX_COORDINATES_TEXT} characters")
        try:
            coordinates = json.loads(coordinates)
        except ValueError:
            raise GeoQueryError(f"coordinates are not a JSON array: {coordinates[:100]!r}") from None
    if not isinstance(coordinates, list):
        raise GeoQueryError(f"coordinates must be a JSON array, not {coordinates!r}")
    if relation == "near" and geometry != "Point":
        raise GeoQueryError(f"georel near needs geometry Point, not {geometry}")
    geojson = {"type": geometry, "coordinates": coordinates}
    reference = _shape(geojson, allow_collection=False)
    if not reference.is_valid:
        raise GeoQueryError(f"invalid {geometry}: {shapely.is_valid_reason(reference)}")
    shapely.prepare(reference)
    return GeoQuery(
        relation,
        geojson,
        geoproperty_iri,
        reference,
        max_distance=distance if distance_kind == "maxDistance" else None,
        min_distance=distance if distance_kind == "minDistance" else None,
    )


def geometry_bbox(geojson: dict[str, Any]) -> tuple[float, float, float, float]:
    """The (west, south, east, north) box of a stored GeoJSON geometry, for a spatial index."""
    position = geojson.get("coordinates") if geojson.get("type") == "Point" else None
    if isinstance(position, list) and len(position) in (2, 3):  # the common case, without building a shape
        lon, lat = float(position[0]), float(position[1])
        return (lon, lat, lon, lat)
    geometry = _shape(geojson, allow_collection=True)
    if geometry.is_empty:
        raise GeoQueryError("an empty geometry has no bounding box")
    west, south, east, north = geometry.bounds
    return (float(west), float(south), float(east), float(north))


def haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """The distance in metres between two WGS84 points (haversine on the local radius of curvature)."""
    distance, _ = _geodesic(lon1, lat1, np.array([[lon2, lat2]], dtype=np.float64))
    return float(distance[0])


def distance_m(lon: float, lat: float, geometry_geojson: dict[str, Any]) -> float:
    """The distance in metres from a point to the nearest point of a GeoJSON geometry (0 inside it)."""
    return _distance(lon, lat, _shape(geometry_geojson, allow_collection=True))


def _parse_georel(georel: str) -> tuple[Georel, str | None, float | None]:
    for relation in GEORELS:
        if georel == relation != "near":
            return relation, None, None
    near = _NEAR_RE.fullmatch(georel)
    if near:
        distance = float(near[2])
        if not 0 < distance < math.inf:
            raise GeoQueryError(f"the distance in {georel!r} must be a positive number of metres")
        return "near", near[1], distance
    if georel.split(";", 1)[0] == "near":
        raise GeoQueryError(
            f"georel near needs ;maxDistance==<metres> or ;minDistance==<metres>, not {georel!r}"
        )
    if georel.split(";", 1)[0] in GEORELS:
        raise GeoQueryError(f"only georel near takes a distance, not {georel!r}")
    raise GeoQueryError(f"georel must be one of {', '.join(GEORELS)}, not {georel!r}")


def _position(value: Any, counter: list[int]) -> list[float]:
    counter[0] += 1
    if counter[0] > MAX_POSITIONS:
        raise GeoQueryError(f"a geometry may have at most {MAX_POSITIONS} positions")
    numbers = isinstance(value, list) and all(
        isinstance(n, int | float) and not isinstance(n, bool) for n in value
    )
    if not numbers or len(value) not in (2, 3) or not all(math.isfinite(n) for n in value):
        raise GeoQueryError(f"a position must be [longitude, latitude], not {value!r}")
    lon, lat = float(value[0]), float(value[1])
    if not -180 <= lon <= 180:
        raise GeoQueryError(f"longitude {lon} is outside [-180, 180]")
    if not -90 <= lat <= 90:
        raise GeoQueryError(f"latitude {lat} is outside [-90, 90]")
    return [lon, lat]


def _list(value: Any, minimum: int, what: str) -> list[Any]:
    if not isinstance(value, list) or len(value) < minimum:
        raise GeoQueryError(f"{what} needs an array of at least {minimum}, not {json.dumps(value)[:100]}")
    return value


def _positions(value: Any, minimum: int, what: str, counter: list[int]) -> list[list[float]]:
    return [_position(item, counter) for item in _list(value, minimum, what)]


def _polygon(value: Any, counter: list[int]) -> list[list[list[float]]]:
    rings = [_positions(ring, 4, "a polygon ring", counter) for ring in _list(value, 1, "a Polygon")]
    for ring in rings:
        if ring[0] != ring[-1]:
            raise GeoQueryError(
                f"a polygon ring must be closed: it starts at {ring[0]} but ends at {ring[-1]}"
            )
    return rings


def _coordinates(kind: str, value: Any, counter: list[int]) -> Any:
    """Checked coordinates (altitude dropped) of one geometry type."""
    if kind == "Point":
        return _position(value, counter)
    if kind == "LineString":
        return _positions(value, 2, "a LineString", counter)
    if kind == "Polygon":
        return _polygon(value, counter)
    if kind == "MultiPoint":
        return _positions(value, 1, "a MultiPoint", counter)
    if kind == "MultiLineString":
        return [_positions(line, 2, "a LineString", counter) for line in _list(value, 1, "a MultiLineString")]
    return [_polygon(polygon, counter) for polygon in _list(value, 1, "a MultiPolygon")]


def _shape(geojson: Any, *, allow_collection: bool, counter: list[int] | None = None) -> BaseGeometry:
    """A shapely geometry from checked GeoJSON."""
    counter = [0] if counter is None else counter
    if not isinstance(geojson, dict):
        raise GeoQueryError(f"a geometry must be a GeoJSON object, not {geojson!r}")
    kind = geojson.get("type")
    if kind == "GeometryCollection" and allow_collection:
        parts = _list(geojson.get("geometries"), 0, "a GeometryCollection")
        return shapely.GeometryCollection(
            [_shape(part, allow_collection=False, counter=counter) for part in parts]
        )
    if kind not in GEOMETRY_TYPES:
        raise GeoQueryError(f"geometry type must be one of {', '.join(GEOMETRY_TYPES)}, not {kind!r}")
    coordinates = _coordinates(kind, geojson.get("coordinates"), counter)
    try:
        return shape({"type": kind, "coordinates": coordinates})
    except (ValueError, GEOSException) as exc:
        raise GeoQueryError(f"invalid {kind}: {exc}") from None


def _distance(lon: float, lat: float, target: BaseGeometry) -> float:
    if target.is_empty:
        return math.inf
    if isinstance(target, shapely.Point | shapely.MultiPoint):
        return float(_geodesic(lon, lat, shapely.get_coordinates(target))[0].min())
    west, south, east, north = target.bounds
    step = max(DENSIFY_DEGREES, math.hypot(east - west, north - south) / DENSIFY_PARTS)
    dense = shapely.segmentize(target, step)
    projected = shapely.transform(dense, lambda points: _azimuthal_equidistant(lon, lat, points))
    return float(shapely.distance(projected, shapely.Point(0.0, 0.0)))


def _geodesic(
    lon: float, lat: float, points: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Distances in metres and initial azimuths in radians from (lon, lat) to each (lon, lat) row."""
    phi0, phi = math.radians(lat), np.radians(points[:, 1])
    delta = np.radians(points[:, 0] - lon)
    half = np.sin((phi - phi0) / 2) ** 2 + math.cos(phi0) * np.cos(phi) * np.sin(delta / 2) ** 2
    angle = 2 * np.arcsin(np.minimum(1.0, np.sqrt(half)))
    azimuth = np.arctan2(
        np.sin(delta) * np.cos(phi),
        math.cos(phi0) * np.sin(phi) - math.sin(phi0) * np.cos(phi) * np.cos(delta),
    )
    middle = (phi + phi0) / 2
    heading = np.arctan2(delta * np.cos(middle), phi - phi0)
    curvature = 1 - WGS84_E2 * np.sin(middle) ** 2
    meridional = WGS84_A * (1 - WGS84_E2) / curvature**1.5
    normal = WGS84_A / np.sqrt(curvature)
    radius = meridional * normal / (meridional * np.sin(heading) ** 2 + normal * np.cos(heading) ** 2)
    return angle * radius, azimuth


def _azimuthal_equidistant(lon: float, lat: float, points: NDArray[np.float64]) -> NDArray[np.float64]:
    """Project (lon, lat) rows to metres east/north of the centre, keeping distances from it exact."""
    distance, azimuth = _geodesic(lon, lat, points)
    return np.column_stack((distance * np.sin(azimuth), distance * np.cos(azimuth)))


def _cap_box(lon: float, lat: float, radius_m: float) -> tuple[float, float, float, float]:
    """The box around every point within ``radius_m`` of (lon, lat) on the sphere."""
    angle = radius_m / _MIN_RADIUS_M
    south, north = lat - math.degrees(angle), lat + math.degrees(angle)
    if south <= -90 or north >= 90:
        return (-180.0, max(south, -90.0), 180.0, min(north, 90.0))
    spread = math.degrees(math.asin(min(1.0, math.sin(angle) / math.cos(math.radians(lat)))))
    west, east = lon - spread, lon + spread
    if west < -180 or east > 180:
        return (-180.0, south, 180.0, north)
    return (west, south, east, north)
