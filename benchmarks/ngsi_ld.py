"""NGSI-LD broker figures against baselines measured in the same run; prints one JSON line.

Runs one `citybrain serve` process on PostgreSQL (CITYBRAIN_BENCH_PG, default the local server) and drives
it over HTTP. Sizes: CITYBRAIN_BENCH_ENTITIES (default 100000), CITYBRAIN_BENCH_SECONDS (default 10);
server processes: CITYBRAIN_BENCH_WORKERS (default 1).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from citybrain.apps.identity import schemas, services
from citybrain.apps.identity.models import User
from citybrain.core.migrate import upgrade
from citybrain.core.permissions import SYSTEM
from citybrain.core.platform import build_context
from citybrain.core.settings import load_settings

PG = os.environ.get("CITYBRAIN_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
ENTITIES = int(os.environ.get("CITYBRAIN_BENCH_ENTITIES", "100000"))
SECONDS = float(os.environ.get("CITYBRAIN_BENCH_SECONDS", "10"))
WORKERS = os.environ.get("CITYBRAIN_BENCH_WORKERS", "1")
BASE = "/ngsi-ld/v1"


def entity(i: int) -> dict[str, Any]:
    """A traffic detector somewhere in Mianyang's urban area."""
    return {
        "id": f"urn:ngsi-ld:TrafficFlowObserved:bench-{i:06d}",
        "type": "TrafficFlowObserved",
        "intensity": {"type": "Property", "value": i % 400, "observedAt": "2026-11-24T08:00:00Z"},
        "averageVehicleSpeed": {"type": "Property", "value": 20 + i % 60},
        "location": {
            "type": "GeoProperty",
            "value": {
                "type": "Point",
                "coordinates": [104.55 + (i % 317) * 0.001, 31.35 + (i // 317 % 317) * 0.001],
            },
        },
    }


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank) in milliseconds."""
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000, 2)


def timed(fn: Any, repeat: int = 30) -> float:
    """Median wall time of fn() in milliseconds."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return round(statistics.median(samples) * 1000, 2)


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    """Send one HTTP/1.1 request on a keep-alive connection, read the whole response, return its status."""
    writer.write(request)
    await writer.drain()
    status = int((await reader.readline()).split(b" ", 2)[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


async def hammer(url: str, token: str, seconds: float, concurrency: int = 16) -> dict[str, float]:
    """Partial attribute updates of random entities for `seconds`, `concurrency` at a time."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    target = httpx.URL(url)
    head = (
        f"Host: {target.host}:{target.port}\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\n"
    )

    async def worker(n: int) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(target.host, target.port)
        try:
            i = n
            while time.perf_counter() < deadline:
                body = orjson.dumps({"value": i % 500, "observedAt": datetime.now(UTC).isoformat()})
                path = f"{BASE}/entities/{entity(i % 1000)['id']}/attrs/intensity"
                request = f"PATCH {path} HTTP/1.1\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode()
                start = time.perf_counter()
                status = await exchange(reader, writer, request + body)
                latencies.append(time.perf_counter() - start)
                errors += status != 204
                i += concurrency
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    elapsed = time.perf_counter() - began
    return {
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": percentile(latencies, 0.5),
        "p99_ms": percentile(latencies, 0.99),
        "errors": errors,
    }


def changed(i: int) -> dict[str, Any]:
    """Entity i with a new intensity reading."""
    item = entity(i)
    item["intensity"] = {"type": "Property", "value": (i + 7) % 400, "observedAt": "2026-11-24T08:05:00Z"}
    return item


async def upsert_streams(base: str, token: str, count: int, streams: int) -> float:
    """Batch upserts changing `count` existing entities, 1000 a request, `streams` in flight; entities/s."""
    chunks = [range(i, min(i + 1000, count)) for i in range(0, count, 1000)]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=300) as client:

        async def stream(n: int) -> None:
            for chunk in chunks[n::streams]:
                body = orjson.dumps([changed(i) for i in chunk])
                response = await client.post(f"{BASE}/entityOperations/upsert", content=body)
                assert response.status_code in (201, 204), response.text

        started = time.perf_counter()
        await asyncio.gather(*(stream(n) for n in range(streams)))
        return count / (time.perf_counter() - started)


def main() -> None:
    """Set up a fresh database and server, measure, print one JSON line."""
    name = f"citybrain_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG).set(database=name).render_as_string(hide_password=False)
    env = {**os.environ, "CITYBRAIN_DATABASE_URL": url, "CITYBRAIN_DATA_DIR": f"/tmp/{name}"}
    server = None
    try:
        settings = load_settings(database_url=url, data_dir=f"/tmp/{name}")
        ctx = build_context(settings)
        upgrade(ctx)
        roles = services.ensure_builtin_roles(ctx, SYSTEM)
        dept = services.create_department(
            ctx, SYSTEM, schemas.DepartmentCreate(code="dsj", name_zh="市大数据中心")
        )
        user = services.create_user(
            ctx,
            SYSTEM,
            schemas.UserCreate(
                username="bench", display_name="bench", department_id=dept.id, password="bench-password-1"
            ),
        )
        services.assign_role(ctx, SYSTEM, user.id, schemas.AssignmentCreate(role_id=roles["platform_admin"]))
        with ctx.read() as session:
            actor = services.actor_for(ctx, session, session.get_one(User, user.id))
        token = services.create_token(
            ctx,
            actor,
            schemas.TokenCreate(name="bench", scopes=["context.entity.read", "context.entity.write"]),
        ).token
        ctx.db.dispose()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "citybrain",
                "serve",
                "--port",
                str(port),
                "--workers",
                WORKERS,
                "--no-access-log",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=300)
        engine = create_engine(url)
        result: dict[str, Any] = {"benchmark": "ngsi_ld", "database": "postgresql", "entities": ENTITIES}

        # Batch upsert: the broker vs a raw multi-row INSERT of the same JSON documents.
        started = time.perf_counter()
        for chunk in range(0, ENTITIES, 1000):
            response = client.post(
                f"{BASE}/entityOperations/upsert",
                content=orjson.dumps([entity(i) for i in range(chunk, min(chunk + 1000, ENTITIES))]),
                headers={"Content-Type": "application/json"},
            )
            assert response.status_code in (201, 204), response.text
        broker_rate = ENTITIES / (time.perf_counter() - started)
        with engine.begin() as conn:
            conn.execute(text("CREATE TEMP TABLE raw_entity (id text primary key, data jsonb)"))
            started = time.perf_counter()
            for chunk in range(0, ENTITIES, 1000):
                conn.execute(
                    text("INSERT INTO raw_entity VALUES (:id, CAST(:data AS jsonb))"),
                    [
                        {"id": entity(i)["id"], "data": json.dumps(entity(i))}
                        for i in range(chunk, min(chunk + 1000, ENTITIES))
                    ],
                )
            raw_rate = ENTITIES / (time.perf_counter() - started)
        # Updates of those entities by batch upsert, 4 requests in flight (a loader's usual way).
        streams_rate = asyncio.run(upsert_streams(base, token, ENTITIES, 4))
        result["batch_upsert"] = {
            "entities_per_s": round(broker_rate),
            "updates_per_s_4_streams": round(streams_rate),
            "raw_insert_per_s": round(raw_rate),
            "ratio_to_raw": round(broker_rate / raw_rate, 3),
            "target_per_s": 20000,
        }

        # Single-entity partial attribute update over HTTP vs the same JSON update as raw SQL.
        update = asyncio.run(hammer(base, token, SECONDS))
        with engine.begin() as conn:
            count, started = 0, time.perf_counter()
            while time.perf_counter() - started < min(SECONDS, 3):
                conn.execute(
                    text(
                        "UPDATE raw_entity SET data = jsonb_set(data, '{intensity,value}', to_jsonb(:v)) "
                        "WHERE id = :id"
                    ),
                    {"v": count % 500, "id": entity(count % 1000)["id"]},
                )
                count += 1
            raw_updates = count / (time.perf_counter() - started)
        result["partial_update"] = {
            **update,
            "raw_sql_updates_per_s": round(raw_updates),
            "ratio_to_raw": round(update["requests_per_s"] / raw_updates, 3),
            "target_per_s": 2500,
            "target_p99_ms": 25,
        }

        # type + q query, and a near geo-query, each p50 over HTTP vs the raw SQL of the same filter.
        q_params = {"type": "TrafficFlowObserved", "q": "intensity>395;averageVehicleSpeed<30", "limit": "20"}
        geo_params = {
            "type": "TrafficFlowObserved",
            "georel": "near;maxDistance==300",
            "geometry": "Point",
            "coordinates": "[104.70,31.45]",
            "limit": "20",
        }
        result["query_type_q_p50_ms"] = timed(lambda: client.get(f"{BASE}/entities", params=q_params))
        result["query_near_p50_ms"] = timed(lambda: client.get(f"{BASE}/entities", params=geo_params))
        with engine.connect() as conn:
            result["raw_sql_q_p50_ms"] = timed(
                lambda: conn.execute(
                    text(
                        "SELECT data FROM raw_entity WHERE (data->'intensity'->>'value')::float > 395 "
                        "AND (data->'averageVehicleSpeed'->>'value')::float < 30 ORDER BY id LIMIT 20"
                    )
                ).all()
            )
        result["query_targets_ms"] = {"type_q_p50": 20, "near_p50": 30}

        # Temporal aggregation: one month of 1-minute data for one entity, avg per hour.
        target_id = entity(0)["id"]
        start = datetime(2026, 10, 1, tzinfo=UTC)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO context_history (tenant, entity_id, attr, dataset_id, observed_at, modified_at, number,"
                    " instance) SELECT '', :id, 'https://uri.etsi.org/ngsi-ld/default-context/intensity', '',"
                    " :start + make_interval(mins => g), :start + make_interval(mins => g), g % 400,"
                    " jsonb_build_object('type', 'Property', 'value', g % 400)"
                    " FROM generate_series(0, 43199) g"
                ),
                {"id": target_id, "start": start},
            )
        temporal = {
            "attrs": "intensity",
            "timerel": "between",
            "timeAt": "2026-10-01T00:00:00Z",
            "endTimeAt": "2026-10-31T00:00:00Z",
            "options": "aggregatedValues",
            "aggrMethods": "avg",
            "aggrPeriodDuration": "PT1H",
        }
        result["temporal_avg_hourly_month_p50_ms"] = timed(
            lambda: client.get(f"{BASE}/temporal/entities/{target_id}", params=temporal), repeat=15
        )
        with engine.connect() as conn:
            result["raw_sql_hourly_avg_p50_ms"] = timed(
                lambda: conn.execute(
                    text(
                        "SELECT date_trunc('hour', observed_at), avg(number) FROM context_history WHERE entity_id = :id "
                        "GROUP BY 1 ORDER BY 1"
                    ),
                    {"id": target_id},
                ).all(),
                repeat=15,
            )
        result["temporal_target_p50_ms"] = 50
        engine.dispose()
        client.close()
        print(json.dumps(result, ensure_ascii=False))
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=20)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        _ = timedelta


if __name__ == "__main__":
    main()
