"""The environment API: air quality now, a station's last hours, AQI on demand, and every bad input."""

from __future__ import annotations

from datetime import UTC, timedelta
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from citybrain.apps.identity import schemas as identity_schemas
from citybrain.apps.identity import services as identity
from citybrain.apps.identity.models import User
from citybrain.core.context import AppContext
from citybrain.core.permissions import SYSTEM
from citybrain.sdk import utcnow
from tests.apps.environment.conftest import CITY_HALL, FULESHAN, add_station, read, station_id
from tests.conftest import Seeded

PROBLEM = "application/problem+json"
HOURLY = {"so2_1h": 8, "no2_1h": 30, "co_1h": 0.6, "o3_1h": 60, "pm10_1h": 60, "pm25_1h": 40}


def token_with(ctx: AppContext, seeded: Seeded, username: str, permissions: list[str]) -> dict[str, str]:
    """Headers of a new city-wide user holding only `permissions`."""
    role = identity.create_role(
        ctx,
        SYSTEM,
        identity_schemas.RoleCreate(
            code=f"r_{username}", name_zh=username, permissions=[*permissions, "identity.token.create"]
        ),
    )
    user = identity.create_user(
        ctx,
        SYSTEM,
        identity_schemas.UserCreate(
            username=username,
            display_name=username,
            department_id=seeded.city_dept,
            password="a-long-password-123",
        ),
    )
    identity.assign_role(ctx, SYSTEM, user.id, identity_schemas.AssignmentCreate(role_id=role.id))
    with ctx.read() as session:
        actor = identity.actor_for(ctx, session, session.get_one(User, user.id))
    scopes = permissions or ["identity.token.create"]
    token = identity.create_token(ctx, actor, identity_schemas.TokenCreate(name="t", scopes=scopes))
    return {"Authorization": f"Bearer {token.token}"}


@pytest.fixture
def stations(ctx: AppContext) -> tuple[str, str]:
    """Two stations with readings in the last complete hour."""
    a = add_station(ctx, "aq-a", "市政府", CITY_HALL)
    c = add_station(ctx, "aq-c", "富乐山", FULESHAN)
    end = utcnow().astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    base = {"no2": 30, "so2": 8, "o3": 60, "co": 0.6}
    read(ctx, a, [(end - timedelta(minutes=30), {"pm25": 85, "pm10": 100, **base})])
    read(ctx, c, [(end - timedelta(minutes=30), {"pm25": 35, "pm10": 50, **base})])
    return a, c


def test_air_now(admin_client: TestClient, stations: tuple[str, str]) -> None:
    response = admin_client.get("/api/environment/air")
    assert response.status_code == 200, response.text
    body = response.json()
    by_id = {s["entity_id"]: s for s in body["stations"]}
    a = by_id[stations[0]]["now"]["report"]
    # PM2.5 85 → 100 + 25/55 × 50 = 122.7 → 123
    assert a["aqi"] == 123 and a["level"]["category_zh"] == "轻度污染" and a["level"]["hex"] == "#FF7E00"
    assert a["primary_pollutants"] == ["PM2.5"]
    assert by_id[stations[0]]["district_code"] == "510703"
    # city PM2.5 (85+35)/2 = 60 → 100; PM10 (100+50)/2 = 75 → 50 + 25/70 × 50 = 67.9 → 68
    city = body["city"]["now"]["report"]
    assert city["aqi"] == 100 and city["primary_pollutants"] == ["PM2.5"]
    assert [d["code"] for d in body["districts"]] == ["510703", "510704"]
    assert len(body["city"]["hours"]) == 1


