"""The demo city's series, incidents and simulator: shapes of the series, determinism, the timeline, MQTT."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Sequence
from datetime import date, datetime, timedelta

import aiomqtt
import orjson
import pytest

from citybrain.apps.environment import heavy_pollution as hp
from citybrain.apps.iot import city
from citybrain.apps.iot import simulator as sim
from citybrain.apps.iot.city import KINDS, Device
from tests.conftest import service_missing

SEED = 11
LOCAL = sim.LOCAL


def local(year: int, month: int, day: int, hour: float = 0.0) -> float:
    """An epoch instant from a local (China Standard Time) date and hour."""
    return (datetime(year, month, day, tzinfo=LOCAL) + timedelta(hours=hour)).timestamp()


def detector(device_id: str = "tf-test-01", road: str = "测试路") -> Device:
    """A detector on a six-lane arterial."""
    return Device(
        device_id,
        city.TRAFFIC,
        f"{road}检测器",
        104.73,
        31.47,
        city.FUCHENG,
        "gaj-jj",
        static={"roadName": road, "maximumAllowedSpeed": 60, "laneCount": 6},
        params={"capacity": 9000.0, "free_speed": 63.0, "lanes": 6.0, "demand": 0.9},
    )


def fixed(name: str) -> Device:
    """A hand-placed device by name."""
    return next(d for d in city.fixed_devices() if d.name == name)


def lamp(device_id: str = "sl-test-001", road: str = "临园路") -> Device:
    """A smart lamp pole."""
    return Device(
        device_id, city.LAMP, f"{road}灯杆", 104.73, 31.47, city.FUCHENG, "cgzf", {"areaServed": road}
    )


def daily_total(device: Device, day: tuple[int, int, int]) -> float:
    """Vehicles counted by a detector over a local day (hourly samples)."""
    return sum(sim.traffic_values(device, local(*day, h + 0.5), SEED)["intensity"] for h in range(24))


# --- calendar and sun --------------------------------------------------------------------------


def test_day_types_follow_the_official_arrangement() -> None:
    assert sim.day_type(date(2026, 11, 18)) == "workday"  # a Wednesday
    assert sim.day_type(date(2026, 11, 21)) == "weekend"
    assert sim.day_type(date(2026, 10, 1)) == "holiday"  # National Day
    assert sim.day_type(date(2026, 2, 17)) == "holiday"  # Spring Festival
    assert sim.day_type(date(2026, 10, 10)) == "workday"  # a make-up Saturday
    assert sim.day_type(date(2025, 1, 26)) == "workday"  # a make-up Sunday
    assert sim.day_type(date(2030, 10, 2)) == "holiday"  # fixed-date holidays in later years


def test_sun_rises_later_and_sets_earlier_in_winter() -> None:
    winter_rise, winter_set = sim.sun_times(date(2026, 12, 21))
    summer_rise, summer_set = sim.sun_times(date(2026, 6, 21))
    assert 7.6 < winter_rise < 8.1 and 17.9 < winter_set < 18.4
    assert 5.7 < summer_rise < 6.2 and 19.9 < summer_set < 20.4


# --- series -------------------------------------------------------------------------------------


def test_rush_hours_are_busier_and_slower_than_the_night() -> None:
    d = detector()
    night = sim.traffic_values(d, local(2026, 11, 18, 3), SEED)
    morning = sim.traffic_values(d, local(2026, 11, 18, 8), SEED)
    evening = sim.traffic_values(d, local(2026, 11, 18, 18), SEED)
    midday = sim.traffic_values(d, local(2026, 11, 18, 13), SEED)
    for rush in (morning, evening):
        assert rush["intensity"] > 5 * night["intensity"]
        assert rush["intensity"] > midday["intensity"]
        assert rush["averageVehicleSpeed"] < night["averageVehicleSpeed"]
        assert rush["occupancy"] > night["occupancy"]
    assert 0 <= night["occupancy"] < morning["occupancy"] <= 1


def test_weekends_and_holidays_are_flatter_and_lighter() -> None:
    d = detector()
    workday = daily_total(d, (2026, 11, 18))
    saturday = daily_total(d, (2026, 11, 21))
    national_day = daily_total(d, (2026, 10, 2))
    assert saturday < 0.95 * workday
    assert national_day < saturday
    weekday_peak = max(sim.traffic_profile(local(2026, 11, 18, h / 4)) for h in range(96))
    weekend_peak = max(sim.traffic_profile(local(2026, 11, 21, h / 4)) for h in range(96))
    assert weekend_peak < 0.85 * weekday_peak


def test_ozone_peaks_in_the_afternoon() -> None:
    station = fixed("市政府空气质量监测站")
    for day in range(1, 11):
        series = [sim.air_values(station, local(2026, 7, day, h), SEED)["o3"] for h in range(24)]
        peak_hour = max(range(24), key=series.__getitem__)
        assert 12 <= peak_hour <= 18, (day, series)
        assert series[15] > 1.5 * series[7]


def test_pm25_is_higher_in_winter_and_cleared_by_rain() -> None:
    january = [sim.regional_pm25(SEED, local(2026, 1, 1, h)) for h in range(0, 24 * 28, 3)]
    july = [sim.regional_pm25(SEED, local(2026, 7, 1, h)) for h in range(0, 24 * 28, 3)]
    assert sum(january) / len(january) > 2 * sum(july) / len(july)
    # The hours right after heavy rain are cleaner than the same month's average.
    hours = range(int(local(2026, 7, 1) // 3600), int(local(2026, 8, 1) // 3600))
    wet = [h for h in hours if sum(sim._rain_hour(SEED, h - k) for k in range(6)) > 15]
    assert wet, "no heavy rain in July"
    after_rain = sum(sim.regional_pm25(SEED, h * 3600.0) for h in wet) / len(wet)
    assert after_rain < sum(july) / len(july)


def test_rivers_rise_hours_after_rain() -> None:
    gauge = fixed("涪江绵阳站")
    lag = int(gauge.params["lag"])
    hours = range(int(local(2026, 7, 1) // 3600), int(local(2026, 9, 1) // 3600))
    storms = [
        h
        for h in hours
        if sim._rain_hour(SEED, h) >= 4 and sum(sim._rain_hour(SEED, h - k) for k in range(1, 25)) < 2
    ]
    assert storms, "no storm after a dry day in July and August"
    for h in storms[:5]:
        before = sim.water_values(gauge, (h - 1) * 3600.0, SEED)["height"]
        at_rain = sim.water_values(gauge, (h + 0.5) * 3600.0, SEED)["height"]
        later = max(
            sim.water_values(gauge, (h + k) * 3600.0, SEED)["height"] for k in range(lag - 2, lag + 6)
        )
        assert later > before + 0.1
        assert later > at_rain  # the crest comes hours after the rain


def test_lamps_follow_dusk_and_dawn() -> None:
    pole = lamp()
    assert sim.lamp_values(pole, local(2026, 11, 18, 12), SEED)["powerState"] == "off"
    assert sim.lamp_values(pole, local(2026, 11, 18, 22), SEED) == {
        "powerState": "on",
        "illuminanceLevel": 1.0,
        "status": "ok",
    }
    assert sim.lamp_values(pole, local(2026, 11, 18, 3), SEED)["illuminanceLevel"] == 0.5  # dimmed
    # At 19:00 it is dark in December and still light in June.
    assert sim.lamp_values(pole, local(2026, 12, 21, 19), SEED)["powerState"] == "on"
    assert sim.lamp_values(pole, local(2026, 6, 21, 19), SEED)["powerState"] == "off"


def test_noise_follows_the_traffic() -> None:
    monitor = next(d for d in city.fixed_devices() if d.kind == city.NOISE)
    night = sim.noise_values(monitor, local(2026, 11, 18, 3), SEED)
    rush = sim.noise_values(monitor, local(2026, 11, 18, 18), SEED)
    assert rush["LAeq"] > night["LAeq"] + 8
    assert rush["LAmax"] > rush["LAeq"]


def test_every_value_fits_its_device_model() -> None:
    devices = [*city.fixed_devices(), detector(), lamp()]
    models = {k.key: k.model() for k in KINDS.values()}
    start = local(2026, 1, 1)
    for i in range(0, 365 * 24, 37):
        t = start + i * 3600.0
        for device in devices:
            values = sim.SERIES[device.kind](device, t, SEED, sim.NO_EFFECTS)
            specs = {a.name: a for a in models[device.kind].attributes}
            assert set(values) == set(specs)
            for name, value in values.items():
                spec = specs[name]
                if spec.kind == "number":
                    assert isinstance(value, int | float) and not isinstance(value, bool), (name, value)
                    assert spec.minimum is None or value >= spec.minimum, (device.name, name, value)
                    assert spec.maximum is None or value <= spec.maximum, (device.name, name, value)
                elif spec.kind == "boolean":
                    assert isinstance(value, bool)
                else:
                    assert isinstance(value, str)


def test_series_are_deterministic_given_a_seed() -> None:
    devices = [*city.fixed_devices(), detector(), lamp()]
    at = datetime(2026, 11, 18, 9, 30, tzinfo=LOCAL)
    one = sim.Simulator(devices, seed=5)
    again = sim.Simulator(devices, seed=5)
    other = sim.Simulator(devices, seed=6)
    assert [one.payload(d, at) for d in devices] == [again.payload(d, at) for d in devices]
    assert [one.values(d, at) for d in devices] != [other.values(d, at) for d in devices]
    body = orjson.loads(one.payload(devices[0], at) or b"")
    assert body["ts"] == "2026-11-18T09:30:00.000+08:00"
    assert set(body["values"]) == {"pm25", "pm10", "no2", "so2", "o3", "co"}


# --- incidents -----------------------------------------------------------------------------------


def incident_devices() -> list[Device]:
    """The fixed devices, detectors on 九洲大道 and 剑南路, and lamp poles on 临园路."""
    return [
        *city.fixed_devices(),
        *(detector(f"tf-jiuzhou-{i:02d}", "九洲大道") for i in range(1, 4)),
        *(detector(f"tf-jiannan-{i:02d}", "剑南路") for i in range(1, 4)),
        *(lamp(f"sl-linyuan-{i:03d}") for i in range(1, 10)),
    ]


def test_the_congestion_shows_at_night_too() -> None:
    devices = incident_devices()
    start = datetime(2026, 11, 18, 1, 0, tzinfo=LOCAL)  # a demo started at one in the morning
    quiet = sim.Simulator(devices, seed=SEED)
    live = sim.Simulator(devices, seed=SEED, timeline=sim.default_timeline(start, devices))
    jam = next(d for d in devices if d.device_id == "tf-jiuzhou-01")
    held = live.values(jam, start + timedelta(minutes=30))
    normal = quiet.values(jam, start + timedelta(minutes=30))
    assert held is not None and normal is not None
    assert not normal["congested"] and held["congested"]  # few cars, but one lane left
    assert held["averageVehicleSpeed"] < 0.5 * normal["averageVehicleSpeed"]


def test_the_timeline_scripts_the_incidents() -> None:
    devices = incident_devices()
    start = datetime(2026, 11, 18, 10, 0, tzinfo=LOCAL)  # a Wednesday morning
    timeline = sim.default_timeline(start, devices)
    quiet = sim.Simulator(devices, seed=SEED)
    live = sim.Simulator(devices, seed=SEED, timeline=timeline)
    minutes = lambda m: start + timedelta(minutes=m)  # noqa: E731
    by_name = {d.name: d for d in devices}

    # Nothing happens before the start, nor right at it.
    for device in devices:
        assert live.values(device, minutes(-30)) == quiet.values(device, minutes(-30))
        assert live.values(device, minutes(0)) == quiet.values(device, minutes(0))

    # A lamp pole fails two minutes in and stays failed.
    failed = next(d for d in devices if d.device_id == "sl-linyuan-007")
    assert live.values(failed, minutes(3)) == {
        "powerState": "off",
        "illuminanceLevel": 0.0,
        "status": "defectiveLamp",
    }
    assert live.values(failed, minutes(600))["status"] == "defectiveLamp"  # type: ignore[index]
    assert live.values(by_name["临园路灯杆"], minutes(600))["status"] == "ok"  # type: ignore[index]

    # A detector on 剑南路 goes silent three minutes in: no values, no payloads, never again.
    silent = next(d for d in devices if d.device_id == "tf-jiannan-02")
    assert live.values(silent, minutes(2)) is not None
    assert live.values(silent, minutes(4)) is None
    assert live.payload(silent, minutes(400)) is None
    reporters = {d.device_id for d, _ in live.due(minutes(5).timestamp(), minutes(6).timestamp())}
    assert "tf-jiannan-01" in reporters
    assert "tf-jiannan-02" in reporters  # due, but `payload` gives nothing: the simulator skips it

    # 九洲大道 congests while the incident holds, then recovers.
    jam = next(d for d in devices if d.device_id == "tf-jiuzhou-01")
    held = live.values(jam, minutes(30))
    normal = quiet.values(jam, minutes(30))
    assert held is not None and normal is not None
    assert held["congested"] and not normal["congested"]
    assert held["averageVehicleSpeed"] < 0.5 * normal["averageVehicleSpeed"]
    assert held["intensity"] < normal["intensity"]
    assert live.values(jam, minutes(90)) == quiet.values(jam, minutes(90))

    # The city's rivers cross their warning level at the crest.
    for name in ("涪江绵阳站", "涪江三江站"):
        gauge = fixed(name)
        crest = live.values(gauge, minutes(40 + 90 + 30))
        assert crest is not None and crest["height"] > gauge.static["warningLevel"]
        before = live.values(gauge, minutes(30))
        assert before is not None and before["height"] < gauge.static["warningLevel"]

    # PM2.5 rises to heavy pollution (150 µg/m³ and more) over a few hours in the central city.
    station = fixed("市政府空气质量监测站")
    series = [live.values(station, minutes(m)) for m in range(0, 15 + 180 + 60, 15)]
    pm25 = [v["pm25"] for v in series if v is not None]
    assert pm25[-1] >= 150 > pm25[0]
    assert pm25[4] < pm25[8] < pm25[-1]  # rising over hours, not at once

    # Upstream rain gauges see the storm.
    gauge = next(d for d in devices if d.kind == city.RAIN and d.district == city.BEICHUAN)
    assert live.values(gauge, minutes(40))["precipitation"] > 15  # type: ignore[index]


def test_an_incident_ramps_holds_and_fades() -> None:
    incident = sim.Incident(
        sim.CONGESTION,
        timedelta(minutes=10),
        ramp=timedelta(minutes=10),
        hold=timedelta(minutes=20),
        fade=timedelta(minutes=10),
    )
    levels = [incident.level(m * 60.0) for m in (0, 10, 15, 20, 35, 40, 45, 50, 60)]
    assert levels == [0.0, 0.0, 0.5, 1.0, 1.0, 1.0, 0.5, 0.0, 0.0]
    assert sim.Incident(sim.SILENCE, timedelta(0)).level(1e9) == 1.0
    with pytest.raises(ValueError, match="unknown incident"):
        sim.Incident("earthquake", timedelta(0))


# --- the forecast bulletin -------------------------------------------------------------------------


def test_the_forecast_bulletin_follows_the_pollution_episode() -> None:
    start = datetime(2026, 11, 18, 10, 0, tzinfo=LOCAL)
    timeline = sim.default_timeline(start, incident_devices())
    episode = next(i for i in timeline.incidents if i.kind == sim.POLLUTION)
    assert episode.start == timedelta(minutes=15)

    def at(minutes: float) -> sim.Bulletin:
        return sim.bulletin(timeline, (start + timedelta(minutes=minutes)).timestamp())

    # (minutes after the demo start, stage, the §8.2 level of its forecast in the national scheme)
    chosen = [
        (-60, "quiet", None),
        (0, "quiet", None),
        (14.9, "quiet", None),
        (15, "building", None),
        (25, "yellow", hp.Level.YELLOW),
        (39.9, "yellow", hp.Level.YELLOW),
        (40, "orange", hp.Level.ORANGE),
        (60, "red", hp.Level.RED),  # the whole escalation within the episode's first hour
        (314.9, "red", hp.Level.RED),  # red while the episode ramps and holds (15 + 180 + 120 min)
        (315, "easing", hp.Level.YELLOW),  # it fades: the forecast eases
        (374.9, "easing", hp.Level.YELLOW),
        (375, "clean", None),  # halfway through the 120-minute fade the forecast is clean
        (435, "clean", None),  # the episode has ended
        (2000, "clean", None),
    ]
    for minutes, stage, level in chosen:
        issued = at(minutes)
        assert (minutes, issued.stage, hp.heavy_pollution_level(issued.daily_aqi)) == (minutes, stage, level)
        assert len(issued.daily_aqi) == 5
    # the orange and red bulletins meet the §8.2 conditions the brief names
    orange, red = at(40).daily_aqi, at(60).daily_aqi
    assert sum(v > 200 for v in orange) >= 3 and any(v > 300 for v in orange)
    assert sum(v > 200 for v in red) >= 4 and sum(v > 300 for v in red) >= 2
    # the schedule the demo prints names the instants the stages change
    schedule = sim.bulletin_schedule(timeline)
    assert schedule == [
        (15, "building"),
        (25, "yellow"),
        (40, "orange"),
        (60, "red"),
        (315, "easing"),
        (375, "clean"),
    ]
    for minutes, stage in schedule:
        assert at(minutes).stage == stage != at(minutes - 0.1).stage
    assert sim.bulletin_schedule(sim.Timeline(start)) == []
    # no episode, no heavy pollution
    assert sim.bulletin(None, start.timestamp()).stage == "quiet"
    assert sim.bulletin(sim.Timeline(start), start.timestamp() + 3600).stage == "quiet"


def test_a_bulletin_is_an_air_quality_forecast_entity() -> None:
    issued = sim.bulletin(None, datetime(2026, 11, 18, 23, 30, tzinfo=LOCAL).timestamp())
    assert issued.valid_from == datetime(2026, 11, 19, tzinfo=LOCAL)  # day 1 starts at the next midnight
    entity = issued.entity()
    assert entity["id"] == "urn:ngsi-ld:AirQualityForecast:510700"
    assert entity["type"] == "AirQualityForecast"
    assert entity["dailyAQI"] == {"type": "Property", "value": list(issued.daily_aqi)}
    assert entity["issuedAt"]["value"] == "2026-11-18T23:30:00.000+08:00"
    assert entity["validFrom"]["value"] == "2026-11-19T00:00:00+08:00"
    assert entity["validTo"]["value"] == "2026-11-24T00:00:00+08:00"
    assert entity["source"]["value"] == "绵阳市生态环境监测中心站"
    assert entity["areaCode"]["value"] == "510700"


# --- scheduling ------------------------------------------------------------------------------------


def test_devices_report_at_their_rate_spread_over_the_interval() -> None:
    devices = [*city.fixed_devices(), lamp()]
    simulator = sim.Simulator(devices, seed=SEED, rate=6)
    start = local(2026, 11, 18, 10)
    due = list(simulator.due(start, start + 600))
    counts: dict[str, int] = {}
    for device, _ in due:
        counts[device.device_id] = counts.get(device.device_id, 0) + 1
    for device in devices:
        assert counts[device.device_id] == (10 if device.kind == city.LAMP else 60)
    instants = [t for _, t in due]
    assert instants == sorted(instants)
    assert all(start < t <= start + 600 for t in instants)
    # Phases spread the devices: no single second holds more than a few reports.
    per_second: dict[int, int] = {}
    for t in instants:
        per_second[int(t)] = per_second.get(int(t), 0) + 1
    assert max(per_second.values()) <= 8


def test_history_is_a_compact_batch_on_a_fixed_grid() -> None:
    devices = [fixed("市政府空气质量监测站"), detector()]
    simulator = sim.Simulator(devices, seed=SEED)
    end = datetime(2026, 11, 18, 10, 7, tzinfo=LOCAL)
    first = list(simulator.history(end - timedelta(hours=3), end))
    assert first == list(simulator.history(end - timedelta(hours=3), end))
    bodies = {device.device_id: orjson.loads(payload) for device, payload in first}
    air = bodies[devices[0].device_id]
    assert air["columns"] == ["ts", "pm25", "pm10", "no2", "so2", "o3", "co"]
    assert [row[0] for row in air["rows"]] == [int(local(2026, 11, 18, h) * 1000) for h in (8, 9, 10)]
    traffic = bodies[devices[1].device_id]
    assert len(traffic["rows"]) == 12 and all(row[0] % 900_000 == 0 for row in traffic["rows"])
    # Rows after what is stored already only.
    since = {devices[1].device_id: local(2026, 11, 18, 9.5)}
    later = dict(simulator.history(end - timedelta(hours=3), end, since=since))
    assert [row[0] for row in orjson.loads(later[devices[1]])["rows"]] == [
        int(local(2026, 11, 18, 9.75) * 1000),
        int(local(2026, 11, 18, 10) * 1000),
    ]


class Recorder:
    """A sink keeping what it is given."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[Device, bytes]]] = []

    async def send(self, items: Sequence[tuple[Device, bytes]]) -> None:
        self.batches.append(list(items))


