"""MQTT ingest against a real Mosquitto: stored, rejected, and nothing acknowledged is ever lost.

Each test uses a tenant of its own (the topic level after `citybrain/`), a client id of its own and a
short session expiry, so runs sharing the broker at 127.0.0.1:1883 never see each other's messages.
The reliability tests run the worker in a child process (`citybrain serve`) and kill it with SIGKILL,
stop a broker of their own, or take the database away, then check that every message the broker
acknowledged to the publisher is stored exactly once.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as paho
import pytest
from fastapi import FastAPI
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from citybrain.apps.context import services as context
from citybrain.apps.iot import services
from citybrain.apps.iot.models import DeadLetter
from citybrain.apps.iot.mqtt import MqttIngest
from citybrain.core.asgi import create_app
from citybrain.core.context import AppContext
from citybrain.core.permissions import SYSTEM
from citybrain.core.settings import Settings
from tests.apps.iot.conftest import Provisioned, provision
from tests.conftest import BACKEND, PG_URL, service_missing

BROKER = ("127.0.0.1", 1883)
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
CITYBRAIN = str(Path(sys.executable).with_name("citybrain"))
BASE_MS = int(time.time() * 1000) - 3_600_000  # readings are stamped in the last hour, 1 ms apart


@pytest.fixture
def broker() -> tuple[str, int]:
    """The shared Mosquitto (fails in CI, skips elsewhere, when it is not running)."""
    try:
        socket.create_connection(BROKER, timeout=2).close()
    except OSError as exc:
        service_missing("Mosquitto at 127.0.0.1:1883", exc)
    return BROKER


@pytest.fixture
def tenant() -> str:
    """A tenant (and so a topic level) of this test alone."""
    return "t" + uuid.uuid4().hex[:12]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def worker_env(tenant: str, port: int = BROKER[1]) -> dict[str, str]:
    """The settings of an MQTT worker listening to this test's topics only."""
    return {
        "CITYBRAIN_IOT_MQTT_URL": f"mqtt://127.0.0.1:{port}",
        "CITYBRAIN_IOT_MQTT_CLIENT_ID": f"citybrain-test-{tenant}",
        "CITYBRAIN_IOT_MQTT_TOPIC": f"citybrain/{tenant}/+/attrs",
        "CITYBRAIN_IOT_MQTT_SESSION_EXPIRY_SECONDS": "120",
        "CITYBRAIN_IOT_MQTT_BATCH_MS": "50",
        "CITYBRAIN_IOT_MQTT_BACKOFF_MIN_SECONDS": "0.2",
        "CITYBRAIN_IOT_MQTT_BACKOFF_MAX_SECONDS": "1",
    }


@dataclass
class Publisher:
    """A device simulator publishing numbered readings with QoS 1; knows what the broker acknowledged."""

    tenant: str
    device: Provisioned
    port: int = BROKER[1]
    sent: list[tuple[int, paho.MQTTMessageInfo]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"pub-{self.tenant}")
        self.client.reconnect_delay_set(1, 1)
        self.client.connect_async("127.0.0.1", self.port)
        self.client.loop_start()
        deadline = time.monotonic() + 30
        while not self.client.is_connected():
            assert time.monotonic() < deadline, "the publisher cannot connect"
            time.sleep(0.02)

    @property
    def acked(self) -> set[int]:
        """The numbers of the readings the broker acknowledged (PUBACK received)."""
        # `_published` rather than is_published(): a message queued while disconnected is sent later
        return {number for number, info in list(self.sent) if info._published}

    def publish(self, number: int, body: bytes | None = None) -> None:
        payload = body or orjson.dumps(
            {"k": self.device.key, "ts": BASE_MS + number, "values": {"samples": number}}
        )
        info = self.client.publish(f"citybrain/{self.tenant}/{self.device.device_id}/attrs", payload, qos=1)
        self.sent.append((number, info))

    def run(self, count: int, per_second: float, start: int = 0) -> threading.Thread:
        """Publish readings start..start+count-1 at a steady pace in a thread."""

        def pace() -> None:
            began = time.monotonic()
            for i in range(count):
                self.publish(start + i)
                delay = began + (i + 1) / per_second - time.monotonic()
                if delay > 0:
                    time.sleep(delay)

        thread = threading.Thread(target=pace, daemon=True)
        thread.start()
        return thread

    def wait_acked(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.acked) >= count:
                return
            time.sleep(0.05)
        raise AssertionError(f"the broker acknowledged {len(self.acked)} of {count} messages")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def probe(ctx: AppContext, tenant: str, port: int = BROKER[1]) -> Any:
    """A readiness check: publish a reading of a probe device until the worker has stored one."""
    device = provision(ctx, "probe", tenant=tenant)
    publisher = Publisher(tenant, device, port=port)
    count = [0]

    def ready() -> bool:
        count[0] += 1
        publisher.publish(500_000 + count[0])
        deadline = time.monotonic() + 1
        while time.monotonic() < deadline:
            if stored_values(ctx, tenant, device.entity_id):
                publisher.close()
                return True
            time.sleep(0.05)
        return False

    return ready


