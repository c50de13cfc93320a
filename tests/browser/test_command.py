"""The command pages in a real browser: an operator takes in a 12345 ticket and assigns it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from fastapi import FastAPI

from citybrain.apps.identity import schemas, services
from citybrain.core.apps import discover
from citybrain.core.asgi import create_app
from citybrain.core.context import AppContext
from citybrain.core.permissions import SYSTEM
from citybrain.core.settings import Settings
from tests.browser.conftest import LiveServer
from tests.browser.test_shell import sign_in
from tests.conftest import Seeded

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    """The platform with the command app and the apps it needs."""
    labels = ("identity", "context", "geo", "warning", "command")
    return create_app(settings, [spec for spec in discover() if spec.label in labels])


def test_file_a_ticket_and_assign_it(
    page: Page, live_server: LiveServer, seeded: Seeded, ctx: AppContext
) -> None:
    services.create_department(
        ctx, SYSTEM, schemas.DepartmentCreate(code="sthj", name_zh="市生态环境局", parent_id=seeded.root)
    )
    sign_in(page, live_server, seeded)
    page.goto(f"{live_server.url}/command/tickets/new")
    page.fill("#caller_name", "张三")
    page.fill("#caller_phone", "13812345678")
    page.fill("#content", "楼下KTV深夜噪声扰民")
    page.select_option("#category", "hotline.noise")
    page.fill("#lon", "104.741")
    page.fill("#lat", "31.464")
    page.click("#ticket-form button[type=submit]")
    page.wait_for_url("**/command/events/*")
    assert page.inner_text("#event-state").strip() == "已受理"
    page.fill("#note-assign", "请核处")
    page.click("form[data-action=assign] button[type=submit]")
    page.wait_for_url("**ok=assign")
    assert page.inner_text("#event-state").strip() == "已派单"
    assert page.locator("#timeline li[data-step=assign]").count() == 1
