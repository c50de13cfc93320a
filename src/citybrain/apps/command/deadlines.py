"""Working-time arithmetic in the city's local time: China's working days (holidays and 调休) and office hours.

Statutory holidays and adjusted working days come from chinese-calendar; for a year it has no data for,
Saturday and Sunday are the rest days.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import chinese_calendar

from citybrain.apps.command.taxonomy import Limit

# A deadline in working days falls at the end of the last day counted.
END_OF_DAY = time(23, 59, 59)


@lru_cache(maxsize=4096)
def is_workday(day: date) -> bool:
    """Whether people work on this day in China (weekend days made working days count; holidays do not)."""
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:  # a year the installed calendar has no data for
        return day.weekday() < 5


def add_working_days(start: datetime, days: int, zone: ZoneInfo) -> datetime:
    """The end of the `days`-th working day after the local day of `start` (that day itself not counted)."""
    day = start.astimezone(zone).date()
    counted = 0
    while counted < days:
        day += timedelta(days=1)
        if is_workday(day):
            counted += 1
    return datetime.combine(day, END_OF_DAY, tzinfo=zone)


def add_working_hours(start: datetime, hours: int, zone: ZoneInfo, office: tuple[time, time]) -> datetime:
    """The moment `hours` working hours after `start`, counting only office hours of working days."""
    opens, closes = office
    if closes <= opens:
        raise ValueError("office hours must end after they start")
    left = timedelta(hours=hours)
    local = start.astimezone(zone)
    day = local.date()
    while True:
        if is_workday(day):
            begin = datetime.combine(day, opens, tzinfo=zone)
            end = datetime.combine(day, closes, tzinfo=zone)
            moment = max(begin, local)
            if moment < end:
                available = end - moment
                if left <= available:
                    return moment + left
                left -= available
        day += timedelta(days=1)
        local = datetime.combine(day, time(0), tzinfo=zone)


def deadline(start: datetime, limit: Limit, zone: ZoneInfo, office: tuple[time, time]) -> datetime:
    """When a stage started at `start` with this limit must be done."""
    if limit.unit == "d":
        return add_working_days(start, limit.amount, zone)
    return add_working_hours(start, limit.amount, zone, office)


def working_hours_between(
    start: datetime, end: datetime, zone: ZoneInfo, office: tuple[time, time]
) -> timedelta:
    """The office time of working days from `start` to `end` (zero when `end` is not after `start`)."""
    opens, closes = office
    if closes <= opens:
        raise ValueError("office hours must end after they start")
    first, last = start.astimezone(zone), end.astimezone(zone)
    total = timedelta()
    day = first.date()
    while day <= last.date():
        if is_workday(day):
            begin = max(datetime.combine(day, opens, tzinfo=zone), first)
            finish = min(datetime.combine(day, closes, tzinfo=zone), last)
            if finish > begin:
                total += finish - begin
        day += timedelta(days=1)
    return total


def office_day(office: tuple[time, time]) -> timedelta:
    """How long one working day's office hours last."""
    opens, closes = office
    return datetime.combine(date.min, closes) - datetime.combine(date.min, opens)
