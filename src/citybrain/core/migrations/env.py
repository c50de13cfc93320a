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


def _include_object(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    """When generating a revision for one branch, look only at that branch's tables."""
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
