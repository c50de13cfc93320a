from __future__ import annotations

import numpy as np
import pytest

from citybrain.apps.warning.forecasting import (
    BASELINE,
    Frequency,
    LocalCalendar,
    TimeSeries,
    UnknownModelError,
)
from citybrain.apps.warning.forecasting.models import MODELS, ModelContext, applies, resolve

from .conftest import START, hourly_pattern

CONTEXT = ModelContext(LocalCalendar())


def test_seasonal_naive_repeats_the_last_week() -> None:
    values = np.arange(2 * 168, dtype=float)
    series = TimeSeries(START, Frequency.HOURLY, values)
    forecast = resolve(BASELINE, Frequency.HOURLY)(series, 170, CONTEXT)
    assert forecast[:168].tolist() == values[-168:].tolist()
    assert forecast[168:].tolist() == values[-168:-166].tolist()


def test_ets_learns_a_weekly_pattern_in_daily_data() -> None:
    t = np.arange(16 * 7)
    values = 50 + 20 * (t % 7 >= 5) + np.random.default_rng(2).normal(0, 1, t.size)
    series = TimeSeries(START, Frequency.DAILY, values)
    forecast = resolve("ets", Frequency.DAILY)(series.head(len(series) - 14), 14, CONTEXT)
    assert np.mean(np.abs(forecast - values[-14:])) < 3


@pytest.mark.parametrize("name", ["mstl", "lightgbm"])
def test_every_model_learns_a_clean_seasonal_pattern(name: str) -> None:
    series = hourly_pattern(weeks=4, noise=1.0)
    history, future = series.head(len(series) - 24), series.values[-24:]
    forecast = resolve(name, Frequency.HOURLY)(history, 24, CONTEXT)
    assert forecast.shape == (24,) and np.all(np.isfinite(forecast))
    # the pattern swings by 80 around 100; a model that learnt it is within a few units
    assert np.mean(np.abs(forecast - future)) < 6


def test_models_that_do_not_fit_a_frequency_are_refused() -> None:
    assert applies("ets", Frequency.HOURLY) and applies("ets", Frequency.DAILY)
    assert not applies("ets", Frequency.MIN15)
    with pytest.raises(UnknownModelError, match="does not apply"):
        resolve("ets", Frequency.MIN15)
    with pytest.raises(UnknownModelError, match="unknown model 'prophet'"):
        resolve("prophet", Frequency.HOURLY)
    assert set(MODELS) == {BASELINE, "ets", "mstl", "lightgbm"}


def test_lightgbm_forecasts_beyond_one_day_and_is_deterministic() -> None:
    series = hourly_pattern(weeks=4, noise=1.0)
    first = resolve("lightgbm", Frequency.HOURLY)(series, 60, CONTEXT)
    second = resolve("lightgbm", Frequency.HOURLY)(series, 60, CONTEXT)
    assert first.shape == (60,) and np.array_equal(first, second)
    # two and a half days ahead, the daily cycle is still there
    assert first.max() - first.min() > 50
