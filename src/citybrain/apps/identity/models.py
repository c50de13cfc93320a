"""Identity tables: departments (an org tree), users, roles and their assignments, sessions, API tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from citybrain.sdk import AuditedMixin, Base, TimestampMixin


class Department(AuditedMixin, TimestampMixin, Base):
    """A government department or district, placed in the org tree by `parent_id`."""

    __tablename__ = "identity_department"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name_zh: Mapped[str] = mapped_column(String(120))
    name_en: Mapped[str] = mapped_column(String(200), default="")
    kind: Mapped[str] = mapped_column(String(20), default="department")
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("identity_department.id"), index=True)
    sort: Mapped[int] = mapped_column(default=0)


class User(AuditedMixin, TimestampMixin, Base):
    """A person who signs in (or a service account that owns API tokens)."""

    __tablename__ = "identity_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(120))
    department_id: Mapped[int] = mapped_column(ForeignKey("identity_department.id"), index=True)
    password_hash: Mapped[str] = mapped_column(String(200), default="")
    phone: Mapped[str | None] = mapped_column(String(32), default=None)
    email: Mapped[str | None] = mapped_column(String(200), default=None)
    is_active: Mapped[bool] = mapped_column(default=True)
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None] = mapped_column(default=None)
    last_login_at: Mapped[datetime | None] = mapped_column(default=None)


class Role(AuditedMixin, TimestampMixin, Base):
    """A named set of permissions (`<label>.<thing>.<verb>`, `<label>.*` or `*`)."""

    __tablename__ = "identity_role"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name_zh: Mapped[str] = mapped_column(String(120))
    name_en: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(String(500), default="")
    permissions: Mapped[list[str]] = mapped_column(JSON, default=list)
    builtin: Mapped[bool] = mapped_column(default=False)


class RoleAssignment(AuditedMixin, TimestampMixin, Base):
    """A role held by a user in a department (and its sub-departments), or city-wide when none."""

    __tablename__ = "identity_role_assignment"
    __table_args__ = (UniqueConstraint("user_id", "role_id", "department_id", name="user_role_department"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("identity_user.id", ondelete="CASCADE"), index=True)
    role_id: Mapped[int] = mapped_column(ForeignKey("identity_role.id"), index=True)
    department_id: Mapped[int | None] = mapped_column(ForeignKey("identity_department.id"), default=None)
    include_subtree: Mapped[bool] = mapped_column(default=True)


class LoginSession(AuditedMixin, Base):
    """A browser session; only the SHA-256 of its cookie value is stored."""

    __tablename__ = "identity_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("identity_user.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    ip: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(300), default="")


class ApiToken(AuditedMixin, TimestampMixin, Base):
    """A machine credential acting for its owner within `scopes`; only its SHA-256 is stored."""

    __tablename__ = "identity_api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("identity_user.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    secret_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("identity_user.id"), default=None)


def as_dict(obj: Any) -> dict[str, Any]:
    """Column values of a row (for schemas)."""
    return {c.key: getattr(obj, c.key) for c in obj.__table__.columns}
