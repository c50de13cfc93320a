"""Heavy air pollution warnings (重污染天气预警) from daily AQI forecasts, as pure functions.

Standards notes §8.2. The trigger metric is the daily AQI of consecutive 24-hour periods, which may
cross natural days; a heavy-pollution day is one whose daily AQI exceeds 200. The levels:

| level | trigger (forecast) |
|---|---|
| 蓝色 (IV, four-level schemes only) | AQI > 200 for 1 day, no higher level met |
| 黄色 (III) | AQI > 200 lasting 2 days or more, no higher level met |
| 橙色 (II) | AQI > 200 lasting 3 days, and AQI > 300 on at least one of them |
| 红色 (I) | AQI > 200 lasting 4 days or more and AQI > 300 lasting 2 days or more; or AQI reaching 500 |

The national guidance 环办大气函〔2018〕875号 has three levels (yellow, orange, red: scheme "national3");
the 2017 national draft and some local plans keep blue as a fourth (scheme "local4").

How this module reads the table:
- "lasting N days" means N consecutive forecast days (a run); a day at 200 or less ends the run;
- the days above 300 count only inside the run they belong to, and "above 300 lasting 2 days" also
  means 2 consecutive days;
- the highest level met anywhere in the forecast wins; among equals the earliest run is the reason;
- two runs separated by a gap of `merge_gap_days` days or fewer are one episode (§8.2: episodes with
  too short a gap between them count as one, 从严): the episode runs from the first run's first day to
  the last run's last day, gap days included, and is judged as one run.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Literal

from citybrain.apps.environment import aqi
from citybrain.apps.environment.aqi import N_, Result

Scheme = Literal["national3", "local4"]
SCHEMES: tuple[Scheme, ...] = ("national3", "local4")
Action = Literal["none", "issue", "upgrade", "keep", "hold", "downgrade", "lift"]

DAY = timedelta(hours=24)
HEAVY = 200  # §8.2: heavy pollution is a daily AQI above 200
SEVERE = 300  # §8.2: the orange and red triggers count days with a daily AQI above 300
TOP = 500  # §8.2: red when any forecast day reaches 500 (also the top of the AQI scale, HJ 633 表1)
# §8.2 durations: yellow 2 days (48 h), orange 3 days (72 h), red 4 days (96 h) above 200 and 2 days
# (48 h) above 300.
YELLOW_DAYS = 2
ORANGE_DAYS = 3
RED_DAYS = 4
RED_SEVERE_DAYS = 2
# Daily means from hourly values: a 24-hour mean needs 20 valid hours and an 8-hour mean 6 (GB 3095
# data validity, standards notes §1.3).
FEWEST_HOURS = 20
FEWEST_HOURS_8H = 6
# The hourly pollutants a forecast or a station gives (the context attributes of AirQualityObserved).
POLLUTANTS: tuple[str, ...] = ("so2", "no2", "co", "o3", "pm10", "pm25")
# The daily report items fed by each pollutant's 24-hour mean (HJ 633 daily report, notes §1.3).
MEAN_24H: dict[str, str] = {
    "so2": aqi.SO2_24H,
    "no2": aqi.NO2_24H,
    "co": aqi.CO_24H,
    "pm10": aqi.PM10_24H,
    "pm25": aqi.PM25_24H,
}


class Level(StrEnum):
    """A heavy-pollution warning level; red (I) is the highest, blue (IV) exists in four-level schemes only."""

    RED = "red"
    ORANGE = "orange"
    YELLOW = "yellow"
    BLUE = "blue"

    @property
    def rank(self) -> int:
        """The severity: 4 for red down to 1 for blue (a higher rank is a more serious warning)."""
        return RANK[self]

    @property
    def grade(self) -> str:
        """The level's number as the plans write it: I (red), II (orange), III (yellow), IV (blue)."""
        return GRADE[self]


