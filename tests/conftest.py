"""Shared fixtures: a real, migrated database (SQLite or PostgreSQL) and the real app over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import threading
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from citybrain.core.asgi import create_app
from citybrain.core.context import AppContext
from citybrain.core.migrate import upgrade
from citybrain.core.platform import build_context
from citybrain.core.settings import Settings, load_settings

BACKEND = os.environ.get("CITYBRAIN_TEST_DATABASE", "sqlite")
PG_URL = os.environ.get("CITYBRAIN_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REQUIRE_SERVICES = os.environ.get("CITYBRAIN_REQUIRE_SERVICES") == "1"
TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"
ADMIN_PASSWORD = "admin-password-123"
STOP_DUMP_SECONDS = 60.0
# Passwords are hashed with tiny Argon2id costs here (tests/apps/identity checks the real defaults).
os.environ.setdefault("CITYBRAIN_IDENTITY_ARGON2_TIME_COST", "1")
os.environ.setdefault("CITYBRAIN_IDENTITY_ARGON2_MEMORY_KIB", "64")
os.environ.setdefault("CITYBRAIN_IDENTITY_ARGON2_PARALLELISM", "1")
# Tests compute the vital signs when they need them (tests/apps/indicators runs the scheduler itself).
os.environ.setdefault("CITYBRAIN_INDICATORS_COMPUTE_SECONDS", "0")


def service_missing(what: str, error: Exception) -> None:
    """Skip on a developer machine without the service; fail in CI, where it must be there."""
    message = f"{what} is not reachable: {error}"
    if REQUIRE_SERVICES:
        pytest.fail(message)
    pytest.skip(message)


def make_settings(data_dir: Path, database_url: str | None = None, **overrides: object) -> Settings:
    """Development settings with a data directory of the test's own."""
    return load_settings(
        data_dir=data_dir,
        database_url=database_url,
        secret_key=TEST_SECRET,
        mode="development",
        bus_url="memory://",
        **overrides,
    )


@pytest.fixture(scope="session")
def database_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str | Path]:
    """Migrate once per run: an SQLite file to copy, or a PostgreSQL database to truncate."""
    base = tmp_path_factory.mktemp("template")
    if BACKEND == "sqlite":
        settings = make_settings(base)
        ctx = build_context(settings)
        upgrade(ctx)
        ctx.db.dispose()
        yield base / "citybrain.db"
        return
    name = f"citybrain_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # the server is down or refuses us
        admin.dispose()
        service_missing("PostgreSQL", exc)
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    ctx = build_context(make_settings(base, url))
    upgrade(ctx)
    ctx.db.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


LEFTOVERS = (
    "SELECT pid, state, xact_start, left(query, 200) FROM pg_stat_activity"
    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


def _truncate(url: str) -> None:
    """Empty every table; a session an earlier test left open is named in a warning and ended, never waited on."""
    engine = create_engine(url)
    with engine.begin() as conn:
        tables = [
            r[0]
            for r in conn.execute(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
                    " AND NOT EXISTS (SELECT FROM pg_depend WHERE deptype = 'e'"  # keep extensions' tables
                    " AND objid = format('%I.%I', schemaname, tablename)::regclass)"
                )
            )
        ]
    if not tables:
        engine.dispose()
        return
    statement = text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
    try:
        with engine.begin() as conn:
            # idle sessions are what earlier tests' engines left behind: end them before they add up
            conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM ({LEFTOVERS} AND state = 'idle') AS s"))
            conn.execute(text("SET LOCAL lock_timeout = '20s'"))
            conn.execute(statement)
    except OperationalError:
        with engine.begin() as conn:
            left = conn.execute(text(LEFTOVERS)).all()
            conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM ({LEFTOVERS}) AS s"))
            warnings.warn(f"sessions left open by an earlier test were ended: {left}", stacklevel=1)
        with engine.begin() as conn:
            conn.execute(statement)
    engine.dispose()


