"""The forecasting models: each fits on a history and returns point forecasts for the next steps.

- `seasonal_naive`: the value one week earlier (the baseline every other model must beat).
- `ets`: statsforecast's AutoETS with the daily season (one season of at most 24 steps, so hourly and
  daily data only; compared by default on daily data, where the week is the whole pattern).
- `mstl`: statsforecast's MSTL, one STL decomposition per season (day and week), with an AutoETS trend.
- `lightgbm`: gradient-boosted trees (L1 loss) that learn the correction to the mean of the same step one
  and two weeks earlier, from lags of one and two days and weeks, the mean and spread of the last day and
  week, and calendar features in local time (step of day, weekday, the kind of today and tomorrow:
  China's holidays and adjusted working days). Multi-step forecasts are recursive by days: every feature
  is at least one day (the shortest season) old, so a whole day is predicted in one batch from data, and
  the next day uses those predictions as its lags. One fit serves any horizon, and errors compound once a
  day instead of once a step.

Statistical models come from statsforecast 2, whose core is compiled ahead of time: there is no JIT
compilation on first use. statsforecast and lightgbm are imported by the first fit, not by importing
this module, so the app that imports the library starts fast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .calendar import LocalCalendar
from .errors import UnknownModelError
from .series import FloatArray, Frequency, TimeSeries

BASELINE = "seasonal_naive"


@dataclass(frozen=True)
class ModelContext:
    """What a model may depend on besides the history: the city's calendar and a random seed."""

    calendar: LocalCalendar
    seed: int = 0


FitPredict = Callable[[TimeSeries, int, ModelContext], FloatArray]


def seasonal_naive(history: TimeSeries, horizon: int, context: ModelContext) -> FloatArray:
    """Repeat the last full week (the longest season)."""
    season = history.frequency.longest_season
    values = history.values
    steps = np.arange(1, horizon + 1)
    back = season * np.ceil(steps / season).astype(np.int64)
    return np.asarray(values[len(values) - back + steps - 1], dtype=np.float64)


def ets(history: TimeSeries, horizon: int, context: ModelContext) -> FloatArray:
    """AutoETS with the daily season."""
    from statsforecast.models import AutoETS  # imported on first use: about a second, see the module doc

    season = min(history.frequency.seasons)
    model = AutoETS(season_length=season)
    result = model.forecast(y=history.values, h=horizon)
    return np.asarray(result["mean"], dtype=np.float64)


def mstl(history: TimeSeries, horizon: int, context: ModelContext) -> FloatArray:
    """MSTL on every season the history covers twice, with an AutoETS trend."""
    from statsforecast.models import MSTL, AutoETS

    seasons = [s for s in history.frequency.seasons if len(history) >= 2 * s]
    model = MSTL(season_length=seasons, trend_forecaster=AutoETS(model="ZZN"))
    result = model.forecast(y=history.values, h=horizon)
    return np.asarray(result["mean"], dtype=np.float64)


def _lag_features(buffer: FloatArray, t: int, frequency: Frequency) -> list[float]:
    """Features of point t that use only values at least one day (the shortest season) before it."""
    day, week = frequency.seasons[0], frequency.longest_season
    last_day = buffer[t - 2 * day + 1 : t - day + 1]
    last_week = buffer[t - week - day + 1 : t - day + 1]
    return [
        float(buffer[t - day]),
        float(buffer[t - 2 * day]),
        float(buffer[t - week]),
        float(buffer[t - 2 * week]),
        float((buffer[t - week] + buffer[t - 2 * week]) / 2),
        float(last_day.mean()),
        float(last_day.std()),
        float(last_week.mean()),
        float(last_week.std()),
    ]


def _first_row(frequency: Frequency) -> int:
    return 2 * frequency.longest_season


def lightgbm_daily_recursive(history: TimeSeries, horizon: int, context: ModelContext) -> FloatArray:
    """Gradient-boosted trees on lag, rolling and calendar features, forecast one day at a time."""
    import lightgbm

    frequency = history.frequency
    day = frequency.seasons[0]
    y = history.values
    n = len(y)
    first = _first_row(frequency)
    steps_per_day = 1 if frequency is Frequency.DAILY else day
    lags = np.array([_lag_features(y, t, frequency) for t in range(first, n)])
    calendar = context.calendar.features(history.timestamps(first), steps_per_day)
    params = {
        "objective": "regression_l1",
        "learning_rate": 0.05,
        "num_leaves": 15,
        "min_data_in_leaf": 50,
        "lambda_l2": 10.0,
        "feature_fraction": 0.9,
        "num_threads": 1,
        "deterministic": True,
        "seed": context.seed,
        "verbose": -1,
    }
    # The trees learn the correction to the mean of the same step one and two weeks earlier (feature 4):
    # a tree maps a lag to the target only piecewise-constantly, a correction loses far less to that.
    dataset = lightgbm.Dataset(np.column_stack((lags, calendar)), y[first:] - lags[:, 4])
    booster = lightgbm.train(params, dataset, num_boost_round=150)
    future = context.calendar.features(history.timestamps(n, horizon), steps_per_day)
    buffer = np.concatenate((y, np.zeros(horizon)))
    for block in range(0, horizon, day):
        stop = min(horizon, block + day)
        rows = np.array([_lag_features(buffer, n + step, frequency) for step in range(block, stop)])
        predicted = booster.predict(np.column_stack((rows, future[block:stop])))
        buffer[n + block : n + stop] = rows[:, 4] + np.asarray(predicted, dtype=np.float64)
    return buffer[n:].copy()


MODELS: dict[str, FitPredict] = {
    BASELINE: seasonal_naive,
    "ets": ets,
    "mstl": mstl,
    "lightgbm": lightgbm_daily_recursive,
}


def applies(name: str, frequency: Frequency) -> bool:
    """Whether model `name` is meaningful at this frequency (ETS needs a season of at most 24 steps)."""
    if name == "ets":
        return min(frequency.seasons) <= 24
    return name in MODELS


def resolve(name: str, frequency: Frequency) -> FitPredict:
    """The fit-and-forecast function of model `name`, or UnknownModelError."""
    if name not in MODELS:
        raise UnknownModelError(f"unknown model {name!r}; known: {', '.join(MODELS)}", model=name)
    if not applies(name, frequency):
        raise UnknownModelError(f"model {name!r} does not apply to {frequency.value} data", model=name)
    return MODELS[name]
