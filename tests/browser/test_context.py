"""The entity browser in a real browser: Mianyang air-quality stations on the map, their PM2.5 history."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser.conftest import LiveServer, screenshot
from tests.browser.test_shell import sign_in
from tests.conftest import Seeded

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

# Monitoring stations in the districts of Mianyang (lon, lat) and their first PM2.5 reading.
STATIONS = (
    ("fucheng", "涪城区市政府监测站", 104.741, 31.464, 38.0),
    ("youxian", "游仙区富乐山监测站", 104.772, 31.482, 52.0),
    ("anzhou", "安州区花荄监测站", 104.567, 31.535, 81.0),
    ("jingkai", "经开区塘汛监测站", 104.718, 31.420, 96.0),
    ("gaoxin", "高新区石桥铺监测站", 104.652, 31.448, 27.0),
)
FUCHENG = "urn:ngsi-ld:AirQualityObserved:mianyang-fucheng"


def entity(key: str, name: str, lon: float, lat: float, pm25: float) -> dict[str, Any]:
    """A station as a normalized NGSI-LD entity."""
    return {
        "id": f"urn:ngsi-ld:AirQualityObserved:mianyang-{key}",
        "type": "AirQualityObserved",
        "name": {"type": "Property", "value": name},
        "pm25": {"type": "Property", "value": pm25, "unitCode": "GQ", "observedAt": "2026-11-24T00:00:00Z"},
        "pm10": {
            "type": "Property",
            "value": pm25 * 1.6,
            "unitCode": "GQ",
            "observedAt": "2026-11-24T00:00:00Z",
        },
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}},
        "refDevice": {"type": "Relationship", "object": f"urn:ngsi-ld:Device:aq-{key}"},
    }


def seed_stations(page: Page, server: LiveServer) -> None:
    """Create the stations and a day of hourly PM2.5 readings through the NGSI-LD API (the session's)."""
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "cb_csrf")
    headers = {"X-CSRF-Token": token, "Content-Type": "application/json"}
    api = server.url + "/ngsi-ld/v1/entities"
    for key, name, lon, lat, pm25 in STATIONS:
        created = page.request.post(api, data=entity(key, name, lon, lat, pm25), headers=headers)
        assert created.status == 201, created.text()
    for hour, value in enumerate((38.0, 45.5, 57.0, 66.0, 61.5, 49.0, 42.0, 55.5, 71.0, 63.0), start=1):
        reading = {
            "type": "Property",
            "value": value,
            "unitCode": "GQ",
            "observedAt": f"2026-11-24T{hour:02d}:00:00Z",
        }
        updated = page.request.patch(f"{api}/{FUCHENG}/attrs", data={"pm25": reading}, headers=headers)
        assert updated.status == 204, updated.text()


