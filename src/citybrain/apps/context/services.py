"""Context services: entities, their history and events, on SQLite or PostgreSQL (no HTTP here)."""

from __future__ import annotations

import asyncio
import re
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, Literal

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Engine,
    Integer,
    Select,
    and_,
    column,
    delete,
    func,
    literal_column,
    not_,
    or_,
    select,
    text,
)
from sqlalchemy.orm import Session

from citybrain.apps.context import entities as ent
from citybrain.apps.context.errors import (
    BadRequestData,
    NgsiError,
    NonexistentTenant,
    ResourceNotFound,
)
from citybrain.apps.context.geo import DENSIFY_DEGREES, DENSIFY_PARTS, GeoQuery
from citybrain.apps.context.ingest import IngestResult, Reading, ingest
from citybrain.apps.context.jsonld import Context
from citybrain.apps.context.models import AttributeHistory, AttributeValue, Entity, EntityType
from citybrain.apps.context.query import Node, matches, needs_post_filter, to_prefilter, to_sql
from citybrain.apps.context.writer import GroupCommit, Job, Outcome, apply_jobs
from citybrain.sdk import Actor, AppContext, ProblemError, utcnow

TENANT_RE = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
READ, WRITE = "context.entity.read", "context.entity.write"
# On SQLite, a q prefilter lookup matching fewer entity rows than this drives the query.
DRIVING_LOOKUP_ROWS = 1000
Dialect = Literal["sqlite", "postgresql"]
Operation = Callable[[dict[str, Any], datetime], ent.UpdateResult]
WRITER = "context.writer"
__all__ = ["IngestResult", "Reading", "ingest"]  # re-exported: the sensor ingest path other apps call


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


def _load(session: Session, tenant: str, entity_id: str) -> Entity:
    row = session.scalar(select(Entity).where(Entity.tenant == tenant, Entity.entity_id == entity_id))
    if row is None:
        raise ResourceNotFound(f"entity {entity_id} does not exist")
    return row


# --- single-entity operations ------------------------------------------------------------------


def create_entity(ctx: AppContext, actor: Actor, tenant: str, stored: dict[str, Any]) -> None:
    """Create an entity from its stored form."""
    actor.require(WRITE)
    _single(apply_jobs(ctx, [create_job(actor, tenant, stored)]))


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
    result = _single(apply_jobs(ctx, [update_job(actor, tenant, entity_id, action, apply)]))
    assert result is not None
    return result


def delete_entity(ctx: AppContext, actor: Actor, tenant: str, entity_id: str) -> None:
    """Delete an entity (its history stays until retention removes it)."""
    actor.require(WRITE)
    _single(apply_jobs(ctx, [delete_job(actor, tenant, entity_id)]))


def create_job(actor: Actor, tenant: str, stored: dict[str, Any]) -> Job:
    """A job creating an entity."""
    return Job(actor, tenant, stored["id"], "create", "context.entity.create", stored=stored)


def update_job(actor: Actor, tenant: str, entity_id: str, action: str, apply: Operation) -> Job:
    """A job applying a stored-form operation to an entity."""
    return Job(actor, tenant, entity_id, "update", action, apply=apply)


def delete_job(actor: Actor, tenant: str, entity_id: str) -> Job:
    """A job deleting an entity."""
    return Job(actor, tenant, entity_id, "delete", "context.entity.delete")


async def write(ctx: AppContext, jobs: Sequence[Job]) -> list[Outcome]:
    """Run jobs through the app's group commit when it runs (concurrent requests share transactions)."""
    writer: GroupCommit | None = ctx.extensions.get(WRITER)
    if writer is None:
        return await asyncio.to_thread(apply_jobs, ctx, jobs)
    return await writer.submit(jobs)


async def write_one(ctx: AppContext, job: Job) -> ent.UpdateResult | None:
    """Run one job through the group commit; its error is raised."""
    job.actor.require(WRITE)
    return _single(await write(ctx, [job]))


