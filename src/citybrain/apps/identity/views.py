"""Identity pages under /identity: sign-in and the administration of departments, users, roles, tokens.

Views stay thin: parse the form, call one service, render. Services check every permission; a page
the actor may not see raises there and the kernel answers with the error page (403) or the sign-in
redirect (401). A failed form (a problem from a service or a pydantic validation error) re-renders the
form with a translated alert and a 4xx status; a successful POST redirects (303) with `?ok=<what>`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from citybrain.apps.identity import schemas, services
from citybrain.apps.identity.api import set_session_cookie
from citybrain.sdk import (
    SESSION_COOKIE,
    Actor,
    AllDepartments,
    AppContext,
    Ctx,
    CurrentActor,
    Forbidden,
    Locale,
    Permission,
    ProblemError,
    render,
    utcnow,
)

router = APIRouter()
PAGE_SIZE = 20
FormText = Annotated[str, Form(max_length=1000)]
Choices = Annotated[list[str] | None, Form()]
# Ids beyond the 32-bit id columns are refused (422) before any query, as the REST API does.
Id = Annotated[int, Path(ge=1, le=schemas.MAX_INT)]
FormError = ProblemError | ValidationError


def N_(message: str) -> str:  # noqa: N802 - the gettext convention for "mark only"
    """Mark a message for the catalogue without translating it here (translated where it is shown)."""
    return message


FIELD_LABELS = {
    "code": N_("Code"),
    "name_zh": N_("Chinese name"),
    "name_en": N_("English name"),
    "kind": N_("Kind"),
    "parent_id": N_("Parent department"),
    "sort": N_("Sort order"),
    "username": N_("Username"),
    "display_name": N_("Name"),
    "department_id": N_("Department"),
    "password": N_("Password"),
    "phone": N_("Phone"),
    "email": N_("E-mail"),
    "description": N_("Description"),
    "permissions": N_("Permissions"),
    "name": N_("Token name"),
    "scopes": N_("Scopes"),
    "expires_in_days": N_("Valid for (days)"),
    "role_id": N_("Role"),
}
VALIDATION_MESSAGES = {
    "missing": N_("{field} is required."),
    "string_too_short": N_("{field} needs at least {min_length} characters."),
    "string_too_long": N_("{field} allows at most {max_length} characters."),
    "string_pattern_mismatch": N_("{field} has a format that is not allowed."),
    "int_parsing": N_("{field} must be a whole number."),
    "int_type": N_("{field} must be a whole number."),
    "literal_error": N_("{field} is not one of the allowed values."),
    "too_short": N_("Choose at least one of {field}."),
    "too_long": N_("{field} has too many entries."),
    "greater_than_equal": N_("{field} must be at least {ge}."),
    "less_than_equal": N_("{field} must be at most {le}."),
}
DEPARTMENT_KINDS = {
    "municipal": N_("Municipal government"),
    "district": N_("District or county"),
    "department": N_("Department"),
    "office": N_("Office"),
}


# --- helpers -----------------------------------------------------------------------------------


def safe_next(target: str | None) -> str:
    """Only same-site paths are followed after sign-in."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def _blank_none(value: str | None) -> str | None:
    """A form field's value, or None when it was left empty."""
    text = (value or "").strip()
    return text or None


def _see_other(path: str, ok: str) -> RedirectResponse:
    """The redirect after a successful POST, carrying the success message's key."""
    sep = "&" if "?" in path else "?"
    return RedirectResponse(f"{path}{sep}ok={ok}", status_code=303)


