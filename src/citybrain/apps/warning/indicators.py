"""Vital signs the warning app declares: the warnings in force, in all and at each level, by district."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from sqlalchemy import func, select

from citybrain.apps.geo import services as geo
from citybrain.apps.warning.models import IssuedWarning
from citybrain.sdk import AppContext

# The four warning colours of the Emergency Response Law (standards notes §8.1), worst first.
LEVELS = (
    ("red", "红色", "red"),
    ("orange", "橙色", "orange"),
    ("yellow", "黄色", "yellow"),
    ("blue", "蓝色", "blue"),
)


def _active(ctx: AppContext, level: str | None) -> Mapping[str, float]:
    """How many warnings are active (at a level, or at any) in the city and in each district."""
    stmt = select(IssuedWarning.district, func.count()).where(IssuedWarning.status == "active")
    if level is not None:
        stmt = stmt.where(IssuedWarning.level == level)
    with ctx.read() as session:
        counts = {district: int(n) for district, n in session.execute(stmt.group_by(IssuedWarning.district))}
    found: dict[str, float] = {geo.city(ctx).code: float(sum(counts.values()))}
    for district in geo.districts(ctx):
        found[district.code] = float(counts.get(district.code, 0))
    return found


def active_count(level: str | None) -> Callable[[AppContext, datetime, datetime], Mapping[str, float]]:
    """The compute function of the active warnings at a level (None: any level)."""

    def compute(ctx: AppContext, start: datetime, end: datetime) -> Mapping[str, float]:
        return _active(ctx, level)

    return compute


INDICATORS = [
    {
        "code": "warning.active",
        "name_zh": "生效预警数",
        "name_en": "Warnings in force",
        "unit": "",
        "decimals": 0,
        "period": "realtime",
        "by_district": True,
        "source": "warnings",
        "thresholds": {"direction": "higher_is_worse", "warn": 1, "bad": 5},
        "department": "yjj",
        "description_zh": "当前生效（未解除）的预警数量，不论级别。",
        "description_en": "How many warnings are in force (not lifted), at any level.",
        "compute": active_count(None),
    },
    *(
        {
            "code": f"warning.active_{level}",
            "name_zh": f"生效{zh}预警数",
            "name_en": f"Warnings in force: {en}",
            "unit": "",
            "decimals": 0,
            "period": "realtime",
            "by_district": True,
            "source": "warnings",
            # any red or orange warning is an alarm; yellow and blue ones call for watching
            "thresholds": {
                "direction": "higher_is_worse",
                "warn": 1,
                "bad": 1 if level in ("red", "orange") else 3,
            },
            "department": "yjj",
            "description_zh": f"当前生效的{zh}预警数量。",
            "description_en": f"How many {en} warnings are in force.",
            "compute": active_count(level),
        }
        for level, zh, en in LEVELS
    ),
]
