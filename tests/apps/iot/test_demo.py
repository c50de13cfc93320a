"""The demo city against a real database: placements, the seed, the running simulator, `citybrain simulate`."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import orjson
import paho.mqtt.client as paho
import pytest
from click.testing import CliRunner, Result

from citybrain.apps.context import services as context
from citybrain.apps.geo import services as geo
from citybrain.apps.identity import demo as identity_demo
from citybrain.apps.iot import city, demo, services
from citybrain.core.cli import _add_app_commands, cli
from citybrain.core.context import AppContext
from citybrain.core.permissions import SYSTEM
from citybrain.core.settings import Settings
from citybrain.sdk import utcnow
from tests.conftest import service_missing

DEFAULT = "https://uri.etsi.org/ngsi-ld/default-context/"
Run = Callable[..., Result]


@pytest.fixture
def departments(ctx: AppContext) -> AppContext:
    """A context whose database holds the demo departments (owners of the sensors)."""
    identity_demo.seed(ctx)
    return ctx


@pytest.fixture
def run(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    """Invoke `citybrain ...` in-process with the environment pointing at the test's database."""
    _add_app_commands()
    monkeypatch.chdir(tmp_path)
    env: dict[str, str | None] = {
        "CITYBRAIN_DATA_DIR": str(settings.data_dir),
        "CITYBRAIN_DATABASE_URL": settings.db_url,
        "CITYBRAIN_MODE": "development",
        "CITYBRAIN_BUS_URL": "memory://",
        "CITYBRAIN_APPS": None,
    }

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(cli, list(args), env=env)

    return invoke


def device_count(ctx: AppContext) -> int:
    """How many devices the iot app holds in the default tenant."""
    return services.list_devices(ctx, SYSTEM, limit=1).total


def newest(ctx: AppContext, devices: list[city.Device]) -> dict[str, datetime]:
    """The newest reading instant of each device's entity."""
    return {k: datetime.fromtimestamp(v).astimezone() for k, v in demo.latest_readings(ctx, devices).items()}


# --- placements ----------------------------------------------------------------------------------


def test_every_device_lies_in_its_district(ctx: AppContext) -> None:
    devices = city.city_devices(ctx)
    assert len({d.device_id for d in devices}) == len(devices)
    for device in devices:
        found = geo.district_at(ctx, device.lon, device.lat)
        assert found is not None and found.code == device.district, device.name
    kinds = Counter(d.kind for d in devices)
    assert 40 <= kinds[city.TRAFFIC] <= 80
    assert 100 <= kinds[city.LAMP] <= 300
    assert kinds[city.WATER] >= 5 and kinds[city.NOISE] >= 8 and kinds[city.RAIN] >= 9
    # An air-quality station in every district and county, several in the central city.
    air = Counter(d.district for d in devices if d.kind == city.AIR)
    assert set(air) == set(city.DISTRICT_NAMES)
    assert air[city.FUCHENG] + air[city.YOUXIAN] >= 5
    # Detectors stand on the geo app's roads and bridges, named as the roads are.
    roads = {r.id: r for r in geo.roads(ctx)}
    for device in devices:
        if device.kind == city.TRAFFIC:
            road = roads[device.static["refRoadSegment"]]
            assert device.static["roadName"] == road.name_zh
    names = {d.static["roadName"] for d in devices if d.kind == city.TRAFFIC}
    assert {"九洲大道", "临园路", "剑南路", "富乐大桥", "涪江大桥", "三江大桥"} <= names
    rivers = {d.static["riverName"] for d in devices if d.kind == city.WATER}
    assert rivers == {"涪江", "安昌河"}


def test_a_large_city_spreads_generated_devices_over_every_district(ctx: AppContext) -> None:
    devices = city.city_devices(ctx, total=10_000)
    assert len(devices) == 10_000
    assert len({d.device_id for d in devices}) == 10_000
    generated = devices[len(city.city_devices(ctx)) :]
    codes = geo.district_codes_at(ctx, [(d.lon, d.lat) for d in generated])
    assert codes == [d.district for d in generated]
    assert set(codes) == set(city.DISTRICT_NAMES)
    assert {d.kind for d in generated} == {city.LAMP, city.TRAFFIC, city.NOISE, city.AIR, city.RAIN}
    # Fewer than the hand-placed ones: a prefix that still holds every kind.
    few = city.city_devices(ctx, total=12)
    assert len(few) == 12 and len({d.kind for d in few}) == 6


