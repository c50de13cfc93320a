"""Vital signs the traffic app declares: the traffic performance index of the city and each district.

A past `end` is answered from the detectors' recorded history (so the history can be backfilled).
Thresholds follow the TPI grades of GB/T 33171-2016 §8.2 (standards notes §2.4): from 4 the traffic is
lightly congested (轻度拥堵), from 6 moderately congested (中度拥堵).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from citybrain.apps.traffic import services
from citybrain.sdk import AppContext


def tpi_now(ctx: AppContext, start: datetime, end: datetime) -> Mapping[str, float | None]:
    """The index at `end` of the city and of each district with a road segment (a past `end` from history)."""
    picture = services.evaluate_past(ctx, end) if services.is_past(ctx, end) else services.evaluate(ctx, end)
    return {
        area.code: None if area.index is None else round(area.index.tpi, 2)
        for area in (picture.city, *picture.districts)
    }


INDICATORS = [
    {
        "code": "traffic.tpi",
        "name_zh": "交通运行指数",
        "name_en": "Traffic performance index",
        "unit": "",
        "decimals": 1,
        "period": "realtime",
        "by_district": True,
        "source": "entity_state",
        "thresholds": {"direction": "higher_is_worse", "warn": 4.0, "bad": 6.0},
        "department": "gaj-jj",
        "description_zh": "按 GB/T 33171-2016 由交通检测器的路段车速计算的交通运行指数（0–10，越高越拥堵）。",
        "description_en": "The traffic performance index by GB/T 33171-2016 from the detectors' segment "
        "speeds (0–10; higher is more congested).",
        "empty_zh": "暂无检测器上报实时车速",
        "empty_en": "no detector reports a current speed",
        "backfill": True,
        "compute": tpi_now,
    }
]