def _single(outcomes: Sequence[Outcome]) -> ent.UpdateResult | None:
    (outcome,) = outcomes
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


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
    """Run a batch create/upsert/update/merge/delete in one transaction; each item succeeds or fails on its own."""
    jobs = batch_jobs(actor, tenant, kind, items, upsert_mode=upsert_mode, no_overwrite=no_overwrite)
    return batch_result(items, apply_jobs(ctx, jobs) if jobs else [])


def upsert_entities(
    ctx: AppContext, actor: Actor, tenant: str, entities: Sequence[Mapping[str, Any]]
) -> BatchResult:
    """Create entities, or add and overwrite the given attributes of existing ones (core @context terms)."""
    actor.require(WRITE)
    now, context = utcnow(), Context()
    items: list[dict[str, Any] | Exception] = []
    for raw in entities:
        try:
            items.append(ent.parse_entity(dict(raw), context, now))
        except NgsiError as exc:
            exc.entity_id = str(raw.get("id", ""))  # type: ignore[attr-defined]
            items.append(exc)
    return batch(ctx, actor, tenant, "upsert", items, upsert_mode="update")


def batch_jobs(
    actor: Actor,
    tenant: str,
    kind: str,
    items: Sequence[dict[str, Any] | Exception],
    *,
    upsert_mode: str = "replace",
    no_overwrite: bool = False,
) -> list[Job]:
    """One job per well-formed item of a batch operation (the actor must be allowed to write)."""
    actor.require(WRITE)
    jobs = []
    action = f"context.entity.batch_{kind}"
    for item in items:
        if isinstance(item, Exception):
            continue
        entity_id, attrs, types = item["id"], item.get("attrs", {}), item.get("type", ())
        apply: Operation
        if kind == "upsert" and upsert_mode == "replace":
            apply = partial(_replace, item)
        elif kind in ("upsert", "update"):
            apply = partial(_append, attrs, types, no_overwrite)
        else:
            apply = partial(_merge, attrs, types)
        op = kind if kind in ("create", "upsert", "delete") else "update"
        jobs.append(Job(actor, tenant, entity_id, op, action, stored=item, apply=apply))  # type: ignore[arg-type]
    return jobs


def _replace(new: dict[str, Any], stored: dict[str, Any], now: datetime) -> ent.UpdateResult:
    return ent.replace_entity(stored, new, now)


def _append(
    attrs: Any, types: Sequence[str], no_overwrite: bool, stored: dict[str, Any], now: datetime
) -> ent.UpdateResult:
    return ent.append_attrs(stored, attrs, now, no_overwrite=no_overwrite, types=types)


def _merge(attrs: Any, types: Sequence[str], stored: dict[str, Any], now: datetime) -> ent.UpdateResult:
    return ent.merge_entity(stored, attrs, now, types=types)


def batch_result(items: Sequence[dict[str, Any] | Exception], outcomes: Sequence[Outcome]) -> BatchResult:
    """Successes and errors of a batch, in item order."""
    result = BatchResult()
    done = iter(outcomes)
    for item in items:
        if isinstance(item, Exception):
            result.errors.append(_batch_error(getattr(item, "entity_id", ""), item))
            continue
        outcome = next(done)
        if isinstance(outcome, Exception):
            result.errors.append(_batch_error(item["id"], outcome))
        else:
            result.success.append(item["id"])
    return result


def _batch_error(entity_id: str, exc: Exception) -> dict[str, Any]:
    if isinstance(exc, NgsiError):
        problem = exc.problem()
    elif isinstance(exc, ProblemError):  # the platform's own, e.g. 403 for another department's entity
        problem = {"type": exc.problem_type(), "title": exc.title, "status": exc.status, "detail": str(exc)}
    else:
        problem = {"title": "Bad request", "detail": str(exc)}
    return {"entityId": entity_id, "error": problem}


# --- queries -----------------------------------------------------------------------------------


def _check_tenant_exists(session: Session, tenant: str) -> None:
    if tenant and session.scalar(select(Entity.pk).where(Entity.tenant == tenant).limit(1)) is None:
        raise NonexistentTenant(f"tenant {tenant!r} does not exist")


def _type_condition(types: Sequence[str]) -> ColumnElement[bool]:
    extra = select(EntityType.entity_pk).where(EntityType.type.in_(types))
    return or_(Entity.type.in_(types), Entity.pk.in_(extra))


