"""Environment services: station, district and city AQI now and over the last hours, from the context broker.

Live state and history come through the context app's functions (`query_entities`, and its temporal
aggregation for hourly means), never its tables. Whoever holds `environment.air.read` sees the air
quality, whatever their rights on the whole broker, so the reads run as the system after that check.

Hourly values follow the real-time report of HJ 633: the AQI of hour H is the AQI of the 1-hour means
of the hour ending at H (China time), published after the hour is complete (standards notes §1.3).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from citybrain.apps.context import entities as ent
from citybrain.apps.context import services as context
from citybrain.apps.context import temporal
from citybrain.apps.context.jsonld import Context
from citybrain.apps.environment import aqi
from citybrain.apps.environment.settings import EnvironmentSettings
from citybrain.apps.geo import services as geo
from citybrain.sdk import SYSTEM, Actor, AppContext, ExpiringCache, NotFound, ProblemError, utcnow

READ = "environment.air.read"
CACHE = "environment.picture"
HOUR = timedelta(hours=1)
# The station attributes (Smart Data Models AirQualityObserved terms) and the pollutant each measures.
ATTRIBUTES: tuple[str, ...] = ("so2", "no2", "co", "o3", "pm10", "pm25")
# Hourly report items fed by each attribute's 1-hour mean (HJ 633 real-time report).
HOURLY_INDICATOR: dict[aqi.Version, dict[str, str]] = {
    "2026": {"so2": aqi.SO2_1H, "no2": aqi.NO2_1H, "co": aqi.CO_1H, "o3": aqi.O3_1H, "pm10": aqi.PM10_1H,
             "pm25": aqi.PM25_1H},
    # 2012 indexes PM by its 24-hour sliding mean and adds the O3 8-hour sliding mean (SLIDING_2012).
    "2012": {"so2": aqi.SO2_1H, "no2": aqi.NO2_1H, "co": aqi.CO_1H, "o3": aqi.O3_1H},
}  # fmt: skip
# The 2012 real-time report's sliding means: (indicator, attribute, hours, fewest valid hours). The O3
# 8-hour mean is that of the current hour and the 7 before; the 24-hour mean needs 20 valid hours and
# the 8-hour mean 6 (GB 3095 data validity, standards notes §1.3). The SO2 24-hour mean is the fallback
# of a 1-hour SO2 above 800 µg/m³.
SLIDING_2012: tuple[tuple[str, str, int, int], ...] = (
    (aqi.O3_8H, "o3", 8, 6),
    (aqi.PM10_24H, "pm10", 24, 20),
    (aqi.PM25_24H, "pm25", 24, 20),
    (aqi.SO2_24H, "so2", 24, 20),
)
LEAD_IN = 23 * HOUR  # the hours before a window a 24-hour sliding mean reaches back to
Series = Mapping[datetime, Mapping[str, float | None]]


def settings(ctx: AppContext) -> EnvironmentSettings:
    """The environment app's settings."""
    return ctx.app_setting("environment", EnvironmentSettings)


@dataclass(frozen=True)
class HourValue:
    """One hour's 1-hour mean concentrations (by attribute) and their AQI report."""

    hour: datetime  # the end of the hour (UTC); the hour covers [hour - 1 h, hour)
    concentrations: Mapping[str, float | None]
    result: aqi.Result | None
    error: str = ""


@dataclass(frozen=True)
class Station:
    """An air-quality station: where it stands, its latest readings, and its hourly AQI."""

    entity_id: str
    name: str
    lon: float | None
    lat: float | None
    district_code: str | None
    district_zh: str
    district_en: str
    measured: tuple[str, ...]  # the attributes the station reports
    units: Mapping[str, str]
    latest: Mapping[str, float]  # the latest readings (not averaged)
    latest_at: datetime | None
    hours: tuple[HourValue, ...] = field(default=())
    # the 1-hour means by hour end, with the hours before the window that sliding means reach back to
    series: Mapping[datetime, Mapping[str, float]] = field(default_factory=dict, repr=False)

    @property
    def now(self) -> HourValue | None:
        """The latest complete hour with data."""
        return self.hours[-1] if self.hours else None


