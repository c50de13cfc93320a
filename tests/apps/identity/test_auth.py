"""API tokens: checked in the database once, then served from the in-process cache until it must forget them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import event, update
from starlette.requests import Request

from citybrain.apps.identity import schemas, services
from citybrain.apps.identity.auth import authenticate
from citybrain.apps.identity.models import ApiToken, User
from citybrain.apps.identity.settings import IdentitySettings
from citybrain.core.context import AppContext
from citybrain.core.db import utcnow
from citybrain.core.permissions import SYSTEM, Actor
from citybrain.core.settings import SettingsError, load_app_settings
from tests.conftest import Seeded

API = "/api/identity"


@pytest.fixture(autouse=True)
def cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2id with tiny costs: these tests are about tokens, not passwords."""
    monkeypatch.setattr(
        services, "_hasher", lambda _ctx: PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )


@pytest.fixture
def identity_sql(ctx: AppContext) -> Iterator[list[str]]:
    """The SQL statements on identity tables from now on (background pollers touch other tables)."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "identity_" in statement:
            seen.append(statement)

    engines = {ctx.db.engine, ctx.db.write_engine}
    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    yield seen
    for engine in engines:
        event.remove(engine, "before_cursor_execute", record)


def staff_token(ctx: AppContext, seeded: Seeded) -> tuple[int, schemas.TokenCreated]:
    """A staff user of a district (their role granted there) and a token that reads departments."""
    user = services.create_user(
        ctx,
        SYSTEM,
        schemas.UserCreate(
            username="etl", display_name="ETL", department_id=seeded.district, password="etl-password-42"
        ),
    )
    services.assign_role(
        ctx,
        SYSTEM,
        user.id,
        schemas.AssignmentCreate(role_id=seeded.roles["staff"], department_id=seeded.district),
    )
    with ctx.read() as session:
        owner = services.actor_for(ctx, session, session.get_one(User, user.id))
    token = services.create_token(
        ctx, owner, schemas.TokenCreate(name="etl", scopes=["identity.department.read"])
    )
    return user.id, token


def admin_token(ctx: AppContext, seeded: Seeded, scopes: list[str]) -> str:
    """A token of the city-wide platform admin limited to `scopes`."""
    with ctx.read() as session:
        admin = services.actor_for(ctx, session, session.get_one(User, seeded.admin_id))
    return services.create_token(ctx, admin, schemas.TokenCreate(name="job", scopes=scopes)).token


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for an API token."""
    return {"Authorization": f"Bearer {token}"}


def request_with(headers: dict[str, str]) -> Request:
    """A bare request carrying these headers."""
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "method": "GET", "path": "/", "query_string": b"", "headers": raw})


def test_repeated_requests_with_a_token_do_not_touch_the_database(
    client: TestClient, ctx: AppContext, seeded: Seeded, identity_sql: list[str]
) -> None:
    headers = bearer(admin_token(ctx, seeded, ["identity.role.read"]))
    identity_sql.clear()
    assert client.get(f"{API}/permissions", headers=headers).status_code == 200
    assert any("identity_api_token" in s for s in identity_sql)  # the first request checks the token
    identity_sql.clear()
    for _ in range(5):
        response = client.get(f"{API}/permissions", headers=headers)  # served from memory alone
        assert response.status_code == 200 and response.json()
    assert identity_sql == []


def test_a_revoked_token_is_refused_at_once_although_it_was_cached(
    admin_client: TestClient, ctx: AppContext, seeded: Seeded
) -> None:
    created = admin_client.post(
        f"{API}/tokens", json={"name": "job", "scopes": ["identity.role.read"]}
    ).json()
    machine = TestClient(admin_client.app, base_url="http://testserver")  # a machine beside the browser
    assert machine.get(f"{API}/roles", headers=bearer(created["token"])).status_code == 200
    assert services.recall_bearer(ctx, created["token"]) is not None
    assert admin_client.delete(f"{API}/tokens/{created['id']}").status_code == 200
    refused = machine.get(f"{API}/roles", headers=bearer(created["token"]))
    machine.close()
    assert refused.status_code == 401 and refused.headers["content-type"] == "application/problem+json"


