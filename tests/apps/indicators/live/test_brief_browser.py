"""The daily brief in a real browser: the day's warnings drawn by the server (kept from the warning app's
events), with their level, district and place, raised and lifted times (or 生效中); a warning of another
day left out; printed, the brief fits an A4 page's width and makes a PDF.

A screenshot goes to CITYBRAIN_ARTIFACTS_DIR (default: a temporary directory), as the screen's do.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest
from fastapi import FastAPI

from citybrain.apps.warning import services as warning
from citybrain.apps.warning.schemas import RuleSpec
from citybrain.core.asgi import create_app
from citybrain.core.context import AppContext
from citybrain.core.permissions import SYSTEM
from citybrain.core.settings import Settings
from citybrain.sdk import utcnow
from tests.apps.indicators.live.conftest import __all__ as _fixtures  # noqa: F401
from tests.apps.indicators.live.test_screen_browser import shot
from tests.apps.warning.conftest import FULESHAN, observe, rule_body, settle, station
from tests.browser.conftest import LiveServer
from tests.browser.test_shell import sign_in
from tests.conftest import Seeded

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser
ZONE = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    """The whole platform: the brief with the warning app beside it."""
    return create_app(settings)


def test_the_brief_lists_the_days_warnings(
    page: Page, live_server: LiveServer, seeded: Seeded, ctx: AppContext
) -> None:
    from playwright.sync_api import expect

    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    # yesterday in China time; the stations' first readings (two days ago) come before it
    day = (utcnow().astimezone(ZONE) - timedelta(days=1)).date()
    ten = datetime.combine(day, time(10), ZONE).astimezone(UTC)
    warning.create_rule(ctx, SYSTEM, RuleSpec.model_validate(rule_body()))
    lifted, held, later = station(ctx, "brief-a"), station(ctx, "brief-b", FULESHAN), station(ctx, "brief-c")
    observe(ctx, lifted, ten, pm25=168.0)  # 橙 raised at 10:00 ...
    observe(ctx, lifted, ten + timedelta(hours=2), pm25=20.0)  # ... lifted at 12:00
    observe(ctx, held, ten + timedelta(hours=3, minutes=15), pm25=300.0)  # 红 at 13:15, still in force
    observe(ctx, later, utcnow(), pm25=130.0)  # 黄 today: not of the day
    settle(ctx)

    sign_in(page, live_server, seeded)
    page.goto(f"{live_server.url}/indicators/brief?date={day.isoformat()}")
    table = page.locator("#brief-warning-list")
    expect(table).to_have_attribute("data-state", "ready")
    rows = table.locator("tbody tr[data-warning]")
    expect(rows).to_have_count(2)
    first, second = rows.nth(0), rows.nth(1)
    expect(first).to_have_attribute("data-level", "orange")
    cells = [c.strip() for c in first.locator("td").all_inner_texts()]
    assert cells[0] == "橙色" and cells[1] == "PM2.5 超标", cells  # the rule's name the event carries
    assert cells[2].startswith("涪城区") and lifted in cells[2], cells
    assert cells[3] == f"{day.isoformat()} 10:00" and cells[4] == f"{day.isoformat()} 12:00", cells
    expect(second).to_have_attribute("data-level", "red")
    cells = [c.strip() for c in second.locator("td").all_inner_texts()]
    assert cells[2].startswith("游仙区") and cells[3] == f"{day.isoformat()} 13:15", cells
    assert cells[4] == "生效中", cells
    assert "brief-c" not in table.inner_text()
    assert first.locator(".brief-chip").evaluate("e => getComputedStyle(e).backgroundColor") == (
        "rgb(245, 124, 0)"
    )
    shot(page, "brief-01-day-1366")
    # printed: nothing of the brief runs past an A4 page's width (794 px at 96 dpi), and a PDF comes out
    page.set_viewport_size({"width": 794, "height": 1123})
    page.emulate_media(media="print")
    assert page.locator(".topbar").is_hidden() and page.locator(".brief-nav").is_hidden()
    overflow = page.evaluate(
        "() => [...document.querySelectorAll('#brief table')].filter(t => t.scrollWidth > t.parentElement.clientWidth + 1).length"
    )
    assert overflow == 0
    assert page.pdf(format="A4")[:4] == b"%PDF"
    page.emulate_media(media="screen")

    # a day without warnings says so
    page.goto(f"{live_server.url}/indicators/brief?date={(day - timedelta(days=5)).isoformat()}")
    expect(page.locator("#brief-warning-list")).to_have_attribute("data-state", "ready")
    expect(page.locator("#brief-warning-list tbody")).to_contain_text("当日无发布或生效的预警")
    page.goto("about:blank")
    assert not errors, errors
