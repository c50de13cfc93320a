"""The device pages in a real browser: register a device (key shown once), feed it over HTTP, watch it
come online with its readings and charts, import a CSV, inspect rejected messages and ingest rates."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from citybrain.apps.iot import services
from citybrain.core.context import AppContext
from citybrain.core.permissions import SYSTEM
from tests.apps.iot.conftest import AQ
from tests.browser.conftest import LiveServer, screenshot
from tests.browser.test_shell import side_nav, sign_in
from tests.conftest import Seeded

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser


def test_register_feed_and_inspect_a_device(
    page: Page, live_server: LiveServer, seeded: Seeded, ctx: AppContext, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    services.ensure_model(ctx, SYSTEM, AQ)
    sign_in(page, live_server, seeded)
    side_nav(page, "物联设备").click()
    expect(page).to_have_url(live_server.url + "/iot/devices")
    expect(page.locator("td.empty")).to_have_text("尚未登记任何设备。")
    screenshot(page, "iot-01-devices-empty-zh")

    # register a device through the form; its key is shown once
    page.get_by_role("link", name="登记设备").click()
    page.get_by_label("设备编号").fill("aq-510703-001")
    page.get_by_label("名称").fill("市政府空气监测站")
    page.get_by_label("设备型号").select_option("aq-station")
    page.get_by_label("权属部门").select_option("510703")
    page.get_by_label("经度").fill("104.741")
    page.get_by_label("纬度").fill("31.464")
    page.get_by_role("button", name="登记", exact=True).click()
    expect(page.locator(".alert.success")).to_contain_text("设备 市政府空气监测站 已登记")
    key = page.locator("#device-key").inner_text()
    assert key.startswith("cbd_")
    screenshot(page, "iot-02-registered-key-zh")

    # the device posts a morning of readings with its key
    start = datetime(2026, 11, 24, 0, 0, tzinfo=UTC)
    rows = [
        [int((start + timedelta(minutes=10 * i)).timestamp() * 1000), 35 + (i % 7) * 4.5, 40 + i]
        for i in range(24)
    ]
    headers = {"Authorization": f"Device aq-510703-001:{key}", "Content-Type": "application/json"}
    posted = page.request.post(
        live_server.url + "/api/iot/ingest",
        data={"columns": ["ts", "pm25", "no2"], "rows": rows},
        headers=headers,
    )
    assert posted.status == 200, posted.text()
    assert posted.json()["stored"] == 48
    bad = page.request.post(
        live_server.url + "/api/iot/ingest", data={"values": {"pm25": -8, "colour": "red"}}, headers=headers
    )
    assert bad.status == 422
    wrong = page.request.post(
        live_server.url + "/api/iot/ingest",
        data={"values": {"pm25": 1}},
        headers={**headers, "Authorization": "Device aq-510703-001:cbd_guess"},
    )
    assert wrong.status == 401

    page.get_by_role("link", name="查看设备").click()
    expect(page.get_by_role("heading", name=re.compile("市政府空气监测站"))).to_be_visible()
    expect(page.locator("h1 [data-status]")).to_have_text("在线")
    expect(page.locator('tr[data-attr="pm25"] td.value')).to_have_text("44")
    expect(page.locator("table.readings tbody tr")).to_have_count(24)
    expect(page.locator("table.readings tbody tr").first).to_contain_text("2026-11-24 11:50:00")
    expect(page.locator(".history-chart.chart-ready canvas")).to_have_count(2)
    assert key not in page.content()
    page.wait_for_timeout(300)
    screenshot(page, "iot-03-device-zh")

    # the list shows it online, filters by status
    side_nav(page, "物联设备").click()
    row = page.locator('tr[data-device="aq-510703-001"]')
    expect(row).to_contain_text("在线")
    expect(row).to_contain_text("涪城区")
    expect(page.locator('[data-count="online"] strong')).to_have_text("1")
    page.get_by_label("状态", exact=True).select_option("offline")
    expect(page.locator("tr[data-device]")).to_have_count(0)
    page.get_by_label("状态", exact=True).select_option("online")
    expect(page.locator("tr[data-device]")).to_have_count(1)
    screenshot(page, "iot-04-devices-zh")

    # import two devices from CSV, one row is refused
    csv_file = tmp_path / "devices.csv"
    csv_file.write_text(
        "device_id,name,model,lon,lat,department\n"
        "aq-510704-001,富乐山监测站,aq-station,104.772,31.482,510704\n"
        "aq-510704-002,坏坐标,aq-station,104.772,北纬,510704\n",
        encoding="utf-8",
    )
    page.get_by_role("link", name="导入 CSV").click()
    page.get_by_label("文件").set_input_files(str(csv_file))
    page.get_by_role("button", name="导入", exact=True).click()
    expect(page.locator('[data-count="created"] strong')).to_have_text("1")
    expect(page.locator('tr[data-row="3"]')).to_contain_text("需要数字")
    expect(page.locator('tr[data-device="aq-510704-001"] code.secret')).to_contain_text("cbd_")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="下载密钥（CSV）").click()
    keys = Path(download_info.value.path()).read_text(encoding="utf-8-sig").splitlines()
    assert keys[0] == "device_id,entity_id,key" and keys[1].startswith("aq-510704-001,")
    screenshot(page, "iot-05-import-zh")

    # rejected messages, and why
    side_nav(page, "被拒消息").click()
    expect(page.locator("tr[data-letter]")).to_have_count(3)
    page.get_by_label("原因").select_option("out_of_range")
    page.get_by_role("button", name="查询", exact=True).click()
    expect(page.locator("tr[data-letter]")).to_have_count(1)
    expect(page.locator("tr[data-letter] td.detail")).to_contain_text("超出范围")
    screenshot(page, "iot-06-dead-letters-zh")
    page.locator("tr[data-letter] a").first.click()
    expect(page.locator("#payload")).to_contain_text('"pm25": -8')
    screenshot(page, "iot-07-dead-letter-zh")

    # ingest rates of the last hour
    side_nav(page, "接入速率").click()
    expect(page.locator('[data-total="stored"] strong')).to_have_text("48")
    expect(page.locator(".rate-chart.chart-ready canvas")).to_have_count(2)
    expect(page.locator('tr[data-reason="wrong_key"]')).to_contain_text("设备密钥错误")
    page.wait_for_timeout(300)
    screenshot(page, "iot-08-ingest-zh")

    page.get_by_role("link", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", name="Ingest rates")).to_be_visible()
    screenshot(page, "iot-09-ingest-en")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Devices", exact=True).click()
    expect(page.locator('tr[data-device="aq-510703-001"]')).to_contain_text("Online")
    screenshot(page, "iot-10-devices-en")
