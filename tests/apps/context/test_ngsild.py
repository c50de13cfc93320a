"""The NGSI-LD API over HTTP, as a FIWARE client uses it (bearer token, JSON and JSON-LD)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from citybrain.apps.context.models import AttributeHistory, Entity
from citybrain.core.context import AppContext
from citybrain.core.ledger import LedgerRecord
from citybrain.core.permissions import SYSTEM
from tests.apps.context.conftest import token_for
from tests.conftest import Seeded

BASE = "/ngsi-ld/v1"
CORE = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"


def station(number: int = 1, pm25: float = 35.0, lon: float = 104.679, lat: float = 31.467) -> dict[str, Any]:
    """An air-quality station of Mianyang as a normalized NGSI-LD entity."""
    return {
        "id": f"urn:ngsi-ld:AirQualityObserved:mianyang-{number:03d}",
        "type": "AirQualityObserved",
        "pm25": {"type": "Property", "value": pm25, "unitCode": "GQ", "observedAt": "2026-11-24T08:00:00Z"},
        "name": {"type": "Property", "value": f"站点{number}"},
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}},
        "refDevice": {"type": "Relationship", "object": f"urn:ngsi-ld:Device:aq-{number:03d}"},
    }


def problem(response: Any, status: int, kind: str) -> None:
    """Assert an NGSI-LD ProblemDetails of the given status and ETSI type (about:blank where ETSI has none)."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == (ERRORS + kind if kind else "about:blank"), body
    assert body["detail"]


def count(ctx: AppContext, model: Any) -> int:
    with ctx.read() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_create_retrieve_and_delete(ngsi: TestClient, ctx: AppContext) -> None:
    created = ngsi.post(f"{BASE}/entities", json=station())
    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"{BASE}/entities/urn:ngsi-ld:AirQualityObserved:mianyang-001"
    got = ngsi.get(f"{BASE}/entities/urn:ngsi-ld:AirQualityObserved:mianyang-001")
    assert got.status_code == 200
    assert got.headers["content-type"].startswith("application/json")
    assert 'rel="http://www.w3.org/ns/json-ld#context"' in got.headers["link"]
    body = got.json()
    assert body["type"] == "AirQualityObserved"
    assert body["pm25"]["value"] == 35.0 and body["pm25"]["unitCode"] == "GQ"
    assert body["refDevice"]["object"] == "urn:ngsi-ld:Device:aq-001"
    key_values = ngsi.get(
        f"{BASE}/entities/urn:ngsi-ld:AirQualityObserved:mianyang-001", params={"options": "keyValues"}
    ).json()
    assert key_values["pm25"] == 35.0
    ld = ngsi.get(
        f"{BASE}/entities/urn:ngsi-ld:AirQualityObserved:mianyang-001",
        headers={"Accept": "application/ld+json"},
    )
    assert ld.headers["content-type"].startswith("application/ld+json")
    assert ld.json()["@context"] == CORE
    assert count(ctx, AttributeHistory) == 4
    with ctx.read() as session:
        actions = session.scalars(select(LedgerRecord.action)).all()
    assert "context.entity.create" in actions
    deleted = ngsi.delete(f"{BASE}/entities/urn:ngsi-ld:AirQualityObserved:mianyang-001")
    assert deleted.status_code == 204
    problem(ngsi.get(f"{BASE}/entities/urn:ngsi-ld:AirQualityObserved:mianyang-001"), 404, "ResourceNotFound")


