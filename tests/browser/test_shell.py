"""The shell in a real browser: sign in through the form, switch language, open the admin pages."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from tests.browser.conftest import ARTIFACTS, LiveServer, screenshot
from tests.conftest import Seeded

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

pytestmark = pytest.mark.browser


def sign_in(page: Page, server: LiveServer, seeded: Seeded) -> None:
    """Open the home page, follow the sign-in link and submit the real form as the admin."""
    from playwright.sync_api import expect

    page.goto(server.url + "/")
    page.get_by_role("link", name="登录", exact=True).click()
    expect(page).to_have_url(re.compile(r"/identity/login\?next=/$"))
    page.get_by_label("用户名").fill(seeded.admin_username)
    page.get_by_label("密码").fill(seeded.admin_password)
    page.get_by_role("button", name="登录").click()
    expect(page).to_have_url(server.url + "/")


def side_nav(page: Page, name: str) -> Locator:
    """A link of the side navigation."""
    return page.get_by_role("navigation", name="主导航").get_by_role("link", name=name, exact=True)


def test_sign_in_switch_language_and_open_users(page: Page, live_server: LiveServer, seeded: Seeded) -> None:
    from playwright.sync_api import expect

    page.goto(live_server.url + "/")
    expect(page).to_have_title(re.compile("绵阳城市智脑"))
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.locator(".hero h1")).to_have_text("绵阳城市智脑")
    screenshot(page, "01-home-anonymous-zh")

    page.get_by_role("link", name="登录", exact=True).click()
    expect(page.get_by_role("heading", name="登录城市智脑")).to_be_visible()
    page.get_by_label("用户名").fill(seeded.admin_username)
    page.get_by_label("密码").fill("not-the-password")
    page.get_by_role("button", name="登录").click()
    expect(page.get_by_role("alert")).to_have_text("用户名或密码错误。")
    expect(page.get_by_label("用户名")).to_have_value(seeded.admin_username)
    page.get_by_label("密码").fill(seeded.admin_password)
    screenshot(page, "02-login-zh")
    page.get_by_role("button", name="登录").click()

    expect(page).to_have_url(live_server.url + "/")
    expect(page.locator(".hero h1")).to_have_text("绵阳城市智脑")
    expect(page.locator(".who")).to_have_text("平台管理员")
    expect(page.locator(".welcome")).to_have_text("欢迎您，平台管理员。")
    expect(page.get_by_role("navigation", name="主导航").get_by_role("link", name="用户管理")).to_be_visible()
    screenshot(page, "03-home-signed-in-zh")

    page.get_by_role("link", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator(".hero h1")).to_have_text("Mianyang City Brain")
    expect(page.locator(".welcome")).to_have_text("Welcome, 平台管理员.")
    expect(page.get_by_role("heading", name="Digital base")).to_be_visible()
    screenshot(page, "04-home-signed-in-en")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Users").click()
    expect(page).to_have_url(live_server.url + "/identity/users")
    expect(page.get_by_role("heading", name="Users", exact=True)).to_be_visible()
    admin_row = page.locator('tr[data-user="admin"]')
    expect(admin_row).to_contain_text("市大数据中心")
    expect(admin_row).to_contain_text("Active")
    screenshot(page, "05-users-en")
    assert (ARTIFACTS / "05-users-en.png").stat().st_size > 10_000


def test_admin_pages_in_chinese(page: Page, live_server: LiveServer, seeded: Seeded) -> None:
    from playwright.sync_api import expect

    sign_in(page, live_server, seeded)

    side_nav(page, "部门管理").click()
    expect(page.get_by_role("heading", name="组织架构")).to_be_visible()
    page.get_by_label("中文名称").fill("市交通运输局")
    page.get_by_label("编码").fill("jtj")
    page.get_by_label("上级部门").select_option(label="绵阳市人民政府")
    page.get_by_role("button", name="创建部门").click()
    expect(page.get_by_role("status")).to_have_text("创建成功。")
    expect(page.locator("ul.tree").first).to_contain_text("市交通运输局")
    screenshot(page, "06-departments-zh")

    side_nav(page, "用户管理").click()
    page.get_by_role("link", name="新建用户").click()
    page.get_by_label("用户名").fill("zhang.wei")
    page.get_by_label("姓名").fill("张伟")
    page.get_by_label("部门").select_option(label="　└ 市交通运输局")
    page.get_by_label("初始密码").fill("Str0ng-pass-2024")
    page.get_by_label("联系电话").fill("13812345678")
    page.get_by_role("button", name="创建用户").click()
    expect(page.get_by_role("status")).to_have_text("创建成功。")
    expect(page.locator("dl.facts")).to_contain_text("138****5678")
    expect(page.locator("dl.facts")).to_contain_text("市交通运输局")
    page.get_by_label("角色", exact=True).select_option(label="工作人员")
    page.get_by_role("button", name="授予角色").click()
    expect(page.get_by_role("status")).to_have_text("角色授予成功。")
    screenshot(page, "07-user-detail-zh")

    # the live search narrows the list without a page load (htmx)
    side_nav(page, "用户管理").click()
    page.get_by_role("searchbox").fill("zhang")
    expect(page.locator("tr[data-user]")).to_have_count(1)
    expect(page).to_have_url(re.compile(r"q=zhang"))
    screenshot(page, "08-users-search-zh")

    side_nav(page, "角色管理").click()
    page.get_by_role("link", name="新建角色").click()
    page.get_by_label("编码").fill("traffic_duty")
    page.get_by_label("中文名称").fill("交通值班员")
    page.get_by_label("查看部门").check()
    page.get_by_label("查看用户").check()
    screenshot(page, "09-role-new-zh")
    page.get_by_role("button", name="创建角色").click()
    expect(page.get_by_role("status")).to_have_text("创建成功。")
    side_nav(page, "角色管理").click()
    declared = len(live_server.app.state.ctx.permissions)
    expect(page.locator('tr[data-role="traffic_duty"]')).to_contain_text(f"2 / {declared} 项")
    screenshot(page, "10-roles-zh")

    side_nav(page, "API 令牌").click()
    page.get_by_label("令牌名称").fill("水位监测网关")
    page.get_by_label("查看部门").check()
    page.get_by_role("button", name="创建令牌").click()
    secret = page.locator("code.secret")
    expect(secret).to_have_text(re.compile(r"^cbt_\d+_\S{20,}$"))
    screenshot(page, "11-token-created-zh")
    side_nav(page, "API 令牌").click()  # shown once: gone on the next visit
    expect(page.locator("code.secret")).to_have_count(0)
    expect(page.locator("tr[data-token]")).to_have_count(1)
    expect(page.locator("tr[data-token]")).to_contain_text("水位监测网关")
    screenshot(page, "12-tokens-zh")
