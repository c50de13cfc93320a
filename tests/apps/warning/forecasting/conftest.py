"""Synthetic series with known seasonality for the forecasting tests."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from citybrain.apps.warning.forecasting import Frequency, TimeSeries

START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday, 08:00 in Mianyang


def hourly_pattern(weeks: int, noise: float = 2.0, seed: int = 1) -> TimeSeries:
    """Hourly values with a daily cycle, quieter weekends and Gaussian noise."""
    n = weeks * 168
    t = np.arange(n)
    rng = np.random.default_rng(seed)
    local_hour = (t + 8) % 24
    weekday = ((t + 8) // 24) % 7
    values = (
        100 + 40 * np.sin(2 * np.pi * (local_hour - 6) / 24) - 30 * (weekday >= 5) + rng.normal(0, noise, n)
    )
    return TimeSeries(START, Frequency.HOURLY, values)


def points(series: TimeSeries) -> tuple[list[datetime], list[float | None]]:
    """The series as separate timestamps and values, as a caller would send them."""
    return series.timestamps(), [float(v) for v in series.values]
