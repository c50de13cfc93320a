"""Vital signs the environment app declares: the AQI now, the primary pollutant and the good-days ratio.

The AQI and the primary pollutant are those of the latest complete hour (HJ 633 real-time report),
read from the air-quality picture the pages show. The good-days ratio is the share of the last 30
complete days whose daily AQI (HJ 633 daily report) is at most 100 (优良, levels 1 and 2; standards
notes §1.4), among the days with a valid daily AQI.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from citybrain.apps.environment import aqi, services
from citybrain.apps.geo import services as geo
from citybrain.sdk import SYSTEM, AppContext

HOUR = timedelta(hours=1)
GOOD_DAYS_WINDOW = 30
GOOD_AQI = 100  # HJ 633 表1: levels 1 (优) and 2 (良) end at 100
# GB 3095 data validity (standards notes §1.3): a 24-hour mean needs 20 hourly values, an 8-hour mean 6,
# the daily maximum 8-hour mean 14 valid 8-hour means.
DAY_HOURS_NEEDED, EIGHT_HOURS_NEEDED, EIGHT_HOUR_MEANS_NEEDED = 20, 6, 14
DAILY_MEANS = {
    "so2": aqi.SO2_24H,
    "no2": aqi.NO2_24H,
    "co": aqi.CO_24H,
    "pm10": aqi.PM10_24H,
    "pm25": aqi.PM25_24H,
}
DAYS = "environment.indicators.days"


def aqi_now(ctx: AppContext, start: datetime, end: datetime) -> Mapping[str, float | None]:
    """The AQI of the latest complete hour of the city and each district with a station."""
    picture = services.air_quality(ctx, SYSTEM)
    found: dict[str, float | None] = {}
    for area in (picture.city, *picture.districts):
        now = area.now
        found[area.code] = None if now is None or now.result is None else now.result.aqi
    return found


def primary_now(ctx: AppContext, start: datetime, end: datetime) -> Mapping[str, str | None]:
    """The primary pollutant(s) of the latest complete hour ("—" when the AQI is 50 or less, HJ 633 §4.3.1)."""
    picture = services.air_quality(ctx, SYSTEM)
    found: dict[str, str | None] = {}
    for area in (picture.city, *picture.districts):
        now = area.now
        if now is None or now.result is None or now.result.aqi is None:
            found[area.code] = None
        else:
            found[area.code] = "、".join(now.result.primary) or "—"
    return found


def _mean(values: Sequence[float], needed: int) -> float | None:
    return sum(values) / len(values) if len(values) >= needed else None


def daily_aqi(hours: Mapping[datetime, Mapping[str, float]], day_end: datetime) -> int | None:
    """The daily AQI of the day ending at `day_end` from the hourly means (keyed by hour end), or None."""
    ends = [day_end - HOUR * i for i in range(23, -1, -1)]  # the day's 24 hour ends, oldest first
    concentrations: dict[str, float | None] = {}
    for term, indicator in DAILY_MEANS.items():
        concentrations[indicator] = _mean(
            [hours[h][term] for h in ends if term in hours.get(h, {})], DAY_HOURS_NEEDED
        )
    eights: list[float] = []
    for i in range(7, 24):  # 8-hour means ending at the day's 8th … 24th hour
        window = [hours[h]["o3"] for h in ends[i - 7 : i + 1] if "o3" in hours.get(h, {})]
        mean = _mean(window, EIGHT_HOURS_NEEDED)
        if mean is not None:
            eights.append(mean)
    concentrations[aqi.O3_8H] = max(eights) if len(eights) >= EIGHT_HOUR_MEANS_NEEDED else None
    version = aqi.version_for(day_end - HOUR)
    if version == "2012":
        ones = [hours[h]["o3"] for h in ends if "o3" in hours.get(h, {})]
        concentrations[aqi.O3_1H] = max(ones) if len(ones) >= DAY_HOURS_NEEDED else None
    if all(v is None for v in concentrations.values()):
        return None
    return aqi.compute(concentrations, version=version, report="daily").aqi


def _station_hours(
    ctx: AppContext, start: datetime, end: datetime
) -> tuple[dict[str, dict[datetime, dict[str, float]]], dict[str, str | None]]:
    """Each station's hourly means in [start, end) and its district."""
    config = services.settings(ctx)
    stored = services._stations_now(ctx, config)
    means = services._hourly_means(ctx, config, start, end, [s["id"] for s in stored])
    districts: dict[str, str | None] = {}
    for s in stored:
        station = services._station(ctx, s, {}, start)
        districts[station.entity_id] = station.district_code
    return means, districts


