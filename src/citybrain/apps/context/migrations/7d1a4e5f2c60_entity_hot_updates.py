"""entity hot updates

Revision ID: 7d1a4e5f2c60
Revises: 6c8f3d2e0b51
Create Date: 2026-11-25 03:10:00.000000

Sensor updates rewrite an entity's document hundreds of times a minute. The index on modified_at (no query
uses it) made every such update insert an entry into each of the table's indexes; without it, and with
room left in each page on PostgreSQL (fillfactor 80), an update that moves nothing indexed stays in its
page (a heap-only tuple) and touches no index.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "7d1a4e5f2c60"
down_revision: str | Sequence[str] | None = "6c8f3d2e0b51"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Drop the modified_at index; leave a fifth of each page free for in-page updates on PostgreSQL."""
    with op.batch_alter_table("context_entity") as batch_op:
        batch_op.drop_index("ix_context_entity_modified_at")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE context_entity SET (fillfactor = 80)")


def downgrade() -> None:
    """Restore the index and the default fill factor."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE context_entity RESET (fillfactor)")
    with op.batch_alter_table("context_entity") as batch_op:
        batch_op.create_index("ix_context_entity_modified_at", ["modified_at"], unique=False)
