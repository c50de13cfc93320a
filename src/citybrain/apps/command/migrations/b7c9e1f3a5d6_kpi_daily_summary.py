"""KPI daily summary: the counts of the KPI reports per local day, department and district

Revision ID: b7c9e1f3a5d6
Revises: a6b8d0f2c4e5
Create Date: 2026-11-30 09:00:00.000000

command_kpi_day holds, for each local day (Asia/Shanghai) an event was taken in, its main department and
its district, how many events there are and each count of kpi.py. Triggers on command_event keep it exact in
the same transaction as every insert, update and delete (whatever the code path: services, bulk updates,
raw SQL); the table is filled from the events already stored.

The conditions below are kpi._conditions() frozen as SQL (a test compares the two on random events).
"""

# ruff: noqa: S608 (every statement here is built from this file's constants, no input reaches it)

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b7c9e1f3a5d6"
down_revision: str | Sequence[str] | None = "a6b8d0f2c4e5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN_CITY = "('reported', 'filed', 'dispatched', 'handling', 'handled', 'verified', 'deferral')"
COMPLETED = "('completed', 'visited', 'rated')"
# Each count's condition over a row named {r}.
CONDITIONS: dict[str, str] = {
    "filed": "{r}.workflow = 'city' AND {r}.filed_at IS NOT NULL AND {r}.state NOT IN ('deferred', 'merged')",
    "inspector_filed": "{r}.workflow = 'city' AND {r}.filed_at IS NOT NULL"
    " AND {r}.state NOT IN ('deferred', 'merged') AND {r}.source = 'inspector'",
    "handled": "{r}.workflow = 'city' AND {r}.handled_at IS NOT NULL",
    "handled_on_time": "{r}.workflow = 'city' AND {r}.handled_at IS NOT NULL AND {r}.late = false",
    "overdue_unhandled": "{r}.workflow = 'city' AND {r}.handled_at IS NULL AND {r}.late = true"
    f" AND {{r}}.state IN {OPEN_CITY}",
    "closed": "{r}.workflow = 'city' AND {r}.state = 'closed'",
    "closed_on_time": "{r}.workflow = 'city' AND {r}.state = 'closed' AND {r}.late = false",
    "reworked": "{r}.workflow = 'city' AND {r}.handled_at IS NOT NULL AND {r}.reworks > 0",
    "cancelled": "{r}.workflow = 'city' AND {r}.state = 'cancelled'",
    "tickets": "{r}.workflow = 'hotline' AND {r}.state <> 'merged'",
    "completed": f"{{r}}.workflow = 'hotline' AND {{r}}.state IN {COMPLETED}",
    "completed_on_time": f"{{r}}.workflow = 'hotline' AND {{r}}.state IN {COMPLETED} AND {{r}}.late = false",
    "satisfied": "{r}.workflow = 'hotline' AND {r}.rating = 'satisfied'",
    "basically_satisfied": "{r}.workflow = 'hotline' AND {r}.rating = 'basically_satisfied'",
    "unsatisfied": "{r}.workflow = 'hotline' AND {r}.rating = 'unsatisfied'",
}
COUNTS = ("events", *CONDITIONS)
KEY = "day, department_id, district"
# The columns an UPDATE must touch to change a count (SQLite fires on these only).
WATCHED = "workflow, state, source, filed_at, handled_at, late, reworks, rating, department_id, district, created_at"
COLUMNS = ", ".join(COUNTS)
MERGE = ", ".join(f"{c} = command_kpi_day.{c} + excluded.{c}" for c in COUNTS)


def _day(r: str, dialect: str) -> str:
    """The local day (Asia/Shanghai, UTC+8 all year since 1992) a row was taken in."""
    if dialect == "postgresql":
        return f"CAST({r}.created_at AT TIME ZONE 'Asia/Shanghai' AS date)"
    # whole seconds: SQLite's date() rounds to milliseconds, and 23:59:59.9999 must stay on its day
    return f"date(substr({r}.created_at, 1, 19), '+8 hours')"


def _values(r: str, sign: str, dialect: str) -> str:
    """The key and signed counts of one row named r."""
    counts = [f"{sign}1"] + [
        f"{sign}(CASE WHEN {c.format(r=r)} THEN 1 ELSE 0 END)" for c in CONDITIONS.values()
    ]
    return f"{_day(r, dialect)}, coalesce({r}.department_id, 0), coalesce({r}.district, ''), " + ", ".join(
        counts
    )


