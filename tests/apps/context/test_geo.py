"""Geo-queries: validation, georels, distances, prefilter boxes; over HTTP on SQLite and PostgreSQL (+PostGIS)."""

from __future__ import annotations

import json
import math
import random
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, create_engine, event, insert, text
from sqlalchemy.engine import make_url

from citybrain.apps.context.geo import (
    GeoQuery,
    GeoQueryError,
    distance_m,
    geometry_bbox,
    haversine_m,
    parse_geoquery,
)
from citybrain.apps.context.models import Entity
from citybrain.core.context import AppContext
from citybrain.core.migrate import alembic_config, pending_changes, upgrade
from citybrain.core.platform import build_context
from tests.conftest import BACKEND, PG_URL, make_settings, service_missing

LOCATION = "https://uri.etsi.org/ngsi-ld/location"
MIANYANG = [104.679, 31.467]  # 绵阳 city centre
JIANGYOU = [104.745, 31.778]  # 江油
# Around Mianyang's urban districts; contains 绵阳, not 江油.
URBAN = [[104.6, 31.4], [104.8, 31.4], [104.8, 31.55], [104.6, 31.55], [104.6, 31.4]]
# Geodesic distances on the WGS84 ellipsoid (Vincenty; for the line and the polygon the minimum over
# 200 001 points of the straight lon/lat edge), which the computation must meet within 0.1 %.
MIANYANG_TO_JIANGYOU_M = 35047.70
MIANYANG_TO_MERIDIAN_M = 6272.35  # to the line lon=104.745 between lat 31.4 and 31.9
JIANGYOU_TO_URBAN_M = 25280.86  # to the north edge of URBAN
BEIJING_TO_SHANGHAI_M = 1065846.49


def point(coordinates: Sequence[float]) -> dict[str, Any]:
    return {"type": "Point", "coordinates": list(coordinates)}


def at(position: list[float]) -> tuple[float, float]:
    return position[0], position[1]


def polygon(ring: list[list[float]]) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [ring]}


def box(west: float, south: float, east: float, north: float) -> list[list[float]]:
    return [[west, south], [east, south], [east, north], [west, north], [west, south]]


def query(georel: str, geometry: str, coordinates: Any) -> GeoQuery:
    return parse_geoquery(georel, geometry, coordinates, LOCATION)


# --------------------------------------------------------------------------------------- validation


def test_parse() -> None:
    near = query("near;maxDistance==2000", "Point", "[8,40]")
    assert (near.georel, near.max_distance, near.min_distance) == ("near", 2000.0, None)
    assert near.geometry == {"type": "Point", "coordinates": [8, 40]}
    assert near.geoproperty == LOCATION
    far = query("near;minDistance==1.5e3", "Point", [8, 40])
    assert (far.max_distance, far.min_distance) == (None, 1500.0)
    within = query("within", "Polygon", "[[[100.0,0.0],[101.0,0.0],[101.0,1.0],[100.0,1.0],[100.0,0.0]]]")
    assert within.georel == "within"
    for georel in ("contains", "intersects", "equals", "disjoint", "overlaps"):
        assert query(georel, "Point", MIANYANG).georel == georel
    assert query("within", "Point", [104.679, 31.467, 480.0]).matches(point([104.679, 31.467]))


