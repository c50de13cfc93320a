"""emergency command: responses, their tasks, resources, the command log

Revision ID: f5a7c9e1b3d4
Revises: e4c6d8f0a2b3
Create Date: 2026-11-27 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import citybrain.core.db

revision: str = "f5a7c9e1b3d4"
down_revision: str | Sequence[str] | None = "e4c6d8f0a2b3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = citybrain.core.db.UTCDateTime


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "command_response",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("plan", sa.String(length=64), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("active_key", sa.String(length=80), nullable=True),
        sa.Column("district", sa.String(length=6), nullable=True),
        sa.Column("lon", sa.Double(), nullable=True),
        sa.Column("lat", sa.Double(), nullable=True),
        sa.Column("address", sa.String(length=300), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("warning_id", sa.Integer(), nullable=True),
        sa.Column("rule_code", sa.String(length=64), nullable=True),
        sa.Column("event_id", sa.Integer(), nullable=True),
        sa.Column("end_suggested", sa.Boolean(), nullable=False),
        sa.Column("started_by", sa.String(length=64), nullable=False),
        sa.Column("ended_at", UTC(timezone=True), nullable=True),
        sa.Column("created_at", UTC(timezone=True), nullable=False),
        sa.Column("updated_at", UTC(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["command_event.id"],
            name=op.f("fk_command_response_event_id_command_event"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_command_response")),
        sa.UniqueConstraint("active_key", name="uq_command_response_active_key"),
    )
    with op.batch_alter_table("command_response", schema=None) as batch_op:
        batch_op.create_index("ix_command_response_state", ["state", "updated_at"], unique=False)
        batch_op.create_index("ix_command_response_warning", ["warning_id"], unique=False)

    op.create_table(
        "command_response_task",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("response_id", sa.Integer(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("department", sa.String(length=32), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=True),
        sa.Column("name_zh", sa.String(length=200), nullable=False),
        sa.Column("name_en", sa.String(length=300), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("updated_at", UTC(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=False),
        sa.Column("updated_by_name", sa.String(length=120), nullable=False),
        sa.ForeignKeyConstraint(
            ["response_id"],
            ["command_response.id"],
            name=op.f("fk_command_response_task_response_id_command_response"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_command_response_task")),
        sa.UniqueConstraint("response_id", "department", "name_zh", name="uq_command_response_task_name"),
    )
    with op.batch_alter_table("command_response_task", schema=None) as batch_op:
        batch_op.create_index("ix_command_response_task_response", ["response_id", "id"], unique=False)

    op.create_table(
        "command_resource",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=True),
        sa.Column("lon", sa.Double(), nullable=False),
        sa.Column("lat", sa.Double(), nullable=False),
        sa.Column("district", sa.String(length=6), nullable=True),
        sa.Column("address", sa.String(length=300), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("unit", sa.String(length=16), nullable=False),
        sa.Column("contact_name", sa.String(length=64), nullable=False),
        sa.Column("contact_phone", sa.String(length=32), nullable=True),
        sa.Column("response_id", sa.Integer(), nullable=True),
        sa.Column("dispatched_at", UTC(timezone=True), nullable=True),
        sa.Column("created_at", UTC(timezone=True), nullable=False),
        sa.Column("updated_at", UTC(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["response_id"],
            ["command_response.id"],
            name=op.f("fk_command_resource_response_id_command_response"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_command_resource")),
    )
    with op.batch_alter_table("command_resource", schema=None) as batch_op:
        batch_op.create_index("ix_command_resource_status", ["status", "kind"], unique=False)
        batch_op.create_index("ix_command_resource_response", ["response_id"], unique=False)

    op.create_table(
        "command_response_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("response_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("at", UTC(timezone=True), nullable=False),
        sa.Column("by", sa.String(length=64), nullable=False),
        sa.Column("by_name", sa.String(length=120), nullable=False),
        sa.Column("level", sa.Integer(), nullable=True),
        sa.Column("task_id", sa.Integer(), nullable=True),
        sa.Column("resource_id", sa.Integer(), nullable=True),
        sa.Column("warning_id", sa.Integer(), nullable=True),
        sa.Column("note", sa.String(length=1000), nullable=False),
        sa.ForeignKeyConstraint(
            ["response_id"],
            ["command_response.id"],
            name=op.f("fk_command_response_log_response_id_command_response"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_command_response_log")),
    )
    with op.batch_alter_table("command_response_log", schema=None) as batch_op:
        batch_op.create_index("ix_command_response_log_response", ["response_id", "id"], unique=False)
        batch_op.create_index("ix_command_response_log_warning", ["warning_id"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    for table, indexes in (
        ("command_response_log", ("ix_command_response_log_warning", "ix_command_response_log_response")),
        ("command_resource", ("ix_command_resource_response", "ix_command_resource_status")),
        ("command_response_task", ("ix_command_response_task_response",)),
        ("command_response", ("ix_command_response_warning", "ix_command_response_state")),
    ):
        with op.batch_alter_table(table, schema=None) as batch_op:
            for index in indexes:
                batch_op.drop_index(index)
        op.drop_table(table)
