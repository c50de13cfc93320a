"""Anomaly detection on synthetic sensor streams with known, injected anomalies."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from citybrain.apps.warning.anomaly import (
    EPISODES,
    KINDS,
    LEVELS,
    MESSAGES,
    Detector,
    DetectorConfig,
    DriftConfig,
    DriftDetector,
    Finding,
    SeriesKey,
    ShiftConfig,
    ShiftDetector,
    SpikeConfig,
    SpikeDetector,
    StuckConfig,
    StuckDetector,
)

START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday, 08:00 in Mianyang
STEP = timedelta(minutes=5)
DAY = 288  # readings a day at one every five minutes
PM25 = SeriesKey("urn:ngsi-ld:AirQualityObserved:fucheng-1", "pm25")
SPEED = SeriesKey("urn:ngsi-ld:TrafficFlowObserved:jiuzhou-avenue-1", "averageVehicleSpeed")
Array = npt.NDArray[np.float64]


def at(i: int) -> datetime:
    """The time of reading i."""
    return START + i * STEP


def local_hours(n: int) -> Array:
    """Asia/Shanghai hour of day of n readings from START."""
    return (8 + np.arange(n) * STEP.total_seconds() / 3600) % 24


def pm25(rng: np.random.Generator, n: int, offset: float = 0.0) -> Array:
    """PM2.5 (µg/m³) with a diurnal cycle peaking at night and normal noise."""
    cycle = 12 * np.cos(2 * np.pi * (local_hours(n) - 22) / 24)
    return np.maximum(1.0, 38 + offset + cycle + rng.normal(0, 2.5, n))


def speed(rng: np.random.Generator, n: int) -> Array:
    """Average speed (km/h) of a city road: free flow at night, dips at the morning and evening rush hours."""
    h = local_hours(n)
    morning = 26 * np.exp(-((h - 8) ** 2) / (2 * 0.75**2))
    evening = 22 * np.exp(-((h - 18) ** 2) / (2 * 1.0**2))
    noise: Array = rng.normal(0, 3, n)
    result: Array = 55 - morning - evening + noise
    return result


def feed(
    detector: Detector, key: SeriesKey, values: Sequence[float] | Array, first: int = 0
) -> list[Finding]:
    """Feed a series from reading `first` on; every finding."""
    found: list[Finding] = []
    for i, value in enumerate(values, start=first):
        found += detector.observe(key, at(i), float(value))
    return found


def kinds(found: Sequence[Finding]) -> list[str]:
    """The kinds of findings, in order."""
    return [f.kind for f in found]


# --- injected anomalies ---------------------------------------------------------------------------


SEEDS = [1, 2, 3, 4]


# 160 and 171: once the run ends, the windows it filled would make ordinary readings a spike (160) or a
# jump (171) unless the detector starts them anew
@pytest.mark.parametrize("seed", [*SEEDS, 160, 171])
def test_a_stuck_period_is_found_when_it_is_long_enough_and_escalates_with_time(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = pm25(rng, 2 * DAY)
    values[300:345] = values[299]  # the sensor repeats its last reading for 45 readings
    found = feed(Detector(), PM25, values)
    assert kinds(found) == ["stuck", "stuck", "recovered"]
    first, second, back = found
    # the run starts at reading 299 and holds 12 readings (the minimum) at reading 310
    assert first.since == at(299) and first.time == at(310)
    assert first.value == values[299] and first.severity == "blue"
    assert first.params["readings"] == 12 and first.params["minutes"] == 55
    # three hours after the run began it becomes yellow (level III)
    assert second.since == at(299) and second.time == at(299 + 36) and second.severity == "yellow"
    assert second.duration == timedelta(hours=3)
    # the value moves again at reading 345: the episode ends there
    assert (back.ended, back.since, back.time, back.value) == ("stuck", at(299), at(345), values[345])
    assert back.params["minutes"] == 46 * 5 and "back to normal" in back.text()


@pytest.mark.parametrize("seed", SEEDS)
def test_a_single_spike_is_reported_when_the_next_reading_comes_back(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = pm25(rng, 2 * DAY)
    values[400] += 45
    detector = Detector()
    before = feed(detector, PM25, values[:401])
    assert before == []  # not yet: the next reading decides
    found = feed(detector, PM25, values[401:], first=401)
    assert kinds(found) == ["spike"]
    spike = found[0]
    assert spike.time == at(400) and spike.value == values[400]
    assert abs(spike.expected - (values[400] - 45)) < 10  # the local median, near the true level
    assert spike.score > 6 and spike.severity in ("blue", "yellow")
    assert spike.text().startswith("pm25 of urn:ngsi-ld:AirQualityObserved:fucheng-1 spiked to")


@pytest.mark.parametrize("seed", SEEDS)
def test_a_step_drop_is_a_drop_from_the_step_on(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = speed(rng, 2 * DAY)
    values[200:] -= 40  # at 00:40 the detector loses calibration and reads 40 km/h too low for good
    found = feed(Detector(), SPEED, values)
    assert kinds(found) == ["drop", "recovered"]
    drop, accepted = found
    assert drop.since == at(200)
    assert at(205) <= drop.time <= at(210)  # confirmed by at least six readings at the new level
    assert 10 < drop.value < 20 and 50 < drop.expected < 60
    assert drop.score > 8
    # six quiet hours after the step the new level is normal
    assert accepted.ended == "drop" and accepted.since == at(200)
    assert accepted.time - drop.time == timedelta(hours=6)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_jump_is_a_jump(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = pm25(rng, DAY)
    values[150:] += 40
    found = feed(Detector(), PM25, values)
    assert kinds(found) == ["jump", "recovered"] and found[0].since == at(150)
    assert found[1].ended == "jump"
    assert found[0].value > found[0].expected + 30


def peer_keys(n: int) -> list[SeriesKey]:
    """n air-quality stations' PM2.5 series."""
    return [SeriesKey(f"urn:ngsi-ld:AirQualityObserved:station-{i}", "pm25") for i in range(n)]


