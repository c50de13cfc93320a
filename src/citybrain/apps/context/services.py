"""Context services: entities, their history and events, on SQLite or PostgreSQL (no HTTP here)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, Integer, column, delete, func, insert, or_, select, text
from sqlalchemy.orm import Session

from citybrain.apps.context import entities as ent
from citybrain.apps.context.errors import (
    AlreadyExists,
    BadRequestData,
    NgsiError,
    NonexistentTenant,
    ResourceNotFound,
)
from citybrain.apps.context.events import AttributeChange, AttributesChanged, EntityCreated, EntityDeleted
from citybrain.apps.context.geo import GeoQuery, geometry_bbox
from citybrain.apps.context.models import AttributeHistory, Entity, EntityType
from citybrain.apps.context.query import Node, matches, needs_post_filter, to_sql
from citybrain.sdk import Actor, AppContext, UnitOfWork, utcnow

TENANT_RE = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
READ, WRITE = "context.entity.read", "context.entity.write"
Dialect = Literal["sqlite", "postgresql"]
Operation = Callable[[dict[str, Any], datetime], ent.UpdateResult]


def check_tenant(value: str | None) -> str:
    """The tenant named by `NGSILD-Tenant` ('' for the default tenant)."""
    if value is None or value == "":
        return ""
    if not TENANT_RE.match(value):
        raise BadRequestData(f"invalid NGSILD-Tenant {value!r}: letters, digits, '_' and '-' only")
    return value


@dataclass
class EntityQuery:
    """What to select: types, ids, an id pattern, a q expression, a geo-query, attributes; and a page."""

    types: list[str] | None = None
    ids: list[str] | None = None
    id_pattern: str | None = None
    q: Node | None = None
    geo: GeoQuery | None = None
    attrs: set[str] | None = None
    limit: int = 20
    offset: int = 0
    count: bool = False


@dataclass
class QueryResult:
    """A page of stored entities and, when asked, the total count."""

    entities: list[dict[str, Any]]
    total: int | None = None


@dataclass
class BatchResult:
    """Which entity ids succeeded and which failed, with the problem of each failure."""

    success: list[str] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


def _dialect(session: Session) -> Dialect:
    return "postgresql" if session.get_bind().dialect.name == "postgresql" else "sqlite"


def _bbox(stored: Mapping[str, Any]) -> tuple[float, float, float, float] | None:
    geometry = ent.geometry_of(stored)
    return geometry_bbox(geometry) if isinstance(geometry, dict) else None


def _columns(stored: Mapping[str, Any]) -> dict[str, Any]:
    """Values of the indexed columns derived from a stored entity."""
    box = _bbox(stored)
    return {
        "type": stored["type"][0],
        "created_at": datetime.fromisoformat(stored["createdAt"]),
        "modified_at": datetime.fromisoformat(stored["modifiedAt"]),
        "data": dict(stored),
        "min_lon": box[0] if box else None,
        "min_lat": box[1] if box else None,
        "max_lon": box[2] if box else None,
        "max_lat": box[3] if box else None,
    }


def _index_geo(session: Session, pk: int, stored: Mapping[str, Any]) -> None:
    """Keep SQLite's R*Tree of entity bounding boxes in step (PostgreSQL uses a GiST index on the row)."""
    if _dialect(session) != "sqlite":
        return
    session.execute(text("DELETE FROM context_geo WHERE id = :pk"), {"pk": pk})
    box = _bbox(stored)
    if box is not None:
        session.execute(
            text(
                "INSERT INTO context_geo (id, min_lon, max_lon, min_lat, max_lat) VALUES (:pk, :a, :c, :b, :d)"
            ),
            {"pk": pk, "a": box[0], "b": box[1], "c": box[2], "d": box[3]},
        )


def _set_types(session: Session, pk: int, types: Sequence[str]) -> None:
    session.execute(delete(EntityType).where(EntityType.entity_pk == pk))
    if len(types) > 1:
        session.execute(insert(EntityType), [{"entity_pk": pk, "type": t} for t in types[1:]])


