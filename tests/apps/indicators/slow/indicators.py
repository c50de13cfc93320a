"""A compute function that waits for RELEASE (set by the test), and a quick one beside it."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any

RELEASE = threading.Event()
CALLS: list[datetime] = []


def stuck(ctx: Any, start: datetime, end: datetime) -> Mapping[str, Any]:
    """Hang until released (at most a minute), then answer."""
    CALLS.append(end)
    RELEASE.wait(60)
    return {"510700": 1.0}


def quick(ctx: Any, start: datetime, end: datetime) -> Mapping[str, Any]:
    """Answer at once."""
    return {"510700": 2.0}


BASE = {"period": "realtime", "source": "entity_state", "department": "dsj", "by_district": False}
INDICATORS = [
    {**BASE, "code": "islow.stuck", "name_zh": "卡住", "name_en": "Stuck", "compute": stuck},
    {**BASE, "code": "islow.quick", "name_zh": "快", "name_en": "Quick", "compute": quick},
]


def past(ctx: Any, start: datetime, end: datetime) -> Mapping[str, Any]:
    """A value that depends on `end` alone (as one read from the history would)."""
    return {"510700": float(end.hour)}


INDICATORS.append(
    {**BASE, "code": "islow.past", "name_zh": "历史", "name_en": "Past", "backfill": True, "compute": past}
)
