"""attribute value index

Revision ID: 5b7e2c1d9a40
Revises: 84c658151fb2
Create Date: 2026-11-25 00:30:00.000000

``context_value`` holds the numbers and strings of every entity's top-level attributes, which the q
prefilter reads through its (attr, number) and (attr, text) indexes; existing entities are indexed here,
a page at a time, by the same row builder the write paths use.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "5b7e2c1d9a40"
down_revision: str | Sequence[str] | None = "84c658151fb2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PAGE = 2000


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "context_value",
        sa.Column("entity_pk", sa.Integer(), nullable=False),
        sa.Column("ordinal", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("attr", sa.String(length=512), nullable=False),
        sa.Column("dataset_id", sa.String(length=512), nullable=False),
        sa.Column("number", sa.Float(), nullable=True),
        sa.Column("text", sa.Text().with_variant(sa.Text(collation="C"), "postgresql"), nullable=True),
        sa.ForeignKeyConstraint(
            ["entity_pk"],
            ["context_entity.pk"],
            name=op.f("fk_context_value_entity_pk_context_entity"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("entity_pk", "ordinal", name=op.f("pk_context_value")),
    )
    _backfill(op.get_bind())
    with op.batch_alter_table("context_value", schema=None) as batch_op:
        batch_op.create_index("ix_context_value_number", ["attr", "number", "entity_pk"], unique=False)
        batch_op.create_index("ix_context_value_text", ["attr", "text", "entity_pk"], unique=False)


def _backfill(conn: sa.Connection) -> None:
    """Index the entities already stored, in pages of PAGE."""
    from citybrain.apps.context.values import value_rows

    document = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    entities = sa.table("context_entity", sa.column("pk", sa.Integer()), sa.column("data", document))
    values = sa.table(
        "context_value",
        *(sa.column(name) for name in ("entity_pk", "ordinal", "attr", "dataset_id", "number", "text")),
    )
    last = 0
    while True:
        page = conn.execute(
            sa.select(entities.c.pk, entities.c.data)
            .where(entities.c.pk > last)
            .order_by(entities.c.pk)
            .limit(PAGE)
        ).all()
        if not page:
            return
        rows = [row for pk, data in page for row in value_rows(pk, data)]
        if rows:
            conn.execute(values.insert(), rows)
        last = page[-1][0]


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("context_value", schema=None) as batch_op:
        batch_op.drop_index("ix_context_value_text")
        batch_op.drop_index("ix_context_value_number")
    op.drop_table("context_value")