def test_entity_list_map_and_detail_charts(page: Page, live_server: LiveServer, seeded: Seeded) -> None:
    from playwright.sync_api import expect

    sign_in(page, live_server, seeded)
    page.get_by_role("navigation", name="主导航").get_by_role("link", name="实体浏览", exact=True).click()
    expect(page).to_have_url(live_server.url + "/context/entities")
    expect(page.get_by_role("heading", name="暂无实体")).to_be_visible()
    screenshot(page, "context-01-empty-zh")

    seed_stations(page, live_server)
    page.reload()
    expect(page.get_by_role("heading", name="实体浏览", exact=True)).to_be_visible()
    expect(page.locator("tr[data-entity]")).to_have_count(5)
    expect(page.locator(".pager")).to_contain_text("共 5 个实体")
    expect(page.locator(f'tr[data-entity="{FUCHENG}"]')).to_contain_text("涪城区市政府监测站")
    expect(page.locator(f'tr[data-entity="{FUCHENG}"]')).to_contain_text("pm25 63 μg/m³")
    expect(page.locator("#entity-map.map-ready")).to_be_visible()
    markers = page.locator("#entity-map svg path.leaflet-interactive")
    expect(markers).to_have_count(5)
    screenshot(page, "context-02-list-zh")

    # a popup names the station and links to its page
    page.locator("#entity-map svg path.leaflet-interactive").nth(0).click()
    popup = page.locator(".leaflet-popup-content")
    expect(popup).to_contain_text("urn:ngsi-ld:AirQualityObserved:mianyang-")
    expect(popup).to_contain_text("AirQualityObserved")
    expect(popup.locator("a")).to_have_attribute("href", re.compile(r"^/context/entities/urn:ngsi-ld:"))
    page.wait_for_timeout(400)  # the popup fades in and the map pans to show it
    screenshot(page, "context-03-list-popup-zh")

    # filter with the q language: only the polluted stations are listed and drawn
    page.get_by_label("查询条件（NGSI-LD q）").fill("pm25>75")
    page.get_by_role("button", name="查询", exact=True).click()
    expect(page).to_have_url(re.compile(r"q=pm25%3E75"))
    expect(page.locator("tr[data-entity]")).to_have_count(2)
    expect(markers).to_have_count(2)
    screenshot(page, "context-04-list-filtered-zh")

    # a bad expression is explained, not a server error
    page.get_by_label("查询条件（NGSI-LD q）").fill("pm25>>")
    page.get_by_role("button", name="查询", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("查询条件有误：")
    screenshot(page, "context-05-bad-q-zh")
    page.get_by_role("link", name="清除筛选").click()
    expect(page.locator("tr[data-entity]")).to_have_count(5)

    # the type select submits itself
    page.get_by_label("类型").select_option("AirQualityObserved")
    expect(page).to_have_url(re.compile(r"type=AirQualityObserved"))

    page.get_by_role("link", name=FUCHENG).click()
    expect(page).to_have_url(live_server.url + "/context/entities/" + FUCHENG)
    expect(page.get_by_role("heading", name=re.compile("涪城区市政府监测站"))).to_be_visible()
    expect(page.locator(".entity-subtitle")).to_have_text(FUCHENG)
    pm25 = page.locator('tr[data-attr="pm25"]')
    expect(pm25.locator("td.value .v")).to_have_text("63")
    expect(pm25).to_contain_text("2026-11-24 18:00:00")  # 10:00Z in China time
    expect(page.locator('tr[data-attr="refDevice"] a')).to_have_attribute(
        "href", "/context/entities/urn:ngsi-ld:Device:aq-fucheng"
    )
    expect(page.locator("#entity-map svg path.leaflet-interactive")).to_have_count(1)
    charts = page.locator(".history-chart.chart-ready canvas")
    expect(charts).to_have_count(2)  # pm10 and pm25
    expect(page.locator("figure.chart-card").filter(has_text="pm25")).to_contain_text("共 11 个值")
    page.wait_for_timeout(300)
    screenshot(page, "context-06-detail-zh")

    # the chart's tooltip shows the last reading in China time
    chart = page.locator("figure.chart-card").filter(has_text="pm25")
    chart.scroll_into_view_if_needed()
    chart.locator(".history-chart").evaluate(
        "el => echarts.getInstanceByDom(el).dispatchAction({type: 'showTip', seriesIndex: 0, dataIndex: 10})"
    )
    expect(chart).to_contain_text("2026-11-24 18:00:00")
    expect(chart).to_contain_text("63 μg/m³")
    screenshot(page, "context-07-detail-tooltip-zh")

    href = page.get_by_role("link", name="NGSI-LD 原始数据").get_attribute("href")
    assert href == "/ngsi-ld/v1/entities/" + FUCHENG
    raw = page.request.get(live_server.url + href)
    assert raw.status == 200 and raw.json()["pm25"]["value"] == 63.0

    page.get_by_role("link", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", name="History")).to_be_visible()
    expect(page.locator(".history-chart.chart-ready canvas")).to_have_count(2)
    screenshot(page, "context-08-detail-en")

    page.goto(live_server.url + "/context/entities/urn:ngsi-ld:AirQualityObserved:nowhere")
    expect(page.locator(".error-page .status")).to_have_text("404")
    screenshot(page, "context-09-not-found-en")
