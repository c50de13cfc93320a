from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from citybrain.apps.warning.forecasting import (
    BASELINE,
    ForecastConfig,
    ModelChoice,
    RefitDecision,
    RefitPolicy,
    UnknownModelError,
    forecast,
    forecast_with,
    refit,
    refit_due,
)

from .conftest import hourly_pattern

NOW = datetime(2026, 11, 25, 8, tzinfo=UTC)
CONFIG = ForecastConfig(horizon=24, origins=4, models=(BASELINE, "mstl"))


def test_forecast_after_the_series_with_intervals_that_cover() -> None:
    full = hourly_pattern(weeks=5, noise=5.0, seed=7)
    series, future = full.head(len(full) - 24), full.values[-24:]
    result = forecast(series, CONFIG, NOW)
    out = result.forecast
    assert out.model == result.report.chosen == "mstl"
    assert out.timestamps[0] == series.end + timedelta(hours=1) and len(out.timestamps) == 24
    assert [i.level for i in out.intervals] == [0.8, 0.95]
    lower80, upper80 = np.array(out.intervals[0].lower), np.array(out.intervals[0].upper)
    lower95, upper95 = np.array(out.intervals[1].lower), np.array(out.intervals[1].upper)
    mean = np.array(out.mean)
    assert np.all(lower95 <= lower80) and np.all(lower80 <= mean) and np.all(mean <= upper80)
    assert np.all(upper80 <= upper95)
    covered = np.mean((future >= lower95) & (future <= upper95))
    assert covered >= 0.8  # roughly its level on unseen data
    assert result.choice.model == "mstl" and result.choice.data_end == series.end
    assert result.choice.mae < result.choice.baseline_mae
    assert out.to_dict()["timestamps"][0].endswith("+00:00")


def test_non_negative_series_get_non_negative_forecasts() -> None:
    series = hourly_pattern(weeks=4, noise=5.0)
    shifted = type(series)(series.start, series.frequency, np.maximum(series.values - 100, 0))
    result = forecast(shifted, CONFIG, NOW)
    assert min(result.forecast.mean) >= 0
    assert all(min(i.lower) >= 0 for i in result.forecast.intervals)


def test_every_model_gets_intervals_but_only_if_backtested() -> None:
    series = hourly_pattern(weeks=4)
    result = forecast(series, CONFIG, NOW)
    naive = forecast_with(series, BASELINE, result.report, CONFIG)
    assert naive.model == BASELINE and len(naive.intervals) == 2
    with pytest.raises(UnknownModelError):
        forecast_with(series, "lightgbm", result.report, CONFIG)


def choice(model: str = "mstl", hours_ago: float = 0, data_end_hours_ago: float = 0) -> ModelChoice:
    return ModelChoice(
        model=model,
        frequency=hourly_pattern(1).frequency,
        fitted_at=NOW - timedelta(hours=hours_ago),
        data_end=NOW - timedelta(hours=data_end_hours_ago),
        points=1000,
        mae=1.0,
        baseline_mae=2.0,
    )


def test_refit_is_due_by_age_or_new_data() -> None:
    policy = RefitPolicy(max_age=timedelta(hours=24), max_new_points=12, reselect_age=timedelta(days=7))
    assert refit_due(choice(hours_ago=1, data_end_hours_ago=6), NOW, NOW, policy) is RefitDecision.NONE
    assert refit_due(choice(hours_ago=1, data_end_hours_ago=12), NOW, NOW, policy) is RefitDecision.REFIT
    assert refit_due(choice(hours_ago=24), NOW, NOW, policy) is RefitDecision.REFIT
    assert refit_due(choice(hours_ago=24 * 7), NOW, NOW, policy) is RefitDecision.RESELECT


def test_a_choice_round_trips_through_a_dict() -> None:
    original = choice()
    assert ModelChoice.from_dict(original.to_dict()) == original


def test_refit_keeps_a_winning_model_and_reselects_a_losing_one() -> None:
    series = hourly_pattern(weeks=4, noise=5.0)
    config = ForecastConfig(horizon=24, origins=3, models=(BASELINE, "mstl", "lightgbm"))
    kept = refit(series, choice("mstl"), config, NOW)
    assert kept.forecast.model == "mstl" and set(kept.report.models) == {BASELINE, "mstl"}
    # the same week over and over: last week is exact, so MSTL loses and every model is compared again
    week = hourly_pattern(weeks=1, noise=5.0).values
    repeated = type(series)(series.start, series.frequency, np.tile(week, 4))
    again = refit(repeated, choice("mstl"), config, NOW)
    assert set(again.report.models) == {BASELINE, "mstl", "lightgbm"}
    assert again.report.chosen == BASELINE and again.report.models[BASELINE].overall.mae == 0
    first = refit(series, None, config, NOW)
    assert set(first.report.models) == {BASELINE, "mstl", "lightgbm"}