def error_text(ctx: AppContext, locale: str, exc: FormError) -> str:
    """A failed form's reason in the reader's language."""
    if isinstance(exc, ProblemError):
        return ctx.i18n.gettext(locale, exc.detail, **exc.params)
    parts: list[str] = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        label = ctx.i18n.gettext(locale, FIELD_LABELS.get(field, field)) if field else ""
        details = dict(error.get("ctx") or {})
        if error["type"] == "value_error":
            # a validator's own reason (an English msgid from schemas.py)
            reason = ctx.i18n.gettext(locale, str(details.get("error") or error["msg"]))
            text = (
                ctx.i18n.gettext(locale, N_("{field}: {reason}"), field=label, reason=reason)
                if label
                else reason
            )
        else:
            kind = str(error["type"])
            if kind.endswith("_type") and error.get("input") is None:
                kind = "missing"  # an empty form field (None) where a value is needed
            template = VALIDATION_MESSAGES.get(kind, N_("{field} is invalid."))
            params = {key: value for key, value in details.items() if key not in ("pattern", "error")}
            text = ctx.i18n.gettext(
                locale, template, **params, field=label or ctx.i18n.gettext(locale, "Value")
            )
        parts.append(text)
    return " ".join(dict.fromkeys(parts))


def error_status(exc: FormError) -> int:
    """The HTTP status a failed form answers with (always a 4xx)."""
    return exc.status if isinstance(exc, ProblemError) else 422


def page(
    request: Request, ctx: AppContext, locale: str, template: str, status_code: int = 200, **values: Any
) -> HTMLResponse:
    """Render an identity page with the helpers its templates use (China time, localised names)."""
    zone = ZoneInfo(ctx.settings.timezone)

    def when(moment: datetime | None) -> str:
        """A timestamp in the platform's time zone (China Standard Time), to the minute."""
        if moment is None:
            return ""
        aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
        return aware.astimezone(zone).strftime("%Y-%m-%d %H:%M")

    def name_of(obj: Any) -> str:
        """An object's name in the reader's language (Chinese when there is no English one)."""
        zh, en = str(getattr(obj, "name_zh", "") or ""), str(getattr(obj, "name_en", "") or "")
        return (en or zh) if locale == "en" else (zh or en)

    response = render(
        request,
        template,
        status_code=status_code,
        when=when,
        name_of=name_of,
        now=utcnow(),
        kinds=DEPARTMENT_KINDS,
        **values,
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@dataclass(frozen=True)
class Tree:
    """The org tree as the pages show it: ordered rows with depth, children and names by id."""

    rows: list[tuple[schemas.DepartmentRead, int]]
    children: dict[int | None, list[schemas.DepartmentRead]]
    by_id: dict[int, schemas.DepartmentRead]

    def below(self, root: int) -> set[int]:
        """A department and every department under it."""
        found, stack = {root}, [root]
        while stack:
            for child in self.children.get(stack.pop(), []):
                found.add(child.id)
                stack.append(child.id)
        return found

    def where(self, allowed: Callable[[int], bool]) -> list[tuple[schemas.DepartmentRead, int]]:
        """The rows of the departments that pass a check (for the choices of a select)."""
        return [(dept, depth) for dept, depth in self.rows if allowed(dept.id)]


def build_tree(departments: Sequence[schemas.DepartmentRead]) -> Tree:
    """Arrange departments as a tree; one whose parent is not listed shows as a root."""
    by_id = {d.id: d for d in departments}
    children: dict[int | None, list[schemas.DepartmentRead]] = {}
    for dept in departments:
        children.setdefault(dept.parent_id if dept.parent_id in by_id else None, []).append(dept)
    rows: list[tuple[schemas.DepartmentRead, int]] = []
    stack: list[tuple[schemas.DepartmentRead, int]] = [(d, 0) for d in reversed(children.get(None, []))]
    while stack:
        dept, depth = stack.pop()
        rows.append((dept, depth))
        stack += [(child, depth + 1) for child in reversed(children.get(dept.id, []))]
    return Tree(rows=rows, children=children, by_id=by_id)


def visible_tree(ctx: AppContext, actor: Actor) -> Tree:
    """The org tree for names and choices; empty when the actor may not read departments."""
    try:
        return build_tree(services.list_departments(ctx, actor))
    except Forbidden:
        return build_tree([])


@dataclass(frozen=True)
class PermissionGroup:
    """An app's permissions as the forms show them: one row per thing, in the app's declared order."""

    title: str
    label: str
    rows: list[list[Permission]]


def permission_groups(ctx: AppContext, codes: Iterable[str]) -> list[PermissionGroup]:
    """The given permissions grouped under their app's title (app order), a row per thing."""
    wanted = set(codes)
    groups: list[PermissionGroup] = []
    for spec in ctx.apps:
        rows: dict[str, list[Permission]] = {}
        for code, perm in ctx.permissions.items():  # as the app declares them: read, create, ...
            if code in wanted and perm.label == spec.label:
                rows.setdefault(code.split(".")[1], []).append(perm)
        if rows:
            groups.append(PermissionGroup(spec.title, spec.label, list(rows.values())))
    return groups


# --- sign-in -----------------------------------------------------------------------------------


@router.get("/login")
def login_page(request: Request, next: str = "/") -> Response:
    """The sign-in form."""
    return render(request, "identity/login.html", next=safe_next(next), username="", error=None)


@router.post("/login")
def login_submit(
    request: Request,
    ctx: Ctx,
    locale: Locale,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=256)],
    next: Annotated[str, Form()] = "/",
) -> Response:
    """Check the credentials; on success set the session cookie and go on."""
    client = request.client.host if request.client else ""
    try:
        signed = services.login(ctx, username, password, client, request.headers.get("user-agent", ""))
    except ProblemError as exc:
        message = ctx.i18n.gettext(locale, exc.detail, **exc.params)
        return render(
            request,
            "identity/login.html",
            status_code=exc.status,
            next=safe_next(next),
            username=username,
            error=message,
        )
    response = RedirectResponse(safe_next(next), status_code=303)
    set_session_cookie(response, ctx, signed)
    return response


