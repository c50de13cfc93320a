"""The identity REST API under /api/identity (thin: parse, authorise, call one service)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, status

from citybrain.apps.identity import schemas, services
from citybrain.sdk import SESSION_COOKIE, Ctx, CurrentActor

router = APIRouter()
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=schemas.MAX_INT)]
# Ids beyond the 32-bit id columns are refused with 422 rather than failing in the database.
Id = Annotated[int, Path(ge=1, le=schemas.MAX_INT)]


def set_session_cookie(response: Response, ctx: Ctx, signed: services.SignedIn) -> None:
    """Give the browser its session cookie (HttpOnly, SameSite=Lax)."""
    response.set_cookie(
        SESSION_COOKIE,
        signed.cookie,
        expires=signed.expires_at,
        httponly=True,
        samesite="lax",
        secure=ctx.settings.secure_cookies,
        path="/",
    )


@router.post("/session", response_model=schemas.UserRead)
def sign_in(data: schemas.LoginIn, request: Request, response: Response, ctx: Ctx) -> schemas.UserRead:
    """Sign in with username and password; sets the session cookie."""
    client = request.client.host if request.client else ""
    signed = services.login(ctx, data.username, data.password, client, request.headers.get("user-agent", ""))
    set_session_cookie(response, ctx, signed)
    return signed.user


@router.delete("/session", status_code=status.HTTP_204_NO_CONTENT)
def sign_out(response: Response, ctx: Ctx, actor: CurrentActor) -> None:
    """Close the current browser session."""
    services.logout(ctx, actor)
    response.delete_cookie(SESSION_COOKIE, path="/")


@router.get("/me", response_model=schemas.MeRead)
def me(ctx: Ctx, actor: CurrentActor) -> schemas.MeRead:
    """Who am I, and what may I do where."""
    return services.me(actor, ctx)


@router.post("/me/password", status_code=status.HTTP_204_NO_CONTENT)
def change_password(data: schemas.PasswordChange, ctx: Ctx, actor: CurrentActor) -> None:
    """Change one's own password."""
    services.change_own_password(ctx, actor, data.current, data.password)


@router.get("/permissions", response_model=list[schemas.PermissionRead])
def permissions(ctx: Ctx, actor: CurrentActor) -> list[schemas.PermissionRead]:
    """Every permission the enabled apps declare."""
    return services.list_permissions(ctx, actor)


@router.get("/departments", response_model=list[schemas.DepartmentRead])
def departments(ctx: Ctx, actor: CurrentActor) -> list[schemas.DepartmentRead]:
    """The org tree (flat, with parent ids)."""
    return services.list_departments(ctx, actor)


@router.post("/departments", response_model=schemas.DepartmentRead, status_code=status.HTTP_201_CREATED)
def create_department(
    data: schemas.DepartmentCreate, ctx: Ctx, actor: CurrentActor
) -> schemas.DepartmentRead:
    """Add a department."""
    return services.create_department(ctx, actor, data)


@router.get("/departments/{dept_id}", response_model=schemas.DepartmentRead)
def department(dept_id: Id, ctx: Ctx, actor: CurrentActor) -> schemas.DepartmentRead:
    """One department."""
    return services.get_department(ctx, actor, dept_id)


@router.patch("/departments/{dept_id}", response_model=schemas.DepartmentRead)
def update_department(
    dept_id: Id, data: schemas.DepartmentUpdate, ctx: Ctx, actor: CurrentActor
) -> schemas.DepartmentRead:
    """Rename or move a department."""
    return services.update_department(ctx, actor, dept_id, data)