RANK: dict[Level, int] = {Level.RED: 4, Level.ORANGE: 3, Level.YELLOW: 2, Level.BLUE: 1}
GRADE: dict[Level, str] = {Level.RED: "I", Level.ORANGE: "II", Level.YELLOW: "III", Level.BLUE: "IV"}
# Display names, zh-CN first (as aqi.LEVELS carries its names).
NAMES: dict[Level, tuple[str, str]] = {
    Level.RED: ("红色预警（I级）", "Red warning (level I)"),
    Level.ORANGE: ("橙色预警（II级）", "Orange warning (level II)"),
    Level.YELLOW: ("黄色预警（III级）", "Yellow warning (level III)"),
    Level.BLUE: ("蓝色预警（IV级）", "Blue warning (level IV)"),
}
# Where each scheme's table comes from (standards notes §8.2).
BASIS: dict[Scheme, str] = {
    "national3": "环办大气函〔2018〕875号",
    "local4": "2017 national draft; four-level local plans",
}


def _rank(level: Level | None) -> int:
    """The rank of a level, 0 for no warning."""
    return 0 if level is None else level.rank


# --- errors --------------------------------------------------------------------------------------------


class ForecastInputError(aqi.AqiInputError):
    """A forecast the warning rules cannot judge: a bad value, a wrong length, a bad option or state."""

    def __init__(self, location: tuple[str, ...], message: str, **params: object) -> None:
        """Name where the refused value sits (("daily_aqi", "2"), ("hourly", "5", "pm25")...) and why."""
        ValueError.__init__(self, message.format(**params) if params else message)
        self.field = location[-1]
        self.section = location[0]
        self.message = message
        self.params = params
        self._location = location

    @property
    def location(self) -> tuple[str, ...]:
        """Where the refused value sits in a request."""
        return self._location


def _number(location: tuple[str, ...], value: object, top: int | None = None) -> Fraction:
    """A finite, non-negative number (at most `top`) as an exact fraction; booleans and NaN refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ForecastInputError(location, N_("The value must be a number."))
    if isinstance(value, numbers.Integral):
        exact = Fraction(int(value))
    else:
        number = float(value)
        if math.isnan(number):
            raise ForecastInputError(location, N_("The value must be a number, not NaN."))
        if math.isinf(number):
            raise ForecastInputError(location, N_("The value must be a finite number."))
        # repr gives the shortest decimal that reads back as the float: 35.5 stays 35.5 in the means
        exact = Fraction(Decimal(repr(number)))
    if exact < 0:
        raise ForecastInputError(location, N_("The value cannot be negative."))
    if top is not None and exact > top:
        raise ForecastInputError(location, N_("The AQI cannot exceed {top}."), top=top)
    return exact


# --- daily AQI of consecutive 24-hour periods ---------------------------------------------------------


@dataclass(frozen=True)
class DailyAqi:
    """The AQI of one forecast day: the 24 hours [start, end) counted from the forecast's start."""

    day: int  # 1: the first 24 hours, 2: the 24 hours after, …
    start: datetime  # UTC, inclusive
    end: datetime  # UTC, exclusive
    aqi: int | None  # None when HJ 633—2026 §5.3.1 publishes "NA"
    published: str  # the AQI as published: "237" or "NA"
    primary: tuple[str, ...]
    method: Literal["concentrations", "hourly_aqi"]
    result: Result | None = None  # the daily report behind the AQI (concentrations only)


def _check_start(start: datetime) -> None:
    """Refuse a start without a time zone or off the hour (China's offset is whole hours)."""
    if start.tzinfo is None or start.utcoffset() is None:
        raise ForecastInputError(("start",), N_("The time must carry a time zone offset."))
    if (start.minute, start.second, start.microsecond) != (0, 0, 0):
        raise ForecastInputError(("start",), N_("The forecast must start on the hour."))


def _check_length(count: int) -> int:
    """The number of whole days in `count` hours; refuse an empty series or one with a partial day."""
    if count == 0 or count % 24:
        raise ForecastInputError(
            ("hourly",), N_("Give whole days of hourly values (a multiple of 24), not {count}."), count=count
        )
    return count // 24


def _mean(values: Sequence[Fraction | None], fewest: int) -> Fraction | None:
    """The mean of the valid values, None when fewer than `fewest` are valid."""
    valid = [value for value in values if value is not None]
    if len(valid) < fewest:
        return None
    return sum(valid, Fraction(0)) / len(valid)


