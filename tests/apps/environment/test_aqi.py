"""HJ 633 AQI: every breakpoint of both versions, the special SO2/O3 cases, rounding, missing data, ties, levels.

Expected values come from the table and 式(1) written out here, never from the code under test.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from citybrain.apps.environment import aqi

# HJ 633—2026 表3, transcribed column by column (IAQI 0, 50, 100, 150, 200, 300, 400, 500).
IAQI = (0, 50, 100, 150, 200, 300, 400, 500)
TABLE_2026 = {
    "so2_24h": (0, 50, 150, 475, 800, 1600, 2100, 2620),
    "so2_1h": (0, 150, 500, 650, 800),
    "no2_24h": (0, 40, 80, 180, 280, 565, 750, 940),
    "no2_1h": (0, 100, 200, 700, 1200, 2340, 3090, 3840),
    "co_24h": (0, 2, 4, 14, 24, 36, 48, 60),
    "co_1h": (0, 5, 10, 35, 60, 90, 120, 150),
    "o3_8h": (0, 100, 160, 215, 265, 800),
    "o3_1h": (0, 160, 200, 300, 400, 800, 1000, 1200),
    "pm10_24h": (0, 50, 120, 250, 350, 420, 500, 600),
    "pm25_24h": (0, 35, 60, 115, 150, 250, 350, 500),
}
TABLE_2026["pm10_1h"] = TABLE_2026["pm10_24h"]
TABLE_2026["pm25_1h"] = TABLE_2026["pm25_24h"]
TABLE_2012 = dict(TABLE_2026)
TABLE_2012["pm10_24h"] = (0, 50, 150, 250, 350, 420, 500, 600)
TABLE_2012["pm25_24h"] = (0, 35, 75, 115, 150, 250, 350, 500)
TABLE_2012["pm10_1h"] = TABLE_2012["pm10_24h"]
TABLE_2012["pm25_1h"] = TABLE_2012["pm25_24h"]
TABLES = {"2012": TABLE_2012, "2026": TABLE_2026}


def by_hand(nodes: tuple[float, ...], c: Fraction) -> int:
    """式(1) on the segment holding c, rounded up."""
    for i in range(1, len(nodes)):
        lo, hi = nodes[i - 1], nodes[i]
        if c <= hi:
            value = Fraction(IAQI[i] - IAQI[i - 1], 1) / (hi - lo) * (c - lo) + IAQI[i - 1]
            return math.ceil(value)
    raise AssertionError("above the column")


def step(indicator: str) -> Fraction:
    """The smallest change after the input rounding: 0.1 mg/m³ for CO, 1 µg/m³ otherwise."""
    return Fraction(1, 10) if indicator.startswith("co_") else Fraction(1)


VECTORS = [
    (version, indicator, i)
    for version, table in TABLES.items()
    for indicator, nodes in table.items()
    for i in range(len(nodes))
]


@pytest.mark.parametrize(("version", "indicator", "i"), VECTORS)
def test_every_breakpoint_and_just_above_it(version: str, indicator: str, i: int) -> None:
    nodes = TABLES[version][indicator]
    at = nodes[i]
    assert aqi.iaqi(version, indicator, at) == IAQI[i]  # type: ignore[arg-type]
    above = Fraction(at) + step(indicator)
    if i + 1 < len(nodes):
        expected = by_hand(nodes, above)
        assert expected > IAQI[i]
        assert aqi.iaqi(version, indicator, float(above)) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("version", ["2012", "2026"])
@pytest.mark.parametrize("indicator", sorted(set(TABLE_2026) - {"so2_1h", "o3_8h"}))
def test_above_the_top_node_is_500(version: str, indicator: str) -> None:
    top = TABLES[version][indicator][-1]
    assert aqi.iaqi(version, indicator, float(Fraction(top) + step(indicator))) == 500  # type: ignore[arg-type]
    assert aqi.iaqi(version, indicator, top * 10) == 500  # type: ignore[arg-type]


def test_pm_nodes_differ_between_versions() -> None:
    # 2026: PM2.5 75 → 100 + 15/55 × 50 = 113.6… → 114; 2012: 75 is the IAQI-100 node.
    assert aqi.iaqi("2026", "pm25_24h", 75) == 114
    assert aqi.iaqi("2012", "pm25_24h", 75) == 100
    # PM10 150: 2026 100 + 30/130 × 50 = 111.5… → 112; 2012: 100.
    assert aqi.iaqi("2026", "pm10_24h", 150) == 112
    assert aqi.iaqi("2012", "pm10_24h", 150) == 100


def test_so2_one_hour_above_800() -> None:
    assert aqi.iaqi("2026", "so2_1h", 801) == 200
    assert aqi.iaqi("2026", "so2_1h", 5000) == 200
    assert aqi.iaqi("2012", "so2_1h", 801) is None
    # 2026 hourly report: SO2 1 h 900 → IAQI 200, the AQI.
    result = aqi.compute(
        {"so2_1h": 900, "no2_1h": 10, "co_1h": 0.5, "o3_1h": 20, "pm10_1h": 10, "pm25_1h": 5},
        version="2026",
        report="hourly",
    )
    assert result.aqi == 200 and result.primary == ("SO2",)
    # 2012 real-time: SO2 1 h above 800 falls back to the SO2 24 h IAQI: 24 h 200 → 100 + 50/325 × 50 = 107.7 → 108.
    full_2012 = {"no2_1h": 10, "co_1h": 0.5, "o3_1h": 20, "o3_8h": 20, "pm10_24h": 10, "pm25_24h": 5}
    result = aqi.compute({**full_2012, "so2_1h": 900, "so2_24h": 200}, version="2012", report="hourly")
    so2 = next(i for i in result.items if i.indicator == "so2_1h")
    assert so2.iaqi == math.ceil(Fraction(100) + Fraction(50, 325) * 50) == 108
    assert so2.note == "so2_24h_fallback"
    assert result.aqi == 108 and result.primary == ("SO2",)
    # without the 24 h mean the SO2 item has no IAQI: missing, and the rest is ≤ 100 → NA
    result = aqi.compute({**full_2012, "so2_1h": 900}, version="2012", report="hourly")
    assert result.aqi is None and result.published == "NA"


def test_o3_eight_hours_above_800() -> None:
    assert aqi.iaqi("2026", "o3_8h", 801) == 300
    assert aqi.iaqi("2012", "o3_8h", 801) is None
    daily_2026 = {"so2_24h": 5, "no2_24h": 10, "co_24h": 0.5, "pm10_24h": 20, "pm25_24h": 10}
    result = aqi.compute({**daily_2026, "o3_8h": 900}, version="2026", report="daily")
    assert result.aqi == 300 and result.primary == ("O3_8h",)
    # 2012 daily: O3 8 h above 800 reports the O3 1 h IAQI: 1 h 900 → 300 + 100/200 × 100 = 350.
    daily_2012 = {"so2_24h": 5, "no2_24h": 10, "co_24h": 0.5, "pm10_24h": 20, "pm25_24h": 10}
    result = aqi.compute({**daily_2012, "o3_8h": 900, "o3_1h": 900}, version="2012", report="daily")
    o3 = next(i for i in result.items if i.indicator == "o3_8h")
    assert o3.iaqi == 350 and o3.note == "o3_1h_fallback"
    assert result.aqi == 350 and set(result.primary) == {"O3", "O3_8h"}


def test_input_rounding_half_even() -> None:
    # GB/T 8170: 35.5 → 36 (IAQI 50 + 1/25 × 50 = 52), 36.5 → 36 as well; 34.5 → 34 (⌈34 × 50/35⌉ = 49).
    assert aqi.round_input("pm25_24h", 35.5) == Decimal(36)
    assert aqi.round_input("pm25_24h", 36.5) == Decimal(36)
    assert aqi.iaqi("2026", "pm25_24h", 35.5) == 52
    assert aqi.iaqi("2026", "pm25_24h", 36.5) == 52
    assert aqi.iaqi("2026", "pm25_24h", 34.5) == math.ceil(Fraction(34 * 50, 35)) == 49
    assert aqi.round_input("pm25_24h", 60.5) == Decimal(60)
    # CO to one decimal: 0.25 → 0.2, 0.35 → 0.4, 2.05 → 2.0, 2.15 → 2.2
    assert aqi.round_input("co_24h", 0.25) == Decimal("0.2")
    assert aqi.round_input("co_24h", 0.35) == Decimal("0.4")
    assert aqi.round_input("co_24h", 2.05) == Decimal("2.0")
    assert aqi.round_input("co_24h", 2.15) == Decimal("2.2")
    # CO 2.05 mg/m³ 24 h → 2.0 → exactly IAQI 50; 2.15 → 2.2 → 50 + 0.2/2 × 50 = 55
    assert aqi.iaqi("2026", "co_24h", 2.05) == 50
    assert aqi.iaqi("2026", "co_24h", 2.15) == 55


def test_iaqi_is_rounded_up() -> None:
    # PM2.5 36 µg/m³: 50 + 1/25 × 50 = 52 exactly; 37 → 54; NO2 1 h 101 → 50 + 1/100 × 50 = 50.5 → 51
    assert aqi.iaqi("2026", "pm25_1h", 36) == 52
    assert aqi.iaqi("2026", "no2_1h", 101) == 51
    # O3 1 h 1: 1/160 × 50 = 0.3125 → 1
    assert aqi.iaqi("2026", "o3_1h", 1) == 1
    assert aqi.iaqi("2026", "o3_1h", 0) == 0


HOURLY_2026 = {"so2_1h": 8, "no2_1h": 30, "co_1h": 0.6, "o3_1h": 60, "pm10_1h": 60, "pm25_1h": 40}


def test_hourly_2026_report() -> None:
    result = aqi.compute(HOURLY_2026, version="2026", report="hourly")
    # PM2.5 40: 50 + 5/25 × 50 = 60; PM10 60: 50 + 10/70 × 50 = 57.1 → 58; O3 60: 60/160 × 50 = 18.75 → 19
    by = {i.indicator: i.iaqi for i in result.items}
    assert by == {"so2_1h": 3, "no2_1h": 15, "co_1h": 6, "o3_1h": 19, "pm10_1h": 58, "pm25_1h": 60}
    assert result.aqi == 60 and result.published == "60"
    assert result.primary == ("PM2.5",)
    assert result.level is not None and result.level.category_zh == "良" and result.level.hex == "#FFFF00"
    assert result.sensitive == ()


def test_primary_pollutant_ties_list_every_one() -> None:
    # PM2.5 60 → 100; PM10 120 → 100 (2026 nodes): both primary.
    result = aqi.compute({**HOURLY_2026, "pm25_1h": 60, "pm10_1h": 120}, version="2026", report="hourly")
    assert result.aqi == 100 and result.primary == ("PM10", "PM2.5")


def test_no_primary_pollutant_at_50_or_below() -> None:
    result = aqi.compute(
        {"so2_1h": 5, "no2_1h": 10, "co_1h": 0.3, "o3_1h": 40, "pm10_1h": 20, "pm25_1h": 35},
        version="2026",
        report="hourly",
    )
    assert result.aqi == 50 and result.primary == ()
    assert result.level is not None and result.level.level == 1


def test_missing_data_na_and_not_monitored() -> None:
    # PM2.5 without data, the rest ≤ 100 → NA, items still published
    result = aqi.compute({**HOURLY_2026, "pm25_1h": None}, version="2026", report="hourly")
    assert result.aqi is None and result.published == "NA" and result.level is None and result.primary == ()
    missing = next(i for i in result.items if i.indicator == "pm25_1h")
    assert missing.status == "missing" and missing.iaqi is None
    assert next(i for i in result.items if i.indicator == "pm10_1h").iaqi == 58
    # the rest above 100 → published: PM10 300 → 150 + 50/100 × 50 = 175
    result = aqi.compute({**HOURLY_2026, "pm25_1h": None, "pm10_1h": 300}, version="2026", report="hourly")
    assert result.aqi == 175 and result.primary == ("PM10",)
    # a pollutant not in the monitoring plan is "/" and does not block the AQI
    partial = {k: v for k, v in HOURLY_2026.items() if k != "so2_1h"}
    result = aqi.compute(partial, version="2026", report="hourly")
    so2 = next(i for i in result.items if i.indicator == "so2_1h")
    assert so2.status == "not_monitored" and result.aqi == 60
    # nothing at all → NA
    assert aqi.compute({}, version="2026", report="hourly").published == "NA"


def test_sensitive_groups_2026_above_100() -> None:
    result = aqi.compute({**HOURLY_2026, "pm25_1h": 120, "o3_1h": 250}, version="2026", report="hourly")
    # PM2.5 120: 150 + 5/35 × 50 = 157.1 → 158; O3 1 h 250: 100 + 50/100 × 50 = 125
    assert result.aqi == 158
    assert [s[0] for s in result.sensitive] == ["O3", "PM2.5"]
    assert "哮喘" not in result.sensitive[0][1]


@pytest.mark.parametrize(
    ("value", "level", "category", "hex_colour"),
    [
        (0, 1, "优", "#00E400"),
        (50, 1, "优", "#00E400"),
        (51, 2, "良", "#FFFF00"),
        (100, 2, "良", "#FFFF00"),
        (101, 3, "轻度污染", "#FF7E00"),
        (150, 3, "轻度污染", "#FF7E00"),
        (151, 4, "中度污染", "#FF0000"),
        (200, 4, "中度污染", "#FF0000"),
        (201, 5, "重度污染", "#99004C"),
        (300, 5, "重度污染", "#99004C"),
        (301, 6, "严重污染", "#7E0023"),
        (500, 6, "严重污染", "#7E0023"),
    ],
)
def test_levels_and_colours(value: int, level: int, category: str, hex_colour: str) -> None:
    found = aqi.level_of(value)
    assert (found.level, found.category_zh, found.hex) == (level, category, hex_colour)
    assert found.category_en and found.advice_zh and found.advice_en
    r, g, b = found.rgb
    assert f"#{r:02X}{g:02X}{b:02X}" == hex_colour


def test_version_by_china_time() -> None:
    china = timezone(timedelta(hours=8))
    assert aqi.version_for(datetime(2026, 3, 1, 0, 0, tzinfo=china)) == "2026"
    assert aqi.version_for(datetime(2026, 2, 28, 23, 59, 59, tzinfo=china)) == "2012"
    # 2026-02-28 16:30 UTC is 2026-03-01 00:30 in China: the 2026 text applies
    assert aqi.version_for(datetime(2026, 2, 28, 16, 30, tzinfo=UTC)) == "2026"
    assert aqi.version_for(datetime(2026, 2, 28, 15, 59, tzinfo=UTC)) == "2012"
    with pytest.raises(aqi.AqiInputError):
        aqi.version_for(datetime(2026, 3, 1))
    before = aqi.compute_at({"pm25_24h": 75}, datetime(2026, 2, 28, 15, 0, tzinfo=UTC), report="daily")
    after = aqi.compute_at({"pm25_24h": 75}, datetime(2026, 2, 28, 17, 0, tzinfo=UTC), report="daily")
    assert (before.version, before.aqi) == ("2012", 100)
    assert (after.version, after.aqi) == ("2026", 114)


@pytest.mark.parametrize("bad", [-1.0, -0.01, math.nan, math.inf, -math.inf])
def test_bad_values_are_refused(bad: float) -> None:
    with pytest.raises(aqi.AqiInputError) as caught:
        aqi.compute({**HOURLY_2026, "pm25_1h": bad}, version="2026", report="hourly")
    assert caught.value.field == "pm25_1h"


def test_wrong_units_and_unknown_items_are_refused() -> None:
    with pytest.raises(aqi.AqiInputError) as caught:
        aqi.compute(HOURLY_2026, version="2026", report="hourly", units={"co_1h": "µg/m³"})
    assert caught.value.field == "co_1h" and "mg/m³" in str(caught.value)
    assert caught.value.location == ("units", "co_1h")
    with pytest.raises(aqi.AqiInputError):
        aqi.compute(HOURLY_2026, version="2026", report="hourly", units={"pm25_1h": "mg/m3"})
    ok = aqi.compute(HOURLY_2026, version="2026", report="hourly", units={"pm25_1h": "GQ", "co_1h": "GP"})
    assert ok.aqi == 60
    with pytest.raises(aqi.AqiInputError) as caught:
        aqi.compute({"o3_8h": 10}, version="2026", report="hourly")
    assert caught.value.field == "o3_8h"
    with pytest.raises(aqi.AqiInputError):
        aqi.compute({"pm25_1h": True}, version="2026", report="hourly")  # type: ignore[dict-item]


@given(
    indicator=st.sampled_from(sorted(TABLE_2026)),
    version=st.sampled_from(["2012", "2026"]),
    a=st.floats(min_value=0, max_value=5000, allow_nan=False),
    b=st.floats(min_value=0, max_value=5000, allow_nan=False),
)
def test_iaqi_is_monotonic_and_stays_in_its_band(indicator: str, version: str, a: float, b: float) -> None:
    low, high = sorted((a, b))
    i_low = aqi.iaqi(version, indicator, low)  # type: ignore[arg-type]
    i_high = aqi.iaqi(version, indicator, high)  # type: ignore[arg-type]
    nodes = TABLES[version][indicator]
    if i_low is None or i_high is None:  # 2012 SO2 1 h / O3 8 h above 800: not indexed
        assert indicator in ("so2_1h", "o3_8h") and version == "2012"
        return
    assert i_low <= i_high
    rounded = Fraction(aqi.round_input(indicator, high))
    for i in range(1, len(nodes)):
        if nodes[i - 1] <= rounded <= nodes[i]:
            assert IAQI[i - 1] <= i_high <= IAQI[i]
            break
    else:
        assert i_high == {"so2_1h": 200, "o3_8h": 300}.get(indicator, 500)
