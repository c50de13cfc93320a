"""Device-health watches of iot devices: declared as plain data, checked at start, raising warnings."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from citybrain.apps.iot import city, services
from citybrain.apps.iot import warnings as iot_warnings
from citybrain.apps.iot.schemas import Message
from citybrain.apps.warning import services as warning_services
from citybrain.core.apps import discover
from citybrain.core.asgi import create_app
from citybrain.core.context import AppContext
from citybrain.core.permissions import SYSTEM
from citybrain.core.settings import Settings
from tests.apps.iot.conftest import Provisioned, provision
from tests.apps.warning.conftest import T0, settle, warnings_of
from tests.conftest import Seeded, make_settings

APPS = ("identity", "context", "geo", "iot", "warning")
VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"
STEP = timedelta(minutes=5)


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    """The iot and warning apps with what they need (iot does not require warning)."""
    return create_app(settings, [spec for spec in discover() if spec.label in APPS])


def gauge(ctx: AppContext, device_id: str) -> Provisioned:
    """A river water-level gauge of the demo's model, in 涪城区."""
    services.ensure_model(ctx, SYSTEM, city.KINDS[city.WATER].model())
    return provision(ctx, device_id, model="water-level-gauge")


def send(ctx: AppContext, device: Provisioned, step: int, **values: Any) -> None:
    """A reading of the device through the ingest pipeline, observed `step` five-minute steps after T0."""
    at = T0 + step * STEP
    payload = orjson.dumps({"k": device.key, "ts": at.isoformat(), "values": values})
    report = services.ingest_messages(
        ctx, [Message("", device.device_id, payload, "mqtt", None, at + timedelta(seconds=2))]
    )
    assert (report.stored, report.rejected) == (1, {}), report


def test_the_iot_watches_are_stored_as_health_rules(ctx: AppContext) -> None:
    rules = {r.code: r for r in warning_services.list_rules(ctx, SYSTEM) if r.origin == "iot"}
    assert set(rules) == {"health.water-level-gauge"}
    assert all((r.kind, r.enabled) == ("health", True) for r in rules.values())
    water = rules["health.water-level-gauge"]
    assert (water.name_zh, water.entity_type) == ("河道水位站设备健康", "WaterObserved")
    index = ctx.extensions[warning_services.RUNTIME].health.index
    assert ("", VOCAB + "WaterObserved", VOCAB + "height") in index
    assert ("", VOCAB + "WeatherObserved", VOCAB + "precipitation") not in index  # rests at 0 for days


def test_every_declared_attribute_is_one_the_demo_devices_report() -> None:
    measured = {
        k.entity_type: {a.name for a in k.attributes if a.kind == "number"} for k in city.KINDS.values()
    }
    for watch in iot_warnings.HEALTH_WATCHES:
        assert set(watch["attrs"]) <= measured[watch["entity_type"]], watch["code"]


def test_a_stuck_water_level_gauge_raises_a_device_health_warning(
    api: TestClient, ctx: AppContext, seeded: Seeded
) -> None:
    device = gauge(ctx, "wl-fujiang-001")
    for i in range(30):
        send(ctx, device, i, height=2.0 + 0.1 * (i % 5))
    for i in range(30, 43):
        send(ctx, device, i, height=2.2)  # at rest for an hour: not yet stuck
    settle(ctx)
    assert warnings_of(api, kind="health") == []
    for i in range(43, 67):
        send(ctx, device, i, height=2.2)  # the float is stuck
    settle(ctx)
    (warning,) = warnings_of(api, kind="health")
    assert (warning["rule_code"], warning["level"], warning["entity_id"]) == (
        "health.water-level-gauge",
        "yellow",  # confirmed after 3 h at rest, which is the first escalation step
        device.entity_id,
    )
    assert warning["scope_key"] == f"{device.entity_id}|height|stuck"
    assert warning["values"]["anomaly"] == "stuck" and warning["values"]["value"] == 2.2
    assert warning["district"] == "510703"
    send(ctx, device, 67, height=2.45)  # it moves again
    settle(ctx)
    assert warnings_of(api, kind="health", status="active") == []


def test_a_bad_plain_declaration_stops_the_start_with_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        iot_warnings,
        "HEALTH_WATCHES",
        [
            iot_warnings.HEALTH_WATCHES[0],
            {"entity_type": "WaterObserved", "attrs": ["height"], "min_peers": 0},
        ],
    )
    app = create_app(make_settings(tmp_path), [spec for spec in discover() if spec.label in APPS])
    with (
        pytest.raises(
            ValueError, match=r"app 'iot' declares a bad health watch HEALTH_WATCHES\[1\]: min_peers"
        ),
        TestClient(app),
    ):
        pass


@pytest.mark.parametrize(
    ("declared", "error", "message"),
    [
        ([{"entity_type": "WaterObserved", "attrs": []}], ValueError, r"HEALTH_WATCHES\[0\]: attrs"),
        ([{"entity_type": "WaterObserved", "attrs": ["height"], "colour": "red"}], ValueError, "colour"),
        ([{"attrs": ["height"]}], ValueError, "entity_type"),
        ([("WaterObserved", ["height"])], TypeError, r"HEALTH_WATCHES\[0\] that is neither"),
        ({"entity_type": "WaterObserved"}, TypeError, "HEALTH_WATCHES that is not a list"),
    ],
)
def test_bad_declarations_name_the_app_and_the_entry(
    ctx: AppContext, monkeypatch: pytest.MonkeyPatch, declared: Any, error: type[Exception], message: str
) -> None:
    monkeypatch.setattr(iot_warnings, "HEALTH_WATCHES", declared)
    with pytest.raises(error, match=message) as raised:
        warning_services.declared_watches(ctx)
    assert "'iot'" in str(raised.value)
