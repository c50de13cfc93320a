"""Alembic configuration built from the enabled apps: `citybrain db upgrade` and friends."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData, text
from sqlalchemy.exc import SAWarning

from citybrain.core.context import AppContext
from citybrain.core.db import Base

MIGRATIONS = Path(__file__).parent / "migrations"


def load_models(ctx: AppContext) -> None:
    """Import the kernel's and every enabled app's models so their tables are known."""
    import citybrain.core.ledger  # noqa: F401

    for spec in ctx.apps:
        spec.module("models")


def alembic_config(ctx: AppContext) -> Config:
    """An Alembic config whose version locations are the kernel's and the enabled apps' folders."""
    load_models(ctx)
    locations = [MIGRATIONS / "versions"]
    locations += [spec.path / "migrations" for spec in ctx.apps if (spec.path / "migrations").is_dir()]
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("path_separator", "newline")
    cfg.set_main_option("version_locations", "\n".join(str(p) for p in locations))
    cfg.set_main_option("sqlalchemy.url", ctx.settings.db_url.replace("%", "%%"))
    return cfg


def upgrade(ctx: AppContext, target: str = "heads") -> None:
    """Bring the database schema up to date."""
    cfg = alembic_config(ctx)
    with ctx.db.write_engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, target)
        conn.commit()


def pending_changes(ctx: AppContext) -> list[object]:
    """Differences between the migrated schema and the models of the enabled apps (empty when in sync)."""
    load_models(ctx)
    labels = {"core", *(spec.label for spec in ctx.apps)}
    metadata = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.tables.values():
        if table.name.split("_", 1)[0] in labels:
            table.to_metadata(metadata)
    indexes = {name for table in metadata.tables.values() for name in table.info.get("unmanaged_indexes", ())}
    columns = unmanaged_columns(metadata)
    with ctx.db.engine.connect() as conn, warnings.catch_warnings():
        for _, name in columns:  # their types (e.g. PostGIS geometry) are unknown to SQLAlchemy
            warnings.filterwarnings(
                "ignore", f"Did not recognize type .* of column '{re.escape(name)}'", SAWarning
            )
        mc = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs = compare_metadata(mc, metadata)
        unmanaged = {"alembic_version", *unmanaged_tables(conn)}
    return [
        d
        for d in diffs
        if not (isinstance(d, tuple) and d[0] == "remove_table" and d[1].name in unmanaged)
        and not (isinstance(d, tuple) and d[0] == "remove_index" and d[1].name in indexes)
        and not (isinstance(d, tuple) and d[0] == "remove_column" and (d[2], d[3].name) in columns)
    ]


def unmanaged_columns(metadata: MetaData) -> set[tuple[str, str]]:
    """(table, column) pairs a migration adds by hand where the database allows (e.g. PostGIS geometries)."""
    return {(t.name, name) for t in metadata.tables.values() for name in t.info.get("unmanaged_columns", ())}


def unmanaged_tables(conn: Connection) -> set[str]:
    """Tables no model describes: SQLite virtual tables and their shadows, tables of PostgreSQL extensions."""
    return virtual_tables(conn) | extension_tables(conn)


def extension_tables(conn: Connection) -> set[str]:
    """PostgreSQL tables an extension owns (e.g. PostGIS's spatial_ref_sys)."""
    if conn.dialect.name != "postgresql":
        return set()
    found = conn.execute(
        text(
            "SELECT c.relname FROM pg_depend d JOIN pg_class c ON c.oid = d.objid "
            "WHERE d.classid = 'pg_class'::regclass AND d.deptype = 'e' AND c.relkind IN ('r', 'p')"
        )
    )
    return {str(row[0]) for row in found}


def virtual_tables(conn: Connection) -> set[str]:
    """SQLite virtual tables (e.g. R*Tree spatial indexes) and their shadow tables, which no model describes."""
    if conn.dialect.name != "sqlite":
        return set()
    found = conn.execute(text("SELECT name FROM sqlite_master WHERE sql LIKE 'CREATE VIRTUAL TABLE%'"))
    names = {str(row[0]) for row in found}
    return names | {f"{n}_{suffix}" for n in names for suffix in ("node", "parent", "rowid")}


def revision(ctx: AppContext, label: str, message: str) -> None:
    """Autogenerate a revision for one branch (`core` or an app label) from its models."""
    if label == "core":
        folder = MIGRATIONS / "versions"
    else:
        spec = ctx.app(label)
        if spec is None:
            raise ValueError(f"no enabled app {label!r}")
        folder = spec.path / "migrations"
        folder.mkdir(exist_ok=True)
    cfg = alembic_config(ctx)
    script = ScriptDirectory.from_config(cfg)
    has_branch = any(label in (rev.branch_labels or ()) for rev in script.walk_revisions())
    depends = None if label == "core" else "core@head"
    with ctx.db.write_engine.connect() as conn:
        cfg.attributes["connection"] = conn
        cfg.attributes["branch"] = label
        cfg.attributes["unmanaged"] = unmanaged_tables(conn)
        if has_branch:
            command.revision(cfg, message, autogenerate=True, head=f"{label}@head", version_path=str(folder))
        else:
            command.revision(
                cfg,
                message,
                autogenerate=True,
                head="base",
                branch_label=label,
                version_path=str(folder),
                depends_on=depends,
            )
