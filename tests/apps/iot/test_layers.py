"""The demo city's sensor layers are declared for the one map, each with its own style and popup."""

from __future__ import annotations

from fastapi.testclient import TestClient

from citybrain.apps.iot.city import KINDS
from citybrain.apps.iot.layers import LAYERS


def test_every_device_kind_has_a_styled_layer_on_the_map(admin_client: TestClient) -> None:
    declared = {layer.entity_type for layer in LAYERS}
    assert declared == {kind.entity_type for kind in KINDS.values()}
    response = admin_client.get("/api/geo/layers")
    assert response.status_code == 200
    body = response.json()
    layers = body if isinstance(body, list) else body.get("layers", body.get("items", []))
    by_id = {layer["id"]: layer for layer in layers}
    for layer in LAYERS:
        assert layer.id in by_id, f"{layer.id} is not served"
    assert not any(str(i).startswith("type-") and "Observed" in str(i) for i in by_id)
