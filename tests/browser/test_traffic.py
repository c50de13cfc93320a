"""The traffic page in a real browser: the gauge, the district ranking, the segments by grade on both maps."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from fastapi import FastAPI

from citybrain.apps.traffic import services, tpi
from citybrain.apps.traffic.layers import NO_SPEED
from citybrain.apps.traffic.lifespan import STARTED
from citybrain.core.apps import discover
from citybrain.core.asgi import create_app
from citybrain.core.context import AppContext
from citybrain.core.permissions import SYSTEM
from citybrain.core.settings import Settings
from citybrain.sdk import utcnow
from tests.apps.traffic.conftest import add_detector, read
from tests.browser.conftest import LiveServer, screenshot
from tests.browser.test_shell import side_nav, sign_in
from tests.conftest import Seeded

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

# The speed as a share of the limit (the free-flow speed until 30 days are learned) → grade 1 … 5 (§8.1 表2).
RATIOS = (0.9, 0.6, 0.45, 0.35, 0.2)
# How many canvas pixels lie within a tolerance of a colour (an opacity of 0.95 shifts it a little).
COUNT_PIXELS = """([selector, hex]) => {
  const want = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  let count = 0;
  document.querySelectorAll(selector).forEach((canvas) => {
    const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 0; i < data.length; i += 4) {
      if (data[i + 3] > 200 && Math.abs(data[i] - want[0]) < 18 && Math.abs(data[i + 1] - want[1]) < 18
          && Math.abs(data[i + 2] - want[2]) < 18) count += 1;
    }
  });
  return count;
}"""
SEGMENT_COLOURS = """() => {
  const out = {};
  window.citybrainMap.layers["traffic-segments"].shapes.eachLayer((l) => { out[l.feature.id] = l.options.color; });
  return out;
}"""


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    """The platform with the traffic app and the apps it needs."""
    labels = ("identity", "context", "geo", "traffic")
    return create_app(settings, [spec for spec in discover() if spec.label in labels])


def seed_traffic(ctx: AppContext) -> dict[str, int]:
    """A detector on every other segment, at a speed that gives grades 1 to 5 in turn; record the index."""
    event: threading.Event = ctx.extensions[STARTED]
    assert event.wait(60), "the traffic app's first round did not finish"
    grades: dict[str, int] = {}
    now = utcnow()
    for index, seg in enumerate(services.segments(ctx)[::2]):
        level = index % len(RATIOS)
        detector = add_detector(ctx, f"det-{seg.id}", seg)
        read(ctx, detector, [(now - timedelta(seconds=20), seg.speed_limit_kmh * RATIOS[level], 900.0)])
        grades[seg.id] = level + 1
    services.record(ctx)
    return grades


def watch_console(page: Page) -> list[str]:
    """Collect the page's console errors and uncaught exceptions."""
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def test_the_traffic_page_and_the_segments_on_the_one_map(
    page: Page, live_server: LiveServer, seeded: Seeded, ctx: AppContext
) -> None:
    from playwright.sync_api import expect

    grades = seed_traffic(ctx)
    picture = services.picture(ctx, SYSTEM)
    assert picture.city.index is not None
    errors = watch_console(page)
    sign_in(page, live_server, seeded)
    side_nav(page, "交通运行指数").click()
    expect(page).to_have_url(live_server.url + "/traffic")
    expect(page.get_by_role("heading", name="交通运行指数", exact=True)).to_be_visible()

    # the gauge: an ECharts canvas and the city's index beside it, with its grade
    expect(page.locator(".tpi-gauge canvas")).to_have_count(1)
    expect(page.locator(".tpi-value")).to_have_text(f"{picture.city.index.tpi:.1f}")
    city_grade = picture.city.index.grade
    expect(page.locator("dl.facts .tpi-badge")).to_have_text(city_grade.name_zh)
    expect(page.locator(".tpi-trend canvas")).to_have_count(1)
    expect(page.locator(".tpi-legend li")).to_have_text([g.name_zh for g in tpi.GRADES])

    # the district ranking, worst first, numbered
    ranked = [d for d in picture.districts if d.index is not None]
    rows = page.locator("table.districts tbody tr")
    expect(rows).to_have_count(len(picture.districts))
    expect(rows.first.locator("td").first).to_have_text("1")
    expect(rows.first).to_contain_text(ranked[0].name("zh_CN"))
    expect(rows.first).to_contain_text(f"{ranked[0].index.tpi:.1f}")  # type: ignore[union-attr]

    # the map: segments drawn in their grades' colours, grey without a speed
    for grade in tpi.GRADES:
        page.wait_for_function(
            f"() => ({COUNT_PIXELS})(['#traffic-map canvas', '{grade.color}']) > 30", timeout=15_000
        )
    assert page.evaluate(COUNT_PIXELS, ["#traffic-map canvas", NO_SPEED]) > 30

    # the table: every segment, highest TTI first (a severe one leads), each graded segment with its badge
    segment_rows = page.locator("table.segments tr[data-segment]")
    expect(segment_rows).to_have_count(len(services.segments(ctx)))
    first = segment_rows.first.get_attribute("data-segment") or ""
    assert grades[first] == 5
    expect(segment_rows.first.locator(".tpi-badge")).to_have_text("严重拥堵")
    expect(page.locator("table.segments .tpi-badge")).to_have_count(len(grades))
    screenshot(page, "traffic-01-overview-zh")

    # the same segments on the one map, coloured by the layer's palette, with the legend of grades
    side_nav(page, "一张图").click()
    expect(page.locator("#geo-map")).to_have_attribute("data-ready", "1", timeout=30_000)
    legend = page.locator('[data-legend="traffic-segments"] li')
    expect(legend).to_have_text([*(g.name_zh for g in tpi.GRADES), "其他或无数值"])
    colours = page.evaluate(SEGMENT_COLOURS)
    assert len(colours) == len(services.segments(ctx))
    for seg in services.segments(ctx):
        level = grades.get(seg.id)
        expected = tpi.GRADES[level - 1].color if level else NO_SPEED
        assert colours[f"urn:ngsi-ld:RoadSegment:{seg.id}"] == expected, seg.id
    page.evaluate("() => { window.citybrainMap.map.setView([31.466, 104.735], 14, { animate: false }); }")
    page.wait_for_timeout(600)
    for grade in tpi.GRADES:
        assert page.evaluate(COUNT_PIXELS, [".leaflet-overlay-pane canvas", grade.color]) > 30, grade.name_en
    screenshot(page, "traffic-02-one-map-zh")

    # the grade filter offers the grades by name; 严重拥堵 leaves only the severe segments
    grade_filter = page.locator('select[data-filter="traffic-segments"][data-attr="trafficGrade"]')
    expect(grade_filter.locator("option")).to_have_text(["全部", *(g.name_zh for g in tpi.GRADES)])
    grade_filter.select_option(label="严重拥堵")
    severe = sorted(f"urn:ngsi-ld:RoadSegment:{key}" for key, level in grades.items() if level == 5)
    page.wait_for_function(f"() => Object.keys(({SEGMENT_COLOURS})()).length === {len(severe)}")
    colours = page.evaluate(SEGMENT_COLOURS)
    assert sorted(colours) == severe and set(colours.values()) == {tpi.GRADES[-1].color}

    # the legend speaks English in English
    page.goto(live_server.url + "/lang/en?next=/geo/map")
    expect(page.locator("#geo-map")).to_have_attribute("data-ready", "1", timeout=30_000)
    expect(legend).to_have_text([*(g.name_en for g in tpi.GRADES), "Other or no value"])
    assert errors == []
