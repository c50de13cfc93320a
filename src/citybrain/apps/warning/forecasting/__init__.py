"""Forecasting for any numeric attribute history: model choice by backtest, forecasts with intervals.

A pure library: it takes a regular UTC series and returns data; storing and serving is the app's job.
"""

from __future__ import annotations

from .backtest import BacktestReport, ModelReport, Scores, backtest, conformal_half_widths
from .calendar import DayKind, LocalCalendar, china_day_kind, weekend_day_kind
from .config import DAILY_MODELS, DEFAULT_MODELS, ForecastConfig
from .errors import (
    ForecastInputError,
    GapTooLongError,
    HorizonOutOfRangeError,
    InvalidConfigError,
    InvalidValueError,
    IrregularTimestampsError,
    SeriesTooShortError,
    UnknownModelError,
)
from .models import BASELINE, MODELS
from .pipeline import Forecast, ForecastResult, Interval, ModelChoice, forecast, forecast_with
from .retraining import RefitDecision, RefitPolicy, refit, refit_due
from .series import Frequency, TimeSeries

__all__ = [
    "BASELINE",
    "DAILY_MODELS",
    "DEFAULT_MODELS",
    "MODELS",
    "BacktestReport",
    "DayKind",
    "Forecast",
    "ForecastConfig",
    "ForecastInputError",
    "ForecastResult",
    "Frequency",
    "GapTooLongError",
    "HorizonOutOfRangeError",
    "Interval",
    "InvalidConfigError",
    "InvalidValueError",
    "IrregularTimestampsError",
    "LocalCalendar",
    "ModelChoice",
    "ModelReport",
    "RefitDecision",
    "RefitPolicy",
    "Scores",
    "SeriesTooShortError",
    "TimeSeries",
    "UnknownModelError",
    "backtest",
    "china_day_kind",
    "conformal_half_widths",
    "forecast",
    "forecast_with",
    "refit",
    "refit_due",
    "weekend_day_kind",
]