def _o3_max_8h(hours: Sequence[Fraction | None]) -> Fraction | None:
    """The largest 8-hour mean wholly inside the 24 hours (windows ending at their 8th…24th hour)."""
    # The natural-day rule uses the 8-hour means ending 08:00…24:00, the 17 windows inside the day; a
    # consecutive 24-hour period uses the same 17 windows counted from its own start.
    means = [_mean(hours[end - 8 : end], FEWEST_HOURS_8H) for end in range(8, 25)]
    valid = [mean for mean in means if mean is not None]
    return max(valid) if valid else None


def _daily_concentrations(
    hours: Sequence[Mapping[str, Fraction | None]], monitored: Sequence[str], version: aqi.Version
) -> dict[str, float | None]:
    """The daily report's concentrations from one period's 24 hourly values of each monitored pollutant."""
    daily: dict[str, float | None] = {}
    for pollutant in monitored:
        series = [hour.get(pollutant) for hour in hours]
        enough = sum(value is not None for value in series) >= FEWEST_HOURS
        if pollutant in MEAN_24H:
            mean = _mean(series, FEWEST_HOURS)
            daily[MEAN_24H[pollutant]] = None if mean is None else float(mean)
            continue
        # O3: the daily maximum 8-hour mean, and in 2012 also the daily maximum 1-hour mean (notes §1.3).
        peak_8h = _o3_max_8h(series) if enough else None
        daily[aqi.O3_8H] = None if peak_8h is None else float(peak_8h)
        if version == "2012":
            valid = [value for value in series if value is not None]
            daily[aqi.O3_1H] = float(max(valid)) if enough else None
    return daily


def daily_aqi_series(
    start: datetime,
    *,
    concentrations: Sequence[Mapping[str, float | None]] | None = None,
    hourly_aqi: Sequence[float | None] | None = None,
    version: aqi.Version | None = None,
) -> tuple[DailyAqi, ...]:
    """The daily AQI of each consecutive 24 hours from `start` (day 1 = the first 24 h), from hourly values."""
    # Hour i of the series is the 1-hour mean of [start + i h, start + (i + 1) h); day d covers hours
    # 24(d-1) … 24d-1, whatever the clock says, so a day may cross midnight (§8.2).
    #
    # With `concentrations` (the standard's way): for each pollutant ("so2", "no2", "co", "o3", "pm10",
    # "pm25"; CO in mg/m³, the others in µg/m³) the period's 24-hour mean (SO2, NO2, CO, PM10, PM2.5) and
    # O3's maximum 8-hour mean (and, in HJ 633—2012, its maximum 1-hour value) go into aqi.compute's daily
    # report, which rounds them (§4.2.2), indexes them and takes the maximum IAQI. A pollutant given in
    # no hour is not monitored ("/"); an hour given as None or without the pollutant is missing. The
    # version is the one in force at the period's start unless `version` names one.
    #
    # With `hourly_aqi` (when a forecast gives only the AQI): the mean of the period's hourly AQI values,
    # rounded up. This is an approximation, not HJ 633's daily AQI (IAQI is not linear and the primary
    # pollutant may change within the day); the result says which method made it.
    _check_start(start)
    if (concentrations is None) == (hourly_aqi is None):
        raise ForecastInputError(("hourly",), N_("Give either hourly concentrations or hourly AQI values."))
    if version is not None and version not in aqi.VERSIONS:
        raise ForecastInputError(("version",), N_("The version must be 2012 or 2026."))
    if hourly_aqi is not None:
        return _from_hourly_aqi(start, hourly_aqi)
    assert concentrations is not None
    return _from_concentrations(start, concentrations, version)


