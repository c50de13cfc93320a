"""The only kernel module apps import: base classes, protocols and dependency aliases."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from pydantic_settings import BaseSettings, SettingsConfigDict

from citybrain.core.aio import wait_event
from citybrain.core.apps import AppSpec, NavItem
from citybrain.core.bus import Bus, Event
from citybrain.core.cache import ExpiringCache
from citybrain.core.cli import with_context
from citybrain.core.context import AppContext
from citybrain.core.db import (
    AuditedMixin,
    Base,
    DepartmentOwnedMixin,
    TimestampMixin,
    UnitOfWork,
    UTCDateTime,
    bulk_insert,
    execute_raw,
    json_insert_sql,
    json_recordset,
    json_rows,
    uses_copy,
    utcnow,
)
from citybrain.core.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    Locked,
    NotFound,
    ProblemError,
    TooManyRequests,
    Unauthorized,
    ValidationFailed,
)
from citybrain.core.ids import uuid4
from citybrain.core.masking import mask_email, mask_id_number, mask_phone
from citybrain.core.permissions import (
    ALL,
    ANONYMOUS,
    SYSTEM,
    Actor,
    AllDepartments,
    Permission,
    Scope,
    merge_grants,
)
from citybrain.core.web import (
    CSRF_COOKIE,
    LANG_COOKIE,
    SESSION_COOKIE,
    Ctx,
    CurrentActor,
    Locale,
    current_actor,
    get_ctx,
    recalled_actor,
)


class AppSettings(BaseSettings):
    """Base of an app's settings; read with the prefix CITYBRAIN_<LABEL>_."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")


def render(request: Request, template: str, /, status_code: int = 200, **values: Any) -> HTMLResponse:
    """Render an app page inside the shell (translation, navigation, CSRF token included)."""
    templates = request.app.state.templates
    response: HTMLResponse = templates.render(request, template, status_code=status_code, **values)
    return response


__all__ = [
    "ALL",
    "ANONYMOUS",
    "CSRF_COOKIE",
    "LANG_COOKIE",
    "SESSION_COOKIE",
    "SYSTEM",
    "Actor",
    "AllDepartments",
    "AppContext",
    "AppSettings",
    "AppSpec",
    "AuditedMixin",
    "BadRequest",
    "Base",
    "Bus",
    "Conflict",
    "Ctx",
    "CurrentActor",
    "DepartmentOwnedMixin",
    "Event",
    "ExpiringCache",
    "Forbidden",
    "Locale",
    "Locked",
    "NavItem",
    "NotFound",
    "Permission",
    "ProblemError",
    "Scope",
    "TimestampMixin",
    "TooManyRequests",
    "UTCDateTime",
    "Unauthorized",
    "UnitOfWork",
    "ValidationFailed",
    "bulk_insert",
    "current_actor",
    "execute_raw",
    "get_ctx",
    "json_insert_sql",
    "json_recordset",
    "json_rows",
    "mask_email",
    "mask_id_number",
    "mask_phone",
    "merge_grants",
    "recalled_actor",
    "render",
    "uses_copy",
    "utcnow",
    "uuid4",
    "wait_event",
    "with_context",
]