def _history(
    session: Session, tenant: str, entity_id: str, changes: Iterable[ent.AttrChange], now: datetime
) -> None:
    """Append one history row per changed attribute instance."""
    rows = []
    for change in changes:
        instance = change.new
        observed = (instance or change.old or {}).get("observedAt")
        value = instance.get("value") if instance else None
        number = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
        rows.append(
            {
                "tenant": tenant,
                "entity_id": entity_id,
                "attr": change.name,
                "dataset_id": change.dataset_id or "",
                "observed_at": datetime.fromisoformat(observed) if isinstance(observed, str) else None,
                "modified_at": now,
                "number": number,
                "instance": instance,
            }
        )
    if rows:
        session.execute(insert(AttributeHistory), rows)


def _event_changes(changes: Iterable[ent.AttrChange]) -> list[AttributeChange]:
    return [AttributeChange(attr=c.name, dataset_id=c.dataset_id, old=c.old, new=c.new) for c in changes]


def _load(session: Session, tenant: str, entity_id: str, *, for_update: bool = False) -> Entity:
    stmt = select(Entity).where(Entity.tenant == tenant, Entity.entity_id == entity_id)
    if for_update:
        stmt = stmt.with_for_update()
    row = session.scalar(stmt)
    if row is None:
        raise ResourceNotFound(f"entity {entity_id} does not exist")
    return row


def _insert(uow: UnitOfWork, tenant: str, stored: dict[str, Any], now: datetime) -> None:
    """Insert a new entity with its history and event; AlreadyExists when the id is taken."""
    session = uow.session
    taken = session.scalar(select(Entity.pk).where(Entity.tenant == tenant, Entity.entity_id == stored["id"]))
    if taken is not None:
        raise AlreadyExists(f"entity {stored['id']} already exists")
    row = Entity(tenant=tenant, entity_id=stored["id"], **_columns(stored))
    session.add(row)
    session.flush()
    _set_types(session, row.pk, stored["type"])
    _index_geo(session, row.pk, stored)
    created = [
        ent.AttrChange(name, i.get("datasetId"), None, i)
        for name, instances in stored.get("attrs", {}).items()
        for i in instances
    ]
    _history(session, tenant, stored["id"], created, now)
    uow.record("create", f"context_entity:{tenant}/{stored['id']}", None, stored)
    uow.emit(EntityCreated(tenant=tenant, entity_id=stored["id"], types=list(stored["type"])))
    if created:
        uow.emit(
            AttributesChanged(
                tenant=tenant,
                entity_id=stored["id"],
                types=list(stored["type"]),
                changes=_event_changes(created),
            )
        )


def _save(uow: UnitOfWork, tenant: str, row: Entity, result: ent.UpdateResult, now: datetime) -> None:
    """Store an updated entity with its history, ledger record and event (nothing when nothing changed)."""
    if not result.changes and result.entity.get("type") == row.data.get("type"):
        return
    session = uow.session
    before = row.data
    for key, value in _columns(result.entity).items():
        setattr(row, key, value)
    session.flush()
    if result.entity["type"] != before.get("type"):
        _set_types(session, row.pk, result.entity["type"])
    if ent.geometry_of(result.entity) != ent.geometry_of(before):
        _index_geo(session, row.pk, result.entity)
    _history(session, tenant, row.entity_id, result.changes, now)
    uow.record("update", f"context_entity:{tenant}/{row.entity_id}", before, result.entity)
    if result.changes:
        uow.emit(
            AttributesChanged(
                tenant=tenant,
                entity_id=row.entity_id,
                types=list(result.entity["type"]),
                changes=_event_changes(result.changes),
            )
        )


# --- single-entity operations ------------------------------------------------------------------


def create_entity(ctx: AppContext, actor: Actor, tenant: str, stored: dict[str, Any]) -> None:
    """Create an entity from its stored form."""
    actor.require(WRITE)
    with ctx.uow(actor, "context.entity.create") as uow:
        _insert(uow, tenant, stored, utcnow())