@pytest.mark.parametrize(
    ("georel", "geometry", "coordinates", "message"),
    [
        ("", "Point", "[8,40]", "georel must be one of"),
        ("nearby", "Point", "[8,40]", "georel must be one of"),
        ("NEAR;maxDistance==5", "Point", "[8,40]", "georel must be one of"),
        ("near", "Point", "[8,40]", "needs ;maxDistance==<metres>"),
        ("near;maxDistance", "Point", "[8,40]", "needs ;maxDistance"),
        ("near;maxDistance==", "Point", "[8,40]", "needs ;maxDistance"),
        ("near;maxDistance=5", "Point", "[8,40]", "needs ;maxDistance"),
        ("near;maxDistance==-5", "Point", "[8,40]", "needs ;maxDistance"),
        ("near;maxDistance==abc", "Point", "[8,40]", "needs ;maxDistance"),
        ("near;distance==5", "Point", "[8,40]", "needs ;maxDistance"),
        ("near;maxDistance==0", "Point", "[8,40]", "must be a positive number"),
        ("near;maxDistance==0.0", "Point", "[8,40]", "must be a positive number"),
        ("near;maxDistance==1e999", "Point", "[8,40]", "must be a positive number"),
        ("within;maxDistance==5", "Polygon", [URBAN], "only georel near takes a distance"),
        ("near;maxDistance==5", "Polygon", [URBAN], "near needs geometry Point"),
        ("near;minDistance==5", "LineString", [MIANYANG, JIANGYOU], "near needs geometry Point"),
        ("within", "GeometryCollection", "[]", "geometry must be one of"),
        ("within", "point", "[8,40]", "geometry must be one of"),
        ("within", "Circle", "[8,40]", "geometry must be one of"),
        ("within", "Point", "not json", "not a JSON array"),
        ("within", "Point", "", "not a JSON array"),
        ("within", "Point", "{}", "must be a JSON array"),
        ("within", "Point", "[]", "a position must be [longitude, latitude]"),
        ("within", "Point", "[1]", "a position must be"),
        ("within", "Point", "[1,2,3,4]", "a position must be"),
        ("within", "Point", '["a","b"]', "a position must be"),
        ("within", "Point", "[true,false]", "a position must be"),
        ("within", "Point", "[NaN,0]", "a position must be"),
        ("within", "Point", "[181,0]", "longitude 181.0 is outside [-180, 180]"),
        ("within", "Point", "[-180.5,0]", "longitude"),
        ("within", "Point", "[0,91]", "latitude 91.0 is outside [-90, 90]"),
        ("within", "Point", "[0,-90.01]", "latitude"),
        ("within", "LineString", [MIANYANG], "a LineString needs an array of at least 2"),
        ("within", "LineString", [MIANYANG, MIANYANG], "invalid LineString"),
        ("within", "Polygon", [URBAN[:-1]], "a polygon ring must be closed"),
        ("within", "Polygon", [[[0, 0], [1, 1], [0, 0]]], "a polygon ring needs an array of at least 4"),
        ("within", "Polygon", [], "a Polygon needs an array of at least 1"),
        ("within", "Polygon", URBAN, "a polygon ring needs an array of at least 4"),
        (
            "within",
            "Polygon",
            [[[0, 0], [2, 2], [2, 0], [0, 2], [0, 0]]],
            "invalid Polygon: Self-intersection",
        ),
        ("within", "MultiPoint", [], "a MultiPoint needs an array of at least 1"),
        ("within", "MultiLineString", [[MIANYANG]], "a LineString needs an array of at least 2"),
        ("within", "MultiPolygon", [[URBAN[:-1]]], "must be closed"),
        ("within", "MultiPolygon", [URBAN], "a polygon ring needs an array"),
        ("within", "Point", "[" + "1," * 1_000_000 + "1]", "longer than"),
    ],
)
def test_invalid(georel: str, geometry: str, coordinates: Any, message: str) -> None:
    with pytest.raises(GeoQueryError) as caught:
        query(georel, geometry, coordinates)
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)


# ------------------------------------------------------------------------------------------ georels


def test_within() -> None:
    urban = query("within", "Polygon", [URBAN])
    assert urban.matches(point(MIANYANG))
    assert not urban.matches(point(JIANGYOU))
    assert not urban.matches(point([104.6, 31.45]))  # on the boundary: not within
    assert urban.matches({"type": "LineString", "coordinates": [[104.65, 31.45], [104.7, 31.5]]})
    assert not urban.matches({"type": "LineString", "coordinates": [MIANYANG, JIANGYOU]})
    assert urban.matches(polygon(box(104.65, 31.45, 104.7, 31.5)))
    assert not urban.matches(polygon(box(104.5, 31.45, 104.7, 31.5)))


def test_contains() -> None:
    at_centre = query("contains", "Point", MIANYANG)
    assert at_centre.matches(polygon(URBAN))
    assert not at_centre.matches(polygon(box(104.7, 31.5, 104.8, 31.6)))
    assert at_centre.matches({"type": "MultiPolygon", "coordinates": [[box(0, 0, 1, 1)], [URBAN]]})
    assert not query("contains", "Polygon", [URBAN]).matches(polygon(box(104.65, 31.45, 104.7, 31.5)))
    assert query("contains", "Polygon", [box(104.65, 31.45, 104.7, 31.5)]).matches(polygon(URBAN))


def test_intersects_and_disjoint() -> None:
    road = {"type": "LineString", "coordinates": [MIANYANG, JIANGYOU]}
    north = {"type": "LineString", "coordinates": [[104.6, 31.7], [104.9, 31.7]]}
    intersects = query("intersects", "Polygon", [URBAN])
    disjoint = query("disjoint", "Polygon", [URBAN])
    assert intersects.matches(road)
    assert not disjoint.matches(road)
    assert not intersects.matches(north)
    assert disjoint.matches(north)
    assert disjoint.matches(point(JIANGYOU))
    assert intersects.matches(point([104.6, 31.45]))  # boundary points intersect
    assert query("intersects", "LineString", [[104.7, 31.3], [104.7, 31.9]]).matches(road)


def test_equals() -> None:
    rotated = [URBAN[1], URBAN[2], URBAN[3], URBAN[0], URBAN[1]]
    assert query("equals", "Polygon", [URBAN]).matches(polygon(rotated))
    assert query("equals", "Polygon", [URBAN]).matches(polygon(list(reversed(URBAN))))
    assert not query("equals", "Polygon", [URBAN]).matches(polygon(box(104.6, 31.4, 104.8, 31.56)))
    assert query("equals", "Point", MIANYANG).matches(point(MIANYANG))
    assert not query("equals", "Point", MIANYANG).matches(point(JIANGYOU))
    assert query("equals", "MultiPoint", [MIANYANG, JIANGYOU]).matches(
        {"type": "MultiPoint", "coordinates": [JIANGYOU, MIANYANG]}
    )


