"""The identity REST API over HTTP with the real app: sign-in, CSRF, tokens, scoping, CRUD, bad input, audit.

Every refused write is checked to leave the row counts and the audit ledger exactly as they were.
"""

from __future__ import annotations

import functools
import hashlib
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select, text, update

from citybrain.apps.identity import schemas, services
from citybrain.apps.identity.events import AccountLocked
from citybrain.apps.identity.models import ApiToken, LoginSession, User
from citybrain.core.context import AppContext
from citybrain.core.db import utcnow
from citybrain.core.ledger import LedgerRecord, verify
from citybrain.core.permissions import SYSTEM
from tests.conftest import Seeded, login

API = "/api/identity"
PASSWORD = "district-password-42"
TABLES = (
    "identity_department",
    "identity_user",
    "identity_role",
    "identity_role_assignment",
    "identity_session",
    "identity_api_token",
    "core_ledger",
    "core_outbox",
)
CITY_WIDE = None
OWN = "own"


# --- helpers -------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2id with tiny costs, so the many sign-ins stay fast (test_services checks the real costs)."""
    monkeypatch.setattr(
        services, "_hasher", lambda _ctx: PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )


def problem(response: Any, status: int) -> dict[str, Any]:
    """Assert an RFC 9457 problem response with a human-readable detail; return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"]
    assert isinstance(body["detail"], str) and body["detail"].strip()
    assert not re.search(r"\{[a-z_]+\}", body["detail"]), body["detail"]  # every placeholder filled in
    return body


def invalid(response: Any) -> dict[str, Any]:
    """Assert a 422 problem that lists what is wrong."""
    body = problem(response, 422)
    if "errors" in body:
        assert body["errors"] and all(e["msg"] for e in body["errors"])
    return body


def state(ctx: AppContext) -> dict[str, Any]:
    """Row counts of every identity table, the outbox and the ledger, and the ledger head."""
    with ctx.read() as session:
        counts: dict[str, Any] = {
            table: session.scalar(text(f"SELECT count(*) FROM {table}")) for table in TABLES
        }
        counts["ledger_head"] = tuple(session.execute(text("SELECT seq, hash FROM core_ledger_head")).all())
    return counts


def head_seq(ctx: AppContext) -> int:
    """The sequence number of the newest ledger record."""
    with ctx.read() as session:
        return int(session.scalar(text("SELECT coalesce(max(seq), 0) FROM core_ledger")) or 0)


def records_after(ctx: AppContext, seq: int) -> list[LedgerRecord]:
    """Ledger records appended after `seq`, oldest first."""
    with ctx.read() as session:
        return list(
            session.scalars(select(LedgerRecord).where(LedgerRecord.seq > seq).order_by(LedgerRecord.seq))
        )


def make_user(
    ctx: AppContext,
    username: str,
    department_id: int,
    role_id: int | None = None,
    where: int | str | None = OWN,
    **extra: Any,
) -> int:
    """Create a user (and a role grant: in `where`, the user's own department, or city-wide for None)."""
    user = services.create_user(
        ctx,
        SYSTEM,
        schemas.UserCreate(
            username=username, display_name=username, department_id=department_id, password=PASSWORD, **extra
        ),
    )
    if role_id is not None:
        dept = department_id if where == OWN else where
        assert dept is None or isinstance(dept, int)
        services.assign_role(
            ctx, SYSTEM, user.id, schemas.AssignmentCreate(role_id=role_id, department_id=dept)
        )
    return user.id


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for an API token."""
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def new_client(app: FastAPI) -> Iterator[Callable[..., TestClient]]:
    """Make further clients of the same running app (another browser), optionally signed in."""
    made: list[TestClient] = []

    def make(username: str | None = None, password: str = PASSWORD) -> TestClient:
        other = TestClient(app, base_url="http://testserver")
        made.append(other)
        if username is not None:
            login(other, username, password)
        return other

    yield make
    for other in made:
        other.close()


@dataclass
class District:
    """A department admin of district 510703, a user there and a user of district 510704."""

    admin_id: int
    local_id: int
    remote_id: int
    client: TestClient


@pytest.fixture
def district(ctx: AppContext, seeded: Seeded, new_client: Callable[..., TestClient]) -> District:
    """A signed-in department_admin of 510703, with a user in 510703 and one in 510704."""
    admin_id = make_user(ctx, "fc_admin", seeded.district, seeded.roles["department_admin"])
    local_id = make_user(ctx, "fc_staff", seeded.district)
    remote_id = make_user(ctx, "yx_staff", seeded.other_district)
    return District(admin_id, local_id, remote_id, new_client("fc_admin"))


# --- sign-in and sessions ------------------------------------------------------------------------


def test_sign_in_sets_an_http_only_session_cookie_and_me_shows_the_grants(
    client: TestClient, seeded: Seeded, ctx: AppContext
) -> None:
    client.get("/")
    response = client.post(f"{API}/session", json={"username": "admin", "password": seeded.admin_password})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == seeded.admin_id and body["username"] == "admin"
    assert "password_hash" not in body and body["last_login_at"] is not None
    cookie = next(h for h in response.headers.get_list("set-cookie") if h.startswith("cb_session="))
    assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower() and "path=/" in cookie.lower()
    value = cookie.split(";", 1)[0].removeprefix("cb_session=")
    with ctx.read() as session:  # only the SHA-256 of the cookie is stored
        row = session.scalar(select(LoginSession).where(LoginSession.user_id == seeded.admin_id))
        assert row is not None and row.token_hash == hashlib.sha256(value.encode()).hexdigest()
        assert row.revoked_at is None and row.expires_at > utcnow()
    me = client.get(f"{API}/me").json()
    assert me["kind"] == "user" and me["user"]["id"] == seeded.admin_id
    assert me["permissions"]["identity.role.assign"] == "ALL"
    assert set(me["permissions"]) == set(ctx.permissions)


def test_department_grants_show_as_department_ids_in_me(
    ctx: AppContext, seeded: Seeded, new_client: Callable[..., TestClient]
) -> None:
    make_user(ctx, "fc_admin", seeded.district, seeded.roles["department_admin"])
    me = new_client("fc_admin").get(f"{API}/me").json()
    assert me["permissions"]["identity.user.create"] == [seeded.district]
    assert "identity.department.create" not in me["permissions"]


def test_wrong_password_and_unknown_user_get_the_same_401(client: TestClient, seeded: Seeded) -> None:
    wrong = problem(client.post(f"{API}/session", json={"username": "admin", "password": "not-the-one"}), 401)
    unknown = problem(client.post(f"{API}/session", json={"username": "nobody", "password": "whatever"}), 401)
    assert wrong["detail"] == unknown["detail"]
    english = problem(
        client.post(
            f"{API}/session", params={"lang": "en"}, json={"username": "nobody", "password": "whatever"}
        ),
        401,
    )
    assert english["detail"] == "Wrong username or password."
    assert "cb_session" not in client.cookies
    assert client.get(f"{API}/me").status_code == 401


def test_username_is_case_insensitive_at_sign_in(client: TestClient, seeded: Seeded) -> None:
    response = client.post(f"{API}/session", json={"username": "ADMIN", "password": seeded.admin_password})
    assert response.status_code == 200, response.text
    assert response.json()["id"] == seeded.admin_id


def test_five_failures_lock_the_account_until_the_lockout_passes(
    client: TestClient, seeded: Seeded, ctx: AppContext
) -> None:
    events: list[AccountLocked] = []

    async def on_locked(event: AccountLocked) -> None:
        events.append(event)

    assert client.portal is not None
    client.portal.call(functools.partial(ctx.bus.subscribe, AccountLocked, on_locked, durable="test-locked"))
    assert ctx.settings.login_max_failures == 5
    for _ in range(5):
        problem(client.post(f"{API}/session", json={"username": "admin", "password": "wrong-password"}), 401)
    body = problem(
        client.post(f"{API}/session", json={"username": "admin", "password": seeded.admin_password}), 423
    )
    with ctx.read() as session:
        locked_until = session.get_one(User, seeded.admin_id).locked_until
    assert locked_until is not None
    assert timedelta(minutes=14) < locked_until - utcnow() <= timedelta(minutes=15)
    local = locked_until.astimezone(ZoneInfo(ctx.settings.timezone)).strftime("%Y-%m-%d %H:%M")
    assert local in body["detail"], body["detail"]
    assert "cb_session" not in client.cookies

    deadline = time.monotonic() + 5
    while not events and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(events) == 1, "AccountLocked did not reach the bus"
    assert (events[0].user_id, events[0].username) == (seeded.admin_id, "admin")
    assert events[0].locked_until.startswith(locked_until.strftime("%Y-%m-%dT%H:%M"))

    with ctx.uow(SYSTEM, "test.time-passes") as uow:  # the lockout ends
        uow.session.get_one(User, seeded.admin_id).locked_until = utcnow() - timedelta(seconds=1)
    response = client.post(f"{API}/session", json={"username": "admin", "password": seeded.admin_password})
    assert response.status_code == 200, response.text
    with ctx.read() as session:
        user = session.get_one(User, seeded.admin_id)
        assert user.locked_until is None and user.failed_logins == 0


def test_a_successful_sign_in_resets_the_failure_count(
    client: TestClient, seeded: Seeded, ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ctx.settings, "login_max_failures", 2)

    def sign_in(password: str) -> int:
        client.cookies.clear()
        return client.post(f"{API}/session", json={"username": "admin", "password": password}).status_code

    assert sign_in("wrong-password") == 401
    assert sign_in(seeded.admin_password) == 200
    assert sign_in("wrong-password") == 401  # one failure since the success: not locked
    assert sign_in(seeded.admin_password) == 200
    assert sign_in("wrong-password") == 401
    assert sign_in("wrong-password") == 401
    assert sign_in(seeded.admin_password) == 423


def test_a_tiny_lockout_setting_expires_by_itself(
    client: TestClient, seeded: Seeded, ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ctx.settings, "login_max_failures", 1)
    monkeypatch.setattr(ctx.settings, "login_lockout_minutes", 0.005)  # 0.3 s
    problem(client.post(f"{API}/session", json={"username": "admin", "password": "wrong-password"}), 401)
    problem(client.post(f"{API}/session", json={"username": "admin", "password": seeded.admin_password}), 423)
    time.sleep(0.35)
    assert client.post(
        f"{API}/session", json={"username": "admin", "password": seeded.admin_password}
    ).is_success


def test_admin_unlocks_a_locked_account(
    admin_client: TestClient, ctx: AppContext, seeded: Seeded, new_client: Callable[..., TestClient]
) -> None:
    user_id = make_user(ctx, "locked_one", seeded.district)
    with ctx.uow(SYSTEM, "test.lock") as uow:
        uow.session.get_one(User, user_id).locked_until = utcnow() + timedelta(minutes=10)
    other = new_client()
    problem(other.post(f"{API}/session", json={"username": "locked_one", "password": PASSWORD}), 423)
    response = admin_client.post(f"{API}/users/{user_id}/unlock")
    assert response.status_code == 200 and response.json()["locked_until"] is None
    assert other.post(f"{API}/session", json={"username": "locked_one", "password": PASSWORD}).is_success


def test_sign_out_revokes_the_session(admin_client: TestClient, ctx: AppContext, seeded: Seeded) -> None:
    old = admin_client.cookies.get("cb_session")
    assert old
    response = admin_client.delete(f"{API}/session")
    assert response.status_code == 204
    assert "cb_session" not in admin_client.cookies
    with ctx.read() as session:
        row = session.scalar(select(LoginSession).where(LoginSession.user_id == seeded.admin_id))
        assert row is not None and row.revoked_at is not None
    admin_client.cookies.set("cb_session", old)  # a stolen copy of the old cookie is worthless
    problem(admin_client.get(f"{API}/me"), 401)


def test_deactivated_user_cannot_sign_in_and_their_sessions_stop(
    admin_client: TestClient, ctx: AppContext, seeded: Seeded, new_client: Callable[..., TestClient]
) -> None:
    user_id = make_user(ctx, "leaving", seeded.district, seeded.roles["staff"])
    user_client = new_client("leaving")
    assert user_client.get(f"{API}/me").status_code == 200
    response = admin_client.delete(f"{API}/users/{user_id}")
    assert response.status_code == 200 and response.json()["is_active"] is False
    problem(user_client.get(f"{API}/me"), 401)
    refused = problem(
        new_client().post(f"{API}/session", json={"username": "leaving", "password": PASSWORD}), 401
    )
    wrong = problem(
        new_client().post(f"{API}/session", json={"username": "leaving", "password": "x" * 12}), 401
    )
    assert refused["detail"] == wrong["detail"]  # a deactivated account is not revealed
    with ctx.read() as session:
        rows = session.scalars(select(LoginSession).where(LoginSession.user_id == user_id)).all()
        assert rows and all(r.revoked_at is not None for r in rows)


def test_reactivating_a_user_does_not_revive_old_sessions(
    admin_client: TestClient, ctx: AppContext, seeded: Seeded, new_client: Callable[..., TestClient]
) -> None:
    user_id = make_user(ctx, "on_leave", seeded.district, seeded.roles["staff"])
    user_client = new_client("on_leave")
    assert (
        admin_client.patch(f"{API}/users/{user_id}", json={"is_active": False}).json()["is_active"] is False
    )
    problem(user_client.get(f"{API}/me"), 401)
    assert admin_client.patch(f"{API}/users/{user_id}", json={"is_active": True}).json()["is_active"] is True
    problem(user_client.get(f"{API}/me"), 401)  # the session ended with the deactivation
    assert new_client("on_leave").get(f"{API}/me").status_code == 200


def test_nobody_can_deactivate_themselves(admin_client: TestClient, ctx: AppContext, seeded: Seeded) -> None:
    before = state(ctx)
    problem(admin_client.delete(f"{API}/users/{seeded.admin_id}"), 409)
    problem(admin_client.patch(f"{API}/users/{seeded.admin_id}", json={"is_active": False}), 409)
    assert state(ctx) == before


def test_change_own_password(
    admin_client: TestClient, seeded: Seeded, new_client: Callable[..., TestClient], ctx: AppContext
) -> None:
    before = state(ctx)
    problem(
        admin_client.post(f"{API}/me/password", json={"current": "wrong-one", "password": "brand-new-pw-99"}),
        403,
    )
    invalid(
        admin_client.post(f"{API}/me/password", json={"current": seeded.admin_password, "password": "short"})
    )
    assert state(ctx) == before
    response = admin_client.post(
        f"{API}/me/password", json={"current": seeded.admin_password, "password": "brand-new-pw-99"}
    )
    assert response.status_code == 204, response.text
    problem(
        new_client().post(f"{API}/session", json={"username": "admin", "password": seeded.admin_password}),
        401,
    )
    assert (
        new_client()
        .post(f"{API}/session", json={"username": "admin", "password": "brand-new-pw-99"})
        .is_success
    )


# --- CSRF ----------------------------------------------------------------------------------------


def test_cookie_authenticated_write_needs_the_csrf_header(
    admin_client: TestClient, ctx: AppContext, seeded: Seeded
) -> None:
    header = admin_client.headers.pop("X-CSRF-Token")
    data = {"code": "csrf-test", "name_zh": "测试部门", "parent_id": seeded.root}
    before = state(ctx)
    problem(admin_client.post(f"{API}/departments", json=data), 403)
    problem(admin_client.post(f"{API}/departments", json=data, headers={"X-CSRF-Token": "forged-value"}), 403)
    problem(admin_client.delete(f"{API}/session"), 403)
    assert state(ctx) == before
    assert admin_client.get(f"{API}/me").status_code == 200  # reads need no token
    response = admin_client.post(f"{API}/departments", json=data, headers={"X-CSRF-Token": header})
    assert response.status_code == 201, response.text


def test_bearer_token_requests_need_no_csrf_token(
    admin_client: TestClient, seeded: Seeded, new_client: Callable[..., TestClient]
) -> None:
    token = admin_client.post(
        f"{API}/tokens", json={"name": "etl", "scopes": ["identity.department.*"]}
    ).json()
    machine = new_client()  # no cookies at all
    response = machine.post(
        f"{API}/departments",
        headers=bearer(token["token"]),
        json={"code": "by-token", "name_zh": "令牌部门", "parent_id": seeded.root},
    )
    assert response.status_code == 201, response.text


# --- API tokens ----------------------------------------------------------------------------------


def test_token_secret_is_shown_once_and_only_its_sha256_is_stored(
    admin_client: TestClient, ctx: AppContext, seeded: Seeded
) -> None:
    response = admin_client.post(
        f"{API}/tokens", json={"name": "report job", "scopes": ["identity.user.read"], "expires_in_days": 30}
    )
    assert response.status_code == 201, response.text
    created = response.json()
    token: str = created["token"]
    prefix = f"cbt_{created['id']}_"
    assert token.startswith(prefix) and len(token) > len(prefix) + 30
    secret = token.removeprefix(prefix)
    assert created["user_id"] == seeded.admin_id and created["scopes"] == ["identity.user.read"]

    listed = admin_client.get(f"{API}/tokens")
    assert listed.status_code == 200
    assert [t["id"] for t in listed.json()] == [created["id"]]
    assert "token" not in listed.json()[0] and secret not in listed.text
    assert secret not in admin_client.get(f"{API}/tokens", params={"everyone": True}).text

    with ctx.read() as session:
        row = session.get_one(ApiToken, created["id"])
        assert row.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
        assert all(secret not in str(value) for value in (row.name, row.secret_hash, row.scopes))


def test_token_works_within_its_scopes_only(
    admin_client: TestClient, ctx: AppContext, new_client: Callable[..., TestClient], seeded: Seeded
) -> None:
    created = admin_client.post(
        f"{API}/tokens", json={"name": "reader", "scopes": ["identity.department.read"]}
    )
    token = created.json()["token"]
    machine = new_client()
    departments = machine.get(f"{API}/departments", headers=bearer(token))
    assert departments.status_code == 200 and len(departments.json()) == 4
    me = machine.get(f"{API}/me", headers=bearer(token)).json()
    assert me["kind"] == "token" and me["user"]["id"] == seeded.admin_id
    assert me["permissions"] == {"identity.department.read": "ALL"}
    before = state(ctx)
    problem(machine.get(f"{API}/users", headers=bearer(token)), 403)
    problem(
        machine.post(f"{API}/departments", headers=bearer(token), json={"code": "nope", "name_zh": "否"}), 403
    )
    problem(machine.post(f"{API}/tokens", headers=bearer(token), json={"name": "x", "scopes": ["*"]}), 403)
    assert state(ctx) == before


def test_garbage_revoked_and_expired_tokens_get_401(
    admin_client: TestClient, ctx: AppContext, new_client: Callable[..., TestClient]
) -> None:
    revoked = admin_client.post(
        f"{API}/tokens", json={"name": "old", "scopes": ["identity.role.read"]}
    ).json()
    expired = admin_client.post(
        f"{API}/tokens", json={"name": "stale", "scopes": ["identity.role.read"]}
    ).json()
    good = admin_client.post(f"{API}/tokens", json={"name": "good", "scopes": ["identity.role.read"]}).json()
    machine = new_client()
    assert machine.get(f"{API}/roles", headers=bearer(good["token"])).status_code == 200
    assert machine.get(f"{API}/roles", headers=bearer(revoked["token"])).status_code == 200

    response = admin_client.delete(f"{API}/tokens/{revoked['id']}")
    assert response.status_code == 200 and response.json()["revoked_at"] is not None
    with ctx.db.write_engine.begin() as conn:  # time passes for the second token
        conn.execute(
            update(ApiToken)
            .where(ApiToken.id == expired["id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    wrong_secret = f"cbt_{good['id']}_" + "A" * 43
    for header in (
        bearer(revoked["token"]),
        bearer(expired["token"]),
        bearer("garbage"),
        bearer("cbt_"),
        bearer("cbt_x_y"),
        bearer("cbt_999999_abc"),
        bearer("cbt_99999999999999999999_abc"),
        bearer("cbt_2147483648_abc"),
        bearer(wrong_secret),
        bearer(good["token"] + "x"),
        {"Authorization": "Bearer"},
        {"Authorization": f"Basic {good['token']}"},
    ):
        problem(machine.get(f"{API}/roles", headers=header), 401)
    # a bad token is refused even when a good session cookie comes along
    problem(admin_client.get(f"{API}/me", headers=bearer("garbage")), 401)
    assert machine.get(f"{API}/roles", headers=bearer(good["token"])).status_code == 200


def test_token_scopes_must_be_known_and_within_the_owners_grants(
    ctx: AppContext, seeded: Seeded, new_client: Callable[..., TestClient], admin_client: TestClient
) -> None:
    make_user(ctx, "staffer", seeded.district, seeded.roles["staff"])
    staff = new_client("staffer")
    before = state(ctx)
    for scopes in (
        ["identity.user.read"],
        ["identity.*"],
        ["*"],
        ["identity.department.read", "identity.role.read"],
    ):
        body = problem(staff.post(f"{API}/tokens", json={"name": "mine", "scopes": scopes}), 403)
        assert "identity." in body["detail"]
    for scopes in (["identity.nothing.here"], ["nosuch.*"], ["identity"], [""], []):
        invalid(staff.post(f"{API}/tokens", json={"name": "mine", "scopes": scopes}))
    body = invalid(
        admin_client.post(f"{API}/tokens", json={"name": "x", "scopes": ["identity.bogus.read", "foo.*"]})
    )
    assert "identity.bogus.read" in body["detail"] and "foo.*" in body["detail"]
    invalid(
        staff.post(
            f"{API}/tokens",
            json={"name": "mine", "scopes": ["identity.department.read"], "expires_in_days": 0},
        )
    )
    problem(
        staff.post(
            f"{API}/tokens",
            json={"name": "for-admin", "scopes": ["identity.department.read"], "user_id": seeded.admin_id},
        ),
        403,
    )
    assert state(ctx) == before
    response = staff.post(f"{API}/tokens", json={"name": "mine", "scopes": ["identity.department.read"]})
    assert response.status_code == 201, response.text


def test_a_token_manager_cannot_mint_a_token_wider_than_their_own_grants(
    ctx: AppContext, seeded: Seeded, new_client: Callable[..., TestClient]
) -> None:
    role = services.create_role(
        ctx,
        SYSTEM,
        schemas.RoleCreate(
            code="token_manager",
            name_zh="令牌管理员",
            permissions=["identity.token.create", "identity.token.manage", "identity.user.read"],
        ),
    )
    make_user(ctx, "fc_tokens", seeded.district, role.id)
    boss_id = make_user(ctx, "fc_boss", seeded.district, seeded.roles["platform_admin"], CITY_WIDE)
    peer_id = make_user(ctx, "fc_peer", seeded.district, seeded.roles["department_admin"])
    manager = new_client("fc_tokens")
    before = state(ctx)
    # the boss reads users city-wide; a token for the boss would let the manager do that too
    problem(
        manager.post(
            f"{API}/tokens", json={"name": "boss", "scopes": ["identity.user.read"], "user_id": boss_id}
        ),
        403,
    )
    assert state(ctx) == before
    response = manager.post(
        f"{API}/tokens", json={"name": "peer", "scopes": ["identity.user.read"], "user_id": peer_id}
    )
    assert response.status_code == 201, response.text
    assert response.json()["user_id"] == peer_id
    listed = manager.get(f"{API}/tokens", params={"everyone": True}).json()
    assert [t["user_id"] for t in listed] == [peer_id]


def test_token_actions_are_audited_as_the_token(
    admin_client: TestClient, ctx: AppContext, seeded: Seeded, new_client: Callable[..., TestClient]
) -> None:
    created = admin_client.post(
        f"{API}/tokens", json={"name": "etl", "scopes": ["identity.department.create"]}
    )
    token_id, token = created.json()["id"], created.json()["token"]
    start = head_seq(ctx)
    response = new_client().post(
        f"{API}/departments",
        headers=bearer(token),
        json={"code": "tok-dept", "name_zh": "令牌部门", "parent_id": seeded.root},
    )
    assert response.status_code == 201, response.text
    records = records_after(ctx, start)
    ref = f"token:{token_id}(user:{seeded.admin_id})"
    assert {(r.actor, r.action, r.op, r.obj) for r in records} >= {
        (ref, "identity.department.create", "create", f"identity_department:{response.json()['id']}"),
    }
    assert all(r.actor == ref for r in records)


# --- department scoping --------------------------------------------------------------------------


def test_department_admin_sees_and_manages_only_their_district(
    district: District, ctx: AppContext, seeded: Seeded
) -> None:
    c = district.client
    listed = c.get(f"{API}/users").json()
    assert {u["id"] for u in listed["items"]} == {district.admin_id, district.local_id}
    assert listed["total"] == 2
    assert c.get(f"{API}/users", params={"department_id": seeded.other_district}).json() == {
        "items": [],
        "total": 0,
        "limit": 50,
        "offset": 0,
    }
    assert c.get(f"{API}/users/{district.local_id}").status_code == 200
    before = state(ctx)
    remote = district.remote_id
    for response in (
        c.get(f"{API}/users/{remote}"),
        c.get(f"{API}/users/{remote}/roles"),
        c.patch(f"{API}/users/{remote}", json={"display_name": "changed"}),
        c.delete(f"{API}/users/{remote}"),
        c.post(f"{API}/users/{remote}/password", json={"password": "taken-over-pw-1"}),
        c.post(f"{API}/users/{remote}/unlock"),
        c.post(
            f"{API}/users/{remote}/roles",
            json={"role_id": seeded.roles["staff"], "department_id": seeded.district},
        ),
        c.get(f"{API}/users/999999"),
    ):
        problem(response, 404)
    problem(
        c.post(
            f"{API}/users",
            json={
                "username": "elsewhere",
                "display_name": "别处",
                "department_id": seeded.other_district,
                "password": PASSWORD,
            },
        ),
        403,
    )
    problem(
        c.post(
            f"{API}/users",
            json={
                "username": "at_the_top",
                "display_name": "市里",
                "department_id": seeded.root,
                "password": PASSWORD,
            },
        ),
        403,
    )
    problem(c.patch(f"{API}/users/{district.local_id}", json={"department_id": seeded.other_district}), 403)
    problem(
        c.post(
            f"{API}/departments", json={"code": "fc-sub", "name_zh": "下属", "parent_id": seeded.district}
        ),
        403,
    )
    problem(c.get(f"{API}/tokens", params={"everyone": True}), 403)
    assert state(ctx) == before

    response = c.patch(f"{API}/users/{district.local_id}", json={"display_name": "涪城区工作人员"})
    assert response.status_code == 200 and response.json()["display_name"] == "涪城区工作人员"
    response = c.post(
        f"{API}/users",
        json={
            "username": "fc_new",
            "display_name": "新人",
            "department_id": seeded.district,
            "password": PASSWORD,
        },
    )
    assert response.status_code == 201, response.text


def test_department_admin_cannot_grant_beyond_their_scope_or_permissions(
    district: District, ctx: AppContext, seeded: Seeded, admin_client: TestClient
) -> None:
    c, roles, local = district.client, seeded.roles, district.local_id
    custom = services.create_role(
        ctx,
        SYSTEM,
        schemas.RoleCreate(code="role_maker", name_zh="角色管理", permissions=["identity.role.create"]),
    )
    before = state(ctx)
    for grant in (
        {"role_id": roles["department_admin"], "department_id": seeded.other_district},  # elsewhere
        {"role_id": roles["department_admin"]},  # city-wide
        {"role_id": roles["department_admin"], "department_id": seeded.root},  # above them
        {"role_id": roles["platform_admin"], "department_id": seeded.district},  # more than they hold
        {"role_id": custom.id, "department_id": seeded.district},
    ):
        problem(c.post(f"{API}/users/{local}/roles", json=grant), 403)
    invalid(c.post(f"{API}/users/{local}/roles", json={"role_id": 999999, "department_id": seeded.district}))
    problem(c.post(f"{API}/roles", json={"code": "mine", "name_zh": "我的", "permissions": ["*"]}), 403)
    assert state(ctx) == before

    granted = c.post(
        f"{API}/users/{local}/roles",
        json={"role_id": roles["department_admin"], "department_id": seeded.district},
    )
    assert granted.status_code == 201, granted.text
    problem(
        c.post(
            f"{API}/users/{local}/roles",
            json={"role_id": roles["department_admin"], "department_id": seeded.district},
        ),
        409,
    )
    assert [a["id"] for a in c.get(f"{API}/users/{local}/roles").json()] == [granted.json()["id"]]
    # the city-wide admin may grant it anywhere
    response = admin_client.post(
        f"{API}/users/{district.remote_id}/roles",
        json={"role_id": roles["department_admin"], "department_id": seeded.other_district},
    )
    assert response.status_code == 201, response.text
    city_wide = admin_client.post(f"{API}/users/{local}/roles", json={"role_id": roles["staff"]})
    assert city_wide.status_code == 201 and city_wide.json()["department_id"] is None
    # revoking: the department admin may take back what is in their district, not a city-wide grant
    before = state(ctx)
    problem(c.delete(f"{API}/users/{local}/roles/{city_wide.json()['id']}"), 403)
    problem(c.delete(f"{API}/users/{district.remote_id}/roles/{response.json()['id']}"), 404)
    assert state(ctx) == before
    assert c.delete(f"{API}/users/{local}/roles/{granted.json()['id']}").status_code == 204
    assert [a["id"] for a in c.get(f"{API}/users/{local}/roles").json()] == [city_wide.json()["id"]]


def test_department_admin_cannot_take_over_a_more_privileged_account(
    district: District, ctx: AppContext, seeded: Seeded, new_client: Callable[..., TestClient]
) -> None:
    boss_id = make_user(ctx, "fc_boss", seeded.district, seeded.roles["platform_admin"], CITY_WIDE)
    c = district.client
    before = state(ctx)
    problem(c.post(f"{API}/users/{boss_id}/password", json={"password": "taken-over-pw-1"}), 403)
    problem(c.delete(f"{API}/users/{boss_id}"), 403)
    problem(c.patch(f"{API}/users/{boss_id}", json={"is_active": False}), 403)
    assert state(ctx) == before
    assert new_client().post(f"{API}/session", json={"username": "fc_boss", "password": PASSWORD}).is_success
    # a user with no more power than the admin is theirs to manage
    assert (
        c.post(f"{API}/users/{district.local_id}/password", json={"password": "reset-by-admin-1"}).status_code
        == 204
    )
    assert (
        new_client()
        .post(f"{API}/session", json={"username": "fc_staff", "password": "reset-by-admin-1"})
        .is_success
    )


def test_city_wide_admin_manages_every_district(
    admin_client: TestClient, district: District, seeded: Seeded
) -> None:
    listed = admin_client.get(f"{API}/users").json()
    assert listed["total"] == 4
    by_district = admin_client.get(f"{API}/users", params={"department_id": seeded.other_district}).json()
    assert [u["id"] for u in by_district["items"]] == [district.remote_id]
    response = admin_client.patch(
        f"{API}/users/{district.remote_id}", json={"department_id": seeded.district}
    )
    assert response.status_code == 200 and response.json()["department_id"] == seeded.district
    assert (
        district.client.get(f"{API}/users/{district.remote_id}").status_code == 200
    )  # now in their district
    page = admin_client.get(f"{API}/users", params={"limit": 2, "offset": 1, "q": "staff"}).json()
    assert page["total"] == 2 and [u["id"] for u in page["items"]] == [district.remote_id]


# --- departments ---------------------------------------------------------------------------------


def test_department_create_update_move_and_delete(
    admin_client: TestClient, ctx: AppContext, seeded: Seeded
) -> None:
    c = admin_client
    created = c.post(
        f"{API}/departments",
        json={
            "code": "zwfw",
            "name_zh": "市政务服务管理局",
            "name_en": "Government Services",
            "parent_id": seeded.root,
        },
    )
    assert created.status_code == 201, created.text
    dept = created.json()
    assert dept["kind"] == "department" and dept["parent_id"] == seeded.root
    child = c.post(
        f"{API}/departments",
        json={"code": "zwfw-1", "name_zh": "一科", "kind": "office", "parent_id": dept["id"]},
    ).json()
    assert c.get(f"{API}/departments/{dept['id']}").json() == dept

    before = state(ctx)
    problem(c.post(f"{API}/departments", json={"code": "zwfw", "name_zh": "重复"}), 409)
    invalid(
        c.post(f"{API}/departments", json={"code": "ghost-child", "name_zh": "无父", "parent_id": 999999})
    )
    invalid(c.patch(f"{API}/departments/{dept['id']}", json={"parent_id": child["id"]}))  # under its child
    invalid(c.patch(f"{API}/departments/{dept['id']}", json={"parent_id": dept["id"]}))  # under itself
    invalid(c.patch(f"{API}/departments/{seeded.root}", json={"parent_id": child["id"]}))  # root under a leaf
    invalid(c.patch(f"{API}/departments/{dept['id']}", json={"parent_id": 999999}))
    invalid(c.patch(f"{API}/departments/{dept['id']}", json={"code": "renamed"}))  # the code is fixed
    problem(c.delete(f"{API}/departments/{dept['id']}"), 409)  # has a child
    problem(c.delete(f"{API}/departments/{seeded.city_dept}"), 409)  # has users
    problem(c.patch(f"{API}/departments/999999", json={"name_zh": "无"}), 404)
    problem(c.delete(f"{API}/departments/999999"), 404)
    problem(c.get(f"{API}/departments/999999"), 404)
    assert state(ctx) == before

    renamed = c.patch(
        f"{API}/departments/{dept['id']}", json={"name_zh": "市政务服务和大数据管理局", "sort": 3}
    )
    assert renamed.status_code == 200 and renamed.json()["name_zh"] == "市政务服务和大数据管理局"
    assert renamed.json()["sort"] == 3 and renamed.json()["code"] == "zwfw"
    moved = c.patch(f"{API}/departments/{child['id']}", json={"parent_id": seeded.city_dept})
    assert moved.status_code == 200 and moved.json()["parent_id"] == seeded.city_dept
    to_root = c.patch(f"{API}/departments/{child['id']}", json={"parent_id": None})
    assert to_root.status_code == 200 and to_root.json()["parent_id"] is None
    assert c.delete(f"{API}/departments/{dept['id']}").status_code == 204  # empty now
    problem(c.get(f"{API}/departments/{dept['id']}"), 404)
    assert {d["code"] for d in c.get(f"{API}/departments").json()} == {
        "510700",
        "dsj",
        "510703",
        "510704",
        "zwfw-1",
    }


def test_department_with_role_grants_cannot_be_deleted(
    admin_client: TestClient, ctx: AppContext, seeded: Seeded
) -> None:
    dept = admin_client.post(
        f"{API}/departments", json={"code": "grants", "name_zh": "有授权", "parent_id": seeded.root}
    ).json()
    grant = admin_client.post(
        f"{API}/users/{seeded.admin_id}/roles",
        json={"role_id": seeded.roles["staff"], "department_id": dept["id"]},
    )
    assert grant.status_code == 201
    before = state(ctx)
    problem(admin_client.delete(f"{API}/departments/{dept['id']}"), 409)
    assert state(ctx) == before
    admin_client.delete(f"{API}/users/{seeded.admin_id}/roles/{grant.json()['id']}")
    assert admin_client.delete(f"{API}/departments/{dept['id']}").status_code == 204


def test_only_a_city_wide_admin_creates_or_moves_top_level_departments(
    district: District, ctx: AppContext, seeded: Seeded
) -> None:
    role = services.create_role(
        ctx,
        SYSTEM,
        schemas.RoleCreate(code="dept_maker", name_zh="部门管理", permissions=["identity.department.*"]),
    )
    services.assign_role(
        ctx,
        SYSTEM,
        district.admin_id,
        schemas.AssignmentCreate(role_id=role.id, department_id=seeded.district),
    )
    c = district.client
    before = state(ctx)
    problem(c.post(f"{API}/departments", json={"code": "top", "name_zh": "顶层"}), 403)
    problem(
        c.post(
            f"{API}/departments", json={"code": "yx-1", "name_zh": "游仙", "parent_id": seeded.other_district}
        ),
        403,
    )
    problem(c.patch(f"{API}/departments/{seeded.district}", json={"parent_id": None}), 403)
    problem(c.patch(f"{API}/departments/{seeded.district}", json={"parent_id": seeded.other_district}), 403)
    problem(c.patch(f"{API}/departments/{seeded.other_district}", json={"name_zh": "改名"}), 403)
    problem(c.delete(f"{API}/departments/{seeded.other_district}"), 403)
    assert state(ctx) == before
    response = c.post(
        f"{API}/departments",
        json={"code": "fc-office", "name_zh": "涪城区办公室", "parent_id": seeded.district},
    )
    assert response.status_code == 201, response.text
    assert c.delete(f"{API}/departments/{response.json()['id']}").status_code == 204


# --- roles ---------------------------------------------------------------------------------------


def test_roles(admin_client: TestClient, ctx: AppContext, seeded: Seeded) -> None:
    c = admin_client
    assert {r["code"] for r in c.get(f"{API}/roles").json()} == {
        "platform_admin",
        "department_admin",
        "staff",
    }
    codes = {p["code"] for p in c.get(f"{API}/permissions").json()}
    assert codes == set(ctx.permissions) and "identity.role.assign" in codes
    before = state(ctx)
    body = invalid(
        c.post(
            f"{API}/roles",
            json={
                "code": "auditor",
                "name_zh": "审计员",
                "permissions": ["identity.user.read", "identity.user.spy"],
            },
        )
    )
    assert "identity.user.spy" in body["detail"]
    invalid(c.post(f"{API}/roles", json={"code": "Bad Code", "name_zh": "坏"}))
    problem(
        c.patch(f"{API}/roles/{seeded.roles['staff']}", json={"permissions": ["identity.user.read"]}), 409
    )
    problem(c.delete(f"{API}/roles/{seeded.roles['staff']}"), 409)
    problem(c.get(f"{API}/roles/999999"), 404)
    problem(c.patch(f"{API}/roles/999999", json={"name_zh": "无"}), 404)
    problem(c.delete(f"{API}/roles/999999"), 404)
    assert state(ctx) == before

    created = c.post(
        f"{API}/roles",
        json={
            "code": "auditor",
            "name_zh": "审计员",
            "name_en": "Auditor",
            "permissions": ["identity.user.read", "identity.role.read", "identity.user.read"],
        },
    )
    assert created.status_code == 201, created.text
    role = created.json()
    assert role["permissions"] == ["identity.role.read", "identity.user.read"] and role["builtin"] is False
    problem(c.post(f"{API}/roles", json={"code": "auditor", "name_zh": "又一个"}), 409)
    updated = c.patch(
        f"{API}/roles/{role['id']}", json={"permissions": ["identity.*"], "description": "全部"}
    )
    assert updated.status_code == 200 and updated.json()["permissions"] == ["identity.*"]
    renamed = c.patch(f"{API}/roles/{seeded.roles['staff']}", json={"name_zh": "一般工作人员"})
    assert renamed.status_code == 200 and renamed.json()["name_zh"] == "一般工作人员"
    assert renamed.json()["permissions"] == ["identity.department.read", "identity.token.create"]

    grant = c.post(f"{API}/users/{seeded.admin_id}/roles", json={"role_id": role["id"]}).json()
    before = state(ctx)
    problem(c.delete(f"{API}/roles/{role['id']}"), 409)
    assert state(ctx) == before
    assert c.delete(f"{API}/users/{seeded.admin_id}/roles/{grant['id']}").status_code == 204
    assert c.delete(f"{API}/roles/{role['id']}").status_code == 204
    problem(c.get(f"{API}/roles/{role['id']}"), 404)


def test_explicit_nulls_in_a_patch_do_not_break_anything(
    admin_client: TestClient, ctx: AppContext, seeded: Seeded
) -> None:
    c = admin_client
    for url, body in (
        (f"/departments/{seeded.district}", {"name_zh": None, "kind": None, "sort": None, "name_en": None}),
        (f"/users/{seeded.admin_id}", {"display_name": None, "is_active": None, "department_id": None}),
        (f"/roles/{seeded.roles['staff']}", {"name_zh": None, "permissions": None}),
    ):
        response = c.patch(API + url, json=body)
        assert response.status_code in (200, 422), response.text
        if response.status_code == 422:
            invalid(response)
    assert c.get(f"{API}/departments/{seeded.district}").json()["name_zh"] == "涪城区"
    assert c.get(f"{API}/users/{seeded.admin_id}").json()["display_name"] == "平台管理员"


# --- users ---------------------------------------------------------------------------------------


def test_user_create_refuses_duplicates_and_weak_passwords(
    admin_client: TestClient, ctx: AppContext, seeded: Seeded
) -> None:
    c = admin_client
    data = {
        "username": "zhang.san",
        "display_name": "张三",
        "department_id": seeded.district,
        "password": PASSWORD,
    }
    created = c.post(f"{API}/users", json=data)
    assert created.status_code == 201, created.text
    assert created.json()["username"] == "zhang.san" and created.json()["is_active"] is True
    before = state(ctx)
    body = problem(c.post(f"{API}/users", json={**data, "username": "ZHANG.SAN"}), 409)
    assert "ZHANG.SAN" in body["detail"]
    for password in (
        "short-1",
        "aaaaaaaaaaaa",
        "abababababab",
        "1234567890",
        "password123",
        "qwertyuiop",
        "Password1234",
    ):
        invalid(c.post(f"{API}/users", json={**data, "username": "li.si", "password": password}))
    invalid(c.post(f"{API}/users", json={**data, "username": "wang.xiao.er", "password": "Wang.Xiao.Er"}))
    for bad in (
        {"username": "no spaces"},
        {"username": "ab"},
        {"username": "x" * 65},
        {"display_name": ""},
        {"phone": "call me"},
        {"email": "not-an-email"},
        {"department_id": 999999},
        {"department_id": "ten"},
    ):
        invalid(c.post(f"{API}/users", json={**data, "username": "li.si", **bad}))
    invalid(c.post(f"{API}/users/{seeded.admin_id}/password", json={"password": "zzzzzzzzzzzz"}))
    assert state(ctx) == before


def test_phone_and_email_are_masked_in_every_response(
    admin_client: TestClient, ctx: AppContext, seeded: Seeded, new_client: Callable[..., TestClient]
) -> None:
    c = admin_client
    created = c.post(
        f"{API}/users",
        json={
            "username": "wang.wu",
            "display_name": "王五",
            "password": PASSWORD,
            "department_id": seeded.district,
            "phone": "13812345678",
            "email": "wangwu@mianyang.gov.cn",
        },
    )
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    services.assign_role(ctx, SYSTEM, user_id, schemas.AssignmentCreate(role_id=seeded.roles["staff"]))
    own = new_client()
    own.get("/")
    responses = [
        created,
        c.get(f"{API}/users/{user_id}"),
        c.get(f"{API}/users"),
        c.get(f"{API}/users", params={"q": "wang"}),
        c.patch(f"{API}/users/{user_id}", json={"display_name": "王五五"}),
        own.post(f"{API}/session", json={"username": "wang.wu", "password": PASSWORD}),
    ]
    responses.append(own.get(f"{API}/me"))
    responses.append(c.post(f"{API}/users/{user_id}/unlock"))
    responses.append(c.delete(f"{API}/users/{user_id}"))
    for response in responses:
        assert response.status_code in (200, 201), response.text
        assert "13812345678" not in response.text and "wangwu@" not in response.text
        assert "138****5678" in response.text and "w***@mianyang.gov.cn" in response.text
    with ctx.read() as session:  # the full number is kept, only the API masks it
        assert session.get_one(User, user_id).phone == "13812345678"
    changed = c.patch(f"{API}/users/{user_id}", json={"phone": "+86-139-8765-4321", "email": None})
    assert changed.json()["phone"] == "+86**********4321" and changed.json()["email"] is None


def test_admin_resets_a_password(
    admin_client: TestClient, ctx: AppContext, seeded: Seeded, new_client: Callable[..., TestClient]
) -> None:
    user_id = make_user(ctx, "forgetful", seeded.district)
    assert (
        admin_client.post(
            f"{API}/users/{user_id}/password", json={"password": "fresh-start-2024"}
        ).status_code
        == 204
    )
    problem(new_client().post(f"{API}/session", json={"username": "forgetful", "password": PASSWORD}), 401)
    assert (
        new_client()
        .post(f"{API}/session", json={"username": "forgetful", "password": "fresh-start-2024"})
        .is_success
    )


def test_anonymous_gets_401_and_staff_403(
    client: TestClient, ctx: AppContext, seeded: Seeded, new_client: Callable[..., TestClient]
) -> None:
    for method, url in (
        ("GET", "/users"),
        ("GET", "/roles"),
        ("GET", "/departments"),
        ("GET", "/tokens"),
        ("POST", "/roles"),
        ("GET", "/permissions"),
        ("GET", f"/users/{seeded.admin_id}"),
    ):
        problem(client.request(method, API + url, json={"code": "xyz", "name_zh": "x"}), 401)
    make_user(ctx, "staffer", seeded.district, seeded.roles["staff"])
    staff = new_client("staffer")
    assert staff.get(f"{API}/departments").status_code == 200
    before = state(ctx)
    problem(staff.get(f"{API}/users"), 403)
    problem(staff.get(f"{API}/users/{seeded.admin_id}"), 403)
    problem(
        staff.post(
            f"{API}/users",
            json={
                "username": "sneaky",
                "display_name": "x",
                "password": PASSWORD,
                "department_id": seeded.district,
            },
        ),
        403,
    )
    problem(staff.delete(f"{API}/users/{seeded.admin_id}"), 403)
    assert state(ctx) == before


# --- bad input everywhere ------------------------------------------------------------------------


def test_malformed_json_unknown_fields_and_bad_ids_get_422_and_write_nothing(
    admin_client: TestClient, ctx: AppContext, seeded: Seeded
) -> None:
    c = admin_client
    role = services.create_role(ctx, SYSTEM, schemas.RoleCreate(code="spare", name_zh="备用"))
    writes = [
        ("POST", "/session"),
        ("POST", "/departments"),
        ("PATCH", f"/departments/{seeded.district}"),
        ("POST", "/users"),
        ("PATCH", f"/users/{seeded.admin_id}"),
        ("POST", f"/users/{seeded.admin_id}/password"),
        ("POST", f"/users/{seeded.admin_id}/roles"),
        ("POST", "/roles"),
        ("PATCH", f"/roles/{role.id}"),
        ("POST", "/tokens"),
        ("POST", "/me/password"),
    ]
    before = state(ctx)
    for method, url in writes:
        for content in (b'{"name_zh": "x",', b"not json", b"[1, 2]", b'"text"', b""):
            response = c.request(
                method, API + url, content=content, headers={"content-type": "application/json"}
            )
            body = invalid(response)
            assert body["errors"], (method, url, content)
        body = invalid(c.request(method, API + url, json={"surprise": 1}))
        assert any(e["loc"][-1] == "surprise" and e["type"] == "extra_forbidden" for e in body["errors"]), (
            body
        )
    for url in (
        "/users/abc",
        "/users/0",
        "/users/-1",
        "/users/100000000000000000000",
        "/users/2147483648",
        "/departments/9223372036854775808",
        "/roles/99999999999999",
        "/tokens/1e3",
    ):
        response = c.get(API + url) if not url.startswith("/tokens") else c.delete(API + url)
        assert response.status_code in (404, 422), (url, response.text)
        problem(response, response.status_code)
    huge = 10**20
    for method, url, data in (
        (
            "POST",
            "/users",
            {"username": "huge", "display_name": "x", "password": PASSWORD, "department_id": huge},
        ),
        ("POST", "/departments", {"code": "huge", "name_zh": "x", "parent_id": huge}),
        ("POST", "/departments", {"code": "huge", "name_zh": "x", "parent_id": seeded.root, "sort": 2**40}),
        ("POST", f"/users/{seeded.admin_id}/roles", {"role_id": huge}),
        ("POST", f"/users/{seeded.admin_id}/roles", {"role_id": role.id, "department_id": 2**31}),
        ("POST", "/tokens", {"name": "x", "scopes": ["identity.user.read"], "user_id": huge}),
        ("PATCH", f"/users/{seeded.admin_id}", {"department_id": huge}),
        ("GET", f"/users?department_id={huge}", None),
    ):
        response = c.request(method, API + url, json=data)
        assert response.status_code in (404, 422), (url, data, response.text)
        problem(response, response.status_code)
    assert state(ctx) == before


# --- audit ---------------------------------------------------------------------------------------


def test_every_write_is_audited_with_actor_and_action_and_the_chain_verifies(
    client: TestClient, ctx: AppContext, seeded: Seeded
) -> None:
    start = head_seq(ctx)
    problem(client.post(f"{API}/session", json={"username": "admin", "password": "wrong-password"}), 401)
    login(client, "admin", seeded.admin_password)
    c = client
    dept = c.post(
        f"{API}/departments", json={"code": "audit-d", "name_zh": "审计部门", "parent_id": seeded.root}
    )
    user = c.post(
        f"{API}/users",
        json={
            "username": "audited",
            "display_name": "被审计",
            "password": PASSWORD,
            "department_id": dept.json()["id"],
        },
    )
    uid = user.json()["id"]
    c.patch(f"{API}/users/{uid}", json={"display_name": "改名"})
    grant = c.post(f"{API}/users/{uid}/roles", json={"role_id": seeded.roles["staff"]}).json()
    role = c.post(
        f"{API}/roles", json={"code": "viewer", "name_zh": "查看", "permissions": ["identity.role.read"]}
    )
    token = c.post(f"{API}/tokens", json={"name": "t", "scopes": ["identity.role.read"]}).json()
    c.delete(f"{API}/tokens/{token['id']}")
    c.delete(f"{API}/users/{uid}/roles/{grant['id']}")
    c.delete(f"{API}/roles/{role.json()['id']}")
    c.delete(f"{API}/users/{uid}")
    c.delete(f"{API}/session")

    me = f"user:{seeded.admin_id}"
    with ctx.read() as session:
        session_id = session.scalar(select(LoginSession.id).where(LoginSession.user_id == seeded.admin_id))
    got = {(r.actor, r.action, r.op, r.obj) for r in records_after(ctx, start)}
    expected = {
        ("anonymous", "identity.session.fail", "update", f"identity_user:{seeded.admin_id}"),
        (me, "identity.session.create", "update", f"identity_user:{seeded.admin_id}"),
        (me, "identity.department.create", "create", f"identity_department:{dept.json()['id']}"),
        (me, "identity.user.create", "create", f"identity_user:{uid}"),
        (me, "identity.user.update", "update", f"identity_user:{uid}"),
        (me, "identity.role.assign", "create", f"identity_role_assignment:{grant['id']}"),
        (me, "identity.role.create", "create", f"identity_role:{role.json()['id']}"),
        (me, "identity.token.create", "create", f"identity_api_token:{token['id']}"),
        (me, "identity.token.revoke", "update", f"identity_api_token:{token['id']}"),
        (me, "identity.role.revoke", "delete", f"identity_role_assignment:{grant['id']}"),
        (me, "identity.role.delete", "delete", f"identity_role:{role.json()['id']}"),
        (me, "identity.user.delete", "update", f"identity_user:{uid}"),
        (me, "identity.session.revoke", "update", f"identity_session:{session_id}"),
    }
    assert expected <= got, expected - got
    assert any(
        a == "identity.session.create" and o == "create" and obj.startswith("identity_session:")
        for _, a, o, obj in got
    )
    with ctx.read() as session:
        verdict = verify(session)
        total = session.scalar(text("SELECT count(*) FROM core_ledger"))
    assert verdict.ok, str(verdict)
    assert verdict.checked == total > len(expected)


def test_a_refused_write_leaves_no_ledger_record_even_midway(
    admin_client: TestClient, ctx: AppContext, seeded: Seeded
) -> None:
    # a conflict found after the unit of work began (the username check) rolls everything back
    before = state(ctx)
    problem(
        admin_client.post(
            f"{API}/users",
            json={
                "username": "Admin",
                "display_name": "x",
                "password": PASSWORD,
                "department_id": seeded.district,
            },
        ),
        409,
    )
    problem(
        admin_client.patch(f"{API}/roles/{seeded.roles['platform_admin']}", json={"permissions": []}), 409
    )
    assert state(ctx) == before
    with ctx.read() as session:
        assert verify(session).ok