def stored_values(ctx: AppContext, tenant: str, entity_id: str) -> list[float]:
    """Every `samples` value (the reading's number) the entity's history holds, one per stored reading."""
    stored = context.get_entity(ctx, SYSTEM, tenant, entity_id)
    iri = next((i for i in stored["attrs"] if i.rsplit("/", 1)[-1] == "samples"), None)
    if iri is None:
        return []
    return [value for _, value in context.attribute_history(ctx, SYSTEM, tenant, entity_id, iri, 1_000_000)]


def wait_stored(ctx: AppContext, tenant: str, entity_id: str, count: int, timeout: float = 60) -> list[float]:
    deadline = time.monotonic() + timeout
    values: list[float] = []
    while time.monotonic() < deadline:
        values = stored_values(ctx, tenant, entity_id)
        if len(values) >= count:
            return values
        time.sleep(0.2)
    raise AssertionError(f"{len(values)} of {count} readings were stored")


def assert_exactly_once(values: list[float], acked: set[int]) -> None:
    """Every acknowledged reading is stored, and no reading twice."""
    assert len(values) == len(set(values)), "a reading was stored twice"
    missing = acked - {int(v) for v in values}
    assert not missing, f"{len(missing)} acknowledged readings were lost, e.g. {sorted(missing)[:5]}"


@dataclass
class Server:
    """`citybrain serve` in a child process: the platform with its MQTT worker."""

    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self, ready: Any = None) -> None:
        """Start the server; `ready()` (if given) is called until it returns True (the worker stores)."""
        port = free_port()
        with self.log.open("ab") as handle:
            self.process = subprocess.Popen(
                [CITYBRAIN, "serve", "--port", str(port), "--no-access-log"],
                env=self.env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                cwd=self.log.parent,
            )
        deadline = time.monotonic() + 60
        while ready is not None and not ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    "the server did not start:\n" + self.log.read_text(errors="replace")[-3000:]
                )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


@pytest.fixture
def server_for(settings: Settings, tmp_path: Path) -> Iterator[Any]:
    """Make child-process servers on the test's database; stopped at the end."""
    made: list[Server] = []

    def make(tenant: str, port: int = BROKER[1]) -> Server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CITYBRAIN_")}
        env |= {
            "CITYBRAIN_DATA_DIR": str(settings.data_dir),
            "CITYBRAIN_SECRET_KEY": settings.secret_key.get_secret_value(),
            "CITYBRAIN_BUS_URL": "memory://",
            "CITYBRAIN_SHUTDOWN_SECONDS": "5",
            **worker_env(tenant, port),
        }
        if settings.database_url:
            env["CITYBRAIN_DATABASE_URL"] = settings.database_url
        server = Server(env, tmp_path / f"server-{len(made)}.log")
        made.append(server)
        return server

    yield make
    for server in made:
        server.stop()


@pytest.fixture
def app(
    settings: Settings, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tenant: str
) -> FastAPI:
    """The platform in this process; with the MQTT worker (this test's topics) when the test asks for it."""
    if "mqtt_worker" in request.fixturenames:
        for key, value in worker_env(tenant).items():
            monkeypatch.setenv(key, value)
    return create_app(settings)


@pytest.fixture
def mqtt_worker(ctx: AppContext, broker: tuple[str, int]) -> MqttIngest:
    """The in-process MQTT worker, connected and subscribed."""
    deadline = time.monotonic() + 20
    while "iot.mqtt" not in ctx.extensions:
        assert time.monotonic() < deadline, "the MQTT worker did not start"
        time.sleep(0.02)
    worker: MqttIngest = ctx.extensions["iot.mqtt"]
    assert worker.wait_connected(20)
    return worker