def feed_group(
    detector: Detector, series: dict[SeriesKey, Array], start: int = 0, stop: int | None = None
) -> list[Finding]:
    """Feed a group of peer series reading by reading, each with the others as peers."""
    keys = list(series)
    length = len(next(iter(series.values())))
    found: list[Finding] = []
    for i in range(start, length if stop is None else stop):
        for key in keys:
            peers = [k for k in keys if k != key]
            found += detector.observe(key, at(i), float(series[key][i]), peers)
    return found


@pytest.mark.parametrize("seed", SEEDS[:2])
def test_a_slow_drift_against_five_peers_is_found_for_that_station_only(seed: int) -> None:
    rng = np.random.default_rng(seed)
    keys = peer_keys(6)
    regional = 12 * np.cos(2 * np.pi * (local_hours(3 * DAY) - 22) / 24)  # shared weather
    series = {key: 38 + 4 * j + regional + rng.normal(0, 2.5, 3 * DAY) for j, key in enumerate(keys)}
    drifting = keys[2]
    onset = DAY
    series[drifting][onset:] += 0.05 * np.arange(2 * DAY)  # +0.6 µg/m³ an hour
    found = feed_group(Detector(), series)
    assert found, "the drift is not found"
    assert {f.series for f in found} == {drifting} and set(kinds(found)) == {"drift"}
    first = found[0]
    assert at(onset) < first.since < first.time
    # departing by k=4 residual scales (about 4 x 2.9 µg/m³) takes 250-500 readings at this rate
    assert at(onset + 150) < first.time < at(onset + 2 * DAY)
    assert first.value > first.expected + 8
    assert [f.severity for f in found] == sorted((f.severity for f in found), key=LEVELS.index)
    assert first.params["peers"] == 5 and "+" in str(first.params["offset"])


# --- no false alarms --------------------------------------------------------------------------------


def test_clean_seasonal_series_raise_nothing_over_two_weeks() -> None:
    rng = np.random.default_rng(6)
    n = 14 * DAY
    stations = peer_keys(6)
    series = {key: pm25(rng, n, offset=rng.normal(0, 5)) for key in stations}
    detector = Detector()
    found = feed_group(detector, series)
    for j in range(4):
        key = SeriesKey(f"urn:ngsi-ld:TrafficFlowObserved:road-{j}", "averageVehicleSpeed")
        found += feed(detector, key, speed(rng, n))
    assert found == []
    assert len(detector) == 10


