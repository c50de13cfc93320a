"""GB/T 33171-2016 indicators: hand-computed vectors, grade boundaries, 附录C breakpoints, properties."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from citybrain.apps.traffic import tpi

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_travel_time_is_length_over_speed() -> None:
    # 1000 m at 36 km/h = 10 m/s → 100 s
    assert tpi.travel_time_s(1000, 36) == pytest.approx(100.0)
    assert tpi.travel_time_s(1500, 54) == pytest.approx(100.0)


@pytest.mark.parametrize(
    ("length", "speed"),
    [(-1, 30), (0, 30), (100, 0), (100, -5), (100, math.nan), (math.nan, 30), (100, math.inf), (True, 30)],
)
def test_bad_speeds_and_lengths_are_refused(length: float, speed: float) -> None:
    with pytest.raises(tpi.InvalidInput):
        tpi.travel_time_s(length, speed)
    with pytest.raises(tpi.InvalidInput):
        tpi.evaluate_segment(length, speed, 50)


def test_bad_free_flow_and_flow_are_refused() -> None:
    with pytest.raises(tpi.InvalidInput):
        tpi.evaluate_segment(100, 30, 0)
    with pytest.raises(tpi.InvalidInput):
        tpi.evaluate_segment(100, 30, 50, flow_vph=-1)
    with pytest.raises(tpi.InvalidInput):
        tpi.evaluate_segment(100, 30, 50, flow_vph=math.nan)
    with pytest.raises(tpi.InvalidInput):
        tpi.space_mean_speed([])
    with pytest.raises(tpi.InvalidInput):
        tpi.tpi_from_dtp(1.01)
    with pytest.raises(tpi.InvalidInput):
        tpi.tpi_from_dtp(math.nan)
    with pytest.raises(tpi.InvalidInput):
        tpi.network_grade(10.5)
    with pytest.raises(tpi.InvalidInput):
        tpi.aggregate([])


def test_space_mean_speed_is_total_length_over_total_time() -> None:
    # two equal halves of 1 km at 60 and 20 km/h: 2 km in (1/60 + 1/20) h = 1/15 h → 30 km/h
    assert tpi.space_mean_speed([60, 20]) == pytest.approx(30.0)
    with pytest.raises(tpi.InvalidInput):
        tpi.space_mean_speed([60, 0])


def test_tti_and_dtp_by_the_formulas() -> None:
    # §7.2.2.1/§7.2.2.2 with t̄ = 150 s and t_f = 100 s
    assert tpi.tti(150, 100) == pytest.approx(150 / 100)
    assert tpi.dtp(150, 100) == pytest.approx((150 - 100) / 150)
    # t̄ < t_f: TTI = 1 and DTP = 0
    assert tpi.tti(80, 100) == 1.0
    assert tpi.dtp(80, 100) == 0.0
    assert tpi.tti(100, 100) == 1.0
    assert tpi.dtp(100, 100) == 0.0


def test_a_segment_evaluated_by_hand() -> None:
    # 1.2 km, free flow 60 km/h (72 s), now 24 km/h (180 s)
    seg = tpi.evaluate_segment(1200, 24, 60, flow_vph=900)
    assert seg.travel_s == pytest.approx(1200 / (24 / 3.6))
    assert seg.free_flow_s == pytest.approx(1200 / (60 / 3.6))
    assert seg.tti == pytest.approx(180 / 72)
    assert seg.dtp == pytest.approx((180 - 72) / 180)
    assert seg.grade.name_zh == "中度拥堵"  # 24/60 = 40 % → 30 % < V ≤ 40 %
    assert seg.vkt == pytest.approx(900 * 1.2)


@pytest.mark.parametrize(
    ("speed", "expected"),
    [
        (50.0, "畅通"),
        (35.01, "畅通"),
        (35.0, "基本畅通"),  # V = 70 % Vf is 基本畅通 (50 % < V ≤ 70 %)
        (25.01, "基本畅通"),
        (25.0, "轻度拥堵"),  # V = 50 %
        (20.01, "轻度拥堵"),
        (20.0, "中度拥堵"),  # V = 40 %
        (15.01, "中度拥堵"),
        (15.0, "严重拥堵"),  # V = 30 %
        (3.0, "严重拥堵"),
        (80.0, "畅通"),  # faster than free flow
    ],
)
def test_segment_grade_boundaries(speed: float, expected: str) -> None:
    # §8.1 表2 with Vf = 50 km/h: the bounds are 35, 25, 20 and 15 km/h
    assert tpi.segment_grade(speed, 50.0).name_zh == expected


def _appendix_c(dtp: float) -> float:
    """附录C written out bin by bin, with linear interpolation inside a bin."""
    if dtp < 0.3:
        return 0 + (dtp - 0) / 0.3 * 2
    if dtp < 0.5:
        return 2 + (dtp - 0.3) / 0.2 * 2
    if dtp < 0.6:
        return 4 + (dtp - 0.5) / 0.1 * 2
    if dtp < 0.7:
        return 6 + (dtp - 0.6) / 0.1 * 2
    return 8 + (dtp - 0.7) / 0.3 * 2


@pytest.mark.parametrize(
    ("dtp", "expected_tpi", "grade"),
    [
        (0.0, 0.0, "畅通"),
        (0.15, 1.0, "畅通"),
        (0.299, 0.299 / 0.3 * 2, "畅通"),
        (0.3, 2.0, "基本畅通"),
        (0.301, 2 + 0.001 / 0.2 * 2, "基本畅通"),
        (0.4, 3.0, "基本畅通"),
        (0.499, 2 + 0.199 / 0.2 * 2, "基本畅通"),
        (0.5, 4.0, "轻度拥堵"),
        (0.55, 5.0, "轻度拥堵"),
        (0.599, 4 + 0.099 / 0.1 * 2, "轻度拥堵"),
        (0.6, 6.0, "中度拥堵"),
        (0.65, 7.0, "中度拥堵"),
        (0.699, 6 + 0.099 / 0.1 * 2, "中度拥堵"),
        (0.7, 8.0, "严重拥堵"),
        (0.85, 9.0, "严重拥堵"),
        (1.0, 10.0, "严重拥堵"),
    ],
)
def test_dtp_to_tpi_at_and_around_each_breakpoint(dtp: float, expected_tpi: float, grade: str) -> None:
    value = tpi.tpi_from_dtp(dtp)
    assert value == pytest.approx(expected_tpi, abs=1e-9)
    assert value == pytest.approx(_appendix_c(dtp), abs=1e-9)
    assert tpi.network_grade(value).name_zh == grade


@pytest.mark.parametrize(
    ("value", "grade"),
    [
        (0, "畅通"),
        (1.99, "畅通"),
        (2, "基本畅通"),
        (3.99, "基本畅通"),
        (4, "轻度拥堵"),
        (5.99, "轻度拥堵"),
        (6, "中度拥堵"),
        (7.99, "中度拥堵"),
        (8, "严重拥堵"),
        (10, "严重拥堵"),
    ],
)
def test_network_grade_by_table_3(value: float, grade: str) -> None:
    assert tpi.network_grade(value).name_zh == grade


def test_network_aggregate_by_vkt_and_by_length() -> None:
    # A: 1 km, 60 → 30 km/h, DTP 0.5, 1000 veh/h; B: 2 km, 50 → 50 km/h, DTP 0, 250 veh/h
    a = tpi.evaluate_segment(1000, 30, 60, flow_vph=1000)
    b = tpi.evaluate_segment(2000, 50, 50, flow_vph=250)
    assert a.dtp == pytest.approx(0.5)
    assert b.dtp == 0.0
    by_vkt = tpi.aggregate([a, b], "vkt")
    # VKT weights 1000 and 500: DTP = 0.5 × 1000 / 1500 = 1/3
    assert by_vkt.weighting == "vkt"
    assert by_vkt.dtp == pytest.approx(1 / 3)
    assert by_vkt.tpi == pytest.approx(2 + (1 / 3 - 0.3) / 0.2 * 2)
    assert by_vkt.tti == pytest.approx((2.0 * 1000 + 1.0 * 500) / 1500)
    assert by_vkt.grade.name_zh == "基本畅通"
    by_length = tpi.aggregate([a, b], "length")
    # length weights 1 and 2: DTP = 0.5 / 3
    assert by_length.weighting == "length"
    assert by_length.dtp == pytest.approx(0.5 / 3)
    assert by_length.tpi == pytest.approx(0.5 / 3 / 0.3 * 2)
    assert by_length.grade.name_zh == "畅通"
    # §7.2.2.3: A (1 km) is 轻度拥堵 (V = 50 %), B (2 km) 畅通
    assert by_length.mileage_ratios == pytest.approx({1: 2 / 3, 2: 0, 3: 1 / 3, 4: 0, 5: 0})
    assert by_length.length_m == 3000


def test_vkt_weighting_falls_back_to_length_without_flows() -> None:
    a = tpi.evaluate_segment(1000, 30, 60, flow_vph=None)
    b = tpi.evaluate_segment(2000, 50, 50, flow_vph=250)
    assert tpi.aggregate([a, b], "vkt").weighting == "length"


def test_split_count_by_class() -> None:
    # §5.2–5.5: re-split at 3 km (expressway) and 1.5 km (others)
    assert tpi.split_count(1499, "arterial") == 1
    assert tpi.split_count(1500, "arterial") == 2
    assert tpi.split_count(3100, "secondary") == 3
    assert tpi.split_count(2999, "expressway") == 1
    assert tpi.split_count(3000, "expressway") == 2
    with pytest.raises(tpi.InvalidInput):
        tpi.split_count(0, "arterial")


def _history(days: int, speed_at: dict[int, float], default: float) -> list[tuple[datetime, float]]:
    """15-minute interval means over `days` days (local time), by slot of the day."""
    start = datetime(2026, 10, 1, tzinfo=SHANGHAI)
    out = []
    for day in range(days):
        for slot in range(96):
            moment = start + timedelta(days=day, minutes=15 * slot)
            out.append((moment.astimezone(UTC), speed_at.get(slot, default)))
    return out


def test_free_flow_is_the_mean_of_the_top_ninth_of_the_daytime_intervals() -> None:
    # 06:00–24:00 is 72 slots (24..95); the top 1/9 is 8 slots. Night slots (fast) must be ignored.
    fast = {slot: 80.0 for slot in range(0, 24)}  # 00:00–06:00: ignored
    fast.update({24 + i: 50.0 + i for i in range(8)})  # eight slots at 50..57 km/h
    found = tpi.free_flow_speed(_history(30, fast, 30.0), 70, zone=SHANGHAI)
    assert found.source == "history"
    assert found.days == 30
    assert found.speed_kmh == pytest.approx(sum(50.0 + i for i in range(8)) / 8)


def test_free_flow_is_capped_by_the_speed_limit() -> None:
    found = tpi.free_flow_speed(_history(31, {}, 66.0), 60, zone=SHANGHAI)
    assert found == tpi.FreeFlow(60.0, "history", 31)


def test_free_flow_falls_back_to_the_speed_limit_with_less_than_30_days() -> None:
    found = tpi.free_flow_speed(_history(29, {}, 40.0), 60, zone=SHANGHAI)
    assert found == tpi.FreeFlow(60.0, "speed_limit", 29)


def test_free_flow_refuses_bad_history() -> None:
    with pytest.raises(tpi.InvalidInput):
        tpi.free_flow_speed([(datetime(2026, 1, 1, 8, tzinfo=UTC), -3.0)], 60, zone=SHANGHAI)
    with pytest.raises(tpi.InvalidInput):
        tpi.free_flow_speed([(datetime(2026, 1, 1, 8), 30.0)], 60, zone=SHANGHAI)
    with pytest.raises(tpi.InvalidInput):
        tpi.free_flow_speed([], 60, zone=SHANGHAI, interval=timedelta(minutes=20))


dtps = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


@given(dtps, dtps)
def test_tpi_is_monotonic_in_delay_and_within_0_to_10(a: float, b: float) -> None:
    low, high = sorted((a, b))
    assert 0.0 <= tpi.tpi_from_dtp(low) <= tpi.tpi_from_dtp(high) <= 10.0


@given(
    st.floats(min_value=1, max_value=50_000),
    st.floats(min_value=1, max_value=150),
    st.floats(min_value=1, max_value=150),
    st.floats(min_value=1, max_value=150),
)
def test_slower_never_lowers_the_index(length: float, free: float, v1: float, v2: float) -> None:
    slow, fast = sorted((v1, v2))
    a = tpi.aggregate([tpi.evaluate_segment(length, fast, free)], "length")
    b = tpi.aggregate([tpi.evaluate_segment(length, slow, free)], "length")
    assert 0.0 <= a.tpi <= b.tpi <= 10.0
    assert a.grade.level <= b.grade.level
    assert tpi.evaluate_segment(length, slow, free).tti >= 1.0
