"""Entity writes as set-based transactions, and group commit: concurrent writers share one transaction."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from itertools import groupby
from operator import itemgetter
from typing import Any, Literal, cast

from sqlalchemy import Connection, Table, delete, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from citybrain.apps.context import entities as ent
from citybrain.apps.context.errors import AlreadyExists, ResourceNotFound
from citybrain.apps.context.events import AttributesChanged, EntityCreated, EntityDeleted
from citybrain.apps.context.geo import geometry_bbox
from citybrain.apps.context.models import AttributeHistory, AttributeValue, Entity, EntityType
from citybrain.apps.context.permissions import require_write
from citybrain.apps.context.values import history_number, refresh_values, value_rows
from citybrain.sdk import (
    Actor,
    AppContext,
    Event,
    ProblemError,
    UnitOfWork,
    bulk_insert,
    execute_raw,
    json_insert_sql,
    json_recordset,
    json_rows,
    uses_copy,
    utcnow,
)

log = logging.getLogger(__name__)
WRITE = "context.entity.write"
Operation = Callable[[dict[str, Any], datetime], ent.UpdateResult]
Outcome = ent.UpdateResult | Exception | None
Box = tuple[float, float, float, float]


@dataclass
class Job:
    """One entity write: create a stored entity, apply an operation to one, upsert, or delete it."""

    actor: Actor
    tenant: str
    entity_id: str
    op: Literal["create", "update", "upsert", "delete"]
    action: str
    stored: dict[str, Any] | None = None
    apply: Operation | None = None


@dataclass
class _State:
    """An entity as the database holds it (pk, original) and as the jobs so far left it (current)."""

    pk: int | None
    original: dict[str, Any] | None
    current: dict[str, Any] | None
    department: int | None = None
    touched: bool = False


@dataclass
class _Plan:
    """What one transaction writes besides the entity rows: history rows and events."""

    history: list[dict[str, Any]] = field(default_factory=list)
    # Events as their JSON-ready fields (the stored forms are valid already: no model is built for them).
    events: list[tuple[type[Event], dict[str, Any]]] = field(default_factory=list)


def apply_jobs(ctx: AppContext, jobs: Sequence[Job]) -> list[Outcome]:
    """Run jobs in order in one transaction; each gets its result or its own error (others go on)."""
    try:
        return _transaction(ctx, jobs)
    except DBAPIError as exc:
        # A concurrent writer took an id or a lock first: run each job on its own, so only its owner fails.
        if len(jobs) > 1:
            log.info(
                "context write of %d jobs failed (%s); retrying one by one", len(jobs), type(exc).__name__
            )
            return [outcome for job in jobs for outcome in apply_jobs(ctx, [job])]
        try:
            return _transaction(ctx, jobs)
        except DBAPIError as again:
            return [again]


def _transaction(ctx: AppContext, jobs: Sequence[Job]) -> list[Outcome]:
    now = utcnow()
    outcomes: list[Outcome] = []
    with ctx.uow(jobs[0].actor, jobs[0].action) as uow:
        states = _lock(uow.session, jobs)
        plan = _Plan()
        for job in jobs:
            try:
                job.actor.require(WRITE)
                outcomes.append(_step(uow, states[(job.tenant, job.entity_id)], job, now, plan))
            except ProblemError as exc:  # one bad job never blocks the others
                outcomes.append(exc)
        _write(uow, states, plan)
    return outcomes


def _lock(session: Session, jobs: Sequence[Job]) -> dict[tuple[str, str], _State]:
    """Load (and on PostgreSQL lock, in pk order) every entity the jobs name."""
    wanted: dict[str, set[str]] = {}
    for job in jobs:
        wanted.setdefault(job.tenant, set()).add(job.entity_id)
    states: dict[tuple[str, str], _State] = {}
    for tenant, ids in wanted.items():
        stmt = (
            select(Entity.pk, Entity.entity_id, Entity.data, Entity.department_id)
            .where(Entity.tenant == tenant, Entity.entity_id.in_(sorted(ids)))
            .order_by(Entity.pk)
            .with_for_update()
        )
        for pk, entity_id, data, department in session.execute(stmt):
            states[(tenant, entity_id)] = _State(pk, data, data, department)
        for entity_id in ids:
            states.setdefault((tenant, entity_id), _State(None, None, None))
    return states


def _step(uow: UnitOfWork, state: _State, job: Job, now: datetime, plan: _Plan) -> Outcome:
    """Apply one job to the entity's current state, queueing its history, ledger record and events."""
    if job.op == "create" or (job.op == "upsert" and state.current is None):
        if state.current is not None:
            raise AlreadyExists(f"entity {job.entity_id} already exists")
        assert job.stored is not None
        # A new entity belongs to its creator's department (and the creator must hold the write there).
        require_write(job.actor, job.actor.department_id)
        state.department = job.actor.department_id
        stored = job.stored
        created = [
            ent.AttrChange(name, i.get("datasetId"), None, i)
            for name, instances in stored.get("attrs", {}).items()
            for i in instances
        ]
        state.current, state.touched = stored, True
        _history(plan, job, created, now)
        uow.record("create", _ref(job), None, stored, actor=job.actor, action=job.action)
        plan.events.append(
            (EntityCreated, {"tenant": job.tenant, "entity_id": job.entity_id, "types": list(stored["type"])})
        )
        if created:
            plan.events.append(_changed(job, stored, created))
        return None
    if state.current is None:
        raise ResourceNotFound(f"entity {job.entity_id} does not exist")
    require_write(job.actor, state.department)
    before = state.current
    if job.op == "delete":
        state.current, state.touched = None, True
        uow.record("delete", _ref(job), before, None, actor=job.actor, action=job.action)
        plan.events.append(
            (
                EntityDeleted,
                {
                    "tenant": job.tenant,
                    "entity_id": job.entity_id,
                    "types": list(before["type"]),
                    "entity": before,
                },
            )
        )
        return None
    assert job.apply is not None
    result = job.apply(dict(before), now)
    if not result.changes and result.entity.get("type") == before.get("type"):
        return result
    state.current, state.touched = result.entity, True
    _history(plan, job, result.changes, now)
    uow.record("update", _ref(job), before, result.entity, actor=job.actor, action=job.action)
    if result.changes:
        plan.events.append(_changed(job, result.entity, result.changes))
    return result


