"""Errors raised for input the forecasting library refuses; each is a ValueError with a stable code."""

from __future__ import annotations

from typing import Any


class ForecastInputError(ValueError):
    """Input the forecaster cannot work with; `code` and `params` let the caller translate the message."""

    code = "forecast.invalid_input"

    def __init__(self, message: str, **params: Any) -> None:
        super().__init__(message)
        self.message = message
        self.params = params


class SeriesTooShortError(ForecastInputError):
    """The series has fewer points than the model fit and the backtest need."""

    code = "forecast.too_short"


class IrregularTimestampsError(ForecastInputError):
    """Timestamps are naive, unsorted, duplicated or off the frequency's grid."""

    code = "forecast.irregular_timestamps"


class GapTooLongError(ForecastInputError):
    """A run of missing values is longer than the configured gap that may be filled."""

    code = "forecast.gap_too_long"


class InvalidValueError(ForecastInputError):
    """A value is infinite, or the lengths of timestamps and values differ."""

    code = "forecast.invalid_value"


class HorizonOutOfRangeError(ForecastInputError):
    """The horizon is below one step or above the frequency's maximum."""

    code = "forecast.horizon_out_of_range"


class UnknownModelError(ForecastInputError):
    """A model name is not one the library knows, or does not apply to the frequency."""

    code = "forecast.unknown_model"


class InvalidConfigError(ForecastInputError):
    """A configuration value (origins, levels, gap length) is out of its range."""

    code = "forecast.invalid_config"
