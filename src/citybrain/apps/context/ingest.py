"""Sensor ingest: many readings of many entities written in one set-based transaction, idempotently.

A reading sets Properties of an existing entity to values observed at one instant. Every value goes
to the attribute history; the entity state takes, per attribute, the newest observedAt. A value whose
(entity, attribute, observedAt) the history already holds is skipped, so a redelivered message is
stored once. Only a value not newer than the state's observedAt can be such a duplicate (the state
holds the newest instant ingested), so only those few are looked up in the history.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from citybrain.apps.context import entities as ent
from citybrain.apps.context.errors import BadRequestData
from citybrain.apps.context.events import AttributesChanged
from citybrain.apps.context.jsonld import Context
from citybrain.apps.context.models import AttributeHistory, Entity
from citybrain.apps.context.permissions import may_write
from citybrain.apps.context.values import history_number, refresh_values
from citybrain.apps.context.writer import index_rows, write_at_once
from citybrain.sdk import Actor, AppContext, bulk_insert, uses_copy, utcnow

WRITE = "context.entity.write"
ACTION = "context.entity.ingest"
# (entity, attribute) spans per history lookup statement (each contributes one OR branch).
LOOKUP_CHUNK = 500


@dataclass(frozen=True)
class Reading:
    """Attribute values of one entity observed at one instant (terms expand with the core @context)."""

    entity_id: str
    observed_at: datetime
    values: Mapping[str, Any]
    unit_codes: Mapping[str, str] = field(default_factory=dict)


@dataclass
class IngestResult:
    """Values written, values skipped as already stored, the readings naming no entity or one not the actor's."""

    stored: int = 0
    duplicates: int = 0
    unknown: list[int] = field(default_factory=list)
    forbidden: list[int] = field(default_factory=list)


@dataclass
class _Target:
    """An entity being ingested into: its row, its stored form, and per attribute the newest instance."""

    pk: int
    stored: dict[str, Any]
    department: int | None
    # attribute IRI -> (instance before the batch, newest instance of the batch)
    newest: dict[str, tuple[dict[str, Any] | None, dict[str, Any]]] = field(default_factory=dict)


def ingest(ctx: AppContext, actor: Actor, tenant: str, readings: Sequence[Reading]) -> IngestResult:
    """Store readings of existing entities in one transaction (state, history, value index, events)."""
    actor.require(WRITE)
    result = IngestResult()
    if not readings:
        return result
    iris = _expand_all(readings)
    now = utcnow()
    stamp = ent.format_datetime(now)
    with ctx.uow(actor, ACTION) as uow:
        session = uow.session
        targets = _lock(session, tenant, {r.entity_id for r in readings})
        points: list[tuple[_Target, str, str, datetime, Any, str | None]] = []
        for index, reading in enumerate(readings):
            target = targets.get(reading.entity_id)
            if target is None:
                result.unknown.append(index)
                continue
            if not may_write(actor, target.department):
                result.forbidden.append(index)
                continue
            observed = _utc(reading.observed_at)
            observed_text = ent.format_datetime(observed)
            units = reading.unit_codes
            for term, value in reading.values.items():
                if value is not None:
                    points.append((target, iris[term], observed_text, observed, value, units.get(term)))
        seen = _already_stored(session, tenant, points)
        history: list[dict[str, Any]] = []
        for target, iri, observed_text, observed, value, unit in points:
            key = (target.stored["id"], iri, observed)
            if key in seen:
                result.duplicates += 1
                continue
            seen.add(key)
            instance = _instance(target, iri, observed_text, value, unit, stamp)
            history.append(
                {
                    "tenant": tenant,
                    "entity_id": key[0],
                    "attr": iri,
                    "dataset_id": "",
                    "observed_at": observed,
                    "modified_at": now,
                    "number": history_number(value),
                    "instance": instance,
                }
            )
        result.stored = len(history)
        changed = [t for t in targets.values() if _finish(t, stamp)]
        rows = [{"pk": t.pk, "data": t.stored, "modified_at": now} for t in changed]
        connection = session.connection()
        if uses_copy(connection):  # PostgreSQL: entity rows, index rows and history in one statement
            revalued = index_rows([(t.pk, t.stored) for t in changed], [])
            write_at_once(connection, rows, ("data", "modified_at"), revalued, history)
        else:
            if rows:
                session.execute(update(Entity), rows)
                refresh_values(session, [(t.pk, t.stored) for t in changed])
            bulk_insert(connection, AttributeHistory, history)
        if history:
            uow.record(
                "ingest", f"context_ingest:{tenant}", None, _summary(history), actor=actor, action=ACTION
            )
        uow.emit_documents(AttributesChanged, [_changes(tenant, t) for t in changed])
    return result


