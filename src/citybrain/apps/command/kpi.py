"""KPI reports: the GB/T 30428 evaluation indicators and 12345 satisfaction by department or district.

The evaluation of digital city management (GB/T 30428 series, 绩效评价; standards notes §3.4) counts the
cases of a period and rates them:

* 应结案数 (due) = 处置数 + 超时未处置数; 结案率 = 结案数 / 应结案数; 按期结案率 = 按期结案数 / 应结案数;
* 处置率 = 处置数 / 应处置数 (应处置数 = 应结案数 here: a case is due to be handled once it is handled or
  its time is up); 按期处置率 = 按时处置数 / 应处置数; 返工率 = 返工数 / 处置数;
* 监督举报率 = 监督举报核实数 / 立案数 (cases reported by grid inspectors and filed, over all filed cases;
  立案数 excludes 挂账 cases).

The composite score (综合指标值, 0–100) weighs the scores of those indicators (a rate scores its percentage,
返工率 scores 1 − rate) and grades it A ≥ 90, B ≥ 75, C ≥ 60, D ≥ 40, E below (§3.4 评价等级).

The population of a period is the events taken in (created) during it, in China's local days. Every count
below is a FILTER of one aggregate over the events table, grouped by the evaluated object (`count_rows`).
The report reads the same counts from the daily summary command_kpi_day (`summary_rows`), kept exact by
triggers on the events table, so a report over years reads a few thousand summary rows instead of every
event; the live aggregate stays the reference (a test compares the two) and answers where the platform's
time zone is not the summary's.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, func, not_, select

from citybrain.apps.command import services
from citybrain.apps.command import workflows as wf
from citybrain.apps.command.models import CityEvent, KpiDay
from citybrain.apps.command.schemas import KpiReport, KpiRow
from citybrain.apps.geo import services as geo
from citybrain.sdk import Actor, AllDepartments, AppContext, ValidationFailed

Dimension = Literal["department", "district"]
Period = Literal["day", "week", "month", "custom"]
# A custom range may span at most this many days.
MAX_DAYS = 3 * 366
NONE_KEY = "-"
# The zone of the summary's local days (its triggers compute them in it).
SUMMARY_ZONE = "Asia/Shanghai"

# 立案数分值 of a department (standards notes §3.4, 部门 row): fewer cases, a higher score.
FILED_SCORE_STEPS: tuple[tuple[int, float], ...] = (
    (50, 100.0),
    (100, 90.0),
    (200, 75.0),
    (500, 60.0),
    (1000, 40.0),
)
# 综合指标值 weights (standards notes §3.4). 部门: 立案数分值 10 %, 结案率 30 %, 按期处置率 30 %, 1 − 返工率 30 %.
DEPARTMENT_WEIGHTS = {"filed_score": 0.10, "closing": 0.30, "on_time_handling": 0.30, "no_rework": 0.30}
# 区域: 监督举报率 10 %, 立案数分值 20 %, 结案率 30 %, 按期结案率 40 % (the 40 % is the notes' reading of a
# source that prints weights summing to 70 %; ⚠ to verify against GB/T 30428.4). The notes give no
# 立案数分值 table for a region; the department's table is used.
DISTRICT_WEIGHTS = {"report": 0.10, "filed_score": 0.20, "closing": 0.30, "on_time_closing": 0.40}
# 评价等级 (standards notes §3.4): the lowest composite score of each grade.
GRADES: tuple[tuple[float, str], ...] = ((90.0, "A"), (75.0, "B"), (60.0, "C"), (40.0, "D"))

# Column titles of the exports: (field, 中文, English).
EXPORT_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("key", "编码", "Code"),
    ("name", "名称", "Name"),
    ("filed", "立案数", "Cases filed"),
    ("inspector_filed", "监督举报核实数", "Filed from inspectors"),
    ("handled", "处置数", "Handled"),
    ("handled_on_time", "按期处置数", "Handled on time"),
    ("overdue_unhandled", "超时未处置数", "Overdue, not handled"),
    ("due", "应结案数", "Due to close"),
    ("closed", "结案数", "Closed"),
    ("closed_on_time", "按期结案数", "Closed on time"),
    ("reworked", "返工数", "Reworked"),
    ("cancelled", "作废数", "Cancelled"),
    ("closing_rate", "结案率(%)", "Closing rate (%)"),
    ("on_time_closing_rate", "按期结案率(%)", "On-time closing rate (%)"),
    ("handling_rate", "处置率(%)", "Handling rate (%)"),
    ("on_time_handling_rate", "按期处置率(%)", "On-time handling rate (%)"),
    ("rework_rate", "返工率(%)", "Rework rate (%)"),
    ("report_rate", "监督举报率(%)", "Inspector report rate (%)"),
    ("filed_score", "立案数分值", "Cases-filed score"),
    ("composite", "综合指标值", "Composite score"),
    ("grade", "评价等级", "Grade"),
    ("tickets", "12345受理数", "12345 tickets"),
    ("completed", "12345办结数", "12345 completed"),
    ("completed_on_time", "12345按期办结数", "12345 completed on time"),
    ("satisfied", "满意", "Satisfied"),
    ("basically_satisfied", "基本满意", "Basically satisfied"),
    ("unsatisfied", "不满意", "Unsatisfied"),
    ("completion_rate", "12345办结率(%)", "12345 completion rate (%)"),
    ("on_time_completion_rate", "12345按期办结率(%)", "12345 on-time completion rate (%)"),
    ("satisfaction_rate", "12345满意率(%)", "12345 satisfaction rate (%)"),
)


@dataclass
class Counts:
    """What the report counts for one object; every field adds up across objects."""

    filed: int = 0
    inspector_filed: int = 0
    handled: int = 0
    handled_on_time: int = 0
    overdue_unhandled: int = 0
    closed: int = 0
    closed_on_time: int = 0
    reworked: int = 0
    cancelled: int = 0
    tickets: int = 0
    completed: int = 0
    completed_on_time: int = 0
    satisfied: int = 0
    basically_satisfied: int = 0
    unsatisfied: int = 0

    def __add__(self, other: Counts) -> Counts:
        """The counts of two objects together."""
        return Counts(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})


COUNT_FIELDS = tuple(f.name for f in fields(Counts))


def _conditions() -> dict[str, ColumnElement[bool]]:
    """The condition of each count, over the events of the period."""
    e = CityEvent
    city = e.workflow == "city"
    hotline = e.workflow == "hotline"
    filed = and_(city, e.filed_at.is_not(None))
    handled = and_(city, e.handled_at.is_not(None))
    closed = and_(city, e.state == "closed")
    completed = and_(hotline, e.state.in_(wf.COMPLETED_STATES))
    return {
        # a duplicate merged into a main event (并单) counts once, through its main event
        "filed": and_(filed, e.state.not_in(("deferred", wf.MERGED))),
        "inspector_filed": and_(filed, e.state.not_in(("deferred", wf.MERGED)), e.source == "inspector"),
        "handled": handled,
        "handled_on_time": and_(handled, not_(e.late)),
        # still open, not handled, and past a time limit; 挂账 (deferred) cases have no running clock
        "overdue_unhandled": and_(
            city,
            e.handled_at.is_(None),
            e.late,
            e.state.in_([s for s in wf.CITY.open_states if s != "deferred"]),
        ),
        "closed": closed,
        "closed_on_time": and_(closed, not_(e.late)),
        "reworked": and_(handled, e.reworks > 0),
        "cancelled": and_(city, e.state == "cancelled"),
        "tickets": and_(hotline, e.state != wf.MERGED),
        "completed": completed,
        "completed_on_time": and_(completed, not_(e.late)),
        "satisfied": and_(hotline, e.rating == "satisfied"),
        "basically_satisfied": and_(hotline, e.rating == "basically_satisfied"),
        "unsatisfied": and_(hotline, e.rating == "unsatisfied"),
    }


def count_rows(
    ctx: AppContext,
    start: datetime,
    end: datetime,
    dimension: Dimension,
    departments: frozenset[int] | AllDepartments,
) -> dict[str, Counts]:
    """The counts of each object of a dimension among the events created in [start, end) (one statement)."""
    column = CityEvent.department_id if dimension == "department" else CityEvent.district
    conditions = _conditions()
    stmt = (
        select(column, *(func.count().filter(conditions[name]) for name in COUNT_FIELDS))
        .where(CityEvent.created_at >= start, CityEvent.created_at < end)
        .group_by(column)
    )
    if not isinstance(departments, AllDepartments):
        stmt = stmt.where(CityEvent.department_id.in_(departments))
    found: dict[str, Counts] = {}
    with ctx.read() as session:
        for key, *values in session.execute(stmt):
            found[NONE_KEY if key is None else str(key)] = Counts(*(int(v) for v in values))
    return found


def summary_rows(
    ctx: AppContext,
    first: date,
    last: date,
    dimension: Dimension,
    departments: frozenset[int] | AllDepartments,
) -> dict[str, Counts]:
    """The counts of each object among the events taken in on local days first … last, from the summary."""
    column = KpiDay.department_id if dimension == "department" else KpiDay.district
    none = 0 if dimension == "department" else ""
    stmt = (
        select(column, *(func.sum(getattr(KpiDay, name)) for name in COUNT_FIELDS))
        .where(KpiDay.day >= first, KpiDay.day <= last)
        .group_by(column)
        # an object appears when the period holds one of its events, as in the live aggregate
        .having(func.sum(KpiDay.events) > 0)
    )
    if not isinstance(departments, AllDepartments):
        stmt = stmt.where(KpiDay.department_id.in_(departments))
    found: dict[str, Counts] = {}
    with ctx.read() as session:
        for key, *values in session.execute(stmt):
            found[NONE_KEY if key == none else str(key)] = Counts(*(int(v) for v in values))
    return found


def _query_error(field: str, detail: str, **params: Any) -> ValidationFailed:
    """A 422 naming the query parameter at fault."""
    return ValidationFailed(
        detail,
        extra={"errors": [{"loc": ["query", field], "msg": detail.format(**params), "type": "value_error"}]},
        **params,
    )


# --- formulas -------------------------------------------------------------------------------------


def rate(part: int, whole: int) -> float | None:
    """A percentage to two decimals, None without a whole."""
    return round(100.0 * part / whole, 2) if whole else None


def filed_score(filed: int) -> float:
    """立案数分值 (standards notes §3.4): 100 up to 50 cases, 90 to 100, 75 to 200, 60 to 500, 40 to 1000, else 0."""
    for most, score in FILED_SCORE_STEPS:
        if filed <= most:
            return score
    return 0.0


def grade(score: float | None) -> str | None:
    """评价等级 of a composite score: A ≥ 90, B ≥ 75, C ≥ 60, D ≥ 40, E below (standards notes §3.4)."""
    if score is None:
        return None
    return next((letter for lowest, letter in GRADES if score >= lowest), "E")


def _score(value: float | None) -> float:
    """A rate's score in the composite: its percentage; a rate without a denominator scores nothing."""
    return value if value is not None else 0.0


