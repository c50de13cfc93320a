"""Events leave through the outbox: published after commit, never for a rolled-back change."""

import asyncio
import time
import uuid
from datetime import timedelta
from typing import ClassVar

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from citybrain.apps.identity.models import Department
from citybrain.core.asgi import create_app
from citybrain.core.bus import Event
from citybrain.core.context import KEEP_PUBLISHED, AppContext
from citybrain.core.db import OutboxRow, utcnow
from citybrain.core.permissions import SYSTEM
from citybrain.core.settings import Settings
from tests.conftest import service_missing


class DepartmentTouched(Event):
    """A test event."""

    subject: ClassVar[str] = "test.department.touched"
    code: str


def wait_for(condition: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def subscribe(client: TestClient, ctx: AppContext, handler: object, durable: str) -> None:
    """Register a subscriber on the app's event loop, as app code does at startup."""
    assert client.portal is not None
    client.portal.call(lambda: ctx.bus.subscribe(DepartmentTouched, handler, durable=durable))  # type: ignore[arg-type]


def test_committed_events_reach_subscribers_and_rolled_back_ones_do_not(
    client: TestClient, ctx: AppContext
) -> None:
    received: list[DepartmentTouched] = []

    async def handler(event: DepartmentTouched) -> None:
        received.append(event)

    subscribe(client, ctx, handler, "test.outbox")
    with ctx.uow(SYSTEM, "test.department.create") as uow:
        uow.session.add(Department(code="ok", name_zh="提交"))
        uow.emit(DepartmentTouched(code="ok"))
    with pytest.raises(RuntimeError), ctx.uow(SYSTEM, "test.department.create") as uow:
        uow.session.add(Department(code="no", name_zh="回滚"))
        uow.emit(DepartmentTouched(code="no"))
        raise RuntimeError("abort")
    with ctx.uow(SYSTEM, "test.department.create") as uow:
        uow.emit(DepartmentTouched(code="after"))
    assert wait_for(lambda: len(received) >= 2)
    time.sleep(0.1)
    assert [e.code for e in received] == ["ok", "after"]


def test_pending_outbox_rows_are_published_when_the_relay_wakes(client: TestClient, ctx: AppContext) -> None:
    received: list[str] = []

    async def handler(event: DepartmentTouched) -> None:
        received.append(event.code)

    subscribe(client, ctx, handler, "test.outbox.flush")
    assert ctx.relay is not None
    relay, ctx.relay = ctx.relay, None  # write while no relay is kicked, as a CLI process would
    try:
        with ctx.uow(SYSTEM, "test.emit") as uow:
            uow.emit(DepartmentTouched(code="later"))
    finally:
        ctx.relay = relay
    relay.kick()
    assert wait_for(lambda: received == ["later"])
    assert wait_for(lambda: _count_pending(ctx) == 0)


def _count_pending(ctx: AppContext) -> int:
    with ctx.read() as session:
        return session.scalar(select(func.count()).where(OutboxRow.published_at.is_(None))) or 0


@pytest.mark.nats
def test_the_platform_publishes_through_nats_jetstream(settings: Settings) -> None:
    """With CITYBRAIN_BUS_URL=nats://…, committed events travel through JetStream to durable consumers."""
    suffix = uuid.uuid4().hex[:8]
    nats_settings = settings.model_copy(
        update={"bus_url": NATS_URL, "bus_stream": f"TEST_{suffix}", "bus_namespace": f"t{suffix}"}
    )
    try:
        asyncio.run(_ping_nats())
    except Exception as exc:
        service_missing("NATS", exc)
    app = create_app(nats_settings)
    ctx: AppContext = app.state.ctx
    received: list[str] = []

    async def handler(event: DepartmentTouched) -> None:
        received.append(event.code)

    try:
        with TestClient(app) as client:
            subscribe(client, ctx, handler, "test-nats-outbox")
            with ctx.uow(SYSTEM, "test.emit") as uow:
                uow.emit(DepartmentTouched(code="via-jetstream"))
            assert wait_for(lambda: received == ["via-jetstream"])
    finally:
        asyncio.run(_delete_stream(f"TEST_{suffix}"))


NATS_URL = "nats://127.0.0.1:4222"


async def _ping_nats() -> None:
    import nats

    nc = await nats.connect(NATS_URL, connect_timeout=2, max_reconnect_attempts=0)
    await nc.close()


async def _delete_stream(name: str) -> None:
    import nats

    nc = await nats.connect(NATS_URL, connect_timeout=2, max_reconnect_attempts=0)
    try:
        await nc.jetstream().delete_stream(name)
    finally:
        await nc.close()


def test_shutdown_never_hangs_on_a_stuck_handler(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """A handler that never returns delays shutdown by at most shutdown_seconds, with a warning."""
    app = create_app(settings.model_copy(update={"shutdown_seconds": 0.5}))
    ctx: AppContext = app.state.ctx
    started = asyncio.Event()

    async def stuck(event: DepartmentTouched) -> None:
        started.set()
        await asyncio.Event().wait()

    client = TestClient(app)
    with client:
        subscribe(client, ctx, stuck, "test.stuck")
        with ctx.uow(SYSTEM, "test.emit") as uow:
            uow.emit(DepartmentTouched(code="a"))
            uow.emit(DepartmentTouched(code="b"))
        assert wait_for(started.is_set)
        began = time.monotonic()
    assert time.monotonic() - began < 5
    assert any("draining the bus" in r.getMessage() for r in caplog.records)


def test_published_rows_are_kept_an_hour_then_swept(client: TestClient, ctx: AppContext) -> None:
    old = utcnow() - KEEP_PUBLISHED - timedelta(minutes=1)
    with ctx.db.write_sessions.begin() as session:
        session.add(OutboxRow(event_type="x:Y", payload="{}", created_at=old, published_at=old))
    assert ctx.relay is not None
    ctx.relay._swept = old  # the last sweep was long ago
    with ctx.uow(SYSTEM, "test.department.create") as uow:
        uow.emit(DepartmentTouched(code="fresh"))

    def remaining() -> list[str]:
        with ctx.read() as session:
            return list(
                session.scalars(select(OutboxRow.event_type).where(OutboxRow.published_at.is_not(None)))
            )

    assert wait_for(lambda: remaining() and "x:Y" not in remaining())
    assert any(t.endswith("DepartmentTouched") for t in remaining())  # just published: kept for inspection
