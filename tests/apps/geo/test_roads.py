"""The road graph of the central city: the packaged roads, the graph built from them, routes."""

from __future__ import annotations

import re
from typing import Any

import networkx as nx
import pytest
from fastapi.testclient import TestClient

from citybrain.apps.geo import roads as road_data
from citybrain.apps.geo import services
from citybrain.core.context import AppContext
from tests.apps.context.conftest import token_for
from tests.conftest import Seeded

CITY_HALL = (104.741, 31.464)  # 绵阳市人民政府, 涪城区
FULE_MOUNTAIN = (104.770, 31.486)  # 富乐山, 游仙区, across the Fu River
GAOXIN = (104.665, 31.446)  # 高新区, 绵兴西路 at 飞云大道
CHENGDU = (104.066, 30.657)


def test_the_packaged_roads(ctx: AppContext) -> None:
    found = services.roads(ctx)
    assert 20 <= len(found) <= 40
    names = {road.name_zh for road in found}
    for name in ("九洲大道", "绵兴东路", "剑南路", "临园路", "跃进路", "长虹大道", "飞云大道", "三江大道"):
        assert name in names
    for name in ("绵州大道", "涪城路", "富乐大桥", "涪江大桥", "三江大桥"):
        assert name in names
    assert {road.road_class for road in found} == {"expressway", "arterial", "secondary"}
    for road in found:
        assert road.name_en and 20 <= road.speed_limit_kmh <= 120 and len(road.coordinates) >= 2
        # every vertex lies in Mianyang's central city (涪城区 or 游仙区)
        for lon, lat in road.coordinates:
            district = services.district_at(ctx, lon, lat)
            assert district is not None and district.code in ("510703", "510704"), (road.id, lon, lat)
    bridges = [road for road in found if road.bridge]
    assert {road.name_zh for road in bridges} == {"富乐大桥", "涪江大桥", "三江大桥", "东方红大桥"}
    # the old bridges over the Fu River join Fucheng to Youxian
    for road in bridges:
        if road.id in ("fule-bridge", "fujiang-bridge"):
            ends = [services.district_at(ctx, *road.coordinates[i]) for i in (0, -1)]
            assert [d.code for d in ends if d] == ["510703", "510704"], road.id


def test_the_graph_joins_roads_at_shared_and_crossing_vertices() -> None:
    network = road_data.build_network(road_data.load_roads())
    graph = network.graph
    assert nx.is_strongly_connected(graph)
    # a junction of three roads: 剑南路, 一环路东段 and 涪江大桥 share (104.749, 31.4615)
    node, distance = network.nearest_node((104.749, 31.4615))
    assert distance < 1
    assert {data["road"] for _, _, data in graph.out_edges(node, data=True)} == {
        "jiannan",
        "ring1-east",
        "fujiang-bridge",
    }


def test_roads_that_cross_without_a_shared_vertex_meet_at_the_crossing() -> None:
    crossing = road_data.parse_roads(
        {
            "features": [
                _road("ew", [(104.70, 31.46), (104.72, 31.46)]),
                _road("ns", [(104.71, 31.45), (104.71, 31.47)]),
                _road("near", [(104.72, 31.46), (104.7300001, 31.46)]),
                _road("apart", [(104.7300601, 31.46), (104.74, 31.46)]),
            ]
        }
    )
    network = road_data.build_network(crossing)
    route = network.route((104.70, 31.46), (104.71, 31.47))
    assert route.road_ids == ["ew", "ns"]
    assert route.coordinates == [(104.70, 31.46), (104.71, 31.46), (104.71, 31.47)]
    # vertices 0.01 m apart are one node; 5.7 m apart too (snapping within 8 m)
    assert network.route((104.70, 31.46), (104.74, 31.46)).road_ids == ["ew", "near", "apart"]


def _road(road_id: str, coordinates: list[tuple[float, float]], **props: Any) -> dict[str, Any]:
    return {
        "type": "Feature",
        "properties": {
            "id": road_id,
            "name_zh": road_id,
            "name_en": road_id,
            "road_class": "arterial",
            "speed_limit_kmh": 36,
            **props,
        },
        "geometry": {"type": "LineString", "coordinates": [list(c) for c in coordinates]},
    }


@pytest.mark.parametrize(
    ("feature", "message"),
    [
        (_road("", [(1, 1), (2, 2)]), "no id"),
        (_road("a", [(1, 1)]), "two or more"),
        (_road("a", [(1, 1), (2, 2)], road_class="lane"), "class"),
        (_road("a", [(1, 1), (2, 2)], speed_limit_kmh=0), "positive"),
        (_road("a", [(1, 1), (2, 2)], speed_limit_kmh="fast"), "number"),
        (_road("a", [(1, 1), ("x", 2)]), "number"),
        (_road("a", [(1, 1), (2, 2)], name_en=""), "English name"),
    ],
)
def test_malformed_road_data_is_refused(feature: dict[str, Any], message: str) -> None:
    with pytest.raises(road_data.RoadDataError, match=message):
        road_data.parse_roads({"features": [feature]})
    with pytest.raises(road_data.RoadDataError, match="duplicate"):
        road_data.parse_roads({"features": [_road("a", [(1, 1), (2, 2)]), _road("a", [(1, 1), (2, 2)])]})


