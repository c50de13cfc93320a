"""event merging (并单), urging (催办), extensions (延期) and pre-deadline warnings (临期预警)

Revision ID: a6b8d0f2c4e5
Revises: f5a7c9e1b3d4
Create Date: 2026-11-28 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a6b8d0f2c4e5"
down_revision: str | Sequence[str] | None = "f5a7c9e1b3d4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("command_event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("merged_into_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("urges", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("extensions", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("extension_days", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("due_soon", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.create_index("ix_command_event_merged_into_id", ["merged_into_id"], unique=False)
        batch_op.create_foreign_key(
            "fk_command_event_merged_into_id_command_event",
            "command_event",
            ["merged_into_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("command_event", schema=None) as batch_op:
        batch_op.drop_constraint("fk_command_event_merged_into_id_command_event", type_="foreignkey")
        batch_op.drop_index("ix_command_event_merged_into_id")
        batch_op.drop_column("due_soon")
        batch_op.drop_column("extension_days")
        batch_op.drop_column("extensions")
        batch_op.drop_column("urges")
        batch_op.drop_column("merged_into_id")
