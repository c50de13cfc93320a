"""Sensor ingest: state takes the newest value, history keeps every value once, events and ledger follow."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from citybrain.apps.context import services
from citybrain.apps.context.errors import BadRequestData
from citybrain.apps.context.events import AttributesChanged
from citybrain.apps.context.jsonld import Context
from citybrain.apps.context.models import AttributeHistory
from citybrain.apps.context.query import parse_q
from citybrain.core import ledger
from citybrain.core.bus import Event
from citybrain.core.context import AppContext
from citybrain.core.errors import Unauthorized
from citybrain.core.permissions import ANONYMOUS, SYSTEM

T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
PM25 = Context().expand("pm25")
STATION = "urn:ngsi-ld:AirQualityObserved:s1"


def seed_station(ctx: AppContext, entity_id: str = STATION) -> None:
    """One air-quality station with a location and a PM2.5 value with its unit."""
    result = services.upsert_entities(
        ctx,
        SYSTEM,
        "",
        [
            {
                "id": entity_id,
                "type": "AirQualityObserved",
                "name": {"type": "Property", "value": "市政府"},
                "pm25": {
                    "type": "Property",
                    "value": 10,
                    "unitCode": "GQ",
                    "observedAt": "2026-11-25T07:00:00Z",
                },
                "location": {
                    "type": "GeoProperty",
                    "value": {"type": "Point", "coordinates": [104.74, 31.46]},
                },
            }
        ],
    )
    assert result.success == [entity_id] and not result.errors


def state(ctx: AppContext, attr: str = "pm25", entity_id: str = STATION) -> dict[str, object]:
    """The entity's default instance of an attribute."""
    stored = services.get_entity(ctx, SYSTEM, "", entity_id)
    (instance,) = stored["attrs"][Context().expand(attr)]
    return dict(instance)


def history(ctx: AppContext, attr: str = "pm25") -> list[tuple[datetime | None, float | None]]:
    """The history of an attribute of the station, oldest first."""
    with ctx.read() as session:
        rows = session.execute(
            select(AttributeHistory.observed_at, AttributeHistory.number)
            .where(AttributeHistory.entity_id == STATION, AttributeHistory.attr == Context().expand(attr))
            .order_by(AttributeHistory.observed_at)
        )
        return [(t, n) for t, n in rows]


def wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Poll until the condition holds."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_state_takes_the_newest_value_and_history_every_value(ctx: AppContext) -> None:
    seed_station(ctx)
    readings = [
        services.Reading(STATION, T0 + timedelta(minutes=2), {"pm25": 42, "no2": 30.5}),
        services.Reading(STATION, T0, {"pm25": 40}),  # late: history only
        services.Reading(STATION, T0 + timedelta(minutes=1), {"pm25": 41, "status": "ok"}, {"pm25": "GQ"}),
    ]
    result = services.ingest(ctx, SYSTEM, "", readings)
    assert (result.stored, result.duplicates, result.unknown) == (5, 0, [])
    pm25 = state(ctx)
    assert pm25["value"] == 42 and pm25["observedAt"] == "2026-11-25T08:02:00.000000Z"
    assert pm25["unitCode"] == "GQ"  # kept from the entity
    assert state(ctx, "no2")["value"] == 30.5 and state(ctx, "status")["value"] == "ok"
    times = [t for t, _ in history(ctx)]
    assert [n for _, n in history(ctx)][-3:] == [40.0, 41.0, 42.0]
    assert times[-3:] == [T0, T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)]
    # the entity is found by q on the new value (the value index follows the state)
    found = services.query_entities(
        ctx, SYSTEM, "", services.EntityQuery(q=parse_q("pm25>41", Context().expand))
    )
    assert [e["id"] for e in found.entities] == [STATION]


