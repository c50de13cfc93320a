"""Alembic environment collecting the kernel's and every enabled app's tables."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from citybrain.core.db import Base

config = context.config
url = config.get_main_option("sqlalchemy.url") or ""


def run() -> None:
    """Run migrations online against the configured database."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    engine = create_engine(url)
    with engine.connect() as conn:
        _migrate(conn)
    engine.dispose()


def _unmanaged() -> set[str]:
    """Tables the models do not describe: SQLite virtual tables (R*Tree indexes), extensions' tables."""
    return set(config.attributes.get("unmanaged", ()))


def _unmanaged_indexes() -> set[str]:
    """Indexes a migration creates by hand (expression or spatial indexes), declared in the table's info."""
    return {n for t in Base.metadata.tables.values() for n in t.info.get("unmanaged_indexes", ())}


def _unmanaged_columns() -> set[tuple[str, str]]:
    """Columns a migration adds by hand where the database allows, declared in the table's info."""
    return {(t.name, n) for t in Base.metadata.tables.values() for n in t.info.get("unmanaged_columns", ())}


def _include_object(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    """When generating a revision for one branch, look only at that branch's tables."""
    if type_ == "table" and reflected and compare_to is None and name in _unmanaged():
        return False
    if type_ == "index" and reflected and compare_to is None and name in _unmanaged_indexes():
        return False
    table = getattr(getattr(obj, "table", None), "name", None)
    if type_ == "column" and reflected and compare_to is None and (table, name) in _unmanaged_columns():
        return False
    label = config.attributes.get("branch")
    if label is None or type_ != "table" or name is None:
        return True
    return name.startswith(f"{label}_")


def _migrate(conn: object) -> None:
    context.configure(
        connection=conn,  # type: ignore[arg-type]
        target_metadata=Base.metadata,
        include_object=_include_object,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
