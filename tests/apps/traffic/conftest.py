"""Fixtures of the traffic tests: traffic detectors on the geo app's roads and their readings."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime

import pytest
from fastapi.testclient import TestClient

from citybrain.apps.context import services as context
from citybrain.apps.traffic import services
from citybrain.apps.traffic.lifespan import STARTED
from citybrain.core.context import AppContext
from citybrain.core.permissions import SYSTEM
from tests.apps.context.conftest import token_for
from tests.conftest import Seeded


def detector_id(name: str) -> str:
    """The entity id of a test detector."""
    return f"urn:ngsi-ld:TrafficFlowObserved:{name}"


def add_detector(ctx: AppContext, name: str, segment: services.Segment, at: float = 0.5) -> str:
    """A detector entity on a segment, `at` of the way along it; return its id."""
    from shapely.geometry import LineString

    point = LineString(segment.coordinates).interpolate(at, normalized=True)
    entity_id = detector_id(name)
    result = context.upsert_entities(
        ctx,
        SYSTEM,
        "",
        [
            {
                "id": entity_id,
                "type": "TrafficFlowObserved",
                "name": {"type": "Property", "value": name},
                "refRoadSegment": {"type": "Property", "value": segment.road_id},
                "location": {
                    "type": "GeoProperty",
                    "value": {"type": "Point", "coordinates": [point.x, point.y]},
                },
            }
        ],
    )
    assert result.success == [entity_id], result.errors
    return entity_id


def read(ctx: AppContext, entity_id: str, readings: Sequence[tuple[datetime, float, float | None]]) -> None:
    """Store (instant, speed km/h, flow veh/h) readings of a detector."""
    batch = [
        context.Reading(
            entity_id,
            when,
            {"averageVehicleSpeed": speed, **({"intensity": flow} if flow is not None else {})},
            {"averageVehicleSpeed": "KMH"},
        )
        for when, speed, flow in readings
    ]
    result = context.ingest(ctx, SYSTEM, "", batch)
    assert not result.unknown


def segment(ctx: AppContext, segment_id: str) -> services.Segment:
    """A segment by id."""
    return next(s for s in services.segments(ctx) if s.id == segment_id)


@pytest.fixture
def started(ctx: AppContext) -> AppContext:
    """The running platform once the traffic app's first round (learn, record) has finished."""
    event: threading.Event = ctx.extensions[STARTED]
    assert event.wait(60), "the traffic app's first round did not finish"
    return ctx


@pytest.fixture
def reader(client: TestClient, started: AppContext, seeded: Seeded) -> TestClient:
    """A client with an API token that may read the traffic index."""
    token = token_for(started, seeded, ["traffic.index.read"])
    client.headers["Authorization"] = f"Bearer {token}"
    return client