def test_duplicate_bad_id_bad_body_change_nothing(ngsi: TestClient, ctx: AppContext) -> None:
    assert ngsi.post(f"{BASE}/entities", json=station()).status_code == 201
    before = (count(ctx, Entity), count(ctx, AttributeHistory), count(ctx, LedgerRecord))
    problem(ngsi.post(f"{BASE}/entities", json=station()), 409, "AlreadyExists")
    problem(ngsi.post(f"{BASE}/entities", json={**station(2), "id": "not a uri"}), 400, "BadRequestData")
    problem(
        ngsi.post(f"{BASE}/entities", content=b"{nope", headers={"Content-Type": "application/json"}),
        400,
        "InvalidRequest",
    )
    problem(
        ngsi.post(f"{BASE}/entities", content=b"<xml/>", headers={"Content-Type": "application/xml"}), 415, ""
    )
    problem(
        ngsi.get(f"{BASE}/entities", params={"type": "AirQualityObserved", "bogus": "1"}),
        400,
        "InvalidRequest",
    )
    problem(
        ngsi.get(f"{BASE}/entities", params={"type": "AirQualityObserved"}, headers={"Accept": "text/csv"}),
        406,
        "",
    )
    problem(
        ngsi.get(f"{BASE}/entities", params={"type": "AirQualityObserved", "q": "pm25>>3"}),
        400,
        "BadRequestData",
    )
    assert (count(ctx, Entity), count(ctx, AttributeHistory), count(ctx, LedgerRecord)) == before


def test_query_by_type_q_geo_and_pages(ngsi: TestClient) -> None:
    spots = [(1, 20.0, 104.679, 31.467), (2, 80.0, 104.700, 31.480), (3, 150.0, 104.745, 31.778)]
    for number, pm25, lon, lat in spots:
        assert ngsi.post(f"{BASE}/entities", json=station(number, pm25, lon, lat)).status_code == 201
    polluted = ngsi.get(f"{BASE}/entities", params={"type": "AirQualityObserved", "q": "pm25>75"}).json()
    assert sorted(e["id"][-3:] for e in polluted) == ["002", "003"]
    near = ngsi.get(
        f"{BASE}/entities",
        params={
            "type": "AirQualityObserved",
            "georel": "near;maxDistance==5000",
            "geometry": "Point",
            "coordinates": "[104.679,31.467]",
        },
    ).json()
    assert sorted(e["id"][-3:] for e in near) == ["001", "002"]
    page = ngsi.get(f"{BASE}/entities", params={"type": "AirQualityObserved", "limit": 2, "count": "true"})
    assert page.headers["ngsild-results-count"] == "3" and len(page.json()) == 2
    rest = ngsi.get(f"{BASE}/entities", params={"type": "AirQualityObserved", "limit": 2, "offset": 2}).json()
    assert [e["id"][-3:] for e in rest] == ["003"]
    geojson = ngsi.get(
        f"{BASE}/entities", params={"type": "AirQualityObserved"}, headers={"Accept": "application/geo+json"}
    ).json()
    assert geojson["type"] == "FeatureCollection" and len(geojson["features"]) == 3


def test_attribute_operations_and_events(ngsi: TestClient, ctx: AppContext) -> None:
    entity = f"{BASE}/entities/urn:ngsi-ld:AirQualityObserved:mianyang-001"
    assert ngsi.post(f"{BASE}/entities", json=station()).status_code == 201
    patch = ngsi.patch(f"{entity}/attrs/pm25", json={"value": 60.0, "observedAt": "2026-11-24T09:00:00Z"})
    assert patch.status_code == 204, patch.text
    assert ngsi.get(entity).json()["pm25"]["value"] == 60.0
    appended = ngsi.post(f"{entity}/attrs", json={"no2": {"type": "Property", "value": 41}})
    assert appended.status_code == 204, appended.text
    partial = ngsi.patch(
        f"{entity}/attrs",
        json={"no2": {"type": "Property", "value": 42}, "o3": {"type": "Property", "value": 7}},
    )
    assert partial.status_code == 207 and partial.json()["notUpdated"][0]["attributeName"] == "o3"
    assert ngsi.delete(f"{entity}/attrs/no2").status_code == 204
    problem(ngsi.delete(f"{entity}/attrs/no2"), 404, "ResourceNotFound")
    assert "no2" not in ngsi.get(entity).json()


