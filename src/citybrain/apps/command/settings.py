"""The command app's settings, read from CITYBRAIN_COMMAND_* (declared in the app's AppSpec)."""

from __future__ import annotations

from datetime import time
from typing import Annotated, Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from citybrain.sdk import AppSettings

# A time limit: a number of working hours ("4h") or working days ("3d").
LIMIT_RE = r"^[1-9][0-9]{0,3}[hd]$"


class CommandSettings(AppSettings):
    """Office hours, time limits, the deadline scan, warnings becoming events, emergency routing, 并单 and 延期."""

    model_config = SettingsConfigDict(env_prefix="CITYBRAIN_COMMAND_", env_file=".env", extra="ignore")

    # Working hours are counted inside this daily window on working days (China's calendar, local time).
    office_start: time = time(9, 0)
    office_end: time = time(17, 0)
    # Overrides of declared time limits: {"hotline.noise": {"handle": "3d"}, "part.manhole_cover": {"handle": "4h"}}.
    limits: dict[
        str, dict[Literal["file", "dispatch", "handle"], Annotated[str, Field(pattern=LIMIT_RE)]]
    ] = Field(default_factory=dict)
    # The overdue scan runs this often (seconds) and flags at most this many events a round.
    overdue_seconds: float = Field(default=60.0, gt=0, le=86400)
    overdue_batch: int = Field(default=500, ge=1, le=100_000)
    # Warnings of these rules become events of the mapped category: {"pm25-high": "event.construction"}.
    warning_categories: dict[str, str] = Field(default_factory=dict)
    # "create": the event is filed (立案) at once; "suggest": it waits for an operator in 信息收集.
    warning_intake: Literal["create", "suggest"] = "suggest"
    # A classifier's answer below this confidence leaves the ticket for a person to classify.
    classifier_min_confidence: float = Field(default=0.6, ge=0, le=1)
    # Open311 GeoReport v2 (/open311/v2): the jurisdiction_id this server answers for (a request naming
    # another gets 404), and how many days a request list covers when no start_date is given (and at most).
    open311_jurisdiction: str = Field(default="mianyang.gov.cn", min_length=1, max_length=100)
    open311_days: int = Field(default=90, ge=1, le=366)
    # The supervision board (督办看板): events due within this many working hours count as 即将超期, and
    # it lists at most this many overdue or escalated events (and as many due soon).
    supervision_soon_hours: int = Field(default=4, ge=1, le=80)
    supervision_rows: int = Field(default=200, ge=1, le=5000)
    # Emergency command: the nearest resources are routed over the geo road graph from this many
    # closest in a straight line, and the legs between a point and its nearest road node are driven at
    # this speed (km/h; a local assumption for side streets, not a standard's figure).
    emergency_candidates: int = Field(default=30, ge=1, le=1000)
    emergency_access_kmh: float = Field(default=20.0, gt=0, le=120)
    # 并单: open events of the same category within this distance (metres) and time window (hours) whose
    # text (character bigrams, Jaccard) is at least this similar are suggested as duplicates (local choices).
    duplicate_metres: float = Field(default=200.0, gt=0, le=10_000)
    duplicate_hours: int = Field(default=72, ge=1, le=24 * 90)
    duplicate_similarity: float = Field(default=0.3, gt=0, le=1)
    duplicate_rows: int = Field(default=5, ge=1, le=50)
    # 延期: at most this many approved extensions per event, each of at most `extension_max_days` working days.
    extension_max: int = Field(default=2, ge=0, le=10)
    extension_max_days: int = Field(default=15, ge=1, le=60)
    # 临期预警: the scan warns when less than this share of a stage's time limit is left.
    due_soon_share: float = Field(default=0.2, gt=0, lt=1)
