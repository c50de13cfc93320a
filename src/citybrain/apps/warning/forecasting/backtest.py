"""Rolling-origin backtest: every model is refitted at several origins and scored on the next steps.

Origins are `step_between_origins` apart and the last one leaves exactly one horizon of data after it.
At each origin a model sees only the points before it (at most the training window), so the scores are
honest out-of-sample errors. MAPE skips points whose actual value is zero (a percentage of zero is
undefined); how many were skipped is reported, and MAPE is None when every actual was zero.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from .config import ForecastConfig
from .models import BASELINE, ModelContext, resolve
from .series import FloatArray, TimeSeries


@dataclass(frozen=True)
class Scores:
    """MAE, RMSE and MAPE (in percent) of one set of errors, with the count of zero actuals skipped."""

    mae: float
    rmse: float
    mape: float | None
    mape_skipped: int

    @classmethod
    def of(cls, errors: FloatArray, actuals: FloatArray) -> Scores:
        """Score errors (actual minus forecast) against the actual values."""
        nonzero = actuals != 0
        skipped = int(errors.size - np.count_nonzero(nonzero))
        mape = float(np.mean(np.abs(errors[nonzero] / actuals[nonzero])) * 100) if nonzero.any() else None
        return cls(
            mae=float(np.mean(np.abs(errors))),
            rmse=float(np.sqrt(np.mean(errors**2))),
            mape=mape,
            mape_skipped=skipped,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"mae": self.mae, "rmse": self.rmse, "mape": self.mape, "mape_skipped": self.mape_skipped}


@dataclass(frozen=True)
class ModelReport:
    """One model's backtest: overall and per-step scores, the time spent and the raw errors."""

    model: str
    overall: Scores
    by_step: tuple[Scores, ...]
    seconds: float
    errors: FloatArray = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (without the raw errors)."""
        return {
            "model": self.model,
            **self.overall.to_dict(),
            "seconds": self.seconds,
            "by_step": [s.to_dict() for s in self.by_step],
        }


@dataclass(frozen=True)
class BacktestReport:
    """Every model's backtest on one series, the chosen model and its margin over seasonal-naive."""

    horizon: int
    origins: tuple[datetime, ...]
    models: dict[str, ModelReport]
    chosen: str

    @property
    def margin(self) -> float:
        """How much lower the chosen model's MAE is than seasonal-naive's, as a fraction of the latter."""
        baseline = self.models[BASELINE].overall.mae
        if baseline == 0:
            return 0.0
        return 1.0 - self.models[self.chosen].overall.mae / baseline

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "horizon": self.horizon,
            "origins": [o.isoformat() for o in self.origins],
            "chosen": self.chosen,
            "margin_over_seasonal_naive": self.margin,
            "models": {name: report.to_dict() for name, report in self.models.items()},
        }


def origin_indices(length: int, config: ForecastConfig) -> list[int]:
    """Indices of the first forecast point at each origin, oldest first."""
    last = length - config.horizon
    step = config.step_between_origins()
    return [last - k * step for k in reversed(range(config.origins))]


def backtest(
    series: TimeSeries, config: ForecastConfig, models: tuple[str, ...] | None = None
) -> BacktestReport:
    """Backtest the configured (or given) models on the series and choose the lowest overall MAE."""
    config.check(series)
    names = models if models is not None else config.candidates(series.frequency)
    if BASELINE not in names:
        names = (BASELINE, *names)
    context = ModelContext(config.calendar, config.seed)
    window = config.training_window(series.frequency)
    starts = origin_indices(len(series), config)
    horizon = config.horizon
    actuals = np.stack([series.values[s : s + horizon] for s in starts])
    reports: dict[str, ModelReport] = {}
    for name in names:
        fit_predict = resolve(name, series.frequency)
        errors = np.empty_like(actuals)
        began = time.perf_counter()
        for row, start in enumerate(starts):
            history = series.head(start).tail(window)
            forecast = fit_predict(history, horizon, context)
            if series.values[:start].min() >= 0:
                forecast = np.maximum(forecast, 0.0)
            errors[row] = actuals[row] - forecast
        seconds = time.perf_counter() - began
        reports[name] = ModelReport(
            model=name,
            overall=Scores.of(errors.ravel(), actuals.ravel()),
            by_step=tuple(Scores.of(errors[:, h], actuals[:, h]) for h in range(horizon)),
            seconds=seconds,
            errors=errors,
        )
    chosen = min(names, key=lambda n: (reports[n].overall.mae, names.index(n)))
    return BacktestReport(
        horizon=horizon,
        origins=tuple(series.timestamp(s) for s in starts),
        models=reports,
        chosen=chosen,
    )


def conformal_half_widths(errors: FloatArray, level: float) -> FloatArray:
    """Per-step interval half-widths: a conformal quantile of absolute backtest errors near each step.

    Step h pools the absolute errors of every origin at steps h - w .. h + w (w = horizon // 12), so the
    width grows with the horizon while a handful of origins still gives enough errors; the quantile is
    the ceil((n + 1) * level)-th smallest of the n pooled errors (the largest when n is too small).
    """
    absolute = np.abs(errors)
    horizon = absolute.shape[1]
    w = horizon // 12
    widths = np.empty(horizon)
    for h in range(horizon):
        pool = np.sort(absolute[:, max(0, h - w) : h + w + 1].ravel())
        rank = min(int(np.ceil((pool.size + 1) * level)), pool.size)
        widths[h] = pool[rank - 1]
    return widths
