"""The warning events carry the rule's names (and a lifted warning its entity); old events still decode."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from citybrain.apps.warning.events import WarningChanged, WarningLifted, WarningRaised
from citybrain.core.asgi import create_app
from citybrain.core.context import AppContext
from citybrain.core.db import OutboxRow
from citybrain.core.settings import Settings
from citybrain.sdk import Event
from tests.apps.warning.conftest import T0, observe, rule_body, settle, station, warnings_of

E = TypeVar("E", bound=Event)


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    """The warning app and what it requires."""
    return create_app(settings.model_copy(update={"apps": ("identity", "context", "geo", "warning")}))


def emitted(ctx: AppContext, kind: type[E]) -> list[E]:
    """The events of a kind written to the outbox, oldest first."""
    name = f"{kind.__module__}:{kind.__qualname__}"
    with ctx.read() as session:
        payloads = session.scalars(
            select(OutboxRow.payload).where(OutboxRow.event_type == name).order_by(OutboxRow.id)
        )
        return [kind.model_validate_json(p) for p in payloads]


def test_events_name_the_rule_and_the_lifted_entity(api: TestClient, ctx: AppContext) -> None:
    sid = station(ctx, "ev-1")  # the rule is checked against the city's entities
    assert api.post("/api/warning/rules", json=rule_body()).status_code == 201
    observe(ctx, sid, T0, pm25=160.0)  # orange
    observe(ctx, sid, T0 + timedelta(minutes=5), pm25=260.0)  # red
    observe(ctx, sid, T0 + timedelta(minutes=10), pm25=10.0)  # lifted by the rule
    settle(ctx)
    (raised,) = emitted(ctx, WarningRaised)
    assert (raised.title, raised.title_en, raised.entity_id) == ("PM2.5 超标", "PM2.5 high", sid)
    (upgraded,) = emitted(ctx, WarningChanged)
    assert (upgraded.change, upgraded.title, upgraded.title_en) == ("upgraded", "PM2.5 超标", "PM2.5 high")
    (lifted,) = emitted(ctx, WarningLifted)
    assert (lifted.by, lifted.entity_id, lifted.title, lifted.title_en) == (
        "rule",
        sid,
        "PM2.5 超标",
        "PM2.5 high",
    )


def test_operator_actions_name_the_rule_too(api: TestClient, ctx: AppContext) -> None:
    body = rule_body(code="pm25-zh-only", name_en="")
    sid = station(ctx, "ev-2")
    assert api.post("/api/warning/rules", json=body).status_code == 201
    observe(ctx, sid, T0, pm25=160.0)
    settle(ctx)
    (warning,) = warnings_of(api, status="active")
    assert (
        api.post(f"/api/warning/warnings/{warning['id']}/acknowledge", json={"note": ""}).status_code == 200
    )
    assert api.post(f"/api/warning/warnings/{warning['id']}/lift", json={"note": ""}).status_code == 200
    (raised,) = emitted(ctx, WarningRaised)
    assert (raised.title, raised.title_en) == ("PM2.5 超标", "")  # the rule has no English name
    (acknowledged,) = emitted(ctx, WarningChanged)
    assert (acknowledged.change, acknowledged.title, acknowledged.title_en) == (
        "acknowledged",
        "PM2.5 超标",
        "",
    )
    (lifted,) = emitted(ctx, WarningLifted)
    assert lifted.by != "rule" and (lifted.entity_id, lifted.title) == (sid, "PM2.5 超标")


def test_events_stored_before_the_new_fields_still_decode() -> None:
    at = datetime(2026, 1, 5, tzinfo=UTC).isoformat()
    raised = WarningRaised.model_validate_json(
        '{"warning_id": 1, "rule_code": "r", "level": "blue", "entity_id": "e", "district": null,'
        f' "scope_key": "e", "at": "{at}", "values": {{}}}}'
    )
    changed = WarningChanged.model_validate_json(
        '{"warning_id": 1, "rule_code": "r", "change": "upgraded", "level": "red", "previous_level": "blue",'
        f' "district": null, "at": "{at}", "by": "rule", "values": {{}}}}'
    )
    lifted = WarningLifted.model_validate_json(
        '{"warning_id": 1, "rule_code": "r", "previous_level": "red", "district": null,'
        f' "at": "{at}", "by": "rule"}}'
    )
    assert (raised.title, raised.title_en, changed.title, changed.title_en) == ("", "", "", "")
    assert (lifted.entity_id, lifted.title, lifted.title_en) == ("", "", "")
