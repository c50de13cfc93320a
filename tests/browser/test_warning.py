"""The warning centre in a real browser: a warning raised by live data appears in the list and on the map
within seconds, its page draws the data that triggered it, and an operator acknowledges it."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from fastapi import FastAPI

from citybrain.apps.warning import services
from citybrain.apps.warning.schemas import RuleSpec
from citybrain.core.apps import discover
from citybrain.core.asgi import create_app
from citybrain.core.context import AppContext
from citybrain.core.permissions import SYSTEM
from citybrain.core.settings import Settings
from tests.apps.warning.conftest import T0, observe, rule_body, settle, station
from tests.browser.conftest import LiveServer, screenshot
from tests.browser.test_shell import sign_in
from tests.conftest import Seeded

if TYPE_CHECKING:
    from playwright.sync_api import ConsoleMessage, Page

pytestmark = pytest.mark.browser


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    """The platform with the warning app and the apps it needs."""
    labels = ("identity", "context", "geo", "warning")
    return create_app(settings, [spec for spec in discover() if spec.label in labels])


def test_warning_appears_live_and_is_acknowledged(
    page: Page, live_server: LiveServer, seeded: Seeded, ctx: AppContext
) -> None:
    from playwright.sync_api import expect

    errors: list[str] = []

    def keep(message: ConsoleMessage) -> None:
        # the refused rule form answers 422 on purpose; Chromium logs that status as a console error
        if message.type == "error" and "status of 422" not in message.text:
            errors.append(message.text)

    page.on("console", keep)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    sid = station(ctx, "fc-browser")
    rule = services.create_rule(ctx, SYSTEM, RuleSpec.model_validate(rule_body()))
    observe(ctx, sid, T0, pm25=40.0)
    settle(ctx)

    sign_in(page, live_server, seeded)
    page.get_by_role("navigation", name="主导航").get_by_role("link", name="预警中心", exact=True).click()
    expect(page).to_have_url(re.compile(r"/warning/warnings$"))
    expect(page.get_by_role("heading", name="预警中心", exact=True)).to_be_visible()
    expect(page.locator("#warning-map .leaflet-interactive").first).to_be_visible()
    expect(page.locator("tr[data-warning]")).to_have_count(0)

    # live data crosses the orange threshold while the page is open: the list and the map follow by themselves
    observe(ctx, sid, T0 + timedelta(minutes=5), pm25=168.0)
    settle(ctx)
    row = page.locator('tr[data-level="orange"]')
    expect(row).to_have_count(1, timeout=12_000)
    expect(row).to_contain_text("PM2.5 超标")
    expect(row).to_contain_text("涪城区")
    expect(page.locator('[data-count="orange"]')).to_have_text("1")
    marker = page.locator(".warning-marker.level-orange")
    expect(marker).to_have_count(1)
    expect(marker).to_have_class(re.compile(r"\bpulse\b"))
    page.wait_for_timeout(400)
    screenshot(page, "warning-01-centre-zh")

    marker.click()
    expect(page.locator(".warning-popup")).to_contain_text("橙色预警（II级）")
    page.locator(".warning-popup a").click()
    expect(page).to_have_url(re.compile(r"/warning/warnings/\d+$"))
    expect(page.locator("h1")).to_contain_text("PM2.5 超标")
    expect(page.locator(".warning-status")).to_contain_text("生效中")
    expect(page.locator("[data-trigger-chart][data-drawn=true]")).to_have_count(1)
    expect(page.locator('li[data-step="raised"]')).to_contain_text("168")
    page.wait_for_timeout(300)
    screenshot(page, "warning-02-detail-zh")

    page.get_by_label("备注（可选）").first.fill("已通知市生态环境局")
    page.get_by_role("button", name="确认预警").click()
    expect(page.get_by_role("status").filter(has_text="预警已确认")).to_be_visible()
    expect(page.locator('li[data-step="acknowledged"]')).to_contain_text("已通知市生态环境局")
    expect(page.get_by_role("button", name="确认预警")).to_have_count(0)
    screenshot(page, "warning-03-acknowledged-zh")
    assert services.get_warning(ctx, SYSTEM, services.list_warnings(ctx, SYSTEM).items[0].id).acknowledged_by

    page.goto(f"{live_server.url}/warning/rules/{rule.id}")
    page.get_by_role("button", name="试运行").click()
    expect(page.locator("#dry-run-result")).to_contain_text("该规则在最近 7 天里会发布 1 次预警。")
    screenshot(page, "warning-04-rule-dry-run-zh")
    expect(page.get_by_label("区县", exact=True)).to_be_hidden()  # a type scope names no district
    page.get_by_label("蓝色预警（IV级）阈值").fill("200")
    page.get_by_role("button", name="保存为新版本").click()
    expect(page.locator("#error-levels")).to_contain_text("级别顺序错误")
    expect(page.get_by_label("蓝色预警（IV级）阈值")).to_have_value("200")
    screenshot(page, "warning-05-rule-error-zh")
    assert services.get_rule(ctx, SYSTEM, rule.id).version == 1

    page.goto(f"{live_server.url}/warning/warnings?lang=en")
    expect(page.get_by_role("heading", name="Warning centre", exact=True)).to_be_visible()
    expect(page.locator('tr[data-level="orange"]')).to_contain_text("PM2.5 high")
    page.wait_for_timeout(300)
    screenshot(page, "warning-06-centre-en")
    assert errors == [], errors
