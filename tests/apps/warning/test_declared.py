"""Rules declared by apps in warnings.py are stored at start, run, and can be edited by operators."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from citybrain.apps.context import services as context
from citybrain.apps.warning import services
from citybrain.core.apps import discover
from citybrain.core.asgi import create_app
from citybrain.core.permissions import SYSTEM
from citybrain.core.settings import Settings
from tests.apps.warning.conftest import iso, settle
from tests.apps.warning.declaring import APP as DECLARING


@pytest.fixture
def declaring(settings: Settings) -> Iterator[TestClient]:
    """The platform with one more app, which declares a rule."""
    specs = [*discover(), replace(DECLARING, package="tests.apps.warning.declaring")]
    with TestClient(create_app(settings, specs), base_url="http://testserver") as test_client:
        yield test_client


def test_declared_rules_are_stored_and_run(declaring: TestClient) -> None:
    """The declared rule is stored once (origin: the app), and raises warnings."""
    ctx = declaring.app.state.ctx  # type: ignore[attr-defined]
    declared = [(label, spec.code) for label, spec in services.declared_rules(ctx)]
    assert ("wdeclare", "river-level") in declared
    (rule,) = [r for r in services.list_rules(ctx, SYSTEM) if r.origin == "wdeclare"]
    assert (rule.code, rule.origin, rule.version) == ("river-level", "wdeclare", 1)
    assert services.sync_declared(ctx) == 0  # stored already: nothing more
    gauge = "urn:ngsi-ld:WaterObserved:anchang-1"
    body = {
        "id": gauge,
        "type": "WaterObserved",
        "height": {"type": "Property", "value": 5.5, "observedAt": iso(datetime.now(UTC))},
    }
    assert context.upsert_entities(ctx, SYSTEM, "", [body]).success == [gauge]
    body["height"]["value"] = 5.6  # type: ignore[index]
    context.upsert_entities(ctx, SYSTEM, "", [body])
    settle(ctx)
    page = services.list_warnings(ctx, SYSTEM)
    assert [(w.rule_code, w.level, w.entity_id) for w in page.items] == [("river-level", "red", gauge)]
