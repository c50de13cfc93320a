"""indicators tables

Revision ID: f6a8b0c2d4e6
Revises:
Create Date: 2026-11-27 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import citybrain.core.db

revision: str = "f6a8b0c2d4e6"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("indicators",)
depends_on: str | Sequence[str] | None = "b907dcd7aefd"


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "indicators_value",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("indicator", sa.String(length=64), nullable=False),
        sa.Column("area", sa.String(length=12), nullable=False),
        sa.Column("period_start", citybrain.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("text", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("computed_at", citybrain.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_indicators_value")),
        sa.UniqueConstraint("indicator", "area", "period_start", name="indicators_value_key"),
    )
    with op.batch_alter_table("indicators_value", schema=None) as batch_op:
        batch_op.create_index("ix_indicators_value_period_start", ["period_start"], unique=False)
    op.create_table(
        "indicators_current",
        sa.Column("indicator", sa.String(length=64), nullable=False),
        sa.Column("area", sa.String(length=12), nullable=False),
        sa.Column("period_start", citybrain.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("text", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("computed_at", citybrain.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("changed_at", citybrain.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("indicator", "area", name=op.f("pk_indicators_current")),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("indicators_current")
    with op.batch_alter_table("indicators_value", schema=None) as batch_op:
        batch_op.drop_index("ix_indicators_value_period_start")
    op.drop_table("indicators_value")
