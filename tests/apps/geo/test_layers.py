"""Map layers: declared by apps, discovered for undeclared located types, their features over HTTP."""

from __future__ import annotations

import json
import re
import time
from dataclasses import replace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from citybrain.apps.geo import services
from citybrain.apps.geo.layers import Layer, Swatch
from citybrain.core.apps import AppSpec, discover
from citybrain.core.asgi import create_app
from citybrain.core.context import AppContext
from citybrain.core.errors import Forbidden
from citybrain.core.permissions import SYSTEM, Actor
from citybrain.core.settings import Settings
from tests.apps.context.conftest import token_for
from tests.apps.geo.conftest import located, upsert
from tests.conftest import Seeded

LAYER_APP = replace(
    AppSpec(
        label="geolayers", title="Layer test app", description="", layer="application", requires=("geo",)
    ),
    package="tests.apps.geo.layerapp",
)
OBSERVED = "2026-11-24T02:00:00Z"


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    """The platform's base apps and a further app that declares two layers (no other app's layers)."""
    return create_app(settings, [*base_apps(), LAYER_APP])


def base_apps() -> list[AppSpec]:
    """The apps the geo app needs, and itself."""
    return [spec for spec in discover() if spec.label in ("identity", "context", "geo")]


def gauge(
    key: str, lon: float, lat: float, river: str, level: float, status: str = "normal"
) -> dict[str, object]:
    """A river gauge entity."""
    return located(
        f"urn:ngsi-ld:WaterLevelObserved:{key}",
        "WaterLevelObserved",
        lon,
        lat,
        f"{river}{key}水位站",
        waterLevel={"type": "Property", "value": level, "unitCode": "MTR", "observedAt": OBSERVED},
        riverName=river,
        status=status,
        warningLevel=3.5,
    )


@pytest.fixture
def city(ctx: AppContext) -> None:
    """Gauges on the Fu and Anchang rivers, two cameras, street lights and an unlocated sensor."""
    upsert(
        ctx,
        [
            gauge("fc-1", 104.752, 31.468, "涪江", 2.1),  # 涪城区
            gauge("yx-1", 104.775, 31.480, "涪江", 2.6, "warning"),  # 游仙区
            gauge("az-1", 104.567, 31.535, "安昌江", 1.4),  # 安州区
            gauge("jy-1", 104.745, 31.778, "涪江", 1.9),  # 江油市
            located("urn:ngsi-ld:Camera:c1", "Camera", 104.741, 31.464, "市政府路口", status="online"),
            located("urn:ngsi-ld:Camera:c2", "Camera", 104.65, 31.448, "石桥铺路口", status="offline"),
            located(
                "urn:ngsi-ld:StreetLight:l1", "StreetLight", 104.73, 31.47, "临园路路灯", powerState="on"
            ),
            located(
                "urn:ngsi-ld:StreetLight:l2", "StreetLight", 105.09, 31.095, "三台路灯", powerState="off"
            ),
            {
                "id": "urn:ngsi-ld:Building:b1",
                "type": "Building",
                "name": {"type": "Property", "value": "无位置"},
            },
        ],
    )


def client_with(client: TestClient, ctx: AppContext, seeded: Seeded, scopes: list[str]) -> TestClient:
    """The client with an API token limited to the scopes."""
    client.headers["Authorization"] = f"Bearer {token_for(ctx, seeded, scopes)}"
    return client


def ids(response_json: list[dict[str, object]]) -> list[object]:
    """The ids of a list of layers."""
    return [layer["id"] for layer in response_json]


