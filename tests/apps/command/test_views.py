"""The command pages: the console with counts and the map, the intake form, an event's page and its actions."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tests.apps.command.conftest import CITY_HALL, Org
from tests.conftest import Seeded, login


def test_take_in_a_ticket_and_move_it_from_the_pages(client: TestClient, seeded: Seeded, org: Org) -> None:
    login(client, seeded.admin_username, seeded.admin_password)
    form = client.get("/command/tickets/new")
    assert form.status_code == 200 and "12345" in form.text
    token = client.cookies.get("cb_csrf") or ""
    bad = client.post(
        "/command/tickets/new", data={"csrf_token": token, "caller_phone": "nope", "content": "x"}
    )
    assert bad.status_code == 422 and "caller_phone" in bad.text
    made = client.post(
        "/command/tickets/new",
        data={
            "csrf_token": token, "caller_name": "王五", "caller_phone": "13700002222", "content": "夜间施工噪声",
            "category": "hotline.noise", "lon": str(CITY_HALL[0]), "lat": str(CITY_HALL[1]),
        },
        follow_redirects=False,
    )  # fmt: skip
    assert made.status_code == 303, made.text
    page = client.get(made.headers["location"])
    assert page.status_code == 200 and 'data-action="assign"' in page.text
    assert "<dd>12345热线</dd>" in page.text  # the source by name
    event_id = int(re.search(r"/command/events/(\d+)", made.headers["location"]).group(1))  # type: ignore[union-attr]
    refused = client.post(f"/command/events/{event_id}/actions/sign", data={"csrf_token": token})
    assert refused.status_code == 409
    moved = client.post(
        f"/command/events/{event_id}/actions/assign",
        data={"csrf_token": token, "note": "请办理"},
        follow_redirects=False,
    )
    assert moved.status_code == 303
    console = client.get("/command/events", params={"state": "assigned"})
    assert console.status_code == 200 and 'data-count="hotline.assigned">1<' in console.text
    assert client.get("/command/inbox").status_code == 200
    assert client.get("/command/events", params={"district": "x"}).status_code == 422


def test_kpi_page_with_chart_and_exports(client: TestClient, seeded: Seeded, org: Org) -> None:
    login(client, seeded.admin_username, seeded.admin_password)
    page = client.get("/command/kpi", params={"dimension": "district", "period": "week"})
    assert page.status_code == 200 and 'data-kpi="510703"' in page.text and 'data-kpi="510700"' in page.text
    assert (
        "echarts.min.js" in page.text
        and "/api/command/kpi.xlsx?dimension=district&amp;period=week" in page.text
    )
    bad = client.get("/command/kpi", params={"period": "custom", "start": "2026-02-01", "end": "2026-01-01"})
    assert bad.status_code == 422 and 'role="alert"' in bad.text
    assert client.get("/command/kpi", params={"day": "2026-02-30"}).status_code == 422
    assert client.get("/command/kpi", params={"dimension": "x"}).status_code == 422
