"""Calendar features in the city's local time: step of day, weekday and the kind of day.

China's statutory holidays and adjusted working days (调休) come from chinese-calendar. For years the
installed chinese-calendar has no data for, days fall back to the plain weekend rule.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

import chinese_calendar
import numpy as np
import numpy.typing as npt


class DayKind(enum.IntEnum):
    """What a day is for people: it changes demand more than the weekday alone."""

    WORKDAY = 0
    WEEKEND = 1
    HOLIDAY = 2
    ADJUSTED_WORKDAY = 3


DayClassifier = Callable[[date], DayKind]


def weekend_day_kind(day: date) -> DayKind:
    """Saturday and Sunday are weekend days, every other day a workday."""
    return DayKind.WEEKEND if day.weekday() >= 5 else DayKind.WORKDAY


@lru_cache(maxsize=4096)
def china_day_kind(day: date) -> DayKind:
    """China's kind of day: statutory holidays, in-lieu rest days and weekend days made working days."""
    try:
        workday = chinese_calendar.is_workday(day)
    except NotImplementedError:  # a year the installed calendar has no data for
        return weekend_day_kind(day)
    if day.weekday() >= 5:
        return DayKind.ADJUSTED_WORKDAY if workday else DayKind.WEEKEND
    return DayKind.WORKDAY if workday else DayKind.HOLIDAY


@dataclass(frozen=True)
class LocalCalendar:
    """The city's time zone and its rule for the kind of each local day."""

    tz: str = "Asia/Shanghai"
    day_kind: DayClassifier = field(default=china_day_kind)

    def features(self, timestamps: Sequence[datetime], steps_per_day: int) -> npt.NDArray[np.float64]:
        """Columns: step of the local day, local weekday, kind of the local day, kind of the next day."""
        zone = ZoneInfo(self.tz)
        rows = np.empty((len(timestamps), 4))
        for i, ts in enumerate(timestamps):
            local = ts.astimezone(zone)
            minutes = local.hour * 60 + local.minute
            day = local.date()
            rows[i, 0] = minutes * steps_per_day // 1440
            rows[i, 1] = local.weekday()
            rows[i, 2] = self.day_kind(day)
            rows[i, 3] = self.day_kind(date.fromordinal(day.toordinal() + 1))
        return rows