def lamp(n: int) -> Array:
    """A street lamp's powerState: on from 18:00 to 06:00."""
    h = local_hours(n)
    return np.where((h >= 18) | (h < 6), 1.0, 0.0)


def irradiance(rng: np.random.Generator, n: int) -> Array:
    """Solar irradiance (W/m²): varying with passing haze by day, exactly 0 by night."""
    h = local_hours(n)
    sun = np.clip(np.sin(np.pi * (h - 6.5) / 12), 0, None)
    haze: Array = rng.normal(1, 0.04, n).clip(0)
    return 800 * sun * haze


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda rng, n: lamp(n), id="lamp-power-state"),
        pytest.param(irradiance, id="zero-at-night"),
        pytest.param(lambda rng, n: np.full(n, 21.5), id="always-constant"),
        pytest.param(lambda rng, n: np.round(rng.normal(0.3, 0.4, n).clip(0)), id="mostly-zero-counts"),
    ],
)
def test_legitimately_constant_series_are_not_stuck(make: Any) -> None:
    rng = np.random.default_rng(7)
    key = SeriesKey("urn:ngsi-ld:Device:x", "value")
    assert feed(Detector(), key, make(rng, 7 * DAY)) == []


def test_a_sensor_stuck_at_its_resting_value_for_over_a_day_is_stuck() -> None:
    rng = np.random.default_rng(8)
    values = irradiance(rng, 4 * DAY)
    values[DAY:] = 0.0  # the pyranometer dies and reads 0 from then on
    found = feed(Detector(), SeriesKey("urn:ngsi-ld:WeatherObserved:w1", "solarRadiation"), values)
    stuck = [f for f in found if f.kind == "stuck"]
    assert stuck and stuck[0].value == 0.0
    assert stuck[0].duration >= timedelta(hours=24)


def test_stuck_by_time_with_sparse_readings() -> None:
    config = StuckConfig(min_readings=30, min_duration=timedelta(hours=2), min_history=10)
    detector = StuckDetector(PM25, config)
    rng = np.random.default_rng(9)
    hourly = [START + timedelta(hours=i) for i in range(40)]
    values = list(rng.normal(30, 3, 30)) + [12.5] * 10
    found = [f for t, v in zip(hourly, values, strict=True) if (f := detector.observe(t, v)) is not None]
    # the run starts at hour 30; two hours later (three readings) is enough; at three hours it is yellow
    assert [(f.kind, f.since, f.time, f.severity) for f in found] == [
        ("stuck", hourly[30], hourly[32], "blue"),
        ("stuck", hourly[30], hourly[33], "yellow"),
    ]


# --- configuration ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: StuckConfig(min_readings=2), "stuck.min_readings"),
        (lambda: StuckConfig(tolerance=-1), "stuck.tolerance"),
        (lambda: StuckConfig(min_change_rate=0), "stuck.min_change_rate"),
        (lambda: StuckConfig(min_duration=timedelta(0)), "stuck.min_duration"),
        (lambda: StuckConfig(rest_values=(math.nan,)), "stuck.rest_values"),
        (
            lambda: StuckConfig(escalation=(timedelta(hours=2), timedelta(hours=1), timedelta(hours=3))),
            "stuck.escalation",
        ),
        (lambda: SpikeConfig(window=4), "spike.window"),
        (lambda: SpikeConfig(window=10, min_points=11), "spike.min_points"),
        (lambda: SpikeConfig(k=0), "spike.k"),
        (lambda: SpikeConfig(k=math.inf), "spike.k"),
        (lambda: SpikeConfig(min_deviation=-0.1), "spike.min_deviation"),
        (lambda: SpikeConfig(max_width=0), "spike.max_width"),
        (lambda: ShiftConfig(before=2), "shift.before"),
        (lambda: ShiftConfig(after=0), "shift.after"),
        (lambda: ShiftConfig(k=-3), "shift.k"),
        (lambda: ShiftConfig(min_shift=math.nan), "shift.min_shift"),
        (lambda: ShiftConfig(quiet=timedelta(0)), "shift.quiet"),
        (lambda: DriftConfig(alpha=0), "drift.alpha"),
        (lambda: DriftConfig(alpha=1.5), "drift.alpha"),
        (lambda: DriftConfig(warmup=1), "drift.warmup"),
        (lambda: DriftConfig(sustain=0), "drift.sustain"),
        (lambda: DriftConfig(min_peers=0), "drift.min_peers"),
        (lambda: DriftConfig(max_peer_age=timedelta(seconds=-1)), "drift.max_peer_age"),
        (lambda: DriftConfig(reference_alpha=1), "drift.reference_alpha"),
        (lambda: DetectorConfig(max_series=0), "max_series"),
    ],
)
def test_bad_configuration_names_the_field(make: Any, field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field} must be "):
        make()


