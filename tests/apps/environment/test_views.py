"""The air-quality pages: the city now with its trend and the station table, a station's day, permissions."""

from __future__ import annotations

import json
import re
from datetime import UTC, timedelta
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from citybrain.core.context import AppContext
from citybrain.sdk import utcnow
from tests.apps.environment.conftest import CITY_HALL, FULESHAN, GAOXIN, add_station, read, station_id

HTML = {"Accept": "text/html"}


def page(client: TestClient, path: str, lang: str = "zh_CN") -> str:
    """A page's HTML in a language (it must answer 200)."""
    sep = "&" if "?" in path else "?"
    response = client.get(f"{path}{sep}lang={lang}", headers=HTML)
    assert response.status_code == 200, response.text[:2000]
    return response.text


@pytest.fixture
def stations(ctx: AppContext) -> list[str]:
    """Three stations with readings in the last two complete hours."""
    ids = [
        add_station(ctx, "aq-a", "市政府", CITY_HALL),
        add_station(ctx, "aq-b", "高新区", GAOXIN),
        add_station(ctx, "aq-c", "富乐山", FULESHAN),
    ]
    end = utcnow().astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    base = {"no2": 30, "so2": 8, "o3": 60, "co": 0.6}
    # PM2.5 85 → 123 (轻度污染), 160 → 200 + 10/100 × 100 = 210 (重度污染), 20 → 29 (优)
    for entity_id, pm25 in zip(ids, (85, 160, 20), strict=True):
        read(
            ctx,
            entity_id,
            [
                (end - timedelta(minutes=90), {"pm25": pm25 / 2, "pm10": 40, **base}),
                (end - timedelta(minutes=30), {"pm25": pm25, "pm10": 40, **base}),
            ],
        )
    return ids


def test_overview(admin_client: TestClient, stations: list[str]) -> None:
    html = page(admin_client, "/environment")
    assert "空气质量" in html
    # the city: PM2.5 (85+160+20)/3 = 88.3 → 88 → 100 + 28/55 × 50 = 125.5 → 126, 轻度污染, orange
    card = html.split('class="card aqi-card"', 1)[1].split("</section>", 1)[0]
    assert 'data-aqi="126"' in card and "轻度污染" in card and "#FF7E00" in card and "PM2.5" in card
    assert "儿童、老年人及心脏病、呼吸系统疾病患者应减少长时间、高强度的户外锻炼" in card
    # stations sorted by AQI, highest first, coloured, with their district
    rows = re.findall(r'<tr data-station="([^"]+)"', html)
    assert rows == [stations[1], stations[0], stations[2]]
    assert 'data-aqi="210"' in html and "#99004C" in html and "游仙区" in html
    # the trend chart: two hours, each point coloured by its level
    chart = json.loads(
        re.search(r'<script type="application/json" id="city-aqi">(.*?)</script>', html, re.S).group(1)
    )  # type: ignore[union-attr]
    # the hour before: PM2.5 (42.5+80+10)/3 = 44.2 → 44 → 50 + 9/25 × 50 = 68
    assert [p["value"][1] for p in chart["points"]] == [68, 126]
    assert [p["itemStyle"]["color"] for p in chart["points"]] == ["#FFFF00", "#FF7E00"]
    assert "/static/core/vendor/echarts/echarts.min.js" in html


def test_overview_sorting_and_english(admin_client: TestClient, stations: list[str]) -> None:
    ascending = re.findall(r'<tr data-station="([^"]+)"', page(admin_client, "/environment?sort=aqi"))
    assert ascending == [stations[2], stations[0], stations[1]]
    by_district = re.findall(r'<tr data-station="([^"]+)"', page(admin_client, "/environment?sort=district"))
    assert by_district == [stations[0], stations[1], stations[2]]
    english = page(admin_client, "/environment", "en")
    assert "Air quality" in english and "Lightly polluted" in english and "Monitoring stations" in english
    assert "Youxian District" in english
    bad = admin_client.get("/environment?sort=bogus", headers=HTML)
    assert bad.status_code == 422


def test_station_page(admin_client: TestClient, stations: list[str]) -> None:
    html = page(admin_client, f"/environment/stations/{quote(stations[1])}")
    assert "高新区" in html and 'data-aqi="210"' in html and "重度污染" in html
    assert 'data-indicator="pm25_1h"' in html
    charts = json.loads(
        re.search(r'<script type="application/json" id="pollutant-charts">(.*?)</script>', html, re.S).group(
            1
        )
    )  # type: ignore[union-attr]
    assert {c["id"] for c in charts} == {f"pollutant-{t}" for t in ("so2", "no2", "co", "o3", "pm10", "pm25")}
    pm25 = next(c for c in charts if c["id"] == "pollutant-pm25")
    assert [p[1] for p in pm25["points"]] == [80, 160]
    assert "Heavily polluted" in page(admin_client, f"/environment/stations/{quote(stations[1])}", "en")
    missing = admin_client.get(f"/environment/stations/{quote(station_id('none'))}", headers=HTML)
    assert missing.status_code == 404


def test_empty_city(admin_client: TestClient) -> None:
    html = page(admin_client, "/environment")
    assert "没有空气质量监测站" in html or "No air-quality stations" in html


def test_pages_need_the_permission(client: TestClient, stations: list[str]) -> None:
    for path in ("/environment", f"/environment/stations/{quote(stations[0])}"):
        anonymous = client.get(path, headers=HTML, follow_redirects=False)
        assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/identity/login")


def test_navigation_shows_air_quality(admin_client: TestClient) -> None:
    assert 'href="/environment"' in page(admin_client, "/environment")
