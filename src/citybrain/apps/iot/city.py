"""The demo city of Mianyang as data: device kinds and models, and where each demo device stands.

Coordinates are WGS84 lon/lat. Placed by hand: the national air-quality stations of the central city
and one per county, water-level gauges on the Fu River (涪江) and the Anchang River (安昌河), noise
monitors and rain gauges. Along the geo app's main roads and bridges of the central city: traffic
detectors, smart lamp poles and roadside noise monitors, in the district the geo app finds them in.
On top of them `placements(total=...)` spreads generated devices over the towns of the nine districts
and counties for load runs (10,000 devices and more).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from citybrain.apps.geo import services as geo
from citybrain.apps.iot import schemas
from citybrain.sdk import AppContext

# --- device kinds ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attribute:
    """A measured attribute: name, JSON kind, plausible range and UN/CEFACT unit code."""

    name: str
    kind: str = "number"
    minimum: float | None = None
    maximum: float | None = None
    unit_code: str | None = None


@dataclass(frozen=True)
class Kind:
    """A kind of demo device: its device model, entity type, owner and how often it reports."""

    key: str
    model_code: str
    entity_type: str
    name_zh: str
    name_en: str
    prefix: str
    department: str
    offline_timeout_seconds: int
    attributes: tuple[Attribute, ...]
    # Readings per minute relative to the simulator's rate (lamp poles report less often).
    rate_factor: float = 1.0

    def model(self) -> schemas.DeviceModelCreate:
        """The iot device model of this kind."""
        return schemas.DeviceModelCreate(
            code=self.model_code,
            name_zh=self.name_zh,
            name_en=self.name_en,
            entity_type=self.entity_type,
            offline_timeout_seconds=self.offline_timeout_seconds,
            attributes=[
                schemas.AttributeSpec(
                    name=a.name,
                    kind=a.kind,
                    minimum=a.minimum,
                    maximum=a.maximum,
                    unit_code=a.unit_code,
                )
                for a in self.attributes
            ],
        )


AIR, TRAFFIC, WATER, LAMP, NOISE, RAIN = "air", "traffic", "water", "lamp", "noise", "rain"

# Units follow the Smart Data Models: µg/m³ is GQ, mg/m³ GP, km/h KMH, m MTR, m³/s MQS, dB 2N,
# mm/h H67, °C CEL, m/s MTS.
KINDS: dict[str, Kind] = {
    AIR: Kind(
        key=AIR,
        model_code="aq-station",
        entity_type="AirQualityObserved",
        name_zh="空气质量自动监测站",
        name_en="Air quality monitoring station",
        prefix="aq",
        department="sthj",
        offline_timeout_seconds=900,
        attributes=(
            Attribute("pm25", minimum=0, maximum=1000, unit_code="GQ"),
            Attribute("pm10", minimum=0, maximum=2000, unit_code="GQ"),
            Attribute("no2", minimum=0, maximum=1000, unit_code="GQ"),
            Attribute("so2", minimum=0, maximum=2000, unit_code="GQ"),
            Attribute("o3", minimum=0, maximum=1200, unit_code="GQ"),
            Attribute("co", minimum=0, maximum=100, unit_code="GP"),
        ),
    ),
    TRAFFIC: Kind(
        key=TRAFFIC,
        model_code="traffic-detector",
        entity_type="TrafficFlowObserved",
        name_zh="交通流量检测器",
        name_en="Traffic flow detector",
        prefix="tf",
        department="gaj-jj",
        offline_timeout_seconds=300,
        attributes=(
            Attribute("intensity", minimum=0, maximum=20000),
            Attribute("averageVehicleSpeed", minimum=0, maximum=200, unit_code="KMH"),
            Attribute("occupancy", minimum=0, maximum=1),
            Attribute("congested", kind="boolean"),
        ),
    ),
    WATER: Kind(
        key=WATER,
        model_code="water-level-gauge",
        entity_type="WaterObserved",
        name_zh="河道水位站",
        name_en="River water-level gauge",
        prefix="wl",
        department="slj",
        offline_timeout_seconds=900,
        attributes=(
            Attribute("height", minimum=0, maximum=30, unit_code="MTR"),
            Attribute("flow", minimum=0, maximum=50000, unit_code="MQS"),
        ),
    ),
    LAMP: Kind(
        key=LAMP,
        model_code="smart-lamp-pole",
        entity_type="Streetlight",
        name_zh="智慧灯杆",
        name_en="Smart lamp pole",
        prefix="sl",
        department="cgzf",
        offline_timeout_seconds=900,
        attributes=(
            Attribute("powerState", kind="string"),
            Attribute("illuminanceLevel", minimum=0, maximum=1),
            Attribute("status", kind="string"),
        ),
        rate_factor=1 / 6,
    ),
    NOISE: Kind(
        key=NOISE,
        model_code="noise-monitor",
        entity_type="NoiseLevelObserved",
        name_zh="噪声监测点",
        name_en="Noise monitor",
        prefix="nz",
        department="sthj",
        offline_timeout_seconds=300,
        attributes=(
            Attribute("LAeq", minimum=20, maximum=140, unit_code="2N"),
            Attribute("LAmax", minimum=20, maximum=150, unit_code="2N"),
        ),
    ),
    RAIN: Kind(
        key=RAIN,
        model_code="rain-gauge",
        entity_type="WeatherObserved",
        name_zh="雨量站",
        name_en="Rain gauge",
        prefix="rg",
        department="slj",
        offline_timeout_seconds=900,
        attributes=(
            Attribute("precipitation", minimum=0, maximum=300, unit_code="H67"),
            Attribute("temperature", minimum=-30, maximum=50, unit_code="CEL"),
            Attribute("relativeHumidity", minimum=0, maximum=1),
            Attribute("windSpeed", minimum=0, maximum=60, unit_code="MTS"),
        ),
    ),
}


def device_models() -> list[schemas.DeviceModelCreate]:
    """The iot device model of every demo kind."""
    return [kind.model() for kind in KINDS.values()]


Locate = Callable[[float, float], "str | None"]

# --- devices --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Device:
    """A demo device: where it stands, who owns it, its static attributes and its simulation parameters."""

    device_id: str
    kind: str
    name: str
    lon: float
    lat: float
    district: str
    department: str
    static: Mapping[str, Any] = field(default_factory=dict)
    params: Mapping[str, float] = field(default_factory=dict)

    @property
    def spec(self) -> Kind:
        """The kind of this device."""
        return KINDS[self.kind]

    @property
    def entity_id(self) -> str:
        """The id of the context entity the device feeds."""
        return f"urn:ngsi-ld:{self.spec.entity_type}:{self.device_id}"

    def create(self) -> schemas.DeviceCreate:
        """The iot registration of this device."""
        return schemas.DeviceCreate(
            device_id=self.device_id,
            name=self.name,
            model_code=self.spec.model_code,
            protocol="mqtt",
            lon=self.lon,
            lat=self.lat,
            department_code=self.department,
            static_attributes=dict(self.static),
        )


DISTRICT_NAMES: dict[str, str] = {
    "510703": "涪城区",
    "510704": "游仙区",
    "510705": "安州区",
    "510781": "江油市",
    "510722": "三台县",
    "510723": "盐亭县",
    "510725": "梓潼县",
    "510726": "北川羌族自治县",
    "510727": "平武县",
}

FUCHENG, YOUXIAN, ANZHOU, JIANGYOU = "510703", "510704", "510705", "510781"
SANTAI, YANTING, ZITONG, BEICHUAN, PINGWU = "510722", "510723", "510725", "510726", "510727"

# Air-quality stations: (name, lon, lat, district, local factor: roadside > urban > background).
AIR_STATIONS: tuple[tuple[str, float, float, str, float], ...] = (
    ("市政府", 104.7405, 31.4672, FUCHENG, 1.05),
    ("高新区自来水公司", 104.6885, 31.4385, FUCHENG, 1.0),
    ("三水厂", 104.7010, 31.5150, FUCHENG, 0.95),
    ("富乐山", 104.7690, 31.4760, YOUXIAN, 0.85),
    ("科学城", 104.7720, 31.5350, YOUXIAN, 0.8),
    ("安州区花荄", 104.5660, 31.5360, ANZHOU, 0.95),
    ("江油市城区", 104.7450, 31.7780, JIANGYOU, 1.0),
    ("三台县城区", 105.0900, 31.0950, SANTAI, 0.95),
    ("盐亭县城区", 105.3890, 31.2080, YANTING, 0.85),
    ("梓潼县城区", 105.1620, 31.6420, ZITONG, 0.85),
    ("北川县城区", 104.4550, 31.6170, BEICHUAN, 0.75),
    ("平武县城区", 104.5550, 32.4080, PINGWU, 0.6),
)


class RoadLike(Protocol):
    """A road of the geo app's road graph, as far as placing devices along it goes."""

    @property
    def id(self) -> str:
        """The road's id (e.g. "linyuan")."""

    @property
    def name_zh(self) -> str:
        """The road's Chinese name."""

    @property
    def road_class(self) -> str:
        """expressway, arterial or secondary."""

    @property
    def speed_limit_kmh(self) -> float:
        """The speed limit."""

    @property
    def coordinates(self) -> tuple[tuple[float, float], ...]:
        """The centre line (lon, lat pairs)."""

    @property
    def bridge(self) -> bool:
        """Whether the road is a bridge."""