# --- the Layer declaration --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"id": "Bad Id"}, "lowercase"),
        ({"id": ""}, "lowercase"),
        ({"entity_type": " "}, "entity type"),
        ({"color": "red"}, "colour"),
        ({"icon": "abc"}, "icon"),
        ({"popup": ("ok", "not ok")}, "attribute name"),
        ({"filters": ("bbox",)}, "cannot be a filter"),
        ({"popup": ["name"]}, "tuples"),
        ({"color_by": "status"}, "coloured by 'status' but has no palette"),
        ({"palette": (Swatch("ok", "#2e9d5b", "正常", "OK"),)}, "has a palette but no color_by"),
        (
            {"color_by": "not ok", "palette": (Swatch("ok", "#2e9d5b", "正常", "OK"),)},
            "not an attribute name",
        ),
        ({"color_by": "status", "palette": (Swatch("ok", "green", "正常", "OK"),)}, "'green' of 'ok' is not"),
        ({"color_by": "status", "palette": (Swatch("ok", "#2e9d5b", " ", "OK"),)}, "needs both labels"),
        (
            {
                "color_by": "status",
                "palette": (Swatch("a", "#2e9d5b", "甲", "A"), Swatch("a", "#d32f2f", "乙", "B")),
            },
            "appears twice",
        ),
        ({"color_by": "status", "palette": [Swatch("ok", "#2e9d5b", "正常", "OK")]}, "tuple of Swatch"),
        ({"color_by": "status", "palette": (("ok", "#2e9d5b"),)}, "tuple of Swatch"),
        (
            {"source": "roads", "color_by": "road_class", "palette": (Swatch("a", "#2e9d5b", "甲", "A"),)},
            "only a layer of entities",
        ),
    ],
)
def test_a_malformed_layer_is_refused(changes: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"id": "ok", "entity_type": "Thing", "title_zh": "物", "title_en": "Things"}
    with pytest.raises(ValueError, match=message):
        Layer(**{**fields, **changes})  # type: ignore[arg-type]


def test_a_layer_coloured_without_a_palette_stops_the_start(settings: Settings) -> None:
    bad = replace(LAYER_APP, label="geobadpalette", package="tests.apps.geo.badpaletteapp")
    app = create_app(settings, [*base_apps(), bad])
    refused = pytest.raises(ValueError, match="layer 'bins' is coloured by 'status' but has no palette")
    with refused, TestClient(app):
        pass


def test_two_apps_cannot_declare_one_layer_id(settings: Settings) -> None:
    from citybrain.core.platform import build_context

    twin = replace(LAYER_APP, label="geolayerstwin", package="tests.apps.geo.twinapp")
    ctx = build_context(settings, [*base_apps(), LAYER_APP, twin])
    with pytest.raises(ValueError, match="river-gauges"):
        services.layers(ctx, SYSTEM)


# --- discovery --------------------------------------------------------------------------------------


def test_layers_are_declared_ones_then_one_per_undeclared_located_type(
    admin_client: TestClient, ctx: AppContext, city: None
) -> None:
    response = admin_client.get("/api/geo/layers")
    assert response.status_code == 200
    layers = response.json()
    # declared first (roads by geo, then the test app's), then undeclared located types by name;
    # Building has no location, so no layer
    assert ids(layers) == ["roads", "river-gauges", "cameras", "type-streetlight"]
    roads, gauges, cameras, lights = layers
    assert roads["source"] == "roads" and roads["count"] == 26 and roads["title"] == "主干道路"
    assert gauges == {
        "id": "river-gauges",
        "title": "河道水位站",
        "title_zh": "河道水位站",
        "title_en": "River gauges",
        "source": "entities",
        "entity_type": "WaterLevelObserved",
        "color": "#00838f",
        "icon": "水",
        "popup": ["waterLevel", "riverName"],
        "filters": ["riverName", "status"],
        "color_by": "status",
        "palette": [
            {
                "value": "normal",
                "color": "#2e9d5b",
                "label": "正常",
                "label_zh": "正常",
                "label_en": "Normal",
            },
            {
                "value": "warning",
                "color": "#d32f2f",
                "label": "超警戒",
                "label_zh": "超警戒",
                "label_en": "Above warning level",
            },
        ],
        "permission": "context.entity.read",
        "app": "geolayers",
        "count": 4,
        "features": "/api/geo/layers/river-gauges/features",
    }
    assert cameras["count"] == 2 and cameras["permission"] == "geolayers.camera.read"
    assert cameras["color_by"] is None and cameras["palette"] == []
    assert roads["color_by"] is None and lights["color_by"] is None and lights["palette"] == []
    assert lights["app"] is None and lights["entity_type"] == "StreetLight" and lights["count"] == 2
    assert lights["title"] == lights["title_en"] == "StreetLight" and lights["icon"] == "S"
    assert lights["color"].startswith("#") and lights["permission"] == "context.entity.read"
    english = admin_client.get("/api/geo/layers?lang=en").json()
    assert [layer["title"] for layer in english] == ["Main roads", "River gauges", "Cameras", "StreetLight"]
    assert [swatch["label"] for swatch in english[1]["palette"]] == ["Normal", "Above warning level"]


