"""indicators: the warnings seen on the bus (the daily brief's list)

Revision ID: a7b9c1d3e5f7
Revises: f6a8b0c2d4e6
Create Date: 2026-11-28 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import citybrain.core.db

revision: str = "a7b9c1d3e5f7"
down_revision: str | Sequence[str] | None = "f6a8b0c2d4e6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "indicators_warning",
        sa.Column(
            "warning_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("level", sa.String(length=8), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("rule_code", sa.String(length=64), nullable=False),
        sa.Column("entity_id", sa.String(length=256), nullable=False),
        sa.Column("district", sa.String(length=12), nullable=True),
        sa.Column("raised_at", citybrain.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("lifted_at", citybrain.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("changed_at", citybrain.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("warning_id", name=op.f("pk_indicators_warning")),
    )
    with op.batch_alter_table("indicators_warning", schema=None) as batch_op:
        batch_op.create_index("ix_indicators_warning_raised_at", ["raised_at"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("indicators_warning", schema=None) as batch_op:
        batch_op.drop_index("ix_indicators_warning_raised_at")
    op.drop_table("indicators_warning")
