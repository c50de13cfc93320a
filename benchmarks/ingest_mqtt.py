"""MQTT ingest figures against a raw COPY baseline measured in the same run; prints one JSON line.

Three processes: this one (setup, measurement, the baseline), a publisher simulating N devices that
publish single readings with QoS 1 to their own topics, and the ingest process (the platform's MQTT
worker, outbox relay and bus, as `citybrain serve` runs them) storing into PostgreSQL (or SQLite with
`--sqlite`). A Mosquitto of its own is started on a free port unless CITYBRAIN_BENCH_BROKER names one.

Measured over a sustained window after a warm-up: data points stored per second (each point is a
history row and, when newest, the entity state), end-to-end latency from publish to the
context.entity.changed bus event (p50/p99), the ingest process's RSS at start and end and its CPU use,
where its time goes (the context broker's ingest, the checks, the bookkeeping), and the baseline: a raw
COPY (executemany on SQLite) of the same number of history rows into an equivalent table.

Settings (environment): CITYBRAIN_BENCH_PG (default the local server), CITYBRAIN_BENCH_DEVICES
(10000), CITYBRAIN_BENCH_POINTS (offered data points per second, 100000), CITYBRAIN_BENCH_SECONDS
(measured window, 60), CITYBRAIN_BENCH_WARMUP (10), CITYBRAIN_BENCH_STORE_THREADS (2),
CITYBRAIN_BENCH_BATCH (messages per batch, 5000), CITYBRAIN_BENCH_BROKER (mqtt://host:port).
`--profile` adds the ingest process's top functions (cProfile) to the result.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import cProfile
import io
import json
import os
import pstats
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

PG = os.environ.get("CITYBRAIN_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
DEVICES = int(os.environ.get("CITYBRAIN_BENCH_DEVICES", "10000"))
POINTS = float(os.environ.get("CITYBRAIN_BENCH_POINTS", "100000"))
SECONDS = float(os.environ.get("CITYBRAIN_BENCH_SECONDS", "60"))
WARMUP = float(os.environ.get("CITYBRAIN_BENCH_WARMUP", "10"))
STORE_THREADS = os.environ.get("CITYBRAIN_BENCH_STORE_THREADS", "2")
BATCH = os.environ.get("CITYBRAIN_BENCH_BATCH", "5000")
BROKER = os.environ.get("CITYBRAIN_BENCH_BROKER", "")
TENANT = "bench"
ATTRS = ("pm25", "pm10", "no2", "so2", "o3", "co")


def rss_kib(pid: int) -> int:
    """Resident set size of a process in KiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def database_cpu(name: str) -> float:
    """CPU seconds used so far by the PostgreSQL backends serving the database `name`."""
    total = 0.0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
            if b"postgres" in command and name.encode() in command:
                total += cpu_seconds(int(proc.name))
    return total


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank) in milliseconds."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000, 1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the publisher process -----------------------------------------------------------------------


