"""Storage: SQLAlchemy 2 models, engines, sessions and the unit of work that audits every write."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, cast

import orjson
from sqlalchemy import (
    JSON,
    Connection,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    inspect,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

from citybrain.core.ids import uuid4
from citybrain.core.permissions import Actor

if TYPE_CHECKING:
    from citybrain.core.bus import Event
    from citybrain.core.ledger import Entry
    from citybrain.core.settings import Settings

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always returned timezone-aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Refuse naive datetimes; store UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return an aware UTC datetime."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """The declarative base of every table; tables are named `<label>_<thing>`."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class TimestampMixin:
    """`created_at` and `updated_at`, kept by the database layer."""

    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AuditedMixin:
    """Every insert, update and delete of this model is written to the audit ledger."""

    __audited__: ClassVar[bool] = True


class DepartmentOwnedMixin:
    """Rows owned by a department; queries are filtered by the actor's department scope."""

    department_id: Mapped[int] = mapped_column(Integer, index=True)


class OutboxRow(Base):
    """An event written in the same transaction as the change it announces, published after commit."""

    __tablename__ = "core_outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_type: Mapped[str] = mapped_column(String(200))
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(default=None, index=True)


class WriteOutsideService(RuntimeError):
    """An audited table was written without a unit of work (that is, not through a service)."""


def snapshot(obj: Any, *, before: bool) -> dict[str, Any]:
    """Column values of an ORM object, as committed (`before`) or as pending."""
    state = inspect(obj)
    values: dict[str, Any] = {}
    for attr in state.mapper.column_attrs:
        value = getattr(obj, attr.key)
        if before:
            history = state.attrs[attr.key].history
            if history.deleted:
                value = history.deleted[0]
        values[attr.key] = value
    return values