def _from_hourly_aqi(start: datetime, values: Sequence[float | None]) -> tuple[DailyAqi, ...]:
    """The daily AQI of each 24 hours as the mean of the hourly AQI values, rounded up."""
    days = _check_length(len(values))
    checked = [
        None if value is None else _number(("hourly", str(i)), value, top=TOP)
        for i, value in enumerate(values)
    ]
    series: list[DailyAqi] = []
    for day in range(1, days + 1):
        begin = start + (day - 1) * DAY
        mean = _mean(checked[(day - 1) * 24 : day * 24], FEWEST_HOURS)
        value = None if mean is None else math.ceil(mean)  # AQI rounded up (HJ 633—2026 §4.2.6)
        series.append(
            DailyAqi(
                day=day,
                start=begin.astimezone(UTC),
                end=(begin + DAY).astimezone(UTC),
                aqi=value,
                published=aqi.NA if value is None else str(value),
                primary=(),
                method="hourly_aqi",
            )
        )
    return tuple(series)


def _from_concentrations(
    start: datetime, hourly: Sequence[Mapping[str, float | None]], version: aqi.Version | None
) -> tuple[DailyAqi, ...]:
    """The daily AQI of each 24 hours by HJ 633's daily report of the period's means."""
    days = _check_length(len(hourly))
    checked: list[dict[str, Fraction | None]] = []
    for i, hour in enumerate(hourly):
        if not isinstance(hour, Mapping):
            raise ForecastInputError(
                ("hourly", str(i)), N_("Each hour must map pollutants to concentrations.")
            )
        values: dict[str, Fraction | None] = {}
        for pollutant, value in hour.items():
            if pollutant not in POLLUTANTS:
                raise ForecastInputError(
                    ("hourly", str(i), str(pollutant)), N_("Unknown pollutant {name}."), name=pollutant
                )
            values[pollutant] = None if value is None else _number(("hourly", str(i), pollutant), value)
        checked.append(values)
    monitored = [pollutant for pollutant in POLLUTANTS if any(pollutant in hour for hour in checked)]
    series: list[DailyAqi] = []
    for day in range(1, days + 1):
        begin = start + (day - 1) * DAY
        chosen = version or aqi.version_for(begin)
        daily = _daily_concentrations(checked[(day - 1) * 24 : day * 24], monitored, chosen)
        result = aqi.compute(daily, version=chosen, report="daily")
        series.append(
            DailyAqi(
                day=day,
                start=begin.astimezone(UTC),
                end=(begin + DAY).astimezone(UTC),
                aqi=result.aqi,
                published=result.published,
                primary=result.primary,
                method="concentrations",
                result=result,
            )
        )
    return tuple(series)


# --- the warning level of a forecast (§8.2 table) -----------------------------------------------------


@dataclass(frozen=True)
class Trigger:
    """Why a forecast meets a level: the rule, the days of the run (1-based) and what they reached."""

    level: Level
    scheme: Scheme
    rule: Literal["run", "aqi500"]
    first_day: int
    last_day: int
    heavy_days: tuple[int, ...]  # the days of the run with a daily AQI above 200
    severe_days: tuple[int, ...]  # the days of the run with a daily AQI above 300
    peak: int  # the highest daily AQI of the run

    @property
    def basis(self) -> str:
        """The plan the scheme's table comes from."""
        return BASIS[self.scheme]

    @property
    def message(self) -> str:
        """The reason as a catalogue message (English msgid; `params` fill it in)."""
        if self.rule == "aqi500":
            return N_("Day {first}: the daily AQI is forecast to reach 500.")
        return N_(
            "Forecast days {first} to {last}: daily AQI above 200 on {heavy} of them and above 300 on "
            "{severe}; the highest is {peak}."
        )

    @property
    def params(self) -> dict[str, int]:
        """The values the reason message names."""
        return {
            "first": self.first_day,
            "last": self.last_day,
            "heavy": len(self.heavy_days),
            "severe": len(self.severe_days),
            "peak": self.peak,
        }


def _check_scheme(scheme: object) -> Scheme:
    """The scheme, refusing anything but national3 and local4."""
    for known in SCHEMES:
        if scheme == known:
            return known
    raise ForecastInputError(("scheme",), N_("The scheme must be national3 or local4."))


def _check_gap(merge_gap_days: object) -> int:
    """The merge gap in days: a whole number, 0 or more."""
    if isinstance(merge_gap_days, bool) or not isinstance(merge_gap_days, int) or merge_gap_days < 0:
        raise ForecastInputError(
            ("merge_gap_days",), N_("The merge gap must be a whole number of days, 0 or more.")
        )
    return merge_gap_days


