"""Fixtures of the geo app's tests: a map reader's client and located entities."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from fastapi.testclient import TestClient

from citybrain.apps.context import services as context
from citybrain.core.context import AppContext
from citybrain.core.permissions import SYSTEM
from tests.apps.context.conftest import token_for
from tests.conftest import Seeded


def located(
    entity_id: str, entity_type: str, lon: float, lat: float, name: str | None = None, **attrs: Any
) -> dict[str, Any]:
    """A normalized NGSI-LD entity with a Point location, a name and Property attributes."""
    entity: dict[str, Any] = {
        "id": entity_id,
        "type": entity_type,
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}},
    }
    if name is not None:
        entity["name"] = {"type": "Property", "value": name}
    for key, value in attrs.items():
        entity[key] = value if isinstance(value, dict) else {"type": "Property", "value": value}
    return entity


def upsert(ctx: AppContext, entities: Sequence[dict[str, Any]]) -> None:
    """Store entities through the context app's service (as the system)."""
    result = context.upsert_entities(ctx, SYSTEM, "", entities)
    assert not result.errors, result.errors


@pytest.fixture
def reader(client: TestClient, ctx: AppContext, seeded: Seeded) -> TestClient:
    """A client with an API token that may read the map and entities."""
    token = token_for(ctx, seeded, ["geo.map.read", "context.entity.read"])
    client.headers["Authorization"] = f"Bearer {token}"
    return client