def test_overlaps() -> None:
    overlaps = query("overlaps", "Polygon", [URBAN])
    assert overlaps.matches(polygon(box(104.7, 31.5, 104.9, 31.6)))
    assert not overlaps.matches(polygon(box(104.65, 31.45, 104.7, 31.5)))  # inside, not overlapping
    assert not overlaps.matches(polygon(box(105, 32, 106, 33)))
    assert not overlaps.matches(point(MIANYANG))  # different dimensions never overlap
    lines = query("overlaps", "LineString", [[0, 0], [2, 0]])
    assert lines.matches({"type": "LineString", "coordinates": [[1, 0], [3, 0]]})


def test_distances_against_the_ellipsoid() -> None:
    assert haversine_m(*at(MIANYANG), *at(JIANGYOU)) == pytest.approx(MIANYANG_TO_JIANGYOU_M, rel=0.001)
    assert haversine_m(116.4074, 39.9042, 121.4737, 31.2304) == pytest.approx(
        BEIJING_TO_SHANGHAI_M, rel=0.001
    )
    meridian = {"type": "LineString", "coordinates": [[104.745, 31.4], [104.745, 31.9]]}
    assert distance_m(*at(MIANYANG), meridian) == pytest.approx(MIANYANG_TO_MERIDIAN_M, rel=0.001)
    assert distance_m(*at(JIANGYOU), polygon(URBAN)) == pytest.approx(JIANGYOU_TO_URBAN_M, rel=0.001)
    assert distance_m(*at(MIANYANG), polygon(URBAN)) == 0
    assert distance_m(*at(MIANYANG), point(MIANYANG)) == 0
    several = {"type": "MultiPoint", "coordinates": [[0, 0], JIANGYOU]}
    assert distance_m(*at(MIANYANG), several) == pytest.approx(MIANYANG_TO_JIANGYOU_M, rel=0.001)
    # A long edge passing close to the point: the nearest point is mid-edge, far from any vertex.
    long_edge = {"type": "LineString", "coordinates": [[100.0, 31.5], [110.0, 31.5]]}
    assert distance_m(*at(MIANYANG), long_edge) == pytest.approx(3659.0, rel=0.002)


@pytest.mark.parametrize(
    ("target", "known"),
    [
        (point(JIANGYOU), MIANYANG_TO_JIANGYOU_M),
        ({"type": "LineString", "coordinates": [[104.745, 31.4], [104.745, 31.9]]}, MIANYANG_TO_MERIDIAN_M),
        (
            {"type": "GeometryCollection", "geometries": [point([0, 0]), point(JIANGYOU)]},
            MIANYANG_TO_JIANGYOU_M,
        ),
    ],
)
def test_near(target: dict[str, Any], known: float) -> None:
    below, above = round(known * 0.99), round(known * 1.01)
    assert query(f"near;maxDistance=={above}", "Point", MIANYANG).matches(target)
    assert not query(f"near;maxDistance=={below}", "Point", MIANYANG).matches(target)
    assert query(f"near;minDistance=={below}", "Point", MIANYANG).matches(target)
    assert not query(f"near;minDistance=={above}", "Point", MIANYANG).matches(target)


def test_near_a_polygon() -> None:
    below, above = round(JIANGYOU_TO_URBAN_M * 0.99), round(JIANGYOU_TO_URBAN_M * 1.01)
    assert query(f"near;maxDistance=={above}", "Point", JIANGYOU).matches(polygon(URBAN))
    assert not query(f"near;maxDistance=={below}", "Point", JIANGYOU).matches(polygon(URBAN))
    assert query("near;maxDistance==1", "Point", MIANYANG).matches(polygon(URBAN))  # inside: distance 0
    assert not query("near;minDistance==1", "Point", MIANYANG).matches(polygon(URBAN))


def test_unreadable_targets_never_match() -> None:
    near = query("near;maxDistance==1e7", "Point", MIANYANG)
    intersects = query("intersects", "Polygon", [box(-180, -90, 180, 90)])
    for target in [
        {},
        {"type": "Point"},
        {"type": "Point", "coordinates": [200, 0]},
        {"type": "Circle", "coordinates": [0, 0]},
        {"type": "GeometryCollection", "geometries": []},
        "POINT (0 0)",
    ]:
        assert not near.matches(target)  # type: ignore[arg-type]
        assert not intersects.matches(target)  # type: ignore[arg-type]


# -------------------------------------------------------------------------------------------- boxes


