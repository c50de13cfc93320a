"""The traffic map layer: road segments published as RoadSegment entities, drawn and filtered by grade."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from citybrain.apps.context import services as context
from citybrain.apps.traffic import services, tpi
from citybrain.core.context import AppContext
from citybrain.core.permissions import SYSTEM
from tests.apps.context.conftest import token_for
from tests.apps.traffic.conftest import add_detector, read, segment
from tests.conftest import Seeded

NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)


def test_segments_are_published_and_drawn_by_grade(
    client: TestClient, started: AppContext, seeded: Seeded
) -> None:
    slow = add_detector(started, "slow", segment(started, "jiuzhou-2"))
    fast = add_detector(started, "fast", segment(started, "dongjin-4"))
    read(started, slow, [(NOW - timedelta(minutes=1), 12.0, 900.0)])  # 20 % of 60: 严重拥堵
    read(started, fast, [(NOW - timedelta(minutes=1), 49.0, 300.0)])  # 98 % of 50: 畅通
    services.record(started, NOW)
    stored = context.get_entity(started, SYSTEM, "", "urn:ngsi-ld:RoadSegment:jiuzhou-2")
    assert [t.rsplit("/", 1)[-1] for t in stored["type"]] == ["RoadSegment"]
    token = token_for(started, seeded, ["geo.map.read", "traffic.index.read"])
    client.headers["Authorization"] = f"Bearer {token}"
    layers = {layer["id"]: layer for layer in client.get("/api/geo/layers").json()}
    assert layers["traffic-segments"]["app"] == "traffic"
    assert layers["traffic-segments"]["count"] == len(services.segments(started))
    # drawn in the colour of the grade, green to dark red; grey without a current speed
    assert layers["traffic-segments"]["color_by"] == "trafficGrade"
    assert layers["traffic-segments"]["color"] == "#9aa8b6"
    assert [(s["value"], s["color"], s["label"]) for s in layers["traffic-segments"]["palette"]] == [
        ("1", "#2e9d5b", "畅通"),
        ("2", "#9ccc3d", "基本畅通"),
        ("3", "#f2c12e", "轻度拥堵"),
        ("4", "#e8590c", "中度拥堵"),
        ("5", "#8e1b1b", "严重拥堵"),
    ]
    assert [s["label_en"] for s in layers["traffic-segments"]["palette"]] == [g.name_en for g in tpi.GRADES]
    body = client.get("/api/geo/layers/traffic-segments/features").json()
    by_id = {f["id"]: f for f in body["features"]}
    jiuzhou = by_id["urn:ngsi-ld:RoadSegment:jiuzhou-2"]
    assert jiuzhou["geometry"]["type"] == "LineString"
    assert jiuzhou["properties"]["trafficGradeName"] == "严重拥堵"
    assert jiuzhou["properties"]["travelTimeIndex"] == 5.0
    assert jiuzhou["properties"]["trafficGrade"] == 5  # what the map colours it by
    assert by_id["urn:ngsi-ld:RoadSegment:dongjin-4"]["properties"]["trafficGrade"] == 1
    # a segment without a reading carries no indicators (the map draws it in the layer's grey)
    assert "trafficGradeName" not in by_id["urn:ngsi-ld:RoadSegment:jiuzhou-1"]["properties"]
    assert "trafficGrade" not in by_id["urn:ngsi-ld:RoadSegment:jiuzhou-1"]["properties"]
    severe = client.get("/api/geo/layers/traffic-segments/features", params={"trafficGrade": "5"}).json()
    assert [f["id"] for f in severe["features"]] == ["urn:ngsi-ld:RoadSegment:jiuzhou-2"]
    english = client.get(
        "/api/geo/layers/traffic-segments/features", params={"trafficGrade": "1", "lang": "en"}
    )
    assert [f["properties"]["trafficGradeName"] for f in english.json()["features"]] == ["Free flow"]
    # the next interval replaces the state: jiuzhou-2 frees up
    read(started, slow, [(NOW + timedelta(minutes=4), 59.0, 900.0)])
    services.record(started, NOW + timedelta(minutes=5))
    again = client.get("/api/geo/layers/traffic-segments/features", params={"trafficGrade": "5"}).json()
    assert again["features"] == []


def test_the_layer_needs_the_traffic_permission(
    client: TestClient, started: AppContext, seeded: Seeded
) -> None:
    token = token_for(started, seeded, ["geo.map.read", "context.entity.read"])
    client.headers["Authorization"] = f"Bearer {token}"
    assert "traffic-segments" not in {layer["id"] for layer in client.get("/api/geo/layers").json()}
    assert client.get("/api/geo/layers/traffic-segments/features").status_code == 403