def get_entity(ctx: AppContext, actor: Actor, tenant: str, entity_id: str) -> dict[str, Any]:
    """The stored form of one entity."""
    actor.require(READ)
    with ctx.read() as session:
        _check_tenant_exists(session, tenant)
        return dict(_load(session, tenant, entity_id).data)


def update_entity(
    ctx: AppContext, actor: Actor, tenant: str, entity_id: str, action: str, apply: Operation
) -> ent.UpdateResult:
    """Apply a pure stored-form operation (append, update, merge, replace, partial, delete attr) atomically."""
    actor.require(WRITE)
    now = utcnow()
    with ctx.uow(actor, action) as uow:
        row = _load(uow.session, tenant, entity_id, for_update=True)
        result = apply(dict(row.data), now)
        _save(uow, tenant, row, result, now)
        return result


def delete_entity(ctx: AppContext, actor: Actor, tenant: str, entity_id: str) -> None:
    """Delete an entity (its history stays until retention removes it)."""
    actor.require(WRITE)
    with ctx.uow(actor, "context.entity.delete") as uow:
        _delete(uow, tenant, entity_id)


def _delete(uow: UnitOfWork, tenant: str, entity_id: str) -> None:
    row = _load(uow.session, tenant, entity_id, for_update=True)
    stored = row.data
    if _dialect(uow.session) == "sqlite":
        uow.session.execute(text("DELETE FROM context_geo WHERE id = :pk"), {"pk": row.pk})
    uow.session.execute(delete(EntityType).where(EntityType.entity_pk == row.pk))
    uow.session.delete(row)
    uow.record("delete", f"context_entity:{tenant}/{entity_id}", stored, None)
    uow.emit(EntityDeleted(tenant=tenant, entity_id=entity_id, types=list(stored["type"])))


# --- batch operations --------------------------------------------------------------------------


def batch(
    ctx: AppContext,
    actor: Actor,
    tenant: str,
    kind: str,
    items: Sequence[dict[str, Any] | Exception],
    *,
    upsert_mode: Literal["replace", "update"] = "replace",
    no_overwrite: bool = False,
) -> BatchResult:
    """Run a batch create/upsert/update/merge/delete; each item succeeds or fails on its own."""
    actor.require(WRITE)
    outcome = BatchResult()
    now = utcnow()
    with ctx.uow(actor, f"context.entity.batch_{kind}") as uow:
        for item in items:
            if isinstance(item, Exception):
                outcome.errors.append(_batch_error(getattr(item, "entity_id", ""), item))
                continue
            entity_id = item["id"]
            savepoint = uow.session.begin_nested()
            try:
                _batch_one(uow, tenant, kind, item, now, upsert_mode, no_overwrite)
                savepoint.commit()
                outcome.success.append(entity_id)
            except NgsiError as exc:  # one bad item never blocks the others
                savepoint.rollback()
                outcome.errors.append(_batch_error(entity_id, exc))
    return outcome


def _batch_one(
    uow: UnitOfWork,
    tenant: str,
    kind: str,
    item: dict[str, Any],
    now: datetime,
    upsert_mode: str,
    no_overwrite: bool,
) -> None:
    session = uow.session
    if kind == "create":
        _insert(uow, tenant, item, now)
        return
    if kind == "delete":
        _delete(uow, tenant, item["id"])
        return
    exists = session.scalar(select(Entity.pk).where(Entity.tenant == tenant, Entity.entity_id == item["id"]))
    if exists is None:
        if kind == "upsert":
            _insert(uow, tenant, item, now)
            return
        raise ResourceNotFound(f"entity {item['id']} does not exist")
    row = _load(session, tenant, item["id"], for_update=True)
    attrs = item.get("attrs", {})
    if kind == "upsert" and upsert_mode == "replace":
        result = ent.replace_entity(row.data, item, now)
    elif kind in ("upsert", "update"):
        result = ent.append_attrs(row.data, attrs, now, no_overwrite=no_overwrite, types=item.get("type", ()))
    else:
        result = ent.merge_entity(row.data, attrs, now, types=item.get("type", ()))
    _save(uow, tenant, row, result, now)


