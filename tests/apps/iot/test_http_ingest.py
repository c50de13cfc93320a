"""POST /api/iot/ingest: a device posts its readings with its own key."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi.testclient import TestClient
from sqlalchemy import select

from citybrain.apps.iot.models import DeadLetter
from citybrain.core.context import AppContext
from tests.apps.iot.conftest import Provisioned

URL = "/api/iot/ingest"


def auth(device: Provisioned, key: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Device {device.device_id}:{key or device.key}"}


def reasons(ctx: AppContext) -> list[str]:
    with ctx.read() as session:
        return list(session.scalars(select(DeadLetter.reason).order_by(DeadLetter.id)))


def test_single_and_batch_forms(client: TestClient, device: Provisioned) -> None:
    now = int(datetime.now(UTC).timestamp() * 1000)
    one = client.post(URL, json={"ts": now, "values": {"pm25": 35.2, "no2": 40}}, headers=auth(device))
    assert one.status_code == 200, one.text
    assert one.json() == {
        "device_id": device.device_id,
        "readings": 1,
        "accepted": 1,
        "stored": 2,
        "duplicates": 0,
        "rejections": [],
    }
    batch = {"columns": ["ts", "pm25"], "rows": [[now - 2000, 30], [now - 1000, 31], [now, 35.2]]}
    many = client.post(URL, json=batch, headers=auth(device))
    assert many.status_code == 200
    assert many.json()["stored"] == 2 and many.json()["duplicates"] == 1


def test_partly_bad_readings_answer_200_with_each_rejection(
    client: TestClient, device: Provisioned, ctx: AppContext
) -> None:
    body = {"readings": [{"values": {"pm25": 20}}, {"values": {"pm25": -1}}, {"values": {"quality": 5}}]}
    response = client.post(URL, json=body, headers=auth(device))
    assert response.status_code == 200
    answer = response.json()
    assert answer["accepted"] == 1
    assert [(r["reason"], r["reading"], r["attribute"]) for r in answer["rejections"]] == [
        ("out_of_range", 1, "pm25"),
        ("wrong_type", 2, "quality"),
    ]
    assert sorted(reasons(ctx)) == ["out_of_range", "wrong_type"]


def test_nothing_accepted_is_422(client: TestClient, device: Provisioned) -> None:
    response = client.post(URL, json={"values": {"pm25": 5000}}, headers=auth(device))
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["report"]["rejections"][0]["reason"] == "out_of_range"


def test_bad_credentials_are_401_and_kept(client: TestClient, device: Provisioned, ctx: AppContext) -> None:
    body: dict[str, Any] = {"values": {"pm25": 1}}
    cases = [
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": f"Device {device.device_id}"},
        {"Authorization": f"Device {device.device_id}:cbd_wrong"},
        {"Authorization": f"Device nobody:{device.key}"},
    ]
    for headers in cases:
        response = client.post(URL, json=body, headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["content-type"] == "application/problem+json"
    assert reasons(ctx) == ["missing_key", "missing_key", "missing_key", "wrong_key", "unknown_device"]


def test_revoked_device_is_401(api: TestClient, device: Provisioned, ctx: AppContext) -> None:
    assert api.post(f"/api/iot/devices/{device.pk}/revoke").status_code == 200
    response = api.post(URL, json={"values": {"pm25": 1}}, headers=auth(device))
    assert response.status_code == 401
    assert reasons(ctx) == ["revoked"]


def test_oversize_is_413(client: TestClient, device: Provisioned, ctx: AppContext) -> None:
    big = orjson.dumps({"values": {"quality": "x" * 70_000}})
    response = client.post(URL, content=big, headers={**auth(device), "Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert reasons(ctx) == ["oversize"]


def test_malformed_is_400(client: TestClient, device: Provisioned, ctx: AppContext) -> None:
    for body in (b"{not json", b'{"pm25": 1}', b"[]"):
        response = client.post(
            URL, content=body, headers={**auth(device), "Content-Type": "application/json"}
        )
        assert response.status_code == 400, body
        assert response.headers["content-type"] == "application/problem+json"
    assert reasons(ctx) == ["malformed"] * 3


def test_tenant_header(client: TestClient, device: Provisioned) -> None:
    bad = client.post(
        URL, json={"values": {"pm25": 1}}, headers={**auth(device), "NGSILD-Tenant": "no tenant!"}
    )
    assert bad.status_code == 422
    other = client.post(URL, json={"values": {"pm25": 1}}, headers={**auth(device), "NGSILD-Tenant": "other"})
    assert other.status_code == 401  # the device is registered in the default tenant only


def test_ingest_is_documented(client: TestClient) -> None:
    spec = client.get("/api/openapi.json").json()
    operation = spec["paths"]["/api/iot/ingest"]["post"]
    assert "Authorization: Device <device-id>:<key>" in operation["description"]
    assert {"400", "401", "413", "422"} <= set(operation["responses"])
