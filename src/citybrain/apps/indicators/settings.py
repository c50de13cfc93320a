"""The indicators app's settings, read from CITYBRAIN_INDICATORS_* (declared in the app's AppSpec)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from citybrain.sdk import AppSettings


class IndicatorsSettings(AppSettings):
    """How often the indicators are computed, how finely real-time values are kept, and for how long."""

    model_config = SettingsConfigDict(env_prefix="CITYBRAIN_INDICATORS_", env_file=".env", extra="ignore")

    # Real-time indicators are computed this often (hourly ones every `hourly_refresh_minutes`, daily ones
    # every `daily_refresh_minutes`); 0 turns the scheduler off.
    compute_seconds: float = Field(default=60.0, ge=0, le=3600)
    hourly_refresh_minutes: float = Field(default=5.0, gt=0, le=60)
    daily_refresh_minutes: float = Field(default=60.0, gt=0, le=1440)
    # A real-time indicator keeps one history row per area and interval of this many minutes (the last
    # value computed in the interval).
    realtime_minutes: Literal[1, 5, 10, 15, 30, 60] = 5
    # History rows are kept this long.
    retention_days: int = Field(default=400, ge=1, le=3660)
    # The most history points one request returns, and one export.
    max_points: int = Field(default=10_000, ge=100, le=100_000)
    max_export_rows: int = Field(default=100_000, ge=1000, le=1_000_000)