def test_a_route_across_the_river(ctx: AppContext) -> None:
    route = services.route(ctx, CITY_HALL, FULE_MOUNTAIN)
    assert route.roads[0] == "剑南路" and "富乐大桥" in route.roads
    assert route.road_ids[-1] in ("fule", "youxian")
    assert 2_000 < route.meters < 10_000
    # driving at the roads' speed limits
    assert route.meters / route.seconds * 3.6 == pytest.approx(45, abs=8)
    assert route.coordinates[0] == (104.739, 31.462)  # 剑南路 × 跃进路, the junction nearest the city hall
    assert route.start_offset_m < 400 and route.end_offset_m < 1000
    back = services.route(ctx, FULE_MOUNTAIN, CITY_HALL)
    assert back.meters == pytest.approx(route.meters)


def test_current_speeds_change_the_route_and_closed_roads_block_it(ctx: AppContext) -> None:
    fast = services.route(ctx, CITY_HALL, FULE_MOUNTAIN)
    assert "fule-bridge" in fast.road_ids
    services.set_road_speeds(ctx, {"fule-bridge": 5})  # a jam on the bridge
    slow = services.route(ctx, CITY_HALL, FULE_MOUNTAIN)
    assert "fule-bridge" not in slow.road_ids and "fujiang-bridge" in slow.road_ids
    assert slow.seconds > fast.seconds
    assert services.road_speeds(ctx) == {"fule-bridge": 5.0}
    # every bridge over the Fu River closed: Youxian cannot be reached
    services.set_road_speeds(ctx, {"fule-bridge": 0, "fujiang-bridge": 0, "sanjiang-bridge": 0})
    with pytest.raises(services.NoRoute):
        services.route(ctx, CITY_HALL, FULE_MOUNTAIN)
    services.set_road_speeds(ctx, {"fule-bridge": None, "fujiang-bridge": None, "sanjiang-bridge": None})
    assert services.route(ctx, CITY_HALL, FULE_MOUNTAIN).road_ids == fast.road_ids
    with pytest.raises(KeyError, match="no-such-road"):
        services.set_road_speeds(ctx, {"no-such-road": 30})
    with pytest.raises(ValueError, match="non-negative"):
        services.set_road_speeds(ctx, {"jiannan": -1})


def test_a_point_far_from_the_roads_has_no_route(ctx: AppContext) -> None:
    with pytest.raises(services.NoRoute) as raised:
        services.route(ctx, CITY_HALL, CHENGDU)
    assert raised.value.off_graph == "end" and raised.value.distance_m > 80_000


# --- over HTTP --------------------------------------------------------------------------------------


def test_the_route_api(admin_client: TestClient) -> None:
    response = admin_client.get("/api/geo/route?from=104.741,31.464&to=104.770,31.486")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["geometry"]["type"] == "LineString" and len(body["geometry"]["coordinates"]) >= 3
    assert body["roads"][0] == {
        "id": "jiannan",
        "name": "剑南路",
        "name_zh": "剑南路",
        "name_en": "Jiannan Road",
    }
    assert 2_000 < body["meters"] < 10_000 and body["seconds"] > 0
    english = admin_client.get("/api/geo/route?from=104.741,31.464&to=104.770,31.486&lang=en").json()
    assert [road["name"] for road in english["roads"]][:1] == ["Jiannan Road"]
    same = admin_client.get("/api/geo/route?from=104.741,31.464&to=104.7411,31.4641").json()
    assert same["meters"] == 0 and len(same["geometry"]["coordinates"]) == 2 and same["roads"] == []


def test_no_route_is_a_not_found_problem(admin_client: TestClient, ctx: AppContext) -> None:
    far = admin_client.get("/api/geo/route?from=104.741,31.464&to=104.066,30.657&lang=en")
    assert far.status_code == 404 and far.headers["content-type"] == "application/problem+json"
    assert re.fullmatch(
        r"The end lies \d+\.\d km from the nearest main road of the central city\.", far.json()["detail"]
    )
    start = admin_client.get("/api/geo/route?from=104.066,30.657&to=104.741,31.464")
    assert start.status_code == 404 and "起点" in start.json()["detail"]
    services.set_road_speeds(ctx, {"fule-bridge": 0, "fujiang-bridge": 0, "sanjiang-bridge": 0})
    closed = admin_client.get("/api/geo/route?from=104.741,31.464&to=104.770,31.486&lang=en")
    assert closed.status_code == 404
    assert closed.json()["detail"] == "No open road joins the two points."


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?from=104.74,31.46",
        "?to=104.74,31.46",
        "?from=104.74&to=104.77,31.48",
        "?from=104.74,31.46,0&to=104.77,31.48",
        "?from=a,b&to=104.77,31.48",
        "?from=104.74,31.46&to=200,31.48",
        "?from=104.74,95&to=104.77,31.48",
        "?from=nan,31.46&to=104.77,31.48",
        "?from=&to=",
    ],
)
def test_bad_route_input_gets_a_problem(admin_client: TestClient, query: str) -> None:
    response = admin_client.get("/api/geo/route" + query)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"


def test_routes_need_the_map_permission(client: TestClient, ctx: AppContext, seeded: Seeded) -> None:
    assert client.get("/api/geo/route?from=104.741,31.464&to=104.770,31.486").status_code == 401
    client.headers["Authorization"] = f"Bearer {token_for(ctx, seeded, ['context.entity.read'])}"
    assert client.get("/api/geo/route?from=104.741,31.464&to=104.770,31.486").status_code == 403