def test_an_expired_token_is_refused_even_when_cached(
    client: TestClient, ctx: AppContext, seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(ctx.app_settings, "identity", IdentitySettings(token_cache_seconds=300))
    _, token = staff_token(ctx, seeded)
    start = utcnow()
    with ctx.db.write_engine.begin() as conn:  # the token runs out well within the cache's TTL
        conn.execute(
            update(ApiToken).where(ApiToken.id == token.id).values(expires_at=start + timedelta(seconds=5))
        )
    monkeypatch.setattr(services, "utcnow", lambda: start)
    assert client.get(f"{API}/departments", headers=bearer(token.token)).status_code == 200
    assert services.recall_bearer(ctx, token.token) is not None
    monkeypatch.setattr(services, "utcnow", lambda: start + timedelta(seconds=6))
    assert services.recall_bearer(ctx, token.token) is None
    assert client.get(f"{API}/departments", headers=bearer(token.token)).status_code == 401


def test_the_cache_lasts_its_ttl_then_asks_the_database_again(
    client: TestClient,
    ctx: AppContext,
    seeded: Seeded,
    identity_sql: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    headers = bearer(admin_token(ctx, seeded, ["identity.role.read"]))
    start = utcnow()
    monkeypatch.setattr(services, "utcnow", lambda: start)
    assert client.get(f"{API}/permissions", headers=headers).status_code == 200
    identity_sql.clear()
    monkeypatch.setattr(services, "utcnow", lambda: start + timedelta(seconds=9.5))
    assert client.get(f"{API}/permissions", headers=headers).status_code == 200
    assert identity_sql == []
    monkeypatch.setattr(services, "utcnow", lambda: start + timedelta(seconds=10.5))
    assert client.get(f"{API}/permissions", headers=headers).status_code == 200
    assert any("identity_api_token" in s for s in identity_sql)


def test_a_zero_ttl_checks_every_request_in_the_database(
    client: TestClient,
    ctx: AppContext,
    seeded: Seeded,
    identity_sql: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(ctx.app_settings, "identity", IdentitySettings(token_cache_seconds=0))
    token = admin_token(ctx, seeded, ["identity.role.read"])
    for _ in range(2):
        identity_sql.clear()
        assert client.get(f"{API}/permissions", headers=bearer(token)).status_code == 200
        assert any("identity_api_token" in s for s in identity_sql)
    assert services.recall_bearer(ctx, token) is None


def test_a_bad_token_is_never_cached(
    client: TestClient, ctx: AppContext, seeded: Seeded, identity_sql: list[str]
) -> None:
    _, token = staff_token(ctx, seeded)
    good = token.token
    wrong = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    assert client.get(f"{API}/departments", headers=bearer(good)).status_code == 200
    for _ in range(2):
        identity_sql.clear()
        assert client.get(f"{API}/departments", headers=bearer(wrong)).status_code == 401
        assert any("identity_api_token" in s for s in identity_sql)  # looked up each time
    assert services.recall_bearer(ctx, wrong) is None
    assert client.get(f"{API}/departments", headers=bearer(good)).status_code == 200


@pytest.mark.parametrize("change", ["deactivate", "revoke_role", "move_department"])
def test_changing_the_owners_access_takes_effect_at_once(
    client: TestClient, ctx: AppContext, seeded: Seeded, change: str
) -> None:
    user_id, token = staff_token(ctx, seeded)
    headers = bearer(token.token)
    assert client.get(f"{API}/departments", headers=headers).status_code == 200
    actor = services.authenticate_bearer(ctx, token.token)
    assert actor is not None and actor.scope("identity.department.read") == frozenset({seeded.district})
    if change == "deactivate":
        services.deactivate_user(ctx, SYSTEM, user_id)
        assert client.get(f"{API}/departments", headers=headers).status_code == 401
        return
    if change == "revoke_role":
        (grant,) = services.list_assignments(ctx, SYSTEM, user_id)
        services.revoke_assignment(ctx, SYSTEM, user_id, grant.id)
        assert client.get(f"{API}/departments", headers=headers).status_code == 403
        return
    # moving a department under the district widens the subtree the role was granted in
    services.update_department(
        ctx, SYSTEM, seeded.other_district, schemas.DepartmentUpdate(parent_id=seeded.district)
    )
    wider = services.authenticate_bearer(ctx, token.token)
    assert wider is not None
    assert wider.scope("identity.department.read") == frozenset({seeded.district, seeded.other_district})
    services.update_user(ctx, SYSTEM, user_id, schemas.UserUpdate(department_id=seeded.city_dept))
    moved = services.authenticate_bearer(ctx, token.token)
    assert moved is not None and moved.department_id == seeded.city_dept


def test_recall_answers_from_memory_only(client: TestClient, ctx: AppContext, seeded: Seeded) -> None:
    _, token = staff_token(ctx, seeded)
    assert authenticate.recall(ctx, request_with(bearer(token.token))) is None  # not checked yet
    assert client.get(f"{API}/departments", headers=bearer(token.token)).status_code == 200
    recalled = authenticate.recall(ctx, request_with(bearer(token.token)))
    assert recalled is not None and recalled.token_id == token.id
    assert recalled == authenticate(ctx, request_with(bearer(token.token)))
    for headers in ({}, {"Authorization": f"Basic {token.token}"}, {"Cookie": "cb_session=abc"}):
        assert authenticate.recall(ctx, request_with(headers)) is None


def test_a_lookup_that_raced_a_clear_is_not_stored() -> None:
    cache = services.TokenCache()
    actor = Actor(kind="token", id=1, token_id=1)
    until = utcnow() + timedelta(seconds=10)
    generation = cache.generation
    cache.clear()  # an identity write committed while the lookup was reading the database
    cache.put("key", actor, until, generation)
    assert cache.get("key", utcnow()) is None
    cache.put("key", actor, until, cache.generation)
    assert cache.get("key", utcnow()) is actor
    assert cache.get("key", until) is None


def test_the_ttl_is_a_validated_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert IdentitySettings().token_cache_seconds == 10
    assert "CITYBRAIN_IDENTITY_TOKEN_CACHE_SECONDS" in (
        IdentitySettings.model_fields["token_cache_seconds"].description or ""
    )
    monkeypatch.setenv("CITYBRAIN_IDENTITY_TOKEN_CACHE_SECONDS", "2.5")
    assert load_app_settings(IdentitySettings, "identity").token_cache_seconds == 2.5
    monkeypatch.setenv("CITYBRAIN_IDENTITY_TOKEN_CACHE_SECONDS", "-1")
    with pytest.raises(SettingsError, match="CITYBRAIN_IDENTITY_TOKEN_CACHE_SECONDS"):
        load_app_settings(IdentitySettings, "identity")


def test_only_the_first_authenticator_may_answer_from_memory(
    ctx: AppContext, seeded: Seeded, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from citybrain.core.web import recalled_actor

    _, token = staff_token(ctx, seeded)
    assert client.get(f"{API}/departments", headers=bearer(token.token)).status_code == 200
    request = request_with(bearer(token.token))
    request.scope["app"] = client.app
    before: Callable[[AppContext, Request], Actor | None] = lambda _ctx, _request: None  # noqa: E731
    monkeypatch.setattr(ctx, "authenticators", [before, *ctx.authenticators])
    assert recalled_actor(request) is None
    monkeypatch.setattr(ctx, "authenticators", ctx.authenticators[1:])
    found = recalled_actor(request)
    assert found is not None and found.token_id == token.id
    assert request.state.actor is found