def composite(
    dimension: Dimension | Literal["city"], c: Counts, due: int, rates: Mapping[str, float | None]
) -> float | None:
    """综合指标值 of a department or a district (the city is graded as a region); None with no case due."""
    if not due:
        return None
    fs = filed_score(c.filed)
    if dimension == "department":
        w = DEPARTMENT_WEIGHTS
        no_rework = 100.0 - rates["rework"] if rates["rework"] is not None else 0.0
        total = (
            fs * w["filed_score"]
            + _score(rates["closing"]) * w["closing"]
            + _score(rates["on_time_handling"]) * w["on_time_handling"]
            + no_rework * w["no_rework"]
        )
    else:
        w = DISTRICT_WEIGHTS
        total = (
            _score(rates["report"]) * w["report"]
            + fs * w["filed_score"]
            + _score(rates["closing"]) * w["closing"]
            + _score(rates["on_time_closing"]) * w["on_time_closing"]
        )
    return round(total, 2)


def row(dimension: Dimension | Literal["city"], key: str, name: str, c: Counts) -> KpiRow:
    """The indicators, composite score and grade of one object from its counts."""
    due = c.handled + c.overdue_unhandled  # 应结案数 = 处置数 + 超时未处置数
    rates = {
        "closing": rate(c.closed, due),
        "on_time_closing": rate(c.closed_on_time, due),
        "handling": rate(c.handled, due),
        "on_time_handling": rate(c.handled_on_time, due),
        "rework": rate(c.reworked, c.handled),
        "report": rate(c.inspector_filed, c.filed),
    }
    score = composite(dimension, c, due, rates)
    rated = c.satisfied + c.basically_satisfied + c.unsatisfied
    return KpiRow(
        key=key,
        name=name,
        **{f: getattr(c, f) for f in COUNT_FIELDS},
        due=due,
        closing_rate=rates["closing"],
        on_time_closing_rate=rates["on_time_closing"],
        handling_rate=rates["handling"],
        on_time_handling_rate=rates["on_time_handling"],
        rework_rate=rates["rework"],
        report_rate=rates["report"],
        filed_score=filed_score(c.filed),
        composite=score,
        grade=grade(score),
        completion_rate=rate(c.completed, c.tickets),
        on_time_completion_rate=rate(c.completed_on_time, c.tickets),
        # 满意率: 满意 and 基本满意 among the rated tickets
        satisfaction_rate=rate(c.satisfied + c.basically_satisfied, rated),
    )