def _batch_error(entity_id: str, exc: Exception) -> dict[str, Any]:
    problem = exc.problem() if hasattr(exc, "problem") else {"title": "Bad request", "detail": str(exc)}
    return {"entityId": entity_id, "error": problem}


# --- queries -----------------------------------------------------------------------------------


def _check_tenant_exists(session: Session, tenant: str) -> None:
    if tenant and session.scalar(select(Entity.pk).where(Entity.tenant == tenant).limit(1)) is None:
        raise NonexistentTenant(f"tenant {tenant!r} does not exist")


def _type_condition(types: Sequence[str]) -> ColumnElement[bool]:
    extra = select(EntityType.entity_pk).where(EntityType.type.in_(types))
    return or_(Entity.type.in_(types), Entity.pk.in_(extra))


def _geo_condition(session: Session, geo: GeoQuery) -> ColumnElement[bool] | None:
    box = geo.bbox()
    if box is None or geo.geoproperty != ent.LOCATION:
        return None
    min_lon, min_lat, max_lon, max_lat = box
    if _dialect(session) == "sqlite":
        inside = (
            text(
                "SELECT id FROM context_geo WHERE max_lon >= :a AND min_lon <= :c AND max_lat >= :b AND min_lat <= :d"
            )
            .bindparams(a=min_lon, b=min_lat, c=max_lon, d=max_lat)
            .columns(column("id", Integer))
            .subquery()
        )
        return Entity.pk.in_(select(inside.c.id))
    row_box = func.box(func.point(Entity.min_lon, Entity.min_lat), func.point(Entity.max_lon, Entity.max_lat))
    query_box = func.box(func.point(min_lon, min_lat), func.point(max_lon, max_lat))
    return row_box.op("&&")(query_box)


def query_entities(ctx: AppContext, actor: Actor, tenant: str, query: EntityQuery) -> QueryResult:
    """Entities matching every condition of the query, in id order, one page of them."""
    actor.require(READ)
    with ctx.read() as session:
        _check_tenant_exists(session, tenant)
        stmt = select(Entity.data).where(Entity.tenant == tenant)
        if query.types:
            stmt = stmt.where(_type_condition(query.types))
        if query.ids:
            stmt = stmt.where(Entity.entity_id.in_(query.ids))
        if query.id_pattern:
            stmt = stmt.where(_regexp(session, Entity.entity_id, query.id_pattern))
        post: list[Any] = []
        if query.q is not None:
            stmt = stmt.where(to_sql(query.q, Entity.__table__.c.data, _dialect(session)))
            if needs_post_filter(query.q):
                node = query.q
                post.append(lambda stored: matches(node, stored))
        if query.geo is not None:
            condition = _geo_condition(session, query.geo)
            if condition is not None:
                stmt = stmt.where(condition)
            geo = query.geo
            post.append(lambda stored: _geo_match(geo, stored))
        if query.attrs:
            wanted = query.attrs
            post.append(lambda stored: bool(wanted & set(stored.get("attrs", {}))))
        stmt = stmt.order_by(Entity.entity_id)
        if not post:
            total = session.scalar(select(func.count()).select_from(stmt.subquery())) if query.count else None
            rows: list[dict[str, Any]] = []
            if query.limit:
                rows = [dict(r) for r in session.scalars(stmt.limit(query.limit).offset(query.offset))]
            return QueryResult(rows, total)
        selected = [dict(r) for r in session.scalars(stmt) if all(check(r) for check in post)]
        page = selected[query.offset : query.offset + query.limit] if query.limit else []
        return QueryResult(page, len(selected) if query.count else None)


def _geo_match(geo: GeoQuery, stored: Mapping[str, Any]) -> bool:
    geometry = ent.geometry_of(stored, geo.geoproperty)
    return isinstance(geometry, dict) and geo.matches(geometry)


def _regexp(session: Session, column: Any, pattern: str) -> ColumnElement[bool]:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise BadRequestData(f"invalid idPattern: {exc}") from None
    if _dialect(session) == "postgresql":
        return column.op("~")(pattern)  # type: ignore[no-any-return]
    return func.regexp(pattern, column) == 1