def _ref(job: Job) -> str:
    return f"context_entity:{job.tenant}/{job.entity_id}"


def _changed(
    job: Job, stored: Mapping[str, Any], changes: Iterable[ent.AttrChange]
) -> tuple[type[Event], dict[str, Any]]:
    """An AttributesChanged event's fields (see events.AttributeChange for each change's)."""
    return AttributesChanged, {
        "tenant": job.tenant,
        "entity_id": job.entity_id,
        "types": list(stored["type"]),
        "changes": [
            {"attr": c.name, "dataset_id": c.dataset_id, "old": c.old, "new": c.new} for c in changes
        ],
    }


def _history(plan: _Plan, job: Job, changes: Iterable[ent.AttrChange], now: datetime) -> None:
    """One history row per changed attribute instance."""
    for change in changes:
        instance = change.new
        observed = (instance or change.old or {}).get("observedAt")
        value = instance.get("value") if instance else None
        plan.history.append(
            {
                "tenant": job.tenant,
                "entity_id": job.entity_id,
                "attr": change.name,
                "dataset_id": change.dataset_id or "",
                "observed_at": datetime.fromisoformat(observed) if isinstance(observed, str) else None,
                "modified_at": now,
                "number": history_number(value),
                "instance": instance,
            }
        )


def bbox(stored: Mapping[str, Any]) -> Box | None:
    """The bounding box of the entity's `location`, if it has one."""
    geometry = ent.geometry_of(stored)
    return geometry_bbox(geometry) if isinstance(geometry, dict) else None


def columns(stored: Mapping[str, Any]) -> dict[str, Any]:
    """Values of the indexed columns derived from a stored entity."""
    box = bbox(stored)
    return {
        "type": stored["type"][0],
        "created_at": datetime.fromisoformat(stored["createdAt"]),
        "modified_at": datetime.fromisoformat(stored["modifiedAt"]),
        "data": stored,
        "min_lon": box[0] if box else None,
        "min_lat": box[1] if box else None,
        "max_lon": box[2] if box else None,
        "max_lat": box[3] if box else None,
    }