def test_published_readings_are_stored(
    ctx: AppContext, mqtt_worker: MqttIngest, tenant: str, seeded: Any, aq_model: Any
) -> None:
    device = provision(ctx, "aq-mqtt-1", tenant=tenant)
    publisher = Publisher(tenant, device)
    try:
        publisher.run(300, 2000).join()
        publisher.wait_acked(300)
        values = wait_stored(ctx, tenant, device.entity_id, 300)
    finally:
        publisher.close()
    assert sorted(values) == [float(i) for i in range(300)]
    assert services.get_device(ctx, SYSTEM, device.pk).status == "online"
    assert sum(services.ingest_rates(ctx, SYSTEM, 5).stored) == 300


def test_malformed_and_foreign_messages_become_dead_letters(
    ctx: AppContext, mqtt_worker: MqttIngest, tenant: str, seeded: Any, aq_model: Any
) -> None:
    device = provision(ctx, "aq-mqtt-2", tenant=tenant)
    publisher = Publisher(tenant, device)
    try:
        publisher.publish(0, b"{not json")
        publisher.publish(1, orjson.dumps({"k": "cbd_stolen", "values": {"pm25": 1}}))
        publisher.publish(2, orjson.dumps({"k": device.key, "values": {"pm25": -5, "no2": 40}}))
        info = publisher.client.publish(
            f"citybrain/{tenant}/aq-unknown/attrs", b'{"values": {"pm25": 1}}', qos=1
        )
        info.wait_for_publish(10)
        publisher.wait_acked(3)
        deadline = time.monotonic() + 20
        reasons: list[str] = []
        while time.monotonic() < deadline and len(reasons) < 4:
            with ctx.read() as session:
                reasons = sorted(
                    session.scalars(select(DeadLetter.reason).where(DeadLetter.tenant == tenant))
                )
            time.sleep(0.1)
    finally:
        publisher.close()
    assert reasons == ["malformed", "out_of_range", "unknown_device", "wrong_key"]
    stored = context.get_entity(ctx, SYSTEM, tenant, device.entity_id)
    names = {iri.rsplit("/", 1)[-1] for iri in stored["attrs"]}
    assert "no2" in names and "pm25" not in names  # the good value of the reading was kept


def test_kill_9_mid_run_loses_and_duplicates_nothing(
    ctx: AppContext, tenant: str, broker: Any, seeded: Any, aq_model: Any, server_for: Any
) -> None:
    device = provision(ctx, "aq-k9", tenant=tenant)
    server = server_for(tenant)
    server.start(probe(ctx, tenant))
    publisher = Publisher(tenant, device)
    try:
        running = publisher.run(1200, 200)
        time.sleep(2.5)
        assert 0 < len(stored_values(ctx, tenant, device.entity_id)) < 1200, "kill while messages flow"
        server.kill()
        time.sleep(0.5)
        server.start()
        running.join()
        publisher.wait_acked(1200)
        values = wait_stored(ctx, tenant, device.entity_id, len(publisher.acked))
    finally:
        publisher.close()
    assert_exactly_once(values, publisher.acked)
    assert len(publisher.acked) == 1200


def mosquitto_conf(folder: Path, port: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o777)
    conf = folder / "mosquitto.conf"
    # run as root (as in a CI container), Mosquitto would switch to its own user, who cannot write here
    user = "user root\n" if os.geteuid() == 0 else ""
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
        f"persistence_location {folder}/\nmax_queued_messages 0\nlog_dest stderr\n{user}"
    )
    conf.chmod(0o644)
    return conf


