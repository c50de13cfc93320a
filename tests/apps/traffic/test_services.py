"""Traffic services on the real platform: segments, current speeds, free-flow learning, the recorded index."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from citybrain.apps.geo import services as geo
from citybrain.apps.traffic import services, tpi
from citybrain.apps.traffic.models import IndexRecord
from citybrain.core.context import AppContext
from citybrain.core.permissions import SYSTEM
from citybrain.sdk import BadRequest, NotFound
from tests.apps.traffic.conftest import add_detector, read, segment

FUCHENG, YOUXIAN = "510703", "510704"
NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)  # 10:00 China time


def test_segments_follow_the_split_rules_and_carry_districts(started: AppContext) -> None:
    found = services.segments(started)
    roads = {r.id: r for r in geo.roads(started)}
    assert len({s.id for s in found}) == len(found)
    for seg in found:
        # §5.2–5.5: shorter than 3 km (expressways) or 1.5 km (other roads)
        assert seg.length_m < tpi.max_segment_m(seg.road_class)
        assert seg.district_code is not None
    for road_id, road in roads.items():
        parts = [s for s in found if s.road_id == road_id]
        assert len(parts) == tpi.split_count(road.meters, road.road_class)
        assert sum(s.length_m for s in parts) == pytest.approx(road.meters, rel=1e-3)
    assert any(s.parts > 1 for s in found)


def test_the_current_picture_from_detector_readings(started: AppContext) -> None:
    seg = segment(started, "jiuzhou-2")
    assert seg.speed_limit_kmh == 60 and seg.district_code == FUCHENG
    a = add_detector(started, "jz-a", seg, 0.3)
    b = add_detector(started, "jz-b", seg, 0.7)
    read(started, a, [(NOW - timedelta(minutes=1), 60.0, 1200.0)])
    read(started, b, [(NOW - timedelta(minutes=2), 20.0, 800.0)])
    other = segment(started, "dongjin-4")
    assert other.district_code == YOUXIAN
    c = add_detector(started, "dj", other)
    read(started, c, [(NOW - timedelta(minutes=20), 10.0, 500.0)])  # stale: not a current speed
    picture = services.picture(started, SYSTEM, NOW)
    states = {s.segment.id: s for s in picture.segments}
    state = states["jiuzhou-2"]
    assert state.detectors == 2
    assert state.index is not None
    # V = ΣL/Σt of two equal halves at 60 and 20 km/h = 30 km/h; free flow = the 60 km/h limit (no history)
    assert state.index.speed_kmh == pytest.approx(30.0)
    assert state.free_flow_source == "speed_limit"
    assert state.index.tti == pytest.approx(2.0)
    assert state.index.dtp == pytest.approx(0.5)
    assert state.index.grade.name_zh == "轻度拥堵"
    assert states["dongjin-4"].index is None
    # one covered segment: the city's DTP is its DTP, TPI 4.0 by 附录C
    assert picture.city.covered == 1
    assert picture.city.index is not None
    assert picture.city.index.tpi == pytest.approx(4.0)
    assert picture.city.index.grade.name_zh == "轻度拥堵"
    assert [d.code for d in picture.districts if d.index is not None] == [FUCHENG]
    youxian = next(d for d in picture.districts if d.code == YOUXIAN)
    assert youxian.index is None and youxian.segments > 0


def _history(ctx: AppContext, entity_id: str, days: int, fast: float, slow: float) -> None:
    """15-minute readings over `days` days up to NOW: `fast` km/h in 8 daytime slots, `slow` otherwise."""
    zone = ZoneInfo("Asia/Shanghai")
    end = NOW.astimezone(zone).replace(hour=0, minute=0)
    start = end - timedelta(days=days)
    rows = []
    moment = start
    while moment < end:
        slot = moment.hour * 4 + moment.minute // 15
        speed = fast if 40 <= slot < 48 else slow  # 10:00–12:00 runs fastest
        rows.append((moment.astimezone(UTC) + timedelta(minutes=7), speed, 300.0))
        moment += timedelta(minutes=15)
    read(ctx, entity_id, rows)


def test_free_flow_is_learned_from_30_days_and_stored(started: AppContext) -> None:
    learned_on = segment(started, "jiuzhou-3")
    short_on = segment(started, "feiyun-2")
    a = add_detector(started, "jz3", learned_on)
    b = add_detector(started, "fy2", short_on)
    _history(started, a, 31, 52.0, 30.0)
    _history(started, b, 10, 52.0, 30.0)
    learned = services.learn_free_flow(started, NOW)
    # 72 daytime slots, the top 1/9 = 8 slots at 52 km/h → 52 km/h (under the 60 km/h limit)
    assert learned["jiuzhou-3"] == tpi.FreeFlow(pytest.approx(52.0), "history", 31)  # type: ignore[arg-type]
    assert learned["feiyun-2"].source == "speed_limit"
    assert learned["feiyun-2"].speed_kmh == short_on.speed_limit_kmh
    stored = services.free_flow_speeds(started)
    assert stored["jiuzhou-3"][0] == pytest.approx(52.0)
    assert stored["jiuzhou-3"][1:] == ("history", 31)
    # the learned speed is what the segment is measured against now: 26 km/h is 50 % of 52
    read(started, a, [(NOW - timedelta(seconds=30), 26.0, 300.0)])
    state = next(s for s in services.segment_states(started, NOW) if s.segment.id == "jiuzhou-3")
    assert state.index is not None
    assert state.index.dtp == pytest.approx(0.5)
    assert state.index.grade.name_zh == "轻度拥堵"


def test_record_writes_one_row_per_area_and_interval(started: AppContext) -> None:
    fucheng = add_detector(started, "f", segment(started, "jiuzhou-1"))
    youxian = add_detector(started, "y", segment(started, "dongjin-4"))
    read(started, fucheng, [(NOW - timedelta(minutes=1), 18.0, 900.0)])  # 30 % of 60: DTP 0.7
    read(started, youxian, [(NOW - timedelta(minutes=1), 50.0, 300.0)])  # free flow: DTP 0
    assert services.record(started, NOW) == 3  # the city and two districts
    assert services.record(started, NOW + timedelta(minutes=1)) == 3  # same interval: replaced
    with started.read() as session:
        count = session.scalar(select(func.count()).select_from(IndexRecord).where(IndexRecord.at == NOW))
    assert count == 3
    points = services.history(started, SYSTEM, FUCHENG, NOW - timedelta(hours=1), NOW + timedelta(hours=1))
    assert len(points) == 1
    assert points[0].at == NOW
    assert points[0].tpi == pytest.approx(8.0)
    assert points[0].grade.name_zh == "严重拥堵"
    city = services.history(
        started, SYSTEM, services.CITY_CODE, NOW - timedelta(hours=1), NOW + timedelta(hours=1)
    )
    # VKT weights: 900 × L1 and 300 × L2
    l1, l2 = segment(started, "jiuzhou-1").length_m, segment(started, "dongjin-4").length_m
    dtp = 0.7 * 900 * l1 / (900 * l1 + 300 * l2)
    assert city[0].dtp == pytest.approx(dtp)
    assert city[0].tpi == pytest.approx(tpi.tpi_from_dtp(dtp))
    # the geo app's road graph now drives jiuzhou at the measured speed
    assert geo.road_speeds(started)["jiuzhou"] == pytest.approx(18.0)
    assert services.purge(started, NOW + timedelta(days=1000)) == 3


def test_history_refuses_bad_areas_and_windows(started: AppContext) -> None:
    with pytest.raises(NotFound):
        services.history(started, SYSTEM, "999999", NOW - timedelta(hours=1), NOW)
    with pytest.raises(BadRequest):
        services.history(started, SYSTEM, FUCHENG, NOW, NOW)
    with pytest.raises(BadRequest):
        services.history(started, SYSTEM, FUCHENG, NOW - timedelta(days=32), NOW)
    with pytest.raises(BadRequest):
        services.history(started, SYSTEM, FUCHENG, datetime(2026, 11, 1), datetime(2026, 11, 2))


def test_without_detectors_nothing_is_recorded_or_learned(started: AppContext) -> None:
    assert services.learn_free_flow(started, NOW) == {}
    assert services.record(started, NOW) == 0
    picture = services.picture(started, SYSTEM, NOW)
    assert picture.city.index is None
    assert picture.city.covered == 0
    assert picture.city.segments == len(services.segments(started))
    # every segment is measured against its speed limit until history says otherwise
    assert {s.free_flow_source for s in picture.segments} == {"speed_limit"}


def test_the_past_index_comes_from_the_detectors_history(started: AppContext) -> None:
    """A past moment's index from the interval means of the history; the day's trend is backfilled once."""
    from citybrain.apps.traffic.indicators import tpi_now

    seg = segment(started, "jiuzhou-1")
    a = add_detector(started, "past-a", seg)
    hour = NOW - timedelta(hours=3)
    # two readings in 09:55–10:00 of three hours ago (mean 18 km/h: 30 % of 60, DTP 0.7); later: free flow
    read(started, a, [(hour - timedelta(minutes=4), 16.0, 900.0), (hour - timedelta(minutes=2), 20.0, 900.0)])
    read(started, a, [(NOW - timedelta(minutes=1), 60.0, 300.0)])
    picture = services.evaluate_past(started, hour)
    assert picture.city.index is not None and picture.city.index.dtp == pytest.approx(0.7)
    assert services.is_past(started, hour)
    assert tpi_now(started, hour - timedelta(minutes=5), hour)[services.CITY_CODE] == pytest.approx(8.0)
    empty = tpi_now(started, hour - timedelta(hours=2), hour - timedelta(hours=1))
    assert empty[services.CITY_CODE] is None  # no reading in that interval
    # the trend of the last hours: one row per area for each interval with readings, kept when run again
    rows = services.backfill_records(started, 6, NOW)
    assert rows == 4  # 09:55 of three hours ago and 09:55 now, each the city and 涪城区
    assert services.backfill_records(started, 6, NOW) == 0
    points = services.history(started, SYSTEM, FUCHENG, NOW - timedelta(hours=6), NOW)
    assert [p.at for p in points] == [hour - timedelta(minutes=5), NOW - timedelta(minutes=5)]
    assert points[0].tpi == pytest.approx(8.0) and points[1].tpi == pytest.approx(0.0)
