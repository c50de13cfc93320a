"""Identity services called directly: the demo seed, password hashing, grants, sessions and tokens."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from argon2 import PasswordHasher
from argon2.profiles import RFC_9106_LOW_MEMORY
from sqlalchemy import func, select, text, update

from citybrain.apps.identity import demo, schemas, services
from citybrain.apps.identity.events import AccountLocked, UserCreated
from citybrain.apps.identity.models import ApiToken, Department, LoginSession, Role, RoleAssignment, User
from citybrain.apps.identity.settings import IdentitySettings
from citybrain.core.context import AppContext
from citybrain.core.db import OutboxRow, utcnow
from citybrain.core.errors import Forbidden, Locked, NotFound, Unauthorized, ValidationFailed
from citybrain.core.ledger import LedgerRecord, verify
from citybrain.core.permissions import ALL, ANONYMOUS, SYSTEM, Actor
from tests.conftest import Seeded

PASSWORD = "service-password-7"
DISTRICTS = ("涪城区", "游仙区", "安州区", "江油市", "三台县", "盐亭县", "梓潼县", "北川羌族自治县", "平武县")
IDENTITY_TABLES = (
    "identity_department",
    "identity_user",
    "identity_role",
    "identity_role_assignment",
    "identity_session",
    "identity_api_token",
)


def cheap(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2id with tiny costs for tests that hash many passwords."""
    monkeypatch.setattr(
        services, "_hasher", lambda _ctx: PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )


def counts(ctx: AppContext) -> dict[str, int]:
    """Row counts of the identity tables."""
    with ctx.read() as session:
        return {t: int(session.scalar(text(f"SELECT count(*) FROM {t}")) or 0) for t in IDENTITY_TABLES}


def make_user(
    ctx: AppContext,
    username: str,
    department_id: int,
    role_id: int | None = None,
    department: int | str | None = "own",
) -> int:
    """A user with an optional role grant (in their department, another one, or city-wide for None)."""
    user = services.create_user(
        ctx,
        SYSTEM,
        schemas.UserCreate(
            username=username, display_name=username, department_id=department_id, password=PASSWORD
        ),
    )
    if role_id is not None:
        where = department_id if department == "own" else department
        assert where is None or isinstance(where, int)
        services.assign_role(
            ctx, SYSTEM, user.id, schemas.AssignmentCreate(role_id=role_id, department_id=where)
        )
    return user.id


def actor(ctx: AppContext, user_id: int) -> Actor:
    """The actor of a user, as a session would make it."""
    with ctx.read() as session:
        return services.actor_for(ctx, session, session.get_one(User, user_id))


# --- demo seed -----------------------------------------------------------------------------------


