"""Tests of geo-queries: validation, each georel on points, lines and polygons, distances and prefilter boxes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from citybrain.apps.context.geo import (
    GeoQuery,
    GeoQueryError,
    distance_m,
    geometry_bbox,
    haversine_m,
    parse_geoquery,
)

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
