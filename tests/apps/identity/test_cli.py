"""The command line against the test's database: `user create`, `db upgrade` and `audit verify`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select, text

from citybrain.apps.identity.models import Role, RoleAssignment, User
from citybrain.core.cli import _add_app_commands, cli
from citybrain.core.context import AppContext
from citybrain.core.settings import Settings
from tests.conftest import Seeded

PASSWORD = "cli-created-password-1"
Run = Callable[..., Result]


@pytest.fixture
def run(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    """Invoke `citybrain ...` in-process with the environment pointing at the test's database."""
    _add_app_commands()
    monkeypatch.chdir(tmp_path)  # no stray .env file is read
    env: dict[str, str | None] = {
        "CITYBRAIN_DATA_DIR": str(settings.data_dir),
        "CITYBRAIN_DATABASE_URL": settings.db_url,
        "CITYBRAIN_MODE": "development",
        "CITYBRAIN_BUS_URL": "memory://",
        "CITYBRAIN_APPS": None,
    }

    def invoke(*args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(cli, list(args), env=env, input=input)

    return invoke


def execute(settings: Settings, *statements: str) -> None:
    """Run raw SQL in one transaction, as someone tampering with the database would."""
    engine = create_engine(settings.db_url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(text(statement))
    finally:
        engine.dispose()


def ledger_size(ctx: AppContext) -> int:
    """How many records the ledger holds."""
    with ctx.read() as session:
        return int(session.scalar(text("SELECT count(*) FROM core_ledger")) or 0)


# --- user create ---------------------------------------------------------------------------------


def test_user_create_makes_a_user_who_can_sign_in(
    run: Run, seeded: Seeded, ctx: AppContext, client: TestClient
) -> None:
    result = run(
        "user",
        "create",
        "li.si",
        "--name",
        "李四",
        "--department",
        "510703",
        "--role",
        "department_admin",
        "--password",
        PASSWORD,
    )
    assert result.exit_code == 0, result.output
    assert "created user li.si" in result.output
    with ctx.read() as session:
        user = session.scalar(select(User).where(User.username == "li.si"))
        assert user is not None and user.display_name == "李四" and user.department_id == seeded.district
        assert PASSWORD not in user.password_hash
        grant = session.scalar(select(RoleAssignment).where(RoleAssignment.user_id == user.id))
        assert grant is not None and grant.department_id == seeded.district
        assert session.get_one(Role, grant.role_id).code == "department_admin"
    response = client.post("/api/identity/session", json={"username": "li.si", "password": PASSWORD})
    assert response.status_code == 200, response.text
    me = client.get("/api/identity/me").json()
    assert me["permissions"]["identity.user.create"] == [seeded.district]


def test_user_create_prompts_for_the_password_and_grants_city_wide(
    run: Run, seeded: Seeded, ctx: AppContext
) -> None:
    result = run(
        "user",
        "create",
        "ops",
        "--department",
        "dsj",
        "--role",
        "staff",
        "--city-wide",
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output  # the prompt hides it
    with ctx.read() as session:
        user = session.scalar(select(User).where(User.username == "ops"))
        assert user is not None and user.display_name == "ops"
        grant = session.scalar(select(RoleAssignment).where(RoleAssignment.user_id == user.id))
        assert grant is not None and grant.department_id is None


def test_user_create_with_an_unknown_department_fails_clearly(
    run: Run, seeded: Seeded, ctx: AppContext
) -> None:
    before = ledger_size(ctx)
    result = run("user", "create", "wang.wu", "--department", "nowhere", "--password", PASSWORD)
    assert result.exit_code == 2, result.output
    assert "no department with code 'nowhere'" in result.output and "--department" in result.output
    result = run(
        "user", "create", "wang.wu", "--department", "510703", "--role", "king", "--password", PASSWORD
    )
    assert result.exit_code == 2, result.output
    assert "no role 'king'" in result.output and "platform_admin" in result.output
    with ctx.read() as session:
        assert session.scalar(select(User).where(User.username == "wang.wu")) is None
    assert ledger_size(ctx) == before


def test_user_create_refuses_taken_names_and_weak_passwords(
    run: Run, seeded: Seeded, ctx: AppContext
) -> None:
    before = ledger_size(ctx)
    taken = run("user", "create", "ADMIN", "--department", "dsj", "--password", PASSWORD)
    assert taken.exit_code == 1, taken.output
    assert "ADMIN" in taken.output and "taken" in taken.output
    weak = run("user", "create", "zhao.liu", "--department", "dsj", "--password", "1234567890")
    assert weak.exit_code == 1, weak.output
    assert "invalid user" in weak.output and "password" in weak.output
    bad_name = run("user", "create", "no spaces allowed", "--department", "dsj", "--password", PASSWORD)
    assert bad_name.exit_code == 1, bad_name.output
    assert "username" in bad_name.output
    assert "Traceback" not in taken.output + weak.output + bad_name.output
    assert ledger_size(ctx) == before


# --- db upgrade ----------------------------------------------------------------------------------


def test_db_upgrade_is_idempotent(run: Run, settings: Settings) -> None:
    engine = create_engine(settings.db_url)
    try:
        with engine.connect() as conn:
            heads = sorted(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
        assert heads  # the fixture's database is migrated already
        for _ in range(2):
            result = run("db", "upgrade")
            assert result.exit_code == 0, result.output
            assert "database is up to date" in result.output
            with engine.connect() as conn:
                assert (
                    sorted(conn.execute(text("SELECT version_num FROM alembic_version")).scalars()) == heads
                )
    finally:
        engine.dispose()


def test_db_upgrade_keeps_the_data(run: Run, seeded: Seeded, ctx: AppContext) -> None:
    before = ledger_size(ctx)
    assert run("db", "upgrade").exit_code == 0
    with ctx.read() as session:
        assert session.get_one(User, seeded.admin_id).username == "admin"
    assert ledger_size(ctx) == before


# --- audit verify --------------------------------------------------------------------------------


def test_audit_verify_passes_on_an_intact_ledger(run: Run, seeded: Seeded, ctx: AppContext) -> None:
    size = ledger_size(ctx)
    assert size >= 5
    result = run("audit", "verify")
    assert result.exit_code == 0, result.output
    assert f"ledger intact: {size} records verified" in result.output


def test_audit_verify_names_an_edited_record(run: Run, seeded: Seeded, settings: Settings) -> None:
    execute(settings, "UPDATE core_ledger SET actor = 'user:999' WHERE seq = 3")
    result = run("audit", "verify")
    assert result.exit_code == 1, result.output
    assert "record #3: edited" in result.stderr
    assert "2 records verified before it" in result.stderr


def test_audit_verify_names_the_record_after_a_deleted_one(
    run: Run, seeded: Seeded, settings: Settings
) -> None:
    execute(settings, "DELETE FROM core_ledger WHERE seq = 3")
    result = run("audit", "verify")
    assert result.exit_code == 1, result.output
    assert "record #4: deleted" in result.stderr and "after #2" in result.stderr


def test_audit_verify_notices_that_the_newest_record_was_deleted(
    run: Run, seeded: Seeded, ctx: AppContext, settings: Settings
) -> None:
    last = ledger_size(ctx)
    execute(settings, f"DELETE FROM core_ledger WHERE seq = {last}")
    result = run("audit", "verify")
    assert result.exit_code == 1, result.output
    assert f"record #{last}: deleted" in result.stderr and f"head records #{last}" in result.stderr


def test_audit_verify_names_a_reordered_record(run: Run, seeded: Seeded, settings: Settings) -> None:
    execute(
        settings,  # swap the sequence numbers of records 2 and 3
        "UPDATE core_ledger SET seq = -1 WHERE seq = 2",
        "UPDATE core_ledger SET seq = 2 WHERE seq = 3",
        "UPDATE core_ledger SET seq = 3 WHERE seq = -1",
    )
    result = run("audit", "verify")
    assert result.exit_code == 1, result.output
    assert "record #2: reordered" in result.stderr and "follows record #3" in result.stderr
