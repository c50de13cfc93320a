"""Heavy-pollution warnings (§8.2): daily AQI of consecutive 24 h, the level table, and the warning life cycle.

Expected AQI values are worked out here from HJ 633's 表3 and 式(1), never taken from the code under test.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from citybrain.apps.environment import aqi
from citybrain.apps.environment.heavy_pollution import (
    NAMES,
    DailyAqi,
    ForecastInputError,
    Level,
    Policy,
    WarningState,
    assess,
    daily_aqi_series,
    heavy_pollution_level,
    next_state,
)

CHINA = timezone(timedelta(hours=8))
# An evening start: every forecast day runs 20:00 → 20:00 China time and so crosses midnight.
EVENING = datetime(2026, 11, 25, 20, tzinfo=CHINA)


def pm25_hours(*values: float | None) -> list[dict[str, float | None]]:
    """Hourly PM2.5 concentrations (µg/m³), one mapping an hour."""
    return [{"pm25": value} for value in values]


def only_pm25_aqi(mean: float) -> int:
    """The HJ 633—2026 daily AQI of a PM2.5 24-hour mean (the mean rounded half-even first), by hand."""
    nodes = (0, 35, 60, 115, 150, 250, 350, 500)
    iaqi = (0, 50, 100, 150, 200, 300, 400, 500)
    c = round(mean)  # Python rounds half to even, as GB/T 8170
    for i in range(1, len(nodes)):
        if c <= nodes[i]:
            return math.ceil(
                (iaqi[i] - iaqi[i - 1]) / (nodes[i] - nodes[i - 1]) * (c - nodes[i - 1]) + iaqi[i - 1]
            )
    return 500


# --- the §8.2 table ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("forecast", "national3", "local4"),
    [
        ([201, 199, 150], None, Level.BLUE),  # one day above 200: blue only in the four-level scheme
        ([199, 180, 201], None, Level.BLUE),
        ([200, 200, 200, 200], None, None),  # exactly 200 is not above 200
        ([201, 200, 201], None, Level.BLUE),  # a day at 200 breaks the run
        ([201, 201], Level.YELLOW, Level.YELLOW),
        ([150, 201, 201, 150], Level.YELLOW, Level.YELLOW),
        ([301, 301], Level.YELLOW, Level.YELLOW),  # above 300 but only 2 days: not orange
        ([250, 250, 250], Level.YELLOW, Level.YELLOW),  # 3 days but none above 300
        ([201, 300, 201], Level.YELLOW, Level.YELLOW),  # exactly 300 is not above 300
        ([201, 301, 201], Level.ORANGE, Level.ORANGE),
        ([301, 301, 301], Level.ORANGE, Level.ORANGE),  # 2 days above 300 but the run is only 3 days
        ([250, 250, 250, 250, 320], Level.ORANGE, Level.ORANGE),
        ([301, 250, 301, 250], Level.ORANGE, Level.ORANGE),  # above 300 twice, not on consecutive days
        ([250, 301, 320, 210], Level.RED, Level.RED),
        ([301, 301, 250, 250], Level.RED, Level.RED),  # 4 days above 200, 2 of them above 300
        ([250, 301, 300, 250], Level.ORANGE, Level.ORANGE),  # 300 is not above 300: one day only
        ([250, 301, 301, 200, 250], Level.ORANGE, Level.ORANGE),  # the run ends at 200: 3 days only
        ([201, 201, 150, 301, 301, 301], Level.ORANGE, Level.ORANGE),  # the 300s sit in the second run
        ([500], Level.RED, Level.RED),  # reaching 500 is red whatever the duration
        ([100, 100, 500], Level.RED, Level.RED),
        ([499], None, Level.BLUE),
        ([0, 50, 100], None, None),
    ],
)
def test_levels_follow_the_table(forecast: list[int], national3: Level | None, local4: Level | None) -> None:
    assert heavy_pollution_level(forecast, "national3") is national3
    assert heavy_pollution_level(forecast, "local4") is local4


def test_the_default_scheme_is_the_national_three_levels() -> None:
    assert heavy_pollution_level([250]) is None
    assert heavy_pollution_level([250, 250]) is Level.YELLOW


def test_the_highest_level_wins_whatever_comes_first() -> None:
    # a yellow run first, then a red one: red, and the reason names the red run
    trigger = assess([201, 201, 100, 250, 301, 320, 210, 100])
    assert trigger is not None
    assert trigger.level is Level.RED
    assert (trigger.rule, trigger.first_day, trigger.last_day) == ("run", 4, 7)
    assert trigger.heavy_days == (4, 5, 6, 7)
    assert trigger.severe_days == (5, 6)
    assert trigger.peak == 320


def test_the_reason_names_the_run_and_the_days() -> None:
    trigger = assess([150, 201, 301, 250, 100], "national3")
    assert trigger is not None
    assert trigger.level is Level.ORANGE
    assert trigger.basis == "环办大气函〔2018〕875号"
    assert trigger.params == {"first": 2, "last": 4, "heavy": 3, "severe": 1, "peak": 301}
    text = trigger.message.format(**trigger.params)
    assert (
        text
        == "Forecast days 2 to 4: daily AQI above 200 on 3 of them and above 300 on 1; the highest is 301."
    )


def test_among_equal_levels_the_earliest_run_is_the_reason() -> None:
    trigger = assess([250, 250, 100, 260, 270])
    assert trigger is not None
    assert (trigger.level, trigger.first_day, trigger.last_day) == (Level.YELLOW, 1, 2)


def test_reaching_500_is_its_own_reason() -> None:
    trigger = assess([100, 500, 100], "local4")
    assert trigger is not None
    assert (trigger.level, trigger.rule, trigger.first_day, trigger.last_day) == (Level.RED, "aqi500", 2, 2)
    assert trigger.message.format(**trigger.params) == "Day 2: the daily AQI is forecast to reach 500."
    # a red run on the same days is the better reason
    run = assess([301, 301, 500, 250])
    assert run is not None
    assert (run.level, run.rule, run.first_day, run.last_day) == (Level.RED, "run", 1, 4)


def test_levels_rank_and_name_as_the_plans_do() -> None:
    assert [level.grade for level in (Level.RED, Level.ORANGE, Level.YELLOW, Level.BLUE)] == [
        "I",
        "II",
        "III",
        "IV",
    ]
    assert Level.RED.rank > Level.ORANGE.rank > Level.YELLOW.rank > Level.BLUE.rank
    assert NAMES[Level.YELLOW] == ("黄色预警（III级）", "Yellow warning (level III)")


def test_short_gaps_join_runs_into_one_episode_only_when_asked() -> None:
    forecast = [301, 301, 100, 250, 250]  # two yellow runs a day apart
    assert heavy_pollution_level(forecast) is Level.YELLOW
    # one episode of 5 days with 2 consecutive days above 300: red (从严)
    assert heavy_pollution_level(forecast, merge_gap_days=1) is Level.RED
    trigger = assess(forecast, merge_gap_days=1)
    assert trigger is not None
    assert (trigger.first_day, trigger.last_day, trigger.heavy_days) == (1, 5, (1, 2, 4, 5))
    # a two-day gap is too long for a merge of one day
    assert heavy_pollution_level([301, 301, 100, 100, 250, 250], merge_gap_days=1) is Level.YELLOW
    assert heavy_pollution_level([301, 301, 100, 100, 250, 250], merge_gap_days=2) is Level.RED
    # single days a day apart are one episode of yellow length
    assert heavy_pollution_level([250, 150, 250], merge_gap_days=1) is Level.YELLOW


@pytest.mark.parametrize(
    ("forecast", "where", "words"),
    [
        ([], ("daily_aqi",), "at least one day"),
        ([201, -1], ("daily_aqi", "1"), "negative"),
        ([201, math.nan], ("daily_aqi", "1"), "NaN"),
        ([math.inf], ("daily_aqi", "0"), "finite"),
        ([201.5, 201], ("daily_aqi", "0"), "whole number"),
        ([201, 501], ("daily_aqi", "1"), "exceed 500"),
        ([201, None], ("daily_aqi", "1"), "Day 2 has no AQI"),
        ([True, 201], ("daily_aqi", "0"), "must be a number"),
        (["250"], ("daily_aqi", "0"), "must be a number"),
        ("250", ("daily_aqi",), "list of daily AQI"),
    ],
)
def test_bad_forecasts_are_refused(forecast: Any, where: tuple[str, ...], words: str) -> None:
    with pytest.raises(ForecastInputError) as caught:
        heavy_pollution_level(forecast)
    assert caught.value.location == where
    assert words in str(caught.value)
    assert isinstance(caught.value, aqi.AqiInputError)  # the API maps it as it maps AQI input errors


def test_bad_options_are_refused() -> None:
    with pytest.raises(ForecastInputError, match="national3 or local4") as caught:
        heavy_pollution_level([250, 250], "local5")  # type: ignore[arg-type]
    assert caught.value.location == ("scheme",)
    with pytest.raises(ForecastInputError, match="merge gap"):
        heavy_pollution_level([250, 250], merge_gap_days=-1)


# --- daily AQI of consecutive 24-hour periods ----------------------------------------------------------


def test_a_forecast_day_is_24_hours_from_the_start_across_midnight() -> None:
    # 20:00–24:00 on the 25th at 400 µg/m³, 00:00–20:00 on the 26th at 130, then a day at 100
    hours = pm25_hours(*([400] * 4 + [130] * 20 + [100] * 24))
    days = daily_aqi_series(EVENING, concentrations=hours, version="2026")
    assert [day.day for day in days] == [1, 2]
    first = days[0]
    assert first.start == datetime(2026, 11, 25, 12, tzinfo=UTC)
    assert first.end == datetime(2026, 11, 26, 12, tzinfo=UTC)
    assert first.start.astimezone(CHINA).date() != (first.end - timedelta(hours=1)).astimezone(CHINA).date()
    # day 1: mean (4 × 400 + 20 × 130) / 24 = 175 → 200 + 25/100 × 100 = 225, a heavy day
    assert first.aqi == only_pm25_aqi(175) == 225
    assert first.published == "225"
    assert first.primary == ("PM2.5",)
    assert first.method == "concentrations"
    assert first.result is not None and first.result.report == "daily"
    # day 2: mean 100 → 100 + 40/55 × 50 = 136.4 → 137
    assert days[1].aqi == only_pm25_aqi(100) == 137
    # the natural day of the 26th (00:00–24:00) holds other hours: (20 × 130 + 4 × 100) / 24 = 125 → 165
    natural = daily_aqi_series(
        datetime(2026, 11, 26, tzinfo=CHINA), concentrations=hours[4:28], version="2026"
    )
    assert natural[0].aqi == only_pm25_aqi(125) == 165


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (150, 150, 200),  # mean 150 → IAQI 200: not heavy
        (150, 151, 200),  # mean 150.5 rounds half-even to 150 (GB/T 8170) → 200
        (151, 151, 201),  # mean 151 → 201: heavy
        (151, 152, 202),  # mean 151.5 rounds to 152 → 202
        (250, 252, 301),  # mean 251 → 301: above 300
    ],
)
def test_the_daily_mean_is_rounded_before_indexing(low: int, high: int, expected: int) -> None:
    days = daily_aqi_series(EVENING, concentrations=pm25_hours(*([low] * 12 + [high] * 12)), version="2026")
    assert days[0].aqi == only_pm25_aqi((low + high) / 2) == expected


def test_the_daily_aqi_is_the_highest_iaqi_of_the_24_hour_means() -> None:
    # PM10 24 h mean 400 → 200 + 50/70 × 100 = 271.4 → 272; NO2 mean 100 → 100 + 20/100 × 50 = 110;
    # CO mean 3.0 mg/m³ → 50 + 1/2 × 50 = 75; SO2 10 → 10; PM2.5 mean 200 → 250
    hours: list[dict[str, float | None]] = [
        {"pm10": 380 if i % 2 else 420, "no2": 100, "co": 3.0, "so2": 10, "pm25": 200} for i in range(24)
    ]
    (day,) = daily_aqi_series(EVENING, concentrations=hours, version="2026")
    assert day.aqi == 272
    assert day.primary == ("PM10",)
    assert day.result is not None
    iaqi = {item.indicator: item.iaqi for item in day.result.items}
    assert iaqi == {
        "so2_24h": 10,
        "no2_24h": 110,
        "co_24h": 75,
        "o3_8h": None,
        "pm10_24h": 272,
        "pm25_24h": 250,
    }
    statuses = {item.indicator: item.status for item in day.result.items}
    assert statuses["o3_8h"] == "not_monitored"


def test_o3_uses_the_highest_8_hour_mean_inside_the_period() -> None:
    # O3 300 µg/m³ from hour 20 to hour 27, 100 otherwise: an 8-hour window across the two periods would
    # average 300, but each period's own windows reach (4 × 300 + 4 × 100) / 8 = 200 at most.
    # O3 8 h 200 → 100 + 40/55 × 50 = 136.4 → 137 (a window at 300 would give 207)
    hours: list[dict[str, float | None]] = [{"o3": 300 if 20 <= i < 28 else 100} for i in range(48)]
    days = daily_aqi_series(EVENING, concentrations=hours, version="2026")
    assert [day.aqi for day in days] == [137, 137]
    assert days[0].primary == ("O3_8h",)
    # the same 8 hours inside one period: 300 → 200 + 35/535 × 100 = 206.5 → 207
    inside: list[dict[str, float | None]] = [{"o3": 300 if 8 <= i < 16 else 100} for i in range(24)]
    assert daily_aqi_series(EVENING, concentrations=inside, version="2026")[0].aqi == 207
    # HJ 633—2012 also indexes the daily maximum 1-hour O3: 300 → 150; the 8-hour 207 stays the highest
    (day_2012,) = daily_aqi_series(EVENING, concentrations=inside, version="2012")
    assert day_2012.result is not None
    iaqi = {item.indicator: item.iaqi for item in day_2012.result.items}
    assert (iaqi["o3_1h"], iaqi["o3_8h"], day_2012.aqi) == (150, 207, 207)


def test_each_period_is_reported_by_the_version_in_force_at_its_start() -> None:
    # PM2.5 75 µg/m³: IAQI 100 by HJ 633—2012, 100 + 15/55 × 50 = 113.6 → 114 by HJ 633—2026
    start = datetime(2026, 2, 28, 12, tzinfo=CHINA)  # day 1 crosses the 2026-03-01 cut-over
    days = daily_aqi_series(start, concentrations=pm25_hours(*([75] * 48)))
    assert [(day.result.version if day.result else None, day.aqi) for day in days] == [
        ("2012", 100),
        ("2026", 114),
    ]


def test_too_few_valid_hours_leave_an_item_missing() -> None:
    # 20 valid hours make a mean; 19 do not (GB 3095 data validity)
    twenty = pm25_hours(*[151] * 20, *[None] * 4)
    assert daily_aqi_series(EVENING, concentrations=twenty, version="2026")[0].aqi == 201
    # PM2.5 valid in 19 hours, None in 4 and absent from the last; NO2 at 40 µg/m³ all day (IAQI 50)
    nineteen: list[dict[str, float | None]] = [*pm25_hours(*[151] * 19, *[None] * 4), {}]
    for hour in nineteen:
        hour["no2"] = 40
    (day,) = daily_aqi_series(EVENING, concentrations=nineteen, version="2026")
    # PM2.5 missing and the rest at 50 or less: HJ 633—2026 §5.3.1 publishes NA
    assert (day.aqi, day.published) == (None, "NA")
    with pytest.raises(ForecastInputError, match="Day 1 has no AQI"):
        heavy_pollution_level([day.aqi])  # type: ignore[list-item]


def test_hourly_aqi_values_are_averaged_and_rounded_up() -> None:
    values: list[float | None] = [201] * 12 + [200] * 12 + [200] * 24 + [301.5] * 24
    days = daily_aqi_series(EVENING, hourly_aqi=values)
    assert [day.aqi for day in days] == [201, 200, 302]  # 200.5 → 201, 200 → 200, 301.5 → 302
    assert {day.method for day in days} == {"hourly_aqi"}
    assert days[2].start == datetime(2026, 11, 27, 12, tzinfo=UTC)
    assert heavy_pollution_level([day.aqi for day in days if day.aqi is not None], "local4") is Level.BLUE


def test_a_series_feeds_the_level() -> None:
    hours = pm25_hours(*([151] * 24 + [251] * 24 + [260] * 24 + [160] * 24))
    days = daily_aqi_series(EVENING, concentrations=hours, version="2026")
    daily = [day.aqi for day in days if day.aqi is not None]
    assert daily == [201, 301, 310, 210]  # 260 → 300 + 10/100 × 100; 160 → 200 + 10
    assert heavy_pollution_level(daily) is Level.RED


@pytest.mark.parametrize(
    ("kwargs", "where", "words"),
    [
        ({"start": datetime(2026, 11, 25, 20), "hourly_aqi": [100] * 24}, ("start",), "time zone"),
        (
            {"start": datetime(2026, 11, 25, 20, 30, tzinfo=CHINA), "hourly_aqi": [100] * 24},
            ("start",),
            "on the hour",
        ),
        ({"hourly_aqi": [100] * 25}, ("hourly",), "not 25"),
        ({"hourly_aqi": [100] * 23}, ("hourly",), "not 23"),
        ({"hourly_aqi": []}, ("hourly",), "not 0"),
        ({"concentrations": pm25_hours(*[100] * 47)}, ("hourly",), "not 47"),
        ({}, ("hourly",), "either"),
        ({"hourly_aqi": [100] * 24, "concentrations": pm25_hours(*[100] * 24)}, ("hourly",), "either"),
        ({"hourly_aqi": [100] * 23 + [-1]}, ("hourly", "23"), "negative"),
        ({"hourly_aqi": [100] * 23 + [600]}, ("hourly", "23"), "exceed 500"),
        ({"hourly_aqi": [math.nan] + [100] * 23}, ("hourly", "0"), "NaN"),
        ({"concentrations": pm25_hours(*[100] * 23, -5)}, ("hourly", "23", "pm25"), "negative"),
        ({"concentrations": pm25_hours(math.nan, *[100] * 23)}, ("hourly", "0", "pm25"), "NaN"),
        ({"concentrations": pm25_hours(math.inf, *[100] * 23)}, ("hourly", "0", "pm25"), "finite"),
        ({"concentrations": [{"pm1": 5}] * 24}, ("hourly", "0", "pm1"), "Unknown pollutant pm1"),
        ({"concentrations": [{"pm25": "5"}] * 24}, ("hourly", "0", "pm25"), "must be a number"),
        ({"concentrations": [[5]] * 24}, ("hourly", "0"), "map pollutants"),
        ({"hourly_aqi": [100] * 24, "version": "2020"}, ("version",), "2012 or 2026"),
    ],
)
def test_bad_hourly_input_is_refused(kwargs: dict[str, Any], where: tuple[str, ...], words: str) -> None:
    arguments = {"start": EVENING, **kwargs}
    with pytest.raises(ForecastInputError) as caught:
        daily_aqi_series(**arguments)
    assert caught.value.location == where
    assert words in str(caught.value)


def test_daily_values_are_frozen_records() -> None:
    (day,) = daily_aqi_series(EVENING, hourly_aqi=[100] * 24)
    assert isinstance(day, DailyAqi)
    with pytest.raises(AttributeError):
        day.aqi = 300  # type: ignore[misc]


# --- the warning life cycle ----------------------------------------------------------------------------


def test_issue_upgrade_hold_downgrade_and_lift() -> None:
    policy = Policy(hold_updates=2)
    state = WarningState()
    steps = [
        ([150, 150, 150], "none", None),
        ([150, 250, 250], "issue", Level.YELLOW),
        ([250, 250, 310, 250], "upgrade", Level.ORANGE),
        ([250, 310, 320, 250], "upgrade", Level.RED),
        ([310, 250, 250], "hold", Level.RED),  # orange forecast once: red stays
        ([250, 250, 150], "downgrade", Level.ORANGE),  # lower twice running: the higher of orange, yellow
        ([250, 250, 310], "keep", Level.ORANGE),
        ([250, 250, 150], "hold", Level.ORANGE),  # yellow once
        ([250, 150, 150], "downgrade", Level.YELLOW),  # then nothing: the higher of yellow and none
        ([250, 150, 150], "hold", Level.YELLOW),  # nothing forecast once
        ([150, 150, 150], "lift", None),  # nothing forecast twice running: 解除
        ([150, 150, 150], "none", None),
    ]
    for forecast, action, level in steps:
        decision = next_state(state, forecast, policy)
        assert (decision.action, decision.state.level) == (action, level), forecast
        state = decision.state
    assert state == WarningState()


def test_a_step_down_goes_to_the_highest_level_the_held_updates_forecast() -> None:
    policy = Policy(hold_updates=3)
    state = WarningState(Level.RED)
    for forecast, action in (([250, 250], "hold"), ([150], "hold"), ([250, 250, 310], "downgrade")):
        decision = next_state(state, forecast, policy)
        assert decision.action == action
        state = decision.state
    assert state == WarningState(Level.ORANGE)
    # a lift needs every held update to forecast nothing
    state = WarningState(Level.YELLOW)
    for forecast in ([150], [150]):
        state = next_state(state, forecast, Policy(hold_updates=2)).state
    assert state == WarningState()


def test_a_forecast_back_at_the_level_resets_the_hold() -> None:
    policy = Policy(hold_updates=2)
    held = next_state(WarningState(Level.ORANGE), [250, 250], policy)
    assert (held.action, held.state) == ("hold", WarningState(Level.ORANGE, 1, Level.YELLOW))
    back = next_state(held.state, [250, 310, 250], policy)
    assert (back.action, back.state) == ("keep", WarningState(Level.ORANGE))
    again = next_state(back.state, [250, 250], policy)
    assert again.action == "hold"  # the count starts again: no downgrade yet
    up = next_state(held.state, [301, 301, 301, 301], policy)
    assert (up.action, up.state) == ("upgrade", WarningState(Level.RED))


def test_a_hold_of_one_update_follows_every_forecast() -> None:
    decision = next_state(WarningState(Level.RED), [250, 250], Policy(hold_updates=1))
    assert (decision.action, decision.state.level, decision.previous) == (
        "downgrade",
        Level.YELLOW,
        Level.RED,
    )
    assert next_state(WarningState(Level.YELLOW), [100], Policy(hold_updates=1)).action == "lift"


def test_a_short_gap_keeps_the_warning_as_one_episode() -> None:
    # a yellow warning; the forecast shows one clean day and then pollution again
    forecast = [250, 150, 250]
    assert heavy_pollution_level(forecast) is None  # two single days, each too short alone
    kept = next_state(WarningState(Level.YELLOW), forecast, Policy(hold_updates=1))
    assert (kept.action, kept.state.level) == ("keep", Level.YELLOW)
    assert kept.trigger is not None and (kept.trigger.first_day, kept.trigger.last_day) == (1, 3)
    # with no merge the same update lifts the warning
    lifted = next_state(WarningState(Level.YELLOW), forecast, Policy(hold_updates=1, merge_gap_days=0))
    assert (lifted.action, lifted.state.level, lifted.trigger) == ("lift", None, None)
    # a longer gap is two episodes, neither meeting a level
    apart = next_state(WarningState(Level.YELLOW), [250, 150, 150, 250], Policy(hold_updates=1))
    assert apart.action == "lift"
    # and an episode joined over the gap is issued at the level it reaches as one (从严)
    issued = next_state(WarningState(), [301, 301, 150, 250, 250])
    assert (issued.action, issued.state.level) == ("issue", Level.RED)


def test_the_four_level_scheme_issues_blue() -> None:
    decision = next_state(WarningState(), [150, 230, 150, 150], Policy(scheme="local4"))
    assert (decision.action, decision.state.level, decision.forecast_level) == (
        "issue",
        Level.BLUE,
        Level.BLUE,
    )
    assert next_state(WarningState(), [150, 230, 150, 150]).action == "none"


@pytest.mark.parametrize(
    ("build", "where"),
    [
        (lambda: Policy(scheme="local5"), ("scheme",)),  # type: ignore[arg-type]
        (lambda: Policy(merge_gap_days=-1), ("merge_gap_days",)),
        (lambda: Policy(hold_updates=0), ("hold_updates",)),
        (lambda: Policy(hold_updates=True), ("hold_updates",)),
        (lambda: WarningState(None, 1), ("previous", "lower_updates")),
        (lambda: WarningState(Level.YELLOW, -1), ("previous", "lower_updates")),
        (lambda: WarningState(Level.YELLOW, 1, Level.ORANGE), ("previous", "lower_level")),
        (lambda: WarningState(Level.YELLOW, 0, Level.BLUE), ("previous", "lower_level")),
        (lambda: WarningState("purple"), ("previous", "level")),  # type: ignore[arg-type]
    ],
)
def test_bad_policies_and_states_are_refused(build: Any, where: tuple[str, ...]) -> None:
    with pytest.raises(ForecastInputError) as caught:
        build()
    assert caught.value.location == where


def test_a_bad_forecast_changes_no_state() -> None:
    state = WarningState(Level.ORANGE, 1, Level.YELLOW)
    with pytest.raises(ForecastInputError, match="negative"):
        next_state(state, [250, -3])
    with pytest.raises(ForecastInputError, match="warning state"):
        next_state(None, [250])  # type: ignore[arg-type]
    assert state == WarningState(Level.ORANGE, 1, Level.YELLOW)
