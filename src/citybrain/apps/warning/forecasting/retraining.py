"""When to refit a series' model, and the refit itself; scheduling is left to the caller."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from .config import ForecastConfig
from .models import BASELINE
from .pipeline import ForecastResult, ModelChoice, forecast
from .series import TimeSeries


class RefitDecision(enum.StrEnum):
    """What a series needs: nothing, a refit of its chosen model, or a new choice among all models."""

    NONE = "none"
    REFIT = "refit"
    RESELECT = "reselect"


@dataclass(frozen=True)
class RefitPolicy:
    """Refit after max_age or max_new_points new points; choose again among all models after reselect_age."""

    max_age: timedelta = timedelta(days=1)
    max_new_points: int = 24
    reselect_age: timedelta = timedelta(days=7)


def refit_due(choice: ModelChoice, now: datetime, data_end: datetime, policy: RefitPolicy) -> RefitDecision:
    """Decide from the choice's age and the points that arrived since it was made (a pure function)."""
    age = now - choice.fitted_at
    if age >= policy.reselect_age:
        return RefitDecision.RESELECT
    new_points = max(0, (data_end - choice.data_end) // choice.frequency.step)
    if age >= policy.max_age or new_points >= policy.max_new_points:
        return RefitDecision.REFIT
    return RefitDecision.NONE


def refit(
    series: TimeSeries, previous: ModelChoice | None, config: ForecastConfig, now: datetime
) -> ForecastResult:
    """Refit the previous choice against seasonal-naive; choose among all models when it no longer wins."""
    if previous is None or previous.model == BASELINE or previous.frequency is not series.frequency:
        return forecast(series, config, now)
    result = forecast(series, config, now, models=(BASELINE, previous.model))
    if result.report.chosen == previous.model:
        return result
    return forecast(series, config, now)