def test_the_map_page_carries_the_palette_and_its_legend(admin_client: TestClient) -> None:
    html = admin_client.get("/geo/map").text
    legend = html.split('data-legend="river-gauges"', 1)[1].split("</ul>", 1)[0]
    assert 'aria-label="河道水位站 图例"' in html
    assert re.findall(
        r'<li data-value="([^"]*)"><span class="geo-key" style="--swatch: (#\w+)"></span>([^<]+)</li>', legend
    ) == [
        ("normal", "#2e9d5b", "正常"),
        ("warning", "#d32f2f", "超警戒"),
        ("", "#00838f", "其他或无数值"),
    ]
    assert 'data-legend="cameras"' not in html  # a layer of one colour has no legend
    config = json.loads(html.split('id="geo-map-config">', 1)[1].split("</script>", 1)[0])
    gauges = next(layer for layer in config["layers"] if layer["id"] == "river-gauges")
    assert gauges["color_by"] == "status" and [s["value"] for s in gauges["palette"]] == ["normal", "warning"]
    english = admin_client.get("/geo/map?lang=en").text
    assert "Above warning level" in english and "Other or no value" in english


def test_without_entities_only_the_declared_layers_are_offered(admin_client: TestClient) -> None:
    layers = admin_client.get("/api/geo/layers").json()
    assert ids(layers) == ["roads", "river-gauges", "cameras"]
    assert [layer["count"] for layer in layers] == [26, 0, 0]


def test_a_type_gets_a_default_layer_once_one_of_its_entities_has_a_location(
    admin_client: TestClient, ctx: AppContext
) -> None:
    upsert(
        ctx, [{"id": "urn:ngsi-ld:Bin:1", "type": "Bin", "fillingLevel": {"type": "Property", "value": 0.3}}]
    )
    assert "type-bin" not in ids(admin_client.get("/api/geo/layers").json())
    upsert(ctx, [located("urn:ngsi-ld:Bin:2", "Bin", 104.74, 31.46, "垃圾桶", fillingLevel=0.8)])
    layer = next(item for item in admin_client.get("/api/geo/layers").json() if item["id"] == "type-bin")
    assert layer["count"] == 2
    features = admin_client.get("/api/geo/layers/type-bin/features").json()["features"]
    # a default layer's popup shows the entity's own attributes
    assert [f["properties"]["fillingLevel"] for f in features] == [0.8]


def test_the_layer_list_shows_only_what_the_actor_may_see(
    client: TestClient, ctx: AppContext, seeded: Seeded, city: None
) -> None:
    map_only = client_with(client, ctx, seeded, ["geo.map.read"])
    assert ids(map_only.get("/api/geo/layers").json()) == ["roads"]
    cameras = client_with(client, ctx, seeded, ["geo.map.read", "geolayers.camera.read"])
    assert ids(cameras.get("/api/geo/layers").json()) == ["roads", "cameras"]
    entities = client_with(client, ctx, seeded, ["geo.map.read", "context.entity.read"])
    assert ids(entities.get("/api/geo/layers").json()) == ["roads", "river-gauges", "type-streetlight"]
    no_map = client_with(client, ctx, seeded, ["context.entity.read"])
    response = no_map.get("/api/geo/layers")
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    del client.headers["Authorization"]
    assert client.get("/api/geo/layers").status_code == 401


# --- features ---------------------------------------------------------------------------------------


def test_features_carry_the_popup_attributes_with_their_time_and_district(
    admin_client: TestClient, city: None
) -> None:
    response = admin_client.get("/api/geo/layers/river-gauges/features")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/geo+json"
    body = response.json()
    assert body["type"] == "FeatureCollection" and body["layer"] == "river-gauges"
    assert body["numberReturned"] == 4 and body["truncated"] is False
    first = body["features"][0]
    assert first == {
        "type": "Feature",
        "id": "urn:ngsi-ld:WaterLevelObserved:az-1",
        "geometry": {"type": "Point", "coordinates": [104.567, 31.535]},
        "properties": {
            "id": "urn:ngsi-ld:WaterLevelObserved:az-1",
            "type": "WaterLevelObserved",
            "name": "安昌江az-1水位站",
            "waterLevel": 1.4,
            "riverName": "安昌江",
            "status": "normal",  # not in the popup, but the layer is coloured by it
            "observedAt": {"waterLevel": "2026-11-24T02:00:00.000000Z"},
            "unitCode": {"waterLevel": "MTR"},
            "district": "510705",
        },
    }
    districts = {f["id"].rsplit(":", 1)[1]: f["properties"]["district"] for f in body["features"]}
    assert districts == {"az-1": "510705", "fc-1": "510703", "jy-1": "510781", "yx-1": "510704"}


