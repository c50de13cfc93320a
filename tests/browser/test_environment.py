"""The air-quality page in a real browser: the city's AQI card, the station table and the 24-hour chart."""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import TYPE_CHECKING

import pytest
from fastapi import FastAPI

from citybrain.core.apps import discover
from citybrain.core.asgi import create_app
from citybrain.core.context import AppContext
from citybrain.core.settings import Settings
from citybrain.sdk import utcnow
from tests.apps.environment.conftest import CITY_HALL, FULESHAN, GAOXIN, add_station, read
from tests.browser.conftest import LiveServer, screenshot
from tests.browser.test_shell import side_nav, sign_in
from tests.browser.test_traffic import watch_console
from tests.conftest import Seeded

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

HOURS = 24
# The bars the chart draws: (hour, AQI, colour) of each point of its only series.
BARS = """() => {
  const chart = echarts.getInstanceByDom(document.querySelector("[data-aqi-chart]"));
  return chart.getOption().series[0].data.map((p) => [p.value[0], p.value[1], p.itemStyle.color]);
}"""


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    """The platform with the environment app and the apps it needs."""
    labels = ("identity", "context", "geo", "warning", "environment")
    return create_app(settings, [spec for spec in discover() if spec.label in labels])


def seed_air(ctx: AppContext) -> list[str]:
    """Three stations with a reading in each of the last 24 complete hours; the last hour as in the page tests."""
    ids = [
        add_station(ctx, "aq-a", "市政府", CITY_HALL),
        add_station(ctx, "aq-b", "高新区", GAOXIN),
        add_station(ctx, "aq-c", "富乐山", FULESHAN),
    ]
    end = utcnow().astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    base = {"pm10": 40, "no2": 30, "so2": 8, "o3": 60, "co": 0.6}
    for entity_id, pm25 in zip(ids, (85, 160, 20), strict=True):
        # PM2.5 rising through the day to the last hour's value
        readings = [
            (
                end - timedelta(minutes=30 + 60 * back),
                {"pm25": round(pm25 * (HOURS - back) / HOURS, 1), **base},
            )
            for back in range(HOURS - 1, -1, -1)
        ]
        read(ctx, entity_id, readings)
    return ids


def test_the_air_quality_page(page: Page, live_server: LiveServer, seeded: Seeded, ctx: AppContext) -> None:
    from playwright.sync_api import expect

    stations = seed_air(ctx)
    errors = watch_console(page)
    sign_in(page, live_server, seeded)
    side_nav(page, "空气质量").click()
    expect(page).to_have_url(live_server.url + "/environment")
    expect(page.get_by_role("heading", name="空气质量", exact=True)).to_be_visible()

    # the city now: PM2.5 (85+160+20)/3 = 88.3 → AQI 126, 轻度污染 (HJ 633), orange, with its advice
    card = page.locator(".aqi-card")
    expect(card.locator(".aqi-number")).to_have_attribute("data-aqi", "126")
    expect(card.locator(".aqi-number")).to_have_text("126")
    expect(card.locator(".aqi-category")).to_have_text("轻度污染")
    expect(card.locator(".primary-pollutant")).to_have_text("PM2.5")
    expect(card.locator(".aqi-now")).to_have_css("background-color", "rgb(255, 126, 0)")
    expect(card.locator(".health-advice")).to_contain_text("减少长时间、高强度的户外锻炼")

    # the stations, worst first, each with its district, AQI badge and a link to its page
    rows = page.locator("table.stations tr[data-station]")
    expect(rows).to_have_count(3)
    assert [rows.nth(i).get_attribute("data-station") for i in range(3)] == [
        stations[1],
        stations[0],
        stations[2],
    ]
    expect(rows.nth(0).locator(".aqi-badge")).to_have_text("210")
    expect(rows.nth(0)).to_contain_text("重度污染")
    # PM2.5 20 µg/m³ → 29, but a day of PM10 at 40 µg/m³ → 40 (its 24-hour mean, HJ 633)
    expect(rows.nth(2).locator(".aqi-badge")).to_have_text("40")
    expect(rows.nth(2)).to_contain_text("游仙区")
    expect(rows.nth(2)).to_contain_text("优")

    # the 24-hour chart: one bar per hour, rising to the hour now shown in the card, coloured by level
    expect(page.locator(".aqi-chart canvas")).to_have_count(1)
    bars = page.evaluate(BARS)
    assert len(bars) == HOURS
    hours = [bar[0] for bar in bars]
    assert hours == sorted(hours) and hours[-1] - hours[0] == (HOURS - 1) * 3600 * 1000
    values = [bar[1] for bar in bars]
    assert values == sorted(values) and values[-1] == 126
    assert bars[-1][2] == "#FF7E00" and bars[0][2] == "#00E400"
    expect(page.get_by_role("heading", name=f"全市近 {HOURS} 小时 AQI")).to_be_visible()
    screenshot(page, "environment-01-air-quality-zh")

    # in English
    page.get_by_role("link", name="English").click()
    expect(page.get_by_role("heading", name="Air quality", exact=True)).to_be_visible()
    expect(card.locator(".aqi-category")).to_have_text("Lightly polluted")
    expect(rows.nth(2)).to_contain_text("Youxian District")
    expect(page.locator(".aqi-chart canvas")).to_have_count(1)
    screenshot(page, "environment-02-air-quality-en")
    assert errors == []