@dataclass(frozen=True)
class Area:
    """The city or a district: its stations and its hourly AQI from their mean concentrations."""

    code: str
    name_zh: str
    name_en: str
    stations: tuple[str, ...]
    hours: tuple[HourValue, ...]

    @property
    def now(self) -> HourValue | None:
        """The latest complete hour with data."""
        return self.hours[-1] if self.hours else None


@dataclass(frozen=True)
class AirQuality:
    """The whole picture at one moment: the window, the stations, the districts and the city."""

    start: datetime
    end: datetime
    stations: tuple[Station, ...]
    districts: tuple[Area, ...]
    city: Area


def hour_window(now: datetime, hours: int) -> tuple[datetime, datetime]:
    """The last `hours` complete hours before `now`: [start, end), both on the hour (UTC)."""
    moment = now.astimezone(UTC)
    end = moment.replace(minute=0, second=0, microsecond=0)
    return end - hours * HOUR, end


def _term(iri: str) -> str:
    return iri.rsplit("/", 1)[-1].rsplit("#", 1)[-1]


def _instance(stored: Mapping[str, Any], term: str) -> Mapping[str, Any] | None:
    """The default instance of an attribute given by its term."""
    for iri, instances in stored.get("attrs", {}).items():
        if _term(iri) == term:
            return next((i for i in instances if "datasetId" not in i), None)
    return None


def _text(stored: Mapping[str, Any], term: str) -> str:
    instance = _instance(stored, term)
    value = None if instance is None else instance.get("value")
    return value if isinstance(value, str) else ""


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def version_of_hour(at: datetime) -> aqi.Version:
    """The HJ 633 version of the hour ending at `at` (the hour ending 2026-03-01 00:00 China time is 2012's)."""
    return aqi.version_for(at - timedelta(microseconds=1))


def sliding_mean(series: Series, at: datetime, term: str, hours: int, fewest: int) -> float | None:
    """The mean of an attribute's 1-hour means over the `hours` hours ending at `at`; None with too few."""
    values = [v for k in range(hours) if (v := series.get(at - k * HOUR, {}).get(term)) is not None]
    return sum(values) / len(values) if len(values) >= fewest else None


def evaluate(at: datetime, series: Series, measured: Sequence[str], units: Mapping[str, str]) -> HourValue:
    """The hourly AQI report of the hour ending at `at` from a series of 1-hour means by attribute."""
    concentrations = {term: series.get(at, {}).get(term) for term in measured}
    version = version_of_hour(at)
    mapping = HOURLY_INDICATOR[version]
    given: dict[str, float | None] = {mapping[a]: v for a, v in concentrations.items() if a in mapping}
    item_units = {mapping[a]: u for a, u in units.items() if a in mapping and a in concentrations}
    if version == "2012":
        for indicator, term, hours, fewest in SLIDING_2012:
            if term in concentrations:  # an attribute the station does not report stays "/"
                given[indicator] = sliding_mean(series, at, term, hours, fewest)
                if term in units:
                    item_units[indicator] = units[term]
    try:
        result = aqi.compute(given, version=version, report="hourly", units=item_units)
    except aqi.AqiInputError as exc:
        return HourValue(at, dict(concentrations), None, str(exc))
    return HourValue(at, dict(concentrations), result)


def _fetch_from(start: datetime) -> datetime:
    """Where the hourly means are read from: 23 hours earlier when the window's first hour is 2012's."""
    return start - LEAD_IN if version_of_hour(start + HOUR) == "2012" else start


def _stations_now(ctx: AppContext, config: EnvironmentSettings) -> list[dict[str, Any]]:
    query = context.EntityQuery(types=[Context().expand_type(config.station_type)], limit=config.max_stations)
    return context.query_entities(ctx, SYSTEM, config.tenant, query).entities


