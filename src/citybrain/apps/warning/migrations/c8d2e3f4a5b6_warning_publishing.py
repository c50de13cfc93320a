"""warning publishing

Revision ID: c8d2e3f4a5b6
Revises: b7c1d2e3f4a5
Create Date: 2026-11-25 07:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import citybrain.core.db

revision: str = "c8d2e3f4a5b6"
down_revision: str | Sequence[str] | None = "b7c1d2e3f4a5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "warning_subscription",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("url", sa.String(length=2000), nullable=True),
        sa.Column("secret", sa.String(length=128), nullable=True),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("department_id", sa.Integer(), nullable=True),
        sa.Column("district", sa.String(length=6), nullable=True),
        sa.Column("min_level", sa.String(length=8), nullable=False),
        sa.Column("transitions", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", citybrain.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", citybrain.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_warning_subscription")),
    )
    with op.batch_alter_table("warning_subscription", schema=None) as batch_op:
        batch_op.create_index("ix_warning_subscription_user", ["user_id"], unique=False)

    op.create_table(
        "warning_delivery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscription_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("warning_id", sa.Integer(), nullable=False),
        sa.Column("transition", sa.String(length=16), nullable=False),
        sa.Column("level", sa.String(length=8), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", citybrain.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("receipt", sa.String(length=200), nullable=True),
        sa.Column("created_at", citybrain.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", citybrain.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["warning_subscription.id"],
            name=op.f("fk_warning_delivery_subscription_id_warning_subscription"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_warning_delivery")),
    )
    with op.batch_alter_table("warning_delivery", schema=None) as batch_op:
        batch_op.create_index("ix_warning_delivery_due", ["state", "next_attempt_at"], unique=False)
        batch_op.create_index("ix_warning_delivery_event", ["subscription_id", "event_id"], unique=True)

    op.create_table(
        "warning_notification",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=True),
        sa.Column("warning_id", sa.Integer(), nullable=False),
        sa.Column("transition", sa.String(length=16), nullable=False),
        sa.Column("level", sa.String(length=8), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("created_at", citybrain.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("read_at", citybrain.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["warning_delivery.id"],
            name=op.f("fk_warning_notification_delivery_id_warning_delivery"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_warning_notification")),
        sa.UniqueConstraint("delivery_id", name=op.f("uq_warning_notification_delivery_id")),
    )
    with op.batch_alter_table("warning_notification", schema=None) as batch_op:
        batch_op.create_index("ix_warning_notification_user", ["user_id", "read_at"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("warning_notification", schema=None) as batch_op:
        batch_op.drop_index("ix_warning_notification_user")
    op.drop_table("warning_notification")
    with op.batch_alter_table("warning_delivery", schema=None) as batch_op:
        batch_op.drop_index("ix_warning_delivery_event")
        batch_op.drop_index("ix_warning_delivery_due")
    op.drop_table("warning_delivery")
    with op.batch_alter_table("warning_subscription", schema=None) as batch_op:
        batch_op.drop_index("ix_warning_subscription_user")
    op.drop_table("warning_subscription")
