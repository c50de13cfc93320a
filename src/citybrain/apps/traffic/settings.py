"""The traffic app's settings, read from CITYBRAIN_TRAFFIC_* (declared in the app's AppSpec)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from citybrain.sdk import AppSettings


class TrafficSettings(AppSettings):
    """Which entities are traffic detectors, how often the index is recorded, how free flow is learned."""

    model_config = SettingsConfigDict(env_prefix="CITYBRAIN_TRAFFIC_", env_file=".env", extra="ignore")

    # The entity type of the traffic detectors (Smart Data Models name) and the tenant they live in.
    detector_type: str = Field(default="TrafficFlowObserved", min_length=1, max_length=256)
    tenant: str = Field(default="", max_length=64, pattern=r"^[A-Za-z0-9_\-]*$")
    # The most detectors read at once.
    max_detectors: int = Field(default=5000, ge=1, le=100_000)
    # A detector reading older than this is not a current speed (GB/T 33171 §7.2.1.3: intervals ≤ 5 min).
    stale_minutes: float = Field(default=5.0, gt=0, le=60)
    # The index is recorded for the city and each district once per interval (§7.2.3: at most 15 minutes).
    record_minutes: Literal[5, 15] = 5
    # Recorded index values are kept this long.
    retention_days: int = Field(default=400, ge=1, le=3660)
    # Free-flow speeds (§7.2.1.2) are learned from this many days of history, once every `learn_hours`.
    free_flow_lookback_days: int = Field(default=35, ge=1, le=400)
    free_flow_min_days: int = Field(default=30, ge=1, le=400)
    learn_hours: float = Field(default=24.0, gt=0, le=24 * 30)
    # Network weights: "vkt" (vehicle kilometres, §3.13; length where a flow is missing) or "length".
    weighting: Literal["vkt", "length"] = "vkt"
    # Whether the current speed of each road is handed to the geo app (its road layer and routes).
    publish_road_speeds: bool = True
    # Whether the segments and their grades are published to the context broker as RoadSegment entities
    # (the map layer "traffic-segments" draws them; other apps can read and subscribe to them).
    publish_segments: bool = True
