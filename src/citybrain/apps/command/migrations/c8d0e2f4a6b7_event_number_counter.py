"""event number counter: the last 编号 sequence of each local day

Revision ID: c8d0e2f4a6b7
Revises: b7c9e1f3a5d6
Create Date: 2026-12-02 09:00:00.000000

Concurrent intakes took max(number) + 1 of the day and collided; each now increments its day's row of
command_number_day (an upsert) in its own transaction. The table is filled from the events already stored.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c8d0e2f4a6b7"
down_revision: str | Sequence[str] | None = "b7c9e1f3a5d6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "command_number_day",
        sa.Column("day", sa.String(length=8), nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_command_number_day")),
    )
    # 编号 is YYYYMMDD and a 5-digit daily sequence (13 characters).
    op.execute(
        "INSERT INTO command_number_day (day, last)"
        " SELECT substr(number, 1, 8), max(CAST(substr(number, 9) AS INTEGER)) FROM command_event"
        " WHERE length(number) = 13 GROUP BY substr(number, 1, 8)"
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("command_number_day")