def test_features_in_a_box_a_district_and_up_to_a_limit(admin_client: TestClient, city: None) -> None:
    def names(query: str) -> list[str]:
        response = admin_client.get("/api/geo/layers/river-gauges/features" + query)
        assert response.status_code == 200, response.text
        return [f["id"].rsplit(":", 1)[1] for f in response.json()["features"]]

    assert names("?bbox=104.70,31.40,104.80,31.50") == ["fc-1", "yx-1"]
    assert names("?bbox=104.0,30.0,104.1,30.1") == []
    assert names("?district=510704") == ["yx-1"]
    assert names("?district=510703&bbox=104.70,31.40,104.80,31.50") == ["fc-1"]
    assert names("?district=510727") == []
    limited = admin_client.get("/api/geo/layers/river-gauges/features?limit=3").json()
    assert limited["numberReturned"] == 3 and limited["truncated"] is True
    assert names("?limit=4") == ["az-1", "fc-1", "jy-1", "yx-1"]


def test_features_filtered_by_the_declared_attributes(admin_client: TestClient, city: None) -> None:
    def names(query: str) -> list[str]:
        response = admin_client.get("/api/geo/layers/river-gauges/features" + query)
        assert response.status_code == 200, response.text
        return [f["id"].rsplit(":", 1)[1] for f in response.json()["features"]]

    assert names("?riverName=安昌江") == ["az-1"]
    assert names("?status=warning") == ["yx-1"]
    assert names("?riverName=涪江&status=normal") == ["fc-1", "jy-1"]
    assert names("?riverName=涪江,安昌江&district=510703") == ["fc-1"]
    assert names('?riverName="quoted"') == []


def test_the_road_layer_has_the_roads_as_lines(admin_client: TestClient) -> None:
    body = admin_client.get("/api/geo/layers/roads/features").json()
    assert body["numberReturned"] == 26
    bridge = next(f for f in body["features"] if f["id"] == "fule-bridge")
    assert bridge["geometry"]["type"] == "LineString"
    assert bridge["properties"] == {
        "id": "fule-bridge",
        "name": "富乐大桥",
        "name_zh": "富乐大桥",
        "name_en": "Fule Bridge",
        "road_class": "arterial",
        "speed_limit_kmh": 40,
        "speed_kmh": 40,
        "bridge": True,
    }
    in_youxian = admin_client.get("/api/geo/layers/roads/features?district=510704").json()["features"]
    assert {"fule-bridge", "jianmen", "youxian"} <= {f["id"] for f in in_youxian}
    assert "mianxing-west" not in {f["id"] for f in in_youxian}
    outside = admin_client.get("/api/geo/layers/roads/features?bbox=105.0,31.0,105.1,31.1").json()
    assert outside["features"] == []


def test_features_of_lines_and_areas(admin_client: TestClient, ctx: AppContext) -> None:
    area = {
        "type": "Polygon",
        "coordinates": [
            [[104.73, 31.46], [104.74, 31.46], [104.74, 31.47], [104.73, 31.47], [104.73, 31.46]]
        ],
    }
    upsert(
        ctx,
        [
            {
                "id": "urn:ngsi-ld:Park:renmin",
                "type": "Park",
                "name": {
                    "type": "LanguageProperty",
                    "languageMap": {"zh": "人民公园", "en": "People's Park"},
                },
                "location": {"type": "GeoProperty", "value": area},
            }
        ],
    )
    feature = admin_client.get("/api/geo/layers/type-park/features").json()["features"][0]
    assert feature["geometry"] == area
    assert feature["properties"]["district"] == "510703" and feature["properties"]["name"] == "人民公园"
    english = admin_client.get("/api/geo/layers/type-park/features?lang=en").json()
    assert english["features"][0]["properties"]["name"] == "People's Park"
    assert admin_client.get("/api/geo/layers/type-park/features?district=510704").json()["features"] == []


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        ("?bbox=1,2,3", "bbox must be"),
        ("?bbox=a,b,c,d", "must be a number"),
        ("?bbox=104.8,31.4,104.7,31.5", "minLon < maxLon"),
        ("?bbox=104.7,31.5,104.8,31.4", "minLat < maxLat"),
        ("?bbox=104.7,31.4,190,31.5", "from -180 to 180"),
        ("?bbox=nan,31.4,104.8,31.5", "from -180 to 180"),
        ("?bbox=", "bbox must be"),
        ("?limit=0", "limit must be from 1"),
        ("?limit=-5", "whole number"),
        ("?limit=ten", "whole number"),
        ("?limit=1.5", "whole number"),
        ("?limit=50001", "limit must be from 1 to 50000"),
        ("?district=510799", "not a district"),
        ("?district=abc", "not a district"),
        ("?colour=red", "cannot be filtered by colour"),
        ("?status=", "comma-separated values"),
        ("?status=" + ",".join(str(n) for n in range(21)), "comma-separated values"),
    ],
)
def test_bad_feature_queries_get_a_problem(admin_client: TestClient, query: str, detail: str) -> None:
    separator = "&" if "?" in query else "?"
    response = admin_client.get(f"/api/geo/layers/river-gauges/features{query}{separator}lang=en")
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert detail in response.json()["detail"]


