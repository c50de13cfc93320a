"""Station, district and city AQI from the broker's live state and history (expected values by hand)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from citybrain.apps.environment import services
from citybrain.core.context import AppContext
from citybrain.core.errors import Forbidden, NotFound, Unauthorized
from citybrain.core.permissions import ANONYMOUS, SYSTEM, Actor
from tests.apps.environment.conftest import CITY_HALL, FULESHAN, GAOXIN, add_station, read, station_id

NOW = datetime(
    2026, 11, 25, 10, 20, tzinfo=UTC
)  # the last complete hour ends at 10:00 UTC (18:00 China time)
H10 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
H09 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
BASE = {"no2": 30, "so2": 8, "o3": 60, "co": 0.6}


@pytest.fixture
def city(ctx: AppContext) -> dict[str, str]:
    """Three stations: two in 涪城区, one (PM only) in 游仙区, with readings around the last two hours."""
    a = add_station(ctx, "aq-a", "市政府", CITY_HALL)
    b = add_station(ctx, "aq-b", "高新区", GAOXIN)
    c = add_station(ctx, "aq-c", "富乐山", FULESHAN)
    t = H10
    read(
        ctx,
        a,
        [
            (t - timedelta(hours=25), {"pm25": 500, **BASE}),  # before the 24 h window
            (t - timedelta(minutes=90), {"pm25": 100, "pm10": 70, **BASE}),  # hour ending 09:00
            (t - timedelta(minutes=50), {"pm25": 40, "pm10": 60, **BASE}),  # hour ending 10:00
            (t - timedelta(minutes=20), {"pm25": 50, "pm10": 80, **BASE}),
            (t + timedelta(minutes=10), {"pm25": 400, "pm10": 400, **BASE}),  # the hour not yet complete
        ],
    )
    read(
        ctx,
        b,
        [(t - timedelta(minutes=30), {"pm25": 85, "pm10": 150, "no2": 50, "so2": 10, "o3": 40, "co": 1.0})],
    )
    read(
        ctx,
        c,
        [
            (t - timedelta(minutes=80), {"pm10": 30}),  # hour ending 09:00: PM2.5 without data
            (t - timedelta(minutes=10), {"pm25": 20, "pm10": 30}),
        ],
    )
    return {"a": a, "b": b, "c": c}


def test_station_hourly_aqi(ctx: AppContext, city: dict[str, str]) -> None:
    picture = services.air_quality(ctx, SYSTEM, NOW)
    assert (picture.start, picture.end) == (H10 - timedelta(hours=24), H10)
    by_id = {s.entity_id: s for s in picture.stations}
    a = by_id[city["a"]]
    assert a.district_code == "510703" and a.name == "市政府"
    assert [h.hour for h in a.hours] == [H09, H10]
    now = a.now
    assert now is not None and now.result is not None
    # hour ending 10:00: PM2.5 (40+50)/2 = 45 → 50 + 10/25 × 50 = 70; PM10 70 → 50 + 20/70 × 50 = 64.3 → 65
    assert now.concentrations["pm25"] == pytest.approx(45)
    iaqi = {i.indicator: i.iaqi for i in now.result.items}
    assert iaqi == {"so2_1h": 3, "no2_1h": 15, "co_1h": 6, "o3_1h": 19, "pm10_1h": 65, "pm25_1h": 70}
    assert now.result.aqi == 70 and now.result.primary == ("PM2.5",) and now.result.version == "2026"
    # hour ending 09:00: PM2.5 100 → 100 + 40/55 × 50 = 136.4 → 137
    first = a.hours[0].result
    assert (
        first is not None
        and first.aqi == 137
        and first.level is not None
        and first.level.category_zh == "轻度污染"
    )
    # the latest reading is the one of the incomplete hour, not averaged
    assert a.latest["pm25"] == 400

    b = by_id[city["b"]].now
    assert b is not None and b.result is not None
    # PM2.5 85 → 100 + 25/55 × 50 = 122.7 → 123
    assert b.result.aqi == 123 and b.result.primary == ("PM2.5",)


def test_station_not_monitored_and_missing(ctx: AppContext, city: dict[str, str]) -> None:
    c = {s.entity_id: s for s in services.air_quality(ctx, SYSTEM, NOW).stations}[city["c"]]
    assert c.district_code == "510704"
    assert c.measured == ("pm10", "pm25")
    earlier, now = c.hours
    assert earlier.result is not None and earlier.result.published == "NA"  # PM2.5 missing, PM10 30 ≤ 100
    assert now.result is not None and now.result.aqi == 30 and now.result.primary == ()
    status = {i.indicator: i.status for i in now.result.items}
    assert status["so2_1h"] == "not_monitored" and status["pm25_1h"] == "ok"


def test_city_and_districts_from_station_means(ctx: AppContext, city: dict[str, str]) -> None:
    picture = services.air_quality(ctx, SYSTEM, NOW)
    now = picture.city.now
    assert picture.city.code == "510700" and now is not None and now.result is not None
    # PM2.5 (45+85+20)/3 = 50 → 80; PM10 (70+150+30)/3 = 83.3 → 83 → 50 + 33/70 × 50 = 73.6 → 74
    assert now.concentrations["pm25"] == pytest.approx(50)
    iaqi = {i.indicator: i.iaqi for i in now.result.items}
    assert iaqi["pm25_1h"] == 80 and iaqi["pm10_1h"] == 74 and iaqi["no2_1h"] == 20
    assert now.result.aqi == 80 and now.result.primary == ("PM2.5",)
    # hour ending 09:00: only 市政府 has PM2.5 (100 → 137); PM10 (70+30)/2 = 50 → 50
    first = picture.city.hours[0]
    assert first.hour == H09 and first.result is not None and first.result.aqi == 137
    districts = {d.code: d for d in picture.districts}
    assert set(districts) == {"510703", "510704"}
    fucheng = districts["510703"].now
    # PM2.5 (45+85)/2 = 65 → 100 + 5/55 × 50 = 104.5 → 105
    assert fucheng is not None and fucheng.result is not None and fucheng.result.aqi == 105
    assert districts["510704"].stations == (city["c"],)


def test_one_station_and_unknown_ids(ctx: AppContext, city: dict[str, str]) -> None:
    station = services.station(ctx, SYSTEM, city["a"], NOW)
    assert [h.result.aqi for h in station.hours if h.result] == [137, 70]
    with pytest.raises(NotFound):
        services.station(ctx, SYSTEM, station_id("nowhere"), NOW)
    add_other = "urn:ngsi-ld:Streetlight:sl-1"
    from citybrain.apps.context import services as context

    context.upsert_entities(ctx, SYSTEM, "", [{"id": add_other, "type": "Streetlight"}])
    with pytest.raises(NotFound):
        services.station(ctx, SYSTEM, add_other, NOW)


def test_version_switches_at_midnight_china_time(ctx: AppContext) -> None:
    a = add_station(ctx, "aq-v", "市政府", CITY_HALL)
    first = datetime(2026, 2, 27, 16, 30, tzinfo=UTC)
    # 24 hourly readings up to 2026-02-28 15:30 UTC (the hour ending 2026-03-01 00:00 China time, still
    # HJ 633—2012): PM2.5 alternates 70 and 80, PM10 60, O3 100; then one at 16:30 UTC under HJ 633—2026.
    readings = [
        (first + timedelta(hours=i), {"pm25": 70 if i % 2 == 0 else 80, "pm10": 60, **BASE, "o3": 100})
        for i in range(24)
    ]
    readings.append((datetime(2026, 2, 28, 16, 30, tzinfo=UTC), {"pm25": 75, "pm10": 60, **BASE, "o3": 100}))
    read(ctx, a, readings)
    station = services.station(ctx, SYSTEM, a, datetime(2026, 2, 28, 17, 5, tzinfo=UTC))
    assert len(station.hours) == 24  # hours ending 2026-02-27 18:00 … 2026-02-28 17:00 UTC
    *old, new = station.hours
    assert {h.result.version for h in old if h.result} == {"2012"} and len(old) == 23
    assert new.result is not None and new.result.version == "2026"
    # 2026 real-time: PM2.5 1 h 75 → 100 + 15/55 × 50 = 113.6 → 114
    assert new.result.aqi == 114 and new.result.primary == ("PM2.5",)
    # 2012 real-time: PM by its 24 h sliding mean, valid from 20 hours on (the hour ending 2026-02-28
    # 12:00 UTC holds 20): (10 × 70 + 10 × 80) / 20 = 75 → 100; before, PM has no valid mean and the
    # rest (O3 8 h 100 → 50) is ≤ 100 → NA
    published = [h.result.published for h in old if h.result]
    assert published == ["NA"] * 18 + ["100"] * 5
    last = old[-1].result
    assert last is not None and last.primary == ("PM2.5",)
    iaqi = {i.indicator: i.iaqi for i in last.items}
    # PM10 24 h 60 → 50 + 10/100 × 50 = 55 (2012 node 150); O3 1 h 100 → 31.25 → 32; O3 8 h 100 → 50
    assert iaqi["pm10_24h"] == 55 and iaqi["o3_1h"] == 32 and iaqi["o3_8h"] == 50 and iaqi["pm25_24h"] == 100


def test_permission_is_checked(ctx: AppContext, city: dict[str, str]) -> None:
    with pytest.raises(Unauthorized):
        services.air_quality(ctx, ANONYMOUS, NOW)
    nobody = Actor(kind="user", id=99, username="x")
    with pytest.raises(Forbidden):
        services.air_quality(ctx, nobody, NOW)
    with pytest.raises(Forbidden):
        services.station(ctx, nobody, city["a"], NOW)
    reader = Actor(kind="user", id=98, username="y", grants={"environment.air.read": frozenset({1})})
    assert services.air_quality(ctx, reader, NOW).city.now is not None


def test_live_picture_is_reused_for_a_while(ctx: AppContext) -> None:
    a = add_station(ctx, "aq-live", "市政府", CITY_HALL)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    read(ctx, a, [(end - timedelta(minutes=30), {"pm25": 40, "pm10": 60, **BASE})])
    first = services.air_quality(ctx, SYSTEM)
    read(ctx, a, [(end - timedelta(minutes=20), {"pm25": 120, "pm10": 60, **BASE})], fresh=False)
    assert services.air_quality(ctx, SYSTEM) is first  # within cache_seconds
    services._cache(ctx).clear()
    fresh = services.air_quality(ctx, SYSTEM)
    assert fresh is not first and fresh.city.now is not None
    # PM2.5 (40+120)/2 = 80 → 100 + 20/55 × 50 = 118.2 → 119
    assert fresh.city.now.result is not None and fresh.city.now.result.aqi == 119
    with pytest.raises(Unauthorized):  # the permission is checked before the cache is read
        services.air_quality(ctx, ANONYMOUS)
