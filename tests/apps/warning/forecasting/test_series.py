from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from citybrain.apps.warning.forecasting import (
    ForecastInputError,
    Frequency,
    GapTooLongError,
    InvalidValueError,
    IrregularTimestampsError,
    SeriesTooShortError,
    TimeSeries,
)

from .conftest import START, hourly_pattern, points


def test_points_on_the_grid_become_a_series_in_utc() -> None:
    shanghai = timezone(timedelta(hours=8))
    stamps = [(START + timedelta(hours=i)).astimezone(shanghai) for i in range(5)]
    series = TimeSeries.from_points(stamps, [1, 2, 3, 4, 5], Frequency.HOURLY)
    assert series.start == START and series.start.tzinfo is not None
    assert series.end == START + timedelta(hours=4)
    assert series.values.tolist() == [1, 2, 3, 4, 5]
    assert series.filled == 0


def test_short_gaps_and_nan_are_interpolated() -> None:
    stamps = [START + timedelta(hours=i) for i in (0, 1, 4, 5)]  # hours 2 and 3 are absent
    series = TimeSeries.from_points(stamps, [0.0, 1.0, None, 5.0], Frequency.HOURLY, max_gap=3)
    # hour 4 is None too, so hours 2-4 (three points) are filled between 1.0 and 5.0
    assert series.values.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert series.filled == 3


def test_missing_values_at_the_ends_are_trimmed() -> None:
    stamps = [START + timedelta(hours=i) for i in range(5)]
    series = TimeSeries.from_points(stamps, [None, 1.0, 2.0, math.nan, None], Frequency.HOURLY)
    assert series.start == START + timedelta(hours=1)
    assert series.values.tolist() == [1.0, 2.0]


def test_a_long_gap_is_refused_with_its_place() -> None:
    stamps = [START + timedelta(hours=i) for i in (0, 1, 6, 7)]
    with pytest.raises(GapTooLongError) as caught:
        TimeSeries.from_points(stamps, [1.0, 2.0, 3.0, 4.0], Frequency.HOURLY, max_gap=3)
    assert caught.value.params["length"] == 4
    assert caught.value.params["at"] == (START + timedelta(hours=2)).isoformat()
    assert isinstance(caught.value, ValueError) and "4 missing points" in str(caught.value)


def test_naive_timestamps_are_refused() -> None:
    naive = [datetime(2026, 3, 2, h) for h in range(3)]
    with pytest.raises(IrregularTimestampsError, match="no time zone"):
        TimeSeries.from_points(naive, [1, 2, 3], Frequency.HOURLY)


def test_off_grid_unsorted_and_duplicate_timestamps_are_refused() -> None:
    off = [START, START + timedelta(hours=1), START + timedelta(hours=2, minutes=30)]
    with pytest.raises(IrregularTimestampsError, match="off the hourly grid") as caught:
        TimeSeries.from_points(off, [1, 2, 3], Frequency.HOURLY)
    assert caught.value.params["index"] == 2
    unsorted = [START, START + timedelta(hours=2), START + timedelta(hours=1)]
    with pytest.raises(IrregularTimestampsError, match="not after"):
        TimeSeries.from_points(unsorted, [1, 2, 3], Frequency.HOURLY)
    duplicate = [START, START, START + timedelta(hours=1)]
    with pytest.raises(IrregularTimestampsError, match="not after"):
        TimeSeries.from_points(duplicate, [1, 2, 3], Frequency.HOURLY)


def test_bad_values_are_refused() -> None:
    stamps = [START + timedelta(hours=i) for i in range(3)]
    with pytest.raises(InvalidValueError, match="infinite"):
        TimeSeries.from_points(stamps, [1.0, math.inf, 2.0], Frequency.HOURLY)
    with pytest.raises(InvalidValueError, match="3 timestamps but 2 values"):
        TimeSeries.from_points(stamps, [1.0, 2.0], Frequency.HOURLY)
    with pytest.raises(SeriesTooShortError):
        TimeSeries.from_points(stamps, [None, None, None], Frequency.HOURLY)
    with pytest.raises(SeriesTooShortError):
        TimeSeries.from_points([], [], Frequency.HOURLY)
    with pytest.raises(InvalidValueError):
        TimeSeries(START, Frequency.HOURLY, np.array([1.0, np.nan]))


def test_every_input_error_is_a_value_error_with_a_code() -> None:
    for error in (GapTooLongError, IrregularTimestampsError, InvalidValueError, SeriesTooShortError):
        assert issubclass(error, ForecastInputError) and issubclass(error, ValueError)
        assert error.code.startswith("forecast.")


def test_frequencies_have_seasons_in_steps() -> None:
    assert Frequency.HOURLY.seasons == (24, 168)
    assert Frequency.MIN15.seasons == (96, 672)
    assert Frequency.DAILY.seasons == (7,)
    assert Frequency.HOURLY.max_horizon == 168


def test_a_series_round_trips_through_points() -> None:
    series = hourly_pattern(1)
    again = TimeSeries.from_points(*points(series), Frequency.HOURLY)
    assert again.start == series.start and np.array_equal(again.values, series.values)