# With PostGIS, the migration adds the geometry of `location` (generated, GiST-indexed); no model maps it.
_LOCATION_GEOMETRY: ColumnElement[Any] = literal_column("context_entity.location_geometry")
_POSTGIS: weakref.WeakKeyDictionary[Engine, bool] = weakref.WeakKeyDictionary()
_PREDICATES = {
    "within": func.ST_Within,
    "contains": func.ST_Contains,
    "intersects": func.ST_Intersects,
    "equals": func.ST_Equals,
    "overlaps": func.ST_Overlaps,
    "disjoint": func.ST_Disjoint,
}


def _geo_in_sql(session: Session, geo: GeoQuery) -> bool:
    """Whether the database answers the geo-query exactly: PostGIS on `location` (checked once per engine)."""
    if geo.geoproperty != ent.LOCATION or _dialect(session) != "postgresql":
        return False
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    found = _POSTGIS.get(engine)
    if found is None:
        column_exists = text(
            "SELECT EXISTS (SELECT FROM pg_attribute WHERE attrelid = to_regclass('context_entity') "
            "AND attname = 'location_geometry' AND NOT attisdropped)"
        )
        found = _POSTGIS[engine] = bool(session.scalar(column_exists))
    return found


def _postgis_condition(geo: GeoQuery) -> ColumnElement[bool]:
    """The geo-query on the PostGIS geometry of `location`, narrowed by its GiST index where it can be."""
    shape = _LOCATION_GEOMETRY
    reference = func.ST_GeomFromWKB(geo.reference_wkb(), 4326)
    if geo.georel != "near":
        matched: ColumnElement[bool] = _PREDICATES[geo.georel](shape, reference, type_=Boolean)
        return matched if geo.georel == "disjoint" else and_(shape.op("&&")(reference), matched)
    # Geodesic metres to the geometry densified as geo.py does, so edges run straight in lon/lat.
    span = func.ST_Length(func.ST_BoundingDiagonal(shape))
    dense = func.ST_Segmentize(shape, func.greatest(DENSIFY_DEGREES, span / DENSIFY_PARTS))
    distance = geo.max_distance if geo.max_distance is not None else geo.min_distance
    near: ColumnElement[bool] = func.ST_DWithin(
        func.geography(dense), func.geography(reference), distance, type_=Boolean
    )
    box = geo.bbox()  # None for minDistance, whose matches may lie anywhere
    if box is None:
        return not_(near)
    return and_(shape.op("&&")(func.ST_MakeEnvelope(*box, 4326)), near)


def _geo_condition(session: Session, geo: GeoQuery) -> ColumnElement[bool] | None:
    if _geo_in_sql(session, geo):
        return _postgis_condition(geo)
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
            narrowed = to_prefilter(query.q, Entity.__table__.c.pk, AttributeValue.__table__, _few(session))
            if narrowed is not None:
                stmt = stmt.where(narrowed)
            stmt = stmt.where(to_sql(query.q, Entity.__table__.c.data, _dialect(session)))
            if needs_post_filter(query.q):
                node = query.q
                post.append(lambda stored: matches(node, stored))
        if query.geo is not None:
            condition = _geo_condition(session, query.geo)
            if condition is not None:
                stmt = stmt.where(condition)
            geo = query.geo
            if not _geo_in_sql(session, geo):
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


def _few(session: Session) -> Callable[[Select[Any]], bool] | None:
    """On SQLite, whether a value index lookup selects few enough entities to drive a query."""
    # PostgreSQL's planner knows from its statistics; SQLite's would drive from any lookup, which is slow
    # when it matches most entities and only the first page is wanted.
    if _dialect(session) != "sqlite":
        return None
    return lambda lookup: (
        (session.scalar(select(func.count()).select_from(lookup.limit(DRIVING_LOOKUP_ROWS).subquery())) or 0)
        < DRIVING_LOOKUP_ROWS
    )


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
        if count:  # a purge that found nothing wrote nothing
            uow.record(
                "delete", "context_history:*", None, {"older_than": older_than.isoformat(), "rows": count}
            )
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