def check_daily_aqi(daily_aqi: Sequence[int]) -> tuple[int, ...]:
    """The forecast's daily AQI values, refusing an empty forecast and values that are no AQI (0…500)."""
    if isinstance(daily_aqi, str | bytes) or not isinstance(daily_aqi, Sequence):
        raise ForecastInputError(("daily_aqi",), N_("The forecast must be a list of daily AQI values."))
    if not daily_aqi:
        raise ForecastInputError(("daily_aqi",), N_("The forecast must have at least one day."))
    values: list[int] = []
    for i, value in enumerate(daily_aqi):
        location = ("daily_aqi", str(i))
        if value is None:
            raise ForecastInputError(location, N_("Day {day} has no AQI."), day=i + 1)
        number = _number(location, value, top=TOP)
        if not isinstance(value, numbers.Integral):
            # HJ 633—2026 §4.2.6 publishes the AQI as an integer, rounded up
            raise ForecastInputError(location, N_("The daily AQI must be a whole number."))
        values.append(int(number))
    return tuple(values)


def _runs(values: Sequence[int], merge_gap_days: int) -> list[tuple[int, int]]:
    """The runs of days above 200 as (first, last) indexes, runs with short gaps joined into one."""
    runs: list[tuple[int, int]] = []
    for i, value in enumerate(values):
        if value <= HEAVY:
            continue
        if runs and i - runs[-1][1] - 1 <= merge_gap_days:
            runs[-1] = (runs[-1][0], i)  # the next day of the run, or a run after a short gap
        else:
            runs.append((i, i))
    return runs


def _longest_severe(values: Sequence[int]) -> int:
    """The most consecutive days above 300."""
    longest = current = 0
    for value in values:
        current = current + 1 if value > SEVERE else 0
        longest = max(longest, current)
    return longest


def _run_level(values: Sequence[int], scheme: Scheme) -> Level | None:
    """The level one run meets by its length and its days above 300 (§8.2 table)."""
    days = len(values)
    if days >= RED_DAYS and _longest_severe(values) >= RED_SEVERE_DAYS:
        return Level.RED
    if days >= ORANGE_DAYS and any(value > SEVERE for value in values):
        return Level.ORANGE
    if days >= YELLOW_DAYS:
        return Level.YELLOW
    return Level.BLUE if scheme == "local4" else None


def assess(
    daily_aqi: Sequence[int], scheme: Scheme = "national3", *, merge_gap_days: int = 0
) -> Trigger | None:
    """The highest §8.2 level a daily AQI forecast (day 1 first) meets and why; None when it meets none."""
    values = check_daily_aqi(daily_aqi)
    scheme = _check_scheme(scheme)
    gap = _check_gap(merge_gap_days)
    found: list[Trigger] = []
    for first, last in _runs(values, gap):
        span = values[first : last + 1]
        level = _run_level(span, scheme)
        if level is not None:
            found.append(
                Trigger(
                    level=level,
                    scheme=scheme,
                    rule="run",
                    first_day=first + 1,
                    last_day=last + 1,
                    heavy_days=tuple(first + 1 + i for i, value in enumerate(span) if value > HEAVY),
                    severe_days=tuple(first + 1 + i for i, value in enumerate(span) if value > SEVERE),
                    peak=max(span),
                )
            )
    for i, value in enumerate(values):
        if value >= TOP:  # §8.2: red when the daily AQI is forecast to reach 500, however long
            found.append(Trigger(Level.RED, scheme, "aqi500", i + 1, i + 1, (i + 1,), (i + 1,), value))
    if not found:
        return None
    # The highest level wins; among equals the earliest, and a run before the 500 rule on the same day.
    return min(found, key=lambda trigger: (-trigger.level.rank, trigger.first_day, trigger.rule != "run"))


def heavy_pollution_level(
    daily_aqi: Sequence[int], scheme: Scheme = "national3", *, merge_gap_days: int = 0
) -> Level | None:
    """The highest §8.2 warning level a daily AQI forecast (day 1 first) meets; None when it meets none."""
    trigger = assess(daily_aqi, scheme, merge_gap_days=merge_gap_days)
    return None if trigger is None else trigger.level