def test_one_station(admin_client: TestClient, stations: tuple[str, str]) -> None:
    response = admin_client.get(f"/api/environment/stations/{quote(stations[1])}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "富乐山" and body["district_code"] == "510704"
    # PM2.5 35 → 50, PM10 50 → 50, nothing above: AQI 50, no primary pollutant
    assert [h["report"]["aqi"] for h in body["hours"]] == [50]
    assert body["hours"][0]["report"]["primary_pollutants"] == []
    missing = admin_client.get(f"/api/environment/stations/{quote(station_id('none'))}")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith(PROBLEM)
    too_long = admin_client.get("/api/environment/stations/" + "x" * 300)
    assert too_long.status_code == 422 and too_long.headers["content-type"].startswith(PROBLEM)


def test_compute(admin_client: TestClient) -> None:
    response = admin_client.post("/api/environment/aqi", json={"concentrations": HOURLY, "version": "2026"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["aqi"] == 60 and body["published"] == "60" and body["primary_pollutants"] == ["PM2.5"]
    assert body["level"]["category_en"] == "Good"
    # daily, version from the time: 2026-02-28 23:00 China time → 2012: PM2.5 75 → 100
    daily = {
        "so2_24h": 5,
        "no2_24h": 10,
        "co_24h": 0.5,
        "o3_1h": 20,
        "o3_8h": 20,
        "pm10_24h": 20,
        "pm25_24h": 75,
    }
    old = admin_client.post(
        "/api/environment/aqi",
        json={"concentrations": daily, "report": "daily", "time": "2026-02-28T23:00:00+08:00"},
    ).json()
    assert (old["version"], old["aqi"]) == ("2012", 100)
    # missing PM2.5 → NA, the item shows "—"; a pollutant left out shows "/"
    partial = {k: v for k, v in HOURLY.items() if k != "so2_1h"} | {"pm25_1h": None}
    na = admin_client.post("/api/environment/aqi", json={"concentrations": partial, "version": "2026"}).json()
    assert na["published"] == "NA" and na["aqi"] is None
    shown = {i["indicator"]: i["published"] for i in na["items"]}
    assert shown["so2_1h"] == "/" and shown["pm25_1h"] == "—" and shown["pm10_1h"] == "58"


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"concentrations": {**HOURLY, "pm25_1h": -1}, "version": "2026"}, "/concentrations/pm25_1h"),
        ({"concentrations": {**HOURLY, "o3_8h": 10}, "version": "2026"}, "/concentrations/o3_8h"),
        ({"concentrations": HOURLY, "version": "2026", "units": {"co_1h": "µg/m³"}}, "/units/co_1h"),
        ({"concentrations": HOURLY, "time": "2026-05-01T10:00:00"}, "/time"),
        ({"concentrations": HOURLY, "version": "2026", "units": {"o3_8h": "µg/m³"}}, "/units/o3_8h"),
        ({"concentrations": {**HOURLY, "pm1_1h": 3}, "version": "2026"}, "/concentrations/pm1_1h"),
    ],
)
def test_compute_refuses_bad_values(admin_client: TestClient, body: dict[str, object], pointer: str) -> None:
    response = admin_client.post("/api/environment/aqi", json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    problem = response.json()
    assert problem["pointer"] == pointer
    assert problem["errors"][0]["loc"] == ["body", *pointer.strip("/").split("/")]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_compute_refuses_non_finite_numbers(admin_client: TestClient, literal: str) -> None:
    content = '{"version": "2026", "concentrations": {"pm25_1h": ' + literal + "}}"
    response = admin_client.post(
        "/api/environment/aqi", content=content, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert "pm25_1h" in response.text


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"concentrations": {}},
        {"concentrations": HOURLY, "version": "2019"},
        {"concentrations": HOURLY, "report": "weekly"},
        {"concentrations": {"pm25_1h": "lots"}},
        {"concentrations": HOURLY, "extra": 1},
    ],
)
def test_compute_refuses_malformed_requests(admin_client: TestClient, body: dict[str, object]) -> None:
    response = admin_client.post("/api/environment/aqi", json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["errors"]


def test_permissions(client: TestClient, ctx: AppContext, seeded: Seeded, stations: tuple[str, str]) -> None:
    anonymous = client.get("/api/environment/air")
    assert anonymous.status_code == 401 and anonymous.headers["content-type"].startswith(PROBLEM)
    assert client.post("/api/environment/aqi", json={"concentrations": HOURLY}).status_code in (401, 403)
    nobody = token_with(ctx, seeded, "nobody", [])
    assert client.get("/api/environment/air", headers=nobody).status_code == 403
    assert client.get(f"/api/environment/stations/{quote(stations[0])}", headers=nobody).status_code == 403
    assert (
        client.post("/api/environment/aqi", json={"concentrations": HOURLY}, headers=nobody).status_code
        == 403
    )
    reader = token_with(ctx, seeded, "reader", ["environment.air.read"])
    assert client.get("/api/environment/air", headers=reader).status_code == 200