def test_bbox() -> None:
    assert query("within", "Polygon", [URBAN]).bbox() == (104.6, 31.4, 104.8, 31.55)
    assert query("intersects", "LineString", [MIANYANG, JIANGYOU]).bbox() == (
        104.679,
        31.467,
        104.745,
        31.778,
    )
    assert query("contains", "Point", MIANYANG).bbox() == (104.679, 31.467, 104.679, 31.467)
    assert query("equals", "Polygon", [URBAN]).bbox() == (104.6, 31.4, 104.8, 31.55)
    assert query("overlaps", "Polygon", [URBAN]).bbox() == (104.6, 31.4, 104.8, 31.55)
    assert query("disjoint", "Polygon", [URBAN]).bbox() is None
    assert query("near;minDistance==10", "Point", MIANYANG).bbox() is None
    west, south, east, north = query("near;maxDistance==40000", "Point", MIANYANG).bbox() or (0, 0, 0, 0)
    # 40 km north is 0.3608 degrees of latitude, east 0.4220 degrees of longitude (WGS84, at 31.5 N);
    # the box is a little wider on purpose, with every distance taken at the smallest radius of curvature.
    assert [north - MIANYANG[1], MIANYANG[1] - south] == pytest.approx([0.3621, 0.3621], abs=0.0005)
    assert [east - MIANYANG[0], MIANYANG[0] - west] == pytest.approx([0.4246, 0.4246], abs=0.0005)
    assert haversine_m(MIANYANG[0], MIANYANG[1], MIANYANG[0], north) > 40000
    assert haversine_m(MIANYANG[0], MIANYANG[1], east, MIANYANG[1]) > 40000


def test_bbox_near_the_poles_and_the_antimeridian() -> None:
    polar = query("near;maxDistance==200000", "Point", [10, 89]).bbox()
    assert polar == pytest.approx((-180.0, 87.19, 180.0, 90.0), abs=0.01)
    across = query("near;maxDistance==200000", "Point", [179.5, 0]).bbox()
    assert across == pytest.approx((-180.0, -1.81, 180.0, 1.81), abs=0.01)


def test_geometry_bbox() -> None:
    assert geometry_bbox(point(MIANYANG)) == (104.679, 31.467, 104.679, 31.467)
    assert geometry_bbox(polygon(URBAN)) == (104.6, 31.4, 104.8, 31.55)
    collection = {"type": "GeometryCollection", "geometries": [point(MIANYANG), point(JIANGYOU)]}
    assert geometry_bbox(collection) == (104.679, 31.467, 104.745, 31.778)
    assert geometry_bbox({"type": "Point", "coordinates": [1, 2, 300]}) == (1.0, 2.0, 1.0, 2.0)
    bad_geometries: list[dict[str, Any]] = [
        {"type": "Point", "coordinates": [1]},
        {"type": "GeometryCollection", "geometries": []},
        {"type": "x"},
    ]
    for bad in bad_geometries:
        with pytest.raises(GeoQueryError):
            geometry_bbox(bad)


def inside(box_: tuple[float, float, float, float] | None, lon: float, lat: float) -> bool:
    assert box_ is not None
    west, south, east, north = box_
    return west <= lon <= east and south <= lat <= north


@given(
    lon=st.floats(-179, 179),
    lat=st.floats(-89, 89),
    distance=st.floats(1, 2_000_000),
    offsets=st.lists(st.tuples(st.floats(-1, 1), st.floats(-1, 1)), min_size=1, max_size=20),
)
@settings(max_examples=300, deadline=None)
def test_near_matches_lie_in_the_box(
    lon: float, lat: float, distance: float, offsets: list[tuple[float, float]]
) -> None:
    near = query(f"near;maxDistance=={distance:.3f}", "Point", [lon, lat])
    spread = 2 * distance / 111_000  # degrees: reach beyond the circle on every side
    box_ = near.bbox()
    for east, north in offsets:
        x = min(180.0, max(-180.0, lon + east * spread * 3))
        y = min(90.0, max(-90.0, lat + north * spread))
        if near.matches(point([x, y])):
            assert inside(box_, x, y)
        # A segment from the point away from the centre: it matches by its nearest point.
        far = [min(180.0, max(-180.0, x + east * spread)), min(90.0, max(-90.0, y + north * spread))]
        segment = {"type": "LineString", "coordinates": [[x, y], far]}
        if far != [x, y] and near.matches(segment):
            west, south, east_, north_ = geometry_bbox(segment)
            assert box_ is not None
            assert west <= box_[2] and box_[0] <= east_ and south <= box_[3] and box_[1] <= north_


@given(
    corner=st.tuples(st.floats(-170, 160), st.floats(-80, 70)),
    size=st.tuples(st.floats(0.001, 10), st.floats(0.001, 10)),
    points=st.lists(st.tuples(st.floats(-0.2, 1.2), st.floats(-0.2, 1.2)), min_size=1, max_size=20),
    georel=st.sampled_from(["within", "intersects", "contains", "overlaps", "equals"]),
)
@settings(max_examples=300, deadline=None)
def test_topological_matches_lie_in_the_box(
    corner: tuple[float, float], size: tuple[float, float], points: list[tuple[float, float]], georel: str
) -> None:
    (west, south), (width, height) = corner, size
    area = query(georel, "Polygon", [box(west, south, west + width, south + height)])
    for u, v in points:
        x, y = west + u * width, south + v * height
        target = polygon(box(x, y, x + width / 10, y + height / 10))
        for candidate in (point([x, y]), target):
            if area.matches(candidate):
                target_west, target_south, target_east, target_north = geometry_bbox(candidate)
                query_west, query_south, query_east, query_north = area.bbox() or (0, 0, 0, 0)
                assert target_west <= query_east and query_west <= target_east
                assert target_south <= query_north and query_south <= target_north


