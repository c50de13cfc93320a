"""Devices over /api/iot/devices: register (key once, entity made), list and filter, change, keys, delete."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from citybrain.apps.context import services as context
from citybrain.apps.iot import schemas
from citybrain.core.context import AppContext
from citybrain.core.ledger import LedgerRecord
from citybrain.core.permissions import SYSTEM
from tests.apps.iot.conftest import CITY_HALL, FULESHAN, Provisioned, provision

NEW: dict[str, Any] = {
    "device_id": "aq-510703-009",
    "name": "市政府监测站",
    "model_code": "aq-station",
    "lon": CITY_HALL[0],
    "lat": CITY_HALL[1],
    "department_code": "510703",
}


def test_register_returns_the_key_once_and_creates_the_entity(
    api: TestClient, ctx: AppContext, aq_model: schemas.DeviceModelCreate
) -> None:
    created = api.post("/api/iot/devices", json={**NEW, "static_attributes": {"stationCode": "2271A"}})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["key"].startswith("cbd_") and len(body["key"]) > 40
    assert body["entity_id"] == "urn:ngsi-ld:AirQualityObserved:aq-510703-009"
    assert body["district_code"] == "510703"
    assert body["status"] == "new" and body["revoked"] is False
    read = api.get(f"/api/iot/devices/{body['id']}").json()
    assert "key" not in read and read["device_id"] == "aq-510703-009"
    # only the key's hash is stored
    from citybrain.apps.iot.models import Device

    with ctx.read() as session:
        row = session.get_one(Device, body["id"])
        assert body["key"] not in row.key_hash and len(row.key_hash) == 64
        audited = session.query(LedgerRecord).filter(LedgerRecord.obj == f"iot_device:{body['id']}").all()
        assert [r.action for r in audited] == ["iot.device.create"]
    entity = context.get_entity(ctx, SYSTEM, "", body["entity_id"])
    names = {iri.rsplit("/", 1)[-1]: inst[0] for iri, inst in entity["attrs"].items()}
    assert names["name"]["value"] == "市政府监测站"
    assert names["stationCode"]["value"] == "2271A"
    assert names["location"]["value"] == {"type": "Point", "coordinates": list(CITY_HALL)}


def test_duplicate_device_or_entity_conflicts(api: TestClient, device: Provisioned) -> None:
    again = api.post("/api/iot/devices", json={**NEW, "device_id": device.device_id})
    assert again.status_code == 409
    same_entity = api.post("/api/iot/devices", json={**NEW, "entity_id": device.entity_id})
    assert same_entity.status_code == 409
    assert api.get("/api/iot/devices").json()["total"] == 1


@pytest.mark.parametrize(
    ("change", "status", "where"),
    [
        ({"device_id": "has space"}, 422, "device_id"),
        ({"device_id": "a/b"}, 422, "device_id"),
        ({"device_id": "a:b"}, 422, "device_id"),
        ({"lon": 181}, 422, "lon"),
        ({"lat": "north"}, 422, "lat"),
        ({"protocol": "coap"}, 422, "protocol"),
        ({"model_code": "nope"}, 422, "nope"),
        ({"department_code": "nowhere"}, 422, "nowhere"),
        ({"static_attributes": {"location": 1}}, 422, "static_attributes"),
        ({"static_attributes": {"pm25": 1}}, 422, "pm25"),
        ({"entity_id": "not a uri"}, 422, "entity_id"),
        ({"unknown": 1}, 422, "unknown"),
    ],
)
def test_bad_devices_are_refused(
    api: TestClient, aq_model: schemas.DeviceModelCreate, change: dict[str, Any], status: int, where: str
) -> None:
    response = api.post("/api/iot/devices", json={**NEW, **change})
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert where in response.text
    assert api.get("/api/iot/devices").json()["total"] == 0


def test_list_filters(api: TestClient, ctx: AppContext, aq_model: schemas.DeviceModelCreate) -> None:
    provision(ctx, "aq-a")
    provision(ctx, "aq-b", department="510704", where=FULESHAN)
    revoked = provision(ctx, "aq-c")
    api.post(f"/api/iot/devices/{revoked.pk}/revoke")

    def ids(**params: Any) -> list[str]:
        response = api.get("/api/iot/devices", params=params)
        assert response.status_code == 200, response.text
        return [d["device_id"] for d in response.json()["items"]]

    assert ids() == ["aq-a", "aq-b", "aq-c"]
    assert ids(district="510704") == ["aq-b"]
    assert ids(status="revoked") == ["aq-c"]
    assert ids(status="new") == ["aq-a", "aq-b"]
    assert ids(model="aq-station", q="AQ-B") == ["aq-b"]
    assert ids(device_id="aq-a") == ["aq-a"]
    assert ids(limit=1, offset=1) == ["aq-b"]
    assert api.get("/api/iot/devices", params={"status": "sleeping"}).status_code == 422
    assert api.get("/api/iot/devices", params={"limit": 0}).status_code == 422
    assert api.get("/api/iot/devices", params={"device_id": "nope"}).status_code == 404
    assert api.get("/api/iot/devices", headers={"NGSILD-Tenant": "bad tenant!"}).status_code == 422


def test_update_moves_the_entity(api: TestClient, ctx: AppContext, device: Provisioned) -> None:
    changed = api.patch(
        f"/api/iot/devices/{device.pk}",
        json={"name": "富乐山站", "lon": FULESHAN[0], "lat": FULESHAN[1], "department_code": "510704"},
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["district_code"] == "510704" and body["department_code"] == "510704"
    entity = context.get_entity(ctx, SYSTEM, "", device.entity_id)
    names = {iri.rsplit("/", 1)[-1]: inst[0] for iri, inst in entity["attrs"].items()}
    assert names["location"]["value"]["coordinates"] == list(FULESHAN)
    assert names["name"]["value"] == "富乐山站"
    assert api.patch(f"/api/iot/devices/{device.pk}", json={"lon": 104.0}).status_code == 422
    assert api.patch(f"/api/iot/devices/{device.pk}", json={"department_code": "nope"}).status_code == 422
    assert api.patch(f"/api/iot/devices/{device.pk}", json={"name": ""}).status_code == 422
    assert api.patch("/api/iot/devices/999999", json={"name": "x"}).status_code == 404
    assert api.patch("/api/iot/devices/0", json={"name": "x"}).status_code == 422


def test_rotate_and_revoke(api: TestClient, device: Provisioned) -> None:
    rotated = api.post(f"/api/iot/devices/{device.pk}/key")
    assert rotated.status_code == 200
    assert rotated.json()["key"] != device.key
    revoked = api.post(f"/api/iot/devices/{device.pk}/revoke")
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True
    # a new key re-admits a revoked device
    again = api.post(f"/api/iot/devices/{device.pk}/key").json()
    assert again["revoked"] is False
    assert api.post("/api/iot/devices/424242/key").status_code == 404
    assert api.post("/api/iot/devices/424242/revoke").status_code == 404


def test_delete_keeps_the_entity(api: TestClient, ctx: AppContext, device: Provisioned) -> None:
    assert api.delete(f"/api/iot/devices/{device.pk}").status_code == 204
    assert api.get(f"/api/iot/devices/{device.pk}").status_code == 404
    assert context.get_entity(ctx, SYSTEM, "", device.entity_id)["id"] == device.entity_id
    assert api.delete(f"/api/iot/devices/{device.pk}").status_code == 404


def test_department_scope(
    client: TestClient, ctx: AppContext, fucheng: dict[str, str], reader: dict[str, str], aq_model: Any
) -> None:
    mine = provision(ctx, "aq-mine")
    theirs = provision(ctx, "aq-theirs", department="510704", where=FULESHAN)
    listed = client.get("/api/iot/devices", headers=fucheng).json()
    assert [d["device_id"] for d in listed["items"]] == ["aq-mine"]
    assert client.get(f"/api/iot/devices/{theirs.pk}", headers=fucheng).status_code == 404
    assert client.post(f"/api/iot/devices/{theirs.pk}/key", headers=fucheng).status_code == 404
    assert client.delete(f"/api/iot/devices/{theirs.pk}", headers=fucheng).status_code == 404
    assert client.post(f"/api/iot/devices/{mine.pk}/key", headers=fucheng).status_code == 200
    # registering in another department, or moving a device there, is refused
    there = {**NEW, "department_code": "510704"}
    assert client.post("/api/iot/devices", json=there, headers=fucheng).status_code == 403
    here = client.post("/api/iot/devices", json=NEW, headers=fucheng)
    assert here.status_code == 201, here.text
    moved = client.patch(f"/api/iot/devices/{mine.pk}", json={"department_code": "510704"}, headers=fucheng)
    assert moved.status_code == 403
    # a reader sees everything and changes nothing
    assert client.get("/api/iot/devices", headers=reader).json()["total"] == 3
    assert client.post(f"/api/iot/devices/{mine.pk}/revoke", headers=reader).status_code == 403
    assert client.patch(f"/api/iot/devices/{mine.pk}", json={"name": "x"}, headers=reader).status_code == 403
    assert client.post("/api/iot/devices", json={**NEW, "device_id": "x1"}, headers=reader).status_code == 403
    # nobody signed in
    assert client.get("/api/iot/devices").status_code == 401
    assert client.post("/api/iot/devices", json=NEW).status_code == 401


CSV_OK = """device_id,name,model,lon,lat,department,entity_id,protocol
aq-101,涪城一号,aq-station,104.741,31.464,510703,,mqtt
aq-102,游仙一号,aq-station,104.772,31.482,510704,urn:ngsi-ld:AirQualityObserved:custom-102,http
aq-103,坏经度,aq-station,east,31.464,510703,,
aq-104,无型号,nope,104.741,31.464,510703,,
aq-105,无部门,aq-station,104.741,31.464,nowhere,,
aq-101,重复,aq-station,104.741,31.464,510703,,
aq-106,坏协议,aq-station,104.741,31.464,510703,,coap
aq-107,短行,aq-station
"""


def test_csv_import_reports_each_row(api: TestClient, ctx: AppContext, aq_model: Any) -> None:
    response = api.post(
        "/api/iot/devices/import", content=CSV_OK.encode(), headers={"Content-Type": "text/csv"}
    )
    assert response.status_code == 201, response.text
    report = response.json()
    assert report["rows"] == 8
    assert [d["device_id"] for d in report["created"]] == ["aq-101", "aq-102"]
    assert all(d["key"].startswith("cbd_") for d in report["created"])
    assert report["created"][1]["entity_id"] == "urn:ngsi-ld:AirQualityObserved:custom-102"
    assert report["created"][1]["protocol"] == "http"
    problems = {(p["row"], p["column"]) for p in report["errors"]}
    assert problems == {
        (4, "lon"),
        (5, "model"),
        (6, "department"),
        (7, "device_id"),
        (8, "protocol"),
        (9, ""),
    }
    assert all(p["message"] for p in report["errors"])
    assert api.get("/api/iot/devices").json()["total"] == 2
    assert context.get_entity(ctx, SYSTEM, "", "urn:ngsi-ld:AirQualityObserved:custom-102")


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"", 422),
        (b"device_id,name\nx,y\n", 422),
        (b"device_id,name,model,lon,lat,department,colour\n", 422),
        ("device_id,name,model,lon,lat,department\n".encode("utf-16"), 422),
        (b"device_id,name,model,lon,lat,department\nbad id,x,aq-station,1,1,510703\n", 422),
    ],
)
def test_bad_csv_imports_nothing(api: TestClient, aq_model: Any, body: bytes, status: int) -> None:
    response = api.post("/api/iot/devices/import", content=body, headers={"Content-Type": "text/csv"})
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert api.get("/api/iot/devices").json()["total"] == 0


def test_csv_import_needs_csv_and_permission(
    client: TestClient, reader: dict[str, str], aq_model: Any
) -> None:
    assert client.post("/api/iot/devices/import", content=CSV_OK.encode()).status_code == 401
    headers = {**reader, "Content-Type": "text/csv"}
    assert client.post("/api/iot/devices/import", content=CSV_OK.encode(), headers=headers).status_code == 403


def test_csv_import_wants_a_csv_body(api: TestClient, aq_model: Any) -> None:
    response = api.post("/api/iot/devices/import", json={"a": 1})
    assert response.status_code == 400
