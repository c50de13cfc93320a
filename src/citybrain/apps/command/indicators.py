"""Vital signs the command app declares, for the city and each district: events taken in today, open and
overdue events, and over the last 30 days the on-time closing rate (按期结案率, GB/T 30428 evaluation;
standards notes §3.4) and the 12345 satisfaction rate (满意 and 基本满意 among rated tickets).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from citybrain.apps.command import kpi
from citybrain.apps.command import workflows as wf
from citybrain.apps.command.models import CityEvent
from citybrain.apps.geo import services as geo
from citybrain.sdk import ALL, AppContext

RATE_DAYS = 30
OPEN_STATES = sorted({s for w in wf.WORKFLOWS.values() for s in w.open_states})


def _spread(ctx: AppContext, counts: Mapping[str | None, int]) -> dict[str, float]:
    """Counts by district as the city's total and every district's value (0 where none)."""
    found: dict[str, float] = {geo.city(ctx).code: float(sum(counts.values()))}
    for district in geo.districts(ctx):
        found[district.code] = float(counts.get(district.code, 0))
    return found


def _counted(ctx: AppContext, *where: object) -> dict[str | None, int]:
    """How many events match, by district."""
    stmt = select(CityEvent.district, func.count()).where(*where).group_by(CityEvent.district)  # type: ignore[arg-type]
    with ctx.read() as session:
        return {district: int(n) for district, n in session.execute(stmt)}


def _today(ctx: AppContext, end: datetime) -> date:
    return end.astimezone(ZoneInfo(ctx.settings.timezone)).date()


def events_today(ctx: AppContext, start: datetime, end: datetime) -> Mapping[str, float]:
    """Events taken in since the start of today (China time)."""
    lower, _ = kpi.bounds(_today(ctx, end), _today(ctx, end), ZoneInfo(ctx.settings.timezone))
    return _spread(ctx, _counted(ctx, CityEvent.created_at >= lower))


def events_open(ctx: AppContext, start: datetime, end: datetime) -> Mapping[str, float]:
    """Events not yet closed, cancelled or rated."""
    return _spread(ctx, _counted(ctx, CityEvent.state.in_(OPEN_STATES)))


def events_overdue(ctx: AppContext, start: datetime, end: datetime) -> Mapping[str, float]:
    """Open events past their stage's time limit."""
    return _spread(ctx, _counted(ctx, CityEvent.state.in_(OPEN_STATES), CityEvent.overdue.is_(True)))


def rate_of(field: str) -> Callable[[AppContext, datetime, datetime], Mapping[str, float | None]]:
    """The compute function of a KPI rate over the last RATE_DAYS local days, by district."""

    def compute(ctx: AppContext, start: datetime, end: datetime) -> Mapping[str, float | None]:
        last = _today(ctx, end)
        lower, upper = kpi.bounds(last - timedelta(days=RATE_DAYS - 1), last, ZoneInfo(ctx.settings.timezone))
        counts = kpi.count_rows(ctx, lower, upper, "district", ALL)
        city = geo.city(ctx)
        total = sum(counts.values(), kpi.Counts())
        found: dict[str, float | None] = {city.code: getattr(kpi.row("city", city.code, "", total), field)}
        for district in geo.districts(ctx):
            c = counts.get(district.code, kpi.Counts())
            found[district.code] = getattr(kpi.row("district", district.code, "", c), field)
        return found

    return compute


INDICATORS = [
    {
        "code": "command.events_today",
        "name_zh": "今日事件数",
        "name_en": "Events today",
        "decimals": 0,
        "period": "realtime",
        "by_district": True,
        "source": "events",
        "department": "cgzf",
        "description_zh": "今日（北京时间）受理的城市事件数，含数字城管案件与12345工单。",
        "description_en": "City events taken in today (China time): digital city management cases and 12345 tickets.",
        "compute": events_today,
    },
    {
        "code": "command.events_open",
        "name_zh": "在办事件数",
        "name_en": "Open events",
        "decimals": 0,
        "period": "realtime",
        "by_district": True,
        "source": "events",
        "department": "cgzf",
        "description_zh": "尚未结案、作废或评价的事件数。",
        "description_en": "Events not yet closed, cancelled or rated.",
        "compute": events_open,
    },
    {
        "code": "command.events_overdue",
        "name_zh": "超期事件数",
        "name_en": "Overdue events",
        "decimals": 0,
        "period": "realtime",
        "by_district": True,
        "source": "events",
        # any overdue event is escalated to 督办; many call for the shift leader
        "thresholds": {"direction": "higher_is_worse", "warn": 1, "bad": 10},
        "department": "cgzf",
        "description_zh": "在办且当前环节已超过时限（已转督办）的事件数。",
        "description_en": "Open events past their current stage's time limit (escalated to supervision).",
        "compute": events_overdue,
    },
    {
        "code": "command.on_time_closing_rate",
        "name_zh": "按期结案率",
        "name_en": "On-time closing rate",
        "unit": "%",
        "decimals": 2,
        "period": "daily",
        "by_district": True,
        "source": "events",
        # grade B of the evaluation starts at 75 and grade D ends at 60 (standards notes §3.4)
        "thresholds": {"direction": "lower_is_worse", "warn": 75.0, "bad": 60.0},
        "department": "cgzf",
        "description_zh": "近30日受理的数字城管案件中，按期结案数占应结案数（处置数+超时未处置数）的比例（GB/T 30428）。",
        "description_en": "Of the digital city management cases taken in over the last 30 days, cases closed on "
        "time over cases due to close (handled plus overdue unhandled; GB/T 30428).",
        "empty_zh": "暂无已结案事件",
        "empty_en": "no closed events yet",
        "compute": rate_of("on_time_closing_rate"),
    },
    {
        "code": "command.satisfaction_rate",
        "name_zh": "12345满意率",
        "name_en": "12345 satisfaction",
        "unit": "%",
        "decimals": 2,
        "period": "daily",
        "by_district": True,
        "source": "events",
        # a local operating target, not a national limit
        "thresholds": {"direction": "lower_is_worse", "warn": 90.0, "bad": 80.0},
        "department": "cgzf",
        "description_zh": "近30日受理并已评价的12345工单中，满意与基本满意的比例。",
        "description_en": "Of the 12345 tickets taken in over the last 30 days and rated, the share rated "
        "satisfied or basically satisfied.",
        "empty_zh": "暂无评价",
        "empty_en": "no evaluations yet",
        "compute": rate_of("satisfaction_rate"),
    },
]
