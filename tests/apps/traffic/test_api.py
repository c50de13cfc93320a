"""The traffic REST API: the index now, segments, recorded values, calculations, and bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from citybrain.apps.traffic import services
from citybrain.core.context import AppContext
from citybrain.core.permissions import SYSTEM
from citybrain.sdk import utcnow
from tests.apps.context.conftest import token_for
from tests.apps.traffic.conftest import add_detector, read, segment
from tests.conftest import Seeded

PROBLEM = "application/problem+json"


def _problem(response: object, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    assert response.headers["content-type"].startswith(PROBLEM)  # type: ignore[attr-defined]
    body: dict[str, object] = response.json()  # type: ignore[attr-defined]
    assert body["status"] == status
    return body


def test_the_index_now_with_grades_and_colours(reader: TestClient, started: AppContext) -> None:
    det = add_detector(started, "a", segment(started, "jiuzhou-2"))
    read(started, det, [(utcnow() - timedelta(seconds=20), 15.0, 600.0)])  # 25 % of 60 km/h
    body = reader.get("/api/traffic/index").json()
    assert body["city"]["code"] == "510700"
    assert body["city"]["covered"] == 1
    # DTP = 0.75 → TPI 8 + 2 × 0.05 / 0.3
    assert body["city"]["tpi"] == pytest.approx(8 + 2 * 0.05 / 0.3, abs=0.01)
    assert body["city"]["grade"]["name_zh"] == "严重拥堵"
    assert body["city"]["grade"]["color"] == "#8e1b1b"
    assert body["districts"][0]["code"] == "510703"
    english = reader.get("/api/traffic/index", headers={"Accept-Language": "en"}).json()
    assert english["city"]["grade"]["name_en"] == "Severe congestion"


def test_segments_sorted_by_tti_and_by_district(reader: TestClient, started: AppContext) -> None:
    slow = add_detector(started, "slow", segment(started, "jiuzhou-2"))
    fast = add_detector(started, "fast", segment(started, "dongjin-4"))
    now = utcnow()
    read(started, slow, [(now - timedelta(seconds=20), 20.0, 600.0)])
    read(started, fast, [(now - timedelta(seconds=20), 48.0, 600.0)])
    rows = reader.get("/api/traffic/segments", params={"sort": "-tti"}).json()
    assert [r["id"] for r in rows[:2]] == ["jiuzhou-2", "dongjin-4"]
    assert rows[0]["tti"] == pytest.approx(3.0)
    assert rows[0]["grade"]["level"] == 4  # 20/60 → 30 % < V ≤ 40 %
    assert rows[1]["grade"]["level"] == 1
    assert rows[2]["tti"] is None
    ascending = reader.get("/api/traffic/segments", params={"sort": "tti"}).json()
    assert [r["id"] for r in ascending[:2]] == ["dongjin-4", "jiuzhou-2"]
    youxian = reader.get("/api/traffic/segments", params={"district": "510704"}).json()
    assert {r["district"] for r in youxian} == {"510704"}
    assert "dongjin-4" in {r["id"] for r in youxian}
    features = reader.get("/api/traffic/segments.geojson", params={"district": "510703"})
    assert features.headers["content-type"].startswith("application/geo+json")
    lines = {f["id"]: f for f in features.json()["features"]}
    assert lines["jiuzhou-2"]["geometry"]["type"] == "LineString"
    assert lines["jiuzhou-2"]["properties"]["color"] == "#e8590c"


def test_history_of_the_day(reader: TestClient, started: AppContext) -> None:
    at = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
    det = add_detector(started, "h", segment(started, "jiuzhou-2"))
    read(started, det, [(at - timedelta(minutes=1), 30.0, 600.0)])
    assert services.record(started, at) == 2
    body = reader.get(
        "/api/traffic/history",
        params={"area": "510703", "start": "2026-11-20T08:00:00+08:00", "end": "2026-11-20T12:00:00+08:00"},
    ).json()
    assert body["area"] == "510703"
    assert [p["tpi"] for p in body["points"]] == [4.0]
    assert body["points"][0]["grade"]["level"] == 3
    assert services.history(started, SYSTEM, "510703", at, at + timedelta(minutes=5))[0].tpi == 4.0
    today = reader.get("/api/traffic/history").json()
    assert today["area"] == "510700"
    assert datetime.fromisoformat(today["end"]) - datetime.fromisoformat(today["start"]) <= timedelta(days=1)


def test_evaluate_computes_the_standard_indicators(reader: TestClient) -> None:
    body = reader.post(
        "/api/traffic/evaluate",
        json={
            "segments": [
                {"length_m": 1000, "speed_kmh": 30, "free_flow_kmh": 60, "flow_vph": 1000},
                {"length_m": 2000, "speed_kmh": 50, "free_flow_kmh": 50, "flow_vph": 250},
            ]
        },
    ).json()
    assert body["weighting"] == "vkt"
    assert body["dtp"] == pytest.approx(1 / 3, abs=1e-4)
    assert body["tpi"] == pytest.approx(2 + (1 / 3 - 0.3) / 0.2 * 2, abs=0.01)
    assert [s["grade"]["level"] for s in body["segments"]] == [3, 1]


@pytest.mark.parametrize(
    "segment_input",
    [
        {"length_m": 0, "speed_kmh": 30, "free_flow_kmh": 60},
        {"length_m": 100, "speed_kmh": -3, "free_flow_kmh": 60},
        {"length_m": 100, "speed_kmh": 30, "free_flow_kmh": 0},
        {"length_m": 100, "speed_kmh": 30, "free_flow_kmh": 60, "flow_vph": -1},
    ],
)
def test_evaluate_refuses_bad_segments(reader: TestClient, segment_input: dict[str, float]) -> None:
    body = _problem(
        reader.post(
            "/api/traffic/evaluate",
            json={"segments": [{"length_m": 500, "speed_kmh": 40, "free_flow_kmh": 50}, segment_input]},
        ),
        422,
    )
    assert body["pointer"] == "/segments/1"
    assert "Segment 2" in str(body["detail"]) or "路段" in str(body["detail"])


def test_evaluate_refuses_nan_and_empty_bodies(reader: TestClient) -> None:
    nan = reader.post(
        "/api/traffic/evaluate",
        content=b'{"segments": [{"length_m": 100, "speed_kmh": NaN, "free_flow_kmh": 60}]}',
        headers={"Content-Type": "application/json"},
    )
    assert 400 <= nan.status_code < 500
    _problem(reader.post("/api/traffic/evaluate", json={"segments": []}), 422)
    _problem(reader.post("/api/traffic/evaluate", json={"segments": [{"length_m": 1}]}), 422)


def test_bad_districts_and_windows(reader: TestClient) -> None:
    _problem(reader.get("/api/traffic/segments", params={"district": "999999"}), 404)
    _problem(reader.get("/api/traffic/segments.geojson", params={"district": "510799"}), 404)
    _problem(reader.get("/api/traffic/history", params={"area": "123456"}), 404)
    _problem(reader.get("/api/traffic/segments", params={"sort": "speed"}), 422)
    window = {"area": "510703", "start": "2026-11-20T12:00:00+08:00", "end": "2026-11-20T08:00:00+08:00"}
    _problem(reader.get("/api/traffic/history", params=window), 400)
    long = {"start": "2026-09-01T00:00:00+08:00", "end": "2026-11-20T00:00:00+08:00"}
    _problem(reader.get("/api/traffic/history", params=long), 400)
    naive = {"start": "2026-11-20T08:00:00", "end": "2026-11-20T12:00:00"}
    _problem(reader.get("/api/traffic/history", params=naive), 400)
    _problem(reader.get("/api/traffic/history", params={"start": "yesterday"}), 422)


def test_the_api_needs_the_read_permission(client: TestClient, started: AppContext, seeded: Seeded) -> None:
    _problem(client.get("/api/traffic/index"), 401)
    token = token_for(started, seeded, ["geo.map.read"])
    client.headers["Authorization"] = f"Bearer {token}"
    for path in ("/api/traffic/index", "/api/traffic/segments", "/api/traffic/history"):
        _problem(client.get(path), 403)
    _problem(
        client.post(
            "/api/traffic/evaluate", json={"segments": [{"length_m": 1, "speed_kmh": 1, "free_flow_kmh": 1}]}
        ),
        403,
    )
