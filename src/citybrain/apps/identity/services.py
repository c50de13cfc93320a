"""Identity services: sign-in, sessions, tokens, the org tree, users, roles and grants."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from citybrain.apps.identity import schemas
from citybrain.apps.identity.events import AccountLocked, UserCreated
from citybrain.apps.identity.models import ApiToken, Department, LoginSession, Role, RoleAssignment, User
from citybrain.apps.identity.settings import IdentitySettings
from citybrain.sdk import (
    ALL,
    ANONYMOUS,
    Actor,
    AllDepartments,
    AppContext,
    Conflict,
    ExpiringCache,
    Forbidden,
    Locked,
    NotFound,
    Scope,
    Unauthorized,
    UnitOfWork,
    ValidationFailed,
    mask_email,
    mask_phone,
    merge_grants,
    utcnow,
)

TOKEN_PREFIX = "cbt_"  # noqa: S105 - a prefix, not a secret
TOKEN_CACHE = "identity.token_cache"  # noqa: S105 - a key of ctx.extensions, not a secret
# A hash of a random password, verified when the username is unknown so timing does not reveal it.
_DUMMY_PASSWORD = "citybrain-timing-equaliser"  # noqa: S105


def _hasher(ctx: AppContext) -> PasswordHasher:
    """The argon2id hasher with the configured costs (by default RFC 9106's low-memory profile)."""
    conf = ctx.app_setting("identity", IdentitySettings)
    return PasswordHasher(
        time_cost=conf.argon2_time_cost,
        memory_cost=conf.argon2_memory_kib,
        parallelism=conf.argon2_parallelism,
    )


def hash_password(ctx: AppContext, password: str) -> str:
    """Hash a password with argon2id."""
    return _hasher(ctx).hash(password)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --- the org tree and grants -------------------------------------------------------------------


def children_map(session: Session) -> dict[int | None, list[int]]:
    """Each department's direct children (key None: the roots)."""
    tree: dict[int | None, list[int]] = {}
    for dept_id, parent_id in session.execute(select(Department.id, Department.parent_id)):
        tree.setdefault(parent_id, []).append(dept_id)
    return tree


def descendants(tree: Mapping[int | None, list[int]], root: int) -> frozenset[int]:
    """A department and every department below it."""
    found, stack = {root}, [root]
    while stack:
        for child in tree.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return frozenset(found)


def expand_permissions(patterns: Iterable[str], known: Iterable[str]) -> set[str]:
    """Expand `*` and `<label>.*` against the declared permissions; unknown codes are dropped."""
    known_set = set(known)
    result: set[str] = set()
    for pattern in patterns:
        if pattern == "*":
            return known_set
        if pattern.endswith(".*"):
            prefix = pattern[:-1]
            result |= {code for code in known_set if code.startswith(prefix)}
        elif pattern in known_set:
            result.add(pattern)
    return result


def check_permission_patterns(ctx: AppContext, patterns: Iterable[str]) -> list[str]:
    """Refuse patterns that name no declared permission (422 naming them)."""
    labels = {spec.label for spec in ctx.apps}
    patterns = list(patterns)
    bad = [
        p
        for p in patterns
        if not (
            p == "*"
            or (p.endswith(".*") and p[:-2] in labels)
            or p in ctx.permissions
            # `<label>.<thing>.*`, as the built-in department_admin role uses
            or (p.endswith(".*") and p.count(".") == 2 and expand_permissions([p], ctx.permissions))
        )
    ]
    if bad:
        raise ValidationFailed("Unknown permission(s): {names}.", names=", ".join(bad))
    return sorted(set(patterns))


def grants_for_user(ctx: AppContext, session: Session, user_id: int) -> dict[str, Scope]:
    """Every permission the user holds and the departments it covers."""
    rows = session.execute(
        select(RoleAssignment, Role)
        .join(Role, Role.id == RoleAssignment.role_id)
        .where(RoleAssignment.user_id == user_id)
    ).all()
    if not rows:
        return {}
    tree = children_map(session)
    pairs: list[tuple[str, Scope]] = []
    for assignment, role in rows:
        scope: Scope
        if assignment.department_id is None:
            scope = ALL
        elif assignment.include_subtree:
            scope = descendants(tree, assignment.department_id)
        else:
            scope = frozenset({assignment.department_id})
        pairs += [(code, scope) for code in expand_permissions(role.permissions, ctx.permissions)]
    return merge_grants(pairs)


def _covers(have: Scope, need: Scope) -> bool:
    """Whether a scope includes every department of another."""
    if isinstance(have, AllDepartments):
        return True
    return not isinstance(need, AllDepartments) and need <= have


def _require_outranks(ctx: AppContext, session: Session, actor: Actor, user: User) -> None:
    """Refuse changing an account that holds a permission beyond the actor's reach (no takeover)."""
    for code, scope in sorted(grants_for_user(ctx, session, user.id).items()):
        if not _covers(actor.scope(code), scope):
            raise Forbidden(
                "{username} holds {permission} beyond the departments where you hold it.",
                username=user.username,
                permission=code,
            )


def actor_for(ctx: AppContext, session: Session, user: User, **extra: Any) -> Actor:
    """The actor of a user, with the grants of all their roles."""
    return Actor(
        kind="user",
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        department_id=user.department_id,
        grants=grants_for_user(ctx, session, user.id),
        **extra,
    )


# --- sign-in, sessions, tokens -----------------------------------------------------------------


@dataclass(frozen=True)
class SignedIn:
    """A successful sign-in: the cookie value (shown once) and the user."""

    cookie: str
    user: schemas.UserRead
    expires_at: datetime


def login(ctx: AppContext, username: str, password: str, ip: str = "", user_agent: str = "") -> SignedIn:
    """Check credentials; count failures and lock the account after too many; open a session."""
    settings = ctx.settings
    hasher = _hasher(ctx)
    now = utcnow()
    with ctx.read() as session:
        # usernames are unique regardless of case (see create_user), so sign-in ignores case too
        user = session.scalar(select(User).where(func.lower(User.username) == username.lower()))
    if user is None or not user.is_active or not user.password_hash:
        hasher.hash(_DUMMY_PASSWORD)  # same cost as a real verification
        raise Unauthorized("Wrong username or password.")
    if user.locked_until is not None and user.locked_until > now:
        raise Locked(
            "The account is locked after repeated failed sign-ins; try again after {until}.",
            until=_local(ctx, user.locked_until),
        )
    try:
        hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        _record_failure(ctx, user.id)
        raise Unauthorized("Wrong username or password.") from None
    cookie = secrets.token_urlsafe(32)
    expires_at = now + timedelta(hours=settings.session_hours)
    actor = Actor(kind="user", id=user.id, username=user.username)
    with ctx.uow(actor, "identity.session.create") as uow:
        fresh = uow.session.get_one(User, user.id)
        fresh.failed_logins = 0
        fresh.locked_until = None
        fresh.last_login_at = now
        if hasher.check_needs_rehash(fresh.password_hash):
            fresh.password_hash = hasher.hash(password)
        uow.session.add(
            LoginSession(
                user_id=user.id,
                token_hash=_sha256(cookie),
                created_at=now,
                expires_at=expires_at,
                ip=ip[:64],
                user_agent=user_agent[:300],
            )
        )
        read = user_read(fresh)
    return SignedIn(cookie=cookie, user=read, expires_at=expires_at)


def _record_failure(ctx: AppContext, user_id: int) -> None:
    """Count a failed sign-in; lock the account when the limit is reached."""
    settings = ctx.settings
    with ctx.uow(ANONYMOUS, "identity.session.fail") as uow:
        user = uow.session.get_one(User, user_id)
        user.failed_logins += 1
        if user.failed_logins >= settings.login_max_failures:
            user.locked_until = utcnow() + timedelta(minutes=settings.login_lockout_minutes)
            user.failed_logins = 0
            uow.emit(
                AccountLocked(
                    user_id=user.id, username=user.username, locked_until=user.locked_until.isoformat()
                )
            )


def _local(ctx: AppContext, moment: datetime) -> str:
    """A time in the platform's time zone, to the minute."""
    from zoneinfo import ZoneInfo

    return moment.astimezone(ZoneInfo(ctx.settings.timezone)).strftime("%Y-%m-%d %H:%M")


def logout(ctx: AppContext, actor: Actor) -> None:
    """Close the actor's browser session."""
    if actor.session_id is None:
        return
    with ctx.uow(actor, "identity.session.revoke") as uow:
        row = uow.session.get(LoginSession, actor.session_id)
        if row is not None and row.revoked_at is None:
            row.revoked_at = utcnow()


def authenticate_cookie(ctx: AppContext, cookie: str) -> Actor | None:
    """The actor of a live session cookie, or None."""
    now = utcnow()
    with ctx.read() as session:
        row = session.execute(
            select(LoginSession, User)
            .join(User, User.id == LoginSession.user_id)
            .where(LoginSession.token_hash == _sha256(cookie))
        ).first()
        if row is None:
            return None
        login_session, user = row
        if login_session.revoked_at is not None or login_session.expires_at <= now or not user.is_active:
            return None
        return actor_for(ctx, session, user, session_id=login_session.id)


class TokenCache(ExpiringCache[str, Actor, datetime]):
    """Actors of API tokens checked recently, by the SHA-256 of the whole token; only good tokens enter."""

    def __init__(self) -> None:
        """Start empty; at most 10,000 tokens."""
        super().__init__(max_entries=10_000)


def token_cache(ctx: AppContext) -> TokenCache:
    """This process's token cache of the platform instance."""
    cache: TokenCache | None = ctx.extensions.get(TOKEN_CACHE)
    if cache is None:
        cache = ctx.extensions.setdefault(TOKEN_CACHE, TokenCache())
    return cache


@contextmanager
def _access_change(ctx: AppContext, actor: Actor, action: str) -> Iterator[UnitOfWork]:
    """A unit of work that changes who may do what: the token cache is cleared once it has ended."""
    try:
        with ctx.uow(actor, action) as uow:
            yield uow
    finally:
        token_cache(ctx).clear()


def recall_bearer(ctx: AppContext, value: str) -> Actor | None:
    """The actor of an API token checked within the last few seconds (no I/O); None when not cached."""
    return token_cache(ctx).get(_sha256(value), utcnow())


def authenticate_bearer(ctx: AppContext, value: str) -> Actor | None:
    """The actor of a valid API token (`cbt_<id>_<secret>`), limited to the token's scopes."""
    if not value.startswith(TOKEN_PREFIX):
        return None
    token_id_text, _, secret = value[len(TOKEN_PREFIX) :].partition("_")
    # ASCII digits of an id the 32-bit column can hold (a larger number would fail in the database)
    if not (token_id_text.isascii() and token_id_text.isdigit()) or not secret or len(token_id_text) > 10:
        return None
    if int(token_id_text) > schemas.MAX_INT:
        return None
    cache, key, now = token_cache(ctx), _sha256(value), utcnow()
    actor = cache.get(key, now)
    if actor is not None:
        return actor
    generation = cache.generation
    found = _check_token(ctx, int(token_id_text), secret, now)
    if found is None:
        return None
    actor, expires_at = found
    seconds = ctx.app_setting("identity", IdentitySettings).token_cache_seconds
    if seconds > 0:
        cache.put(key, actor, min(now + timedelta(seconds=seconds), expires_at), generation)
    return actor


def _check_token(ctx: AppContext, token_id: int, secret: str, now: datetime) -> tuple[Actor, datetime] | None:
    """Look a token up in the database: its actor and expiry, or None when it is not valid now."""
    with ctx.read() as session:
        token = session.get(ApiToken, token_id)
        if token is None or not hmac.compare_digest(token.secret_hash, _sha256(secret)):
            return None
        if token.revoked_at is not None or token.expires_at <= now:
            return None
        owner = session.get(User, token.user_id)
        if owner is None or not owner.is_active:
            return None
        grants = grants_for_user(ctx, session, owner.id)
        allowed = expand_permissions(token.scopes, ctx.permissions)
        scoped = {code: scope for code, scope in grants.items() if code in allowed}
        stale = token.last_used_at is None or now - token.last_used_at > timedelta(minutes=10)
    if stale:
        actor = Actor(kind="token", id=owner.id, token_id=token.id)
        with ctx.uow(actor, "identity.token.use") as uow:
            uow.session.get_one(ApiToken, token.id).last_used_at = now
    found = Actor(
        kind="token",
        id=owner.id,
        username=owner.username,
        display_name=token.name,
        department_id=owner.department_id,
        grants=scoped,
        token_id=token.id,
    )
    return found, token.expires_at


def create_token(ctx: AppContext, actor: Actor, data: schemas.TokenCreate) -> schemas.TokenCreated:
    """Issue a token for the actor (or, with `identity.token.manage`, for another user)."""
    actor.require("identity.token.create")
    scopes = check_permission_patterns(ctx, data.scopes)
    with ctx.uow(actor, "identity.token.create") as uow:
        owner_id = data.user_id or actor.id
        owner = uow.session.get(User, owner_id) if owner_id else None
        if owner is None:
            raise NotFound("No user {id}.", id=owner_id)
        if owner.id != actor.id:
            actor.require("identity.token.manage", owner.department_id)
        owner_grants = grants_for_user(ctx, uow.session, owner.id)
        wanted = expand_permissions(scopes, ctx.permissions)
        for code in (c for c in ctx.permissions if c in wanted):  # declaration order: a stable message
            # the actor must hold each permission wherever the owner does, or the token widens the actor
            if code not in owner_grants or not _covers(actor.scope(code), owner_grants[code]):
                raise Forbidden(
                    "A token cannot carry {permission}, which its owner or you do not hold.", permission=code
                )
        secret = secrets.token_urlsafe(32)
        token = ApiToken(
            user_id=owner.id,
            name=data.name,
            secret_hash=_sha256(secret),
            scopes=scopes,
            expires_at=utcnow() + timedelta(days=data.expires_in_days),
            created_by=actor.id,
        )
        uow.session.add(token)
        uow.session.flush()
        read = schemas.TokenRead.model_validate(token)
    return schemas.TokenCreated(**read.model_dump(), token=f"{TOKEN_PREFIX}{token.id}_{secret}")


def list_tokens(ctx: AppContext, actor: Actor, everyone: bool = False) -> list[schemas.TokenRead]:
    """The actor's own tokens, or every token the actor may manage."""
    actor.require("identity.token.create")
    with ctx.read() as session:
        stmt = select(ApiToken).order_by(ApiToken.id.desc())
        if everyone:
            scope = actor.visible_departments("identity.token.manage")
            if not isinstance(scope, AllDepartments):
                stmt = stmt.join(User, User.id == ApiToken.user_id).where(User.department_id.in_(scope))
        else:
            stmt = stmt.where(ApiToken.user_id == actor.id)
        return [schemas.TokenRead.model_validate(t) for t in session.scalars(stmt)]


def revoke_token(ctx: AppContext, actor: Actor, token_id: int) -> schemas.TokenRead:
    """Revoke a token at once; the owner or a manager of the owner's department may."""
    actor.require("identity.token.create")
    with _access_change(ctx, actor, "identity.token.revoke") as uow:
        token = uow.session.get(ApiToken, token_id)
        if token is None:
            raise NotFound("No API token {id}.", id=token_id)
        if token.user_id != actor.id:
            owner = uow.session.get_one(User, token.user_id)
            if not actor.can("identity.token.manage", owner.department_id):
                raise NotFound("No API token {id}.", id=token_id)
        if token.revoked_at is None:
            token.revoked_at = utcnow()
        return schemas.TokenRead.model_validate(token)


# --- departments ---------------------------------------------------------------------------------


def list_departments(ctx: AppContext, actor: Actor) -> list[schemas.DepartmentRead]:
    """The whole org tree, in display order."""
    actor.require("identity.department.read")
    with ctx.read() as session:
        rows = session.scalars(select(Department).order_by(Department.sort, Department.id))
        return [schemas.DepartmentRead.model_validate(d) for d in rows]


def department_ids_by_code(ctx: AppContext, actor: Actor, codes: Iterable[str]) -> dict[str, int]:
    """The ids of the departments with these codes (one query; unknown codes are left out)."""
    actor.require("identity.department.read")
    wanted = sorted(set(codes))
    if not wanted:
        return {}
    with ctx.read() as session:
        rows = session.execute(select(Department.code, Department.id).where(Department.code.in_(wanted)))
        return {code: dept_id for code, dept_id in rows}


def get_department(ctx: AppContext, actor: Actor, dept_id: int) -> schemas.DepartmentRead:
    """One department."""
    actor.require("identity.department.read")
    with ctx.read() as session:
        dept = session.get(Department, dept_id)
        if dept is None:
            raise NotFound("No department {id}.", id=dept_id)
        return schemas.DepartmentRead.model_validate(dept)


def _require_in(actor: Actor, permission: str, department_id: int | None) -> None:
    """Require a permission in a department, or city-wide when there is none (a root)."""
    if department_id is None:
        actor.require(permission)
        if not isinstance(actor.scope(permission), AllDepartments):
            raise Forbidden(
                "Only a city-wide {permission} may act at the top of the tree.", permission=permission
            )
    else:
        actor.require(permission, department_id)


def create_department(
    ctx: AppContext, actor: Actor, data: schemas.DepartmentCreate
) -> schemas.DepartmentRead:
    """Add a department under a parent (or as a root, city-wide only)."""
    _require_in(actor, "identity.department.create", data.parent_id)
    with _access_change(ctx, actor, "identity.department.create") as uow:
        if data.parent_id is not None and uow.session.get(Department, data.parent_id) is None:
            raise ValidationFailed("No parent department {id}.", id=data.parent_id)
        if uow.session.scalar(select(Department.id).where(Department.code == data.code)) is not None:
            raise Conflict("A department with code {code} exists already.", code=data.code)
        dept = Department(**data.model_dump())
        uow.session.add(dept)
        uow.session.flush()
        return schemas.DepartmentRead.model_validate(dept)


def update_department(
    ctx: AppContext, actor: Actor, dept_id: int, data: schemas.DepartmentUpdate
) -> schemas.DepartmentRead:
    """Rename or move a department; a move may not create a cycle."""
    # null means "no change" for required columns; only parent_id null has a meaning (a root)
    changes = {
        k: v for k, v in data.model_dump(exclude_unset=True).items() if v is not None or k == "parent_id"
    }
    with _access_change(ctx, actor, "identity.department.update") as uow:
        dept = uow.session.get(Department, dept_id)
        if dept is None:
            raise NotFound("No department {id}.", id=dept_id)
        actor.require("identity.department.update", dept.id)
        if "parent_id" in changes and changes["parent_id"] != dept.parent_id:
            new_parent = changes["parent_id"]
            _require_in(actor, "identity.department.update", new_parent)
            if new_parent is not None:
                if uow.session.get(Department, new_parent) is None:
                    raise ValidationFailed("No parent department {id}.", id=new_parent)
                if new_parent in descendants(children_map(uow.session), dept.id):
                    raise ValidationFailed("A department cannot be moved under itself.")
        for key, value in changes.items():
            setattr(dept, key, value)
        uow.session.flush()
        return schemas.DepartmentRead.model_validate(dept)


def delete_department(ctx: AppContext, actor: Actor, dept_id: int) -> None:
    """Delete an empty department (no sub-departments, users or grants)."""
    with _access_change(ctx, actor, "identity.department.delete") as uow:
        dept = uow.session.get(Department, dept_id)
        if dept is None:
            raise NotFound("No department {id}.", id=dept_id)
        actor.require("identity.department.delete", dept.id)
        s = uow.session
        if s.scalar(select(func.count()).where(Department.parent_id == dept_id)):
            raise Conflict("The department has sub-departments; move or delete them first.")
        if s.scalar(select(func.count()).where(User.department_id == dept_id)):
            raise Conflict("The department has users; move them first.")
        if s.scalar(select(func.count()).where(RoleAssignment.department_id == dept_id)):
            raise Conflict("Roles are granted in this department; revoke them first.")
        s.delete(dept)


# --- users ---------------------------------------------------------------------------------------


def user_read(user: User) -> schemas.UserRead:
    """A user for the API, with personal data masked."""
    return schemas.UserRead(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        department_id=user.department_id,
        phone=mask_phone(user.phone),
        email=mask_email(user.email),
        is_active=user.is_active,
        locked_until=user.locked_until,
        last_login_at=user.last_login_at,
    )


def list_users(
    ctx: AppContext,
    actor: Actor,
    *,
    department_id: int | None = None,
    q: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> schemas.Page[schemas.UserRead]:
    """Users in the departments the actor may see, optionally filtered."""
    scope = actor.visible_departments("identity.user.read")
    stmt = select(User)
    if not isinstance(scope, AllDepartments):
        stmt = stmt.where(User.department_id.in_(scope))
    if department_id is not None:
        stmt = stmt.where(User.department_id == department_id)
    if q:
        like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(
            or_(User.username.ilike(like, escape="\\"), User.display_name.ilike(like, escape="\\"))
        )
    with ctx.read() as session:
        total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        rows = session.scalars(stmt.order_by(User.id).limit(limit).offset(offset))
        return schemas.Page[schemas.UserRead](
            items=[user_read(u) for u in rows], total=total, limit=limit, offset=offset
        )


def _visible_user(session: Session, actor: Actor, permission: str, user_id: int) -> User:
    """A user the actor may act on with `permission`; 404 otherwise (existence is not revealed)."""
    user = session.get(User, user_id)
    if user is None or not actor.can(permission, user.department_id):
        actor.require(permission)
        raise NotFound("No user {id}.", id=user_id)
    return user


def get_user(ctx: AppContext, actor: Actor, user_id: int) -> schemas.UserRead:
    """One user."""
    with ctx.read() as session:
        return user_read(_visible_user(session, actor, "identity.user.read", user_id))


def create_user(ctx: AppContext, actor: Actor, data: schemas.UserCreate) -> schemas.UserRead:
    """Create a user in a department the actor administers."""
    actor.require("identity.user.create", data.department_id)
    password_hash = hash_password(ctx, data.password)
    with ctx.uow(actor, "identity.user.create") as uow:
        s = uow.session
        if s.get(Department, data.department_id) is None:
            raise ValidationFailed("No department {id}.", id=data.department_id)
        if s.scalar(select(User.id).where(func.lower(User.username) == data.username.lower())) is not None:
            raise Conflict("The username {username} is taken.", username=data.username)
        user = User(**data.model_dump(exclude={"password"}), password_hash=password_hash)
        s.add(user)
        s.flush()
        uow.emit(UserCreated(user_id=user.id, username=user.username, department_id=user.department_id))
        return user_read(user)


def update_user(ctx: AppContext, actor: Actor, user_id: int, data: schemas.UserUpdate) -> schemas.UserRead:
    """Change a user's details, department or active state."""
    # null means "no change" for required columns; phone and e-mail may be cleared with null
    changes = {
        k: v
        for k, v in data.model_dump(exclude_unset=True).items()
        if v is not None or k in ("phone", "email")
    }
    with _access_change(ctx, actor, "identity.user.update") as uow:
        user = _visible_user(uow.session, actor, "identity.user.update", user_id)
        _require_outranks(ctx, uow.session, actor, user)
        if "department_id" in changes and changes["department_id"] != user.department_id:
            actor.require("identity.user.update", changes["department_id"])
            if uow.session.get(Department, changes["department_id"]) is None:
                raise ValidationFailed("No department {id}.", id=changes["department_id"])
        if changes.get("is_active") is False and user.id == actor.id:
            raise Conflict("You cannot deactivate yourself.")
        if changes.get("is_active") is False and user.is_active:
            _revoke_sessions(uow.session, user.id)
        for key, value in changes.items():
            setattr(user, key, value)
        uow.session.flush()
        return user_read(user)


def _revoke_sessions(session: Session, user_id: int) -> None:
    """End every open browser session of a user."""
    now = utcnow()
    for row in session.scalars(
        select(LoginSession).where(LoginSession.user_id == user_id, LoginSession.revoked_at.is_(None))
    ):
        row.revoked_at = now


def deactivate_user(ctx: AppContext, actor: Actor, user_id: int) -> schemas.UserRead:
    """Deactivate a user (kept for the audit trail) and close their sessions."""
    with _access_change(ctx, actor, "identity.user.delete") as uow:
        user = _visible_user(uow.session, actor, "identity.user.delete", user_id)
        if user.id == actor.id:
            raise Conflict("You cannot deactivate yourself.")
        _require_outranks(ctx, uow.session, actor, user)
        user.is_active = False
        _revoke_sessions(uow.session, user.id)
        return user_read(user)


def set_password(ctx: AppContext, actor: Actor, user_id: int, password: str) -> None:
    """Reset a user's password (an administrator's action)."""
    password_hash = hash_password(ctx, password)
    with ctx.uow(actor, "identity.user.password") as uow:
        user = _visible_user(uow.session, actor, "identity.user.update", user_id)
        _require_outranks(ctx, uow.session, actor, user)
        user.password_hash = password_hash
        user.failed_logins = 0
        user.locked_until = None


def change_own_password(ctx: AppContext, actor: Actor, current: str, new: str) -> None:
    """A signed-in user changes their own password, proving the current one."""
    if actor.kind != "user" or actor.id is None:
        raise Unauthorized("Sign in first.")
    hasher = _hasher(ctx)
    with ctx.uow(actor, "identity.user.password") as uow:
        user = uow.session.get_one(User, actor.id)
        try:
            hasher.verify(user.password_hash, current)
        except (VerificationError, InvalidHashError):
            raise Forbidden("The current password is wrong.") from None
        user.password_hash = hasher.hash(new)


def unlock_user(ctx: AppContext, actor: Actor, user_id: int) -> schemas.UserRead:
    """Lift a sign-in lockout."""
    with ctx.uow(actor, "identity.user.unlock") as uow:
        user = _visible_user(uow.session, actor, "identity.user.update", user_id)
        user.locked_until = None
        user.failed_logins = 0
        return user_read(user)


# --- roles and grants ----------------------------------------------------------------------------


def list_roles(ctx: AppContext, actor: Actor) -> list[schemas.RoleRead]:
    """Every role."""
    actor.require("identity.role.read")
    with ctx.read() as session:
        return [schemas.RoleRead.model_validate(r) for r in session.scalars(select(Role).order_by(Role.id))]


def get_role(ctx: AppContext, actor: Actor, role_id: int) -> schemas.RoleRead:
    """One role."""
    actor.require("identity.role.read")
    with ctx.read() as session:
        role = session.get(Role, role_id)
        if role is None:
            raise NotFound("No role {id}.", id=role_id)
        return schemas.RoleRead.model_validate(role)


def _require_city_wide(actor: Actor, permission: str) -> None:
    """Roles are city-wide objects: changing them needs the permission in every department."""
    actor.require(permission)
    if not isinstance(actor.scope(permission), AllDepartments):
        raise Forbidden("Changing roles needs {permission} city-wide.", permission=permission)


def _require_holds_all(ctx: AppContext, actor: Actor, patterns: Iterable[str]) -> None:
    """Nobody can put into a role a permission they do not hold city-wide."""
    for code in sorted(expand_permissions(patterns, ctx.permissions)):
        if not isinstance(actor.scope(code), AllDepartments):
            raise Forbidden(
                "You cannot grant {permission}, which you do not hold city-wide.", permission=code
            )


def create_role(ctx: AppContext, actor: Actor, data: schemas.RoleCreate) -> schemas.RoleRead:
    """Create a role from declared permissions."""
    _require_city_wide(actor, "identity.role.create")
    permissions = check_permission_patterns(ctx, data.permissions)
    _require_holds_all(ctx, actor, permissions)
    with ctx.uow(actor, "identity.role.create") as uow:
        if uow.session.scalar(select(Role.id).where(Role.code == data.code)) is not None:
            raise Conflict("A role with code {code} exists already.", code=data.code)
        role = Role(**{**data.model_dump(), "permissions": permissions})
        uow.session.add(role)
        uow.session.flush()
        return schemas.RoleRead.model_validate(role)


def update_role(ctx: AppContext, actor: Actor, role_id: int, data: schemas.RoleUpdate) -> schemas.RoleRead:
    """Change a role's names or permissions (built-in roles keep their permissions)."""
    _require_city_wide(actor, "identity.role.update")
    changes = {k: v for k, v in data.model_dump(exclude_unset=True).items() if v is not None}
    if "permissions" in changes:
        changes["permissions"] = check_permission_patterns(ctx, changes["permissions"])
        _require_holds_all(ctx, actor, changes["permissions"])
    with _access_change(ctx, actor, "identity.role.update") as uow:
        role = uow.session.get(Role, role_id)
        if role is None:
            raise NotFound("No role {id}.", id=role_id)
        if role.builtin and "permissions" in changes:
            raise Conflict("The permissions of a built-in role cannot be changed.")
        for key, value in changes.items():
            setattr(role, key, value)
        uow.session.flush()
        return schemas.RoleRead.model_validate(role)


def delete_role(ctx: AppContext, actor: Actor, role_id: int) -> None:
    """Delete a role that is not built in and not granted to anyone."""
    _require_city_wide(actor, "identity.role.delete")
    with _access_change(ctx, actor, "identity.role.delete") as uow:
        role = uow.session.get(Role, role_id)
        if role is None:
            raise NotFound("No role {id}.", id=role_id)
        if role.builtin:
            raise Conflict("A built-in role cannot be deleted.")
        if uow.session.scalar(select(func.count()).where(RoleAssignment.role_id == role_id)):
            raise Conflict("The role is granted to users; revoke it first.")
        uow.session.delete(role)


def list_assignments(ctx: AppContext, actor: Actor, user_id: int) -> list[schemas.AssignmentRead]:
    """The roles a user holds."""
    with ctx.read() as session:
        _visible_user(session, actor, "identity.user.read", user_id)
        rows = session.scalars(select(RoleAssignment).where(RoleAssignment.user_id == user_id))
        return [schemas.AssignmentRead.model_validate(a) for a in rows]


def assign_role(
    ctx: AppContext, actor: Actor, user_id: int, data: schemas.AssignmentCreate
) -> schemas.AssignmentRead:
    """Grant a role in a department; the grantor must hold every permission of the role there."""
    with _access_change(ctx, actor, "identity.role.assign") as uow:
        s = uow.session
        user = _visible_user(s, actor, "identity.role.assign", user_id)
        role = s.get(Role, data.role_id)
        if role is None:
            raise ValidationFailed("No role {id}.", id=data.role_id)
        tree = children_map(s)
        needed: Scope
        if data.department_id is None:
            _require_in(actor, "identity.role.assign", None)
            needed = ALL
        else:
            if s.get(Department, data.department_id) is None:
                raise ValidationFailed("No department {id}.", id=data.department_id)
            actor.require("identity.role.assign", data.department_id)
            needed = (
                descendants(tree, data.department_id)
                if data.include_subtree
                else frozenset({data.department_id})
            )
        for code in sorted(expand_permissions(role.permissions, ctx.permissions)):
            have = actor.scope(code)
            if isinstance(have, AllDepartments):
                continue
            if isinstance(needed, AllDepartments) or not needed <= have:
                raise Forbidden(
                    "You cannot grant {permission} beyond the departments where you hold it.", permission=code
                )
        exists = s.scalar(
            select(RoleAssignment.id).where(
                RoleAssignment.user_id == user.id,
                RoleAssignment.role_id == role.id,
                RoleAssignment.department_id.is_(None)
                if data.department_id is None
                else RoleAssignment.department_id == data.department_id,
            )
        )
        if exists is not None:
            raise Conflict("The user holds this role there already.")
        assignment = RoleAssignment(user_id=user.id, **data.model_dump())
        s.add(assignment)
        s.flush()
        return schemas.AssignmentRead.model_validate(assignment)


def revoke_assignment(ctx: AppContext, actor: Actor, user_id: int, assignment_id: int) -> None:
    """Take a role grant back."""
    with _access_change(ctx, actor, "identity.role.revoke") as uow:
        _visible_user(uow.session, actor, "identity.role.assign", user_id)
        assignment = uow.session.get(RoleAssignment, assignment_id)
        if assignment is None or assignment.user_id != user_id:
            raise NotFound("No role grant {id}.", id=assignment_id)
        _require_in(actor, "identity.role.assign", assignment.department_id)
        _keep_a_platform_admin(uow.session, assignment)
        uow.session.delete(assignment)


def _keep_a_platform_admin(session: Session, leaving: RoleAssignment) -> None:
    """Refuse to take away the last active city-wide platform administrator."""
    role = session.get_one(Role, leaving.role_id)
    if role.code != "platform_admin" or leaving.department_id is not None:
        return
    others = session.scalar(
        select(func.count())
        .select_from(RoleAssignment)
        .join(User, User.id == RoleAssignment.user_id)
        .where(
            RoleAssignment.role_id == role.id,
            RoleAssignment.department_id.is_(None),
            RoleAssignment.id != leaving.id,
            User.is_active.is_(True),
        )
    )
    if not others:
        raise Conflict("This is the last platform administrator; grant the role to someone else first.")


def list_permissions(ctx: AppContext, actor: Actor) -> list[schemas.PermissionRead]:
    """Every permission the enabled apps declare."""
    actor.require("identity.role.read")
    return [
        schemas.PermissionRead(code=p.code, name_zh=p.name_zh, name_en=p.name_en)
        for p in sorted(ctx.permissions.values(), key=lambda p: p.code)
    ]


def me(actor: Actor, ctx: AppContext) -> schemas.MeRead:
    """The signed-in actor and their grants."""
    if not actor.is_authenticated:
        raise Unauthorized("Sign in first.")
    user = None
    if actor.id is not None:
        with ctx.read() as session:
            row = session.get(User, actor.id)
            user = user_read(row) if row else None
    perms: dict[str, list[int] | Any] = {
        code: "ALL" if isinstance(scope, AllDepartments) else sorted(scope)
        for code, scope in sorted(actor.grants.items())
    }
    return schemas.MeRead(kind=actor.kind, user=user, permissions=perms)


# --- bootstrap -----------------------------------------------------------------------------------

BUILTIN_ROLES: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("platform_admin", "平台管理员", "Platform administrator", ("*",)),
    (
        "department_admin",
        "部门管理员",
        "Department administrator",
        (
            "identity.department.read",
            "identity.user.*",
            "identity.role.read",
            "identity.role.assign",
            "identity.token.create",
        ),
    ),
    ("staff", "工作人员", "Staff", ("identity.department.read", "identity.token.create")),
)


def ensure_builtin_roles(ctx: AppContext, actor: Actor) -> dict[str, int]:
    """Create the built-in roles if missing; return their ids by code."""
    with ctx.uow(actor, "identity.role.bootstrap") as uow:
        ids: dict[str, int] = {}
        for code, name_zh, name_en, permissions in BUILTIN_ROLES:
            role = uow.session.scalar(select(Role).where(Role.code == code))
            if role is None:
                role = Role(
                    code=code, name_zh=name_zh, name_en=name_en, permissions=list(permissions), builtin=True
                )
                uow.session.add(role)
                uow.session.flush()
            ids[code] = role.id
        return ids