def _hourly_means(
    ctx: AppContext, config: EnvironmentSettings, start: datetime, end: datetime, ids: Sequence[str]
) -> dict[str, dict[datetime, dict[str, float]]]:
    """Per station, per hour end, the 1-hour mean of each attribute (computed by the broker)."""
    if not ids:
        return {}
    jctx = Context()
    query = temporal.TemporalQuery(
        entities=context.EntityQuery(ids=list(ids), limit=len(ids)),
        attrs={jctx.expand(term) for term in ATTRIBUTES},
        timerel="between",
        time_at=start,
        end_time_at=end,
        aggr_methods=["avg"],
        aggr_period=HOUR,
    )
    found = temporal.temporal_entities(ctx, SYSTEM, config.tenant, query)
    means: dict[str, dict[datetime, dict[str, float]]] = {}
    for item in found.entities:
        per_hour = means.setdefault(item["id"], {})
        for iri, methods in item.get("aggregates", {}).items():
            for value, _begin, finish in methods.get("avg", []):
                number = _number(value)
                moment = _moment(finish)
                if number is not None and moment is not None:
                    per_hour.setdefault(moment.astimezone(UTC), {})[_term(iri)] = number
    return means


def _station(
    ctx: AppContext, stored: Mapping[str, Any], means: Mapping[datetime, Mapping[str, float]], start: datetime
) -> Station:
    measured = tuple(a for a in ATTRIBUTES if _instance(stored, a) is not None)
    units: dict[str, str] = {}
    latest: dict[str, float] = {}
    latest_at: datetime | None = None
    for term in measured:
        instance = _instance(stored, term) or {}
        if isinstance(instance.get("unitCode"), str):
            units[term] = instance["unitCode"]
        number = _number(instance.get("value"))
        if number is not None:
            latest[term] = number
        observed = _moment(instance.get("observedAt"))
        if observed is not None and (latest_at is None or observed > latest_at):
            latest_at = observed
    geometry = ent.geometry_of(stored, ent.LOCATION)
    lon = lat = None
    if isinstance(geometry, dict) and geometry.get("type") == "Point":
        lon, lat = (float(c) for c in geometry["coordinates"][:2])
    district = geo.district_at(ctx, lon, lat) if lon is not None and lat is not None else None
    # an attribute the station reports but without data in an hour is missing (None) there
    hours = [evaluate(hour, means, measured, units) for hour in sorted(means) if hour > start]
    return Station(
        entity_id=str(stored["id"]),
        name=_text(stored, "stationName") or _text(stored, "name") or str(stored["id"]),
        lon=lon,
        lat=lat,
        district_code=district.code if district else None,
        district_zh=district.name_zh if district else "",
        district_en=district.name_en if district else "",
        measured=measured,
        units=units,
        latest=latest,
        latest_at=latest_at,
        hours=tuple(hours),
        series=dict(means),
    )


def area(code: str, name_zh: str, name_en: str, stations: Iterable[Station], start: datetime) -> Area:
    """The hourly AQI of an area from the mean concentrations of its stations."""
    # The standards notes (§1) do not define a city's concentration (HJ 663 does); this platform takes,
    # for every hour and pollutant, the arithmetic mean of the 1-hour means of the area's stations that
    # have valid data in that hour, and indexes those means as a station's are indexed.
    members = [s for s in stations if s.hours or s.measured]
    measured = tuple(a for a in ATTRIBUTES if any(a in s.measured for s in members))
    units: dict[str, str] = {}
    for station in members:
        for term, unit in station.units.items():
            units.setdefault(term, unit)
    by_hour: dict[datetime, dict[str, list[float]]] = {}
    for station in members:
        for hour, values in station.series.items():
            slot = by_hour.setdefault(hour, {})
            for term, number in values.items():
                if number is not None and term in station.measured:
                    slot.setdefault(term, []).append(number)
    series = {hour: {t: sum(v) / len(v) for t, v in values.items() if v} for hour, values in by_hour.items()}
    hours = [evaluate(hour, series, measured, units) for hour in sorted(series) if hour > start]
    return Area(code, name_zh, name_en, tuple(s.entity_id for s in members), tuple(hours))


