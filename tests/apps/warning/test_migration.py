"""The migration to departments, sealed secrets and clocks fills what was there before (SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from citybrain.apps.warning import sealing
from citybrain.core.context import AppContext
from citybrain.core.migrate import upgrade
from citybrain.core.platform import build_context
from tests.conftest import BACKEND, PG_URL, TEST_SECRET, make_settings, service_missing

BEFORE = "e2a4c6d8f0b1"  # the warning branch before departments
IDENTITY = "3f5a956bb629"
NOW = "2026-01-05 08:00:00"


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[AppContext]:
    """A platform context on an empty, unmigrated database of the test backend."""
    if BACKEND == "sqlite":
        ctx = build_context(make_settings(tmp_path))
        yield ctx
        ctx.db.dispose()
        return
    name = f"citybrain_mig_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        service_missing("PostgreSQL", exc)
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    ctx = build_context(make_settings(tmp_path, url))
    yield ctx
    ctx.db.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_old_rows_get_their_department_and_secrets_are_sealed(
    fresh: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CITYBRAIN_SECRET_KEY", TEST_SECRET)  # as `citybrain db upgrade` reads its settings
    upgrade(fresh, IDENTITY)
    upgrade(fresh, BEFORE)
    statements = [
        "INSERT INTO identity_department (id, code, name_zh, name_en, kind, sort, created_at, updated_at)"
        f" VALUES (1, 'sthj', '生态环境局', '', 'department', 0, '{NOW}', '{NOW}'),"
        f" (2, '510703', '涪城区', '', 'district', 1, '{NOW}', '{NOW}')",
        "INSERT INTO identity_user (id, username, display_name, department_id, password_hash, is_active,"
        f" failed_logins, created_at, updated_at) VALUES (5, 'op', 'op', 1, 'x', true, 0, '{NOW}', '{NOW}')",
        "INSERT INTO warning_rule (id, code, name_zh, name_en, kind, entity_type, definition, enabled, version,"
        " origin, created_at, updated_at) VALUES"
        f" (1, 'op-rule', '规则', '', 'threshold', 'T', '{{}}', true, 1, 'operator', '{NOW}', '{NOW}'),"
        f" (2, 'app-rule', '规则', '', 'threshold', 'T', '{{}}', true, 1, 'environment', '{NOW}', '{NOW}')",
        "INSERT INTO warning_rule_version (id, rule_id, version, definition, changed_by, changed_at) VALUES"
        f" (1, 1, 1, '{{}}', 'user:5', '{NOW}'), (2, 2, 1, '{{}}', 'system', '{NOW}')",
        "INSERT INTO warning_warning (id, rule_id, rule_code, kind, title, scope_key, entity_id, district, level,"
        ' status, raised_at, changed_at, "values") VALUES'
        f" (1, 1, 'op-rule', 'threshold', 't', 'e1', 'e1', '510703', 'blue', 'active', '{NOW}', '{NOW}', '{{}}'),"
        f" (2, 2, 'app-rule', 'threshold', 't', 'e2', 'e2', '510703', 'blue', 'active', '{NOW}', '{NOW}', '{{}}'),"
        f" (3, 2, 'app-rule', 'threshold', 't', 'e3', 'e3', NULL, 'blue', 'lifted', '{NOW}', '{NOW}', '{{}}')",
        "INSERT INTO warning_subscription (id, channel, name, url, secret, min_level, transitions, enabled,"
        " created_by, created_at, updated_at) VALUES"
        f" (1, 'webhook', 'w', 'http://x/h', 'plain-old-secret', 'blue', '[]', true, 'system', '{NOW}', '{NOW}'),"
        f" (2, 'sms', 's', NULL, NULL, 'blue', '[]', true, 'system', '{NOW}', '{NOW}')",
    ]
    with fresh.db.write_engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
    upgrade(fresh)
    with fresh.db.write_engine.connect() as conn:
        rules = dict(conn.execute(text("SELECT code, department_id FROM warning_rule")).all())
        warnings = dict(conn.execute(text("SELECT id, department_id FROM warning_warning")).all())
        subs = dict(conn.execute(text("SELECT id, secret_sealed FROM warning_subscription")).all())
        columns = conn.execute(text("SELECT * FROM warning_subscription")).keys()
    assert rules == {"op-rule": 1, "app-rule": None}  # the operator's department; an app's rule has none
    assert warnings == {1: 1, 2: 2, 3: None}  # the rule's department, else the district's government
    assert "secret" not in columns and subs[2] is None
    assert sealing.unseal(sealing.derive_key(TEST_SECRET), str(subs[1])) == "plain-old-secret"
