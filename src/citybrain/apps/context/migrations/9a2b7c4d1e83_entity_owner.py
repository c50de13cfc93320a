"""entity owner

Revision ID: 9a2b7c4d1e83
Revises: 7d1a4e5f2c60
Create Date: 2026-11-25 07:00:00.000000

Entities belong to the department of the actor that created them: staff may change the entities of the
departments in which they hold context.entity.write. Entities that exist already, like those the platform
itself creates, belong to no department and only city-wide writers may change them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "9a2b7c4d1e83"
down_revision: str | Sequence[str] | None = "7d1a4e5f2c60"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the owning department (nullable: no department)."""
    op.add_column("context_entity", sa.Column("department_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    """Drop the owning department."""
    with op.batch_alter_table("context_entity") as batch_op:
        batch_op.drop_column("department_id")
