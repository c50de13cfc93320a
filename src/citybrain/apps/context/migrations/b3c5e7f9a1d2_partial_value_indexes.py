"""partial value indexes

Revision ID: b3c5e7f9a1d2
Revises: 9a2b7c4d1e83
Create Date: 2026-11-25 16:00:00.000000

A value-index row holds a number or a string, never both, and every q lookup compares one of them
(so it implies the column is not null). Each index now covers only the rows holding its column:
a number's row no longer adds an entry to the text index, and each index is about half the size.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b3c5e7f9a1d2"
down_revision: str | Sequence[str] | None = "9a2b7c4d1e83"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEXES = (("ix_context_value_number", "number"), ("ix_context_value_text", "text"))


def upgrade() -> None:
    """Rebuild the number and text indexes over the rows that hold their column."""
    for name, column in _INDEXES:
        op.drop_index(name, table_name="context_value")
        present = sa.text(f"{column} IS NOT NULL")
        op.create_index(
            name,
            "context_value",
            ["attr", column, "entity_pk"],
            postgresql_where=present,
            sqlite_where=present,
        )


def downgrade() -> None:
    """Index every row again."""
    for name, column in _INDEXES:
        op.drop_index(name, table_name="context_value")
        op.create_index(name, "context_value", ["attr", column, "entity_pk"])
