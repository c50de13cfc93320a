"""Test indicators; VALUES holds what `level` answers next (tests set it)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

VALUES: dict[str, Any] = {}


def level(ctx: Any, start: datetime, end: datetime) -> Mapping[str, Any]:
    """Whatever the test put in VALUES."""
    return dict(VALUES)


def broken(ctx: Any, start: datetime, end: datetime) -> Mapping[str, Any]:
    """Always fails."""
    raise RuntimeError("the gauge feed is down")


def pollutant(ctx: Any, start: datetime, end: datetime) -> Mapping[str, Any]:
    """A text value."""
    return {"510700": "PM2.5", "510703": "O3_8h"}


def citywide(ctx: Any, start: datetime, end: datetime) -> Mapping[str, Any]:
    """A value for the city only, daily."""
    return {"510700": 87.5}


BASE = {"period": "realtime", "source": "entity_state", "department": "dsj"}
INDICATORS = [
    {
        **BASE,
        "code": "ideclare.level",
        "name_zh": "水位比",
        "name_en": "Level ratio",
        "unit": "%",
        "thresholds": {"direction": "higher_is_worse", "warn": 90, "bad": 100},
        "empty_zh": "暂无已结案事件",
        "empty_en": "no closed events yet",
        "compute": level,
    },
    {**BASE, "code": "ideclare.broken", "name_zh": "坏指标", "name_en": "Broken", "compute": broken},
    {
        **BASE,
        "code": "ideclare.text",
        "name_zh": "首要",
        "name_en": "Primary",
        "kind": "text",
        "compute": pollutant,
    },
    {
        **BASE,
        "code": "ideclare.city",
        "name_zh": "全市",
        "name_en": "City only",
        "period": "daily",
        "by_district": False,
        "thresholds": {"direction": "lower_is_worse", "warn": 90, "bad": 80},
        "compute": citywide,
    },
]
