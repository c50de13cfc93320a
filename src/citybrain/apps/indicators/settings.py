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
    # A compute function that takes longer is abandoned for the round: its indicator is unavailable
    # ("timed out") and the others compute as usual; 0 waits as long as it takes.
    compute_timeout_seconds: float = Field(default=10.0, ge=0, le=600)
    # The demo fills this many hours of history of the indicators whose compute functions read the past
    # (declared with `backfill`), one value an hour, when it starts on a database without it; 0: none.
    demo_backfill_hours: int = Field(default=24, ge=0, le=168)
    # A real-time indicator keeps one history row per area and interval of this many minutes (the last
    # value computed in the interval).
    realtime_minutes: Literal[1, 5, 10, 15, 30, 60] = 5
    # History rows are kept this long.
    retention_days: int = Field(default=400, ge=1, le=3660)
    # The most history points one request returns, and one export.
    max_points: int = Field(default=10_000, ge=100, le=100_000)
    max_export_rows: int = Field(default=100_000, ge=1000, le=1_000_000)
    # The IOC screen (城市运行一屏观全域): the gauges, the district rankings, the trend charts and the map
    # layers it shows (an indicator or layer that is not there is left out), and how long its trends reach.
    screen_gauges: tuple[str, ...] = (
        "environment.aqi",
        "traffic.tpi",
        "iot.devices_online",
        "iot.river_level_ratio",
    )
    screen_rankings: tuple[str, ...] = (
        "environment.aqi",
        "traffic.tpi",
        "iot.river_level_ratio",
        "warning.active",
    )
    screen_trends: tuple[str, ...] = ("environment.aqi", "traffic.tpi", "iot.devices_online")
    screen_trend_hours: int = Field(default=24, ge=1, le=168)
    screen_layers: tuple[str, ...] = ("traffic-segments", "air-quality", "water-levels")
    # The open screen reloads everything this often besides what is pushed to it.
    screen_refresh_seconds: float = Field(default=60.0, ge=5, le=3600)
    # The top of a gauge's scale by indicator; others: 100 for a percentage, else beyond the bad threshold.
    # AQI 0–500: HJ 633 §4.1.1 (standards README §1.4); TPI 0–10: GB/T 33171-2016 §7.2.3.
    screen_gauge_max: dict[str, float] = Field(
        default_factory=lambda: {
            "environment.aqi": 500.0,
            "traffic.tpi": 10.0,
            "iot.river_level_ratio": 150.0,
        }
    )
    # The screen's push stream: a keep-alive comment this often, and a stream ends (the browser reconnects
    # at once) after this long, so a proxy never holds a connection forever.
    stream_keepalive_seconds: float = Field(default=15.0, gt=0, le=120)
    stream_max_seconds: float = Field(default=1800.0, gt=0, le=86400)