def _expand_all(readings: Sequence[Reading]) -> dict[str, str]:
    """The IRI of every attribute term the readings use; a reserved or malformed name is refused."""
    context = Context()
    iris: dict[str, str] = {}
    for reading in readings:
        for term in reading.values:
            if term not in iris:
                ent.validate_attr_name(term)
                iri = context.expand(term)
                if term in ent.RESERVED_NAMES or term in ("location", "observationSpace", "operationSpace"):
                    raise BadRequestData(f"{term!r} cannot be ingested as a measured value")
                iris[term] = iri
    return iris


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise BadRequestData("a reading's observedAt must carry a time zone")
    return moment.astimezone(UTC)


def _lock(session: Session, tenant: str, ids: set[str]) -> dict[str, _Target]:
    """Load (and on PostgreSQL lock, in pk order) the entities the readings name."""
    stmt = (
        select(Entity.pk, Entity.entity_id, Entity.data, Entity.department_id)
        .where(Entity.tenant == tenant, Entity.entity_id.in_(sorted(ids)))
        .order_by(Entity.pk)
        .with_for_update()
    )
    rows = session.execute(stmt)
    return {entity_id: _Target(pk, data, department) for pk, entity_id, data, department in rows}


def _state_observed(target: _Target, iri: str) -> str | None:
    """The observedAt of the attribute's default instance in the original state."""
    for instance in target.stored.get("attrs", {}).get(iri, ()):
        if "datasetId" not in instance:
            observed = instance.get("observedAt")
            return observed if isinstance(observed, str) else None
    return None


def _already_stored(
    session: Session, tenant: str, points: Sequence[tuple[_Target, str, str, datetime, Any, str | None]]
) -> set[tuple[str, str, datetime]]:
    """The (entity, attribute, observedAt) keys among possible duplicates that the history holds."""
    suspects = {
        (target.stored["id"], iri, observed)
        for target, iri, observed_text, observed, _, _ in points
        if (state := _state_observed(target, iri)) is not None and observed_text <= state
    }
    spans: dict[tuple[str, str], tuple[datetime, datetime]] = {}
    for entity_id, iri, observed in suspects:
        low, high = spans.get((entity_id, iri), (observed, observed))
        spans[(entity_id, iri)] = (min(low, observed), max(high, observed))
    found: set[tuple[str, str, datetime]] = set()
    groups = sorted(spans.items())
    h = AttributeHistory
    for start in range(0, len(groups), LOOKUP_CHUNK):
        # Each branch names every column of the history's lookup index, so each is one index range scan.
        condition = or_(
            *(
                and_(h.tenant == tenant, h.entity_id == e, h.attr == a, h.observed_at.between(low, high))
                for (e, a), (low, high) in groups[start : start + LOOKUP_CHUNK]
            )
        )
        stmt = select(h.entity_id, h.attr, h.observed_at).where(condition, h.dataset_id == "")
        found.update(key for e, a, t in session.execute(stmt) if (key := (e, a, t)) in suspects)
    return found


def _instance(
    target: _Target, iri: str, observed: str, value: Any, unit: str | None, stamp: str
) -> dict[str, Any]:
    """The instance a value makes (kept as the attribute's newest when it is); the history row holds it."""
    seen = target.newest.get(iri)
    if seen is None:
        old = next((i for i in target.stored.get("attrs", {}).get(iri, ()) if "datasetId" not in i), None)
        base = old
    else:
        old, base = seen
    if base is not None and base.get("type") == "Property":
        instance = {**base, "value": value, "observedAt": observed, "modifiedAt": stamp}
    else:
        instance = {
            "type": "Property",
            "value": value,
            "observedAt": observed,
            "createdAt": stamp,
            "modifiedAt": stamp,
        }
    if unit is not None:
        instance["unitCode"] = unit
    newest = base.get("observedAt") if base is not None else None
    if base is None or not isinstance(newest, str) or observed >= newest:
        target.newest[iri] = (old, instance)
    return instance


def _finish(target: _Target, stamp: str) -> bool:
    """Put the newest instances into the stored form; whether anything changed."""
    if not target.newest:
        return False
    stored = target.stored = {**target.stored, "modifiedAt": stamp}
    attrs = stored["attrs"] = dict(stored.get("attrs", {}))
    for iri, (_, instance) in target.newest.items():
        attrs[iri] = [instance, *(i for i in attrs.get(iri, ()) if "datasetId" in i)]
    return True


def _changes(tenant: str, target: _Target) -> dict[str, Any]:
    """The fields of the entity's AttributesChanged event."""
    return {
        "tenant": tenant,
        "entity_id": target.stored["id"],
        "types": target.stored["type"],
        "changes": [
            {"attr": iri, "dataset_id": None, "old": old, "new": new}
            for iri, (old, new) in target.newest.items()
        ],
    }


def _summary(history: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What the ledger keeps of an ingest batch: its size, time span and a digest of every value."""
    digest = hashlib.sha256(
        orjson.dumps([(r["entity_id"], r["attr"], r["observed_at"], r["instance"]["value"]) for r in history])
    )
    observed = [row["observed_at"] for row in history]
    return {
        "values": len(history),
        "entities": len({row["entity_id"] for row in history}),
        "from": min(observed).isoformat(),
        "to": max(observed).isoformat(),
        "sha256": digest.hexdigest(),
    }