def _postgresql() -> list[str]:
    """A statement-level trigger function over the transition tables, one set-based upsert a statement."""
    sums = ", ".join(f"sum({c})" for c in COUNTS)
    changed = " OR ".join(f"sum({c}) <> 0" for c in COUNTS)
    cols = f"{KEY}, {COLUMNS}"

    def upsert(parts: str) -> str:
        return (
            f"INSERT INTO command_kpi_day ({cols}) SELECT {KEY}, {sums} FROM ({parts}) d({cols})"
            f" GROUP BY {KEY} HAVING {changed} ORDER BY {KEY}"
            f" ON CONFLICT ({KEY}) DO UPDATE SET {MERGE};"
        )

    new = f"SELECT {_values('n', '', 'postgresql')} FROM kpi_new n"
    old = f"SELECT {_values('o', '-', 'postgresql')} FROM kpi_old o"
    function = f"""
CREATE FUNCTION command_kpi_day_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    {upsert(new)}
  ELSIF TG_OP = 'UPDATE' THEN
    {upsert(new + " UNION ALL " + old)}
  ELSE
    {upsert(old)}
  END IF;
  RETURN NULL;
END $$"""
    return [
        function,
        "CREATE TRIGGER command_kpi_day_insert AFTER INSERT ON command_event REFERENCING NEW TABLE AS kpi_new"
        " FOR EACH STATEMENT EXECUTE FUNCTION command_kpi_day_apply()",
        "CREATE TRIGGER command_kpi_day_update AFTER UPDATE ON command_event"
        " REFERENCING OLD TABLE AS kpi_old NEW TABLE AS kpi_new FOR EACH STATEMENT EXECUTE FUNCTION command_kpi_day_apply()",
        "CREATE TRIGGER command_kpi_day_delete AFTER DELETE ON command_event REFERENCING OLD TABLE AS kpi_old"
        " FOR EACH STATEMENT EXECUTE FUNCTION command_kpi_day_apply()",
    ]


def _sqlite() -> list[str]:
    """Row-level triggers: the old row's counts out of its bucket, the new row's into its bucket."""

    def upsert(r: str, sign: str) -> str:
        return (
            f"INSERT INTO command_kpi_day ({KEY}, {COLUMNS}) VALUES ({_values(r, sign, 'sqlite')})"
            f" ON CONFLICT ({KEY}) DO UPDATE SET {MERGE};"
        )

    return [
        f"CREATE TRIGGER command_kpi_day_insert AFTER INSERT ON command_event BEGIN {upsert('NEW', '')} END",
        f"CREATE TRIGGER command_kpi_day_update AFTER UPDATE OF {WATCHED} ON command_event"
        f" BEGIN {upsert('OLD', '-')} {upsert('NEW', '')} END",
        f"CREATE TRIGGER command_kpi_day_delete AFTER DELETE ON command_event BEGIN {upsert('OLD', '-')} END",
    ]


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "command_kpi_day",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=False),
        sa.Column("district", sa.String(length=6), nullable=False),
        *(sa.Column(c, sa.Integer(), nullable=False, server_default="0") for c in COUNTS),
        sa.PrimaryKeyConstraint("day", "department_id", "district", name=op.f("pk_command_kpi_day")),
    )
    dialect = op.get_bind().dialect.name
    sums = ", ".join(f"sum({c})" for c in COUNTS)
    # the events stored before: one set-based fill (named columns through a CTE, which both dialects read)
    op.execute(
        f"WITH d({KEY}, {COLUMNS}) AS (SELECT {_values('e', '', dialect)} FROM command_event e)"
        f" INSERT INTO command_kpi_day ({KEY}, {COLUMNS}) SELECT {KEY}, {sums} FROM d GROUP BY {KEY}"
    )
    for statement in _postgresql() if dialect == "postgresql" else _sqlite():
        op.execute(statement)


def downgrade() -> None:
    """Revert this revision."""
    if op.get_bind().dialect.name == "postgresql":
        for op_name in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS command_kpi_day_{op_name} ON command_event")
        op.execute("DROP FUNCTION IF EXISTS command_kpi_day_apply()")
    else:
        for op_name in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS command_kpi_day_{op_name}")
    op.drop_table("command_kpi_day")