# ------------------------------------------------------------------- over HTTP, on every storage backend

BASE = "/ngsi-ld/v1"
PLACE = "https://uri.etsi.org/ngsi-ld/default-context/Place"
PLACES: dict[str, dict[str, Any]] = {
    "centre": point(MIANYANG),
    "jiangyou": point(JIANGYOU),
    "edge": point([104.6, 31.45]),  # on URBAN's boundary
    # An altitude and a "crs" member naming no known CRS: both ignored.
    "tower": {
        "type": "Point",
        "coordinates": [104.7, 31.48, 480.0],
        "crs": {"type": "name", "properties": {"name": "EPSG:99999999999"}},
    },
    "pair": {"type": "MultiPoint", "coordinates": [MIANYANG, JIANGYOU]},
    "road": {"type": "LineString", "coordinates": [MIANYANG, JIANGYOU]},
    "lane": {"type": "LineString", "coordinates": [[104.65, 31.45], [104.7, 31.5]]},
    "lanes": {
        "type": "MultiLineString",
        "coordinates": [[[104.6, 31.7], [104.9, 31.7]], [[104.65, 31.45], [104.7, 31.5]]],
    },
    "district": polygon(box(104.65, 31.45, 104.7, 31.5)),
    "straddle": polygon(box(104.7, 31.5, 104.9, 31.6)),
    "urban": polygon(list(reversed(URBAN))),
    # MIANYANG lies in the hole.
    "holed": {
        "type": "Polygon",
        "coordinates": [box(104.62, 31.41, 104.78, 31.54), box(104.66, 31.44, 104.72, 31.5)],
    },
    "islands": {
        "type": "MultiPolygon",
        "coordinates": [[box(105, 32, 106, 33)], [box(104.75, 31.52, 104.78, 31.54)]],
    },
}
INSIDE = ["centre", "district", "holed", "lane", "tower", "urban"]
# Each georel with each reference geometry type, and what it selects (in geo.py's semantics).
GEO_CASES: list[tuple[str, str, Any, list[str]]] = [
    ("within", "Polygon", [URBAN], INSIDE),
    ("within", "MultiPolygon", [[URBAN], [box(105, 32, 106, 33)]], [*INSIDE, "islands"]),
    ("contains", "Point", MIANYANG, ["centre", "district", "pair", "urban"]),
    ("contains", "LineString", [[104.66, 31.46], [104.69, 31.49]], ["district", "urban"]),
    (
        "intersects",
        "Polygon",
        [URBAN],
        [*INSIDE, "edge", "islands", "lanes", "pair", "road", "straddle"],
    ),
    (
        "intersects",
        "LineString",
        [[104.7, 31.3], [104.7, 31.9]],
        ["district", "holed", "lane", "lanes", "road", "straddle", "tower", "urban"],
    ),
    (
        "intersects",
        "MultiPoint",
        [MIANYANG, [105.5, 32.5]],
        ["centre", "district", "islands", "pair", "road", "urban"],
    ),
    (
        "intersects",
        "MultiLineString",
        [[[104.59, 31.7], [104.61, 31.7]], [[104.77, 31.3], [104.77, 31.6]]],
        ["holed", "islands", "lanes", "straddle", "urban"],
    ),
    ("equals", "Polygon", [[*URBAN[1:], URBAN[1]]], ["urban"]),
    ("equals", "Point", MIANYANG, ["centre"]),
    ("equals", "MultiPoint", [JIANGYOU, MIANYANG], ["pair"]),
    ("disjoint", "Polygon", [URBAN], ["jiangyou"]),
    ("overlaps", "Polygon", [URBAN], ["islands", "straddle"]),
    ("overlaps", "LineString", [[104.8, 31.7], [105.0, 31.7]], ["lanes"]),
    (
        "near;maxDistance==5000",
        "Point",
        MIANYANG,
        ["centre", "district", "holed", "lane", "lanes", "pair", "road", "straddle", "tower", "urban"],
    ),
    ("near;minDistance==5000", "Point", MIANYANG, ["edge", "islands", "jiangyou"]),
    (
        "near;maxDistance==26000",
        "Point",
        JIANGYOU,
        ["jiangyou", "lanes", "pair", "road", "straddle", "urban"],
    ),
    (
        "near;minDistance==26000",
        "Point",
        JIANGYOU,
        ["centre", "district", "edge", "holed", "islands", "lane", "tower"],
    ),
]


def place(name: str, geometry: dict[str, Any] | None, dataset: str | None = None) -> dict[str, Any]:
    entity: dict[str, Any] = {"id": f"urn:ngsi-ld:Place:{name}", "type": "Place"}
    if geometry is not None:
        entity["location"] = {"type": "GeoProperty", "value": geometry}
        if dataset is not None:
            entity["location"]["datasetId"] = dataset
    return entity