def test_the_defaults_are_valid_and_each_kind_has_a_message() -> None:
    config = DetectorConfig()
    assert replace(config.spike, k=3.0).k == 3.0
    assert set(MESSAGES) == set(KINDS)


# --- the facade -------------------------------------------------------------------------------------


def test_the_least_recently_seen_series_is_evicted() -> None:
    detector = Detector(DetectorConfig(max_series=3))
    keys = [SeriesKey(f"urn:ngsi-ld:AirQualityObserved:s{i}", "pm25") for i in range(4)]
    for i, key in enumerate(keys[:3]):
        detector.observe(key, at(i), 10.0)
    detector.observe(keys[0], at(3), 11.0)  # s0 is seen again: s1 is now the least recent
    detector.observe(keys[3], at(4), 12.0)
    assert len(detector) == 3
    assert keys[1] not in detector and keys[0] in detector and keys[3] in detector


def test_eviction_and_reset_forget_the_state() -> None:
    rng = np.random.default_rng(10)
    values = pm25(rng, DAY)
    values[100:140] = values[99]
    detector = Detector(DetectorConfig(max_series=2))
    assert kinds(feed(detector, PM25, values[:112])) == ["stuck"]
    assert detector.reset(PM25) is True and PM25 not in detector
    assert detector.reset(PM25) is False
    # after a reset the series has no history of change, so the rest of the run is not evidence
    assert feed(detector, PM25, values[112:140], first=112) == []
    other = [SeriesKey(f"urn:ngsi-ld:AirQualityObserved:o{i}", "pm25") for i in range(2)]
    for key in other:
        detector.observe(key, at(500), 1.0)
    assert PM25 not in detector and len(detector) == 2


def test_late_duplicate_and_non_finite_readings_are_ignored() -> None:
    detector = Detector()
    assert detector.observe(PM25, at(10), 30.0) == []
    assert detector.observe(PM25, at(10), 99.0) == []
    assert detector.observe(PM25, at(5), 99.0) == []
    assert detector.observe(PM25, at(11), math.nan) == []
    assert detector.observe(PM25, at(12), math.inf) == []
    with pytest.raises(ValueError, match="UTC offset"):
        detector.observe(PM25, datetime(2026, 3, 2, 8, 0), 30.0)


def test_overrides_per_attribute_and_tuple_keys() -> None:
    quiet = DetectorConfig(spike=SpikeConfig(enabled=False))
    detector = Detector(overrides={"pm25": quiet})
    rng = np.random.default_rng(11)
    values = pm25(rng, DAY)
    values[200] += 60
    found = []
    for i, value in enumerate(values):
        found += detector.observe(("urn:ngsi-ld:AirQualityObserved:a", "pm25"), at(i), float(value))
        found += detector.observe(("urn:ngsi-ld:AirQualityObserved:a", "pm10"), at(i), float(value) * 1.6)
    assert [(f.kind, f.series.attribute) for f in found] == [("spike", "pm10")]


def test_stale_or_too_few_peers_do_not_feed_drift() -> None:
    keys = peer_keys(4)
    detector = Detector(DetectorConfig(drift=DriftConfig(warmup=5, sustain=1)))
    for key in keys[1:]:
        detector.observe(key, at(0), 10.0)
    # peers read two hours ago are stale: nothing is learnt, so a large offset raises nothing
    for i in range(24, 60):
        assert detector.observe(keys[0], at(i), 50.0, keys[1:]) == []


def test_a_spike_detector_alone_flags_against_a_flat_window_only_with_a_minimum_deviation() -> None:
    flat = [START + i * STEP for i in range(40)]
    plain = SpikeDetector(PM25, SpikeConfig())
    floor = SpikeDetector(PM25, SpikeConfig(min_deviation=5.0))
    readings = [7.0] * 30 + [70.0] + [7.0] * 9
    assert [plain.observe(t, v) for t, v in zip(flat, readings, strict=True)] == [None] * 40
    found = [f for t, v in zip(flat, readings, strict=True) if (f := floor.observe(t, v)) is not None]
    assert [(f.kind, f.time, f.value, f.expected) for f in found] == [("spike", flat[30], 70.0, 7.0)]


