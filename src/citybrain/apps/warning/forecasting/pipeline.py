"""Choose a model per series by backtest, refit it on the latest data and forecast with intervals."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from .backtest import BacktestReport, backtest, conformal_half_widths
from .config import ForecastConfig
from .errors import UnknownModelError
from .models import BASELINE, ModelContext, resolve
from .series import Frequency, TimeSeries


@dataclass(frozen=True)
class Interval:
    """Lower and upper bounds at one level for every forecast step."""

    level: float
    lower: tuple[float, ...]
    upper: tuple[float, ...]


@dataclass(frozen=True)
class Forecast:
    """Point forecasts and prediction intervals of one model for the steps after the series ends."""

    model: str
    timestamps: tuple[datetime, ...]
    mean: tuple[float, ...]
    intervals: tuple[Interval, ...]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with ISO 8601 UTC timestamps."""
        return {
            "model": self.model,
            "timestamps": [t.isoformat() for t in self.timestamps],
            "mean": list(self.mean),
            "intervals": [
                {"level": i.level, "lower": list(i.lower), "upper": list(i.upper)} for i in self.intervals
            ],
        }


@dataclass(frozen=True)
class ModelChoice:
    """Which model a series uses, when it was chosen and on what data: the input of the refit hook."""

    model: str
    frequency: Frequency
    fitted_at: datetime
    data_end: datetime
    points: int
    mae: float
    baseline_mae: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "model": self.model,
            "frequency": self.frequency.value,
            "fitted_at": self.fitted_at.isoformat(),
            "data_end": self.data_end.isoformat(),
            "points": self.points,
            "mae": self.mae,
            "baseline_mae": self.baseline_mae,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelChoice:
        """Read back what to_dict wrote."""
        return cls(
            model=str(data["model"]),
            frequency=Frequency(data["frequency"]),
            fitted_at=datetime.fromisoformat(data["fitted_at"]),
            data_end=datetime.fromisoformat(data["data_end"]),
            points=int(data["points"]),
            mae=float(data["mae"]),
            baseline_mae=float(data["baseline_mae"]),
        )


@dataclass(frozen=True)
class ForecastResult:
    """The forecast of the chosen model, the backtest it was chosen by and the choice to keep."""

    forecast: Forecast
    report: BacktestReport
    choice: ModelChoice


def forecast_with(series: TimeSeries, model: str, report: BacktestReport, config: ForecastConfig) -> Forecast:
    """Refit `model` on the latest window of the series; intervals come from its backtest errors."""
    if model not in report.models:
        raise UnknownModelError(f"model {model!r} was not backtested on this series", model=model)
    fit_predict = resolve(model, series.frequency)
    history = series.tail(config.training_window(series.frequency))
    mean = fit_predict(history, config.horizon, ModelContext(config.calendar, config.seed))
    nonnegative = bool(series.values.min() >= 0)
    if nonnegative:
        mean = np.maximum(mean, 0.0)
    intervals = []
    for level in config.levels:
        width = conformal_half_widths(report.models[model].errors, level)
        lower = np.maximum(mean - width, 0.0) if nonnegative else mean - width
        intervals.append(Interval(level, tuple(lower.tolist()), tuple((mean + width).tolist())))
    return Forecast(
        model=model,
        timestamps=tuple(series.timestamps(len(series), config.horizon)),
        mean=tuple(mean.tolist()),
        intervals=tuple(intervals),
    )


def forecast(
    series: TimeSeries, config: ForecastConfig, now: datetime, models: tuple[str, ...] | None = None
) -> ForecastResult:
    """Backtest the candidate models, choose the lowest MAE and forecast with it."""
    report = backtest(series, config, models)
    result = forecast_with(series, report.chosen, report, config)
    choice = ModelChoice(
        model=report.chosen,
        frequency=series.frequency,
        fitted_at=now,
        data_end=series.end,
        points=len(series),
        mae=report.models[report.chosen].overall.mae,
        baseline_mae=report.models[BASELINE].overall.mae,
    )
    return ForecastResult(result, report, choice)
