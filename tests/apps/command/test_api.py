"""The command REST API: intake, listing, detail, actions, and bad input answered with problem+json."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from citybrain.core.context import AppContext
from tests.apps.command.conftest import CITY_HALL, Org
from tests.apps.context.conftest import token_for
from tests.conftest import Seeded

PROBLEM = "application/problem+json"
TICKET = {
    "caller_name": "李四", "caller_phone": "13900001111", "content": "小区停水两天",
    "category": "hotline.noise", "location": {"lon": CITY_HALL[0], "lat": CITY_HALL[1]},
}  # fmt: skip


def problem(response: Any, status: int) -> dict[str, Any]:
    """Assert a problem+json answer of this status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


@pytest.fixture
def api(client: TestClient, ctx: AppContext, seeded: Seeded, org: Org) -> TestClient:
    """A client with a token of the city-wide admin for every command permission."""
    scopes = [
        "command.event.read", "command.ticket.create", "command.event.dispatch", "command.event.handle",
        "command.event.report", "command.caller.read", "identity.department.read",
    ]  # fmt: skip
    client.headers["Authorization"] = f"Bearer {token_for(ctx, seeded, scopes)}"
    return client


def test_intake_list_detail_and_action(api: TestClient, org: Org) -> None:
    created = api.post("/api/command/tickets", json=TICKET)
    assert created.status_code == 201, created.text
    body = created.json()
    assert (
        body["state"] == "accepted"
        and body["department_id"] == org.sthj
        and body["caller_phone"] == "13900001111"
    )
    assert [a["code"] for a in body["actions"]] == ["assign", "answer"]
    listed = api.get("/api/command/events", params={"state": "accepted", "district": "510703"}).json()
    assert listed["total"] == 1 and listed["items"][0]["number"] == body["number"]
    moved = api.post(f"/api/command/events/{body['id']}/actions/assign", json={"note": "请核处"})
    assert moved.status_code == 200, moved.text
    detail = api.get(f"/api/command/events/{body['id']}").json()
    assert detail["state"] == "assigned" and [s["action"] for s in detail["timeline"]] == ["intake", "assign"]
    assert api.get("/api/command/counts").json()["hotline"]["assigned"] == 1
    assert len(api.get("/api/command/categories").json()) == 27
    report = api.post(
        "/api/command/reports",
        json={"category": "part.manhole_cover", "description": "井盖缺失", "address": "临园路口"},
    )
    assert report.status_code == 201 and report.json()["workflow"] == "city"


def test_refused_actions_change_nothing(api: TestClient, org: Org) -> None:
    event_id = api.post("/api/command/tickets", json=TICKET).json()["id"]
    url = f"/api/command/events/{event_id}/actions"
    problem(api.post(f"{url}/rate", json={"rating": "satisfied"}), 403)  # no command.ticket.visit
    problem(api.post(f"{url}/sign", json={}), 409)  # not assigned yet
    problem(api.post(f"{url}/answer", json={}), 422)  # a direct answer needs a note
    problem(api.post(f"{url}/file", json={}), 404)  # not a 12345 action
    problem(api.post(f"{url}/assign", json={"department_id": 424242}), 422)
    problem(api.post(f"{url}/assign", json={"rating": "great"}), 422)
    problem(api.post(f"{url}/assign", json={"unknown": 1}), 422)
    problem(api.post(f"{url}/Bad-Action", json={}), 422)
    problem(api.post("/api/command/events/424242/actions/assign", json={}), 404)
    detail = api.get(f"/api/command/events/{event_id}").json()
    assert detail["state"] == "accepted" and len(detail["timeline"]) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"caller_phone": "call me"},
        {"caller_id_number": "123"},
        {"content": ""},
        {"category": "hotline.nothing"},
        {"category": "Not A Code"},
        {"district": "999999"},
        {"location": {"lon": 500, "lat": 31}},
        {"extra": True},
    ],
)
def test_bad_tickets_are_refused(api: TestClient, change: dict[str, Any]) -> None:
    problem(api.post("/api/command/tickets", json={**TICKET, **change}), 422)
    assert api.get("/api/command/events").json()["total"] == 0


def test_bad_reports_queries_and_strangers(api: TestClient, client: TestClient) -> None:
    problem(
        api.post(
            "/api/command/reports", json={"category": "hotline.noise", "description": "xx", "address": "a"}
        ),
        422,
    )
    problem(
        api.post("/api/command/reports", json={"category": "part.street_lamp", "description": "路灯坏了"}),
        422,
    )
    problem(api.get("/api/command/events", params={"district": "51"}), 422)
    problem(api.get("/api/command/events", params={"limit": 0}), 422)
    problem(api.get("/api/command/events", params={"workflow": "other"}), 422)
    problem(api.get("/api/command/events/0"), 422)
    api.headers.pop("Authorization")
    problem(client.get("/api/command/events"), 401)
    problem(client.post("/api/command/tickets", json=TICKET), 401)