def create(ngsi: TestClient, entities: list[dict[str, Any]]) -> None:
    response = ngsi.post(f"{BASE}/entityOperations/create", json=entities)
    assert response.status_code == 201, response.text


def geo_ids(ngsi: TestClient, georel: str, geometry: str, coordinates: Any, **extra: str) -> list[str]:
    params = {"type": "Place", "georel": georel, "geometry": geometry, "coordinates": json.dumps(coordinates)}
    response = ngsi.get(f"{BASE}/entities", params={**params, "limit": "1000", "count": "true", **extra})
    assert response.status_code == 200, response.text
    found = [e["id"].rsplit(":", 1)[-1] for e in response.json()]
    if "limit" not in extra:
        assert response.headers["ngsild-results-count"] == str(len(found))
    return found


def test_every_georel_on_every_geometry_over_http(ngsi: TestClient) -> None:
    others = [
        place("elsewhere", point(MIANYANG), dataset="urn:ngsi-ld:Dataset:gps"),  # no default instance
        place("nowhere", None),
    ]
    create(ngsi, [place(name, geometry) for name, geometry in PLACES.items()] + others)
    found = {
        (georel, geometry): geo_ids(ngsi, georel, geometry, coordinates)
        for georel, geometry, coordinates, _ in GEO_CASES
    }
    assert found == {(georel, geometry): sorted(names) for georel, geometry, _, names in GEO_CASES}
    for georel, geometry, coordinates, names in GEO_CASES:  # the reference semantics agree
        geo = query(georel, geometry, coordinates)
        assert sorted(n for n, g in PLACES.items() if geo.matches(g)) == sorted(names), georel
    assert geo_ids(ngsi, "within", "Polygon", [URBAN], limit="2", offset="1") == sorted(INSIDE)[1:3]
    counted = ngsi.get(
        f"{BASE}/entities",
        params={
            "georel": "within",
            "geometry": "Polygon",
            "coordinates": json.dumps([URBAN]),
            "count": "true",
            "limit": "0",
        },
    )
    assert counted.json() == [] and counted.headers["ngsild-results-count"] == str(len(INSIDE))


def test_geo_queries_follow_every_write(ngsi: TestClient) -> None:
    entity = f"{BASE}/entities/urn:ngsi-ld:Place:mobile"
    create(ngsi, [place("mobile", point(JIANGYOU))])
    near_centre = ("near;maxDistance==1000", "Point", MIANYANG)
    assert geo_ids(ngsi, *near_centre) == []
    moved = ngsi.patch(f"{entity}/attrs/location", json={"type": "GeoProperty", "value": point(MIANYANG)})
    assert moved.status_code == 204, moved.text
    assert geo_ids(ngsi, *near_centre) == ["mobile"]
    assert ngsi.patch(f"{entity}/attrs", json={"name": {"type": "Property", "value": "x"}}).status_code in (
        204,
        207,
    )
    assert geo_ids(ngsi, *near_centre) == ["mobile"]
    replaced = ngsi.put(
        entity, json={"type": "Place", "location": {"type": "GeoProperty", "value": polygon(URBAN)}}
    )
    assert replaced.status_code == 204, replaced.text
    assert geo_ids(ngsi, "equals", "Polygon", [URBAN]) == ["mobile"]
    assert ngsi.delete(f"{entity}/attrs/location").status_code == 204
    assert geo_ids(ngsi, "intersects", "Polygon", [URBAN]) == []
    upsert = ngsi.post(f"{BASE}/entityOperations/upsert", json=[place("mobile", point(JIANGYOU))])
    assert upsert.status_code in (201, 204), upsert.text
    assert geo_ids(ngsi, "near;maxDistance==10", "Point", JIANGYOU) == ["mobile"]
    assert ngsi.delete(entity).status_code == 204
    assert geo_ids(ngsi, "near;maxDistance==10", "Point", JIANGYOU) == []


def test_invalid_stored_polygons_never_break_a_query(ngsi: TestClient) -> None:
    # Stored as given (the broker checks GeoJSON, not OGC validity); GEOS predicates may raise on them.
    bowtie = {
        "type": "Polygon",
        "coordinates": [
            [[104.62, 31.42], [104.64, 31.44], [104.64, 31.42], [104.62, 31.44], [104.62, 31.42]]
        ],
    }
    overlapping = {
        "type": "MultiPolygon",
        "coordinates": [[box(104.62, 31.42, 104.64, 31.44)], [box(104.63, 31.43, 104.65, 31.45)]],
    }
    create(ngsi, [place("bowtie", bowtie), place("overlapping", overlapping)])
    both = ["bowtie", "overlapping"]
    square, line = [box(104.63, 31.43, 104.65, 31.45)], [[104.61, 31.435], [104.66, 31.435]]
    for georel in ("within", "contains", "equals", "disjoint"):
        assert geo_ids(ngsi, georel, "Polygon", square) == []
        assert geo_ids(ngsi, georel, "LineString", line) == []
    assert geo_ids(ngsi, "intersects", "Polygon", square) == both
    assert geo_ids(ngsi, "overlaps", "Polygon", square) == both
    assert geo_ids(ngsi, "intersects", "LineString", line) == both
    assert geo_ids(ngsi, "overlaps", "LineString", line) == []
    assert geo_ids(ngsi, "near;maxDistance==100", "Point", [104.63, 31.43]) == both
    assert geo_ids(ngsi, "near;minDistance==100", "Point", [104.63, 31.43]) == []


