from __future__ import annotations

import numpy as np
import pytest

from citybrain.apps.warning.forecasting import (
    BASELINE,
    ForecastConfig,
    Frequency,
    HorizonOutOfRangeError,
    InvalidConfigError,
    Scores,
    SeriesTooShortError,
    TimeSeries,
    UnknownModelError,
    backtest,
    conformal_half_widths,
)
from citybrain.apps.warning.forecasting.backtest import origin_indices

from .conftest import START, hourly_pattern


def test_scores_and_the_mape_of_zero_actuals() -> None:
    scores = Scores.of(np.array([1.0, -3.0, 2.0]), np.array([10.0, 0.0, 4.0]))
    assert scores.mae == pytest.approx(2.0)
    assert scores.rmse == pytest.approx(np.sqrt(14 / 3))
    assert scores.mape == pytest.approx((10 + 50) / 2)  # the zero actual is skipped
    assert scores.mape_skipped == 1
    assert Scores.of(np.array([1.0]), np.array([0.0])).mape is None


def test_origins_leave_one_horizon_after_the_last() -> None:
    config = ForecastConfig(horizon=24, origins=3)
    assert origin_indices(1000, config) == [928, 952, 976]
    assert origin_indices(1000, ForecastConfig(horizon=24, origins=3, origin_step=6)) == [964, 970, 976]


def test_the_backtest_scores_every_model_per_step_and_chooses_one_that_beats_naive() -> None:
    series = hourly_pattern(weeks=4, noise=6.0)
    config = ForecastConfig(horizon=24, origins=3, models=(BASELINE, "mstl", "lightgbm"))
    report = backtest(series, config)
    assert set(report.models) == {BASELINE, "mstl", "lightgbm"}
    assert len(report.origins) == 3 and report.origins[-1] == series.timestamp(len(series) - 24)
    for model in report.models.values():
        assert len(model.by_step) == 24 and model.errors.shape == (3, 24)
        assert model.overall.mae == pytest.approx(np.mean(np.abs(model.errors)))
        assert model.overall.rmse >= model.overall.mae
    # weekly naive carries last week's noise; smoothing models average it out
    assert report.chosen != BASELINE and report.margin > 0.1  # at best 1 - 1/sqrt(2) with pure noise
    assert report.models[report.chosen].overall.mae == min(m.overall.mae for m in report.models.values())
    data = report.to_dict()
    assert data["chosen"] == report.chosen and len(data["models"][BASELINE]["by_step"]) == 24


def test_conformal_widths_grow_with_the_level_and_cover_the_errors() -> None:
    rng = np.random.default_rng(3)
    errors = rng.normal(0, 1, (10, 24))
    narrow, wide = conformal_half_widths(errors, 0.8), conformal_half_widths(errors, 0.95)
    assert np.all(wide >= narrow)
    assert 0.75 <= np.mean(np.abs(errors) <= narrow[None, :]) <= 0.95
    assert conformal_half_widths(errors[:1, :1], 0.99)[0] == abs(errors[0, 0])  # too few: the largest


def test_too_short_series_and_bad_horizons_are_refused() -> None:
    series = hourly_pattern(weeks=2)
    with pytest.raises(SeriesTooShortError, match="336 points; 648 are needed") as caught:
        backtest(series, ForecastConfig(horizon=24, origins=6))
    assert caught.value.params == {"length": 336, "needed": 648}
    longer = hourly_pattern(weeks=3)
    for horizon in (0, -1, 169):
        with pytest.raises(HorizonOutOfRangeError, match="1 to 168"):
            backtest(longer, ForecastConfig(horizon=horizon))
    with pytest.raises(InvalidConfigError):
        backtest(longer, ForecastConfig(origins=0))
    with pytest.raises(InvalidConfigError):
        backtest(longer, ForecastConfig(levels=(0.8, 1.0)))
    with pytest.raises(InvalidConfigError):
        backtest(longer, ForecastConfig(max_train=100))
    with pytest.raises(UnknownModelError):
        backtest(longer, ForecastConfig(models=("arima",)))


def test_daily_series_work_too() -> None:
    n = 120
    t = np.arange(n)
    values = 50 + 10 * (t % 7 >= 5) + np.random.default_rng(5).normal(0, 4, n)
    series = TimeSeries(START, Frequency.DAILY, values)
    report = backtest(series, ForecastConfig(horizon=7, origins=3, models=(BASELINE, "ets", "lightgbm")))
    assert set(report.models) == {BASELINE, "ets", "lightgbm"}
    assert report.chosen != BASELINE


def test_quarter_hour_series_use_daily_and_weekly_seasons_of_their_own() -> None:
    n = 4 * 672 + 96
    t = np.arange(n)
    values = 20 + 10 * np.sin(2 * np.pi * t / 96) + np.random.default_rng(9).normal(0, 1, n)
    series = TimeSeries(START, Frequency.MIN15, values)
    config = ForecastConfig(horizon=96, origins=2, models=(BASELINE, "ets", "lightgbm"))
    report = backtest(series, config)
    assert set(report.models) == {BASELINE, "lightgbm"}  # ETS does not apply to a 96-step season
    assert report.chosen == "lightgbm" and report.margin > 0.1
