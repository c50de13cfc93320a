"""Building the platform context from settings: apps, storage, bus, catalogue, permissions."""

from __future__ import annotations

from collections.abc import Sequence

from citybrain.core.apps import AppError, AppSpec, discover, resolve
from citybrain.core.bus import create_bus
from citybrain.core.context import AppContext, Authenticator
from citybrain.core.db import ConnectHook, Database
from citybrain.core.i18n import I18n
from citybrain.core.permissions import Permission
from citybrain.core.settings import Settings, load_app_settings
from citybrain.core.web import UI_DIR


def collect_permissions(apps: Sequence[AppSpec]) -> dict[str, Permission]:
    """Every permission the enabled apps declare in `permissions.py`, checked for its label."""
    found: dict[str, Permission] = {}
    for spec in apps:
        module = spec.module("permissions")
        for perm in getattr(module, "PERMISSIONS", ()) if module else ():
            if not isinstance(perm, Permission):
                raise AppError(f"app {spec.label!r} declares a permission that is not a Permission: {perm!r}")
            if perm.label != spec.label:
                raise AppError(f"app {spec.label!r} declares {perm.code!r}, outside its own label")
            if perm.code in found:
                raise AppError(f"permission {perm.code!r} is declared twice")
            found[perm.code] = perm
    return found


def connect_hooks(apps: Sequence[AppSpec]) -> list[ConnectHook]:
    """The `on_connect(dbapi_connection, dialect_name)` hooks apps declare in `storage.py`."""
    hooks: list[ConnectHook] = []
    for spec in apps:
        module = spec.module("storage")
        hook = getattr(module, "on_connect", None) if module else None
        if hook is not None:
            hooks.append(hook)
    return hooks


def build_context(settings: Settings, specs: Sequence[AppSpec] | None = None) -> AppContext:
    """Resolve the enabled apps and build storage, bus and catalogue for them."""
    apps = resolve(discover() if specs is None else specs, settings.apps)
    app_settings = {
        spec.label: load_app_settings(spec.settings, spec.label) for spec in apps if spec.settings is not None
    }
    ctx = AppContext(
        settings=settings,
        apps=apps,
        db=Database(settings, connect_hooks(apps)),
        bus=create_bus(settings.bus_url, stream=settings.bus_stream, namespace=settings.bus_namespace),
        i18n=I18n([UI_DIR / "locale", *(spec.path / "locale" for spec in apps)]),
        permissions=collect_permissions(apps),
        app_settings=app_settings,
    )
    for spec in apps:
        module = spec.module("auth")
        authenticator: Authenticator | None = getattr(module, "authenticate", None) if module else None
        if authenticator is not None:
            ctx.authenticators.append(authenticator)
    return ctx