def _write(uow: UnitOfWork, states: Mapping[tuple[str, str], _State], plan: _Plan) -> None:
    """Write the net effect of the jobs with a few set-based statements."""
    session = uow.session
    sqlite = session.get_bind().dialect.name == "sqlite"
    inserts: list[tuple[str, dict[str, Any], int | None]] = []
    updates: list[tuple[int, dict[str, Any], dict[str, Any]]] = []
    deleted: list[int] = []
    for (tenant, _), state in states.items():
        if not state.touched:
            continue
        if state.pk is None and state.current is not None:
            inserts.append((tenant, state.current, state.department))
        elif state.pk is not None and state.current is None:
            deleted.append(state.pk)
        elif state.pk is not None and state.current is not None and state.original is not None:
            updates.append((state.pk, state.original, state.current))
    if deleted:
        _drop_side_rows(session, deleted, sqlite)
        session.execute(delete(Entity).where(Entity.pk.in_(deleted)))
    _set_types(session, [(pk, new) for pk, old, new in updates if new["type"] != old.get("type")])
    revalued = [(pk, old, new) for pk, old, new in updates if new.get("attrs") != old.get("attrs")]
    connection = session.connection()
    if uses_copy(connection):  # PostgreSQL: everything after the new rows in one statement
        created = _insert_returning(connection, inserts)
        _set_types(session, created, fresh=True)
        write_at_once(
            connection,
            [{"pk": pk, **columns(new)} for pk, _, new in updates],
            _ENTITY_SET,
            index_rows([(pk, new) for pk, _, new in revalued], created),
            plan.history,
        )
    else:
        if updates:
            session.execute(update(Entity), [{"pk": pk, **columns(new)} for pk, _, new in updates])
            if sqlite:
                moved = [
                    (pk, new) for pk, old, new in updates if ent.geometry_of(new) != ent.geometry_of(old)
                ]
                _set_boxes(session, moved)
            refresh_values(session, [(pk, new) for pk, _, new in revalued])
        if inserts:
            bulk_insert(connection, Entity, _entity_rows(inserts))
            created = _with_pks(session, [(tenant, stored) for tenant, stored, _ in inserts])
            _set_types(session, created, fresh=True)
            if sqlite:
                _set_boxes(session, created, fresh=True)
            refresh_values(session, created, fresh=True)
        bulk_insert(connection, AttributeHistory, plan.history)
    for event_type, run in groupby(plan.events, key=itemgetter(0)):  # in order, a run of one class at a time
        uow.emit_documents(event_type, [fields for _, fields in run])


def _entity_rows(inserts: Sequence[tuple[str, dict[str, Any], int | None]]) -> list[dict[str, Any]]:
    return [
        {"tenant": tenant, "entity_id": stored["id"], "department_id": department, **columns(stored)}
        for tenant, stored, department in inserts
    ]


_ENTITY_SET = ("type", "created_at", "modified_at", "data", "min_lon", "min_lat", "max_lon", "max_lat")
_ENTITY_NEW = ("tenant", "entity_id", "department_id", *_ENTITY_SET)
_VALUE_COLUMNS = ("entity_pk", "ordinal", "attr", "dataset_id", "number", "text")


def _insert_returning(
    conn: Connection, inserts: Sequence[tuple[str, dict[str, Any], int | None]]
) -> list[tuple[int, dict[str, Any]]]:
    """PostgreSQL: insert new entity rows and learn their keys in the same statement."""
    if not inserts:
        return []
    sql = json_insert_sql(cast(Table, Entity.__table__), _ENTITY_NEW, "rows", conn.dialect)
    found = execute_raw(
        conn,
        f"{sql} RETURNING pk, tenant, entity_id",
        {"rows": json_rows(_entity_rows(inserts), _ENTITY_NEW)},
    )
    keys = {(tenant, entity_id): pk for pk, tenant, entity_id in found}
    return [(keys[(tenant, stored["id"])], stored) for tenant, stored, _ in inserts]