def _cache(ctx: AppContext) -> ExpiringCache[tuple[str, datetime], AirQuality, float]:
    """The process's cache of live pictures, kept in the platform context."""
    cache: ExpiringCache[tuple[str, datetime], AirQuality, float] | None = ctx.extensions.get(CACHE)
    if cache is None:
        cache = ctx.extensions.setdefault(CACHE, ExpiringCache(max_entries=64))
    return cache


def air_quality(ctx: AppContext, actor: Actor, now: datetime | None = None) -> AirQuality:
    """Every station, district and the city: hourly AQI over the last complete hours up to `now`."""
    actor.require(READ)
    config = settings(ctx)
    if now is not None or not config.cache_seconds:
        return _picture(ctx, config, now or utcnow())
    cache = _cache(ctx)
    key = (config.tenant, hour_window(utcnow(), config.trend_hours)[1])
    generation, clock = cache.generation, time.monotonic()
    found = cache.get(key, clock)
    if found is None:
        found = _picture(ctx, config, utcnow())
        cache.put(key, found, clock + config.cache_seconds, generation)
    return found


def _picture(ctx: AppContext, config: EnvironmentSettings, now: datetime) -> AirQuality:
    """Compute the picture of the complete hours before `now`."""
    start, end = hour_window(now, config.trend_hours)
    stored = _stations_now(ctx, config)
    means = _hourly_means(ctx, config, _fetch_from(start), end, [s["id"] for s in stored])
    stations = [_station(ctx, s, means.get(s["id"], {}), start) for s in stored]
    stations.sort(key=lambda s: (s.district_code or "~", s.entity_id))
    districts = []
    for district in geo.districts(ctx):
        members = [s for s in stations if s.district_code == district.code]
        if members:
            districts.append(area(district.code, district.name_zh, district.name_en, members, start))
    city = geo.city(ctx)
    return AirQuality(
        start,
        end,
        tuple(stations),
        tuple(districts),
        area(city.code, city.name_zh, city.name_en, stations, start),
    )


def station_entity(ctx: AppContext, entity_id: str) -> dict[str, Any]:
    """The stored entity of a station (404 when it is no station)."""
    config = settings(ctx)
    try:
        stored = context.get_entity(ctx, SYSTEM, config.tenant, entity_id)
    except ProblemError:
        stored = None
    station_type = Context().expand_type(config.station_type)
    if stored is None or station_type not in stored.get("type", ()):
        raise NotFound("No air-quality station has the id {id}.", id=entity_id)
    return stored


def station(ctx: AppContext, actor: Actor, entity_id: str, now: datetime | None = None) -> Station:
    """One station with its hourly AQI over the last complete hours (404 when it is no station)."""
    actor.require(READ)
    config = settings(ctx)
    start, end = hour_window(now or utcnow(), config.trend_hours)
    stored = station_entity(ctx, entity_id)
    means = _hourly_means(ctx, config, _fetch_from(start), end, [entity_id])
    return _station(ctx, stored, means.get(entity_id, {}), start)


def calculate(
    actor: Actor,
    concentrations: Mapping[str, float | None],
    *,
    report: aqi.Report,
    version: aqi.Version | None = None,
    at: datetime | None = None,
    units: Mapping[str, str] | None = None,
) -> aqi.Result:
    """The AQI of given concentrations, by the version named or the one in force at `at` (default: now)."""
    actor.require(READ)
    chosen = version or aqi.version_for(at or utcnow())
    return aqi.compute(concentrations, version=chosen, report=report, units=units)
