"""App manifests, entry-point discovery, dependency order and feature modules found by file name."""

from __future__ import annotations

import importlib
import importlib.util
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Literal

from pydantic_settings import BaseSettings

ENTRY_POINT_GROUP = "citybrain.apps"
LABEL_RE = re.compile(r"^[a-z][a-z0-9_]{1,30}$")
Layer = Literal["base", "brain", "application", "entrance"]


class AppError(Exception):
    """The set of apps cannot start: a missing dependency, a cycle, a duplicate or a bad manifest."""


@dataclass(frozen=True)
class NavItem:
    """A navigation entry an app declares; shown only to actors holding `permission` (if any)."""

    title: str
    path: str
    permission: str | None = None
    icon: str = ""
    # An endpoint answering {"unread": n}: the shell shows n beside the entry (nothing when 0).
    badge: str = ""


@dataclass(frozen=True)
class AppSpec:
    """An app's manifest: its label, layer, dependencies and what it shows in the shell."""

    label: str
    title: str
    description: str
    layer: Layer
    requires: tuple[str, ...] = ()
    nav: tuple[NavItem, ...] = ()
    settings: type[BaseSettings] | None = None
    icon: str = ""
    # Routers a standard places outside /api/<label>: (URL prefix, feature module exposing `router`).
    mounts: tuple[tuple[str, str], ...] = ()
    package: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        """Refuse a malformed label or a self-dependency."""
        if not LABEL_RE.match(self.label):
            raise AppError(f"app label {self.label!r} must be lowercase letters, digits and _")
        if self.label in self.requires:
            raise AppError(f"app {self.label!r} requires itself")
        for prefix, _module in self.mounts:
            if not prefix.startswith("/") or prefix.endswith("/") or prefix.startswith(("/api/", "/static/")):
                raise AppError(f"app {self.label!r} mounts a router at a bad prefix {prefix!r}")

    def module(self, feature: str) -> ModuleType | None:
        """Import the app's feature module (`api`, `views`, `demo`, ...) if the app has that file."""
        name = f"{self.package}.{feature}"
        if importlib.util.find_spec(name) is None:
            return None
        return importlib.import_module(name)

    @property
    def path(self) -> Path:
        """The app package's directory."""
        spec = importlib.util.find_spec(self.package)
        if spec is None or spec.origin is None:
            raise AppError(f"app package {self.package!r} cannot be found")
        return Path(spec.origin).parent


def discover() -> list[AppSpec]:
    """Load every AppSpec registered in the `citybrain.apps` entry-point group."""
    specs: list[AppSpec] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
        except Exception as exc:
            raise AppError(f"app {ep.name!r} ({ep.value}) failed to import: {exc}") from exc
        if not isinstance(obj, AppSpec):
            raise AppError(f"entry point {ep.name!r} ({ep.value}) is not an AppSpec")
        if obj.label != ep.name:
            raise AppError(f"entry point {ep.name!r} names an app labelled {obj.label!r}")
        package = ep.value.split(":", 1)[0]
        specs.append(replace(obj, package=package))
    return specs


def resolve(specs: Iterable[AppSpec], selected: Sequence[str] | None = None) -> list[AppSpec]:
    """Check duplicates, the selection and dependencies; return the apps in dependency order."""
    by_label: dict[str, AppSpec] = {}
    for spec in specs:
        if spec.label in by_label:
            raise AppError(
                f"duplicate app label {spec.label!r} ({by_label[spec.label].package} and {spec.package})"
            )
        by_label[spec.label] = spec
    if selected is not None:
        unknown = [label for label in selected if label not in by_label]
        if unknown:
            raise AppError(
                f"CITYBRAIN_APPS names unknown app(s) {', '.join(unknown)}; "
                f"installed: {', '.join(sorted(by_label))}"
            )
        by_label = {label: by_label[label] for label in by_label if label in selected}
    for spec in by_label.values():
        for dep in spec.requires:
            if dep not in by_label:
                raise AppError(f"app {spec.label!r} requires {dep!r}, which is not installed or not enabled")
    ordered: list[AppSpec] = []
    state: dict[str, str] = {}

    def visit(label: str, path: tuple[str, ...]) -> None:
        if state.get(label) == "done":
            return
        if state.get(label) == "visiting":
            cycle = [*path[path.index(label) :], label]
            raise AppError(f"app dependency cycle: {' -> '.join(cycle)}")
        state[label] = "visiting"
        for dep in by_label[label].requires:
            visit(dep, (*path, label))
        state[label] = "done"
        ordered.append(by_label[label])

    for label in sorted(by_label):
        visit(label, ())
    return ordered
