"""My notifications (我的通知): the page, reading, ownership, and the shell's unread badge."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from citybrain.apps.warning.models import Notification
from citybrain.core.asgi import create_app
from citybrain.core.context import AppContext
from citybrain.core.permissions import SYSTEM
from citybrain.core.settings import Settings
from citybrain.sdk import utcnow
from tests.apps.warning.test_publishing import PASSWORD, delivered, make_user, raise_orange, subscribe
from tests.conftest import Seeded, login

HTML = {"Accept": "text/html"}
NO_HEADER = {**HTML, "X-CSRF-Token": ""}  # the token must come from the form field
BADGE = 'data-badge="/api/warning/notifications/unread-count"'
PAGE = "/warning/notifications"


@pytest.fixture
def app(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> FastAPI:
    """The warning app and what it requires, delivering in-app notifications quickly."""
    monkeypatch.setenv("CITYBRAIN_WARNING_DELIVERY_POLL_SECONDS", "0.05")
    return create_app(settings.model_copy(update={"apps": ("identity", "context", "geo", "warning")}))


@pytest.fixture
def other(app: FastAPI) -> Iterator[Callable[[str], TestClient]]:
    """Clients of the same running app signed in as other users."""
    made: list[TestClient] = []

    def make(username: str) -> TestClient:
        found = TestClient(app, base_url="http://testserver")
        made.append(found)
        login(found, username, PASSWORD)
        return found

    yield make
    for found in made:
        found.close()


def page(client: TestClient, path: str = PAGE, lang: str = "zh_CN") -> str:
    """A page's HTML (200 expected)."""
    sep = "&" if "?" in path else "?"
    response = client.get(f"{path}{sep}lang={lang}", headers=HTML)
    assert response.status_code == 200, response.text[:2000]
    return response.text


def form(client: TestClient, **fields: str) -> dict[str, str]:
    """Form fields with the browser's CSRF token (as the page's hidden field carries it)."""
    return {"csrf_token": client.cookies.get("cb_csrf") or "", **fields}


def listed(html: str) -> list[int]:
    """The ids of the notifications a page lists, in order."""
    return [int(n) for n in re.findall(r'data-notification="(\d+)"', html)]


def unread(client: TestClient) -> int:
    """The unread count the shell's badge reads."""
    response = client.get("/api/warning/notifications/unread-count")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"unread"}
    count: int = body["unread"]
    return count


def add_notifications(ctx: AppContext, user_id: int, count: int, warning_id: int = 1) -> list[int]:
    """Store `count` notifications for a user, oldest first; their ids."""
    now = utcnow()
    params = {
        "title": "PM2.5 超标",
        "title_en": "PM2.5 high",
        "where": "涪城区",
        "where_en": "Fucheng",
        "time": "",
    }
    with ctx.uow(SYSTEM, "test.notifications") as uow:
        rows = [
            Notification(
                user_id=user_id,
                warning_id=warning_id,
                transition="raised",
                level="blue",
                params=params,
                created_at=now - timedelta(minutes=count - i),
            )
            for i in range(count)
        ]
        uow.session.add_all(rows)
        uow.session.flush()
        return [r.id for r in rows]


def test_the_page_lists_marks_unread_and_opening_reads(api: TestClient, ctx: AppContext) -> None:
    sub = subscribe(api, channel="inapp")
    warning_id = raise_orange(api, ctx)
    delivered(ctx, sub["id"])
    html = page(api)
    assert "我的通知" in html and "全部标为已读" in html
    (note_id,) = listed(html)
    assert 'class="notification level-orange unread"' in html and "未读" in html
    assert f'data-warning="{warning_id}"' in html and "PM2.5 超标" in html and "涪城区" in html
    assert "/static/warning/warning/notifications.js" in html
    english = page(api, lang="en")
    assert "My notifications" in english and "Mark all read" in english and "PM2.5 high" in english
    assert listed(page(api, f"{PAGE}?unread=1")) == [note_id]
    assert unread(api) == 1
    opened = api.post(f"{PAGE}/{note_id}/open", data=form(api), headers=NO_HEADER, follow_redirects=False)
    assert opened.status_code == 303 and opened.headers["location"] == f"/warning/warnings/{warning_id}"
    assert unread(api) == 0
    html = page(api)
    assert listed(html) == [note_id] and "unread" not in re.findall(r'class="notification ([^"]*)"', html)[0]
    assert "已读" in html and "全部标为已读" not in html  # nothing left to mark
    assert listed(page(api, f"{PAGE}?unread=1")) == [] and "没有未读通知" in page(api, f"{PAGE}?unread=1")
    again = api.post(f"{PAGE}/{note_id}/open", data=form(api), headers=NO_HEADER, follow_redirects=False)
    assert again.status_code == 303  # reading it again changes nothing