def start_mosquitto(conf: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as handle:
        process = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=handle, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("mosquitto did not start:\n" + log.read_text(errors="replace")) from None
            time.sleep(0.05)


def test_broker_outage_resumes_without_loss(
    settings: Settings,
    ctx: AppContext,
    tenant: str,
    seeded: Any,
    aq_model: Any,
    server_for: Any,
    tmp_path: Path,
) -> None:
    if not Path(MOSQUITTO).is_file():
        service_missing("the mosquitto program", FileNotFoundError(MOSQUITTO))
    port = free_port()
    conf = mosquitto_conf(tmp_path / "broker", port)
    broker = start_mosquitto(conf, port, tmp_path / "mosquitto.log")
    device = provision(ctx, "aq-outage", tenant=tenant)
    server = server_for(tenant, port)
    publisher: Publisher | None = None
    try:
        server.start(probe(ctx, tenant, port))
        publisher = Publisher(tenant, device, port=port)
        running = publisher.run(800, 200)
        time.sleep(1.5)
        broker.terminate()  # saves its sessions and queued messages
        broker.wait(10)
        time.sleep(3)  # the worker and the publisher keep retrying
        broker = start_mosquitto(conf, port, tmp_path / "mosquitto.log")
        running.join()
        publisher.wait_acked(800)
        values = wait_stored(ctx, tenant, device.entity_id, 800)
        log = server.log.read_text(errors="replace")
        assert "connection to 127.0.0.1" in log  # it noticed, and came back by itself
        assert_exactly_once(values, publisher.acked)
    finally:
        if publisher is not None:
            publisher.close()
        server.stop()
        broker.terminate()
        broker.wait(10)


@pytest.fixture
def pg_admin() -> Iterator[Any]:
    engine = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


def test_database_locked_nothing_is_acked_until_stored(
    settings: Settings, ctx: AppContext, tenant: str, broker: Any, seeded: Any, aq_model: Any, server_for: Any
) -> None:
    """The store blocks on a locked table; the worker is killed meanwhile; all is stored after a restart."""
    device = provision(ctx, "aq-locked", tenant=tenant)
    server = server_for(tenant)
    server.start(probe(ctx, tenant))
    publisher = Publisher(tenant, device)
    engine = create_engine(settings.db_url, isolation_level="AUTOCOMMIT")
    try:
        publisher.run(100, 500).join()
        wait_stored(ctx, tenant, device.entity_id, 100)
        with engine.connect() as conn:
            if BACKEND == "sqlite":
                conn.exec_driver_sql("BEGIN EXCLUSIVE")
            else:
                conn.exec_driver_sql("BEGIN")
                conn.exec_driver_sql("LOCK TABLE context_history IN ACCESS EXCLUSIVE MODE")
            publisher.run(300, 500, start=100).join()
            publisher.wait_acked(400)
            time.sleep(1.0)
            server.kill()  # what it held was never acknowledged to the broker
            conn.exec_driver_sql("ROLLBACK")
        server.start()
        values = wait_stored(ctx, tenant, device.entity_id, 400)
    finally:
        publisher.close()
        engine.dispose()
    assert_exactly_once(values, publisher.acked)


@pytest.mark.skipif(BACKEND != "postgresql", reason="takes a PostgreSQL database away")
def test_database_gone_retries_then_stores(
    settings: Settings,
    ctx: AppContext,
    tenant: str,
    broker: Any,
    seeded: Any,
    aq_model: Any,
    server_for: Any,
    pg_admin: Any,
) -> None:
    """The database disappears (renamed away): storing fails and is retried with back-off, nothing is acked."""
    device = provision(ctx, "aq-gone", tenant=tenant)
    server = server_for(tenant)
    server.start(probe(ctx, tenant))
    publisher = Publisher(tenant, device)
    name = make_url(settings.db_url).database
    away = f"{name}_away"
    renamed = False
    try:
        publisher.run(100, 500).join()
        wait_stored(ctx, tenant, device.entity_id, 100)
        with pg_admin.connect() as admin:
            admin.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            admin.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"), {"n": name}
            )
            admin.execute(text(f'ALTER DATABASE "{name}" RENAME TO "{away}"'))
            renamed = True
            publisher.run(300, 300, start=100).join()
            publisher.wait_acked(400)
            time.sleep(3)  # the worker tries, fails, backs off
            admin.execute(text(f'ALTER DATABASE "{away}" RENAME TO "{name}"'))
            admin.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
            renamed = False
        ctx.db.dispose()
        values = wait_stored(ctx, tenant, device.entity_id, 400)
    finally:
        publisher.close()
        if renamed:
            with pg_admin.connect() as admin:
                admin.execute(text(f'ALTER DATABASE "{away}" RENAME TO "{name}"'))
                admin.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
    log = server.log.read_text(errors="replace")
    assert "storing" in log and "retrying" in log  # it failed, backed off and tried again
    assert_exactly_once(values, publisher.acked)


def test_one_process_of_a_host_runs_the_worker(tmp_path: Path) -> None:
    from citybrain.apps.iot.lifespan import HostLock

    first, second = HostLock(tmp_path / "w.lock"), HostLock(tmp_path / "w.lock")
    assert first.acquire()
    assert not second.acquire()
    first.release()
    assert second.acquire()
    second.release()