@router.post("/logout")
def logout(ctx: Ctx, actor: CurrentActor) -> Response:
    """Close the session and return to the home page."""
    services.logout(ctx, actor)
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# --- departments -------------------------------------------------------------------------------


def _departments_page(
    request: Request,
    ctx: AppContext,
    actor: Actor,
    locale: str,
    status_code: int = 200,
    error: str | None = None,
    form: dict[str, Any] | None = None,
) -> HTMLResponse:
    """The org tree with the form that adds a department."""
    tree = build_tree(services.list_departments(ctx, actor))
    city_wide = isinstance(actor.scope("identity.department.create"), AllDepartments)
    parents = tree.where(lambda dept_id: actor.can("identity.department.create", dept_id))
    return page(
        request,
        ctx,
        locale,
        "identity/departments.html",
        status_code,
        tree=tree,
        parents=parents,
        city_wide=city_wide,
        error=error,
        form=form or {"kind": "department", "sort": "0"},
    )


@router.get("/departments")
def departments(request: Request, ctx: Ctx, actor: CurrentActor, locale: Locale) -> Response:
    """The org tree and the form that adds a department."""
    return _departments_page(request, ctx, actor, locale)


@router.post("/departments")
def department_create(
    request: Request,
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    code: FormText = "",
    name_zh: FormText = "",
    name_en: FormText = "",
    kind: FormText = "department",
    parent_id: FormText = "",
    sort: FormText = "0",
) -> Response:
    """Add a department."""
    form = {
        "code": code,
        "name_zh": name_zh,
        "name_en": name_en,
        "kind": kind,
        "parent_id": parent_id,
        "sort": sort,
    }
    try:
        data = schemas.DepartmentCreate(
            code=code,
            name_zh=name_zh,
            name_en=name_en,
            kind=kind,
            parent_id=_blank_none(parent_id),
            sort=_blank_none(sort) or 0,
        )
        services.create_department(ctx, actor, data)
    except (ProblemError, ValidationError) as exc:
        return _departments_page(
            request, ctx, actor, locale, error_status(exc), error_text(ctx, locale, exc), form
        )
    return _see_other("/identity/departments", "created")


def _department_page(
    request: Request,
    ctx: AppContext,
    actor: Actor,
    locale: str,
    dept_id: int,
    status_code: int = 200,
    error: str | None = None,
    form: dict[str, Any] | None = None,
) -> HTMLResponse:
    """One department's edit form."""
    dept = services.get_department(ctx, actor, dept_id)
    tree = visible_tree(ctx, actor)
    below = tree.below(dept.id)
    parents = tree.where(lambda other: other not in below)
    values = form or {
        "name_zh": dept.name_zh,
        "name_en": dept.name_en,
        "kind": dept.kind,
        "parent_id": str(dept.parent_id or ""),
        "sort": str(dept.sort),
    }
    return page(
        request,
        ctx,
        locale,
        "identity/department_edit.html",
        status_code,
        dept=dept,
        tree=tree,
        parents=parents,
        error=error,
        form=values,
    )