def near_targets(count: int) -> dict[str, dict[str, Any]]:
    """Points, lines and squares at 3 m to 1000 km from MIANYANG in every direction."""
    rng = random.Random(20261125)
    targets: dict[str, dict[str, Any]] = {}
    for n in range(count):
        reach = 10 ** rng.uniform(0.5, 6) / 111_000
        bearing = rng.uniform(0, 2 * math.pi)
        lon = MIANYANG[0] + reach * math.sin(bearing) / math.cos(math.radians(MIANYANG[1]))
        lat = MIANYANG[1] + reach * math.cos(bearing)
        size, turn = rng.uniform(0.001, 2), rng.uniform(0, 2 * math.pi)
        if n % 3 == 0:
            targets[f"p{n}"] = point([lon, lat])
        elif n % 3 == 1:
            end = [lon + size * math.cos(turn), lat + size * math.sin(turn)]
            targets[f"l{n}"] = {"type": "LineString", "coordinates": [[lon, lat], end]}
        else:
            targets[f"s{n}"] = polygon(box(lon, lat, lon + size / 4, lat + size / 4))
    return targets


def test_near_agrees_with_geodesic_distances_within_the_tolerance(ngsi: TestClient) -> None:
    targets = near_targets(30)
    create(ngsi, [place(name, geometry) for name, geometry in targets.items()])
    for name, geometry in targets.items():
        distance = distance_m(*at(MIANYANG), geometry)
        # The tolerance between backends documented in geo.py.
        slack = 1e-4 * distance + 0.01 if geometry["type"] == "Point" else 5e-3 * distance + 1
        only = {"id": f"urn:ngsi-ld:Place:{name}"}
        assert geo_ids(ngsi, f"near;maxDistance=={distance + slack:.3f}", "Point", MIANYANG, **only) == [name]
        assert geo_ids(ngsi, f"near;minDistance=={distance + slack:.3f}", "Point", MIANYANG, **only) == []
        if distance - slack > 0.001:
            assert geo_ids(ngsi, f"near;maxDistance=={distance - slack:.3f}", "Point", MIANYANG, **only) == []
            assert geo_ids(ngsi, f"near;minDistance=={distance - slack:.3f}", "Point", MIANYANG, **only) == [
                name
            ]


# --------------------------------------------------------------------------- PostgreSQL with PostGIS

INDEX = "ix_context_entity_location_geometry"


@pytest.fixture
def postgis(ctx: AppContext) -> AppContext:
    """The running app on PostgreSQL with the PostGIS geometry of `location` (a failure in CI without it)."""
    if BACKEND != "postgresql":
        pytest.skip("PostGIS is a PostgreSQL extension")
    with ctx.read() as session:
        columns = session.scalar(
            text(
                "SELECT count(*) FROM pg_attribute WHERE attrelid = 'context_entity'::regclass "
                "AND attname = 'location_geometry' AND NOT attisdropped"
            )
        )
    if not columns:
        service_missing(
            "PostGIS", LookupError("no location_geometry column: install postgresql-<major>-postgis-3")
        )
    return ctx


def stored_geometry(ctx: AppContext, name: str) -> tuple[str | None, int | None, bool | None]:
    with ctx.read() as session:
        row = session.execute(
            text(
                "SELECT ST_AsText(location_geometry), ST_SRID(location_geometry), ST_IsValid(location_geometry) "
                "FROM context_entity WHERE entity_id = :id"
            ),
            {"id": f"urn:ngsi-ld:Place:{name}"},
        ).one()
    return row[0], row[1], row[2]


