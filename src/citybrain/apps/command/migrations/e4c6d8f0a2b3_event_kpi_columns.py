"""event KPI and Open311 columns

Revision ID: e4c6d8f0a2b3
Revises: d3b5c7e9f1a2
Create Date: 2026-11-26 09:00:00.000000

The KPI reports count, per event, when it was filed and first handled, whether a stage ever ran past its
time limit and how often it was sent back. Events stored before are filled in from their timelines.
An Open311 request brings the citizen's e-mail and a media URL.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import citybrain.core.db

revision: str = "e4c6d8f0a2b3"
down_revision: str | Sequence[str] | None = "d3b5c7e9f1a2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("command_event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("caller_email", sa.String(length=254), nullable=True))
        batch_op.add_column(sa.Column("media_url", sa.String(length=500), nullable=True))
        batch_op.add_column(
            sa.Column("filed_at", citybrain.core.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("handled_at", citybrain.core.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("late", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("reworks", sa.Integer(), nullable=False, server_default="0"))
        batch_op.create_index("ix_command_event_created", ["created_at"], unique=False)
    op.execute(
        "UPDATE command_event SET"
        " filed_at = (SELECT min(s.at) FROM command_event_step s"
        "  WHERE s.event_id = command_event.id AND s.to_state = 'filed'),"
        " handled_at = (SELECT min(s.at) FROM command_event_step s"
        "  WHERE s.event_id = command_event.id AND s.to_state IN ('handled', 'replied')),"
        " late = EXISTS (SELECT 1 FROM command_event_step s"
        "  WHERE s.event_id = command_event.id AND s.action = 'overdue'),"
        " reworks = (SELECT count(*) FROM command_event_step s"
        "  WHERE s.event_id = command_event.id AND s.action IN ('rework', 'redo'))"
    )


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("command_event", schema=None) as batch_op:
        batch_op.drop_index("ix_command_event_created")
        batch_op.drop_column("reworks")
        batch_op.drop_column("late")
        batch_op.drop_column("handled_at")
        batch_op.drop_column("filed_at")
        batch_op.drop_column("media_url")
        batch_op.drop_column("caller_email")