@router.get("/departments/{dept_id}")
def department_edit(dept_id: Id, request: Request, ctx: Ctx, actor: CurrentActor, locale: Locale) -> Response:
    """A department's edit form (name, parent, kind, order)."""
    return _department_page(request, ctx, actor, locale, dept_id)


@router.post("/departments/{dept_id}")
def department_update(
    dept_id: Id,
    request: Request,
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    name_zh: FormText = "",
    name_en: FormText = "",
    kind: FormText = "department",
    parent_id: FormText = "",
    sort: FormText = "0",
) -> Response:
    """Rename or move a department."""
    form = {"name_zh": name_zh, "name_en": name_en, "kind": kind, "parent_id": parent_id, "sort": sort}
    try:
        data = schemas.DepartmentUpdate(
            name_zh=name_zh,
            name_en=name_en,
            kind=kind,
            parent_id=_blank_none(parent_id),
            sort=_blank_none(sort) or 0,
        )
        services.update_department(ctx, actor, dept_id, data)
    except (ProblemError, ValidationError) as exc:
        return _department_page(
            request, ctx, actor, locale, dept_id, error_status(exc), error_text(ctx, locale, exc), form
        )
    return _see_other("/identity/departments", "updated")


def _confirm(
    request: Request, ctx: AppContext, locale: str, status_code: int = 200, **values: Any
) -> Response:
    """The page that asks before something is deleted or deactivated."""
    return page(request, ctx, locale, "identity/confirm.html", status_code, **values)


@router.get("/departments/{dept_id}/delete")
def department_delete_confirm(
    dept_id: Id, request: Request, ctx: Ctx, actor: CurrentActor, locale: Locale
) -> Response:
    """Ask before deleting a department."""
    dept = services.get_department(ctx, actor, dept_id)
    return _confirm(
        request,
        ctx,
        locale,
        kind="department",
        subject=dept,
        action=f"/identity/departments/{dept.id}/delete",
        back="/identity/departments",
    )


@router.post("/departments/{dept_id}/delete")
def department_delete(
    dept_id: Id, request: Request, ctx: Ctx, actor: CurrentActor, locale: Locale
) -> Response:
    """Delete an empty department."""
    try:
        services.delete_department(ctx, actor, dept_id)
    except ProblemError as exc:
        dept = services.get_department(ctx, actor, dept_id)
        return _confirm(
            request,
            ctx,
            locale,
            error_status(exc),
            kind="department",
            subject=dept,
            action=f"/identity/departments/{dept.id}/delete",
            back="/identity/departments",
            error=error_text(ctx, locale, exc),
        )
    return _see_other("/identity/departments", "deleted")


# --- users -------------------------------------------------------------------------------------


