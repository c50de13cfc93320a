"""Demo seed and runner: Mianyang's sensors, a day of history, and the city kept alive while the demo serves.

`seed` registers the device models and the demo devices (running it again adds nothing), keeps the
devices' keys in the data directory (so `citybrain simulate --mqtt` can drive them through a broker)
and fills the last hours of history so the charts are not empty. `run` is the in-process simulator,
reporting every few seconds through the ingest pipeline, with the scripted incidents, and the
environment monitoring centre's air-quality forecast bulletin, re-issued every few minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import orjson

from citybrain.apps.context import services as context
from citybrain.apps.iot import city, services
from citybrain.apps.iot.city import Device
from citybrain.apps.iot.simulator import (
    BULLETIN_SECONDS,
    Bulletin,
    InternalSink,
    Simulator,
    Timeline,
    bulletin,
    bulletin_schedule,
    default_timeline,
)
from citybrain.sdk import SYSTEM, AppContext, ProblemError, utcnow

log = logging.getLogger(__name__)

KEYS_FILE = "iot-demo-device-keys.json"
SEED = 2026
# Hours of history the seed fills, and readings per device and minute of the running demo.
BACKFILL_HOURS = 24.0
RATE = 6.0
TICK_SECONDS = 1.0
# Messages per ingest call of the backfill.
BACKFILL_BATCH = 200
# Days of hourly history the air-quality stations get before those hours on a new database: the
# platform's pollutant forecasts need about four weeks of hourly means (a weekly season) to start.
FORECAST_HISTORY_DAYS = 28.0
LOOKUP_CHUNK = 500


def _keys_path(ctx: AppContext) -> Path:
    """Where the demo devices' keys are kept."""
    return ctx.settings.data_dir / KEYS_FILE


def load_keys(ctx: AppContext, tenant: str = "") -> dict[str, str]:
    """The keys of the demo devices kept in the data directory, by device id."""
    path = _keys_path(ctx)
    if not path.is_file():
        return {}
    try:
        data = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError:
        return {}
    keys = data.get(tenant or "default") if isinstance(data, dict) else None
    return {str(k): str(v) for k, v in keys.items()} if isinstance(keys, dict) else {}


def save_keys(ctx: AppContext, keys: dict[str, str], tenant: str = "") -> None:
    """Add device keys to the file in the data directory (readable by the owner only)."""
    if not keys:
        return
    path = _keys_path(ctx)
    data: dict[str, dict[str, str]] = {}
    if path.is_file():
        with contextlib.suppress(orjson.JSONDecodeError):
            loaded = orjson.loads(path.read_bytes())
            if isinstance(loaded, dict):
                data = {t: dict(v) for t, v in loaded.items() if isinstance(v, dict)}
    data.setdefault(tenant or "default", {}).update(keys)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    partial.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    partial.chmod(0o600)
    os.replace(partial, path)


def ensure_models(ctx: AppContext) -> None:
    """Register or update the device model of every demo kind."""
    for model in city.device_models():
        services.ensure_model(ctx, SYSTEM, model)


def ensure_devices(
    ctx: AppContext,
    devices: Sequence[Device],
    tenant: str = "",
    progress: Callable[[int], None] | None = None,
) -> int:
    """Register the devices not registered yet, keeping their keys; returns how many were registered."""
    found = services.lookup_devices(ctx, [(tenant, d.device_id) for d in devices])
    keys: dict[str, str] = {}
    created = 0
    try:
        for device in devices:
            if found.get((tenant, device.device_id)) is None:
                keys[device.device_id] = services.provision(ctx, SYSTEM, tenant, device.create()).key
                created += 1
                if progress is not None and created % 100 == 0:
                    progress(created)
    finally:
        save_keys(ctx, keys, tenant)
    return created


def usable_keys(ctx: AppContext, devices: Sequence[Device], tenant: str = "") -> dict[str, str]:
    """A working key for every registered device: the one on file, or a new one (rotated and kept)."""
    kept = load_keys(ctx, tenant)
    found = services.lookup_devices(ctx, [(tenant, d.device_id) for d in devices])
    keys: dict[str, str] = {}
    fresh: dict[str, str] = {}
    for device in devices:
        info = found.get((tenant, device.device_id))
        if info is None:
            continue
        key = kept.get(device.device_id)
        if key is not None and not info.revoked and services.key_matches(info, key):
            keys[device.device_id] = key
        else:
            fresh[device.device_id] = services.rotate_key(ctx, SYSTEM, info.pk).key
    save_keys(ctx, fresh, tenant)
    return keys | fresh


def registered_devices(ctx: AppContext, total: int | None = None, tenant: str = "") -> list[Device]:
    """The demo devices that are registered (the seed registers them)."""
    devices = city.city_devices(ctx, total)
    found = services.lookup_devices(ctx, [(tenant, d.device_id) for d in devices])
    return [d for d in devices if found.get((tenant, d.device_id)) is not None]


