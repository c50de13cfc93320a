"""The IOC screen: its page (city and district drill-down), its data call, its push stream's checks."""

from __future__ import annotations

import json
import re
from datetime import UTC, timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from citybrain.apps.identity import schemas as identity_schemas
from citybrain.apps.identity import services as identity
from citybrain.apps.indicators import screen, services
from citybrain.core.context import AppContext
from citybrain.core.permissions import SYSTEM
from citybrain.sdk import utcnow
from tests.apps.indicators.declaring import indicators as declared
from tests.conftest import Seeded, login

CITY, FUCHENG, YOUXIAN = "510700", "510703", "510704"
ZONE = ZoneInfo("Asia/Shanghai")
DAY_MS = 24 * 3600 * 1000


@pytest.fixture(autouse=True)
def screen_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The screen shows the test app's indicators."""
    monkeypatch.setenv("CITYBRAIN_INDICATORS_SCREEN_GAUGES", '["ideclare.level", "ideclare.city"]')
    monkeypatch.setenv("CITYBRAIN_INDICATORS_SCREEN_RANKINGS", '["ideclare.level", "ideclare.city"]')
    monkeypatch.setenv("CITYBRAIN_INDICATORS_SCREEN_TRENDS", '["ideclare.level"]')


def embedded(html: str, element_id: str) -> dict:  # type: ignore[type-arg]
    """The JSON a page carries in <script type="application/json" id=...>."""
    found = re.search(rf'<script type="application/json" id="{element_id}">(.*?)</script>', html, re.S)
    assert found is not None, element_id
    return json.loads(found.group(1))  # type: ignore[no-any-return]


def rounds(ctx: AppContext) -> None:
    """Two rounds five minutes apart, the second one now."""
    now = utcnow()
    declared.VALUES.update({CITY: 80.0, FUCHENG: 70.0, YOUXIAN: 104.0})
    services.compute_round(ctx, now - timedelta(minutes=5))
    declared.VALUES.update({CITY: 95.0, FUCHENG: 92.5, YOUXIAN: 101.0})
    services.compute_round(ctx, now)


def test_the_screen_shows_the_city(ctx: AppContext, admin_client: TestClient) -> None:
    """The full-screen page: title, gauges, every sign's value and level, the map's districts, the panels."""
    rounds(ctx)
    page = admin_client.get("/indicators/screen")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    html = page.text
    assert "城市运行一屏观全域" in html and 'class="ioc"' in html
    assert '<div class="ioc-gauge" data-code="ideclare.level">' in html
    assert re.search(
        r'data-code="ideclare.level" data-level="warn"[^>]*>\s*<span class="ioc-sign-name">水位比', html
    )
    assert "<b>95.0</b>" in html
    data = embedded(html, "ioc-data")
    assert data["area"] == {"code": CITY, "name": "绵阳市"} and data["district"] is None
    gauge = data["gauges"][0]
    assert (gauge["code"], gauge["value"], gauge["level"], gauge["max"]) == (
        "ideclare.level",
        95.0,
        "warn",
        100.0,
    )
    ranking = data["rankings"][0]
    assert [(i["area"], i["value"]) for i in ranking["items"]] == [(YOUXIAN, 101.0), (FUCHENG, 92.5)]
    assert [r["code"] for r in data["rankings"]] == ["ideclare.level"]  # a city-only one is not ranked
    assert [p[1] for p in data["trends"][0]["points"]] == [80.0, 95.0]
    config = embedded(html, "ioc-config")
    assert len(config["map"]["districts"]["features"]) == 9
    assert config["apps"] == {"warning": False, "command": False}
    for panel in ("ioc-map", "ioc-ranking", "ioc-warnings", "ioc-events", "ioc-ticker", "ioc-trends"):
        assert f'id="{panel}"' in html
    # English
    admin_client.cookies.set("cb_lang", "en")
    english = admin_client.get("/indicators/screen").text
    assert "City operations screen" in english and "Level ratio" in english