@router.get("/users")
def users(
    request: Request,
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    department_id: Annotated[str, Query(max_length=12)] = "",
    q: Annotated[str, Query(max_length=64)] = "",
    page_no: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1,
) -> Response:
    """Users in the departments the actor may see, filtered by department and a search, in pages."""
    given = department_id.strip()
    dept_filter = int(given) if given.isdigit() and 0 < int(given) <= schemas.MAX_INT else None
    result = services.list_users(
        ctx,
        actor,
        department_id=dept_filter,
        q=q.strip() or None,
        limit=PAGE_SIZE,
        offset=(page_no - 1) * PAGE_SIZE,
    )
    tree = visible_tree(ctx, actor)
    filters = {k: v for k, v in (("department_id", dept_filter), ("q", q.strip())) if v}
    pages = max(1, -(-result.total // PAGE_SIZE))

    def page_url(number: int) -> str:
        """The list's URL at another page, filters kept."""
        return "/identity/users?" + urlencode({**filters, "page": number})

    return page(
        request,
        ctx,
        locale,
        "identity/users.html",
        result=result,
        tree=tree,
        q=q.strip(),
        department_id=dept_filter,
        page_no=page_no,
        pages=pages,
        page_url=page_url,
    )


def _user_new_page(
    request: Request,
    ctx: AppContext,
    actor: Actor,
    locale: str,
    status_code: int = 200,
    error: str | None = None,
    form: dict[str, Any] | None = None,
) -> HTMLResponse:
    """The form that creates a user."""
    actor.require("identity.user.create")
    tree = visible_tree(ctx, actor)
    choices = tree.where(lambda dept_id: actor.can("identity.user.create", dept_id))
    return page(
        request,
        ctx,
        locale,
        "identity/user_new.html",
        status_code,
        choices=choices,
        error=error,
        form=form or {},
    )


@router.get("/users/new")
def user_new(request: Request, ctx: Ctx, actor: CurrentActor, locale: Locale) -> Response:
    """The form that creates a user."""
    return _user_new_page(request, ctx, actor, locale)


@router.post("/users")
def user_create(
    request: Request,
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    username: FormText = "",
    display_name: FormText = "",
    department_id: FormText = "",
    password: FormText = "",
    phone: FormText = "",
    email: FormText = "",
) -> Response:
    """Create a user, then show them."""
    form = {
        "username": username,
        "display_name": display_name,
        "department_id": department_id,
        "phone": phone,
        "email": email,
    }
    try:
        data = schemas.UserCreate(
            username=username,
            display_name=display_name,
            department_id=_blank_none(department_id),
            password=password,
            phone=_blank_none(phone),
            email=_blank_none(email),
        )
        created = services.create_user(ctx, actor, data)
    except (ProblemError, ValidationError) as exc:
        return _user_new_page(
            request, ctx, actor, locale, error_status(exc), error_text(ctx, locale, exc), form
        )
    return _see_other(f"/identity/users/{created.id}", "created")


def _user_page(
    request: Request,
    ctx: AppContext,
    actor: Actor,
    locale: str,
    user_id: int,
    status_code: int = 200,
    error: str | None = None,
    form: dict[str, Any] | None = None,
) -> HTMLResponse:
    """A user's details, edit forms and the roles they hold."""
    user = services.get_user(ctx, actor, user_id)
    assignments = services.list_assignments(ctx, actor, user_id)
    tree = visible_tree(ctx, actor)
    try:
        roles = services.list_roles(ctx, actor)
    except Forbidden:
        roles = []
    grant_choices = tree.where(lambda dept_id: actor.can("identity.role.assign", dept_id))
    move_choices = tree.where(lambda dept_id: actor.can("identity.user.update", dept_id))
    return page(
        request,
        ctx,
        locale,
        "identity/user_detail.html",
        status_code,
        user=user,
        assignments=assignments,
        roles={r.id: r for r in roles},
        tree=tree,
        grant_choices=grant_choices,
        move_choices=move_choices,
        grant_city_wide=isinstance(actor.scope("identity.role.assign"), AllDepartments),
        is_self=user.id == actor.id,
        error=error,
        form=form or {"display_name": user.display_name, "department_id": str(user.department_id)},
    )


@router.get("/users/{user_id}")
def user_detail(user_id: Id, request: Request, ctx: Ctx, actor: CurrentActor, locale: Locale) -> Response:
    """A user's details, edit forms and the roles they hold."""
    return _user_page(request, ctx, actor, locale, user_id)


@router.post("/users/{user_id}")
def user_update(
    user_id: Id,
    request: Request,
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    display_name: FormText = "",
    department_id: FormText = "",
    phone: FormText = "",
    email: FormText = "",
) -> Response:
    """Change a user's name, department and (when given) phone and e-mail."""
    form = {"display_name": display_name, "department_id": department_id, "phone": phone, "email": email}
    changes: dict[str, Any] = {"display_name": display_name}
    given = (("department_id", department_id), ("phone", phone), ("email", email))
    changes |= {key: value.strip() for key, value in given if value.strip()}
    try:
        services.update_user(ctx, actor, user_id, schemas.UserUpdate(**changes))
    except (ProblemError, ValidationError) as exc:
        return _user_page(
            request, ctx, actor, locale, user_id, error_status(exc), error_text(ctx, locale, exc), form
        )
    return _see_other(f"/identity/users/{user_id}", "updated")


@router.post("/users/{user_id}/password")
def user_password(
    user_id: Id, request: Request, ctx: Ctx, actor: CurrentActor, locale: Locale, password: FormText = ""
) -> Response:
    """Reset a user's password."""
    try:
        data = schemas.PasswordSet(password=password)
        services.set_password(ctx, actor, user_id, data.password)
    except (ProblemError, ValidationError) as exc:
        return _user_page(
            request, ctx, actor, locale, user_id, error_status(exc), error_text(ctx, locale, exc)
        )
    return _see_other(f"/identity/users/{user_id}", "password")


@router.post("/users/{user_id}/unlock")
def user_unlock(user_id: Id, request: Request, ctx: Ctx, actor: CurrentActor, locale: Locale) -> Response:
    """Lift a sign-in lockout."""
    try:
        services.unlock_user(ctx, actor, user_id)
    except ProblemError as exc:
        return _user_page(
            request, ctx, actor, locale, user_id, error_status(exc), error_text(ctx, locale, exc)
        )
    return _see_other(f"/identity/users/{user_id}", "unlocked")


@router.post("/users/{user_id}/activate")
def user_activate(user_id: Id, request: Request, ctx: Ctx, actor: CurrentActor, locale: Locale) -> Response:
    """Reactivate a deactivated user."""
    try:
        services.update_user(ctx, actor, user_id, schemas.UserUpdate(is_active=True))
    except ProblemError as exc:
        return _user_page(
            request, ctx, actor, locale, user_id, error_status(exc), error_text(ctx, locale, exc)
        )
    return _see_other(f"/identity/users/{user_id}", "activated")


@router.get("/users/{user_id}/deactivate")
def user_deactivate_confirm(
    user_id: Id, request: Request, ctx: Ctx, actor: CurrentActor, locale: Locale
) -> Response:
    """Ask before deactivating a user."""
    user = services.get_user(ctx, actor, user_id)
    return _confirm(
        request,
        ctx,
        locale,
        kind="user",
        subject=user,
        action=f"/identity/users/{user.id}/deactivate",
        back=f"/identity/users/{user.id}",
    )


@router.post("/users/{user_id}/deactivate")
def user_deactivate(user_id: Id, request: Request, ctx: Ctx, actor: CurrentActor, locale: Locale) -> Response:
    """Deactivate a user and close their sessions."""
    try:
        services.deactivate_user(ctx, actor, user_id)
    except ProblemError as exc:
        return _user_page(
            request, ctx, actor, locale, user_id, error_status(exc), error_text(ctx, locale, exc)
        )
    return _see_other(f"/identity/users/{user_id}", "deactivated")


@router.post("/users/{user_id}/roles")
def user_grant(
    user_id: Id,
    request: Request,
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    role_id: FormText = "",
    department_id: FormText = "",
    include_subtree: FormText = "",
) -> Response:
    """Grant a role in a department (or city-wide)."""
    try:
        data = schemas.AssignmentCreate(
            role_id=_blank_none(role_id),
            department_id=_blank_none(department_id),
            include_subtree=bool(include_subtree),
        )
        services.assign_role(ctx, actor, user_id, data)
    except (ProblemError, ValidationError) as exc:
        return _user_page(
            request, ctx, actor, locale, user_id, error_status(exc), error_text(ctx, locale, exc)
        )
    return _see_other(f"/identity/users/{user_id}", "granted")


@router.post("/users/{user_id}/roles/{assignment_id}/revoke")
def user_revoke(
    user_id: Id, assignment_id: Id, request: Request, ctx: Ctx, actor: CurrentActor, locale: Locale
) -> Response:
    """Take a role grant back."""
    try:
        services.revoke_assignment(ctx, actor, user_id, assignment_id)
    except ProblemError as exc:
        return _user_page(
            request, ctx, actor, locale, user_id, error_status(exc), error_text(ctx, locale, exc)
        )
    return _see_other(f"/identity/users/{user_id}", "revoked")


# --- roles -------------------------------------------------------------------------------------


@router.get("/roles")
def roles(request: Request, ctx: Ctx, actor: CurrentActor, locale: Locale) -> Response:
    """Every role with how many permissions it carries."""
    items = services.list_roles(ctx, actor)
    counts = {r.id: len(services.expand_permissions(r.permissions, ctx.permissions)) for r in items}
    return page(
        request, ctx, locale, "identity/roles.html", roles=items, counts=counts, total=len(ctx.permissions)
    )


def _role_page(
    request: Request,
    ctx: AppContext,
    actor: Actor,
    locale: str,
    role: schemas.RoleRead | None,
    status_code: int = 200,
    error: str | None = None,
    form: dict[str, Any] | None = None,
) -> HTMLResponse:
    """The form that creates or edits a role, with the permissions grouped by app."""
    perms = services.list_permissions(ctx, actor)
    if form is None:
        patterns = role.permissions if role else []
        form = {
            "code": role.code if role else "",
            "name_zh": role.name_zh if role else "",
            "name_en": role.name_en if role else "",
            "description": role.description if role else "",
            "permissions": services.expand_permissions(patterns, ctx.permissions),
            "wildcards": {p for p in patterns if p.endswith("*")},
        }
    return page(
        request,
        ctx,
        locale,
        "identity/role_form.html",
        status_code,
        role=role,
        error=error,
        form=form,
        groups=permission_groups(ctx, (p.code for p in perms)),
    )


@router.get("/roles/new")
def role_new(request: Request, ctx: Ctx, actor: CurrentActor, locale: Locale) -> Response:
    """The form that creates a role."""
    actor.require("identity.role.create")
    return _role_page(request, ctx, actor, locale, None)


def _role_form(
    code: str, name_zh: str, name_en: str, description: str, permissions: list[str] | None
) -> dict[str, Any]:
    """The submitted role form, kept to fill the form again after an error."""
    chosen = permissions or []
    return {
        "code": code,
        "name_zh": name_zh,
        "name_en": name_en,
        "description": description,
        "permissions": {p for p in chosen if not p.endswith("*")},
        "wildcards": {p for p in chosen if p.endswith("*")},
    }


@router.post("/roles")
def role_create(
    request: Request,
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    code: FormText = "",
    name_zh: FormText = "",
    name_en: FormText = "",
    description: FormText = "",
    permissions: Choices = None,
) -> Response:
    """Create a role."""
    try:
        data = schemas.RoleCreate(
            code=code,
            name_zh=name_zh,
            name_en=name_en,
            description=description,
            permissions=permissions or [],
        )
        created = services.create_role(ctx, actor, data)
    except (ProblemError, ValidationError) as exc:
        return _role_page(
            request,
            ctx,
            actor,
            locale,
            None,
            error_status(exc),
            error_text(ctx, locale, exc),
            _role_form(code, name_zh, name_en, description, permissions),
        )
    return _see_other(f"/identity/roles/{created.id}", "created")


@router.get("/roles/{role_id}")
def role_edit(role_id: Id, request: Request, ctx: Ctx, actor: CurrentActor, locale: Locale) -> Response:
    """A role's edit form."""
    return _role_page(request, ctx, actor, locale, services.get_role(ctx, actor, role_id))


@router.post("/roles/{role_id}")
def role_update(
    role_id: Id,
    request: Request,
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    name_zh: FormText = "",
    name_en: FormText = "",
    description: FormText = "",
    permissions: Choices = None,
    edit_permissions: FormText = "",
) -> Response:
    """Change a role's names, description and (unless built in) permissions."""
    changes: dict[str, Any] = {"name_zh": name_zh, "name_en": name_en, "description": description}
    if edit_permissions:
        changes["permissions"] = permissions or []
    try:
        services.update_role(ctx, actor, role_id, schemas.RoleUpdate(**changes))
    except (ProblemError, ValidationError) as exc:
        role = services.get_role(ctx, actor, role_id)
        form = _role_form(role.code, name_zh, name_en, description, permissions if edit_permissions else None)
        if not edit_permissions:
            form |= {
                "permissions": services.expand_permissions(role.permissions, ctx.permissions),
                "wildcards": {p for p in role.permissions if p.endswith("*")},
            }
        return _role_page(
            request, ctx, actor, locale, role, error_status(exc), error_text(ctx, locale, exc), form
        )
    return _see_other(f"/identity/roles/{role_id}", "updated")


@router.get("/roles/{role_id}/delete")
def role_delete_confirm(
    role_id: Id, request: Request, ctx: Ctx, actor: CurrentActor, locale: Locale
) -> Response:
    """Ask before deleting a role."""
    role = services.get_role(ctx, actor, role_id)
    return _confirm(
        request,
        ctx,
        locale,
        kind="role",
        subject=role,
        action=f"/identity/roles/{role.id}/delete",
        back="/identity/roles",
    )


@router.post("/roles/{role_id}/delete")
def role_delete(role_id: Id, request: Request, ctx: Ctx, actor: CurrentActor, locale: Locale) -> Response:
    """Delete a role nobody holds."""
    try:
        services.delete_role(ctx, actor, role_id)
    except ProblemError as exc:
        role = services.get_role(ctx, actor, role_id)
        return _confirm(
            request,
            ctx,
            locale,
            error_status(exc),
            kind="role",
            subject=role,
            action=f"/identity/roles/{role.id}/delete",
            back="/identity/roles",
            error=error_text(ctx, locale, exc),
        )
    return _see_other("/identity/roles", "deleted")


# --- API tokens --------------------------------------------------------------------------------


def _tokens_page(
    request: Request,
    ctx: AppContext,
    actor: Actor,
    locale: str,
    status_code: int = 200,
    error: str | None = None,
    form: dict[str, Any] | None = None,
    created: schemas.TokenCreated | None = None,
) -> HTMLResponse:
    """The actor's own tokens, the form that issues one, and a fresh token's secret (shown once)."""
    tokens = services.list_tokens(ctx, actor)
    held = [code for code in ctx.permissions if actor.can(code)]
    return page(
        request,
        ctx,
        locale,
        "identity/tokens.html",
        status_code,
        tokens=tokens,
        created=created,
        permissions=ctx.permissions,
        groups=permission_groups(ctx, held),
        error=error,
        form=form or {"name": "", "expires_in_days": "90", "scopes": set()},
    )


@router.get("/tokens")
def tokens(request: Request, ctx: Ctx, actor: CurrentActor, locale: Locale) -> Response:
    """The actor's own API tokens and the form that issues one."""
    return _tokens_page(request, ctx, actor, locale)


@router.post("/tokens")
def token_create(
    request: Request,
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    name: FormText = "",
    expires_in_days: FormText = "90",
    scopes: Choices = None,
) -> Response:
    """Issue a token and show its secret this once (no redirect: the secret never enters a URL)."""
    form = {"name": name, "expires_in_days": expires_in_days, "scopes": set(scopes or [])}
    try:
        data = schemas.TokenCreate(
            name=name, scopes=scopes or [], expires_in_days=_blank_none(expires_in_days) or 90
        )
        created = services.create_token(ctx, actor, data)
    except (ProblemError, ValidationError) as exc:
        return _tokens_page(
            request, ctx, actor, locale, error_status(exc), error_text(ctx, locale, exc), form
        )
    return _tokens_page(request, ctx, actor, locale, 201, created=created)


@router.post("/tokens/{token_id}/revoke")
def token_revoke(token_id: Id, request: Request, ctx: Ctx, actor: CurrentActor, locale: Locale) -> Response:
    """Revoke one of the actor's tokens."""
    try:
        services.revoke_token(ctx, actor, token_id)
    except ProblemError as exc:
        return _tokens_page(request, ctx, actor, locale, error_status(exc), error_text(ctx, locale, exc))
    return _see_other("/identity/tokens", "revoked")
