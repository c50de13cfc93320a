"""warning device health and data-quality flags

Revision ID: e2a4c6d8f0b1
Revises: c8d2e3f4a5b6
Create Date: 2026-11-26 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import citybrain.core.db

revision: str = "e2a4c6d8f0b1"
down_revision: str | Sequence[str] | None = "c8d2e3f4a5b6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("warning_warning", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=16), server_default="", nullable=False))
        batch_op.create_index("ix_warning_warning_kind", ["kind", "status"], unique=False)
    # Warnings raised before: the kind of their rule.
    op.execute(
        "UPDATE warning_warning SET kind = (SELECT warning_rule.kind FROM warning_rule"
        " WHERE warning_rule.id = warning_warning.rule_id)"
        " WHERE EXISTS (SELECT 1 FROM warning_rule WHERE warning_rule.id = warning_warning.rule_id)"
    )
    op.create_table(
        "warning_quality_flag",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("entity_id", sa.String(length=256), nullable=False),
        sa.Column("attr", sa.String(length=300), nullable=False),
        sa.Column("observed_at", citybrain.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("expected", sa.Float(), nullable=False),
        sa.Column("message", sa.String(length=300), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("created_at", citybrain.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_warning_quality_flag")),
    )
    with op.batch_alter_table("warning_quality_flag", schema=None) as batch_op:
        batch_op.create_index(
            "ix_warning_quality_flag_series", ["tenant", "entity_id", "attr", "observed_at"], unique=False
        )
        batch_op.create_index("ix_warning_quality_flag_observed", ["observed_at"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("warning_quality_flag", schema=None) as batch_op:
        batch_op.drop_index("ix_warning_quality_flag_observed")
        batch_op.drop_index("ix_warning_quality_flag_series")
    op.drop_table("warning_quality_flag")
    with op.batch_alter_table("warning_warning", schema=None) as batch_op:
        batch_op.drop_index("ix_warning_warning_kind")
        batch_op.drop_column("kind")
