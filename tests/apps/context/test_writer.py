"""Set-based entity writes and group commit: many writers, one transaction, each with its own outcome."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select

from citybrain.apps.context import entities as ent
from citybrain.apps.context.errors import AlreadyExists, ResourceNotFound
from citybrain.apps.context.events import AttributesChanged, EntityCreated, EntityDeleted
from citybrain.apps.context.jsonld import Context
from citybrain.apps.context.models import AttributeHistory, Entity
from citybrain.apps.context.writer import GroupCommit, Job, apply_jobs
from citybrain.core import ledger
from citybrain.core.bus import Event
from citybrain.core.context import AppContext
from citybrain.core.errors import Unauthorized
from citybrain.core.permissions import ANONYMOUS, SYSTEM

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
CTX = Context([])


def stored(n: int, speed: int = 40, *, types: tuple[str, ...] = ("TrafficFlowObserved",)) -> dict[str, Any]:
    """A stored detector entity."""
    payload = {
        "id": f"urn:ngsi-ld:TrafficFlowObserved:w-{n}",
        "type": list(types),
        "averageVehicleSpeed": {"type": "Property", "value": speed},
        "location": {
            "type": "GeoProperty",
            "value": {"type": "Point", "coordinates": [104.7 + n / 1000, 31.46]},
        },
    }
    return ent.parse_entity(payload, CTX, NOW)


def speed_to(value: int) -> Any:
    """An operation setting averageVehicleSpeed."""
    iri = CTX.expand("averageVehicleSpeed")
    return lambda data, now: ent.partial_attr_update(data, iri, {"value": value}, now, None)


def job(op: str, n: int, **kw: Any) -> Job:
    """A job on detector n by the system."""
    return Job(SYSTEM, "", f"urn:ngsi-ld:TrafficFlowObserved:w-{n}", op, f"context.entity.{op}", **kw)  # type: ignore[arg-type]


def speed(ctx: AppContext, n: int) -> Any:
    """The stored speed of detector n."""
    with ctx.read() as session:
        data = session.scalar(
            select(Entity.data).where(Entity.entity_id == f"urn:ngsi-ld:TrafficFlowObserved:w-{n}")
        )
    return None if data is None else ent.find_instance(data, CTX.expand("averageVehicleSpeed"))["value"]  # type: ignore[index]


def wait_for(condition: Any, seconds: float = 5) -> None:
    """Wait until the condition holds (or the time is up)."""
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)


def count(ctx: AppContext, what: Any) -> int:
    """Rows of a table."""
    with ctx.read() as session:
        return int(session.scalar(select(func.count()).select_from(what)) or 0)


def test_jobs_in_one_transaction_each_get_their_own_outcome(client: TestClient, ctx: AppContext) -> None:
    received: list[Event] = []

    async def handler(event: Event) -> None:
        received.append(event)

    assert client.portal is not None
    for kind in (EntityCreated, AttributesChanged, EntityDeleted):
        client.portal.call(lambda k=kind: ctx.bus.subscribe(k, handler, durable=f"test.writer.{k.__name__}"))  # type: ignore[misc]
    apply_jobs(ctx, [job("create", 1, stored=stored(1))])
    wait_for(lambda: len(received) == 2)
    received.clear()
    ledger_before = count(ctx, ledger.LedgerRecord)
    outcomes = apply_jobs(
        ctx,
        [
            job("create", 2, stored=stored(2)),
            job("create", 1, stored=stored(1)),  # taken
            job("update", 1, apply=speed_to(55)),
            job("update", 9, apply=speed_to(10)),  # missing
            job("update", 2, apply=speed_to(60)),  # created earlier in the same transaction
            Job(ANONYMOUS, "", "urn:ngsi-ld:TrafficFlowObserved:w-1", "delete", "context.entity.delete"),
            job("upsert", 3, stored=stored(3), apply=speed_to(1)),  # absent: created
            job("upsert", 3, stored=stored(3), apply=speed_to(70)),  # now present: updated
        ],
    )
    assert outcomes[0] is None
    assert isinstance(outcomes[1], AlreadyExists)
    assert isinstance(outcomes[2], ent.UpdateResult)
    assert isinstance(outcomes[3], ResourceNotFound)
    assert isinstance(outcomes[4], ent.UpdateResult)
    assert isinstance(outcomes[5], Unauthorized)
    assert outcomes[6] is None and isinstance(outcomes[7], ent.UpdateResult)
    assert (speed(ctx, 1), speed(ctx, 2), speed(ctx, 3)) == (55, 60, 70)
    # five writes succeeded: five ledger records and, per create two events, per update one
    assert count(ctx, ledger.LedgerRecord) - ledger_before == 5
    expected = [
        ("EntityCreated", "w-2"),
        ("AttributesChanged", "w-2"),
        ("AttributesChanged", "w-1"),
        ("AttributesChanged", "w-2"),
        ("EntityCreated", "w-3"),
        ("AttributesChanged", "w-3"),
        ("AttributesChanged", "w-3"),
    ]
    wait_for(lambda: len(received) >= len(expected))
    assert sorted((type(e).__name__, e.entity_id.rsplit(":", 1)[1]) for e in received) == sorted(expected)  # type: ignore[attr-defined]
    with ctx.read() as session:
        assert ledger.verify(session).ok


def test_delete_then_create_in_one_transaction_leaves_the_new_entity(ctx: AppContext) -> None:
    apply_jobs(ctx, [job("create", 4, stored=stored(4, types=("TrafficFlowObserved", "Sensor")))])
    outcomes = apply_jobs(ctx, [job("delete", 4), job("create", 4, stored=stored(4, 12))])
    assert outcomes == [None, None]
    assert speed(ctx, 4) == 12
    with ctx.read() as session:
        row = session.scalars(select(Entity).where(Entity.entity_id.like("%w-4"))).one()
        assert row.data["type"] == [CTX.expand("TrafficFlowObserved")]
    assert apply_jobs(ctx, [job("delete", 4)]) == [None]
    assert speed(ctx, 4) is None
    assert isinstance(apply_jobs(ctx, [job("delete", 4)])[0], ResourceNotFound)


def test_history_rows_follow_every_change(ctx: AppContext) -> None:
    apply_jobs(ctx, [job("create", 5, stored=stored(5))])
    apply_jobs(ctx, [job("update", 5, apply=speed_to(v)) for v in (41, 42, 42, 43)])
    with ctx.read() as session:
        values = session.scalars(
            select(AttributeHistory.number)
            .where(AttributeHistory.attr == CTX.expand("averageVehicleSpeed"))
            .order_by(AttributeHistory.pk)
        ).all()
    # the repeated 42 changes nothing else, but the instance is rewritten (modifiedAt), so it is history too
    assert values[0] == 40 and values[-1] == 43 and 41 in values


def test_concurrent_writers_share_transactions(ctx: AppContext) -> None:
    apply_jobs(ctx, [job("create", n, stored=stored(n)) for n in range(10)])
    commits = 0

    def on_commit(_conn: Any) -> None:
        nonlocal commits
        commits += 1

    event.listen(ctx.db.write_engine, "commit", on_commit)

    async def run() -> list[Any]:
        writer = GroupCommit(ctx)
        await writer.start()
        try:
            return await asyncio.gather(
                *(writer.submit([job("update", i % 10, apply=speed_to(100 + i))]) for i in range(200)),
                writer.submit([job("update", 99, apply=speed_to(1))]),
            )
        finally:
            await writer.stop()

    try:
        results = asyncio.run(run())
    finally:
        event.remove(ctx.db.write_engine, "commit", on_commit)
    assert all(isinstance(r[0], ent.UpdateResult) for r in results[:-1])
    assert isinstance(results[-1][0], ResourceNotFound)
    # jobs are applied in the order they were queued, so the last update of each detector wins
    assert [speed(ctx, n) for n in range(10)] == [100 + 190 + n for n in range(10)]
    assert commits < 100


def test_a_database_error_fails_only_its_own_job(ctx: AppContext) -> None:
    bad = stored(7)
    bad["type"] = [*bad["type"], "urn:x:Sensor", "urn:x:Sensor"]  # the database refuses the repeated type
    outcomes = apply_jobs(ctx, [job("create", 6, stored=stored(6)), job("create", 7, stored=bad)])
    assert outcomes[0] is None and isinstance(outcomes[1], Exception)
    assert speed(ctx, 6) == 40 and speed(ctx, 7) is None


@pytest.mark.parametrize("size", [1, 300])
def test_batches_of_any_size_write_every_entity(ctx: AppContext, size: int) -> None:
    assert apply_jobs(ctx, [job("create", n, stored=stored(n, n % 90)) for n in range(size)]) == [None] * size
    assert count(ctx, Entity) == size
    assert [speed(ctx, n) for n in (0, size - 1)] == [0, (size - 1) % 90]


def test_an_integer_beyond_a_double_is_kept_but_not_aggregated(ctx: AppContext) -> None:
    huge = 10**400
    assert apply_jobs(ctx, [job("create", 9, stored=stored(9, speed=huge))]) == [None]
    assert speed(ctx, 9) == huge
    with ctx.read() as session:
        numbers = session.scalars(
            select(AttributeHistory.number).where(
                AttributeHistory.entity_id.like("%w-9"),
                AttributeHistory.attr == CTX.expand("averageVehicleSpeed"),
            )
        ).all()
    assert numbers == [None]
