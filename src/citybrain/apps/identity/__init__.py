"""Identity: departments, users, roles, API tokens, sign-in (the platform's who-is-who)."""

from citybrain.apps.identity.settings import IdentitySettings
from citybrain.sdk import AppSpec, NavItem

APP = AppSpec(
    label="identity",
    title="Identity and access",
    description="Departments, users, roles and machine tokens; sign-in for staff.",
    layer="base",
    icon="id",
    settings=IdentitySettings,
    nav=(
        NavItem("Departments", "/identity/departments", "identity.department.read"),
        NavItem("Users", "/identity/users", "identity.user.read"),
        NavItem("Roles", "/identity/roles", "identity.role.read"),
        NavItem("API tokens", "/identity/tokens", "identity.token.create"),
    ),
)