def index_rows(
    revalued: Sequence[tuple[int, Mapping[str, Any]]], created: Sequence[tuple[int, Mapping[str, Any]]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The value-index rows of changed and new (pk, stored) entities, and where each changed one's rows end."""
    rows = [row for pk, stored in created for row in value_rows(pk, stored)]
    cuts: list[dict[str, Any]] = []
    for pk, stored in revalued:
        # Written over ordinals 0..n-1; any old row from n on goes (a probe that usually finds none is
        # cheaper than working out the old rows).
        after = value_rows(pk, stored)
        rows.extend(after)
        cuts.append({"entity_pk": pk, "ordinal": len(after)})
    return rows, cuts


def write_at_once(
    conn: Connection,
    entities: Sequence[Mapping[str, Any]],
    entity_columns: Sequence[str],
    index: tuple[Sequence[Mapping[str, Any]], Sequence[Mapping[str, Any]]],
    history: Sequence[Mapping[str, Any]],
) -> None:
    """PostgreSQL: changed entity rows (pk and `entity_columns`), index rows and history in one statement."""
    dialect = conn.dialect
    values = cast(Table, AttributeValue.__table__)
    parts: list[str] = []
    params: dict[str, Any] = {}
    if entities:
        names = ("pk", *entity_columns)
        assignments = ", ".join(f"{c} = x.{c}" for c in entity_columns)
        parts.append(
            f"e AS (UPDATE context_entity t SET {assignments} "  # noqa: S608 (names from the model)
            f"FROM {json_recordset(cast(Table, Entity.__table__), names, 'entities', dialect)} WHERE t.pk = x.pk)"
        )
        params["entities"] = json_rows(entities, names)
    rows, cuts = index
    if rows:
        kept = ", ".join(f"context_value.{c}" for c in _VALUE_COLUMNS[2:])
        fresh = ", ".join(f"excluded.{c}" for c in _VALUE_COLUMNS[2:])
        # A row that holds the same already is left alone (no new row version, no index entries).
        parts.append(
            f"v AS ({json_insert_sql(values, _VALUE_COLUMNS, 'values', dialect)} "
            f"ON CONFLICT (entity_pk, ordinal) DO UPDATE SET ({', '.join(_VALUE_COLUMNS[2:])}) = ({fresh}) "
            f"WHERE ({kept}) IS DISTINCT FROM ({fresh}))"
        )
        params["values"] = json_rows(rows, _VALUE_COLUMNS)
    if cuts:
        # Disjoint from the rows written over above (those are below the cut), so one statement may do both.
        # Found per entity through the key (a LATERAL kept apart by OFFSET 0), then deleted by row address:
        # the plan cannot turn into a scan of the whole table, whatever the statistics say.
        parts.append(
            "c AS (DELETE FROM context_value WHERE ctid = ANY(ARRAY(SELECT o.ctid FROM "  # noqa: S608
            f"{json_recordset(values, ('entity_pk', 'ordinal'), 'cuts', dialect)} CROSS JOIN LATERAL "
            "(SELECT t.ctid FROM context_value t WHERE t.entity_pk = x.entity_pk AND t.ordinal >= x.ordinal OFFSET 0) o)))"
        )
        params["cuts"] = json_rows(cuts, ("entity_pk", "ordinal"))
    if history:
        names_h = list(history[0])
        parts.append(
            f"h AS ({json_insert_sql(cast(Table, AttributeHistory.__table__), names_h, 'history', dialect)})"
        )
        params["history"] = json_rows(history, names_h)
    if parts:
        execute_raw(conn, f"WITH {', '.join(parts)} SELECT 1", params)


def _with_pks(
    session: Session, inserted: Sequence[tuple[str, dict[str, Any]]]
) -> list[tuple[int, dict[str, Any]]]:
    """The new rows' primary keys, read back by id (COPY returns nothing)."""
    found: dict[tuple[str, str], int] = {}
    by_tenant: dict[str, list[str]] = {}
    for tenant, stored in inserted:
        by_tenant.setdefault(tenant, []).append(stored["id"])
    for tenant, ids in by_tenant.items():
        stmt = select(Entity.pk, Entity.entity_id).where(Entity.tenant == tenant, Entity.entity_id.in_(ids))
        found.update({(tenant, entity_id): pk for pk, entity_id in session.execute(stmt)})
    return [(found[(tenant, stored["id"])], stored) for tenant, stored in inserted]


def _drop_side_rows(session: Session, pks: Sequence[int], sqlite: bool) -> None:
    session.execute(delete(EntityType).where(EntityType.entity_pk.in_(pks)))
    if sqlite:
        _delete_boxes(session, pks)


def _delete_boxes(session: Session, pks: Sequence[int]) -> None:
    ids = "[" + ",".join(str(int(pk)) for pk in pks) + "]"
    session.execute(
        text("DELETE FROM context_geo WHERE id IN (SELECT value FROM json_each(:pks))"), {"pks": ids}
    )


def _set_types(
    session: Session, items: Sequence[tuple[int, Mapping[str, Any]]], *, fresh: bool = False
) -> None:
    """Rows for each further type of multi-typed entities (the first type is on the entity row)."""
    if not items:
        return
    if not fresh:
        session.execute(delete(EntityType).where(EntityType.entity_pk.in_([pk for pk, _ in items])))
    rows = [{"entity_pk": pk, "type": t} for pk, stored in items for t in stored["type"][1:]]
    bulk_insert(session.connection(), EntityType, rows)


def _set_boxes(
    session: Session, items: Sequence[tuple[int, Mapping[str, Any]]], *, fresh: bool = False
) -> None:
    """Keep SQLite's R*Tree of entity bounding boxes in step (PostgreSQL indexes the row itself)."""
    if not items:
        return
    if not fresh:
        _delete_boxes(session, [pk for pk, _ in items])
    rows = []
    for pk, stored in items:
        box = bbox(stored)
        if box is not None:
            rows.append({"pk": pk, "a": box[0], "b": box[1], "c": box[2], "d": box[3]})
    if rows:
        session.execute(
            text(
                "INSERT INTO context_geo (id, min_lon, max_lon, min_lat, max_lat) VALUES (:pk, :a, :c, :b, :d)"
            ),
            rows,
        )


class GroupCommit:
    """Queues entity writes from concurrent requests and commits whatever has gathered as one transaction."""

    def __init__(self, ctx: AppContext, max_jobs: int = 2000) -> None:
        """Prepare the writer; `start()` runs it on the current event loop."""
        self.ctx, self.max_jobs = ctx, max_jobs
        self._queue: asyncio.Queue[tuple[Sequence[Job], asyncio.Future[list[Outcome]]]] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="citybrain-context-writer")
        self._task: asyncio.Task[None] | None = None
        self._busy = False

    async def start(self) -> None:
        """Start committing on the running loop."""
        self._task = asyncio.create_task(self._run(), name="citybrain-context-writer")

    async def stop(self) -> None:
        """Commit what is queued, then stop."""
        while self._task is not None and not self._task.done() and (self._busy or not self._queue.empty()):
            await asyncio.sleep(0.01)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._executor.shutdown(wait=True)

    async def submit(self, jobs: Sequence[Job]) -> list[Outcome]:
        """Queue jobs (kept together in one transaction) and wait for their outcomes."""
        if self._task is None:
            return await asyncio.get_running_loop().run_in_executor(
                self._executor, apply_jobs, self.ctx, jobs
            )
        future: asyncio.Future[list[Outcome]] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((jobs, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            groups = [await self._queue.get()]
            size = len(groups[0][0])
            while size < self.max_jobs and not self._queue.empty():
                groups.append(self._queue.get_nowait())
                size += len(groups[-1][0])
            jobs = [job for group, _ in groups for job in group]
            self._busy = True
            try:
                outcomes = await loop.run_in_executor(self._executor, apply_jobs, self.ctx, jobs)
            except Exception as exc:  # the database is gone: every waiting request learns it
                log.exception("context write of %d jobs failed", len(jobs))
                for _, future in groups:
                    if not future.done():
                        future.set_exception(exc)
                continue
            finally:
                self._busy = False
            start = 0
            for group, future in groups:
                if not future.done():
                    future.set_result(outcomes[start : start + len(group)])
                start += len(group)