# Lanes (both directions) and vehicles per lane and hour at capacity, by road class.
LANES = {"expressway": 6, "arterial": 6, "secondary": 4}
LANE_CAPACITY = {"expressway": 1900.0, "arterial": 1500.0, "secondary": 1300.0}
# One detector per this many metres of road (at least two per road), one lamp pole per LAMP_SPACING_M
# (expressways and bridges have their own lighting circuits, not smart poles).
DETECTOR_SPACING_M = 2000.0
LAMP_SPACING_M = 450.0
# Noise monitors beside main roads: (road id, position along the road 0..1, traffic exposure 0..1).
ROAD_NOISE: tuple[tuple[str, float, float], ...] = (
    ("linyuan", 0.55, 1.0),
    ("jiannan", 0.4, 0.95),
    ("jiuzhou", 0.5, 0.95),
    ("changhong", 0.35, 0.9),
    ("mianxing-east", 0.5, 0.9),
    ("youxian", 0.5, 0.85),
    ("fucheng", 0.5, 0.75),
)

# Water-level gauges: (name, river, lon, lat, district, normal stage, warning, guarantee, lag hours, gain).
# Stages are metres on the gauge's own staff; the rain response peaks `lag` hours after the rain.
WATER_GAUGES: tuple[tuple[str, str, float, float, str, float, float, float, float, float], ...] = (
    ("涪江平武站", "涪江", 104.5380, 32.4060, PINGWU, 1.6, 4.0, 5.2, 4, 0.20),
    ("涪江江油站", "涪江", 104.7320, 31.7700, JIANGYOU, 2.0, 4.6, 5.8, 6, 0.22),
    ("涪江绵阳站", "涪江", 104.7545, 31.4700, YOUXIAN, 2.4, 5.0, 6.5, 9, 0.24),
    ("涪江三江站", "涪江", 104.7480, 31.4560, FUCHENG, 2.3, 4.9, 6.3, 10, 0.24),
    ("涪江三台站", "涪江", 105.0800, 31.0900, SANTAI, 2.6, 5.4, 7.0, 16, 0.22),
    ("安昌河安州站", "安昌河", 104.5700, 31.5300, ANZHOU, 1.2, 3.2, 4.2, 3, 0.18),
    ("安昌河城区站", "安昌河", 104.7150, 31.4600, FUCHENG, 1.5, 3.6, 4.6, 5, 0.20),
)