# --- periods --------------------------------------------------------------------------------------


def period_days(
    period: Period, day: date | None, start: date | None, end: date | None, today: date
) -> tuple[date, date]:
    """The first and last local day of a period: the day, ISO week or month holding `day`, or [start, end]."""
    if period == "custom":
        if start is None or end is None:
            raise _query_error("start", services.N_("A custom period needs a start and an end date."))
        if end < start:
            raise _query_error("end", services.N_("The end date comes before the start date."))
        if (end - start).days + 1 > MAX_DAYS:
            raise _query_error("end", services.N_("A period spans at most {days} days."), days=MAX_DAYS)
        return start, end
    anchor = day or today
    if period == "day":
        return anchor, anchor
    if period == "week":
        first = anchor - timedelta(days=anchor.weekday())
        return first, first + timedelta(days=6)
    first = anchor.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return first, following - timedelta(days=1)


def bounds(first: date, last: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) in UTC of local days first … last."""
    start = datetime.combine(first, time(0), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    return start, end


# --- the report -----------------------------------------------------------------------------------


def report(
    ctx: AppContext,
    actor: Actor,
    locale: str,
    *,
    dimension: Dimension = "department",
    period: Period = "month",
    day: date | None = None,
    start: date | None = None,
    end: date | None = None,
) -> KpiReport:
    """The KPI report of a period by department or district, and the city's row (events the reader may see)."""
    scope = actor.visible_departments(wf.READ)
    zone = ZoneInfo(ctx.settings.timezone)
    first, last = period_days(period, day, start, end, datetime.now(zone).date())
    if ctx.settings.timezone == SUMMARY_ZONE:
        counts = summary_rows(ctx, first, last, dimension, scope)
    else:
        lower, upper = bounds(first, last, zone)
        counts = count_rows(ctx, lower, upper, dimension, scope)

    def name_of(zh: str, en: str) -> str:
        return (en or zh) if locale == "en" else (zh or en)

    if dimension == "department":
        names = {str(d.id): name_of(d.name_zh, d.name_en) for d in services.departments(ctx).values()}
        keys = [k for k in names if isinstance(scope, AllDepartments) or int(k) in scope]
    else:
        names = {d.code: name_of(d.name_zh, d.name_en) for d in geo.districts(ctx)}
        keys = list(names)
    unassigned = name_of("未指定", "Not assigned")
    ordered = [*keys, *sorted(k for k in counts if k not in names)]
    rows = [
        row(dimension, k, names.get(k, unassigned if k == NONE_KEY else k), counts.get(k, Counts()))
        for k in ordered
    ]
    total = sum(counts.values(), Counts())
    city = geo.city(ctx)
    return KpiReport(
        dimension=dimension,
        period=period,
        start=first,
        end=last,
        rows=rows,
        city=row("city", city.code, name_of(city.name_zh, city.name_en), total),
    )


def table(found: KpiReport, locale: str) -> list[list[Any]]:
    """The report as rows of cells, a title row first and the city last (for CSV and Excel)."""
    titles = [en if locale == "en" else zh for _, zh, en in EXPORT_COLUMNS]
    body = [[getattr(r, f) for f, _, _ in EXPORT_COLUMNS] for r in (*found.rows, found.city)]
    return [titles, *body]


def to_csv(cells: Sequence[Sequence[Any]]) -> bytes:
    """CSV (UTF-8 with a byte-order mark, which spreadsheet programs need to read Chinese)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for line in cells:
        writer.writerow(["" if c is None else c for c in line])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def to_xlsx(cells: Sequence[Sequence[Any]], title: str) -> bytes:
    """An Excel workbook of one sheet."""
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet(title=title[:31])
    for line in cells:
        sheet.append(list(line))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