def test_mark_one_and_all_read_newest_first_and_paginated(
    api: TestClient, ctx: AppContext, seeded: Seeded
) -> None:
    ids = add_notifications(ctx, seeded.admin_id, 23)
    first = page(api)
    assert listed(first) == list(reversed(ids))[:20]  # newest first, 20 a page
    assert 'rel="next"' in first and "第 1 / 2 页" in first
    second = page(api, f"{PAGE}?page=2")
    assert listed(second) == list(reversed(ids))[20:] and 'rel="prev"' in second
    assert unread(api) == 23
    marked = api.post(
        f"{PAGE}/{ids[0]}/read",
        data=form(api, unread="1", page="2"),
        headers=NO_HEADER,
        follow_redirects=False,
    )
    assert marked.status_code == 303 and marked.headers["location"] == f"{PAGE}?unread=1&page=2&ok=read"
    assert unread(api) == 22
    assert ids[0] not in listed(page(api, f"{PAGE}?unread=1&page=2"))
    done = api.post(f"{PAGE}/read-all", data=form(api), headers=NO_HEADER, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == f"{PAGE}?ok=read-all"
    assert unread(api) == 0
    assert "全部通知已标为已读" in page(api, f"{PAGE}?ok=read-all")
    with ctx.read() as session:
        assert session.scalar(select(Notification.id).where(Notification.read_at.is_(None))) is None
    # htmx swaps the list in place: the redirect it follows answers the page with the list
    swapped = api.post(f"{PAGE}/read-all", data=form(api), headers={**HTML, "HX-Request": "true"})
    assert swapped.status_code == 200 and 'id="notification-list"' in swapped.text


@pytest.mark.parametrize("query", ["page=0", "page=abc", "unread=2", "unread=true", "page=100001"])
def test_bad_queries_are_problems(api: TestClient, query: str) -> None:
    response = api.get(f"{PAGE}?{query}")
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")


def test_bad_posts_change_nothing(api: TestClient, ctx: AppContext, seeded: Seeded) -> None:
    (note_id,) = add_notifications(ctx, seeded.admin_id, 1)
    assert api.post(f"{PAGE}/999999/open", data=form(api), headers=NO_HEADER).status_code == 404
    assert api.post(f"{PAGE}/0/read", data=form(api), headers=NO_HEADER).status_code == 422
    bad_page = api.post(f"{PAGE}/{note_id}/read", data=form(api, page="0"), headers=NO_HEADER)
    assert bad_page.status_code == 422
    no_token = api.post(f"{PAGE}/read-all", data={}, headers=NO_HEADER)
    assert no_token.status_code == 403
    assert unread(api) == 1


def test_a_user_never_sees_or_reads_another_users_notifications(
    api: TestClient, ctx: AppContext, seeded: Seeded, other: Callable[[str], TestClient]
) -> None:
    reader_id = make_user(ctx, seeded, "reader", ["warning.warning.read"])
    make_user(ctx, seeded, "nobody", [])
    reader = other("reader")
    (theirs,) = add_notifications(ctx, reader_id, 1)
    (mine,) = add_notifications(ctx, seeded.admin_id, 1)
    assert listed(page(reader)) == [theirs] and listed(page(api)) == [mine]
    assert api.post(f"{PAGE}/{theirs}/open", data=form(api), headers=NO_HEADER).status_code == 404
    assert api.post(f"{PAGE}/{theirs}/read", data=form(api), headers=NO_HEADER).status_code == 404
    assert (
        api.post(f"{PAGE}/read-all", data=form(api), headers=NO_HEADER, follow_redirects=False).status_code
        == 303
    )
    assert (unread(api), unread(reader)) == (0, 1)  # marking all read marks only mine
    nobody = other("nobody")
    denied = nobody.get(PAGE, headers=HTML)
    assert denied.status_code == 403 and "warning.warning.read" in denied.text
    anonymous = TestClient(api.app, base_url="http://testserver")
    redirected = anonymous.get(PAGE, headers=HTML, follow_redirects=False)
    assert redirected.status_code == 303 and redirected.headers["location"].startswith(
        "/identity/login?next="
    )
    assert anonymous.get("/api/warning/notifications/unread-count").status_code == 401


def test_the_shell_carries_the_badge_for_readers_only(
    api: TestClient, ctx: AppContext, seeded: Seeded, other: Callable[[str], TestClient]
) -> None:
    add_notifications(ctx, seeded.admin_id, 3)
    shell = page(api, "/warning/warnings")
    entry = re.search(r'<a class="side-link[^"]*" href="/warning/notifications"[^>]*>(.*?)</a>', shell, re.S)
    assert entry is not None and "我的通知" in entry.group(1) and BADGE in entry.group(1)
    assert "/static/core/js/shell.js" in shell
    assert unread(api) == 3
    assert 'aria-current="page"' in re.findall(r'<a class="side-link active"[^>]*>', page(api))[0]
    make_user(ctx, seeded, "nobody", [])
    nobody = other("nobody")
    home = nobody.get("/", headers=HTML)
    assert home.status_code == 200 and BADGE not in home.text
    assert nobody.get("/api/warning/notifications/unread-count").status_code == 403
