"""Identity commands: `citybrain user create` and friends."""

from __future__ import annotations

import click
from sqlalchemy import select

from citybrain.apps.identity import schemas, services
from citybrain.apps.identity.models import Department, Role
from citybrain.sdk import SYSTEM, AppContext, ProblemError, with_context


@click.group()
def user() -> None:
    """User accounts."""


@user.command("create")
@click.argument("username")
@click.option("--name", "display_name", help="Display name (defaults to the username).")
@click.option("--department", "department_code", required=True, help="Department code, e.g. dsj or 510703.")
@click.option("--role", "role_code", default=None, help="Role to grant, e.g. platform_admin.")
@click.option("--city-wide", is_flag=True, help="Grant the role in every department.")
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="The password (prompted when not given).",
)
@with_context
def create(
    ctx: AppContext,
    username: str,
    display_name: str | None,
    department_code: str,
    role_code: str | None,
    city_wide: bool,
    password: str,
) -> None:
    """Create a user in a department, optionally granting a role."""
    role_ids = services.ensure_builtin_roles(ctx, SYSTEM)
    with ctx.read() as session:
        dept_id = session.scalar(select(Department.id).where(Department.code == department_code))
        role_id = session.scalar(select(Role.id).where(Role.code == role_code)) if role_code else None
    if dept_id is None:
        raise click.BadParameter(f"no department with code {department_code!r}", param_hint="--department")
    if role_code and role_id is None:
        raise click.BadParameter(
            f"no role {role_code!r}; built in: {', '.join(role_ids)}", param_hint="--role"
        )
    try:
        data = schemas.UserCreate(
            username=username, display_name=display_name or username, department_id=dept_id, password=password
        )
        created = services.create_user(ctx, SYSTEM, data)
        if role_id is not None:
            services.assign_role(
                ctx,
                SYSTEM,
                created.id,
                schemas.AssignmentCreate(role_id=role_id, department_id=None if city_wide else dept_id),
            )
    except ProblemError as exc:
        raise click.ClickException(str(exc)) from exc
    except ValueError as exc:
        raise click.ClickException(f"invalid user: {exc}") from exc
    click.echo(f"created user {created.username} (id {created.id})")


COMMANDS = (user,)