# Noise monitors away from the main roads: (name, lon, lat, district, traffic exposure 0..1).
NOISE_MONITORS: tuple[tuple[str, float, float, str, float], ...] = (
    ("火车站广场噪声监测点", 104.7275, 31.4835, FUCHENG, 0.8),
    ("高新区科创园噪声监测点", 104.6880, 31.4420, FUCHENG, 0.5),
    ("富乐山景区噪声监测点", 104.7700, 31.4745, YOUXIAN, 0.25),
    ("安州区花荄噪声监测点", 104.5620, 31.5380, ANZHOU, 0.6),
    ("江油市城区噪声监测点", 104.7480, 31.7760, JIANGYOU, 0.7),
    ("三台县城区噪声监测点", 105.0880, 31.0980, SANTAI, 0.65),
)

# Rain gauges: (name, lon, lat, district, rain factor, temperature offset °C).
RAIN_GAUGES: tuple[tuple[str, float, float, str, float, float], ...] = (
    ("涪城区城区雨量站", 104.7330, 31.4630, FUCHENG, 1.0, 0.0),
    ("高新区雨量站", 104.6920, 31.4320, FUCHENG, 0.95, 0.0),
    ("游仙区雨量站", 104.7900, 31.5000, YOUXIAN, 1.05, -0.3),
    ("安州区雨量站", 104.5600, 31.5400, ANZHOU, 1.15, -0.4),
    ("江油市雨量站", 104.7500, 31.7900, JIANGYOU, 1.2, -0.6),
    ("三台县雨量站", 105.0850, 31.1000, SANTAI, 0.85, 0.3),
    ("盐亭县雨量站", 105.3950, 31.2150, YANTING, 0.8, 0.2),
    ("梓潼县雨量站", 105.1650, 31.6350, ZITONG, 0.9, -0.2),
    ("北川县雨量站", 104.4500, 31.6200, BEICHUAN, 1.35, -1.0),
    ("平武县雨量站", 104.5500, 32.4050, PINGWU, 1.1, -2.5),
)

