"""Identity pages over the real app: sign-in, language, CSRF, permissions and the admin forms."""

from __future__ import annotations

import html
import re
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi.testclient import TestClient

from citybrain.apps.identity import schemas, services
from citybrain.core.context import AppContext
from citybrain.core.errors import Unauthorized
from citybrain.core.permissions import SYSTEM
from tests.conftest import Seeded

HTML = {"Accept": "text/html"}
PASSWORD = "Str0ng-pass-2024"
ROOT = Path(__file__).resolve().parents[3]
ADMIN_PAGES = (
    "/identity/departments",
    "/identity/users",
    "/identity/users/new",
    "/identity/roles",
    "/identity/roles/new",
    "/identity/tokens",
)


def csrf(client: TestClient) -> str:
    """The browser's CSRF cookie (set on the first page visit)."""
    token = client.cookies.get("cb_csrf")
    assert token, "no CSRF cookie yet: visit a page first"
    return token


def submit(
    client: TestClient, url: str, data: dict[str, str | list[str]] | None = None, with_token: bool = True
) -> httpx.Response:
    """POST a form the way a browser does: urlencoded, the hidden CSRF field, no redirect followed."""
    fields: dict[str, str | list[str]] = dict(data or {})
    if with_token:
        fields["csrf_token"] = csrf(client)
    return client.post(url, data=fields, headers=HTML, follow_redirects=False)


def page(client: TestClient, url: str) -> httpx.Response:
    """GET a page as a browser."""
    return client.get(url, headers=HTML, follow_redirects=False)


def sign_in(client: TestClient, username: str, password: str) -> httpx.Response:
    """Sign in through the real login form; the client keeps the session cookie."""
    client.headers.pop("X-CSRF-Token", None)
    assert page(client, "/identity/login").status_code == 200
    return submit(client, "/identity/login", {"username": username, "password": password, "next": "/"})


def text_of(response: httpx.Response) -> str:
    """The page's text with tags dropped and entities decoded (for readable assertions)."""
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.text)))


def make_user(
    ctx: AppContext,
    seeded: Seeded,
    username: str,
    role: str | None = None,
    department: int | None = None,
    **extra: str,
) -> schemas.UserRead:
    """A user in the city's big-data centre, with a built-in role granted there (or none)."""
    dept = department or seeded.city_dept
    user = services.create_user(
        ctx,
        SYSTEM,
        schemas.UserCreate(
            username=username, display_name=f"{username} 同志", department_id=dept, password=PASSWORD, **extra
        ),
    )
    if role:
        services.assign_role(
            ctx, SYSTEM, user.id, schemas.AssignmentCreate(role_id=seeded.roles[role], department_id=dept)
        )
    return user


@pytest.fixture
def admin(client: TestClient, seeded: Seeded) -> TestClient:
    """A browser signed in as the city-wide platform admin through the login form."""
    assert sign_in(client, seeded.admin_username, seeded.admin_password).status_code == 303
    return client


# --- sign-in and language ----------------------------------------------------------------------


def test_login_page_is_chinese_by_default(client: TestClient) -> None:
    response = page(client, "/identity/login")
    assert response.status_code == 200
    assert '<html lang="zh-CN">' in response.text
    text = text_of(response)
    assert "登录城市智脑" in text
    assert "用户名" in text and "密码" in text
    assert "绵阳城市智脑" in text
    assert "Sign in" not in text
    assert f'name="csrf_token" value="{csrf(client)}"' in response.text


def test_language_switch_to_english_and_back(client: TestClient) -> None:
    switched = client.get("/lang/en?next=/identity/login", follow_redirects=False)
    assert switched.status_code == 303
    assert switched.headers["location"] == "/identity/login"
    english = page(client, "/identity/login")
    assert '<html lang="en">' in english.text
    assert "Sign in to the City Brain" in english.text
    assert "Mianyang City Brain" in english.text
    assert "登录城市智脑" not in english.text
    client.get("/lang/zh_CN?next=/")
    assert "登录城市智脑" in page(client, "/identity/login").text