# --- the life cycle of a city's or a district's warning -----------------------------------------------


@dataclass(frozen=True)
class Policy:
    """How a warning follows the forecasts: the scheme, the episode merge gap and the downgrade hold."""

    scheme: Scheme = "national3"
    # Two runs separated by this many days at 200 or below, or fewer, are one episode (§8.2, 从严).
    merge_gap_days: int = 1
    # A lower level (or none) must come out of this many consecutive forecast updates before the warning
    # is downgraded (or lifted); 1 follows every update at once.
    hold_updates: int = 2

    def __post_init__(self) -> None:
        """Refuse an unknown scheme, a negative gap, or a hold below one update."""
        _check_scheme(self.scheme)
        _check_gap(self.merge_gap_days)
        hold = self.hold_updates
        if isinstance(hold, bool) or not isinstance(hold, int) or hold < 1:
            raise ForecastInputError(
                ("hold_updates",), N_("The hold must be a whole number of updates, 1 or more.")
            )


@dataclass(frozen=True)
class WarningState:
    """A warning in force (or none), and the run of updates that forecast less than it."""

    level: Level | None = None
    lower_updates: int = 0  # consecutive updates whose forecast level was below `level`
    lower_level: Level | None = None  # the highest level those updates forecast (None: none)

    def __post_init__(self) -> None:
        """Refuse a state that cannot arise: a count without a warning, a 'lower' level that is not lower."""
        if self.level is not None and not isinstance(self.level, Level):
            raise ForecastInputError(("previous", "level"), N_("Unknown warning level."))
        if self.lower_level is not None and not isinstance(self.lower_level, Level):
            raise ForecastInputError(("previous", "lower_level"), N_("Unknown warning level."))
        count = self.lower_updates
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ForecastInputError(
                ("previous", "lower_updates"), N_("The count must be a whole number, 0 or more.")
            )
        if self.level is None and (count or self.lower_level is not None):
            raise ForecastInputError(
                ("previous", "lower_updates"), N_("No warning is in force to count against.")
            )
        if count == 0 and self.lower_level is not None:
            raise ForecastInputError(
                ("previous", "lower_level"), N_("A lower level needs at least one update.")
            )
        if _rank(self.lower_level) >= _rank(self.level) and self.level is not None:
            raise ForecastInputError(
                ("previous", "lower_level"), N_("The lower level must be below the warning.")
            )


@dataclass(frozen=True)
class Decision:
    """What to do after a forecast update, the state that follows, and the forecast's level and reason."""

    action: Action
    state: WarningState
    previous: Level | None
    forecast_level: Level | None
    trigger: Trigger | None


def next_state(previous: WarningState, forecast: Sequence[int], policy: Policy | None = None) -> Decision:
    """The warning after a new daily AQI forecast: issue, upgrade, keep, hold, downgrade or lift."""
    # The forecast is judged with the episode merge (two runs with a short gap are one episode), so a
    # warning stays over a short gap instead of being lifted and issued again. Issuing and upgrading
    # follow the forecast at once; a step down waits until `hold_updates` consecutive updates forecast
    # less than the warning, and then goes to the highest level those updates forecast (从严).
    policy = policy or Policy()
    if not isinstance(previous, WarningState):
        raise ForecastInputError(("previous",), N_("The previous state must be a warning state."))
    trigger = assess(forecast, policy.scheme, merge_gap_days=policy.merge_gap_days)
    wanted = None if trigger is None else trigger.level
    current = previous.level

    def decide(action: Action, state: WarningState) -> Decision:
        return Decision(action, state, current, wanted, trigger)

    if _rank(wanted) > _rank(current):
        return decide("issue" if current is None else "upgrade", WarningState(wanted))
    if current is None:
        return decide("none", WarningState())
    if wanted == current:
        return decide("keep", WarningState(current))
    count = previous.lower_updates + 1
    lower = max(previous.lower_level, wanted, key=_rank) if previous.lower_updates else wanted
    if count < policy.hold_updates:
        return decide("hold", WarningState(current, count, lower))
    return decide("lift" if lower is None else "downgrade", WarningState(lower))