def test_redelivered_readings_are_stored_once(ctx: AppContext) -> None:
    seed_station(ctx)
    batch = [services.Reading(STATION, T0 + timedelta(seconds=s), {"pm25": s}) for s in range(0, 50, 10)]
    assert services.ingest(ctx, SYSTEM, "", batch).stored == 5
    newer = services.Reading(STATION, T0 + timedelta(minutes=5), {"pm25": 99})
    again = services.ingest(ctx, SYSTEM, "", [*batch, newer, newer])
    assert (again.stored, again.duplicates) == (1, 6)
    assert len(history(ctx)) == 1 + 6  # the seeded value and six distinct instants
    assert state(ctx)["value"] == 99


def test_unknown_entities_are_named_and_the_rest_is_stored(ctx: AppContext) -> None:
    seed_station(ctx)
    result = services.ingest(
        ctx,
        SYSTEM,
        "",
        [
            services.Reading("urn:ngsi-ld:X:missing", T0, {"pm25": 1}),
            services.Reading(STATION, T0, {"pm25": 2}),
        ],
    )
    assert (result.stored, result.unknown) == (1, [0])


def test_bad_readings_are_refused_and_nothing_is_written(ctx: AppContext) -> None:
    seed_station(ctx)
    before = len(history(ctx))
    for bad in (
        services.Reading(STATION, T0, {"location": 1}),
        services.Reading(STATION, T0, {"bad name": 1}),
        services.Reading(STATION, datetime(2026, 11, 25, 8, 0), {"pm25": 1}),  # no time zone
    ):
        with pytest.raises(BadRequestData):
            services.ingest(ctx, SYSTEM, "", [services.Reading(STATION, T0, {"pm25": 5}), bad])
    assert len(history(ctx)) == before and state(ctx)["value"] == 10
    with pytest.raises(Unauthorized):
        services.ingest(ctx, ANONYMOUS, "", [services.Reading(STATION, T0, {"pm25": 5})])


def test_one_event_per_entity_and_one_ledger_record_per_batch(client: TestClient, ctx: AppContext) -> None:
    received: list[Event] = []

    async def handler(event: Event) -> None:
        received.append(event)

    assert client.portal is not None
    client.portal.call(lambda: ctx.bus.subscribe(AttributesChanged, handler, durable="test.ingest"))  # type: ignore[arg-type]
    seed_station(ctx)
    seed_station(ctx, "urn:ngsi-ld:AirQualityObserved:s2")
    wait_for(lambda: len(received) == 2)
    received.clear()
    ingests = select(func.count()).where(ledger.LedgerRecord.action == "context.entity.ingest")
    with ctx.read() as session:
        records = session.scalar(ingests)
    services.ingest(
        ctx,
        SYSTEM,
        "",
        [
            services.Reading(STATION, T0, {"pm25": 20}),
            services.Reading(STATION, T0 + timedelta(minutes=1), {"pm25": 21}),
            services.Reading("urn:ngsi-ld:AirQualityObserved:s2", T0, {"pm25": 30}),
        ],
    )
    wait_for(lambda: len(received) == 2)
    by_entity = {e.entity_id: e for e in received if isinstance(e, AttributesChanged)}
    (change,) = by_entity[STATION].changes
    assert change.attr == PM25 and change.old is not None and change.old["value"] == 10
    assert change.new is not None and change.new["value"] == 21
    with ctx.read() as session:
        assert session.scalar(ingests) == (records or 0) + 1
        assert ledger.verify(session).ok


def test_upsert_entities_reports_bad_items_and_keeps_attributes(ctx: AppContext) -> None:
    seed_station(ctx)
    result = services.upsert_entities(
        ctx,
        SYSTEM,
        "",
        [
            {"id": STATION, "type": "AirQualityObserved", "so2": {"type": "Property", "value": 3}},
            {"id": "not a uri", "type": "X"},
        ],
    )
    assert result.success == [STATION]
    assert [e["entityId"] for e in result.errors] == ["not a uri"]
    assert state(ctx, "so2")["value"] == 3 and state(ctx)["value"] == 10
