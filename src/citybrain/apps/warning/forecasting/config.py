"""The forecasting configuration, checked against a series before any model runs."""

from __future__ import annotations

from dataclasses import dataclass, field

from .calendar import LocalCalendar
from .errors import HorizonOutOfRangeError, InvalidConfigError, SeriesTooShortError, UnknownModelError
from .models import BASELINE, MODELS, applies
from .series import Frequency, TimeSeries

# AutoETS has one season of at most 24 steps; on hourly data it misses the weekly pattern and costs the
# most, so below daily the default compares MSTL (both seasons) and LightGBM with the baseline.
DEFAULT_MODELS = (BASELINE, "mstl", "lightgbm")
DAILY_MODELS = (BASELINE, "ets", "mstl", "lightgbm")


@dataclass(frozen=True)
class ForecastConfig:
    """Horizon, backtest origins, interval levels, candidate models and the city's calendar."""

    horizon: int = 24
    origins: int = 5
    origin_step: int | None = None
    levels: tuple[float, ...] = (0.8, 0.95)
    models: tuple[str, ...] | None = None
    max_train: int | None = None
    calendar: LocalCalendar = field(default_factory=LocalCalendar)
    seed: int = 0

    def step_between_origins(self) -> int:
        """Steps between two backtest origins (default: the horizon, so test windows do not overlap)."""
        return self.origin_step if self.origin_step is not None else self.horizon

    def training_window(self, frequency: Frequency) -> int:
        """How many of the latest points a model is fitted on."""
        return self.max_train if self.max_train is not None else frequency.default_max_train

    def candidates(self, frequency: Frequency) -> tuple[str, ...]:
        """The models to compare at this frequency, the baseline first; those that do not apply are left out."""
        default = DAILY_MODELS if frequency is Frequency.DAILY else DEFAULT_MODELS
        names = self.models if self.models is not None else default
        rest = [m for m in dict.fromkeys(names) if m != BASELINE and applies(m, frequency)]
        return (BASELINE, *rest)

    def min_length(self, frequency: Frequency) -> int:
        """The fewest points a series needs: a minimal training window plus every backtest window."""
        return frequency.min_train + (self.origins - 1) * self.step_between_origins() + self.horizon

    def check(self, series: TimeSeries) -> None:
        """Raise a ForecastInputError when this configuration cannot run on the series."""
        frequency = series.frequency
        if not 1 <= self.horizon <= frequency.max_horizon:
            raise HorizonOutOfRangeError(
                f"horizon {self.horizon} is out of range: 1 to {frequency.max_horizon} steps for "
                f"{frequency.value} data",
                horizon=self.horizon,
                max_horizon=frequency.max_horizon,
            )
        if not 1 <= self.origins <= 100:
            raise InvalidConfigError(f"origins must be 1 to 100, not {self.origins}", origins=self.origins)
        if self.origin_step is not None and self.origin_step < 1:
            raise InvalidConfigError(
                "the step between origins must be at least 1", origin_step=self.origin_step
            )
        if not self.levels or not all(0 < level < 1 for level in self.levels):
            raise InvalidConfigError("interval levels must lie strictly between 0 and 1", levels=self.levels)
        if self.max_train is not None and self.max_train < frequency.min_train:
            raise InvalidConfigError(
                f"the training window must be at least {frequency.min_train} points", max_train=self.max_train
            )
        for name in self.models or ():
            if name not in MODELS:
                raise UnknownModelError(f"unknown model {name!r}; known: {', '.join(MODELS)}", model=name)
        needed = self.min_length(frequency)
        if len(series) < needed:
            raise SeriesTooShortError(
                f"the series has {len(series)} points; {needed} are needed for horizon {self.horizon} with "
                f"{self.origins} backtest origins on {frequency.value} data",
                length=len(series),
                needed=needed,
            )
