"""Traffic index figures on the demo city, against the raw broker read they start from; prints one JSON line.

Builds a fresh embedded (SQLite) platform in a temporary directory, seeds Mianyang's demo departments and
sensors with CITYBRAIN_BENCH_HOURS (default 24, as `citybrain demo`) hours of backfilled readings, then times, over
CITYBRAIN_BENCH_REPEAT (default 5) runs each (median):

* baseline: reading the traffic detector entities from the context broker (what every evaluation needs);
* picture: the whole current picture (detectors → segments → TTI/DTP/grades → city and district TPI);
* record: the picture plus writing the interval's index rows and publishing the RoadSegment entities;
* learn: learning every segment's free-flow speed from the detectors' history (one run).
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from citybrain.apps.context import services as context
from citybrain.apps.context.jsonld import Context
from citybrain.apps.identity import demo as identity_demo
from citybrain.apps.iot import demo as iot_demo
from citybrain.apps.traffic import services
from citybrain.core.migrate import upgrade
from citybrain.core.permissions import SYSTEM
from citybrain.core.platform import build_context
from citybrain.core.settings import load_settings

HOURS = float(os.environ.get("CITYBRAIN_BENCH_HOURS", "24"))
REPEAT = int(os.environ.get("CITYBRAIN_BENCH_REPEAT", "5"))


def timed(work: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """The median milliseconds of `repeat` runs and the last result."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = work()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), result


def main() -> None:
    """Seed the demo city, time the traffic index and print one JSON line."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            data_dir=Path(tmp),
            secret_key="bench-secret-key-that-is-long-enough-0123456789",
            bus_url="memory://",
        )
        ctx = build_context(settings)
        upgrade(ctx)
        identity_demo.seed(ctx)
        start = time.perf_counter()
        iot_demo.seed(ctx, backfill_hours=HOURS)
        seed_s = time.perf_counter() - start
        query = context.EntityQuery(types=[Context().expand_type("TrafficFlowObserved")], limit=5000)
        baseline_ms, detectors = timed(
            lambda: context.query_entities(ctx, SYSTEM, "", query).entities, REPEAT
        )
        # the backfill ends with the last complete quarter hour: evaluate just after its newest reading
        speed_iri = Context().expand("averageVehicleSpeed")
        newest = max(
            datetime.fromisoformat(e["attrs"][speed_iri][0]["observedAt"])
            for e in detectors
            if speed_iri in e["attrs"]
        )
        now = newest + timedelta(minutes=1)
        learn_ms, learned = timed(lambda: services.learn_free_flow(ctx, now), 1)
        picture_ms, picture = timed(lambda: services.evaluate(ctx, now), REPEAT)
        record_ms, rows = timed(lambda: services.record(ctx, now), REPEAT)
        city = picture.city
        print(
            json.dumps(
                {
                    "benchmark": "traffic_tpi",
                    "backend": "sqlite",
                    "backfill_hours": HOURS,
                    "seed_s": round(seed_s, 1),
                    "detectors": len(detectors),
                    "segments": city.segments,
                    "covered_segments": city.covered,
                    "free_flow_learned": sum(1 for v in learned.values() if v.source == "history"),
                    "city_tpi": None if city.index is None else round(city.index.tpi, 2),
                    "city_grade": None if city.index is None else city.index.grade.name_en,
                    "weighting": None if city.index is None else city.index.weighting,
                    "districts": {d.code: round(d.index.tpi, 2) for d in picture.districts if d.index},
                    "baseline_detector_read_ms": round(baseline_ms, 1),
                    "picture_ms": round(picture_ms, 1),
                    "record_ms": round(record_ms, 1),
                    "record_rows": rows,
                    "learn_free_flow_ms": round(learn_ms, 1),
                    "picture_over_baseline": round(picture_ms / baseline_ms, 2) if baseline_ms else None,
                },
                ensure_ascii=False,
            )
        )
        ctx.db.dispose()


if __name__ == "__main__":
    main()