def test_batch_operations_report_each_failure(ngsi: TestClient) -> None:
    good, bad = station(1), {**station(2), "pm25": {"type": "Property"}}
    response = ngsi.post(f"{BASE}/entityOperations/create", json=[good, bad, station(3)])
    assert response.status_code == 207, response.text
    body = response.json()
    assert sorted(body["success"]) == [station(1)["id"], station(3)["id"]]
    assert [e["entityId"] for e in body["errors"]] == [station(2)["id"]]
    upsert = ngsi.post(f"{BASE}/entityOperations/upsert", json=[station(1, pm25=99.0), station(4)])
    assert upsert.status_code in (201, 204), upsert.text
    assert ngsi.get(f"{BASE}/entities/{station(1)['id']}").json()["pm25"]["value"] == 99.0
    deleted = ngsi.post(f"{BASE}/entityOperations/delete", json=[station(1)["id"], "urn:ngsi-ld:X:none"])
    assert deleted.status_code == 207
    assert deleted.json()["success"] == [station(1)["id"]]


def test_discovery(ngsi: TestClient) -> None:
    assert ngsi.post(f"{BASE}/entities", json=station()).status_code == 201
    types = ngsi.get(f"{BASE}/types").json()
    assert types["typeList"] == ["AirQualityObserved"]
    detail = ngsi.get(f"{BASE}/types/AirQualityObserved").json()
    assert detail["entityCount"] == 1
    attrs = ngsi.get(f"{BASE}/attributes").json()["attributeList"]
    assert {"pm25", "name", "location", "refDevice"} <= set(attrs)


def test_tenants_are_separate(ngsi: TestClient) -> None:
    assert (
        ngsi.post(f"{BASE}/entities", json=station(), headers={"NGSILD-Tenant": "fucheng"}).status_code == 201
    )
    problem(ngsi.get(f"{BASE}/entities/{station()['id']}"), 404, "ResourceNotFound")
    assert (
        ngsi.get(f"{BASE}/entities/{station()['id']}", headers={"NGSILD-Tenant": "fucheng"}).status_code
        == 200
    )
    problem(
        ngsi.get(
            f"{BASE}/entities", params={"type": "AirQualityObserved"}, headers={"NGSILD-Tenant": "nowhere"}
        ),
        404,
        "NonexistentTenant",
    )


def test_access_needs_a_token_with_the_scope(client: TestClient, ctx: AppContext, seeded: Seeded) -> None:
    assert client.get(f"{BASE}/entities", params={"type": "X"}).status_code == 401
    reader = token_for(ctx, seeded, ["context.entity.read"])
    client.headers["Authorization"] = f"Bearer {reader}"
    assert client.get(f"{BASE}/entities", params={"type": "X"}).status_code == 200
    assert client.post(f"{BASE}/entities", json=station()).status_code == 403
    _ = SYSTEM


def test_replace_attribute_replaces_the_whole_instance(ngsi: TestClient, ctx: AppContext) -> None:
    assert ngsi.post(f"{BASE}/entities", json=station()).status_code == 201
    entity = f"{BASE}/entities/{station()['id']}"
    replaced = ngsi.put(f"{entity}/attrs/pm25", json={"type": "Property", "value": 80.0})
    assert replaced.status_code == 204, replaced.text
    pm25 = ngsi.get(entity).json()["pm25"]
    assert pm25["value"] == 80.0 and "unitCode" not in pm25 and "observedAt" not in pm25  # whole, not merged
    before = count(ctx, AttributeHistory)
    problem(ngsi.put(f"{entity}/attrs/no2", json={"type": "Property", "value": 1}), 404, "ResourceNotFound")
    problem(
        ngsi.put(f"{BASE}/entities/urn:ngsi-ld:X:none/attrs/pm25", json={"type": "Property", "value": 1}),
        404,
        "ResourceNotFound",
    )
    problem(ngsi.put(f"{entity}/attrs/pm25", json=[1, 2]), 400, "BadRequestData")
    problem(ngsi.put(f"{entity}/attrs/pm25", json={"type": "Nonsense", "value": 1}), 400, "BadRequestData")
    problem(
        ngsi.put(f"{entity}/attrs/pm25", content=b"{", headers={"Content-Type": "application/json"}),
        400,
        "InvalidRequest",
    )
    assert count(ctx, AttributeHistory) == before and ngsi.get(entity).json()["pm25"]["value"] == 80.0
