"""The living demo city: realistic sensor series as pure functions of (device, time), incidents, a simulator.

Every value is a deterministic function of the seed, the device and the instant, so a history can be
rebuilt, a backfill repeated (the context broker skips what it already holds) and a test can ask for the
city at any moment. Randomness comes from hashing (seed, name, time bucket), smoothed between buckets.

- weather: showers and storms by season, drifting from the north-west mountains to the south-east;
  wind; temperature and humidity by season and hour.
- air: a regional PM2.5 level that accumulates over calm days and is washed out by rain, with its
  diurnal shape; NO2 and CO with the traffic; O3 from sunshine, peaking in the afternoon.
- traffic: weekday morning and evening rush hours, flatter weekends and public holidays (China's
  official arrangement, make-up working days included); speed falls as demand nears capacity.
- rivers: the level answers the basin's rain through a unit hydrograph peaking hours later.
- lamp poles: on at dusk, dimmed after midnight, off at dawn (Mianyang's sunrise and sunset).
- noise: with the traffic near each monitor.

Scripted incidents (`Timeline`) change the series from the demo start on: a pollution episode, a
congestion, a flood crest, a failing lamp, a detector going silent.

The environment monitoring centre's daily-AQI forecast (`bulletin`, an AirQualityForecast entity)
follows the pollution episode. The demo compresses time: a bulletin is re-issued every few minutes
(BULLETIN_SECONDS) instead of once a day, and it forecasts heavy pollution within the episode's first
hour (yellow after 10 minutes, orange after 25, red after 45), eases when the episode starts to fade and
is clean again halfway through the fade, so a visitor sees heavy-pollution warnings raised, upgraded
and lifted.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import logging
import math
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any, Protocol
from urllib.parse import SplitResult, unquote, urlsplit
from zoneinfo import ZoneInfo

import aiomqtt
import orjson

from citybrain.apps.iot import services
from citybrain.apps.iot.city import (
    AIR,
    ANZHOU,
    BEICHUAN,
    FUCHENG,
    JIANGYOU,
    KINDS,
    LAMP,
    NOISE,
    PINGWU,
    RAIN,
    TRAFFIC,
    WATER,
    YOUXIAN,
    Device,
)
from citybrain.apps.iot.schemas import Message
from citybrain.sdk import AppContext, utcnow

log = logging.getLogger(__name__)

LOCAL = ZoneInfo("Asia/Shanghai")
UTC_OFFSET = 8 * 3600  # China Standard Time has no daylight saving
HOUR, DAY = 3600.0, 86400.0
# Mianyang's central city, for sunrise and sunset.
CITY_LAT, CITY_LON = 31.467, 104.74

# --- calendar ------------------------------------------------------------------------------------

# Public holidays and make-up working days as the State Council arranged them.
_HOLIDAY_RANGES: dict[int, tuple[tuple[str, str], ...]] = {
    2025: (
        ("01-01", "01-01"),
        ("01-28", "02-04"),
        ("04-04", "04-06"),
        ("05-01", "05-05"),
        ("05-31", "06-02"),
        ("10-01", "10-08"),
    ),
    2026: (
        ("01-01", "01-03"),
        ("02-15", "02-23"),
        ("04-04", "04-06"),
        ("05-01", "05-05"),
        ("06-19", "06-21"),
        ("09-25", "09-27"),
        ("10-01", "10-07"),
    ),
}
_MAKEUP_WORKDAYS: dict[int, tuple[str, ...]] = {
    2025: ("01-26", "02-08", "04-27", "09-28", "10-11"),
    2026: ("01-04", "02-14", "02-28", "05-09", "09-20", "10-10"),
}
# Years without a published arrangement: the fixed-date holidays only.
_FIXED_HOLIDAYS = (("01-01", "01-01"), ("05-01", "05-03"), ("10-01", "10-07"))


def _md(year: int, text: str) -> date:
    """A date of a year from "MM-DD"."""
    month, day = text.split("-")
    return date(year, int(month), int(day))


@lru_cache(maxsize=16)
def _year_days(year: int) -> tuple[frozenset[date], frozenset[date]]:
    """The holidays and the make-up working days of a year."""
    holidays: set[date] = set()
    for first, last in _HOLIDAY_RANGES.get(year, _FIXED_HOLIDAYS):
        day = _md(year, first)
        while day <= _md(year, last):
            holidays.add(day)
            day += timedelta(days=1)
    workdays = {_md(year, d) for d in _MAKEUP_WORKDAYS.get(year, ())}
    return frozenset(holidays), frozenset(workdays)


def day_type(day: date) -> str:
    """ "workday", "weekend" or "holiday" for a local date (make-up Saturdays and Sundays are workdays)."""
    holidays, workdays = _year_days(day.year)
    if day in holidays:
        return "holiday"
    if day in workdays or day.weekday() < 5:
        return "workday"
    return "weekend"


def sun_times(day: date, lat: float = CITY_LAT, lon: float = CITY_LON) -> tuple[float, float]:
    """Sunrise and sunset in local hours (China Standard Time) for a date (NOAA's approximation)."""
    gamma = 2 * math.pi / 365 * (day.timetuple().tm_yday - 1)
    eqtime = 229.18 * (
        0.000075
        + 0.001868 * math.cos(gamma)
        - 0.032077 * math.sin(gamma)
        - 0.014615 * math.cos(2 * gamma)
        - 0.040849 * math.sin(2 * gamma)
    )
    decl = (
        0.006918
        - 0.399912 * math.cos(gamma)
        + 0.070257 * math.sin(gamma)
        - 0.006758 * math.cos(2 * gamma)
        + 0.000907 * math.sin(2 * gamma)
        - 0.002697 * math.cos(3 * gamma)
        + 0.00148 * math.sin(3 * gamma)
    )
    phi = math.radians(lat)
    cos_ha = math.cos(math.radians(90.833)) / (math.cos(phi) * math.cos(decl)) - math.tan(phi) * math.tan(
        decl
    )
    ha = math.degrees(math.acos(max(-1.0, min(1.0, cos_ha))))
    sunrise = 720 - 4 * (lon + ha) - eqtime + UTC_OFFSET / 60
    sunset = 720 - 4 * (lon - ha) - eqtime + UTC_OFFSET / 60
    return sunrise / 60, sunset / 60


def _local(t: float) -> tuple[date, float]:
    """The local date and hour of day (0..24) of an epoch instant."""
    shifted = t + UTC_OFFSET
    days = math.floor(shifted / DAY)
    return date(1970, 1, 1) + timedelta(days=days), (shifted - days * DAY) / HOUR


def _day_of_year(t: float) -> float:
    """The local day of the year, fractional (0..365)."""
    day, hour = _local(t)
    return day.timetuple().tm_yday - 1 + hour / 24


# --- deterministic noise -------------------------------------------------------------------------


def _u(seed: int, *parts: object) -> float:
    """A uniform number in [0, 1) fixed by the seed and the parts."""
    digest = hashlib.blake2b(repr((seed, *parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _smooth(seed: int, key: object, t: float, period: float) -> float:
    """Smooth noise in [0, 1): hashed values every `period` seconds, eased in between."""
    x = t / period
    i = math.floor(x)
    f = x - i
    a, b = _u(seed, key, i), _u(seed, key, i + 1)
    return a + (b - a) * f * f * (3 - 2 * f)


def _wobble(seed: int, key: object, t: float, period: float) -> float:
    """Smooth noise in [-1, 1): two octaves."""
    return (2 * _smooth(seed, key, t, period) - 1) * 0.7 + (
        2 * _smooth(seed, (key, 2), t, period / 3) - 1
    ) * 0.3


def _gauss(x: float, mu: float, sigma: float) -> float:
    """A bell of height 1 centred on `mu`."""
    return math.exp(-((x - mu) ** 2) / (2 * sigma * sigma))


def _sigmoid(x: float) -> float:
    """The logistic function."""
    return 1 / (1 + math.exp(-x))


def _monthly(table: Sequence[float], doy: float) -> float:
    """A monthly climate table (mid-month values) read at a day of the year, interpolated."""
    x = doy / 365 * 12 - 0.5
    i = math.floor(x)
    f = x - i
    return table[i % 12] * (1 - f) + table[(i + 1) % 12] * f


# --- weather -------------------------------------------------------------------------------------

# Mianyang's climate: monthly precipitation (mm), mean temperature (°C).
RAIN_MM = (6, 10, 20, 48, 80, 140, 240, 210, 140, 45, 15, 5)
TEMPERATURE_C = (5.3, 7.8, 12.0, 17.0, 21.5, 24.3, 26.0, 25.6, 21.8, 17.3, 12.2, 7.0)
# Monthly mean PM2.5 (µg/m³) and afternoon O3 peak (µg/m³) of the central city.
PM25_BASE = (62, 50, 38, 30, 26, 22, 20, 21, 24, 32, 45, 58)
O3_PEAK = (55, 70, 95, 125, 150, 160, 165, 160, 130, 95, 70, 55)
STORM_SLOT = 6 * HOUR


def rain_rate(seed: int, t: float) -> float:
    """Regional rain intensity (mm/h) at an instant: showers and storms, more and heavier in summer."""
    slot = math.floor(t / STORM_SLOT)
    total = 0.0
    for s in (slot - 1, slot):
        wetness = _monthly(RAIN_MM, _day_of_year(s * STORM_SLOT)) / 240
        if _u(seed, "storm", s) >= 0.04 + 0.22 * wetness:
            continue
        start = (s + _u(seed, "storm-start", s)) * STORM_SLOT
        duration = HOUR * (1 + 5 * _u(seed, "storm-length", s))
        if start <= t < start + duration:
            peak = 0.6 + 22 * wetness * _u(seed, "storm-peak", s) ** 4
            total += peak * math.sin(math.pi * (t - start) / duration) ** 2
    return total


def _rain_shift(lon: float, lat: float) -> float:
    """Seconds by which weather reaches a place later than the central city (fronts move south-east)."""
    return ((lon - CITY_LON) - (lat - CITY_LAT)) * 1.5 * HOUR


@lru_cache(maxsize=65536)
def _rain_hour(seed: int, hour: int) -> float:
    """Mean regional rain intensity over one hour (mm/h)."""
    return sum(rain_rate(seed, (hour + (i + 0.5) / 4) * HOUR) for i in range(4)) / 4


def wind_speed(seed: int, t: float) -> float:
    """Regional wind speed (m/s): calm nights, breezier afternoons, gusts with rain."""
    _, hour = _local(t)
    base = 0.5 + 2.6 * math.pow(_smooth(seed, "wind", t, 10 * HOUR), 1.6)
    return base + 0.8 * _gauss(hour, 15, 3) + 1.2 * min(1.0, rain_rate(seed, t) / 4)


@lru_cache(maxsize=65536)
def _wind_hour(seed: int, hour: int) -> float:
    """The wind speed in the middle of an hour."""
    return wind_speed(seed, (hour + 0.5) * HOUR)


def temperature(seed: int, t: float) -> float:
    """Air temperature (°C) in the central city."""
    doy = _day_of_year(t)
    _, hour = _local(t)
    mean = _monthly(TEMPERATURE_C, doy)
    daily = 4.0 * math.cos(2 * math.pi * (hour - 15) / 24)
    cooling = 2.5 * min(1.0, rain_rate(seed, t) / 4)
    return mean + daily - cooling + 2.0 * _wobble(seed, "temperature", t, 2 * DAY)


# --- air -----------------------------------------------------------------------------------------


@lru_cache(maxsize=65536)
def _regional_pm(seed: int, hour: int) -> float:
    """The basin's PM2.5 level (µg/m³) for an hour: calm days accumulate, rain washes out."""
    weights = [math.exp(-k / 16) for k in range(48)]
    stagnation = sum(w / (0.6 + _wind_hour(seed, hour - k)) for k, w in enumerate(weights)) / sum(weights)
    washout = math.exp(-0.05 * sum(_rain_hour(seed, hour - k) * math.exp(-k / 5) for k in range(12)))
    base = _monthly(PM25_BASE, _day_of_year(hour * HOUR))
    return base * (0.35 + 1.3 * stagnation) * washout


def regional_pm25(seed: int, t: float) -> float:
    """The basin's PM2.5 level at an instant, interpolated between hours."""
    x = t / HOUR
    i = math.floor(x)
    f = x - i
    return _regional_pm(seed, i) * (1 - f) + _regional_pm(seed, i + 1) * f


def _pm_diurnal(hour: float) -> float:
    """PM2.5's diurnal shape: high at night and in the morning, low in the mixed afternoon."""
    return 1 + 0.16 * math.cos(2 * math.pi * (hour - 1) / 24) + 0.08 * _gauss(hour, 9, 1.5)


# --- traffic ---------------------------------------------------------------------------------------


def traffic_profile(t: float) -> float:
    """Demand as a share of a road's capacity in the city at large (about 0.07 at night, 1 at rush hour)."""
    day, hour = _local(t)
    kind = day_type(day)
    if kind == "workday":
        daytime = _sigmoid((hour - 6.5) * 2.5) * _sigmoid((21.5 - hour) * 1.5)
        return 0.07 + 0.5 * daytime + 0.45 * _gauss(hour, 8.0, 0.8) + 0.5 * _gauss(hour, 18.0, 1.1)
    daytime = _sigmoid((hour - 8.5) * 2) * _sigmoid((22 - hour) * 1.3)
    weekend = 0.07 + 0.5 * daytime + 0.12 * _gauss(hour, 11, 1.5) + 0.15 * _gauss(hour, 17, 2)
    return weekend * (0.8 if kind == "holiday" else 1.0)


# --- incidents -----------------------------------------------------------------------------------

POLLUTION, CONGESTION, STORM, FLOOD, LAMP_FAILURE, SILENCE = (
    "pollution",
    "congestion",
    "storm",
    "flood",
    "lamp_failure",
    "silence",
)
INCIDENT_KINDS = {
    POLLUTION: AIR,
    CONGESTION: TRAFFIC,
    STORM: RAIN,
    FLOOD: WATER,
    LAMP_FAILURE: LAMP,
    SILENCE: None,
}


@dataclass(frozen=True)
class Incident:
    """A scripted incident: when it starts after the demo start, how it ramps, holds and fades, and where."""

    # `devices` None means every device of the kind the incident affects. `magnitude` is, by kind: the
    # PM2.5 (µg/m³) reached in the central city; the share of capacity left; the extra rain (mm/h); the
    # metres above the warning level at the crest; unused for a failing lamp or a silent device.
    kind: str
    start: timedelta
    ramp: timedelta = timedelta(0)
    hold: timedelta | None = None
    fade: timedelta = timedelta(0)
    devices: frozenset[str] | None = None
    magnitude: float = 1.0
    title: str = ""

    def __post_init__(self) -> None:
        """Refuse an unknown kind."""
        if self.kind not in INCIDENT_KINDS:
            raise ValueError(f"unknown incident kind {self.kind!r}")

    def level(self, elapsed: float) -> float:
        """How strong the incident is (0..1) `elapsed` seconds after the demo start."""
        x = elapsed - self.start.total_seconds()
        if x < 0:
            return 0.0
        ramp = self.ramp.total_seconds()
        if x < ramp:
            return x / ramp
        if self.hold is None:
            return 1.0
        x -= ramp + self.hold.total_seconds()
        if x <= 0:
            return 1.0
        fade = self.fade.total_seconds()
        return max(0.0, 1 - x / fade) if fade > 0 else 0.0

    def applies(self, device: Device) -> bool:
        """Whether the incident concerns a device."""
        kind = INCIDENT_KINDS[self.kind]
        if self.devices is not None:
            return device.device_id in self.devices
        return kind is None or device.kind == kind


@dataclass
class Effects:
    """What the running incidents do to one device at one instant."""

    pollution: float = 0.0  # PM2.5 the episode pushes towards (µg/m³), times its level
    pollution_level: float = 0.0
    capacity: float = 1.0  # share of capacity left
    extra_rain: float = 0.0  # mm/h
    flood_level: float = 0.0
    flood_above: float = 0.0  # metres above the warning level at the crest
    lamp_failed: bool = False
    silent: bool = False


NO_EFFECTS = Effects()


@dataclass(frozen=True)
class Timeline:
    """The scripted incidents, relative to the demo start (an aware datetime)."""

    start: datetime
    incidents: tuple[Incident, ...] = ()

    def effects(self, device: Device, t: float) -> Effects:
        """The effects of the incidents on a device at an epoch instant."""
        elapsed = t - self.start.timestamp()
        if elapsed < 0 or not self.incidents:
            return NO_EFFECTS
        fx = Effects()
        touched = False
        for incident in self.incidents:
            if not incident.applies(device):
                continue
            level = incident.level(elapsed)
            if level <= 0:
                continue
            touched = True
            if incident.kind == POLLUTION:
                share = 1.0 if device.district in (FUCHENG, YOUXIAN, ANZHOU) else 0.55
                fx.pollution_level = max(fx.pollution_level, level * share)
                fx.pollution = incident.magnitude
            elif incident.kind == CONGESTION:
                fx.capacity = min(fx.capacity, 1 - level * (1 - incident.magnitude))
            elif incident.kind == STORM:
                fx.extra_rain += level * incident.magnitude
            elif incident.kind == FLOOD:
                fx.flood_level = max(fx.flood_level, level)
                fx.flood_above = incident.magnitude
            elif incident.kind == LAMP_FAILURE:
                fx.lamp_failed = True
            elif incident.kind == SILENCE:
                fx.silent = True
        return fx if touched else NO_EFFECTS

    def describe(self) -> list[str]:
        """One line per incident: when it starts after the demo start and what it is."""
        lines = []
        for incident in sorted(self.incidents, key=lambda i: i.start):
            minutes = int(incident.start.total_seconds() // 60)
            lines.append(f"+{minutes} min: {incident.title or incident.kind}")
        return lines


def default_timeline(start: datetime, devices: Iterable[Device]) -> Timeline:
    """The demo's incidents among `devices`: those whose devices are missing simply affect nothing."""
    devices = list(devices)

    def ids(predicate: Callable[[Device], bool]) -> frozenset[str]:
        """The ids of the devices matching a predicate."""
        return frozenset(d.device_id for d in devices if predicate(d))

    minute = timedelta(minutes=1)
    jiuzhou = ids(lambda d: d.kind == TRAFFIC and d.static.get("roadName") == "九洲大道")
    jiannan = sorted(ids(lambda d: d.kind == TRAFFIC and d.static.get("roadName") == "剑南路"))
    linyuan = sorted(ids(lambda d: d.kind == LAMP and d.static.get("areaServed") == "临园路"))
    upstream_rain = ids(lambda d: d.kind == RAIN and d.district in (JIANGYOU, BEICHUAN, PINGWU, ANZHOU))
    upstream_river = ids(lambda d: d.kind == WATER and d.name in ("涪江江油站", "安昌河安州站"))
    city_river = ids(lambda d: d.kind == WATER and d.name in ("涪江绵阳站", "涪江三江站", "安昌河城区站"))
    incidents = [
        Incident(LAMP_FAILURE, 2 * minute, devices=frozenset(linyuan[6:7]), title="临园路一处灯杆故障"),
        Incident(SILENCE, 3 * minute, devices=frozenset(jiannan[1:2]), title="剑南路一台检测器停止上报"),
        Incident(
            CONGESTION,
            5 * minute,
            ramp=10 * minute,
            hold=40 * minute,
            fade=15 * minute,
            devices=jiuzhou,
            magnitude=0.35,
            title="九洲大道拥堵",
        ),
        Incident(
            STORM,
            10 * minute,
            ramp=10 * minute,
            hold=40 * minute,
            fade=20 * minute,
            devices=upstream_rain,
            magnitude=28.0,
            title="上游暴雨",
        ),
        Incident(
            FLOOD,
            20 * minute,
            ramp=60 * minute,
            hold=60 * minute,
            fade=120 * minute,
            devices=upstream_river,
            magnitude=0.4,
            title="涪江、安昌河上游水位超警戒",
        ),
        Incident(
            FLOOD,
            40 * minute,
            ramp=90 * minute,
            hold=60 * minute,
            fade=180 * minute,
            devices=city_river,
            magnitude=0.5,
            title="涪江城区段水位超警戒",
        ),
        Incident(
            POLLUTION,
            15 * minute,
            ramp=180 * minute,
            hold=120 * minute,
            fade=120 * minute,
            magnitude=210.0,
            title="PM2.5 重污染过程",
        ),
    ]
    return Timeline(start, tuple(incidents))


# --- series ----------------------------------------------------------------------------------------

Values = dict[str, Any]


def air_values(device: Device, t: float, seed: int, fx: Effects = NO_EFFECTS) -> Values:
    """PM2.5, PM10, NO2, SO2, O3 (µg/m³) and CO (mg/m³) at an air-quality station."""
    key = device.device_id
    local = device.params.get("local", 1.0)
    doy = _day_of_year(t)
    _, hour = _local(t)
    traffic = traffic_profile(t)
    regional = regional_pm25(seed, t)
    stagnation = min(1.6, regional / _monthly(PM25_BASE, doy))
    pm25 = regional * _pm_diurnal(hour) * local * (1 + 0.08 * _wobble(seed, (key, "pm25"), t, 1200))
    pm25 += 5 * traffic * local
    if fx.pollution_level > 0:
        target = fx.pollution * local * (0.9 + 0.1 * _pm_diurnal(hour))
        pm25 += fx.pollution_level * max(0.0, target - pm25)
    rain = rain_rate(seed, t)
    wind = wind_speed(seed, t)
    ratio = 1.45 + 0.25 * _u(seed, key, "coarse") + (0.0 if rain > 0.5 else 0.06 * wind)
    pm10 = pm25 * ratio + 4 * _smooth(seed, (key, "dust"), t, 1800)
    no2 = (
        (9 + 36 * traffic)
        * local
        * (0.6 + 0.45 * stagnation)
        * (1 + 0.1 * _wobble(seed, (key, "no2"), t, 900))
    )
    no2 *= 1 + 0.5 * fx.pollution_level
    so2 = (3.5 + 5 * stagnation) * (1 + 0.15 * _wobble(seed, (key, "so2"), t, 3600))
    co = 0.28 + 0.009 * pm25 + 0.18 * traffic + 0.05 * _wobble(seed, (key, "co"), t, 1800)
    sun = _gauss(hour, 15, 3.0)
    cloud = 1 - 0.55 * min(1.0, rain / 3)
    o3_peak = _monthly(O3_PEAK, doy) * (1 - 0.3 * fx.pollution_level)
    o3 = 18 + (o3_peak - 18) * sun * cloud + 12 * (1 - traffic)
    o3 *= (2 - local) * (1 + 0.07 * _wobble(seed, (key, "o3"), t, 1800))
    return {
        "pm25": round(max(1.0, pm25)),
        "pm10": round(max(2.0, pm10)),
        "no2": round(max(1.0, no2)),
        "so2": round(max(1.0, so2)),
        "o3": round(max(2.0, o3)),
        "co": round(max(0.1, co), 2),
    }


def traffic_values(device: Device, t: float, seed: int, fx: Effects = NO_EFFECTS) -> Values:
    """Flow (veh/h), mean speed (km/h), occupancy (0..1) and congestion at a detector."""
    key = device.device_id
    p = device.params
    capacity = p.get("capacity", 3000.0)
    lanes = p.get("lanes", 4.0)
    free = p.get("free_speed", 52.0)
    rain = rain_rate(seed, t + _rain_shift(device.lon, device.lat))
    demand = capacity * p.get("demand", 0.9) * traffic_profile(t)
    demand *= (1 + 0.07 * _wobble(seed, (key, "flow"), t, 600)) * (1.04 if rain > 1 else 1.0)
    usable = capacity * fx.capacity
    x = min(2.2, demand / usable)
    speed = free * (0.9 if rain > 1 else 1.0) / (1 + 0.5 * x**4)
    if fx.capacity < 1.0:
        # A blocked lane is a bottleneck at any hour: traffic squeezes past it near the capacity's share
        # of the free speed, even when the night's demand is far below what is left.
        speed = min(speed, free * (fx.capacity + 0.05))
    speed *= 1 + 0.04 * _wobble(seed, (key, "speed"), t, 300)
    flow = min(demand, usable * (0.96 + 0.03 * _smooth(seed, (key, "cap"), t, 300)))
    density = flow / lanes / max(speed, 3.0)  # vehicles per km and lane
    occupancy = min(0.96, density * 0.0065)
    return {
        "intensity": round(flow),
        "averageVehicleSpeed": round(max(3.0, speed), 1),
        "occupancy": round(occupancy, 3),
        "congested": speed < 0.45 * free,
    }


def _basin_rain(seed: int, hour: int, lag: float) -> float:
    """Rain of the hours before, weighted by a unit hydrograph peaking `lag` hours later (mm/h)."""
    return _basin_rain_cached(seed, hour, round(lag * 4) / 4)


@lru_cache(maxsize=65536)
def _basin_rain_cached(seed: int, hour: int, lag: float) -> float:
    """`_basin_rain` for a lag rounded to a quarter hour."""
    span = int(lag * 5) + 6
    weights = [(k / lag) ** 3 * math.exp(3 * (1 - k / lag)) for k in range(span)]
    total = sum(weights)
    return sum(w * _rain_hour(seed, hour - k) for k, w in enumerate(weights)) / total


def water_values(device: Device, t: float, seed: int, fx: Effects = NO_EFFECTS) -> Values:
    """River stage (m on the gauge) and flow (m³/s): the season, the basin's rain some hours earlier."""
    p = device.params
    normal = p.get("normal", 2.0)
    warning = p.get("warning", normal + 2.5)
    lag = p.get("lag", 8.0)
    gain = p.get("gain", 0.2)
    doy = _day_of_year(t)
    season = max(0.0, math.sin(2 * math.pi * (doy - 120) / 365))
    base = normal + 0.6 * season
    x = t / HOUR
    i = math.floor(x)
    f = x - i
    basin = _basin_rain(seed, i, lag) * (1 - f) + _basin_rain(seed, i + 1, lag) * f
    level = base + gain * 3 * basin**0.8 + 0.03 * _wobble(seed, (device.device_id, "level"), t, 900)
    if fx.flood_level > 0:
        level += fx.flood_level * max(0.0, warning + fx.flood_above - level)
    datum = normal * 0.3
    q_normal = 30 * normal**2
    flow = q_normal * (max(0.0, level - datum) / (normal - datum)) ** 1.7
    return {"height": round(max(0.0, level), 2), "flow": round(flow, 1)}


def lamp_values(device: Device, t: float, seed: int, fx: Effects = NO_EFFECTS) -> Values:
    """A smart lamp pole: on from dusk to dawn (dimmed after midnight), or failed."""
    day, hour = _local(t)
    sunrise, sunset = sun_times(day)
    offset = (_u(seed, device.device_id, "photocell") - 0.5) * 0.12  # ± 3.6 minutes
    night = hour >= sunset + 0.15 + offset or hour < sunrise - 0.15 + offset
    if fx.lamp_failed:
        return {"powerState": "off", "illuminanceLevel": 0.0, "status": "defectiveLamp"}
    if not night:
        return {"powerState": "off", "illuminanceLevel": 0.0, "status": "ok"}
    dimmed = 0.5 <= hour < 5.0
    return {
        "powerState": "low" if dimmed else "on",
        "illuminanceLevel": 0.5 if dimmed else 1.0,
        "status": "ok",
    }


def noise_values(device: Device, t: float, seed: int, fx: Effects = NO_EFFECTS) -> Values:
    """LAeq and LAmax (dB) with the traffic near a monitor."""
    key = device.device_id
    exposure = device.params.get("exposure", 0.6)
    traffic = traffic_profile(t) * (1 + 0.1 * _wobble(seed, (key, "traffic"), t, 600))
    laeq = 40 + 8 * exposure + (14 + 10 * exposure) * math.log10(1 + 9 * max(0.0, traffic))
    laeq += 1.2 * _wobble(seed, (key, "laeq"), t, 300)
    lamax = laeq + 8 + 7 * _smooth(seed, (key, "lamax"), t, 120)
    return {"LAeq": round(laeq, 1), "LAmax": round(lamax, 1)}


def rain_values(device: Device, t: float, seed: int, fx: Effects = NO_EFFECTS) -> Values:
    """Precipitation (mm/h), temperature (°C), relative humidity (0..1) and wind speed (m/s)."""
    key = device.device_id
    p = device.params
    shifted = t + _rain_shift(device.lon, device.lat)
    rain = rain_rate(seed, shifted) * p.get("rain", 1.0) * (1 + 0.25 * _wobble(seed, (key, "rain"), t, 900))
    rain = max(0.0, rain) + fx.extra_rain * (1 + 0.1 * _wobble(seed, (key, "storm"), t, 300))
    temp = temperature(seed, shifted) + p.get("temperature", 0.0) - 2.0 * min(1.0, fx.extra_rain / 10)
    _, hour = _local(t)
    humidity = 0.7 + 0.14 * math.cos(2 * math.pi * (hour - 5) / 24) + 0.25 * min(1.0, rain / 2)
    humidity += 0.04 * _wobble(seed, (key, "rh"), t, 3 * HOUR)
    wind = wind_speed(seed, shifted) * (0.8 + 0.4 * _u(seed, key, "exposure"))
    wind += 0.15 * fx.extra_rain
    return {
        "precipitation": round(rain, 1) if rain >= 0.1 else 0.0,
        "temperature": round(temp, 1),
        "relativeHumidity": round(min(0.99, max(0.25, humidity)), 2),
        "windSpeed": round(max(0.0, wind), 1),
    }


SERIES: dict[str, Callable[[Device, float, int, Effects], Values]] = {
    AIR: air_values,
    TRAFFIC: traffic_values,
    WATER: water_values,
    LAMP: lamp_values,
    NOISE: noise_values,
    RAIN: rain_values,
}

# --- the air-quality forecast bulletin -----------------------------------------------------------
#
# The environment monitoring centre forecasts the daily AQI of the coming days; heavy-pollution
# warnings are issued from that forecast (standards notes §8.2). A real bulletin is issued once a day;
# the demo compresses it: a bulletin is re-issued every BULLETIN_SECONDS, and its forecast follows the
# scripted pollution episode by stages, so the whole escalation (yellow, orange, red) happens within
# the episode's first hour, the forecast eases when the episode starts to fade, and it is clean again
# halfway through the fade. Without a pollution episode every bulletin is quiet.

FORECAST_TYPE = "AirQualityForecast"  # Smart Data Models (dataModel.Environment)
FORECAST_SOURCE = "绵阳市生态环境监测中心站"
FORECAST_AREA = ("510700", "绵阳市")  # GB/T 2260 code and name of the area the bulletin covers
BULLETIN_SECONDS = 300.0
MINUTE = 60.0
# The stages of an episode's bulletins: (name, daily AQI of days 1..5). What §8.2 makes of each one
# (three-level national scheme): quiet, building and clean: no warning; yellow: 2 days above 200;
# orange: 4 days above 200 with one above 300; red: 5 days above 200, 3 of them in a row above 300;
# easing: 2 days above 200 (yellow).
Stage = tuple[str, tuple[int, ...]]
QUIET: Stage = ("quiet", (62, 71, 80, 76, 68))
BUILDING: Stage = ("building", (118, 146, 172, 165, 140))
YELLOW: Stage = ("yellow", (168, 214, 236, 187, 150))
ORANGE: Stage = ("orange", (214, 258, 318, 246, 176))
RED: Stage = ("red", (236, 312, 347, 326, 258))
EASING: Stage = ("easing", (232, 208, 150, 112, 90))
CLEAN: Stage = ("clean", (96, 78, 64, 58, 61))
# Minutes after the episode's start at which the bulletins escalate.
ESCALATION: tuple[tuple[float, Stage], ...] = (
    (0.0, BUILDING),
    (10.0, YELLOW),
    (25.0, ORANGE),
    (45.0, RED),
)


@dataclass(frozen=True)
class Bulletin:
    """One air-quality forecast bulletin: when it was issued, the first day it covers, the daily AQI."""

    issued_at: float  # epoch seconds
    valid_from: datetime  # the start of day 1 (midnight, China Standard Time)
    daily_aqi: tuple[int, ...]
    stage: str

    def entity(self, area: tuple[str, str] = FORECAST_AREA, source: str = FORECAST_SOURCE) -> dict[str, Any]:
        """The bulletin as an NGSI-LD AirQualityForecast entity of the area (code, name)."""
        code, name = area
        days = len(self.daily_aqi)
        return {
            "id": f"urn:ngsi-ld:{FORECAST_TYPE}:{code}",
            "type": FORECAST_TYPE,
            "name": {"type": "Property", "value": f"{name}空气质量预报"},
            "areaServed": {"type": "Property", "value": name},
            "areaCode": {"type": "Property", "value": code},
            "source": {"type": "Property", "value": source},
            "issuedAt": {"type": "Property", "value": iso(self.issued_at)},
            "validFrom": {"type": "Property", "value": self.valid_from.isoformat()},
            "validTo": {"type": "Property", "value": (self.valid_from + timedelta(days=days)).isoformat()},
            "dailyAQI": {"type": "Property", "value": list(self.daily_aqi)},
        }


def _episode_stage(incident: Incident, elapsed: float) -> Stage:
    """The forecast stage `elapsed` seconds after the demo start for one pollution episode."""
    minutes = (elapsed - incident.start.total_seconds()) / MINUTE
    if minutes < 0:
        return QUIET
    fading = (incident.ramp + (incident.hold or timedelta(0))).total_seconds() / MINUTE
    if incident.hold is not None and minutes >= fading:
        return CLEAN if minutes >= fading + incident.fade.total_seconds() / MINUTE / 2 else EASING
    stage = QUIET
    for since, reached in ESCALATION:
        if minutes >= since:
            stage = reached
    return stage


def bulletin_schedule(timeline: Timeline) -> list[tuple[float, str]]:
    """When the bulletins change stage, as (minutes after the demo start, stage), for the first episode."""
    episodes = [i for i in timeline.incidents if i.kind == POLLUTION]
    if not episodes:
        return []
    episode = min(episodes, key=lambda i: i.start)
    begin = episode.start.total_seconds() / MINUTE
    marks = [(begin + since, stage[0]) for since, stage in ESCALATION]
    if episode.hold is not None:
        fading = begin + (episode.ramp + episode.hold).total_seconds() / MINUTE
        marks += [(fading, EASING[0]), (fading + episode.fade.total_seconds() / MINUTE / 2, CLEAN[0])]
    return marks


def bulletin(timeline: Timeline | None, t: float) -> Bulletin:
    """The forecast bulletin issued at epoch instant `t`, following the timeline's pollution episode."""
    stage = QUIET
    if timeline is not None:
        elapsed = t - timeline.start.timestamp()
        started = [
            i for i in timeline.incidents if i.kind == POLLUTION and i.start.total_seconds() <= elapsed
        ]
        if started:
            stage = _episode_stage(max(started, key=lambda i: i.start), elapsed)
    day, _ = _local(t)
    valid_from = datetime(day.year, day.month, day.day, tzinfo=LOCAL) + timedelta(days=1)
    return Bulletin(issued_at=t, valid_from=valid_from, daily_aqi=stage[1], stage=stage[0])


# Backfill steps per kind (seconds): hourly air data as the national network publishes it.
BACKFILL_STEPS: dict[str, float] = {AIR: 3600, TRAFFIC: 900, WATER: 900, LAMP: 3600, NOISE: 900, RAIN: 900}
MAX_ROWS = 400  # rows per compact-batch message
MQTT_INFLIGHT = 200  # QoS 1 messages awaiting their acknowledgement at once
MAX_BACKOFF = 30.0  # seconds the simulator waits at most after failing to deliver


def _epoch(at: datetime | float) -> float:
    """Epoch seconds of an aware datetime or of a number already in seconds."""
    return at.timestamp() if isinstance(at, datetime) else float(at)


def iso(t: float) -> str:
    """An epoch instant as ISO 8601 in China Standard Time, to the millisecond."""
    return datetime.fromtimestamp(t, LOCAL).isoformat(timespec="milliseconds")


# --- the simulator ---------------------------------------------------------------------------------


class Sink(Protocol):
    """Where the simulator's payloads go."""

    async def send(self, items: Sequence[tuple[Device, bytes]]) -> None:
        """Deliver a batch of (device, payload) pairs."""


@dataclass
class Simulator:
    """Payloads of many devices over time: `rate` readings per device and minute, incidents on a timeline."""

    devices: Sequence[Device]
    seed: int = 0
    rate: float = 6.0
    timeline: Timeline | None = None
    keys: Mapping[str, str] = field(default_factory=dict)
    sent: int = 0

    def __post_init__(self) -> None:
        """Check the rate and fix each device's reporting interval and phase."""
        if not self.rate > 0:
            raise ValueError("the rate must be positive (readings per device and minute)")
        self._intervals = [60.0 / (self.rate * KINDS[d.kind].rate_factor) for d in self.devices]
        self._phases = [
            round(_u(self.seed, d.device_id, "phase") * interval, 3)
            for d, interval in zip(self.devices, self._intervals, strict=True)
        ]

    def effects(self, device: Device, at: datetime | float) -> Effects:
        """The incidents' effects on a device at an instant."""
        return NO_EFFECTS if self.timeline is None else self.timeline.effects(device, _epoch(at))

    def values(self, device: Device, at: datetime | float) -> Values | None:
        """What a device measures at an instant; None while it is silent."""
        t = _epoch(at)
        fx = self.effects(device, t)
        if fx.silent:
            return None
        return SERIES[device.kind](device, t, self.seed, fx)

    def payload(self, device: Device, at: datetime | float, values: Values | None = None) -> bytes | None:
        """A single-reading payload `{"ts", "values"[, "k"]}`; None while the device is silent."""
        t = _epoch(at)
        values = values if values is not None else self.values(device, t)
        if values is None:
            return None
        body: dict[str, Any] = {"ts": iso(t), "values": values}
        key = self.keys.get(device.device_id)
        if key:
            body["k"] = key
        return orjson.dumps(body)

    def history(
        self,
        start: datetime,
        end: datetime,
        steps: Mapping[str, float] | None = None,
        since: Mapping[str, float] | None = None,
    ) -> Iterator[tuple[Device, bytes]]:
        """Compact-batch payloads of every device from `start` to `end`, on a grid fixed by the step.

        The grid is aligned to the epoch, so the same span gives the same instants (a repeated
        backfill stores nothing twice). `since` gives, per device id, an epoch instant after which
        alone its rows start (what is stored already).
        """
        steps = steps or BACKFILL_STEPS
        since = since or {}
        last = end.timestamp()
        for device in self.devices:
            step = steps.get(device.kind, 900.0)
            names = [a.name for a in KINDS[device.kind].attributes]
            rows: list[list[Any]] = []
            first = max(start.timestamp(), since.get(device.device_id, -math.inf) + 1e-3)
            t = math.ceil(first / step) * step
            while t <= last:
                values = self.values(device, t)
                if values is not None:
                    rows.append([int(t * 1000), *(values.get(n) for n in names)])
                t += step
            for i in range(0, len(rows), MAX_ROWS):
                body: dict[str, Any] = {"columns": ["ts", *names], "rows": rows[i : i + MAX_ROWS]}
                key = self.keys.get(device.device_id)
                if key:
                    body["k"] = key
                yield device, orjson.dumps(body)

    def due(self, after: float, until: float) -> Iterator[tuple[Device, float]]:
        """Every (device, report instant) with the instant in (after, until], in time order."""
        heap = [(self._next(i, after), i) for i in range(len(self.devices))]
        heapq.heapify(heap)
        while heap and heap[0][0] <= until:
            t, i = heapq.heappop(heap)
            yield self.devices[i], t
            heapq.heappush(heap, (t + self._intervals[i], i))

    def _next(self, i: int, after: float) -> float:
        """The first report instant of device `i` strictly after `after`."""
        interval, phase = self._intervals[i], self._phases[i]
        k = math.floor((after - phase) / interval) + 1
        return phase + k * interval

    async def run(
        self,
        sink: Sink,
        *,
        until: float | None = None,
        tick: float = 1.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> int:
        """Report in real time until `until` (epoch seconds; None: until cancelled); payloads sent.

        Devices report on their own grid; what fell due since the last tick goes out as one batch.
        A device that fell more than one interval behind (a slow sink) skips to its latest instant.
        """
        now = clock()
        heap = [(self._next(i, now), i) for i in range(len(self.devices))]
        heapq.heapify(heap)
        failures = 0
        while until is None or now < until:
            batch: list[tuple[Device, bytes]] = []
            while heap and heap[0][0] <= now:
                t, i = heapq.heappop(heap)
                interval = self._intervals[i]
                if t < now - interval:
                    t = self._next(i, now - interval)
                device = self.devices[i]
                payload = self.payload(device, t)
                if payload is not None:
                    batch.append((device, payload))
                heapq.heappush(heap, (t + interval, i))
            backoff = 0.0
            if batch:
                try:
                    await sink.send(batch)
                    self.sent += len(batch)
                    failures = 0
                except asyncio.CancelledError:
                    raise
                except Exception:
                    failures += 1
                    # Log the first failure in full, then one line now and then; wait longer each time.
                    if failures == 1:
                        log.exception("the simulator could not deliver %d payloads", len(batch))
                    elif failures % 10 == 0:
                        log.warning("the simulator still cannot deliver (%d failures in a row)", failures)
                    backoff = min(MAX_BACKOFF, tick * 2**failures)
            now = clock()
            delay = max(tick, backoff, (heap[0][0] if heap else now + tick) - now)
            if until is not None:
                delay = min(delay, max(0.0, until - now))
            await sleep(delay)
            now = clock()
        return self.sent


# --- sinks -----------------------------------------------------------------------------------------


class InternalSink:
    """Hands payloads to the iot ingest pipeline in this process (channel "internal", no key check)."""

    def __init__(self, ctx: AppContext, tenant: str = "", batch_size: int = 500) -> None:
        """Deliver into `ctx` for `tenant`, `batch_size` messages per store transaction."""
        self.ctx = ctx
        self.tenant = tenant
        self.batch_size = batch_size
        self.stored = 0
        self.rejected: dict[str, int] = {}

    def deliver(self, items: Sequence[tuple[Device, bytes]]) -> None:
        """Store a batch now (from synchronous code)."""
        now = utcnow()
        messages = [Message(self.tenant, d.device_id, payload, "internal", None, now) for d, payload in items]
        for i in range(0, len(messages), self.batch_size):
            report = services.ingest_messages(self.ctx, messages[i : i + self.batch_size])
            self.stored += report.stored
            for reason, count in report.rejected.items():
                self.rejected[reason] = self.rejected.get(reason, 0) + count

    async def send(self, items: Sequence[tuple[Device, bytes]]) -> None:
        """Store a batch in a worker thread."""
        await asyncio.to_thread(self.deliver, items)


def topic(tenant: str, device_id: str) -> str:
    """The MQTT topic a device publishes its readings to."""
    return f"citybrain/{tenant or 'default'}/{device_id}/attrs"


def check_broker_url(url: str) -> SplitResult:
    """The parts of an mqtt://[user:password@]host[:port] or mqtts:// URL; ValueError for anything else."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError(f"not an MQTT broker URL: {url!r} (use mqtt://host:port)")
    _ = parts.port  # a malformed port raises ValueError
    return parts


@asynccontextmanager
async def mqtt_client(url: str, identifier: str | None = None) -> AsyncIterator[aiomqtt.Client]:
    """A connected MQTT client for mqtt://[user:password@]host[:port] (mqtts:// for TLS)."""
    parts = check_broker_url(url)
    tls = ssl.create_default_context() if parts.scheme == "mqtts" else None
    client = aiomqtt.Client(
        parts.hostname or "",
        parts.port or (8883 if tls else 1883),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        identifier=identifier,
        tls_context=tls,
        max_inflight_messages=MQTT_INFLIGHT,
    )
    client.pending_calls_threshold = 2 * MQTT_INFLIGHT  # a full window of publishes is expected
    async with client:
        yield client


class MqttSink:
    """Publishes payloads to a broker, QoS 1, one topic per device."""

    def __init__(self, client: aiomqtt.Client, tenant: str = "") -> None:
        """Publish through a connected client for `tenant`."""
        self.client = client
        self.tenant = tenant
        self.published = 0

    async def send(self, items: Sequence[tuple[Device, bytes]]) -> None:
        """Publish a batch, up to MQTT_INFLIGHT messages awaiting their acknowledgement at once."""
        for i in range(0, len(items), MQTT_INFLIGHT):
            chunk = items[i : i + MQTT_INFLIGHT]
            await asyncio.gather(
                *(
                    self.client.publish(topic(self.tenant, d.device_id), payload, qos=1)
                    for d, payload in chunk
                )
            )
            self.published += len(chunk)
