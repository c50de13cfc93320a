"""warning departments, sealed webhook secrets, duration clocks

Revision ID: f4a6c8e0b2d3
Revises: e2a4c6d8f0b1
Create Date: 2026-11-27 09:00:00.000000

Rules and warnings belong to a department. An operator's rule belongs to the department of the user who
created it; a warning to its rule's department, else to the department of its district (the district
government, whose code is the district's). Webhook secrets are sealed (sealing.py) with the key of the
settings in the environment, as `citybrain db upgrade` reads them; the plain column is dropped.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import citybrain.core.db

revision: str = "f4a6c8e0b2d3"
down_revision: str | Sequence[str] | None = "e2a4c6d8f0b1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = "3f5a956bb629"  # identity: departments and users


def _sealing_key() -> bytes:
    """The key the running platform seals webhook secrets with (settings from the environment)."""
    from citybrain.apps.warning.sealing import derive_key
    from citybrain.apps.warning.settings import WarningSettings
    from citybrain.core.settings import load_settings

    platform = load_settings().secret_key.get_secret_value()
    return derive_key(platform, WarningSettings().webhook_secret_key.get_secret_value())


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("warning_rule", schema=None) as batch_op:
        batch_op.add_column(sa.Column("department_id", sa.Integer(), nullable=True))
    # An operator's rule: the department of the user (or the token's user) who saved its first version.
    op.execute(
        "UPDATE warning_rule SET department_id = (SELECT u.department_id FROM warning_rule_version v"
        " JOIN identity_user u ON v.changed_by = 'user:' || CAST(u.id AS VARCHAR(20))"
        " OR v.changed_by LIKE '%(user:' || CAST(u.id AS VARCHAR(20)) || ')'"
        " WHERE v.rule_id = warning_rule.id AND v.version = 1)"
        " WHERE origin = 'operator'"
    )
    with op.batch_alter_table("warning_warning", schema=None) as batch_op:
        batch_op.add_column(sa.Column("department_id", sa.Integer(), nullable=True))
        batch_op.create_index("ix_warning_warning_department", ["department_id", "status"], unique=False)
    op.execute(
        "UPDATE warning_warning SET department_id = COALESCE("
        "(SELECT r.department_id FROM warning_rule r WHERE r.id = warning_warning.rule_id),"
        " (SELECT d.id FROM identity_department d WHERE d.code = warning_warning.district))"
    )
    op.create_table(
        "warning_clock",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=False),
        sa.Column("entity_id", sa.String(length=256), nullable=False),
        sa.Column("condition", sa.Integer(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("since", citybrain.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["warning_rule.id"],
            name=op.f("fk_warning_clock_rule_id_warning_rule"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_warning_clock")),
    )
    with op.batch_alter_table("warning_clock", schema=None) as batch_op:
        batch_op.create_index(
            "ix_warning_clock_key", ["rule_id", "entity_id", "condition", "rank"], unique=True
        )
    with op.batch_alter_table("warning_subscription", schema=None) as batch_op:
        batch_op.add_column(sa.Column("secret_sealed", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("previous_secret_sealed", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("previous_secret_until", citybrain.core.db.UTCDateTime(timezone=True), nullable=True)
        )
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, secret FROM warning_subscription WHERE secret IS NOT NULL")).all()
    if rows:
        from citybrain.apps.warning.sealing import seal

        key = _sealing_key()
        for row_id, secret in rows:
            conn.execute(
                sa.text("UPDATE warning_subscription SET secret_sealed = :sealed WHERE id = :id"),
                {"sealed": seal(key, str(secret)), "id": row_id},
            )
    with op.batch_alter_table("warning_subscription", schema=None) as batch_op:
        batch_op.drop_column("secret")


def downgrade() -> None:
    """Revert this revision (webhook secrets are opened again)."""
    with op.batch_alter_table("warning_subscription", schema=None) as batch_op:
        batch_op.add_column(sa.Column("secret", sa.String(length=128), nullable=True))
    conn = op.get_bind()
    rows = conn.execute(
        sa.text("SELECT id, secret_sealed FROM warning_subscription WHERE secret_sealed IS NOT NULL")
    ).all()
    if rows:
        from citybrain.apps.warning.sealing import unseal

        key = _sealing_key()
        for row_id, sealed in rows:
            conn.execute(
                sa.text("UPDATE warning_subscription SET secret = :secret WHERE id = :id"),
                {"secret": unseal(key, str(sealed)), "id": row_id},
            )
    with op.batch_alter_table("warning_subscription", schema=None) as batch_op:
        batch_op.drop_column("previous_secret_until")
        batch_op.drop_column("previous_secret_sealed")
        batch_op.drop_column("secret_sealed")
    with op.batch_alter_table("warning_clock", schema=None) as batch_op:
        batch_op.drop_index("ix_warning_clock_key")
    op.drop_table("warning_clock")
    with op.batch_alter_table("warning_warning", schema=None) as batch_op:
        batch_op.drop_index("ix_warning_warning_department")
        batch_op.drop_column("department_id")
    with op.batch_alter_table("warning_rule", schema=None) as batch_op:
        batch_op.drop_column("department_id")
