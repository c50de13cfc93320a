"""Device status: silent devices go offline, a reading brings them back; both are bus events."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from citybrain.apps.identity import schemas as identity_schemas
from citybrain.apps.identity import services as identity
from citybrain.apps.iot import services
from citybrain.apps.iot.events import DeviceOffline, DeviceOnline
from citybrain.apps.iot.models import Device
from citybrain.apps.iot.schemas import Message
from citybrain.core.asgi import create_app
from citybrain.core.context import AppContext
from citybrain.core.permissions import SYSTEM
from citybrain.core.settings import Settings
from tests.apps.iot.conftest import AQ, Provisioned, provision


def test_offline_after_the_model_timeout_and_back(ctx: AppContext, device: Provisioned) -> None:
    services.ingest_messages(ctx, [Message("", device.device_id, b'{"values": {"pm25": 3}}', "internal")])
    assert services.get_device(ctx, SYSTEM, device.pk).status == "online"
    now = datetime.now(UTC)
    assert services.mark_offline(ctx, now + timedelta(seconds=599)) == 0
    assert services.mark_offline(ctx, now + timedelta(seconds=601)) == 1
    offline = services.get_device(ctx, SYSTEM, device.pk)
    assert offline.status == "offline" and offline.status_changed_at is not None
    assert services.mark_offline(ctx, now + timedelta(seconds=900)) == 0  # once
    services.ingest_messages(ctx, [Message("", device.device_id, b'{"values": {"pm25": 4}}', "internal")])
    assert services.get_device(ctx, SYSTEM, device.pk).status == "online"


def test_devices_never_heard_from_stay_new(ctx: AppContext, device: Provisioned) -> None:
    assert services.mark_offline(ctx, datetime.now(UTC) + timedelta(days=1)) == 0
    assert services.get_device(ctx, SYSTEM, device.pk).status == "new"


def test_status_counts(ctx: AppContext, device: Provisioned) -> None:
    other = provision(ctx, "aq-2")
    services.ingest_messages(ctx, [Message("", other.device_id, b'{"values": {"pm25": 4}}', "internal")])
    services.revoke_device(ctx, SYSTEM, device.pk)
    assert services.status_counts(ctx, SYSTEM) == {"new": 0, "online": 1, "offline": 0, "revoked": 1}


def test_monitor_publishes_offline_and_online_events(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CITYBRAIN_IOT_STATUS_CHECK_SECONDS", "0.1")
    app = create_app(settings)
    ctx: AppContext = app.state.ctx
    seen: list[object] = []

    async def collect(event: DeviceOffline | DeviceOnline) -> None:
        seen.append(event)

    ctx.bus.subscribe(DeviceOffline, collect, durable="test-offline")
    ctx.bus.subscribe(DeviceOnline, collect, durable="test-online")
    with TestClient(app):
        root = identity.create_department(
            ctx, SYSTEM, identity_schemas.DepartmentCreate(code="510703", name_zh="涪城区")
        )
        assert root.id
        services.ensure_model(ctx, SYSTEM, AQ)
        device = provision(ctx, "aq-monitored")
        services.ingest_messages(ctx, [Message("", device.device_id, b'{"values": {"pm25": 3}}', "internal")])
        with ctx.db.write_engine.begin() as conn:
            conn.execute(
                update(Device)
                .where(Device.id == device.pk)
                .values(last_seen_at=datetime.now(UTC) - timedelta(hours=1))
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(isinstance(e, DeviceOffline) for e in seen):
            time.sleep(0.05)
        assert services.get_device(ctx, SYSTEM, device.pk).status == "offline"
        kinds = [type(e).__name__ for e in seen]
        assert kinds == ["DeviceOnline", "DeviceOffline"], kinds
        offline = seen[1]
        assert isinstance(offline, DeviceOffline)
        assert offline.device_id == "aq-monitored" and offline.entity_id == device.entity_id