# Towns over which generated devices are spread: (name, lon, lat, district, radius km, weight).
TOWNS: tuple[tuple[str, float, float, str, float, float], ...] = (
    ("涪城城区", 104.7300, 31.4700, FUCHENG, 1.6, 10.0),
    ("高新区", 104.6900, 31.4420, FUCHENG, 1.4, 5.0),
    ("经开区", 104.7500, 31.4100, FUCHENG, 1.2, 3.0),
    ("青义", 104.6900, 31.5250, FUCHENG, 0.8, 1.0),
    ("游仙城区", 104.7800, 31.4850, YOUXIAN, 1.2, 5.0),
    ("科学城", 104.7700, 31.5350, YOUXIAN, 1.0, 2.0),
    ("魏城", 104.9900, 31.5700, YOUXIAN, 0.8, 1.0),
    ("花荄", 104.5650, 31.5350, ANZHOU, 1.4, 3.0),
    ("江油城区", 104.7450, 31.7780, JIANGYOU, 1.8, 5.0),
    ("潼川", 105.0900, 31.0950, SANTAI, 1.5, 4.0),
    ("云溪", 105.3880, 31.2100, YANTING, 1.0, 2.0),
    ("文昌", 105.1620, 31.6420, ZITONG, 1.0, 2.0),
    ("永昌", 104.4550, 31.6170, BEICHUAN, 0.9, 1.5),
    ("龙安", 104.5550, 32.4080, PINGWU, 0.6, 1.0),
)


def _meters(a: tuple[float, float], b: tuple[float, float]) -> float:
    """The distance in metres between two nearby (lon, lat) points (equirectangular)."""
    kx = 111_320.0 * math.cos(math.radians((a[1] + b[1]) / 2))
    return math.hypot((b[0] - a[0]) * kx, (b[1] - a[1]) * 110_574.0)


def line_length(path: Sequence[tuple[float, float]]) -> float:
    """The length of a polyline in metres."""
    return sum(_meters(a, b) for a, b in itertools.pairwise(path))


def point_along(path: Sequence[tuple[float, float]], fraction: float) -> tuple[float, float]:
    """The point at `fraction` (0..1) of a polyline's length."""
    target = line_length(path) * min(1.0, max(0.0, fraction))
    for a, b in itertools.pairwise(path):
        length = _meters(a, b)
        if target <= length and length > 0:
            f = target / length
            return (round(a[0] + (b[0] - a[0]) * f, 6), round(a[1] + (b[1] - a[1]) * f, 6))
        target -= length
    return (round(path[-1][0], 6), round(path[-1][1], 6))


def _spread(path: Sequence[tuple[float, float]], count: int, shift: float = 0.5) -> list[tuple[float, float]]:
    """`count` points spread evenly along a polyline (each at `shift` of its equal part)."""
    return [point_along(path, (i + shift) / count) for i in range(count)]