async def test_run_batches_what_falls_due_and_skips_the_silent() -> None:
    devices = incident_devices()
    now = [local(2026, 11, 18, 10)]
    start = datetime.fromtimestamp(now[0], LOCAL)

    async def advance(seconds: float) -> None:
        now[0] += seconds

    simulator = sim.Simulator(devices, seed=SEED, rate=6, timeline=sim.default_timeline(start, devices))
    recorder = Recorder()
    sent = await simulator.run(recorder, until=now[0] + 600, tick=1.0, clock=lambda: now[0], sleep=advance)
    payloads = [orjson.loads(p) for batch in recorder.batches for _, p in batch]
    assert sent == len(payloads) > 0
    ids = [d.device_id for batch in recorder.batches for d, _ in batch]
    # The silent detector reported only before its third minute.
    silent_reports = ids.count("tf-jiannan-02")
    assert 1 <= silent_reports <= 19
    assert ids.count("tf-jiannan-01") == 60
    stamps = [datetime.fromisoformat(p["ts"]).timestamp() for p in payloads]
    assert all(t <= now[0] for t in stamps)


# --- MQTT --------------------------------------------------------------------------------------------


async def test_mqtt_sink_publishes_payloads_with_the_device_key() -> None:
    tenant = f"sim{uuid.uuid4().hex[:8]}"
    devices = [*city.fixed_devices()[:6], detector()]
    keys = {d.device_id: f"cbd_key_{d.device_id}" for d in devices}
    simulator = sim.Simulator(devices, seed=SEED, rate=120, keys=keys)
    received: list[aiomqtt.Message] = []
    try:
        async with aiomqtt.Client("127.0.0.1", 1883) as subscriber:
            await subscriber.subscribe(f"citybrain/{tenant}/+/attrs", qos=1)

            async def collect() -> None:
                async for message in subscriber.messages:
                    received.append(message)

            collector = asyncio.create_task(collect())
            async with sim.mqtt_client("mqtt://127.0.0.1:1883") as client:
                await simulator.run(sim.MqttSink(client, tenant), until=time.time() + 2)
            await asyncio.sleep(0.3)
            collector.cancel()
    except aiomqtt.MqttError as exc:
        service_missing("Mosquitto", exc)
    assert simulator.sent > 0
    assert len(received) == simulator.sent
    by_id = {d.device_id: d for d in devices}
    for message in received:
        prefix, topic_tenant, device_id, suffix = str(message.topic).split("/")
        assert (prefix, topic_tenant, suffix) == ("citybrain", tenant, "attrs")
        body = orjson.loads(message.payload)  # type: ignore[arg-type]
        assert set(body) == {"ts", "values", "k"}
        assert body["k"] == keys[device_id]
        assert datetime.fromisoformat(body["ts"]).utcoffset() == timedelta(hours=8)
        names = {a.name for a in by_id[device_id].spec.attributes}
        assert set(body["values"]) == names
        assert all(not isinstance(v, float) or math.isfinite(v) for v in body["values"].values())


class Flaky(Recorder):
    """A sink failing its first few deliveries."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def send(self, items: Sequence[tuple[Device, bytes]]) -> None:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("the database is away")
        await super().send(items)


async def test_run_outlives_a_failing_sink_and_backs_off(caplog: pytest.LogCaptureFixture) -> None:
    devices = [detector()]
    now = [local(2026, 11, 18, 10)]
    waits: list[float] = []

    async def advance(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    simulator = sim.Simulator(devices, seed=SEED, rate=60)
    sink = Flaky(failures=3)
    sent = await simulator.run(sink, until=now[0] + 120, tick=1.0, clock=lambda: now[0], sleep=advance)
    assert sink.failures == 0 and sent == sum(len(b) for b in sink.batches) > 60
    assert max(waits) >= 8  # waited longer after each failure
    assert sum("could not deliver" in r.message for r in caplog.records) == 1