# --- seed ----------------------------------------------------------------------------------------


def test_seed_registers_the_city_once(departments: AppContext) -> None:
    ctx = departments
    devices = city.city_devices(ctx)
    lines = demo.seed(ctx, backfill_hours=2)
    assert f"Demo sensors: {len(devices)}" in lines[0] and f"{len(devices)} registered now" in lines[0]
    assert "+5 min: 九洲大道拥堵" in lines[1]
    assert "every 5 min" in lines[2] and "+25 min yellow, +40 min orange, +60 min red" in lines[2]
    assert "citybrain simulate --mqtt" in lines[3]
    assert device_count(ctx) == len(devices)
    models = {m.code: m for m in services.list_models(ctx, SYSTEM)}
    assert {k.model_code for k in city.KINDS.values()} <= set(models)

    counts = context.entity_type_counts(ctx, SYSTEM, "")
    for kind in city.KINDS.values():
        expected = sum(1 for d in devices if d.kind == kind.key)
        assert counts[DEFAULT + kind.entity_type] == expected

    # The entity carries the static attributes and a couple of hours of history.
    gauge = next(d for d in devices if d.name == "涪江绵阳站")
    stored = context.get_entity(ctx, SYSTEM, "", gauge.entity_id)
    assert stored["attrs"][DEFAULT + "riverName"][0]["value"] == "涪江"
    assert stored["attrs"][DEFAULT + "warningLevel"][0]["value"] == gauge.static["warningLevel"]
    history = context.attribute_history(ctx, SYSTEM, "", gauge.entity_id, DEFAULT + "height")
    assert 7 <= len(history) <= 9  # every 15 minutes
    detector = next(d for d in devices if d.kind == city.TRAFFIC)
    assert context.attribute_history(ctx, SYSTEM, "", detector.entity_id, DEFAULT + "intensity")

    # Keys are kept for `simulate --mqtt` and work.
    keys = demo.load_keys(ctx)
    assert set(keys) == {d.device_id for d in devices}
    found = services.lookup_devices(ctx, [("", d.device_id) for d in devices])
    assert all(services.key_matches(found[("", d.device_id)], keys[d.device_id]) for d in devices)  # type: ignore[arg-type]
    path = ctx.settings.data_dir / demo.KEYS_FILE
    assert path.stat().st_mode & 0o077 == 0

    # Seeding again adds nothing.
    again = demo.seed(ctx, backfill_hours=2)
    assert "0 registered now" in again[0] and ", 0 history values stored" in again[0]
    assert device_count(ctx) == len(devices)
    assert demo.load_keys(ctx) == keys
    assert context.attribute_history(ctx, SYSTEM, "", gauge.entity_id, DEFAULT + "height") == history


def test_seed_without_departments_says_so(ctx: AppContext) -> None:
    lines = demo.seed(ctx, backfill_hours=0)
    assert lines[0].startswith("Demo sensors not registered:")
    assert device_count(ctx) == 0