@router.delete("/departments/{dept_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_department(dept_id: Id, ctx: Ctx, actor: CurrentActor) -> None:
    """Delete an empty department."""
    services.delete_department(ctx, actor, dept_id)


@router.get("/users", response_model=schemas.Page[schemas.UserRead])
def users(
    ctx: Ctx,
    actor: CurrentActor,
    department_id: Annotated[int | None, Query(ge=1, le=schemas.MAX_INT)] = None,
    q: Annotated[str | None, Query(max_length=64)] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> schemas.Page[schemas.UserRead]:
    """Users in the departments the caller may see."""
    return services.list_users(ctx, actor, department_id=department_id, q=q, limit=limit, offset=offset)


@router.post("/users", response_model=schemas.UserRead, status_code=status.HTTP_201_CREATED)
def create_user(data: schemas.UserCreate, ctx: Ctx, actor: CurrentActor) -> schemas.UserRead:
    """Create a user."""
    return services.create_user(ctx, actor, data)


@router.get("/users/{user_id}", response_model=schemas.UserRead)
def user(user_id: Id, ctx: Ctx, actor: CurrentActor) -> schemas.UserRead:
    """One user."""
    return services.get_user(ctx, actor, user_id)


@router.patch("/users/{user_id}", response_model=schemas.UserRead)
def update_user(user_id: Id, data: schemas.UserUpdate, ctx: Ctx, actor: CurrentActor) -> schemas.UserRead:
    """Change a user."""
    return services.update_user(ctx, actor, user_id, data)


@router.delete("/users/{user_id}", response_model=schemas.UserRead)
def deactivate_user(user_id: Id, ctx: Ctx, actor: CurrentActor) -> schemas.UserRead:
    """Deactivate a user (accounts are never erased: the audit trail refers to them)."""
    return services.deactivate_user(ctx, actor, user_id)


@router.post("/users/{user_id}/password", status_code=status.HTTP_204_NO_CONTENT)
def reset_password(user_id: Id, data: schemas.PasswordSet, ctx: Ctx, actor: CurrentActor) -> None:
    """Set a user's password."""
    services.set_password(ctx, actor, user_id, data.password)


@router.post("/users/{user_id}/unlock", response_model=schemas.UserRead)
def unlock(user_id: Id, ctx: Ctx, actor: CurrentActor) -> schemas.UserRead:
    """Lift a sign-in lockout."""
    return services.unlock_user(ctx, actor, user_id)


@router.get("/users/{user_id}/roles", response_model=list[schemas.AssignmentRead])
def assignments(user_id: Id, ctx: Ctx, actor: CurrentActor) -> list[schemas.AssignmentRead]:
    """The roles a user holds, and where."""
    return services.list_assignments(ctx, actor, user_id)


@router.post(
    "/users/{user_id}/roles", response_model=schemas.AssignmentRead, status_code=status.HTTP_201_CREATED
)
def assign(
    user_id: Id, data: schemas.AssignmentCreate, ctx: Ctx, actor: CurrentActor
) -> schemas.AssignmentRead:
    """Grant a role to a user in a department (or city-wide)."""
    return services.assign_role(ctx, actor, user_id, data)


@router.delete("/users/{user_id}/roles/{assignment_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke(user_id: Id, assignment_id: Id, ctx: Ctx, actor: CurrentActor) -> None:
    """Take a role grant back."""
    services.revoke_assignment(ctx, actor, user_id, assignment_id)


@router.get("/roles", response_model=list[schemas.RoleRead])
def roles(ctx: Ctx, actor: CurrentActor) -> list[schemas.RoleRead]:
    """Every role."""
    return services.list_roles(ctx, actor)


@router.post("/roles", response_model=schemas.RoleRead, status_code=status.HTTP_201_CREATED)
def create_role(data: schemas.RoleCreate, ctx: Ctx, actor: CurrentActor) -> schemas.RoleRead:
    """Create a role."""
    return services.create_role(ctx, actor, data)


@router.get("/roles/{role_id}", response_model=schemas.RoleRead)
def role(role_id: Id, ctx: Ctx, actor: CurrentActor) -> schemas.RoleRead:
    """One role."""
    return services.get_role(ctx, actor, role_id)


@router.patch("/roles/{role_id}", response_model=schemas.RoleRead)
def update_role(role_id: Id, data: schemas.RoleUpdate, ctx: Ctx, actor: CurrentActor) -> schemas.RoleRead:
    """Change a role."""
    return services.update_role(ctx, actor, role_id, data)


@router.delete("/roles/{role_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_role(role_id: Id, ctx: Ctx, actor: CurrentActor) -> None:
    """Delete a role nobody holds."""
    services.delete_role(ctx, actor, role_id)


@router.get("/tokens", response_model=list[schemas.TokenRead])
def tokens(ctx: Ctx, actor: CurrentActor, everyone: bool = False) -> list[schemas.TokenRead]:
    """The caller's API tokens (or, with `everyone`, all the caller manages)."""
    return services.list_tokens(ctx, actor, everyone)


@router.post("/tokens", response_model=schemas.TokenCreated, status_code=status.HTTP_201_CREATED)
def create_token(data: schemas.TokenCreate, ctx: Ctx, actor: CurrentActor) -> schemas.TokenCreated:
    """Issue an API token; the secret is in this response only."""
    return services.create_token(ctx, actor, data)


@router.delete("/tokens/{token_id}", response_model=schemas.TokenRead)
def revoke_token(token_id: Id, ctx: Ctx, actor: CurrentActor) -> schemas.TokenRead:
    """Revoke an API token."""
    return services.revoke_token(ctx, actor, token_id)