@pytest.fixture
def settings(tmp_path: Path, database_template: str | Path) -> Settings:
    """Settings pointing at a fresh, migrated, empty database."""
    if isinstance(database_template, Path):
        shutil.copy(database_template, tmp_path / "citybrain.db")
        return make_settings(tmp_path)
    _truncate(database_template)
    return make_settings(tmp_path, database_template)


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    """The real platform app with every installed app enabled."""
    return create_app(settings)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """An in-process HTTP client with the app's lifespan (bus, outbox relay) running."""
    with TestClient(app, base_url="http://testserver") as test_client:
        yield test_client
        # a stop that hangs shows what the event loop's tasks are waiting on (pytest-timeout shows threads)
        watchdog = threading.Timer(STOP_DUMP_SECONDS, _dump_tasks, args=(test_client.portal,))
        watchdog.daemon = True
        watchdog.start()
    watchdog.cancel()


def _dump_tasks(portal: Any) -> None:
    """Print the stack of every task of a test client's event loop (called when its stop hangs)."""

    def dump() -> None:
        for task in asyncio.all_tasks():
            print(f"--- {task!r}", file=sys.stderr)
            task.print_stack(file=sys.stderr)

    with contextlib.suppress(RuntimeError):  # the stop ended meanwhile and closed the portal
        portal.call(dump)


@pytest.fixture
def ctx(app: FastAPI, client: TestClient) -> AppContext:
    """The running app's platform context."""
    context: AppContext = app.state.ctx
    return context


@dataclass
class Seeded:
    """Ids of the seeded org tree and the admin's credentials."""

    root: int
    city_dept: int
    district: int
    other_district: int
    admin_id: int
    roles: dict[str, int]
    admin_username: str = "admin"
    admin_password: str = ADMIN_PASSWORD


@pytest.fixture
def seeded(ctx: AppContext) -> Seeded:
    """A small org tree (city → bureau; city → two districts) and a city-wide platform admin."""
    from citybrain.apps.identity import schemas, services
    from citybrain.core.permissions import SYSTEM

    roles = services.ensure_builtin_roles(ctx, SYSTEM)
    dept = services.create_department
    root = dept(
        ctx, SYSTEM, schemas.DepartmentCreate(code="510700", name_zh="绵阳市人民政府", kind="municipal")
    )
    city = dept(ctx, SYSTEM, schemas.DepartmentCreate(code="dsj", name_zh="市大数据中心", parent_id=root.id))
    d1 = dept(
        ctx,
        SYSTEM,
        schemas.DepartmentCreate(code="510703", name_zh="涪城区", kind="district", parent_id=root.id),
    )
    d2 = dept(
        ctx,
        SYSTEM,
        schemas.DepartmentCreate(code="510704", name_zh="游仙区", kind="district", parent_id=root.id),
    )
    admin = services.create_user(
        ctx,
        SYSTEM,
        schemas.UserCreate(
            username="admin", display_name="平台管理员", department_id=city.id, password=ADMIN_PASSWORD
        ),
    )
    services.assign_role(ctx, SYSTEM, admin.id, schemas.AssignmentCreate(role_id=roles["platform_admin"]))
    return Seeded(
        root=root.id, city_dept=city.id, district=d1.id, other_district=d2.id, admin_id=admin.id, roles=roles
    )


def login(client: TestClient, username: str, password: str) -> None:
    """Sign in through the API; the client keeps the session cookie and sends the CSRF header."""
    client.get("/")  # obtain the CSRF cookie
    response = client.post("/api/identity/session", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    client.headers["X-CSRF-Token"] = client.cookies.get("cb_csrf") or ""


@pytest.fixture
def admin_client(client: TestClient, seeded: Seeded) -> TestClient:
    """A client signed in as the city-wide platform admin."""
    login(client, seeded.admin_username, seeded.admin_password)
    return client
