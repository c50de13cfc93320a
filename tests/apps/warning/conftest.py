"""Fixtures of the warning tests: air-quality stations in the context broker and a waiting helper."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from citybrain.apps.context import services as context
from citybrain.core.context import AppContext
from citybrain.core.db import OutboxRow
from citybrain.core.permissions import SYSTEM

T = TypeVar("T")
CITY_HALL = (104.741, 31.464)  # in 涪城区 (510703)
FULESHAN = (104.772, 31.482)  # in 游仙区 (510704)
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
TYPE = "AirQualityObserved"


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def station(
    ctx: AppContext, name: str, where: tuple[float, float] = CITY_HALL, pm25: float = 10.0, **attrs: Any
) -> str:
    """Create an air-quality station entity through the context services; return its id."""
    entity_id = f"urn:ngsi-ld:{TYPE}:{name}"
    body: dict[str, Any] = {
        "id": entity_id,
        "type": TYPE,
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": list(where)}},
        "pm25": {"type": "Property", "value": pm25, "observedAt": iso(T0 - timedelta(hours=1))},
        "no2": {"type": "Property", "value": 10.0, "observedAt": iso(T0 - timedelta(hours=1))},
        "quality": {"type": "Property", "value": "good"},
    }
    body.update({k: {"type": "Property", "value": v} for k, v in attrs.items()})
    result = context.upsert_entities(ctx, SYSTEM, "", [body])
    assert result.success == [entity_id], result.errors
    return entity_id


def observe(ctx: AppContext, entity_id: str, at: datetime, **values: Any) -> None:
    """Update attributes of an entity, observed at `at`, through the context services."""
    body: dict[str, Any] = {"id": entity_id, "type": TYPE}
    body.update({k: {"type": "Property", "value": v, "observedAt": iso(at)} for k, v in values.items()})
    result = context.upsert_entities(ctx, SYSTEM, "", [body])
    assert result.success == [entity_id], result.errors


def wait_for(probe: Callable[[], T | None], timeout: float = 10.0) -> T:
    """Poll until `probe` answers something truthy (the evaluator works behind the bus)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


def settle(ctx: AppContext, timeout: float = 10.0) -> None:
    """Wait until the outbox is published and every bus consumer is idle (the evaluator has caught up)."""
    bus: Any = ctx.bus
    deadline = time.monotonic() + timeout
    quiet = 0
    while quiet < 3:
        with ctx.read() as session:
            pending = session.scalar(
                select(func.count()).select_from(OutboxRow).where(OutboxRow.published_at.is_(None))
            )
        runtime = ctx.extensions.get("warning.runtime")
        idle = all(d.queue.empty() and not d.busy for d in bus._durables.values())
        idle = idle and not (runtime is not None and runtime.busy)
        quiet = quiet + 1 if pending == 0 and idle else 0
        if time.monotonic() > deadline:
            raise AssertionError("the bus did not settle")
        time.sleep(0.01)


def rule_body(code: str = "pm25-high", **overrides: Any) -> dict[str, Any]:
    """A threshold rule on pm25 of every station: 蓝 > 75, 黄 > 115, 橙 > 150, 红 > 250; no hold time."""
    body: dict[str, Any] = {
        "code": code,
        "name_zh": "PM2.5 超标",
        "name_en": "PM2.5 high",
        "kind": "threshold",
        "entity_type": TYPE,
        "conditions": [
            {
                "attr": "pm25",
                "op": ">",
                "levels": [
                    {"level": "blue", "threshold": 75},
                    {"level": "yellow", "threshold": 115},
                    {"level": "orange", "threshold": 150},
                    {"level": "red", "threshold": 250},
                ],
            }
        ],
        "hysteresis": {"margin": 5, "hold_seconds": 0},
    }
    body.update(overrides)
    return body


@pytest.fixture
def api(admin_client: TestClient) -> TestClient:
    """The platform admin's client."""
    return admin_client


def warnings_of(api: TestClient, **params: Any) -> list[dict[str, Any]]:
    """The warnings the API lists."""
    response = api.get("/api/warning/warnings", params=params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items