async def test_run_reissues_the_forecast_bulletin(ctx: AppContext) -> None:
    started = utcnow()
    task = asyncio.create_task(demo.run(ctx, tick=0.2, bulletin_seconds=0.4))
    await asyncio.sleep(1.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    forecast = "urn:ngsi-ld:AirQualityForecast:510700"
    stored = await asyncio.to_thread(context.get_entity, ctx, SYSTEM, "", forecast)
    assert stored["type"] == [DEFAULT + "AirQualityForecast"]
    # before (or without) a pollution episode the bulletin is quiet
    assert stored["attrs"][DEFAULT + "dailyAQI"][0]["value"] == [62, 71, 80, 76, 68]
    issued = datetime.fromisoformat(stored["attrs"][DEFAULT + "issuedAt"][0]["value"])
    assert issued > started + timedelta(seconds=0.3)  # issued at the start and again since
    with pytest.raises(ValueError, match="positive"):
        await demo.publish_bulletins(ctx, None, every=0)


async def test_run_stores_new_readings(departments: AppContext) -> None:
    ctx = departments
    await asyncio.to_thread(demo.seed, ctx, backfill_hours=0)
    devices = await asyncio.to_thread(city.city_devices, ctx)
    started = utcnow()
    task = asyncio.create_task(demo.run(ctx, rate=60, tick=0.2))
    await asyncio.sleep(3.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    latest = await asyncio.to_thread(newest, ctx, devices)
    fresh = {device_id for device_id, when in latest.items() if when >= started - timedelta(seconds=1)}
    detectors = {d.device_id for d in devices if d.kind == city.TRAFFIC}
    assert detectors <= fresh  # every detector reported (once a second)
    assert len(fresh) > len(devices) // 2


# --- citybrain simulate ----------------------------------------------------------------------------


def test_simulate_in_process(departments: AppContext, run: Run) -> None:
    ctx = departments
    result = run("simulate", "--devices", "18", "--duration", "2", "--rate", "120", "--no-incidents")
    assert result.exit_code == 0, result.output
    assert "18 registered now." in result.output and "Sent " in result.output
    devices = city.city_devices(ctx, total=18)
    assert device_count(ctx) == 18
    assert len(newest(ctx, devices)) >= 15


@pytest.fixture
def subscriber() -> Iterator[tuple[str, list[paho.MQTTMessage]]]:
    """A tenant of the test's own and the messages a real Mosquitto delivers for it."""
    tenant = f"sim{uuid.uuid4().hex[:8]}"
    received: list[paho.MQTTMessage] = []
    subscribed = threading.Event()
    client = paho.Client(paho.CallbackAPIVersion.VERSION2)
    client.on_message = lambda _c, _u, message: received.append(message)
    client.on_subscribe = lambda *_args: subscribed.set()
    try:
        client.connect("127.0.0.1", 1883)
    except OSError as exc:
        service_missing("Mosquitto", exc)
    client.loop_start()
    client.subscribe(f"citybrain/{tenant}/+/attrs", qos=1)
    assert subscribed.wait(20)
    yield tenant, received
    client.loop_stop()
    client.disconnect()


def test_simulate_publishes_to_the_broker(
    departments: AppContext, run: Run, subscriber: tuple[str, list[paho.MQTTMessage]]
) -> None:
    ctx = departments
    tenant, received = subscriber
    result = run(
        "simulate", "--mqtt", "mqtt://127.0.0.1:1883", "--devices", "12", "--duration", "2", "--rate", "60",
        "--tenant", tenant,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    sent = int(result.output.split("Sent ")[1].split()[0])
    assert sent > 0
    deadline = datetime.now() + timedelta(seconds=5)
    while len(received) < sent and datetime.now() < deadline:
        threading.Event().wait(0.05)
    assert len(received) == sent
    devices = {d.device_id: d for d in city.city_devices(ctx, total=12)}
    found = services.lookup_devices(ctx, [(tenant, device_id) for device_id in devices])
    for message in received:
        _, topic_tenant, device_id, _ = message.topic.split("/")
        assert topic_tenant == tenant and device_id in devices
        body = orjson.loads(message.payload)
        assert set(body["values"]) == {a.name for a in devices[device_id].spec.attributes}
        info = found[(tenant, device_id)]
        assert info is not None and services.key_matches(info, body["k"])


def test_simulate_refuses_bad_input(departments: AppContext, run: Run) -> None:
    assert run("simulate", "--rate", "0").exit_code == 2
    assert run("simulate", "--devices", "0").exit_code == 2
    bad_tenant = run("simulate", "--tenant", "no/slashes", "--duration", "0")
    assert bad_tenant.exit_code == 1 and "tenant" in bad_tenant.output.lower()
    bad_url = run("simulate", "--devices", "3", "--mqtt", "http://127.0.0.1:1883", "--duration", "1")
    assert bad_url.exit_code == 2 and "mqtt://" in bad_url.output
    assert device_count(departments) == 0  # nothing registered for a command that cannot run
    refused = run("simulate", "--devices", "3", "--mqtt", "mqtt://127.0.0.1:1", "--duration", "1")
    assert refused.exit_code == 1 and "cannot publish" in refused.output
