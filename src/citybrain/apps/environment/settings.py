"""The environment app's settings, read from CITYBRAIN_ENVIRONMENT_* (declared in the app's AppSpec)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from citybrain.sdk import AppSettings


class EnvironmentSettings(AppSettings):
    """Which context entities are stations and forecasts, how long the trends are, how warnings follow forecasts."""

    model_config = SettingsConfigDict(env_prefix="CITYBRAIN_ENVIRONMENT_", env_file=".env", extra="ignore")

    # The entity type of the air-quality stations in the context broker (Smart Data Models name).
    station_type: str = Field(default="AirQualityObserved", min_length=1, max_length=256)
    # The tenant whose stations the pages and the API show ('' is the default tenant).
    tenant: str = Field(default="", max_length=64, pattern=r"^[A-Za-z0-9_\-]*$")
    # Hours of hourly AQI the trends show (the last full hours).
    trend_hours: int = Field(default=24, ge=1, le=168)
    # The most stations read at once.
    max_stations: int = Field(default=2000, ge=1, le=100_000)
    # How long a process reuses the live picture it computed (hourly means change when an hour completes,
    # or when late readings arrive); 0: compute on every request.
    cache_seconds: float = Field(default=30.0, ge=0, le=3600)
    # The entity type of the daily-AQI forecasts (Smart Data Models name); heavy-pollution warnings are
    # graded from them (standards notes §8.2).
    forecast_type: str = Field(default="AirQualityForecast", min_length=1, max_length=256)
    # The heavy-pollution level scheme: national3 (黄橙红, 环办大气函〔2018〕875号) or local4 (蓝黄橙红).
    heavy_pollution_scheme: Literal["national3", "local4"] = "national3"
    # Runs of heavy days separated by this many days or fewer are one episode (§8.2, 从严).
    heavy_pollution_merge_gap_days: int = Field(default=1, ge=0, le=10)
    # Consecutive forecast bulletins that must forecast less before a warning is lowered or lifted.
    heavy_pollution_hold_updates: int = Field(default=2, ge=1, le=10)