# --- the end of an episode ---------------------------------------------------------------------------


def test_every_lasting_kind_can_end_and_a_spike_has_no_episode() -> None:
    assert set(EPISODES) == {"stuck", "drop", "jump", "drift"} and "recovered" in KINDS


@pytest.mark.parametrize("seed", SEEDS[:2])
def test_a_drop_that_comes_back_ends_there_and_the_step_back_is_no_jump(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = speed(rng, DAY)
    values[200:230] -= 40  # the detector reads 40 km/h too low for 30 readings (2.5 h), then recovers
    found = feed(Detector(), SPEED, values)
    assert kinds(found) == ["drop", "recovered"]
    drop, back = found
    assert back.ended == "drop" and back.since == drop.since == at(200)
    # the median of the last six readings is nearer the old level from the fourth reading back on
    assert at(232) <= back.time <= at(234)
    assert abs(back.value - drop.expected) < 15


def test_without_a_quiet_period_a_lasting_step_stays_open() -> None:
    rng = np.random.default_rng(3)
    values = speed(rng, 2 * DAY)
    values[200:] -= 40
    detector = Detector(DetectorConfig(shift=ShiftConfig(quiet=None)))
    assert kinds(feed(detector, SPEED, values)) == ["drop"]


def test_a_step_back_ends_the_episode_instead_of_raising_a_drop() -> None:
    times = [START + i * STEP for i in range(60)]
    shift = ShiftDetector(PM25, ShiftConfig(before=6, after=3, k=4.0, min_shift=5.0, quiet=None))
    level = [30.0 + (i % 2) for i in range(20)] + [80.0 + (i % 2) for i in range(20)]
    found = [f for t, v in zip(times[:40], level, strict=True) if (f := shift.observe(t, v)) is not None]
    assert [f.kind for f in found] == ["jump"] and shift.in_episode
    shift.restart()  # a stuck run restarts the windows; the episode stays open
    assert shift.in_episode
    # the series comes back to the old level: the median check ends the episode, and no drop follows
    back = [30.0 + (i % 2) for i in range(20)]
    found = [f for t, v in zip(times[40:], back, strict=True) if (f := shift.observe(t, v)) is not None]
    found += [f for i in range(60, 90) if (f := shift.observe(at(i), 30.0 + (i % 2))) is not None]
    assert [(f.kind, f.ended) for f in found] == [("recovered", "jump")] and not shift.in_episode


def test_a_drift_ends_after_sustain_readings_back_within_bounds() -> None:
    config = DriftConfig(warmup=10, sustain=3, alpha=1.0, k=4.0, min_deviation=1.0)
    drift = DriftDetector(PM25, config)
    peers = [20.0, 21.0, 22.0]
    found: list[Finding] = []
    values = [21.0 + 0.1 * (i % 3) for i in range(10)] + [30.0] * 5 + [21.0, 30.0] + [21.0] * 3
    for i, value in enumerate(values):
        if (f := drift.observe(at(i), value, peers)) is not None:
            found.append(f)
    # away from reading 10; confirmed after three; one reading back is not enough; three are
    assert [(f.kind, f.time) for f in found] == [("drift", at(12)), ("recovered", at(19))]
    assert found[1].ended == "drift" and found[1].since == at(10)


def test_a_stuck_detector_reports_the_end_of_a_stuck_run_only() -> None:
    detector = StuckDetector(PM25, StuckConfig(min_readings=3, min_history=3))
    readings = [1.0, 2.0, 3.0, 4.0, 5.0, 5.0, 5.0, 5.0, 6.0, 7.0, 7.0, 8.0]
    found = [f for i, v in enumerate(readings) if (f := detector.observe(at(i), v)) is not None]
    assert [(f.kind, f.ended, f.time) for f in found] == [
        ("stuck", None, at(6)),
        ("recovered", "stuck", at(8)),
    ]
    assert found[1].params["anomaly"] == "stuck" and found[1].value == 6.0