def latest_readings(ctx: AppContext, devices: Sequence[Device], tenant: str = "") -> dict[str, float]:
    """Per device id, the epoch instant of the newest reading its entity holds (none: absent)."""
    by_entity = {d.entity_id: d.device_id for d in devices}
    ids = sorted(by_entity)
    latest: dict[str, float] = {}
    for i in range(0, len(ids), LOOKUP_CHUNK):
        chunk = ids[i : i + LOOKUP_CHUNK]
        query = context.EntityQuery(ids=chunk, limit=len(chunk))
        for stored in context.query_entities(ctx, SYSTEM, tenant, query).entities:
            newest = max(
                (
                    instance["observedAt"]
                    for instances in stored.get("attrs", {}).values()
                    for instance in instances
                    if isinstance(instance, dict) and instance.get("observedAt")
                ),
                default=None,
            )
            if newest is not None:
                latest[by_entity[stored["id"]]] = datetime.fromisoformat(newest).timestamp()
    return latest


def backfill(
    ctx: AppContext,
    devices: Sequence[Device],
    hours: float,
    seed: int = SEED,
    tenant: str = "",
    end: datetime | None = None,
) -> int:
    """Store the `hours` before `end` (default: now) of every device's series (what is stored is skipped); values stored."""
    if hours <= 0 or not devices:
        return 0
    end = end or utcnow()
    simulator = Simulator(devices, seed=seed)
    sink = InternalSink(ctx, tenant, batch_size=BACKFILL_BATCH)
    batch: list[tuple[Device, bytes]] = []
    since = latest_readings(ctx, devices, tenant)
    for item in simulator.history(end - timedelta(hours=hours), end, since=since):
        batch.append(item)
        if len(batch) >= BACKFILL_BATCH:
            sink.deliver(batch)
            batch = []
    if batch:
        sink.deliver(batch)
    return sink.stored


def seed(
    ctx: AppContext,
    *,
    backfill_hours: float = BACKFILL_HOURS,
    forecast_history_days: float = FORECAST_HISTORY_DAYS,
) -> list[str]:
    """Register Mianyang's demo sensors (idempotent), fill recent history, and say how to drive them."""
    ensure_models(ctx)
    devices = city.city_devices(ctx)
    try:
        created = ensure_devices(ctx, devices)
    except ProblemError as exc:
        return [f"Demo sensors not registered: {exc}"]
    stored = 0
    if backfill_hours > 0:
        air = [d for d in devices if d.kind == city.AIR]
        earlier = utcnow() - timedelta(hours=backfill_hours)
        stored += backfill(ctx, air, forecast_history_days * 24, end=earlier)
    stored += backfill(ctx, devices, backfill_hours)
    kinds: dict[str, int] = {}
    for device in devices:
        kinds[device.kind] = kinds.get(device.kind, 0) + 1
    summary = ", ".join(f"{count} {city.KINDS[kind].name_en.lower()}s" for kind, count in kinds.items())
    timeline = default_timeline(utcnow(), devices)
    incidents = "; ".join(timeline.describe())
    stages = ", ".join(f"+{int(minutes)} min {stage}" for minutes, stage in bulletin_schedule(timeline))
    return [
        f"Demo sensors: {len(devices)} ({summary}); {created} registered now, {stored} history values stored.",
        f"Scripted incidents after the start: {incidents}.",
        f"Air-quality forecast bulletins every {BULLETIN_SECONDS / 60:g} min, heavy-pollution warnings graded"
        f" from them: {stages}.",
        "The in-process simulator keeps them reporting; to drive them through a broker instead:"
        f" citybrain simulate --mqtt mqtt://127.0.0.1:1883 (device keys in {_keys_path(ctx)}).",
    ]


async def run(
    ctx: AppContext,
    *,
    rate: float = RATE,
    tick: float = TICK_SECONDS,
    seed: int = SEED,
    incidents: bool = True,
    bulletin_seconds: float = BULLETIN_SECONDS,
) -> None:
    """Keep the demo city alive: every device reports `rate` times a minute, with the scripted incidents."""
    devices = await asyncio.to_thread(registered_devices, ctx)
    start = utcnow()
    timeline = default_timeline(start, devices) if incidents else None
    simulator = Simulator(devices, seed=seed, rate=rate, timeline=timeline)
    bulletins = asyncio.create_task(
        publish_bulletins(ctx, timeline, every=bulletin_seconds), name="citybrain-iot-bulletins"
    )
    try:
        await simulator.run(InternalSink(ctx), tick=tick)
    finally:
        bulletins.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await bulletins


def publish_bulletin(ctx: AppContext, issued: Bulletin, tenant: str = "") -> str:
    """Store a forecast bulletin in the context broker (the entity is created or its attributes replaced)."""
    body = issued.entity()
    result = context.upsert_entities(ctx, SYSTEM, tenant, [body])
    if result.errors:
        raise RuntimeError(f"the forecast bulletin was refused: {result.errors}")
    return str(body["id"])


async def publish_bulletins(
    ctx: AppContext,
    timeline: Timeline | None,
    *,
    every: float = BULLETIN_SECONDS,
    tenant: str = "",
    clock: Callable[[], float] = time.time,
) -> None:
    """Issue the forecast bulletin now and then every `every` seconds, until cancelled."""
    if not every > 0:
        raise ValueError("the bulletin interval must be positive")
    while True:
        try:
            await asyncio.to_thread(publish_bulletin, ctx, bulletin(timeline, clock()), tenant)
        except Exception:
            log.exception("the forecast bulletin could not be stored; trying again at the next issue")
        await asyncio.sleep(every)