def test_the_trends_span_the_last_day_up_to_now(ctx: AppContext, admin_client: TestClient) -> None:
    """Each trend's window is the last 24 h up to now (China wall clock); older and later values are left out."""
    empty = admin_client.get("/api/indicators/screen").json()["trends"][0]
    assert empty["points"] == [] and empty["end"] - empty["start"] == DAY_MS  # the chart says "no data"
    now = utcnow()
    for hours, value in ((-25, 10.0), (-23, 20.0), (-5 / 60, 30.0), (0, 40.0), (0.5, 50.0)):
        declared.VALUES.update({CITY: value, FUCHENG: value + 1})
        services.compute_round(ctx, now + timedelta(hours=hours), codes=["ideclare.level"])
    body = admin_client.get("/api/indicators/screen").json()
    assert body["trend_hours"] == 24
    trend = body["trends"][0]
    wall_now = int(now.astimezone(ZONE).replace(tzinfo=UTC).timestamp() * 1000)
    assert trend["end"] - trend["start"] == DAY_MS
    assert 0 <= trend["end"] - wall_now < 60_000  # up to now, as China's clock reads it
    assert [p[1] for p in trend["points"]] == [20.0, 30.0, 40.0]  # not 25 h ago, nothing ahead of now
    assert all(trend["start"] <= p[0] <= trend["end"] for p in trend["points"])
    assert trend["points"][-1][0] <= wall_now and wall_now - trend["points"][-1][0] < 5 * 60_000
    district = admin_client.get(f"/api/indicators/screen?district={FUCHENG}").json()["trends"][0]
    assert [p[1] for p in district["points"]] == [21.0, 31.0, 41.0]
    assert "近 24 小时趋势" in admin_client.get("/indicators/screen").text


def test_a_district_drill_down(ctx: AppContext, admin_client: TestClient) -> None:
    """?district= shows the same screen for one district, with the way back to the whole city."""
    rounds(ctx)
    html = admin_client.get(f"/indicators/screen?district={FUCHENG}").text
    assert f'data-district="{FUCHENG}"' in html
    assert 'id="ioc-back" href="/indicators/screen"' in html
    data = embedded(html, "ioc-data")
    assert data["area"]["name"] == "涪城区"
    values = {s["code"]: (s["value"], s["scope"]) for s in data["signs"]}
    assert values["ideclare.level"] == (92.5, "district")
    assert values["ideclare.city"] == (87.5, "city")  # not broken down: the city's value
    assert [p[1] for p in data["trends"][0]["points"]] == [70.0, 92.5]
    body = admin_client.get(f"/api/indicators/screen?district={FUCHENG}").json()
    assert body["gauges"][0]["value"] == 92.5 and body["district"] == FUCHENG
    assert admin_client.get(f"/api/indicators/screen?district={CITY}").json()["district"] is None


def test_bad_input_gets_a_problem(admin_client: TestClient) -> None:
    """An unknown district: 404 problem on the data call and the stream; a bad one: 422."""
    for url in ("/api/indicators/screen?district=999999", "/api/indicators/stream?district=999999"):
        answer = admin_client.get(url)
        assert answer.status_code == 404, url
        assert answer.headers["content-type"].startswith("application/problem+json")
    assert admin_client.get("/api/indicators/screen?district=" + "1" * 20).status_code == 422
    assert admin_client.get("/indicators/screen?district=999999").status_code == 404


def test_the_screen_is_denied_unless_granted(ctx: AppContext, client: TestClient, seeded: Seeded) -> None:
    """Anonymous callers: 401; a user without indicators.indicator.read: 403, page, data and stream alike."""
    urls = ("/api/indicators/screen", "/api/indicators/stream")
    for url in urls:
        answer = client.get(url)
        assert answer.status_code == 401, url
        assert answer.headers["content-type"].startswith("application/problem+json")
    identity.create_user(
        ctx,
        SYSTEM,
        identity_schemas.UserCreate(
            username="nobody",
            display_name="无权限",
            department_id=seeded.city_dept,
            password="nobody-password-1",
        ),
    )
    login(client, "nobody", "nobody-password-1")
    for url in urls:
        assert client.get(url).status_code == 403, url
    assert client.get("/indicators/screen").status_code == 403


def test_a_round_that_changes_values_is_announced(ctx: AppContext, admin_client: TestClient) -> None:
    """A round reports (and announces on the bus) the indicators whose current values changed."""
    now = utcnow()
    declared.VALUES.update({CITY: 50.0})
    first = services.compute_round(ctx, now)
    assert set(first.changed) == {"ideclare.level", "ideclare.broken", "ideclare.text", "ideclare.city"}
    again = services.compute_round(ctx, now + timedelta(minutes=1), codes=["ideclare.level", "ideclare.text"])
    assert again.changed == ()
    declared.VALUES.update({CITY: 51.0})
    assert services.compute_round(ctx, now + timedelta(minutes=2), codes=["ideclare.level"]).changed == (
        "ideclare.level",
    )


def test_the_hub_hands_a_message_to_every_open_stream() -> None:
    """Each open stream gets each message; a stream that is full drops it rather than block the others."""
    import asyncio

    hub = screen.Hub()

    async def run() -> tuple[int, int]:
        small: asyncio.Queue[screen.Message] = asyncio.Queue(maxsize=1)
        roomy: asyncio.Queue[screen.Message] = asyncio.Queue()
        hub.listeners.update({small, roomy})
        for n in range(3):
            hub.publish(screen.Message("warning", {"id": n}))
        return small.qsize(), roomy.qsize()

    assert asyncio.run(run()) == (1, 3)
