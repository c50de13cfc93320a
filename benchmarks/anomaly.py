"""Per-reading cost of the anomaly detector, against reference costs measured in the same run; prints one JSON line.

CITYBRAIN_BENCH_SERIES (default 1,000) PM2.5-like series with a daily cycle and noise, CITYBRAIN_BENCH_STEPS
(default 100) readings each, fed time step by time step (100,000 readings by default), timed over
CITYBRAIN_BENCH_REPEAT (default 3) runs each (median), every run on a fresh detector:

* detector: `Detector.observe` with the stuck, spike and drop/jump detectors;
* detector_peers: the same with drift, each series given the five other series of its group as peers;
* baseline_last_value: keeping only each series' last reading in a dict (the least any streaming check costs);
* baseline_numpy_median: numpy median and MAD of each series' last 48 readings on every reading (the
  textbook robust baseline, one of the four detectors' work).

Also reports the bytes held per tracked series (tracemalloc, with peers).
"""

from __future__ import annotations

import json
import os
import statistics
import time
import tracemalloc
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np

from citybrain.apps.warning.anomaly import Detector, SeriesKey

SERIES = int(os.environ.get("CITYBRAIN_BENCH_SERIES", "1000"))
STEPS = int(os.environ.get("CITYBRAIN_BENCH_STEPS", "100"))
REPEAT = int(os.environ.get("CITYBRAIN_BENCH_REPEAT", "3"))
GROUP = 6


def timed(work: Callable[[], object], repeat: int) -> float:
    """The median seconds of `repeat` runs."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    """Time every variant and print one JSON line."""
    rng = np.random.default_rng(0)
    keys = [SeriesKey(f"urn:ngsi-ld:AirQualityObserved:s{i}", "pm25") for i in range(SERIES)]
    groups = [keys[i : i + GROUP] for i in range(0, SERIES, GROUP)]
    peers = {key: [p for p in group if p != key] for group in groups for key in group}
    start = datetime(2026, 3, 2, tzinfo=UTC)
    times = [start + timedelta(minutes=5 * j) for j in range(STEPS)]
    hours = np.arange(STEPS) * 5 / 60
    cycle = 12 * np.cos(2 * np.pi * (hours - 22) / 24)
    values = (38 + cycle + rng.normal(0, 2.5, (SERIES, STEPS))).tolist()
    readings = SERIES * STEPS

    def detector(with_peers: bool) -> Detector:
        found = Detector()
        for j, moment in enumerate(times):
            for i, key in enumerate(keys):
                found.observe(key, moment, values[i][j], peers[key] if with_peers else None)
        return found

    def last_value() -> None:
        last: dict[SeriesKey, tuple[datetime, float]] = {}
        for j, moment in enumerate(times):
            for i, key in enumerate(keys):
                last[key] = (moment, values[i][j])

    def numpy_median() -> None:
        windows: dict[SeriesKey, deque[float]] = {key: deque(maxlen=48) for key in keys}
        for j in range(STEPS):
            for i, key in enumerate(keys):
                window = windows[key]
                if window:
                    array = np.fromiter(window, float, len(window))
                    median = np.median(array)
                    np.median(np.abs(array - median))
                window.append(values[i][j])

    results = {
        "detector": timed(lambda: detector(False), REPEAT),
        "detector_peers": timed(lambda: detector(True), REPEAT),
        "baseline_last_value": timed(last_value, REPEAT),
        "baseline_numpy_median": timed(numpy_median, REPEAT),
    }
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = detector(True)
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    print(
        json.dumps(
            {
                "benchmark": "anomaly",
                "series": SERIES,
                "readings": readings,
                **{f"{name}_us_per_reading": round(s / readings * 1e6, 2) for name, s in results.items()},
                "bytes_per_series": round(held / len(kept)),
            }
        )
    )


if __name__ == "__main__":
    main()