@contextmanager
def statements_on(word: str) -> Iterator[list[tuple[str, Any]]]:
    """Collect the SQL statements (with parameters) that mention a word."""
    found: list[tuple[str, Any]] = []

    def collect(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if word in statement:
            found.append((statement, parameters))

    event.listen(Engine, "before_cursor_execute", collect)
    try:
        yield found
    finally:
        event.remove(Engine, "before_cursor_execute", collect)


def test_postgis_answers_every_georel_on_its_gist_index(ngsi: TestClient, postgis: AppContext) -> None:
    grid = {
        f"g{i:04d}": [104.55 + (i % 100) * 0.001, 31.35 + (i // 100) * 0.001] for i in range(5000)
    }  # a detector every 100 m or so, as in the benchmark
    now = datetime.now(UTC)
    rows = [
        {
            "tenant": "",
            "entity_id": f"urn:ngsi-ld:Place:{name}",
            "type": PLACE,
            "created_at": now,
            "modified_at": now,
            "data": {
                "id": f"urn:ngsi-ld:Place:{name}",
                "type": [PLACE],
                "createdAt": now.isoformat(),
                "modifiedAt": now.isoformat(),
                "attrs": {LOCATION: [{"type": "GeoProperty", "value": point(position)}]},
            },
        }
        for name, position in grid.items()
    ]
    with postgis.db.write_engine.begin() as conn:
        conn.execute(insert(Entity), rows)
        conn.execute(text("ANALYZE context_entity"))
    square = [box(104.5805, 31.3605, 104.5905, 31.3705)]
    cases = [
        ("near;maxDistance==300", "Point", [104.6, 31.37]),
        ("within", "Polygon", square),
        ("intersects", "Polygon", square),
        ("contains", "Point", grid["g1234"]),
        ("equals", "Point", grid["g1234"]),
        ("overlaps", "Polygon", square),
    ]
    with statements_on("context_entity.location_geometry") as statements:
        for georel, geometry, coordinates in cases:
            geo = query(georel, geometry, coordinates)
            expected = sorted(name for name, position in grid.items() if geo.matches(point(position)))
            assert geo_ids(ngsi, georel, geometry, coordinates) == expected, georel
            assert georel in ("overlaps",) or expected
    assert len(statements) >= len(cases)  # every query ran in PostGIS (pages and counts alike)
    with postgis.db.write_engine.connect() as conn:
        for statement, parameters in statements:
            plan = "\n".join(conn.exec_driver_sql("EXPLAIN " + statement, parameters).scalars())
            assert INDEX in plan, plan


def test_postgis_geometry_is_generated_on_every_write(ngsi: TestClient, postgis: AppContext) -> None:
    entity = f"{BASE}/entities/urn:ngsi-ld:Place:mobile"
    create(
        ngsi,
        [
            place("mobile", PLACES["tower"]),
            place("elsewhere", point(MIANYANG), dataset="urn:ngsi-ld:Dataset:gps"),
        ],
    )
    assert stored_geometry(postgis, "mobile") == ("POINT(104.7 31.48)", 4326, True)  # 2D, SRID 4326
    assert stored_geometry(postgis, "elsewhere") == (None, None, None)  # only the default instance counts
    ngsi.patch(f"{entity}/attrs/location", json={"type": "GeoProperty", "value": PLACES["lane"]})
    assert stored_geometry(postgis, "mobile") == ("LINESTRING(104.65 31.45,104.7 31.5)", 4326, True)
    bowtie = [[0, 0], [2, 2], [2, 0], [0, 2], [0, 0]]
    replaced = ngsi.put(
        entity, json={"type": "Place", "location": {"type": "GeoProperty", "value": polygon(bowtie)}}
    )
    assert replaced.status_code == 204, replaced.text
    shape, _, valid = stored_geometry(postgis, "mobile")
    assert valid and shape is not None and shape.startswith("MULTIPOLYGON")  # repaired: two triangles
    assert ngsi.delete(f"{entity}/attrs/location").status_code == 204
    assert stored_geometry(postgis, "mobile") == (None, None, None)


def test_postgis_migration_adds_and_removes_the_geometry(postgis: AppContext, tmp_path: Path) -> None:
    name = f"citybrain_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    fresh = build_context(make_settings(tmp_path, url))
    try:
        upgrade(fresh, "5b7e2c1d9a40")
        now = datetime.now(UTC)
        stored = {"attrs": {LOCATION: [{"type": "GeoProperty", "value": point(MIANYANG)}]}}
        with fresh.db.write_engine.begin() as conn:
            conn.execute(
                insert(Entity),
                [
                    {
                        "tenant": "",
                        "entity_id": "urn:x:1",
                        "type": PLACE,
                        "created_at": now,
                        "modified_at": now,
                        "data": stored,
                    }
                ],
            )
        upgrade(fresh)
        with fresh.db.engine.connect() as conn:
            assert (
                conn.scalar(text("SELECT ST_AsText(location_geometry) FROM context_entity"))
                == "POINT(104.679 31.467)"
            )
            indexes = set(
                conn.scalars(text("SELECT indexname FROM pg_indexes WHERE tablename = 'context_entity'"))
            )
        assert INDEX in indexes and "ix_context_entity_geo" not in indexes
        assert pending_changes(fresh) == []
        cfg = alembic_config(fresh)
        with fresh.db.write_engine.connect() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "5b7e2c1d9a40")
            conn.commit()
        with fresh.db.engine.connect() as conn:
            columns = set(
                conn.scalars(
                    text(
                        "SELECT column_name FROM information_schema.columns WHERE table_name = 'context_entity'"
                    )
                )
            )
            indexes = set(
                conn.scalars(text("SELECT indexname FROM pg_indexes WHERE tablename = 'context_entity'"))
            )
            function = conn.scalar(text("SELECT to_regproc('context_location_geometry')"))
        assert "location_geometry" not in columns and function is None
        assert "ix_context_entity_geo" in indexes and INDEX not in indexes
        upgrade(fresh)  # and up again: the schema is the models' once more
        assert pending_changes(fresh) == []
    finally:
        fresh.db.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