def road_devices(roads: Iterable[RoadLike], locate: Locate) -> list[Device]:
    """Traffic detectors, smart lamp poles and roadside noise monitors along the main roads."""
    detectors: list[Device] = []
    lamps: list[Device] = []
    noise: list[Device] = []
    by_id = {road.id: road for road in roads}
    for road in by_id.values():
        path = road.coordinates
        length = line_length(path)
        lanes = LANES.get(road.road_class, 4) - (2 if road.bridge and road.road_class != "expressway" else 0)
        capacity = LANE_CAPACITY.get(road.road_class, 1300.0) * lanes
        count = 2 if road.bridge else max(2, round(length / DETECTOR_SPACING_M))
        static = {
            "roadName": road.name_zh,
            "maximumAllowedSpeed": round(road.speed_limit_kmh),
            "laneCount": lanes,
        }
        for i, (lon, lat) in enumerate(_spread(path, count), start=1):
            district = locate(lon, lat)
            if district is None:
                continue
            detectors.append(
                Device(
                    f"{KINDS[TRAFFIC].prefix}-{road.id}-{i:02d}",
                    TRAFFIC,
                    f"{road.name_zh}检测器{i:02d}",
                    lon,
                    lat,
                    district,
                    KINDS[TRAFFIC].department,
                    static={**static, "refRoadSegment": road.id},
                    params={
                        "capacity": capacity,
                        "free_speed": road.speed_limit_kmh * 1.05,
                        "lanes": float(lanes),
                        "demand": 0.86 + 0.05 * (i % 3),
                    },
                )
            )
        if road.bridge or road.road_class == "expressway":
            continue
        for i, (lon, lat) in enumerate(_spread(path, int(length // LAMP_SPACING_M), 0.3), start=1):
            district = locate(lon, lat)
            if district is None:
                continue
            lamps.append(
                Device(
                    f"{KINDS[LAMP].prefix}-{road.id}-{i:03d}",
                    LAMP,
                    f"{road.name_zh}灯杆{i:03d}",
                    lon,
                    lat,
                    district,
                    KINDS[LAMP].department,
                    static={"areaServed": road.name_zh, "refRoadSegment": road.id},
                )
            )
    for road_id, fraction, exposure in ROAD_NOISE:
        beside = by_id.get(road_id)
        if beside is None:
            continue
        lon, lat = point_along(beside.coordinates, fraction)
        district = locate(lon, lat)
        if district is None:
            continue
        noise.append(
            Device(
                f"{KINDS[NOISE].prefix}-{beside.id}",
                NOISE,
                f"{beside.name_zh}交通噪声监测点",
                lon,
                lat,
                district,
                KINDS[NOISE].department,
                static={"areaServed": beside.name_zh},
                params={"exposure": exposure},
            )
        )
    return detectors + lamps + noise


def fixed_devices() -> list[Device]:
    """The devices placed by hand: air stations, river gauges, noise monitors off the roads, rain gauges."""
    devices: list[Device] = []
    counters: dict[tuple[str, str], int] = {}

    def next_id(kind: str, district: str) -> str:
        """The next id of a kind in a district, e.g. aq-510703-001."""
        n = counters.get((kind, district), 0) + 1
        counters[(kind, district)] = n
        return f"{KINDS[kind].prefix}-{district}-{n:03d}"

    for name, lon, lat, district, factor in AIR_STATIONS:
        devices.append(
            Device(
                next_id(AIR, district),
                AIR,
                f"{name}空气质量监测站",
                lon,
                lat,
                district,
                KINDS[AIR].department,
                static={"areaServed": DISTRICT_NAMES[district], "stationName": name},
                params={"local": factor},
            )
        )
    for name, river, lon, lat, district, normal, warning, guarantee, lag, gain in WATER_GAUGES:
        devices.append(
            Device(
                next_id(WATER, district),
                WATER,
                name,
                lon,
                lat,
                district,
                KINDS[WATER].department,
                static={"riverName": river, "warningLevel": warning, "guaranteeLevel": guarantee},
                params={"normal": normal, "warning": warning, "lag": lag, "gain": gain},
            )
        )
    for name, lon, lat, district, exposure in NOISE_MONITORS:
        devices.append(
            Device(
                next_id(NOISE, district),
                NOISE,
                name,
                lon,
                lat,
                district,
                KINDS[NOISE].department,
                static={"areaServed": DISTRICT_NAMES[district]},
                params={"exposure": exposure},
            )
        )
    for name, lon, lat, district, factor, offset in RAIN_GAUGES:
        devices.append(
            Device(
                next_id(RAIN, district),
                RAIN,
                name,
                lon,
                lat,
                district,
                KINDS[RAIN].department,
                static={"areaServed": DISTRICT_NAMES[district]},
                params={"rain": factor, "temperature": offset},
            )
        )
    return devices


def hand_placed(roads: Iterable[RoadLike] = (), locate: Locate | None = None) -> list[Device]:
    """The hand-placed demo devices: the fixed ones, and with roads and `locate` those along the roads."""
    fixed = fixed_devices()
    return fixed if locate is None else fixed + road_devices(roads, locate)


# Shares of the generated devices per kind (no generated river gauges: rivers are where they are).
GENERATED_SHARES: tuple[tuple[str, float], ...] = (
    (LAMP, 0.55),
    (TRAFFIC, 0.15),
    (NOISE, 0.10),
    (AIR, 0.10),
    (RAIN, 0.10),
)


def generated(count: int, seed: int = 0, locate: Locate | None = None) -> Iterator[Device]:
    """`count` extra devices spread over the towns; with `locate`, each lies in its town's district."""
    rng = random.Random(f"citybrain-city-{seed}")
    weights = [t[5] for t in TOWNS]
    kinds = [k for k, _ in GENERATED_SHARES]
    shares = [s for _, s in GENERATED_SHARES]
    for n in range(1, count + 1):
        town = rng.choices(TOWNS, weights)[0]
        kind = rng.choices(kinds, shares)[0]
        name, lon0, lat0, district, radius, _ = town
        for _attempt in range(50):
            r = radius * math.sqrt(rng.random())
            angle = rng.random() * 2 * math.pi
            lon = lon0 + r * math.cos(angle) / (111.32 * math.cos(math.radians(lat0)))
            lat = lat0 + r * math.sin(angle) / 110.57
            if locate is None or locate(lon, lat) == district:
                break
        else:  # pragma: no cover - the town centres lie well inside their districts
            lon, lat = lon0, lat0
        yield _generated_device(kind, n, name, round(lon, 6), round(lat, 6), district, rng)


def _generated_device(
    kind: str, n: int, town: str, lon: float, lat: float, district: str, rng: random.Random
) -> Device:
    """One generated device of a kind near a town."""
    spec = KINDS[kind]
    device_id = f"{spec.prefix}-{district}-x{n:05d}"
    static: dict[str, Any] = {"areaServed": town}
    params: dict[str, float] = {}
    department = spec.department
    if kind == TRAFFIC:
        lanes = rng.choice((2, 4, 4, 6))
        limit = rng.choice((40, 50, 50, 60))
        static = {"roadName": f"{town}道路{n % 97 + 1:02d}", "maximumAllowedSpeed": limit, "laneCount": lanes}
        params = {"capacity": 1400.0 * lanes, "free_speed": limit * 1.05, "lanes": float(lanes)}
        params["demand"] = 0.6 + 0.35 * rng.random()
    elif kind == LAMP:
        department = district  # lamp poles outside the central city belong to the district
    elif kind == AIR:
        params = {"local": 0.75 + 0.35 * rng.random()}
    elif kind == NOISE:
        params = {"exposure": 0.2 + 0.7 * rng.random()}
    elif kind == RAIN:
        params = {"rain": 0.8 + 0.5 * rng.random(), "temperature": 0.0}
    return Device(
        device_id, kind, f"{town}{spec.name_zh}{n:05d}", lon, lat, district, department, static, params
    )


def placements(
    roads: Iterable[RoadLike] = (),
    locate: Locate | None = None,
    total: int | None = None,
    seed: int = 0,
) -> list[Device]:
    """The demo devices: the hand-placed ones (all, or the first `total` mixing every kind), plus generated ones."""
    hand = hand_placed(roads, locate)
    if total is None or total == len(hand):
        return hand
    if total < len(hand):
        return _interleaved(hand)[:total]
    return hand + list(generated(total - len(hand), seed, locate))


def _interleaved(devices: list[Device]) -> list[Device]:
    """Devices ordered round-robin over their kinds, so any prefix holds every kind."""
    by_kind: dict[str, list[Device]] = {}
    for device in devices:
        by_kind.setdefault(device.kind, []).append(device)
    queues = list(by_kind.values())
    ordered: list[Device] = []
    while any(queues):
        for queue in queues:
            if queue:
                ordered.append(queue.pop(0))
    return ordered


def city_devices(ctx: AppContext, total: int | None = None, seed: int = 0) -> list[Device]:
    """The demo devices on the geo app's roads, each in the district the geo app finds it in."""

    def locate(lon: float, lat: float) -> str | None:
        """The code of the district holding a point."""
        found = geo.district_at(ctx, lon, lat)
        return found.code if found is not None else None

    return placements(geo.roads(ctx), locate, total, seed)