def test_demo_seed_creates_mianyang_and_is_idempotent(
    ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    cheap(monkeypatch)
    lines = demo.seed(ctx)
    password_file = ctx.settings.data_dir / demo.CREDENTIALS_FILE
    password = password_file.read_text(encoding="utf-8").strip()
    assert len(password) >= 10 and any(password in line for line in lines)
    assert password_file.stat().st_mode & 0o077 == 0  # readable by its owner only

    with ctx.read() as session:
        depts = {d.code: d for d in session.scalars(select(Department))}
    root = depts["510700"]
    assert root.parent_id is None and root.kind == "municipal"
    districts = [d for d in depts.values() if d.kind == "district"]
    assert sorted(d.name_zh for d in districts) == sorted(DISTRICTS)
    assert all(d.parent_id == root.id for d in districts)
    assert depts["510781"].name_zh == "江油市" and depts["510726"].name_zh == "北川羌族自治县"
    municipal = [d for d in depts.values() if d.kind == "department" and d.parent_id == root.id]
    assert len(municipal) >= 10
    assert depts["gaj-jj"].parent_id == depts["gaj"].id
    assert len({d.sort for d in depts.values()}) == len(depts)

    first = counts(ctx)
    assert first["identity_user"] == len(demo.USERS)
    assert first["identity_role_assignment"] == len(demo.USERS)
    assert demo.seed(ctx) == lines  # the same password is shown again
    assert counts(ctx) == first
    assert password_file.read_text(encoding="utf-8").strip() == password

    for username, _, dept_code, role_code, city_wide in demo.USERS:
        signed = services.login(ctx, username, password)
        assert signed.user.department_id == depts[dept_code].id
        with ctx.read() as session:
            grant = session.scalar(select(RoleAssignment).where(RoleAssignment.user_id == signed.user.id))
            assert grant is not None
            assert session.get_one(Role, grant.role_id).code == role_code
            assert grant.department_id == (None if city_wide else depts[dept_code].id)
    admin = actor(ctx, services.login(ctx, "admin", password).user.id)
    assert admin.scope("identity.role.assign") is ALL
    fucheng = actor(ctx, services.login(ctx, "fucheng_admin", password).user.id)
    assert fucheng.scope("identity.user.create") == frozenset({depts["510703"].id})
    with ctx.read() as session:
        assert verify(session).ok


def test_demo_seed_fills_in_around_existing_data(
    ctx: AppContext, seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    cheap(monkeypatch)
    demo.seed(ctx)
    with ctx.read() as session:
        codes = [c for (c,) in session.execute(select(Department.code))]
        admins = session.scalars(select(User).where(func.lower(User.username) == "admin")).all()
        assert [a.id for a in admins] == [seeded.admin_id]
        assert session.scalar(select(func.count()).where(RoleAssignment.user_id == seeded.admin_id)) == 1
    assert len(codes) == len(set(codes)) == len(demo.DEPARTMENTS) + 1
    password = (ctx.settings.data_dir / demo.CREDENTIALS_FILE).read_text(encoding="utf-8").strip()
    assert services.login(ctx, "admin", password).user.id == seeded.admin_id


def test_demo_password_file_is_reused_or_replaced(ctx: AppContext) -> None:
    path = ctx.settings.data_dir / demo.CREDENTIALS_FILE
    path.write_text("kept-demo-password\n", encoding="utf-8")
    assert demo._demo_password(ctx) == "kept-demo-password"
    path.write_text("short\n", encoding="utf-8")  # too short to be a password: a new one is made
    fresh = demo._demo_password(ctx)
    assert fresh != "short" and len(fresh) >= 10
    assert path.read_text(encoding="utf-8").strip() == fresh


# --- passwords and sign-in -----------------------------------------------------------------------


def test_passwords_are_hashed_with_argon2id_and_weak_hashes_are_upgraded(
    ctx: AppContext, seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    configured = services._hasher(ctx)
    real = services.hash_password(ctx, PASSWORD)
    assert real.startswith("$argon2id$") and PASSWORD not in real
    assert configured.verify(real, PASSWORD) and not configured.check_needs_rehash(real)
    with ctx.read() as session:
        assert session.get_one(User, seeded.admin_id).password_hash.startswith("$argon2id$")
    with monkeypatch.context() as patched:
        cheap(patched)
        user_id = make_user(ctx, "legacy", seeded.district)
    with ctx.read() as session:
        weak = session.get_one(User, user_id).password_hash
    assert "m=1024" in weak
    services.login(ctx, "legacy", PASSWORD)  # the configured hasher sees other parameters
    with ctx.read() as session:
        upgraded = session.get_one(User, user_id).password_hash
    assert upgraded != weak and not configured.check_needs_rehash(upgraded)
    assert services.login(ctx, "legacy", PASSWORD).user.id == user_id


def test_argon2_costs_default_to_rfc_9106_and_are_honoured(ctx: AppContext) -> None:
    """Production hashes with RFC 9106's profile; the suite runs with the cheap costs it configures."""
    fields = IdentitySettings.model_fields
    defaults = tuple(fields[f"argon2_{name}"].default for name in ("time_cost", "memory_kib", "parallelism"))
    profile = RFC_9106_LOW_MEMORY
    assert defaults == (profile.time_cost, profile.memory_cost, profile.parallelism)
    conf = ctx.app_setting("identity", IdentitySettings)
    expected = f"m={conf.argon2_memory_kib},t={conf.argon2_time_cost},p={conf.argon2_parallelism}"
    assert expected in services.hash_password(ctx, PASSWORD)


def test_login_counts_failures_emits_account_locked_and_lets_in_after_the_lockout(
    ctx: AppContext, seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    cheap(monkeypatch)
    user_id = make_user(ctx, "clumsy", seeded.district)
    monkeypatch.setattr(ctx.settings, "login_max_failures", 3)
    monkeypatch.setattr(ctx.settings, "login_lockout_minutes", 0.005)  # 0.3 s
    for expected_failures in (1, 2):
        with pytest.raises(Unauthorized):
            services.login(ctx, "clumsy", "not-my-password")
        with ctx.read() as session:
            assert session.get_one(User, user_id).failed_logins == expected_failures
    with pytest.raises(Unauthorized):
        services.login(ctx, "clumsy", "not-my-password")
    with pytest.raises(Locked) as locked:
        services.login(ctx, "clumsy", PASSWORD)
    assert locked.value.params["until"]
    with ctx.read() as session:
        user = session.get_one(User, user_id)
        assert user.failed_logins == 0 and user.locked_until is not None
        outbox = session.scalars(select(OutboxRow).where(OutboxRow.event_type.like("%AccountLocked"))).all()
    assert len(outbox) == 1
    event = AccountLocked.model_validate_json(outbox[0].payload)
    assert (event.user_id, event.username) == (user_id, "clumsy")
    time.sleep(0.35)
    assert services.login(ctx, "clumsy", PASSWORD).user.locked_until is None


def test_login_refuses_unknown_inactive_and_passwordless_accounts_alike(
    ctx: AppContext, seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    cheap(monkeypatch)
    inactive = make_user(ctx, "gone", seeded.district)
    services.deactivate_user(ctx, SYSTEM, inactive)
    machine = make_user(ctx, "machine", seeded.district)
    with ctx.db.write_engine.begin() as conn:  # a service account that only owns tokens
        conn.execute(update(User).where(User.id == machine).values(password_hash=""))
    details = set()
    for username, password in (
        ("nobody", PASSWORD),
        ("gone", PASSWORD),
        ("machine", ""),
        ("machine", PASSWORD),
    ):
        with pytest.raises(Unauthorized) as refused:
            services.login(ctx, username, password)
        details.add(str(refused.value))
    assert details == {"Wrong username or password."}
    with ctx.read() as session:  # no failure is counted against accounts that cannot sign in
        assert session.get_one(User, inactive).failed_logins == 0


def test_sessions_expire_and_are_revoked(
    ctx: AppContext, seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    cheap(monkeypatch)
    signed = services.login(ctx, "admin", seeded.admin_password, ip="10.0.0.1", user_agent="pytest")
    who = services.authenticate_cookie(ctx, signed.cookie)
    assert who is not None and who.id == seeded.admin_id and who.session_id is not None
    assert who.ref == f"user:{seeded.admin_id}"
    assert services.authenticate_cookie(ctx, signed.cookie + "x") is None
    assert services.authenticate_cookie(ctx, "") is None
    with ctx.read() as session:
        row = session.get_one(LoginSession, who.session_id)
        assert (row.ip, row.user_agent) == ("10.0.0.1", "pytest")
        assert row.expires_at - row.created_at == timedelta(hours=ctx.settings.session_hours)
    with ctx.db.write_engine.begin() as conn:
        conn.execute(
            update(LoginSession)
            .where(LoginSession.id == who.session_id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert services.authenticate_cookie(ctx, signed.cookie) is None

    second = services.login(ctx, "admin", seeded.admin_password)
    live = services.authenticate_cookie(ctx, second.cookie)
    assert live is not None
    services.logout(ctx, live)
    assert services.authenticate_cookie(ctx, second.cookie) is None
    services.logout(ctx, ANONYMOUS)  # nothing to close


def test_set_password_clears_a_lockout(
    ctx: AppContext, seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    cheap(monkeypatch)
    user_id = make_user(ctx, "locked", seeded.district)
    with ctx.uow(SYSTEM, "test.lock") as uow:
        user = uow.session.get_one(User, user_id)
        user.locked_until, user.failed_logins = utcnow() + timedelta(hours=1), 2
    with pytest.raises(Locked):
        services.login(ctx, "locked", PASSWORD)
    services.set_password(ctx, SYSTEM, user_id, "a-brand-new-secret")
    assert services.login(ctx, "locked", "a-brand-new-secret").user.id == user_id


# --- permissions, grants and scoping --------------------------------------------------------------


def test_permission_patterns_expand_and_unknown_ones_are_refused(ctx: AppContext) -> None:
    known = set(ctx.permissions)
    assert services.expand_permissions(["*"], known) == known
    assert services.expand_permissions(["identity.*"], known) == {
        p for p in known if p.startswith("identity.")
    }
    assert services.expand_permissions(["identity.user.*"], known) == {
        "identity.user.read",
        "identity.user.create",
        "identity.user.update",
        "identity.user.delete",
    }
    assert services.expand_permissions(["identity.role.read", "nope.x.y"], known) == {"identity.role.read"}
    assert services.check_permission_patterns(
        ctx, ["identity.user.*", "identity.role.read", "identity.role.read"]
    ) == ["identity.role.read", "identity.user.*"]
    # every built-in role can be recreated through the API's own check
    for _, _, _, patterns in services.BUILTIN_ROLES:
        assert services.check_permission_patterns(ctx, patterns) == sorted(patterns)
    for bad in (
        ["identity.user.fly"],
        ["nosuch.*"],
        ["identity.nothing.*"],
        ["identity"],
        ["*.*"],
        ["identity.**"],
    ):
        with pytest.raises(ValidationFailed):
            services.check_permission_patterns(ctx, bad)


def test_grants_follow_the_org_tree(ctx: AppContext, seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    cheap(monkeypatch)
    street = services.create_department(
        ctx,
        SYSTEM,
        schemas.DepartmentCreate(
            code="510703-001", name_zh="朝阳街道", kind="office", parent_id=seeded.district
        ),
    ).id
    user_id = make_user(ctx, "tree", seeded.district)
    roles = seeded.roles
    services.assign_role(
        ctx,
        SYSTEM,
        user_id,
        schemas.AssignmentCreate(role_id=roles["department_admin"], department_id=seeded.district),
    )  # with the street below it
    services.assign_role(
        ctx,
        SYSTEM,
        user_id,
        schemas.AssignmentCreate(
            role_id=roles["staff"], department_id=seeded.other_district, include_subtree=False
        ),
    )
    services.assign_role(ctx, SYSTEM, user_id, schemas.AssignmentCreate(role_id=roles["staff"]))
    with ctx.read() as session:
        grants = services.grants_for_user(ctx, session, user_id)
    assert grants["identity.user.update"] == frozenset({seeded.district, street})
    assert grants["identity.department.read"] is ALL  # staff city-wide wins over narrower grants
    assert "identity.department.create" not in grants
    assert services.descendants(services_tree(ctx), seeded.root) == frozenset(
        {seeded.root, seeded.city_dept, seeded.district, seeded.other_district, street}
    )

    who = actor(ctx, user_id)
    assert who.can("identity.user.read", street) and not who.can("identity.user.read", seeded.other_district)
    page = services.list_users(ctx, who)
    assert [u.username for u in page.items] == ["tree"]
    with pytest.raises(NotFound):
        services.get_user(ctx, who, seeded.admin_id)
    with pytest.raises(Forbidden):
        services.list_roles(ctx, Actor(kind="user", id=999))
    with pytest.raises(Unauthorized):
        services.list_users(ctx, ANONYMOUS)


def services_tree(ctx: AppContext) -> dict[int | None, list[int]]:
    """The org tree as the services see it."""
    with ctx.read() as session:
        return services.children_map(session)


def test_builtin_roles_are_created_once(ctx: AppContext) -> None:
    first = services.ensure_builtin_roles(ctx, SYSTEM)
    assert services.ensure_builtin_roles(ctx, SYSTEM) == first
    assert set(first) == {"platform_admin", "department_admin", "staff"}
    assert counts(ctx)["identity_role"] == 3
    with ctx.read() as session:
        assert all(r.builtin for r in session.scalars(select(Role)))


def test_create_user_announces_the_user_through_the_outbox(
    ctx: AppContext, seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    cheap(monkeypatch)
    user_id = make_user(ctx, "announced", seeded.district)
    with ctx.read() as session:
        rows = session.scalars(select(OutboxRow).where(OutboxRow.event_type.like("%UserCreated"))).all()
    events = [UserCreated.model_validate_json(r.payload) for r in rows]
    assert (user_id, "announced", seeded.district) in {
        (e.user_id, e.username, e.department_id) for e in events
    }


def test_a_failed_service_call_rolls_back_its_ledger_records(ctx: AppContext, seeded: Seeded) -> None:
    with ctx.read() as session:
        before = session.scalar(select(func.count()).select_from(LedgerRecord))
    with pytest.raises(ValidationFailed):
        services.update_department(
            ctx, SYSTEM, seeded.root, schemas.DepartmentUpdate(parent_id=seeded.district)
        )
    with pytest.raises(ValidationFailed):
        services.create_department(
            ctx, SYSTEM, schemas.DepartmentCreate(code="orphan", name_zh="孤", parent_id=424242)
        )
    with ctx.read() as session:
        assert session.scalar(select(func.count()).select_from(LedgerRecord)) == before


# --- API tokens -----------------------------------------------------------------------------------


def test_token_actor_is_limited_to_its_scopes_and_the_owners_departments(
    ctx: AppContext, seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    cheap(monkeypatch)
    owner_id = make_user(ctx, "fc_admin", seeded.district, seeded.roles["department_admin"])
    owner = actor(ctx, owner_id)
    created = services.create_token(ctx, owner, schemas.TokenCreate(name="sync", scopes=["identity.user.*"]))
    who = services.authenticate_bearer(ctx, created.token)
    assert who is not None and who.kind == "token" and who.token_id == created.id and who.id == owner_id
    assert who.ref == f"token:{created.id}(user:{owner_id})"
    assert set(who.grants) == {
        "identity.user.read",
        "identity.user.create",
        "identity.user.update",
        "identity.user.delete",
    }
    assert all(scope == frozenset({seeded.district}) for scope in who.grants.values())
    # a token acting for its owner cannot mint a wider token or take over the owner's account
    with pytest.raises(Forbidden):
        services.create_token(ctx, who, schemas.TokenCreate(name="wider", scopes=["identity.user.read"]))
    with pytest.raises(Forbidden):
        services.set_password(ctx, who, owner_id, "taken-over-by-token")


def test_token_last_use_is_recorded_at_most_every_ten_minutes(
    ctx: AppContext, seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    cheap(monkeypatch)
    admin = actor(ctx, seeded.admin_id)
    created = services.create_token(ctx, admin, schemas.TokenCreate(name="t", scopes=["identity.role.read"]))
    assert created.last_used_at is None

    def ledger_size() -> Any:
        with ctx.read() as session:
            return session.scalar(select(func.count()).select_from(LedgerRecord))

    before = ledger_size()
    assert services.authenticate_bearer(ctx, created.token) is not None
    assert ledger_size() == before + 1
    with ctx.read() as session:
        first_use = session.get_one(ApiToken, created.id).last_used_at
    assert first_use is not None
    assert services.authenticate_bearer(ctx, created.token) is not None
    assert ledger_size() == before + 1  # no write for every request


def test_tokens_of_deactivated_owners_stop_working(
    ctx: AppContext, seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    cheap(monkeypatch)
    owner_id = make_user(ctx, "owner", seeded.district, seeded.roles["staff"])
    token = services.create_token(
        ctx, actor(ctx, owner_id), schemas.TokenCreate(name="t", scopes=["identity.department.read"])
    )
    assert services.authenticate_bearer(ctx, token.token) is not None
    services.deactivate_user(ctx, SYSTEM, owner_id)
    assert services.authenticate_bearer(ctx, token.token) is None


def test_revoking_someone_elses_token_needs_the_manage_permission(
    ctx: AppContext, seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    cheap(monkeypatch)
    owner_id = make_user(ctx, "owner", seeded.district, seeded.roles["staff"])
    other_id = make_user(ctx, "other", seeded.district, seeded.roles["staff"])
    token = services.create_token(
        ctx, actor(ctx, owner_id), schemas.TokenCreate(name="t", scopes=["identity.department.read"])
    )
    with pytest.raises(NotFound):
        services.revoke_token(ctx, actor(ctx, other_id), token.id)
    assert services.list_tokens(ctx, actor(ctx, other_id)) == []
    revoked = services.revoke_token(ctx, actor(ctx, seeded.admin_id), token.id)
    assert revoked.revoked_at is not None
    again = services.revoke_token(ctx, actor(ctx, owner_id), token.id)
    assert again.revoked_at == revoked.revoked_at  # revoking twice keeps the first time
    assert services.authenticate_bearer(ctx, token.token) is None


def test_bearer_values_that_are_not_tokens(ctx: AppContext, seeded: Seeded) -> None:
    for value in (
        "",
        "cbt_",
        "cbt_1",
        "cbt_1_",
        "cbt__abc",
        "cbt_-1_abc",
        "cbt_١_abc",
        "xyz_1_abc",
        "cbt_99999999999999999999_abc",
        "cbt_2147483648_abc",
    ):
        assert services.authenticate_bearer(ctx, value) is None, value


def test_department_kind_and_tree_rules(ctx: AppContext, seeded: Seeded) -> None:
    with pytest.raises(Forbidden):  # only city-wide actors create roots
        district_admin = Actor(
            kind="user", id=1, grants={"identity.department.create": frozenset({seeded.district})}
        )
        services.create_department(
            ctx, district_admin, schemas.DepartmentCreate(code="root2", name_zh="另一个根")
        )
    moved = services.update_department(
        ctx, SYSTEM, seeded.other_district, schemas.DepartmentUpdate(parent_id=seeded.district)
    )
    assert moved.parent_id == seeded.district
    with pytest.raises(ValidationFailed):  # now 510703 cannot go under its own child
        services.update_department(
            ctx, SYSTEM, seeded.district, schemas.DepartmentUpdate(parent_id=seeded.other_district)
        )
    with pytest.raises(NotFound):
        services.delete_department(ctx, SYSTEM, 424242)


def test_user_search_treats_wildcards_literally(
    ctx: AppContext, seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    cheap(monkeypatch)
    for username in ("li_na", "lina2"):
        services.create_user(
            ctx,
            SYSTEM,
            schemas.UserCreate(
                username=username, display_name=username, department_id=seeded.district, password=PASSWORD
            ),
        )
    found = services.list_users(ctx, SYSTEM, q="_")
    assert [u.username for u in found.items] == ["li_na"]
    assert services.list_users(ctx, SYSTEM, q="%").total == 0


def test_the_last_platform_admin_cannot_be_revoked(
    ctx: AppContext, seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    from citybrain.core.errors import Conflict

    cheap(monkeypatch)
    with ctx.read() as session:
        user = session.get_one(User, seeded.admin_id)
        admin = services.actor_for(ctx, session, user)
    [grant] = services.list_assignments(ctx, admin, seeded.admin_id)
    with pytest.raises(Conflict, match="last platform administrator"):
        services.revoke_assignment(ctx, admin, seeded.admin_id, grant.id)
    second = services.create_user(
        ctx,
        SYSTEM,
        schemas.UserCreate(
            username="admin2", display_name="第二管理员", department_id=seeded.city_dept, password=PASSWORD
        ),
    )
    services.assign_role(
        ctx, SYSTEM, second.id, schemas.AssignmentCreate(role_id=seeded.roles["platform_admin"])
    )
    services.revoke_assignment(ctx, admin, seeded.admin_id, grant.id)
    assert services.list_assignments(ctx, SYSTEM, seeded.admin_id) == []


def test_department_ids_by_code_reads_one_query_of_known_codes(ctx: AppContext, seeded: Seeded) -> None:
    root = services.get_department(ctx, SYSTEM, seeded.root)
    district = services.get_department(ctx, SYSTEM, seeded.district)
    found = services.department_ids_by_code(ctx, SYSTEM, [root.code, district.code, "nope", root.code])
    assert found == {root.code: seeded.root, district.code: seeded.district}
    assert services.department_ids_by_code(ctx, SYSTEM, []) == {}
    with pytest.raises(Unauthorized):
        services.department_ids_by_code(ctx, ANONYMOUS, [root.code])
