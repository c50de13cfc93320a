"""Device models over /api/iot/models: create, read, change, delete; bad input and permissions."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from citybrain.apps.iot import schemas
from citybrain.core.context import AppContext
from tests.apps.iot.conftest import Provisioned

WATER: dict[str, Any] = {
    "code": "water-gauge",
    "name_zh": "水位计",
    "name_en": "Water-level gauge",
    "entity_type": "WaterLevelObserved",
    "offline_timeout_seconds": 900,
    "attributes": [{"name": "waterLevel", "kind": "number", "minimum": 0, "maximum": 50, "unit_code": "MTR"}],
}


def test_create_read_update_delete_model(api: TestClient) -> None:
    created = api.post("/api/iot/models", json=WATER)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["code"] == "water-gauge" and body["devices"] == 0
    assert body["attributes"] == [
        {"name": "waterLevel", "kind": "number", "minimum": 0.0, "maximum": 50.0, "unit_code": "MTR"}
    ]
    assert api.get("/api/iot/models/water-gauge").json()["name_zh"] == "水位计"
    assert [m["code"] for m in api.get("/api/iot/models").json()] == ["water-gauge"]

    changed = api.patch(
        "/api/iot/models/water-gauge",
        json={"offline_timeout_seconds": 1200, "attributes": [*WATER["attributes"], {"name": "flow"}]},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["offline_timeout_seconds"] == 1200
    assert [a["name"] for a in changed.json()["attributes"]] == ["waterLevel", "flow"]

    assert api.delete("/api/iot/models/water-gauge").status_code == 204
    missing = api.get("/api/iot/models/water-gauge")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


def test_duplicate_code_conflicts(api: TestClient) -> None:
    assert api.post("/api/iot/models", json=WATER).status_code == 201
    again = api.post("/api/iot/models", json=WATER)
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"code": "bad code"}, "code"),
        ({"entity_type": "Not A Type"}, "entity_type"),
        ({"offline_timeout_seconds": 1}, "offline_timeout_seconds"),
        ({"attributes": []}, "attributes"),
        ({"attributes": [{"name": "id"}]}, "attributes"),
        ({"attributes": [{"name": "location"}]}, "attributes"),
        ({"attributes": [{"name": "pm25", "kind": "colour"}]}, "attributes"),
        ({"attributes": [{"name": "pm25", "minimum": 10, "maximum": 1}]}, "attributes"),
        ({"attributes": [{"name": "quality", "kind": "string", "minimum": 0}]}, "attributes"),
        ({"attributes": [{"name": "pm25"}, {"name": "pm25"}]}, "attributes"),
        ({"attributes": [{"name": "pm25", "unit_code": "µg/m³"}]}, "attributes"),
        ({"extra": 1}, "extra"),
    ],
)
def test_bad_models_are_refused(api: TestClient, change: dict[str, Any], where: str) -> None:
    response = api.post("/api/iot/models", json={**WATER, **change})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert where in str(response.json()["errors"])
    assert api.get("/api/iot/models").json() == []


def test_a_model_in_use_cannot_be_deleted(api: TestClient, device: Provisioned) -> None:
    response = api.delete("/api/iot/models/aq-station")
    assert response.status_code == 409
    assert "1" in response.json()["detail"]
    assert api.get("/api/iot/models/aq-station").json()["devices"] == 1


def test_unknown_model_is_404(api: TestClient) -> None:
    assert api.patch("/api/iot/models/nope", json={"name_zh": "x"}).status_code == 404
    assert api.delete("/api/iot/models/nope").status_code == 404


def test_models_need_permissions(
    client: TestClient, fucheng: dict[str, str], reader: dict[str, str], ctx: AppContext
) -> None:
    assert client.get("/api/iot/models").status_code == 401
    assert client.post("/api/iot/models", json=WATER).status_code == 401
    assert client.get("/api/iot/models", headers=reader).status_code == 200
    assert client.post("/api/iot/models", json=WATER, headers=reader).status_code == 403
    # writing models needs the permission city-wide; a district's administrator lacks it anyway
    assert client.post("/api/iot/models", json=WATER, headers=fucheng).status_code == 403


def test_ensure_model_is_idempotent_and_updates(ctx: AppContext, aq_model: schemas.DeviceModelCreate) -> None:
    from citybrain.apps.iot import services
    from citybrain.core.permissions import SYSTEM

    services.ensure_model(ctx, SYSTEM, aq_model)
    wider = aq_model.model_copy(update={"offline_timeout_seconds": 1800})
    services.ensure_model(ctx, SYSTEM, wider)
    models = services.list_models(ctx, SYSTEM)
    assert [(m.code, m.offline_timeout_seconds) for m in models] == [("aq-station", 1800)]
    other_type = aq_model.model_copy(update={"entity_type": "Something"})
    with pytest.raises(Exception, match="entity type"):
        services.ensure_model(ctx, SYSTEM, other_type)
