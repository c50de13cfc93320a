"""Models/migrations consistency: what pending_changes reports and what it leaves to hand-written migrations."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text

from citybrain.core.context import AppContext
from citybrain.core.db import Base
from citybrain.core.migrate import pending_changes, unmanaged_tables
from tests.conftest import BACKEND


def removed_columns(ctx: AppContext) -> list[tuple[str, str]]:
    return [
        (d[2], d[3].name) for d in pending_changes(ctx) if isinstance(d, tuple) and d[0] == "remove_column"
    ]


def test_unmanaged_columns_are_left_to_their_migration(
    ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ctx.db.write_engine.begin() as conn:
        conn.execute(text("ALTER TABLE core_ledger_head ADD COLUMN shadow_note TEXT"))
    try:
        assert removed_columns(ctx) == [("core_ledger_head", "shadow_note")]
        head = Base.metadata.tables["core_ledger_head"]
        monkeypatch.setitem(head.info, "unmanaged_columns", ("shadow_note",))
        assert pending_changes(ctx) == []
        # Declared per table and column: another name leaves it flagged.
        monkeypatch.setitem(head.info, "unmanaged_columns", ("other_note",))
        assert removed_columns(ctx) == [("core_ledger_head", "shadow_note")]
    finally:
        with ctx.db.write_engine.begin() as conn:
            if "shadow_note" in {c["name"] for c in inspect(conn).get_columns("core_ledger_head")}:
                conn.execute(text("ALTER TABLE core_ledger_head DROP COLUMN shadow_note"))
    assert pending_changes(ctx) == []


def test_tables_of_virtual_tables_and_extensions_are_unmanaged(ctx: AppContext) -> None:
    with ctx.db.engine.connect() as conn:
        tables = unmanaged_tables(conn)
    if BACKEND == "sqlite":
        assert {"context_geo", "context_geo_node", "context_geo_parent", "context_geo_rowid"} <= tables
    else:  # PostGIS owns spatial_ref_sys, where it is installed
        assert not any(name.startswith(("core_", "context_", "identity_")) for name in tables)
        with ctx.db.engine.connect() as conn:
            postgis = conn.scalar(text("SELECT count(*) FROM pg_extension WHERE extname = 'postgis'"))
        assert ("spatial_ref_sys" in tables) == bool(postgis)