def digest(values: dict[str, Any] | None) -> str:
    """SHA-256 of the canonical JSON of a snapshot ('' for none)."""
    if values is None:
        return ""
    try:
        canonical = orjson.dumps(values, default=str, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # what orjson refuses, such as integers beyond 64 bits
        canonical = json.dumps(values, default=str, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canonical).hexdigest()


def _object_ref(obj: Any) -> str:
    """`<table>:<primary key>` for the ledger."""
    state = inspect(obj)
    pk = ",".join(str(v) for v in state.mapper.primary_key_from_instance(obj))
    return f"{state.mapper.local_table.name}:{pk}"


def _audited(obj: Any) -> bool:
    return bool(getattr(obj, "__audited__", False))


def _audit_before_flush(session: Session, _context: Any, _instances: Any) -> None:
    """Remember the committed state of audited rows about to change (before defaults such as updated_at)."""
    before: dict[int, dict[str, Any]] = session.info.setdefault("audit_before", {})
    for obj in (*session.dirty, *session.deleted):
        if _audited(obj) and id(obj) not in before:
            before[id(obj)] = snapshot(obj, before=True)


def _audit_after_flush(session: Session, _context: Any) -> None:
    """Append a ledger record for every audited row the flush wrote."""
    before: dict[int, dict[str, Any]] = session.info.pop("audit_before", {})
    changes: list[tuple[str, Any, dict[str, Any] | None, dict[str, Any] | None]] = []
    for obj in session.new:
        if _audited(obj):
            changes.append(("create", obj, None, snapshot(obj, before=False)))
    for obj in session.dirty:
        if _audited(obj) and session.is_modified(obj, include_collections=False):
            changes.append(("update", obj, before.get(id(obj)), snapshot(obj, before=False)))
    for obj in session.deleted:
        if _audited(obj):
            changes.append(("delete", obj, before.get(id(obj)), None))
    if not changes:
        return
    uow: UnitOfWork | None = session.info.get("uow")
    if uow is None:
        raise WriteOutsideService("audited rows must be written through a service's unit of work")
    for op, obj, old, new in changes:
        uow.record_digests(op, _object_ref(obj), digest(old), digest(new))


def _copy_converter(column_type: Any, dialect: Dialect) -> Callable[[Any], Any] | None:
    """How a value of a column type is written by COPY: JSON as text, others through the type's binding."""
    if isinstance(column_type.dialect_impl(dialect), JSON):
        return json_text
    processor: Callable[[Any], Any] | None = column_type._cached_bind_processor(dialect)
    return processor


def bulk_insert(conn: Connection, model: type[Base] | Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert many rows of the same columns in one go: COPY on PostgreSQL, executemany on SQLite.

    Column types still convert the values, but Python-side column defaults do not apply: give every column.
    """
    if not rows:
        return
    table = model if isinstance(model, Table) else cast(Table, model.__table__)
    dialect = conn.dialect
    if dialect.name != "postgresql" or dialect.driver != "psycopg":
        conn.execute(table.insert(), list(rows))
        return
    names = list(rows[0])
    convert = [_copy_converter(table.c[name].type, dialect) for name in names]
    quoted = ", ".join(dialect.identifier_preparer.quote(name) for name in names)
    raw = conn.connection.driver_connection
    assert raw is not None
    sql = f"COPY {table.name} ({quoted}) FROM STDIN"
    try:
        with raw.cursor() as cursor, cursor.copy(sql) as copy:
            for row in rows:
                values = [row[name] for name in names]
                copy.write_row(
                    [
                        fn(v) if fn is not None and v is not None else v
                        for fn, v in zip(convert, values, strict=True)
                    ]
                )
    except dialect.loaded_dbapi.Error as exc:
        raise DBAPIError.instance(sql, None, exc, dialect.loaded_dbapi.Error) from exc


def uses_copy(conn: Connection) -> bool:
    """Whether the connection is PostgreSQL through psycopg (COPY and JSON record sets are available)."""
    return conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg"


def json_recordset(table: Table, names: Sequence[str], param: str, dialect: Dialect) -> str:
    """`jsonb_to_recordset(...) AS x(column type, ...)`: PostgreSQL reads rows given as one JSON array."""
    columns = []
    for name in names:
        kind = table.c[name].type.compile(dialect=dialect).split(" COLLATE ")[0]
        columns.append(f"{dialect.identifier_preparer.quote(name)} {kind}")
    return f"jsonb_to_recordset(%({param})s::jsonb) AS x({', '.join(columns)})"


def json_insert_sql(table: Table, names: Sequence[str], param: str, dialect: Dialect) -> str:
    """An INSERT of the rows a JSON array parameter carries (see `json_recordset`)."""
    quoted = ", ".join(dialect.identifier_preparer.quote(name) for name in names)
    source = json_recordset(table, names, param, dialect)
    return f"INSERT INTO {table.name} ({quoted}) SELECT {quoted} FROM {source}"  # noqa: S608 (names from the model)


def json_rows(rows: Sequence[Mapping[str, Any]], names: Sequence[str]) -> str:
    """The JSON array parameter of `json_recordset` (datetimes as ISO 8601, documents nested)."""
    # The rows of one call share their members, as one builder makes them: when the first row has
    # exactly the named ones, every row goes as it is (no copy); otherwise each is cut down to them.
    exact = bool(rows) and rows[0].keys() == set(names)
    picked: list[Mapping[str, Any]] = []
    for row in rows:
        item = row if exact else {name: row[name] for name in names}
        for name, value in row.items():
            if type(value) is float and not math.isfinite(value) and name in item:
                item = {**item, name: _non_finite(value)}
        picked.append(item)
    return json_text(picked)


def _non_finite(value: float) -> str:
    """A non-finite float as the string PostgreSQL reads it from (JSON has no such numbers)."""
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def execute_raw(conn: Connection, sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """Run one statement on the driver connection (PostgreSQL), mapping driver errors as SQLAlchemy does."""
    dialect = conn.dialect
    raw = conn.connection.driver_connection
    assert raw is not None
    try:
        with raw.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description else []
    except dialect.loaded_dbapi.Error as exc:
        raise DBAPIError.instance(sql, None, exc, dialect.loaded_dbapi.Error) from exc


ConnectHook = Callable[[Any, str], None]


def _run_hook(hook: ConnectHook, dialect: str) -> Callable[[Any, Any], None]:
    """Adapt an app's hook(dbapi_connection, dialect_name) to SQLAlchemy's connect event."""

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        hook(dbapi_connection, dialect)

    return on_connect


def json_text(value: Any) -> str:
    """JSON text (of a document column, say): orjson, or the standard library for what orjson refuses (huge ints)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, ensure_ascii=False, default=_iso)


def json_value(text: str | bytes) -> Any:
    """A document column's value: orjson, or the standard library for what orjson refuses (huge ints)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


class Database:
    """Engines and sessions for one running app; SQLite writes take the lock up front."""

    def __init__(self, settings: Settings, connect_hooks: Sequence[ConnectHook] = ()) -> None:
        """Create the engines (and the data directory for SQLite); apps' hooks run on each new connection."""
        self.url = settings.db_url
        self.is_sqlite = self.url.startswith("sqlite")
        if self.is_sqlite:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            self.engine = self._sqlite_engine(settings, "BEGIN")
            self.write_engine = self._sqlite_engine(settings, "BEGIN IMMEDIATE")
        else:
            self.engine = create_engine(
                self.url,
                echo=settings.sql_echo,
                pool_size=settings.db_pool_size,
                max_overflow=settings.db_max_overflow,
                pool_recycle=1800,
                json_serializer=json_text,
                json_deserializer=json_value,
            )
            self.write_engine = self.engine
        for engine in {self.engine, self.write_engine}:
            for hook in connect_hooks:
                event.listen(engine, "connect", _run_hook(hook, engine.dialect.name))
        self.read_sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.write_sessions = sessionmaker(self.write_engine, expire_on_commit=False)
        for maker in (self.read_sessions, self.write_sessions):
            event.listen(maker, "before_flush", _audit_before_flush)
            event.listen(maker, "after_flush", _audit_after_flush)

    @staticmethod
    def _sqlite_engine(settings: Settings, begin: str) -> Engine:
        engine = create_engine(
            settings.db_url,
            echo=settings.sql_echo,
            connect_args={"check_same_thread": False, "timeout": 30},
            json_serializer=json_text,
            json_deserializer=json_value,
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            # Large groupings (history aggregated over many entities) sort in memory, not in temp files.
            cursor.execute("PRAGMA temp_store=MEMORY")
            cursor.execute("PRAGMA cache_size=-32768")  # KiB: 32 MiB of page cache per connection
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Any) -> None:
            connection.exec_driver_sql(begin)

        return engine

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading; an audited write in it fails."""
        with self.read_sessions() as session:
            yield session

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
        if self.write_engine is not self.engine:
            self.write_engine.dispose()


class UnitOfWork:
    """One service operation: one transaction, its ledger records and its outbox events, all or nothing."""

    def __init__(
        self, db: Database, actor: Actor, action: str, on_commit: Callable[[], None] | None = None
    ) -> None:
        """Prepare a unit of work for `actor` doing `action` (e.g. `identity.user.create`)."""
        self.db = db
        self.actor = actor
        self.action = action
        self._on_commit = on_commit
        self._emitted = False
        self._session: Session | None = None
        self._entries: list[Entry] = []
        self._outbox: list[dict[str, Any]] = []

    @property
    def session(self) -> Session:
        """The unit's session."""
        if self._session is None:
            raise RuntimeError("unit of work used outside its `with` block")
        return self._session

    def __enter__(self) -> UnitOfWork:
        """Begin the transaction."""
        self._session = self.db.write_sessions()
        self._session.info["uow"] = self
        self._session.begin()
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        """Commit if the block succeeded, otherwise roll everything back."""
        from citybrain.core import ledger

        session = self.session
        try:
            if exc_type is None:
                session.flush()
                # The chain is locked only from here to the commit, so concurrent units wait the least.
                # The outbox rows go with the records (on PostgreSQL in the same statement).
                outbox = [(cast(Table, OutboxRow.__table__), self._outbox)] if self._outbox else []
                if self._entries:
                    ledger.append_many(session.connection(), self._entries, outbox)
                elif outbox:
                    bulk_insert(session.connection(), OutboxRow, self._outbox)
                session.commit()
            else:
                session.rollback()
        finally:
            session.close()
            self._session = None
            self._entries = []
            self._outbox = []
        if exc_type is None and self._emitted and self._on_commit is not None:
            self._on_commit()

    def emit(self, event: Event) -> None:
        """Queue an event; it is published only if the transaction commits."""
        self.emit_many([event])

    def emit_many(self, events: Sequence[Event]) -> None:
        """Queue events in order with one statement; they are published only if the transaction commits."""
        if not events:
            return
        rows, now = [], utcnow()
        for item in events:
            cls = type(item)
            event_type = f"{cls.__module__}:{cls.__qualname__}"
            rows.append({"event_type": event_type, "payload": item.model_dump_json(), "created_at": now})
        self._outbox.extend(rows)
        self._emitted = True

    def emit_documents(self, event_type: type[Event], documents: Sequence[Mapping[str, Any]]) -> None:
        """Queue events of one class given as JSON-ready fields the caller built valid (ids and times added)."""
        if not documents:
            return
        now = utcnow()
        name, occurred = f"{event_type.__module__}:{event_type.__qualname__}", now.isoformat()
        rows = [
            {
                "event_type": name,
                "payload": json_text({"event_id": str(uuid4()), "occurred_at": occurred, **doc}),
                "created_at": now,
            }
            for doc in documents
        ]
        self._outbox.extend(rows)
        self._emitted = True

    def record(
        self,
        op: str,
        obj: str,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
        *,
        actor: Actor | None = None,
        action: str | None = None,
    ) -> None:
        """Queue a ledger record for a write the ORM does not see (or an action such as a login)."""
        self.record_digests(op, obj, digest(before), digest(after), actor=actor, action=action)

    def record_digests(
        self,
        op: str,
        obj: str,
        before: str,
        after: str,
        *,
        actor: Actor | None = None,
        action: str | None = None,
    ) -> None:
        """Queue a ledger record from digests already computed; it is chained at commit."""
        from citybrain.core.ledger import Entry

        who = (actor or self.actor).ref
        self._entries.append(Entry(who, action or self.action, op, obj, before, after))
