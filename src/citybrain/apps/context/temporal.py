"""Temporal queries over attribute history: raw instances, temporalValues and aggregatedValues.

Pagination of attribute instances (GS CIM 009 clause 6.3.10): one response carries at most
`TemporalQuery.instance_limit` (default `MAX_INSTANCES`) instances of any attribute. When more match,
the answer is 206 Partial Content with ``Content-Range: date-time <range-start>-<range-end>/<size>``;
every attribute of every entity in the response is cut at the same instant, and an instant is never
split between two pages. Windows are half-open ([timeAt, endTimeAt): after is inclusive, before is
exclusive), and so is each page, which makes range-end the new window edge of the next page:

* forwards (no lastN): the page holds [range-start, range-end) and size is ``*``. Range-end is the
  earliest instant not returned; the next page is the same request with ``timeAt=<range-end>``
  (timerel=after, or between with the same endTimeAt).
* backwards (lastN): the page holds the most recent instances, down to and including range-end (the
  least recent instant returned), and size is lastN. The next page is the same request with
  ``timerel=before&timeAt=<range-end>`` (or between with ``endTimeAt=<range-end>``); the client lowers
  lastN by what it has received if it wants lastN in all.

Aggregated values are computed in SQL over the whole window and never paginated.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from sqlalchemy import Integer, cast, func, literal, select
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql import ColumnElement

from citybrain.apps.context import entities as ent
from citybrain.apps.context.errors import BadRequestData
from citybrain.apps.context.models import AttributeHistory
from citybrain.apps.context.services import READ, EntityQuery, query_entities
from citybrain.sdk import Actor, AppContext

AGGREGATES = ("totalCount", "distinctCount", "sum", "avg", "min", "max", "stddev", "sumsq")
DURATION_RE = re.compile(
    r"^P(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)
TimeRel = Literal["before", "after", "between"]
TimeProperty = Literal["observedAt", "modifiedAt"]
MAX_INSTANCES: Final[int] = 1000
"""The default most instances of one attribute in one response; more give 206 and a Content-Range."""
WHOLE_RANGE: Final = timedelta(days=36500)
"""The period of aggregates without aggrPeriodDuration (or with PT0S): one period over the whole window."""
RANGE_UNIT: Final = "date-time"
MAX_LAST_N: Final = 2**31 - 1


def parse_duration(text: str) -> timedelta:
    """An ISO 8601 duration in weeks, days, hours, minutes, seconds; zero (PT0S) means the whole range."""
    match = DURATION_RE.match(text)
    if not match or text in ("P", "PT") or text.endswith("T"):
        raise BadRequestData(f"aggrPeriodDuration {text!r} is not an ISO 8601 duration such as PT1H or P1D")
    parts = {k: float(v) for k, v in match.groupdict().items() if v}
    seconds = parts.get("w", 0) * 604800 + parts.get("d", 0) * 86400 + parts.get("h", 0) * 3600
    seconds += parts.get("m", 0) * 60 + parts.get("s", 0)
    if seconds > WHOLE_RANGE.total_seconds():
        raise BadRequestData("aggrPeriodDuration may be at most 36500 days")
    return timedelta(seconds=seconds)


@dataclass
class TemporalQuery:
    """Which entities and attributes, which time window on which time property, and how to return them."""

    entities: EntityQuery
    attrs: set[str] | None = None
    timerel: TimeRel | None = None
    time_at: datetime | None = None
    end_time_at: datetime | None = None
    timeproperty: TimeProperty = "observedAt"
    last_n: int | None = None
    aggr_methods: Sequence[str] = ()
    aggr_period: timedelta | None = None
    instance_limit: int = MAX_INSTANCES


@dataclass
class TemporalResult:
    """One response: temporal entities (stored naming), the entity count when asked, the range when partial."""

    entities: list[dict[str, Any]]
    total: int | None = None
    content_range: str | None = None

    @property
    def status(self) -> int:
        """206 Partial Content when instances were left for a further page, else 200."""
        return 206 if self.content_range else 200

    def headers(self) -> dict[str, str]:
        """Content-Range of a partial response and NGSILD-Results-Count when counted."""
        headers = {"Content-Range": self.content_range} if self.content_range else {}
        if self.total is not None:
            headers["NGSILD-Results-Count"] = str(self.total)
        return headers


def check_window(timerel: str | None, time_at: datetime | None, end: datetime | None) -> TimeRel | None:
    """Validate timerel/timeAt/endTimeAt per the spec (between needs both, end after start)."""
    if timerel is None:
        if time_at is not None or end is not None:
            raise BadRequestData("timeAt and endTimeAt need timerel")
        return None
    if timerel not in ("before", "after", "between"):
        raise BadRequestData(f"timerel must be before, after or between, not {timerel!r}")
    if time_at is None:
        raise BadRequestData("timerel needs timeAt")
    if timerel == "between":
        if end is None:
            raise BadRequestData("timerel=between needs endTimeAt")
        if end <= time_at:
            raise BadRequestData("endTimeAt must be after timeAt")
    return timerel  # type: ignore[return-value]


def parse_last_n(raw: Any) -> int | None:
    """lastN: a positive integer (a string from the query, a number in a Query body), or absent."""
    if raw is None:
        return None
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif isinstance(raw, str) and raw.isascii() and raw.isdigit():
        value = int(raw)
    else:
        raise BadRequestData(f"lastN must be a positive integer, not {raw!r}")
    if not 1 <= value <= MAX_LAST_N:
        raise BadRequestData(f"lastN must be a positive integer up to {MAX_LAST_N}, not {raw!r}")
    return value


def _moment(raw: Any, key: str) -> datetime | None:
    return None if raw is None else datetime.fromisoformat(ent.parse_datetime(raw, key))


def _methods(raw: Any) -> list[str]:
    if isinstance(raw, str):
        methods = [m.strip() for m in raw.split(",") if m.strip()]
    elif isinstance(raw, list) and all(isinstance(m, str) for m in raw):
        methods = [m.strip() for m in raw if m.strip()]
    else:
        methods = []
    if not methods or any(m not in AGGREGATES for m in methods):
        raise BadRequestData(f"aggrMethods must list some of {', '.join(AGGREGATES)}")
    return methods


def parse_query(
    params: Mapping[str, Any], entities: EntityQuery, attrs: set[str] | None, *, aggregated: bool
) -> TemporalQuery:
    """Check the temporal parameters (query string, or a Query body's temporalQ) (raises BadRequestData)."""
    time_at = _moment(params.get("timeAt"), "timeAt")
    end_time_at = _moment(params.get("endTimeAt"), "endTimeAt")
    timerel = check_window(params.get("timerel"), time_at, end_time_at)
    raw_property = params.get("timeproperty") or "observedAt"
    if raw_property not in ("observedAt", "modifiedAt"):
        raise BadRequestData(
            "timeproperty must be observedAt or modifiedAt (createdAt is not kept per instance)"
        )
    timeproperty: TimeProperty = "observedAt" if raw_property == "observedAt" else "modifiedAt"
    methods: list[str] = []
    period = None
    if aggregated:
        methods = _methods(params.get("aggrMethods"))
        raw_period = params.get("aggrPeriodDuration")
        if raw_period is not None and not isinstance(raw_period, str):
            raise BadRequestData("aggrPeriodDuration must be an ISO 8601 duration string")
        if raw_period:
            period = parse_duration(raw_period)
    return TemporalQuery(
        entities=entities,
        attrs=attrs,
        timerel=timerel,
        time_at=time_at,
        end_time_at=end_time_at,
        timeproperty=timeproperty,
        last_n=parse_last_n(params.get("lastN")),
        aggr_methods=methods,
        aggr_period=period,
    )


def _time_column(query: TemporalQuery) -> Any:
    return (
        AttributeHistory.observed_at if query.timeproperty == "observedAt" else AttributeHistory.modified_at
    )


def _window(query: TemporalQuery) -> list[ColumnElement[bool]]:
    column = _time_column(query)
    if query.timerel == "before":
        return [column < query.time_at]
    if query.timerel == "after":
        return [column >= query.time_at]
    if query.timerel == "between":
        return [column >= query.time_at, column < query.end_time_at]
    return [column.is_not(None)]


def temporal_entities(ctx: AppContext, actor: Actor, tenant: str, query: TemporalQuery) -> TemporalResult:
    """The selected entities, each with the history of its (selected) attributes in the window, one page."""
    actor.require(READ)
    selected = query_entities(ctx, actor, tenant, query.entities)
    with ctx.read() as session:
        if query.aggr_methods:
            items = [_aggregates_of(session, tenant, stored, query) for stored in selected.entities]
            return TemporalResult(items, selected.total)
        fetched = [(stored, _series_of(session, tenant, stored["id"], query)) for stored in selected.entities]
    backwards = query.last_n is not None
    boundary = _boundary((s for _, per_attr in fetched for s in per_attr.values()), backwards)
    pages = [_page(stored, per_attr, boundary, backwards) for stored, per_attr in fetched]
    items = [item for item, _ in pages]
    if boundary is None:
        return TemporalResult(items, selected.total)
    times = [t for _, instants in pages for t in instants]
    return TemporalResult(items, selected.total, _content_range(times, boundary, query))


def _attr_names(session: Session, tenant: str, entity_id: str, query: TemporalQuery) -> list[str]:
    """The selected attributes, or every attribute in the entity's history (a loose index scan)."""
    if query.attrs is not None:
        return sorted(query.attrs)
    mine = (AttributeHistory.tenant == tenant, AttributeHistory.entity_id == entity_id)
    seen = select(func.min(AttributeHistory.attr).label("attr")).where(*mine).cte("seen", recursive=True)
    later = aliased(AttributeHistory)
    following = (
        select(func.min(later.attr))
        .where(later.tenant == tenant, later.entity_id == entity_id, later.attr > seen.c.attr)
        .scalar_subquery()
    )
    seen = seen.union_all(select(following).where(seen.c.attr.is_not(None)))
    return list(session.scalars(select(seen.c.attr).where(seen.c.attr.is_not(None))))


# --- instances (normalized and temporalValues), paginated ---------------------------------------

Row = tuple[int, dict[str, Any], datetime]


@dataclass
class _Series:
    """One attribute's instances in paging order, and the first instant left out when there are more."""

    rows: list[Row]
    next_at: datetime | None = None


def _series_of(session: Session, tenant: str, entity_id: str, query: TemporalQuery) -> dict[str, _Series]:
    """Per attribute, the first instances in paging order (one indexed range scan each)."""
    window = [AttributeHistory.tenant == tenant, AttributeHistory.entity_id == entity_id, *_window(query)]
    found = {}
    for attr in _attr_names(session, tenant, entity_id, query):
        conditions = [*window, AttributeHistory.attr == attr, AttributeHistory.instance.is_not(None)]
        series = _series(session, conditions, query)
        if series.rows:
            found[attr] = series
    return found


def _series(session: Session, conditions: list[ColumnElement[bool]], query: TemporalQuery) -> _Series:
    """Up to the instance limit (and lastN) of one attribute, forwards or (with lastN) backwards."""
    column = _time_column(query)
    backwards = query.last_n is not None
    limit = query.instance_limit
    order = (column.desc(), AttributeHistory.pk.desc()) if backwards else (column, AttributeHistory.pk)
    stmt = select(AttributeHistory.pk, AttributeHistory.instance, column).where(*conditions).order_by(*order)
    wanted = query.last_n if backwards else None
    fetch = limit + 1 if wanted is None else min(wanted, limit + 1)
    rows = _rows(session, stmt.limit(fetch))
    if len(rows) <= limit:
        return _Series(rows)
    first, following = rows[0][2], rows[limit][2]
    if following != first:
        return _Series(rows[:limit], following)
    # More than `limit` instances at one instant: that instant comes whole, the next one starts a page.
    tie = stmt.where(column == first)
    rows = _rows(session, tie if wanted is None else tie.limit(wanted))
    beyond = column < first if backwards else column > first
    after = session.scalar(stmt.with_only_columns(column).where(beyond).limit(1))
    if after is None or (wanted is not None and len(rows) >= wanted):
        return _Series(rows)
    return _Series(rows, after)


def _rows(session: Session, stmt: Any) -> list[Row]:
    return [(pk, instance, at) for pk, instance, at in session.execute(stmt)]


def _boundary(series: Iterable[_Series], backwards: bool) -> datetime | None:
    """Where this page ends: the earliest (latest, backwards) first instant left out of any attribute."""
    left_out = [s.next_at for s in series if s.next_at is not None]
    if not left_out:
        return None
    return max(left_out) if backwards else min(left_out)


def _page(
    stored: dict[str, Any], per_attr: dict[str, _Series], boundary: datetime | None, backwards: bool
) -> tuple[dict[str, Any], list[datetime]]:
    """One entity's instances up to the boundary, oldest first (stored naming), and their instants."""
    attrs: dict[str, list[dict[str, Any]]] = {}
    times: list[datetime] = []
    for attr, series in per_attr.items():
        rows = series.rows
        if boundary is not None:
            rows = [r for r in rows if (r[2] > boundary if backwards else r[2] < boundary)]
        if not rows:
            continue
        if backwards:
            rows = rows[::-1]
        attrs[attr] = [
            {**instance, "instanceId": f"urn:ngsi-ld:attribute:instance:{pk}"} for pk, instance, _ in rows
        ]
        times += (rows[0][2], rows[-1][2])
    return {"id": stored["id"], "type": stored["type"], "attrs": attrs}, times


def _content_range(times: list[datetime], boundary: datetime, query: TemporalQuery) -> str:
    """``date-time <range-start>-<range-end>/<size>`` of a partial response (GS CIM 009 6.3.10)."""
    if query.last_n is not None:
        start = {"before": query.time_at, "between": query.end_time_at}.get(query.timerel or "") or max(times)
        end, size = min(times), str(query.last_n)
    else:
        start = query.time_at if query.timerel in ("after", "between") and query.time_at else min(times)
        end, size = boundary, "*"
    return f"{RANGE_UNIT} {ent.format_datetime(start)}-{ent.format_datetime(end)}/{size}"


# --- aggregatedValues, in SQL ------------------------------------------------------------------


def _aggregates_of(
    session: Session, tenant: str, stored: dict[str, Any], query: TemporalQuery
) -> dict[str, Any]:
    """One entity's aggregated representation (stored naming)."""
    result: dict[str, Any] = {"id": stored["id"], "type": stored["type"], "attrs": {}}
    base = [AttributeHistory.tenant == tenant, AttributeHistory.entity_id == stored["id"], *_window(query)]
    if query.attrs is not None:
        base.append(AttributeHistory.attr.in_(query.attrs))
    result["aggregates"] = _aggregate(session, tenant, stored["id"], base, query)
    return result


def _bucket(session: Session, column: Any, start: datetime, period: timedelta) -> Any:
    """The start of the aggregation period a timestamp falls in (PostgreSQL), or its index from `start`."""
    if session.get_bind().dialect.name == "postgresql":
        return func.date_bin(literal(period), column, literal(start), type_=column.type)
    # SQLite keeps UTC timestamps as text; julianday() reads them. Half a millisecond absorbs float error.
    anchor = start.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    offset = (func.julianday(column) - func.julianday(anchor)) * 86400.0 + 0.0005
    return cast(offset / period.total_seconds(), Integer)


def _period_start(bucket: Any, start: datetime, period: timedelta) -> datetime:
    return bucket if isinstance(bucket, datetime) else start + period * int(bucket)


def _columns(methods: Sequence[str]) -> dict[str, Any]:
    """The SQL aggregates the requested methods need (stddev comes from count, sum and sum of squares)."""
    number = AttributeHistory.number
    available: dict[str, Callable[[], Any]] = {
        "totalCount": func.count,
        "distinctCount": lambda: func.count(func.distinct(number)),
        "sum": lambda: func.sum(number),
        "avg": lambda: func.avg(number),
        "min": lambda: func.min(number),
        "max": lambda: func.max(number),
        "sumsq": lambda: func.sum(number * number),
        "numeric": lambda: func.count(number),
    }
    needed = [n for m in methods for n in (("numeric", "sum", "sumsq") if m == "stddev" else (m,))]
    return {name: available[name]().label(name) for name in dict.fromkeys(needed)}


def _aggregate(
    session: Session, tenant: str, entity_id: str, base: list[ColumnElement[bool]], query: TemporalQuery
) -> dict[str, Any]:
    """Per attribute, per period: the requested aggregates, as [value, start, end] triples."""
    column = _time_column(query)
    start = query.time_at if query.timerel in ("after", "between") else None
    if start is None:
        start = session.scalar(select(func.min(column)).where(*base))
        if start is None:
            return {}
    period = query.aggr_period or WHOLE_RANGE
    bucket = _bucket(session, column, start, period).label("bucket")
    columns = _columns(query.aggr_methods)
    out: dict[str, Any] = {}
    for attr in _attr_names(session, tenant, entity_id, query):
        # One attribute at a time and no ORDER BY: PostgreSQL hashes the few periods instead of sorting rows.
        stmt = (
            select(bucket, *columns.values())
            .where(*base, AttributeHistory.attr == attr, AttributeHistory.instance.is_not(None))
            .group_by(bucket)
        )
        periods = sorted(
            ((_period_start(row.bucket, start, period), row._mapping) for row in session.execute(stmt)),
            key=lambda item: item[0],
        )
        if not periods:
            continue
        series: dict[str, list[list[Any]]] = {method: [] for method in query.aggr_methods}
        for begin, values in periods:
            bounds = [ent.format_datetime(begin), ent.format_datetime(begin + period)]
            for method in query.aggr_methods:
                value = (
                    _stddev(values["numeric"], values["sum"], values["sumsq"])
                    if method == "stddev"
                    else values[method]
                )
                series[method].append([value, *bounds])
        out[attr] = series
    return out


def _stddev(count: int, total: float | None, sumsq: float | None) -> float | None:
    """Population standard deviation from count, sum and sum of squares."""
    if not count or total is None or sumsq is None:
        return None
    mean = total / count
    return math.sqrt(max(sumsq / count - mean * mean, 0.0))