def test_language_switch_refuses_foreign_targets(client: TestClient) -> None:
    response = client.get("/lang/en?next=//evil.example/", follow_redirects=False)
    assert response.headers["location"] == "/"


def test_form_login_signs_in_and_follows_next(client: TestClient, seeded: Seeded) -> None:
    client.get("/identity/login")
    response = submit(
        client,
        "/identity/login",
        {"username": "admin", "password": seeded.admin_password, "next": "/identity/users"},
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/identity/users"
    home = page(client, "/")
    assert "欢迎您，平台管理员。" in text_of(home)
    assert "退出登录" in home.text


def test_login_refuses_foreign_next(client: TestClient, seeded: Seeded) -> None:
    client.get("/identity/login")
    response = submit(
        client,
        "/identity/login",
        {"username": "admin", "password": seeded.admin_password, "next": "https://evil.example/"},
    )
    assert response.headers["location"] == "/"


def test_wrong_password_then_lockout(client: TestClient, seeded: Seeded, ctx: AppContext) -> None:
    client.get("/identity/login")
    for _ in range(ctx.settings.login_max_failures):
        response = submit(client, "/identity/login", {"username": "admin", "password": "wrong-password"})
        assert response.status_code == 401
        assert "用户名或密码错误。" in text_of(response)
        assert 'value="admin"' in response.text  # the username is kept, the password is not
        assert "cb_session" not in response.cookies
    locked = submit(client, "/identity/login", {"username": "admin", "password": seeded.admin_password})
    assert locked.status_code == 423
    message = text_of(locked)
    assert "因多次登录失败，账号已被锁定" in message
    assert re.search(r"请于 \d{4}-\d{2}-\d{2} \d{2}:\d{2} 之后再试", message)
    assert "cb_session" not in locked.cookies


def test_unknown_user_gets_the_same_answer(client: TestClient, seeded: Seeded) -> None:
    client.get("/identity/login")
    response = submit(client, "/identity/login", {"username": "nobody", "password": "whatever-pass"})
    assert response.status_code == 401
    assert "用户名或密码错误。" in text_of(response)


def test_form_post_without_csrf_token_is_refused(client: TestClient, seeded: Seeded) -> None:
    client.get("/identity/login")
    response = submit(
        client, "/identity/login", {"username": "admin", "password": seeded.admin_password}, with_token=False
    )
    assert response.status_code == 403
    assert "表单已过期或来源不明" in text_of(response)
    assert "cb_session" not in response.cookies


def test_signed_in_form_without_csrf_token_changes_nothing(admin: TestClient, ctx: AppContext) -> None:
    before = len(services.list_departments(ctx, SYSTEM))
    response = submit(
        admin, "/identity/departments", {"code": "x-dept", "name_zh": "伪造部门"}, with_token=False
    )
    assert response.status_code == 403
    forged = submit(
        admin,
        "/identity/departments",
        {"code": "x-dept", "name_zh": "伪造部门", "csrf_token": "forged"},
        with_token=False,
    )
    assert forged.status_code == 403
    assert len(services.list_departments(ctx, SYSTEM)) == before


def test_logout_closes_the_session(admin: TestClient) -> None:
    response = submit(admin, "/identity/logout")
    assert response.status_code == 303
    assert page(admin, "/identity/users").status_code == 303  # back to the login page


# --- who may see what ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_admin_pages_render_for_the_admin(admin: TestClient, path: str) -> None:
    response = page(admin, path)
    assert response.status_code == 200, response.text
    assert '<html lang="zh-CN">' in response.text
    assert 'class="side-link active"' in response.text


def test_anonymous_is_sent_to_the_login_page(client: TestClient, seeded: Seeded) -> None:
    response = page(client, "/identity/users?q=x")
    assert response.status_code == 303
    assert response.headers["location"] == "/identity/login?next=/identity/users%3Fq%3Dx"


@pytest.mark.parametrize(
    "path", ["/identity/users", "/identity/users/new", "/identity/roles", "/identity/roles/new"]
)
def test_staff_may_not_open_user_and_role_pages(
    client: TestClient, ctx: AppContext, seeded: Seeded, path: str
) -> None:
    make_user(ctx, seeded, "staffer", "staff")
    sign_in(client, "staffer", PASSWORD)
    response = page(client, path)
    assert response.status_code == 403
    text = text_of(response)
    assert "无权访问" in text
    assert "您没有执行此操作的权限" in text


def test_staff_sees_departments_read_only_and_own_nav(
    client: TestClient, ctx: AppContext, seeded: Seeded
) -> None:
    make_user(ctx, seeded, "staffer", "staff")
    sign_in(client, "staffer", PASSWORD)
    response = page(client, "/identity/departments")
    assert response.status_code == 200
    assert "涪城区" in response.text
    assert 'action="/identity/departments"' not in response.text
    assert "您没有新建部门的权限。" in response.text
    assert 'href="/identity/users"' not in response.text  # the side navigation hides what is refused
    assert 'href="/identity/tokens"' in response.text
    created = submit(
        client,
        "/identity/departments",
        {"code": "staff-dept", "name_zh": "越权部门", "parent_id": str(seeded.root)},
    )
    assert created.status_code == 403
    assert "您没有执行此操作的权限" in text_of(created)


@pytest.mark.parametrize(
    "path", ["/identity/departments", "/identity/tokens", "/identity/users", "/identity/roles"]
)
def test_user_without_roles_is_refused_everywhere(
    client: TestClient, ctx: AppContext, seeded: Seeded, path: str
) -> None:
    make_user(ctx, seeded, "nobody")
    sign_in(client, "nobody", PASSWORD)
    assert page(client, path).status_code == 403


def test_department_admin_sees_only_own_department(
    client: TestClient, ctx: AppContext, seeded: Seeded
) -> None:
    make_user(ctx, seeded, "fc_admin", "department_admin", department=seeded.district)
    make_user(ctx, seeded, "fc_clerk", department=seeded.district)
    make_user(ctx, seeded, "yx_clerk", department=seeded.other_district)
    sign_in(client, "fc_admin", PASSWORD)
    response = page(client, "/identity/users")
    assert response.status_code == 200
    assert 'data-user="fc_clerk"' in response.text
    assert 'data-user="yx_clerk"' not in response.text
    assert 'data-user="admin"' not in response.text
    other = services.list_users(ctx, SYSTEM, q="yx_clerk").items[0]
    assert page(client, f"/identity/users/{other.id}").status_code == 404


# --- departments ----------------------------------------------------------------------------------


def test_departments_page_shows_the_tree(admin: TestClient, seeded: Seeded) -> None:
    response = page(admin, "/identity/departments")
    body = response.text
    root = body.index(f'data-dept="{seeded.root}"')
    child = body.index(f'data-dept="{seeded.district}"')
    assert root < child
    # the district is nested inside the root's list item: a list opens between them, none closes
    assert body.count('<ul class="tree">', root, child) == 1
    assert "</ul>" not in body[root:child]
    assert "绵阳市人民政府" in body and "区（市）县" in body


def test_create_department_through_the_form(admin: TestClient, ctx: AppContext, seeded: Seeded) -> None:
    response = submit(
        admin,
        "/identity/departments",
        {
            "code": "jtj",
            "name_zh": "市交通运输局",
            "name_en": "Transport Bureau",
            "kind": "department",
            "parent_id": str(seeded.root),
            "sort": "5",
        },
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/identity/departments?ok=created"
    shown = page(admin, response.headers["location"])
    assert "创建成功。" in shown.text
    assert "市交通运输局" in shown.text
    created = next(d for d in services.list_departments(ctx, SYSTEM) if d.code == "jtj")
    assert created.parent_id == seeded.root and created.sort == 5 and created.name_en == "Transport Bureau"
    admin.get("/lang/en?next=/")
    assert "Transport Bureau" in page(admin, "/identity/departments").text


def test_department_form_errors_rerender_with_alert(admin: TestClient, seeded: Seeded) -> None:
    taken = submit(
        admin,
        "/identity/departments",
        {"code": "dsj", "name_zh": "重复的部门", "parent_id": str(seeded.root)},
    )
    assert taken.status_code == 409
    assert "编码为 dsj 的部门已存在。" in text_of(taken)
    assert 'value="重复的部门"' in taken.text  # what was typed is kept
    invalid = submit(admin, "/identity/departments", {"code": "!", "name_zh": "", "sort": "abc"})
    assert invalid.status_code == 422
    message = text_of(invalid)
    assert "编码格式不正确。" in message
    assert "中文名称至少需要 1 个字符。" in message
    assert "排序号必须是整数。" in message
    bad_kind = submit(
        admin,
        "/identity/departments",
        {"code": "ok-code", "name_zh": "部门", "kind": "empire", "parent_id": str(seeded.root)},
    )
    assert bad_kind.status_code == 422
    assert "类型的取值无效。" in text_of(bad_kind)
    admin.get("/lang/en?next=/")
    english = submit(
        admin, "/identity/departments", {"code": "dsj", "name_zh": "重复", "parent_id": str(seeded.root)}
    )
    assert "A department with code dsj exists already." in text_of(english)


def test_edit_department_name_and_parent(admin: TestClient, ctx: AppContext, seeded: Seeded) -> None:
    form = page(admin, f"/identity/departments/{seeded.other_district}")
    assert form.status_code == 200
    assert 'value="游仙区"' in form.text
    response = submit(
        admin,
        f"/identity/departments/{seeded.other_district}",
        {
            "name_zh": "游仙区（新）",
            "name_en": "Youxian",
            "kind": "district",
            "parent_id": str(seeded.district),
            "sort": "2",
        },
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/identity/departments?ok=updated"
    moved = services.get_department(ctx, SYSTEM, seeded.other_district)
    assert (moved.name_zh, moved.parent_id) == ("游仙区（新）", seeded.district)
    assert "修改已保存。" in page(admin, response.headers["location"]).text
    # a department cannot go under its own child
    cycle = submit(
        admin,
        f"/identity/departments/{seeded.district}",
        {"name_zh": "涪城区", "kind": "district", "parent_id": str(seeded.other_district)},
    )
    assert cycle.status_code == 422
    assert "部门不能移动到其自身或其下级部门之下。" in text_of(cycle)


def test_delete_department_asks_first(admin: TestClient, ctx: AppContext, seeded: Seeded) -> None:
    confirm = page(admin, f"/identity/departments/{seeded.other_district}/delete")
    assert confirm.status_code == 200
    assert "确定删除部门“游仙区”吗？" in text_of(confirm)
    assert f'action="/identity/departments/{seeded.other_district}/delete"' in confirm.text
    response = submit(admin, f"/identity/departments/{seeded.other_district}/delete")
    assert response.status_code == 303
    assert response.headers["location"] == "/identity/departments?ok=deleted"
    assert seeded.other_district not in {d.id for d in services.list_departments(ctx, SYSTEM)}
    # the admin's own department has a user: refused with the reason, nothing deleted
    refused = submit(admin, f"/identity/departments/{seeded.city_dept}/delete")
    assert refused.status_code == 409
    assert "该部门还有用户" in text_of(refused)
    assert page(admin, "/identity/departments/999999").status_code == 404
    assert page(admin, "/identity/departments/99999999999").status_code == 422  # beyond the id column
    assert page(admin, "/identity/users/0").status_code == 422


# --- users --------------------------------------------------------------------------------------


def test_create_user_through_the_form(admin: TestClient, ctx: AppContext, seeded: Seeded) -> None:
    form = page(admin, "/identity/users/new")
    assert "涪城区" in form.text
    response = submit(
        admin,
        "/identity/users",
        {
            "username": "zhang.wei",
            "display_name": "张伟",
            "department_id": str(seeded.district),
            "password": PASSWORD,
            "phone": "13812345678",
            "email": "zhangwei@example.cn",
        },
    )
    assert response.status_code == 303
    location = response.headers["location"]
    assert re.fullmatch(r"/identity/users/\d+\?ok=created", location)
    detail = page(admin, location)
    assert detail.status_code == 200
    text = text_of(detail)
    assert "创建成功。" in text
    assert "张伟" in text and "涪城区" in text
    assert "138****5678" in text and "13812345678" not in detail.text  # masked, never raw
    assert "zhangwei@example.cn" not in detail.text
    listed = page(admin, "/identity/users")
    assert 'data-user="zhang.wei"' in listed.text
    assert "13812345678" not in listed.text
    # the new user can sign in with the password set by the admin
    services.login(ctx, "zhang.wei", PASSWORD)


def test_user_form_errors(admin: TestClient, seeded: Seeded) -> None:
    taken = submit(
        admin,
        "/identity/users",
        {
            "username": "admin",
            "display_name": "重名",
            "department_id": str(seeded.district),
            "password": PASSWORD,
        },
    )
    assert taken.status_code == 409
    assert "用户名 admin 已被占用。" in text_of(taken)
    short = submit(
        admin,
        "/identity/users",
        {"username": "li", "display_name": "李", "department_id": "", "password": "short"},
    )
    assert short.status_code == 422
    message = text_of(short)
    assert "用户名格式不正确。" in message
    assert "部门为必填项。" in message
    assert "密码至少需要 10 个字符。" in message
    assert 'value="李"' in short.text


def test_users_are_filtered_searched_and_paged(admin: TestClient, ctx: AppContext, seeded: Seeded) -> None:
    for i in range(22):
        services.create_user(
            ctx,
            SYSTEM,
            schemas.UserCreate(
                username=f"fc{i:02d}",
                display_name=f"涪城{i:02d}",
                department_id=seeded.district,
                password=PASSWORD,
            ),
        )
    first = page(admin, f"/identity/users?department_id={seeded.district}")
    assert first.status_code == 200
    assert first.text.count("data-user=") == 20
    assert 'data-user="admin"' not in first.text
    assert "第 1–20 条，共 22 名用户" in text_of(first)
    assert "第 1 / 2 页" in text_of(first)
    second = page(admin, f"/identity/users?department_id={seeded.district}&page=2")
    assert second.text.count("data-user=") == 2
    assert 'rel="prev"' in second.text and 'rel="next"' not in second.text
    assert f"department_id={seeded.district}" in re.search(r'href="([^"]+)" rel="prev"', second.text)[1]
    search = page(admin, "/identity/users?q=fc07")
    assert search.text.count("data-user=") == 1
    assert 'value="fc07"' in search.text
    none = page(admin, "/identity/users?q=nobody-here")
    assert "没有符合条件的用户。" in none.text


def test_user_detail_shows_roles_departments_and_china_time(
    admin: TestClient, ctx: AppContext, seeded: Seeded
) -> None:
    user = services.get_user(ctx, SYSTEM, seeded.admin_id)
    assert user.last_login_at is not None
    response = page(admin, f"/identity/users/{seeded.admin_id}")
    text = text_of(response)
    assert "平台管理员" in text and "市大数据中心" in text and "全市" in text
    local = user.last_login_at.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M")
    assert local in text


def test_edit_user_keeps_masked_contacts(admin: TestClient, ctx: AppContext, seeded: Seeded) -> None:
    user = make_user(ctx, seeded, "wang", phone="13900001111")
    response = submit(
        admin,
        f"/identity/users/{user.id}",
        {"display_name": "王芳", "department_id": str(seeded.district), "phone": "", "email": ""},
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/identity/users/{user.id}?ok=updated"
    changed = services.get_user(ctx, SYSTEM, user.id)
    assert (changed.display_name, changed.department_id, changed.phone) == (
        "王芳",
        seeded.district,
        "139****1111",
    )
    bad = submit(admin, f"/identity/users/{user.id}", {"display_name": "王芳", "phone": "not a phone"})
    assert bad.status_code == 422
    assert "联系电话格式不正确。" in text_of(bad)


def test_reset_password_and_unlock(
    admin: TestClient, client: TestClient, ctx: AppContext, seeded: Seeded
) -> None:
    user = make_user(ctx, seeded, "locked.one", "staff")
    for _ in range(ctx.settings.login_max_failures):
        with pytest.raises(Unauthorized):
            services.login(ctx, "locked.one", "wrong-password")
    detail = page(admin, f"/identity/users/{user.id}")
    assert "已锁定" in detail.text
    assert f'action="/identity/users/{user.id}/unlock"' in detail.text
    unlocked = submit(admin, f"/identity/users/{user.id}/unlock")
    assert unlocked.headers["location"] == f"/identity/users/{user.id}?ok=unlocked"
    assert "账号已解锁。" in page(admin, unlocked.headers["location"]).text
    assert services.get_user(ctx, SYSTEM, user.id).locked_until is None
    weak = submit(admin, f"/identity/users/{user.id}/password", {"password": "short"})
    assert weak.status_code == 422
    assert "密码至少需要 10 个字符。" in text_of(weak)
    reset = submit(admin, f"/identity/users/{user.id}/password", {"password": "N3w-password-ok"})
    assert reset.headers["location"] == f"/identity/users/{user.id}?ok=password"
    services.login(ctx, "locked.one", "N3w-password-ok")


def test_grant_and_revoke_a_role(admin: TestClient, ctx: AppContext, seeded: Seeded) -> None:
    user = make_user(ctx, seeded, "li.na")
    detail = page(admin, f"/identity/users/{user.id}")
    assert "该用户尚未被授予任何角色" in detail.text
    granted = submit(
        admin,
        f"/identity/users/{user.id}/roles",
        {
            "role_id": str(seeded.roles["staff"]),
            "department_id": str(seeded.district),
            "include_subtree": "1",
        },
    )
    assert granted.status_code == 303
    assert granted.headers["location"] == f"/identity/users/{user.id}?ok=granted"
    shown = text_of(page(admin, granted.headers["location"]))
    assert "角色授予成功。" in shown
    assert "工作人员" in shown and "涪城区" in shown and "包含" in shown
    twice = submit(
        admin,
        f"/identity/users/{user.id}/roles",
        {
            "role_id": str(seeded.roles["staff"]),
            "department_id": str(seeded.district),
            "include_subtree": "1",
        },
    )
    assert twice.status_code == 409
    assert "该用户在此范围内已拥有这个角色。" in text_of(twice)
    (assignment,) = services.list_assignments(ctx, SYSTEM, user.id)
    revoked = submit(admin, f"/identity/users/{user.id}/roles/{assignment.id}/revoke")
    assert revoked.headers["location"] == f"/identity/users/{user.id}?ok=revoked"
    assert services.list_assignments(ctx, SYSTEM, user.id) == []


def test_deactivate_asks_first_and_reactivate(admin: TestClient, ctx: AppContext, seeded: Seeded) -> None:
    user = make_user(ctx, seeded, "leaving", "staff")
    confirm = page(admin, f"/identity/users/{user.id}/deactivate")
    assert "确定停用 leaving 同志（leaving）的账号吗？" in text_of(confirm)
    done = submit(admin, f"/identity/users/{user.id}/deactivate")
    assert done.headers["location"] == f"/identity/users/{user.id}?ok=deactivated"
    assert "账号已停用。" in page(admin, done.headers["location"]).text
    assert not services.get_user(ctx, SYSTEM, user.id).is_active
    again = submit(admin, f"/identity/users/{user.id}/activate")
    assert again.headers["location"] == f"/identity/users/{user.id}?ok=activated"
    assert services.get_user(ctx, SYSTEM, user.id).is_active
    myself = submit(admin, f"/identity/users/{seeded.admin_id}/deactivate")
    assert myself.status_code == 409
    assert "不能停用自己的账号。" in text_of(myself)


# --- roles --------------------------------------------------------------------------------------


def test_roles_list_counts_permissions(admin: TestClient, ctx: AppContext) -> None:
    response = page(admin, "/identity/roles")
    text = text_of(response)
    total = len(ctx.permissions)
    assert f"全部权限（{total} 项）" in text
    assert f"2 / {total} 项" in text  # staff
    assert "工作人员" in text and "内置" in text


def test_role_form_groups_permissions_with_chinese_names(admin: TestClient) -> None:
    response = page(admin, "/identity/roles/new")
    assert response.status_code == 200
    body = response.text
    assert '<fieldset class="perm-group" data-app="identity">' in body
    assert "<legend>身份与权限</legend>" in body
    assert "查看部门" in body and 'value="identity.department.read"' in body
    assert 'value="identity.*"' in body


def test_create_edit_and_delete_a_role(admin: TestClient, ctx: AppContext) -> None:
    response = submit(
        admin,
        "/identity/roles",
        {
            "code": "traffic_duty",
            "name_zh": "交通值班员",
            "name_en": "Traffic duty officer",
            "description": "交通指挥中心值班",
            "permissions": ["identity.department.read", "identity.user.read"],
        },
    )
    assert response.status_code == 303
    location = response.headers["location"]
    role_id = int(re.fullmatch(r"/identity/roles/(\d+)\?ok=created", location)[1])
    role = services.get_role(ctx, SYSTEM, role_id)
    assert role.permissions == ["identity.department.read", "identity.user.read"]
    edit = page(admin, location)
    assert "创建成功。" in edit.text
    assert re.search(r'value="identity.user.read" checked', edit.text)
    assert not re.search(r'value="identity.user.create" checked', edit.text)
    listed = text_of(page(admin, "/identity/roles"))
    assert "交通值班员" in listed and f"2 / {len(ctx.permissions)} 项" in listed
    updated = submit(
        admin,
        f"/identity/roles/{role_id}",
        {
            "name_zh": "交通值班长",
            "name_en": "",
            "description": "",
            "edit_permissions": "1",
            "permissions": ["identity.*"],
        },
    )
    assert updated.headers["location"] == f"/identity/roles/{role_id}?ok=updated"
    assert services.get_role(ctx, SYSTEM, role_id).permissions == ["identity.*"]
    assert "交通值班长" in page(admin, "/identity/roles").text
    assert "确定删除角色“交通值班长”吗？" in text_of(page(admin, f"/identity/roles/{role_id}/delete"))
    deleted = submit(admin, f"/identity/roles/{role_id}/delete")
    assert deleted.headers["location"] == "/identity/roles?ok=deleted"
    assert "交通值班长" not in page(admin, "/identity/roles?ok=deleted").text


def test_role_form_errors(admin: TestClient, seeded: Seeded) -> None:
    taken = submit(
        admin,
        "/identity/roles",
        {"code": "staff", "name_zh": "重复角色", "permissions": ["identity.user.read"]},
    )
    assert taken.status_code == 409
    assert "编码为 staff 的角色已存在。" in text_of(taken)
    assert re.search(r'value="identity.user.read" checked', taken.text)  # the choice is kept
    invalid = submit(admin, "/identity/roles", {"code": "Bad Code", "name_zh": "角色"})
    assert invalid.status_code == 422
    assert "编码格式不正确。" in text_of(invalid)
    unknown = submit(
        admin, "/identity/roles", {"code": "ghost", "name_zh": "幽灵", "permissions": ["identity.ghost.read"]}
    )
    assert unknown.status_code == 422
    assert "未知的权限：identity.ghost.read。" in text_of(unknown)
    builtin = page(admin, f"/identity/roles/{seeded.roles['staff']}")
    assert "内置角色的权限不可修改。" in builtin.text
    assert 'name="edit_permissions"' not in builtin.text
    forced = submit(
        admin,
        f"/identity/roles/{seeded.roles['staff']}",
        {"name_zh": "工作人员", "edit_permissions": "1", "permissions": ["identity.user.read"]},
    )
    assert forced.status_code == 409
    renamed = submit(admin, f"/identity/roles/{seeded.roles['staff']}", {"name_zh": "普通工作人员"})
    assert renamed.status_code == 303
    in_use = submit(admin, f"/identity/roles/{seeded.roles['platform_admin']}/delete")
    assert in_use.status_code == 409
    assert "内置角色不可删除。" in text_of(in_use)


# --- API tokens ---------------------------------------------------------------------------------


def test_token_secret_is_shown_once_and_works(admin: TestClient, ctx: AppContext) -> None:
    response = submit(
        admin,
        "/identity/tokens",
        {"name": "水位网关", "expires_in_days": "30", "scopes": ["identity.department.read"]},
    )
    assert response.status_code == 201
    assert response.headers["cache-control"] == "no-store"
    match = re.search(r'<code class="secret" id="token-secret">(cbt_\d+_[^<]+)</code>', response.text)
    assert match, response.text
    secret = match[1]
    assert "请立即复制令牌：它只显示这一次" in text_of(response)
    listed = page(admin, "/identity/tokens")
    assert secret not in listed.text
    assert "水位网关" in listed.text
    # the secret is a working bearer token limited to its scope
    bearer = {"Authorization": f"Bearer {secret}"}
    assert admin.get("/api/identity/departments", headers=bearer).status_code == 200
    assert admin.get("/api/identity/users", headers=bearer).status_code == 403
    token_id = re.search(r'data-token="(\d+)"', listed.text)[1]
    revoked = submit(admin, f"/identity/tokens/{token_id}/revoke")
    assert revoked.headers["location"] == "/identity/tokens?ok=revoked"
    assert "已撤销" in page(admin, revoked.headers["location"]).text
    assert admin.get("/api/identity/departments", headers=bearer).status_code == 401


def test_token_form_offers_only_held_permissions(client: TestClient, ctx: AppContext, seeded: Seeded) -> None:
    make_user(ctx, seeded, "staffer", "staff")
    sign_in(client, "staffer", PASSWORD)
    response = page(client, "/identity/tokens")
    assert response.status_code == 200
    offered = set(re.findall(r'name="scopes" value="([^"]+)"', response.text))
    assert offered == {"identity.department.read", "identity.token.create"}
    assert "您还没有 API 令牌。" in response.text
    beyond = submit(client, "/identity/tokens", {"name": "越权", "scopes": ["identity.user.read"]})
    assert beyond.status_code == 403
    assert "令牌不能包含 identity.user.read 权限" in text_of(beyond)
    empty = submit(client, "/identity/tokens", {"name": "空", "expires_in_days": "999"})
    assert empty.status_code == 422
    message = text_of(empty)
    assert "请至少选择一项权限范围。" in message
    assert "有效期（天）不能大于 366。" in message
    created = submit(client, "/identity/tokens", {"name": "我的脚本", "scopes": ["identity.token.create"]})
    assert created.status_code == 201


def test_flash_messages_are_only_the_known_ones(admin: TestClient) -> None:
    assert "修改已保存。" in page(admin, "/identity/departments?ok=updated").text
    assert "<script>" not in page(admin, "/identity/departments?ok=<script>").text.split("<body", 1)[1]


# --- catalogue ----------------------------------------------------------------------------------


def test_every_message_has_a_chinese_translation() -> None:
    """`scripts/i18n.sh check` extracts every msgid and finds each translated, placeholders intact."""
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "i18n.sh"), "check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_admin_pages_show_no_untranslated_text(admin: TestClient, seeded: Seeded) -> None:
    for path in (
        *ADMIN_PAGES,
        f"/identity/users/{seeded.admin_id}",
        f"/identity/roles/{seeded.roles['staff']}",
        f"/identity/departments/{seeded.district}",
    ):
        text = text_of(page(admin, path))
        words = set(re.findall(r"\b[A-Z][a-z]{3,}\b", text))
        assert not words - {"English"}, (
            path,
            words,
        )