# --- discovery ---------------------------------------------------------------------------------


def entity_types(ctx: AppContext, actor: Actor, tenant: str) -> dict[str, dict[str, Any]]:
    """Every entity type with its entity count and attribute names (expanded)."""
    actor.require(READ)
    found: dict[str, dict[str, Any]] = {}
    with ctx.read() as session:
        _check_tenant_exists(session, tenant)
        for data in session.scalars(select(Entity.data).where(Entity.tenant == tenant)):
            for type_iri in data["type"]:
                info = found.setdefault(type_iri, {"count": 0, "attrs": {}})
                info["count"] += 1
                for name, instances in data.get("attrs", {}).items():
                    kinds = info["attrs"].setdefault(name, set())
                    kinds.update(i["type"] for i in instances)
    return found


def attribute_names(ctx: AppContext, actor: Actor, tenant: str) -> dict[str, dict[str, Any]]:
    """Every attribute name with its count, the types that carry it and its attribute types."""
    actor.require(READ)
    found: dict[str, dict[str, Any]] = {}
    with ctx.read() as session:
        _check_tenant_exists(session, tenant)
        for data in session.scalars(select(Entity.data).where(Entity.tenant == tenant)):
            for name, instances in data.get("attrs", {}).items():
                info = found.setdefault(name, {"count": 0, "types": set(), "attributeTypes": set()})
                info["count"] += 1
                info["types"].update(data["type"])
                info["attributeTypes"].update(i["type"] for i in instances)
    return found


def purge_history(ctx: AppContext, actor: Actor, older_than: datetime) -> int:
    """Really delete history rows last modified before a moment (the retention job)."""
    actor.require(WRITE)
    with ctx.uow(actor, "context.history.purge") as uow:
        deleted = uow.session.execute(
            delete(AttributeHistory).where(AttributeHistory.modified_at < older_than)
        )
        count = int(getattr(deleted, "rowcount", 0) or 0)
        uow.record("delete", "context_history:*", None, {"older_than": older_than.isoformat(), "rows": count})
        return count


# --- reads for the entity browser pages --------------------------------------------------------


def entity_type_counts(ctx: AppContext, actor: Actor, tenant: str) -> dict[str, int]:
    """How many entities carry each type (expanded IRIs), counted in the database, not entity by entity."""
    actor.require(READ)
    with ctx.read() as session:
        _check_tenant_exists(session, tenant)
        first = select(Entity.type, func.count()).where(Entity.tenant == tenant).group_by(Entity.type)
        counts: dict[str, int] = {str(name): int(n) for name, n in session.execute(first)}
        further = (
            select(EntityType.type, func.count())
            .join(Entity, Entity.pk == EntityType.entity_pk)
            .where(Entity.tenant == tenant)
            .group_by(EntityType.type)
        )
        for name, n in session.execute(further):
            counts[str(name)] = counts.get(str(name), 0) + int(n)
    return counts


def attribute_history(
    ctx: AppContext,
    actor: Actor,
    tenant: str,
    entity_id: str,
    attr_iri: str,
    limit: int = 500,
    *,
    dataset_id: str | None = None,
) -> list[tuple[datetime, float]]:
    """The last `limit` numeric values of an attribute instance, oldest first (at observedAt, else modifiedAt)."""
    actor.require(READ)
    moment = func.coalesce(AttributeHistory.observed_at, AttributeHistory.modified_at)
    stmt = (
        select(moment, AttributeHistory.number)
        .where(
            AttributeHistory.tenant == tenant,
            AttributeHistory.entity_id == entity_id,
            AttributeHistory.attr == attr_iri,
            AttributeHistory.dataset_id == (dataset_id or ""),
            AttributeHistory.number.is_not(None),
        )
        .order_by(moment.desc(), AttributeHistory.pk.desc())
        .limit(limit)
    )
    with ctx.read() as session:
        rows = session.execute(stmt).all()
    return [(when, number) for when, number in reversed(rows) if number is not None]