def test_a_problem_is_translated(admin_client: TestClient) -> None:
    response = admin_client.get("/api/geo/layers/river-gauges/features?limit=0")
    assert response.json()["detail"] == "limit 必须在 1 到 50000 之间。"


def test_the_road_layer_takes_no_attribute_filter(admin_client: TestClient) -> None:
    response = admin_client.get("/api/geo/layers/roads/features?status=x&lang=en")
    assert response.status_code == 400
    assert response.json()["detail"] == "Layer roads cannot be filtered by status; only by district."


def test_feature_permissions(client: TestClient, ctx: AppContext, seeded: Seeded, city: None) -> None:
    assert client.get("/api/geo/layers/river-gauges/features").status_code == 401
    map_only = client_with(client, ctx, seeded, ["geo.map.read"])
    assert map_only.get("/api/geo/layers/roads/features").status_code == 200
    denied = map_only.get("/api/geo/layers/river-gauges/features")
    assert denied.status_code == 403 and "context.entity.read" in denied.json()["detail"]
    assert map_only.get("/api/geo/layers/cameras/features").status_code == 403
    assert map_only.get("/api/geo/layers/type-streetlight/features").status_code == 403
    # the layer's own permission is enough: the entities are read for the actor by the geo app
    cameras = client_with(client, ctx, seeded, ["geo.map.read", "geolayers.camera.read"])
    body = cameras.get("/api/geo/layers/cameras/features").json()
    assert [f["properties"]["status"] for f in body["features"]] == ["online", "offline"]
    no_map = client_with(client, ctx, seeded, ["context.entity.read"])
    assert no_map.get("/api/geo/layers/river-gauges/features").status_code == 403
    missing = no_map.get("/api/geo/layers/nothing-here/features")
    assert missing.status_code == 403  # map readers only learn which layers exist
    reader = client_with(client, ctx, seeded, ["geo.map.read", "context.entity.read"])
    unknown = reader.get("/api/geo/layers/nothing-here/features")
    assert unknown.status_code == 404 and unknown.headers["content-type"] == "application/problem+json"
    assert reader.get("/api/geo/layers/type-nothing/features").status_code == 404


def test_ten_thousand_features_in_one_response(admin_client: TestClient, ctx: AppContext) -> None:
    entities = [
        located(
            f"urn:ngsi-ld:StreetLight:n{i:05d}",
            "StreetLight",
            104.62 + (i % 100) * 0.0017,
            31.40 + (i // 100) * 0.0012,
            f"路灯{i}",
            powerState="on",
        )
        for i in range(10_000)
    ]
    for start in range(0, len(entities), 2500):
        upsert(ctx, entities[start : start + 2500])
    admin_client.get("/api/geo/layers/type-streetlight/features?limit=1")  # boundaries loaded
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        response = admin_client.get("/api/geo/layers/type-streetlight/features?limit=10000")
        timings.append(time.perf_counter() - started)
    body = response.json()
    assert body["numberReturned"] == 10_000 and body["truncated"] is False
    assert len({f["id"] for f in body["features"]}) == 10_000
    print({"features": 10_000, "best_s": round(min(timings), 3), "bytes": len(response.content)})
    assert min(timings) < 5  # a loose bound; the figure is printed


def test_services_read_layers_for_an_actor(ctx: AppContext, city: None) -> None:
    nobody = Actor(kind="user", id=99, username="nobody")
    with pytest.raises(Forbidden, match=r"geo\.map\.read"):
        services.layers(ctx, nobody)
    reader = Actor(kind="user", id=98, username="reader", grants={"geo.map.read": frozenset({1})})
    assert [m.id for m in services.layers(ctx, reader)] == ["roads"]