def _area_hours(
    means: Mapping[str, Mapping[datetime, Mapping[str, float]]], members: Sequence[str]
) -> dict[datetime, dict[str, float]]:
    """The mean over stations of each hour's means."""
    pooled: dict[datetime, dict[str, list[float]]] = {}
    for station in members:
        for hour, values in means.get(station, {}).items():
            slot = pooled.setdefault(hour, {})
            for term, value in values.items():
                slot.setdefault(term, []).append(value)
    return {h: {t: sum(v) / len(v) for t, v in terms.items()} for h, terms in pooled.items()}


def good_days(ctx: AppContext, start: datetime, end: datetime) -> Mapping[str, float | None]:
    """The share (%) of good days among the valid days of the last 30 complete days (China's days)."""
    zone = ZoneInfo(ctx.settings.timezone)
    today = end.astimezone(zone).date()
    days = [today - timedelta(days=n) for n in range(GOOD_DAYS_WINDOW, 0, -1)]
    cache: dict[date, dict[str, int | None]] = ctx.extensions.setdefault(DAYS, {})
    lock: threading.Lock = ctx.extensions.setdefault(DAYS + ".lock", threading.Lock())

    def day_end(day: date) -> datetime:
        return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC) + timedelta(days=1)

    with lock:
        missing = [d for d in days if d not in cache]
        if missing:
            means, districts = _station_hours(
                ctx, day_end(missing[0]) - timedelta(days=1), day_end(missing[-1])
            )
            groups = {geo.city(ctx).code: list(districts)}
            for district in geo.districts(ctx):
                groups[district.code] = [s for s, d in districts.items() if d == district.code]
            pooled = {code: _area_hours(means, members) for code, members in groups.items() if members}
            for day in missing:
                cache[day] = {code: daily_aqi(hours, day_end(day)) for code, hours in pooled.items()}
        for stale in [d for d in cache if d < days[0]]:
            del cache[stale]
        found: dict[str, float | None] = {}
        for code in {c for d in days for c in cache[d]}:
            valid = [cache[d][code] for d in days if cache[d].get(code) is not None]
            found[code] = (
                round(100.0 * sum(1 for v in valid if v is not None and v <= GOOD_AQI) / len(valid), 1)
                if valid
                else None
            )
    return found


INDICATORS = [
    {
        "code": "environment.aqi",
        "name_zh": "空气质量指数",
        "name_en": "Air quality index",
        "unit": "",
        "decimals": 0,
        "period": "hourly",
        "by_district": True,
        "source": "attribute_history",
        # HJ 633 表1: from 101 the air is lightly polluted (轻度污染), from 151 moderately (中度污染)
        "thresholds": {"direction": "higher_is_worse", "warn": 101, "bad": 151},
        "department": "sthj",
        "description_zh": "按 HJ 633 实时报由各国控站小时均值计算的最近一个完整小时的空气质量指数。",
        "description_en": "The AQI of the latest complete hour by the HJ 633 real-time report, from the "
        "stations' hourly means.",
        "compute": aqi_now,
    },
    {
        "code": "environment.primary_pollutant",
        "name_zh": "首要污染物",
        "name_en": "Primary pollutant",
        "kind": "text",
        "period": "hourly",
        "by_district": True,
        "source": "attribute_history",
        "department": "sthj",
        "description_zh": "最近一个完整小时空气质量分指数最大的污染物（AQI 不大于 50 时无首要污染物，记为“—”）。",
        "description_en": "The pollutant with the highest sub-index in the latest complete hour (none, "
        "shown as “—”, while the AQI is 50 or less).",
        "compute": primary_now,
    },
    {
        "code": "environment.good_days_ratio",
        "name_zh": "优良天数比例",
        "name_en": "Good air days",
        "unit": "%",
        "decimals": 1,
        "period": "daily",
        "by_district": True,
        "source": "attribute_history",
        # a local operating target, not a national limit
        "thresholds": {"direction": "lower_is_worse", "warn": 85.0, "bad": 75.0},
        "department": "sthj",
        "description_zh": "近 30 个完整日中日空气质量指数不大于 100（优、良）的天数占有效天数的比例。",
        "description_en": "Of the last 30 complete days with a valid daily AQI, the share whose AQI was 100 "
        "or less (good or moderate).",
        "compute": good_days,
    },
]