def publisher_main(devices_file: str, port: int, rate: float, seconds: float, result_file: str) -> None:
    """Publish one reading per message per device, paced to `rate` messages per second in total."""
    import paho.mqtt.client as paho

    devices = [line.split(",") for line in Path(devices_file).read_text().splitlines()]
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{uuid.uuid4().hex[:8]}")
    client.max_inflight_messages_set(0)  # no limit: paho re-scans its in-flight list per ack otherwise
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    sent, held_back, began = 0, 0, time.monotonic()
    topics = [(f"citybrain/{TENANT}/{device_id}/attrs", key) for device_id, key in devices]
    step = 0.02  # publish in small bursts every 20 ms
    while (elapsed := time.monotonic() - began) < seconds:
        due = int(elapsed * rate)
        now_ms = int(time.time() * 1000)
        # devices wait for the broker's acknowledgements when it falls behind (QoS 1 back-pressure)
        while sent < due and len(client._out_messages) < 20000:
            topic, key = topics[sent % len(topics)]
            base = (sent // len(topics)) % 50
            values = {name: base + i for i, name in enumerate(ATTRS)}
            values["co"] = round(0.3 + base / 100, 2)
            client.publish(topic, orjson.dumps({"k": key, "ts": now_ms, "values": values}), qos=1)
            sent += 1
        if sent < due:
            held_back += 1
        time.sleep(step)
    published_for = time.monotonic() - began
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and client._out_messages:
        time.sleep(0.1)
    client.disconnect()
    client.loop_stop()
    result = {"published": sent, "seconds": published_for, "held_back_ticks": held_back}
    Path(result_file).write_text(json.dumps(result))


# --- the ingest process --------------------------------------------------------------------------


def ingest_main(result_file: str, profile: bool) -> None:
    """The platform's MQTT worker with its outbox relay and bus; records latencies and where time goes."""
    from citybrain.apps.context import services as context
    from citybrain.apps.context.events import AttributesChanged
    from citybrain.apps.iot import services as iot
    from citybrain.core.asgi import create_app
    from citybrain.core.settings import load_settings

    timers = {"ingest_messages": 0.0, "context_ingest": 0.0, "record": 0.0}
    counts = {"batches": 0, "messages": 0}
    lock = threading.Lock()

    def timed(name: str, fn: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                with lock:
                    timers[name] += time.perf_counter() - start

        return wrapper

    inner = iot.ingest_messages
    profiles: dict[int, cProfile.Profile] = {}

    def counted(ctx: Any, messages: Any) -> Any:
        with lock:
            counts["batches"] += 1
            counts["messages"] += len(messages)
        if not profile:
            return inner(ctx, messages)
        # one profiler per store thread, switched on only while it stores a batch
        profiler = profiles.setdefault(threading.get_ident(), cProfile.Profile())
        profiler.enable()
        try:
            return inner(ctx, messages)
        finally:
            profiler.disable()

    iot.ingest_messages = timed("ingest_messages", counted)  # type: ignore[assignment]
    context.ingest = timed("context_ingest", context.ingest)  # type: ignore[assignment]
    iot._record = timed("record", iot._record)  # type: ignore[attr-defined]

    app = create_app(load_settings())
    ctx = app.state.ctx
    stamps, latencies = array.array("d"), array.array("d")

    async def on_changed(event: AttributesChanged) -> None:
        now = time.time()
        for change in event.changes:
            observed = (change.new or {}).get("observedAt")
            if isinstance(observed, str):
                stamps.append(now)
                latencies.append(now - datetime.fromisoformat(observed).timestamp())
                return

    ctx.bus.subscribe(AttributesChanged, on_changed, durable="bench-latency")
    stop = asyncio.Event()

    async def run() -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        async with app.router.lifespan_context(app):
            while "iot.mqtt" not in ctx.extensions:
                await asyncio.sleep(0.05)
            await asyncio.to_thread(ctx.extensions["iot.mqtt"].wait_connected, 30)
            print("ready", flush=True)
            await stop.wait()

    cpu_before = os.times()
    asyncio.run(run())
    cpu_after = os.times()
    out: dict[str, Any] = {
        "timers": timers,
        "counts": counts,
        "cpu_seconds": (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system),
    }
    if profiles:
        buffer = io.StringIO()
        stats = pstats.Stats(*profiles.values(), stream=buffer)
        stats.sort_stats("tottime").print_stats(30)
        out["profile"] = buffer.getvalue()
    Path(result_file).write_text(json.dumps(out))
    with open(result_file + ".lat", "wb") as handle:
        stamps.tofile(handle)
        latencies.tofile(handle)


# --- setup, measurement, baseline ----------------------------------------------------------------


def provision(settings: Any, folder: Path) -> Path:
    """Migrate, seed a department and a model, register the devices; write their ids and keys."""
    from citybrain.apps.identity import schemas as identity_schemas
    from citybrain.apps.identity import services as identity
    from citybrain.apps.iot import schemas, services
    from citybrain.core.migrate import upgrade
    from citybrain.core.permissions import SYSTEM
    from citybrain.core.platform import build_context

    ctx = build_context(settings)
    upgrade(ctx)
    identity.create_department(
        ctx, SYSTEM, identity_schemas.DepartmentCreate(code="sthj", name_zh="市生态环境局")
    )
    services.ensure_model(
        ctx,
        SYSTEM,
        schemas.DeviceModelCreate(
            code="aq-station",
            name_zh="空气质量监测站",
            entity_type="AirQualityObserved",
            attributes=[
                schemas.AttributeSpec(
                    name=name, minimum=0, maximum=5000, unit_code="GP" if name == "co" else "GQ"
                )
                for name in ATTRS
            ],
        ),
    )
    lines = ["device_id,name,model,lon,lat,department"]
    for i in range(DEVICES):
        lon, lat = 104.55 + (i % 317) * 0.001, 31.35 + (i // 317 % 317) * 0.001
        lines.append(f"aq-{i:06d},站点 {i},aq-station,{lon:.5f},{lat:.5f},sthj")
    started = time.perf_counter()
    report = services.import_devices(ctx, SYSTEM, TENANT, "\n".join(lines).encode())
    assert not report.errors, report.errors[:3]
    provision_seconds = time.perf_counter() - started
    devices_file = folder / "devices.csv"
    devices_file.write_text("\n".join(f"{d.device_id},{d.key}" for d in report.created))
    ctx.db.dispose()
    (folder / "provision.json").write_text(json.dumps({"seconds": provision_seconds}))
    return devices_file


def history_max(engine: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT coalesce(max(pk), 0) FROM context_history")).scalar_one())


def baseline(engine: Any, rows: int, sqlite: bool) -> float:
    """Rows per second of a raw COPY (executemany on SQLite) of history rows into an equivalent table."""
    now = datetime.now(UTC)
    data = []
    for i in range(rows):
        entity = f"urn:ngsi-ld:AirQualityObserved:aq-{i % DEVICES:06d}"
        attr = "https://uri.etsi.org/ngsi-ld/default-context/" + ATTRS[i % len(ATTRS)]
        instance = {"type": "Property", "value": i % 50, "observedAt": now.isoformat()}
        data.append((TENANT, entity, attr, "", now, now, float(i % 50), orjson.dumps(instance).decode()))
    with engine.begin() as conn:
        if sqlite:
            conn.exec_driver_sql("CREATE TABLE raw_history AS SELECT * FROM context_history WHERE 0")
            conn.exec_driver_sql(
                "CREATE INDEX ix_raw_lookup ON raw_history (tenant, entity_id, attr, observed_at)"
            )
            conn.exec_driver_sql("CREATE INDEX ix_raw_modified ON raw_history (modified_at)")
        else:
            conn.exec_driver_sql(
                "CREATE TABLE raw_history (LIKE context_history INCLUDING DEFAULTS INCLUDING INDEXES)"
            )
    started = time.perf_counter()
    with engine.begin() as conn:
        if sqlite:
            conn.exec_driver_sql(
                "INSERT INTO raw_history (tenant, entity_id, attr, dataset_id, observed_at, modified_at, number,"
                " instance) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(*row[:4], row[4].isoformat(), row[5].isoformat(), *row[6:]) for row in data],
            )
        else:
            raw = conn.connection.driver_connection
            with (
                raw.cursor() as cursor,
                cursor.copy(
                    "COPY raw_history (tenant, entity_id, attr, dataset_id, observed_at, modified_at, number, instance)"
                    " FROM STDIN"
                ) as copy,
            ):
                for row in data:
                    copy.write_row(row)
    return rows / (time.perf_counter() - started)


def start_broker(folder: Path) -> tuple[subprocess.Popen[bytes] | None, int]:
    """A Mosquitto of its own, without the default per-client queue and in-flight limits."""
    if BROKER:
        parts = urlsplit(BROKER)
        return None, parts.port or 1883
    port = free_port()
    conf = folder / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_queued_messages 0\nmax_inflight_messages 0\nmax_queued_bytes 0\nlog_type error\n"
    )
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    process = subprocess.Popen(
        [mosquitto, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    for _ in range(100):
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, port
        time.sleep(0.05)
    raise RuntimeError("mosquitto did not start")


def main() -> None:
    """Set up, run the publisher against the ingest process, measure, print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sqlite", action="store_true", help="store into SQLite instead of PostgreSQL")
    parser.add_argument("--profile", action="store_true", help="profile the ingest process (cProfile)")
    parser.add_argument("--ingest", metavar="RESULT", help=argparse.SUPPRESS)
    parser.add_argument("--publish", nargs=5, metavar="X", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ingest:
        ingest_main(args.ingest, args.profile)
        return
    if args.publish:
        devices_file, port, rate, seconds, result = args.publish
        publisher_main(devices_file, int(port), float(rate), float(seconds), result)
        return

    from citybrain.core.settings import load_settings

    folder = Path(tempfile.mkdtemp(prefix="citybrain-bench-"))
    folder.chmod(0o755)
    name = f"citybrain_bench_{uuid.uuid4().hex[:8]}"
    admin = None if args.sqlite else create_engine(PG, isolation_level="AUTOCOMMIT")
    if args.sqlite:
        url = f"sqlite:///{folder / 'citybrain.db'}"
    else:
        assert admin is not None
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(PG).set(database=name).render_as_string(hide_password=False)
    broker, port = start_broker(folder)
    ingest = publisher = None
    try:
        settings = load_settings(database_url=url, data_dir=folder)
        devices_file = provision(settings, folder)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CITYBRAIN_")},
            "CITYBRAIN_DATABASE_URL": url,
            "CITYBRAIN_DATA_DIR": str(folder),
            "CITYBRAIN_IOT_MQTT_URL": f"mqtt://127.0.0.1:{port}",
            "CITYBRAIN_IOT_MQTT_CLIENT_ID": f"bench-{name}",
            "CITYBRAIN_IOT_MQTT_TOPIC": f"citybrain/{TENANT}/+/attrs",
            "CITYBRAIN_IOT_MQTT_SESSION_EXPIRY_SECONDS": "60",
            "CITYBRAIN_IOT_MQTT_RECEIVE_MAXIMUM": "65535",
            "CITYBRAIN_IOT_MQTT_BATCH_SIZE": BATCH,
            "CITYBRAIN_IOT_MQTT_STORE_THREADS": STORE_THREADS,
            "CITYBRAIN_IOT_KEY_CACHE_SECONDS": "60",
        }
        ingest_result = folder / "ingest.json"
        command = [sys.executable, __file__, "--ingest", str(ingest_result)]
        if args.profile:
            command.append("--profile")
        ingest = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert ingest.stdout is not None
        if ingest.stdout.readline().strip() != b"ready":
            raise RuntimeError("the ingest process did not start")
        rss_start = rss_kib(ingest.pid)
        rate = POINTS / len(ATTRS)
        publish_result = folder / "publisher.json"
        duration = WARMUP + SECONDS
        publisher = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--publish",
                str(devices_file),
                str(port),
                str(rate),
                str(duration),
                str(publish_result),
            ],
            env=env,
        )
        engine = create_engine(url)
        time.sleep(WARMUP)
        first, window_start = history_max(engine), time.time()
        watched = {"ingest": ingest.pid, "publisher": publisher.pid}
        if broker is not None:
            watched["broker"] = broker.pid
        cpu_start = {role: cpu_seconds(pid) for role, pid in watched.items()}
        db_start = database_cpu(name) if not args.sqlite else 0.0
        time.sleep(SECONDS)
        last, window_end = history_max(engine), time.time()
        cpu_end = {role: cpu_seconds(pid) for role, pid in watched.items()}
        db_end = database_cpu(name) if not args.sqlite else 0.0
        rss_end = rss_kib(ingest.pid)
        publisher.wait(180)
        time.sleep(3)  # let the backlog drain before the process stops
        ingest.send_signal(signal.SIGTERM)
        ingest.wait(120)
        stored_rate = (last - first) / (window_end - window_start)
        details = json.loads(ingest_result.read_text())
        raw = (folder / "ingest.json.lat").read_bytes()
        half = len(raw) // 2
        stamps, latencies = array.array("d"), array.array("d")
        stamps.frombytes(raw[:half])
        latencies.frombytes(raw[half:])
        window = [
            lat for stamp, lat in zip(stamps, latencies, strict=True) if window_start <= stamp <= window_end
        ]
        published = json.loads(publish_result.read_text())
        timers = details["timers"]
        busy = timers["ingest_messages"] or 1.0
        raw_rows = min(max(int(last - first), 100_000), 1_000_000)
        raw_rate = baseline(engine, raw_rows, args.sqlite)
        engine.dispose()
        result: dict[str, Any] = {
            "benchmark": "ingest_mqtt",
            "database": "sqlite" if args.sqlite else "postgresql",
            "devices": DEVICES,
            "offered_points_per_s": POINTS,
            "offered_messages_per_s": round(rate),
            "published_messages_per_s": round(published["published"] / published["seconds"]),
            "publisher_held_back_share": round(published["held_back_ticks"] * 0.02 / published["seconds"], 3),
            "window_s": round(window_end - window_start, 1),
            "points_per_s": round(stored_rate),
            "target_points_per_s": 100_000,
            "latency_publish_to_event_p50_ms": percentile(window, 0.5),
            "latency_publish_to_event_p99_ms": percentile(window, 0.99),
            "latency_samples": len(window),
            "ingest_rss_kib": {"start": rss_start, "end": rss_end},
            "cpu_cores_used": {
                **{
                    role: round((cpu_end[role] - cpu_start[role]) / (window_end - window_start), 2)
                    for role in watched
                },
                **(
                    {}
                    if args.sqlite
                    else {"postgresql": round((db_end - db_start) / (window_end - window_start), 2)}
                ),
            },
            "machine_cores": os.cpu_count(),
            "ingest_time_share": {
                "context_ingest": round(timers["context_ingest"] / busy, 3),
                "bookkeeping": round(timers["record"] / busy, 3),
                "checks_and_rest": round(1 - (timers["context_ingest"] + timers["record"]) / busy, 3),
            },
            "batches": details["counts"]["batches"],
            "messages_per_batch": round(details["counts"]["messages"] / max(1, details["counts"]["batches"])),
            "baseline_raw_copy_rows_per_s": round(raw_rate),
            "ratio_to_raw_copy": round(stored_rate / raw_rate, 3),
            "provision_devices_s": round(json.loads((folder / "provision.json").read_text())["seconds"], 1),
        }
        if "profile" in details:
            print(details["profile"], file=sys.stderr)
        print(json.dumps(result, ensure_ascii=False))
    finally:
        for process in (publisher, ingest):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(10)
        if broker is not None:
            broker.terminate()
            broker.wait(10)
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
