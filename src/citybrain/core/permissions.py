"""Actors, permissions and department scoping: deny unless granted."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from citybrain.core.errors import Forbidden, Unauthorized

PERMISSION_RE = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Permission:
    """A permission an app declares: code `<label>.<thing>.<verb>` with zh-CN and English names."""

    code: str
    name_zh: str
    name_en: str

    def __post_init__(self) -> None:
        """Refuse a code that is not `<label>.<thing>.<verb>`."""
        if not PERMISSION_RE.match(self.code):
            raise ValueError(f"permission code {self.code!r} is not <label>.<thing>.<verb>")

    @property
    def label(self) -> str:
        """The app label the permission belongs to."""
        return self.code.split(".", 1)[0]


class AllDepartments:
    """Marker for a grant that covers every department."""

    def __repr__(self) -> str:
        """Show the marker."""
        return "ALL"


ALL = AllDepartments()
Scope = frozenset[int] | AllDepartments


@dataclass(frozen=True)
class Actor:
    """Who is acting: a user, a machine token, the system itself, or nobody."""

    kind: Literal["user", "token", "system", "anonymous"]
    id: int | None = None
    username: str = ""
    display_name: str = ""
    department_id: int | None = None
    grants: Mapping[str, Scope] = field(default_factory=dict)
    token_id: int | None = None
    session_id: int | None = None

    @property
    def is_authenticated(self) -> bool:
        """Whether the actor is anyone at all."""
        return self.kind != "anonymous"

    @property
    def ref(self) -> str:
        """A stable reference for the audit ledger, e.g. `user:3` or `token:7`."""
        if self.kind == "token":
            return f"token:{self.token_id}(user:{self.id})"
        if self.kind in ("system", "anonymous"):
            return self.kind
        return f"user:{self.id}"

    def scope(self, permission: str) -> Scope:
        """The departments in which the actor holds the permission (empty: none)."""
        if self.kind == "system":
            return ALL
        return self.grants.get(permission, frozenset())

    def can(self, permission: str, department_id: int | None = None) -> bool:
        """Whether the actor holds the permission, in the given department if one is named."""
        scope = self.scope(permission)
        if isinstance(scope, AllDepartments):
            return True
        if department_id is None:
            return bool(scope)
        return department_id in scope

    def require(self, permission: str, department_id: int | None = None) -> None:
        """Raise 401 for nobody and 403 for an actor without the permission."""
        if not self.is_authenticated:
            raise Unauthorized("Sign in first.")
        if not self.can(permission, department_id):
            raise Forbidden("You lack the permission {permission}.", permission=permission)

    def visible_departments(self, permission: str) -> Scope:
        """The scope to filter a department-owned query by, raising 401/403 when it is empty."""
        self.require(permission)
        return self.scope(permission)


SYSTEM = Actor(kind="system", username="system", display_name="system")
ANONYMOUS = Actor(kind="anonymous")


def merge_grants(*grant_sets: Iterable[tuple[str, Scope]]) -> dict[str, Scope]:
    """Combine (permission, scope) pairs, taking the union of scopes."""
    merged: dict[str, Scope] = {}
    for grants in grant_sets:
        for code, scope in grants:
            have = merged.get(code, frozenset())
            if isinstance(have, AllDepartments) or isinstance(scope, AllDepartments):
                merged[code] = ALL
            else:
                merged[code] = have | scope
    return merged


def restrict_grants(grants: Mapping[str, Scope], allowed: Iterable[str]) -> dict[str, Scope]:
    """Keep only the permissions in `allowed` (a token's scopes never exceed its owner's grants)."""
    keep = set(allowed)
    return {code: scope for code, scope in grants.items() if code in keep}
