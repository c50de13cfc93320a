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

Many entities cost a bounded number of statements, not one per entity and attribute: the aggregates of a
request are one query grouped by entity, attribute and period, and the instances one query that reads the
first instances of every (entity, attribute) series through the lookup index (a LATERAL join on
PostgreSQL, a correlated ``rowid IN (... LIMIT n)`` on SQLite), so a page still reads no more than it
returns. Entities (and listed attributes) are taken in chunks that keep each statement's bound
parameters within every driver's limits.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import product
from typing import Any, Final, Literal, TypeVar

from sqlalchemy import Integer, String, cast, func, literal, select, true, union_all
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql import ColumnElement, Select

from citybrain.apps.context import entities as ent
from citybrain.apps.context.errors import BadRequestData
from citybrain.apps.context.models import AttributeHistory, Entity
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
ENTITY_CHUNK: Final = 500
"""The most entities one history statement names (their ids are bound parameters)."""
NAME_CHUNK: Final = 100
"""The most listed attribute names one instance statement names (SQLite caps compound SELECTs at 500)."""
WORK_MEM: Final = "64MB"
"""PostgreSQL memory for one request's grouping: enough to hash the groups, not sort every row on disk."""
T = TypeVar("T")


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


def _time_column(query: TemporalQuery, table: Any = AttributeHistory) -> Any:
    return table.observed_at if query.timeproperty == "observedAt" else table.modified_at


def _window(query: TemporalQuery, table: Any = AttributeHistory) -> list[ColumnElement[bool]]:
    column = _time_column(query, table)
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
    ids = [stored["id"] for stored in selected.entities]
    with ctx.read() as session:
        if ids and _postgresql(session):
            _tune(session)
        if query.aggr_methods:
            found = _aggregates(session, tenant, ids, query)
            items = [
                {"id": s["id"], "type": s["type"], "attrs": {}, "aggregates": found.get(s["id"], {})}
                for s in selected.entities
            ]
            return TemporalResult(items, selected.total)
        series = _series_of(session, tenant, ids, query)
    fetched = [(stored, series.get(stored["id"], {})) for stored in selected.entities]
    backwards = query.last_n is not None
    boundary = _boundary((s for _, per_attr in fetched for s in per_attr.values()), backwards)
    pages = [_page(stored, per_attr, boundary, backwards) for stored, per_attr in fetched]
    items = [item for item, _ in pages]
    if boundary is None:
        return TemporalResult(items, selected.total)
    times = [t for _, instants in pages for t in instants]
    return TemporalResult(items, selected.total, _content_range(times, boundary, query))


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most `size` items."""
    for begin in range(0, len(items), size):
        yield items[begin : begin + size]


def _postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _tune(session: Session) -> None:
    """PostgreSQL settings for this read transaction only.

    No JIT: the planner's estimate for many series passes its threshold, and compiling then takes longer
    than a page of index scans. More work_mem: the default 4 MB makes it sort a day of 200 stations on disk
    instead of hashing the groups.
    """
    session.execute(select(func.set_config("jit", "off", True), func.set_config("work_mem", WORK_MEM, True)))


# --- instances (normalized and temporalValues), paginated ---------------------------------------

Row = tuple[int, dict[str, Any], datetime]


@dataclass
class _Series:
    """One attribute's instances in paging order, and the first instant left out when there are more."""

    rows: list[Row]
    next_at: datetime | None = None


def _series_of(
    session: Session, tenant: str, ids: Sequence[str], query: TemporalQuery
) -> dict[str, dict[str, _Series]]:
    """Per entity, per attribute (in name order), the first instances in paging order."""
    backwards = query.last_n is not None
    fetch = query.instance_limit + 1
    if query.last_n is not None:
        fetch = min(query.last_n, fetch)
    name_sets: list[Sequence[str] | None] = [None]
    if query.attrs is not None:
        name_sets = list(_chunks(sorted(query.attrs), NAME_CHUNK))
    grouped: dict[tuple[str, str], list[Row]] = {}
    for part, names in product(_chunks(ids, ENTITY_CHUNK), name_sets):
        stmt = _first_rows(session, tenant, _pairs(tenant, part, names), query, fetch)
        for entity_id, attr, pk, instance, at in session.execute(stmt):
            grouped.setdefault((entity_id, attr), []).append((pk, instance, at))
    found: dict[str, dict[str, _Series]] = {}
    for (entity_id, attr), rows in sorted(grouped.items()):
        rows.sort(key=lambda row: (row[2], row[0]), reverse=backwards)
        found.setdefault(entity_id, {})[attr] = _cut(session, tenant, entity_id, attr, query, rows)
    return found


def _pairs(tenant: str, ids: Sequence[str], names: Sequence[str] | None) -> Any:
    """The (entity, attribute) series to read: the named attributes, or every one in each entity's history."""
    if names is not None:
        entities = (
            select(Entity.entity_id).where(Entity.tenant == tenant, Entity.entity_id.in_(ids)).subquery()
        )
        listed = union_all(*(select(literal(name, String).label("attr")) for name in names)).subquery("names")
        return (
            select(entities.c.entity_id, listed.c.attr).join_from(entities, listed, true()).subquery("pairs")
        )

    # A loose index scan: each step finds every entity's next attribute name after the one before.
    def following(entity_id: Any, after: Any = None) -> Any:
        later = aliased(AttributeHistory)
        conditions = [later.tenant == tenant, later.entity_id == entity_id]
        if after is not None:
            conditions.append(later.attr > after)
        return select(func.min(later.attr)).where(*conditions).scalar_subquery()

    first = select(Entity.entity_id, following(Entity.entity_id).label("attr"))
    seen = first.where(Entity.tenant == tenant, Entity.entity_id.in_(ids)).cte("seen", recursive=True)
    step = select(seen.c.entity_id, following(seen.c.entity_id, seen.c.attr))
    seen = seen.union_all(step.where(seen.c.attr.is_not(None)))
    return select(seen.c.entity_id, seen.c.attr).where(seen.c.attr.is_not(None)).subquery("pairs")


def _instances(
    tenant: str, entity_id: Any, attr: Any, query: TemporalQuery, table: Any = AttributeHistory
) -> Select[Any]:
    """One series' instances in the window, in paging order: backwards (newest first) with lastN."""
    column = _time_column(query, table)
    order = (column.desc(), table.pk.desc()) if query.last_n is not None else (column, table.pk)
    return (
        select(table.pk, table.instance, column.label("at"))
        .where(table.tenant == tenant, table.entity_id == entity_id, table.attr == attr)
        .where(table.instance.is_not(None), *_window(query, table))
        .order_by(*order)
    )


def _first_rows(session: Session, tenant: str, pairs: Any, query: TemporalQuery, fetch: int) -> Select[Any]:
    """The first `fetch` instances of every series of `pairs`, each read by its own index range scan."""
    if _postgresql(session):
        firsts = _instances(tenant, pairs.c.entity_id, pairs.c.attr, query).limit(fetch).lateral("firsts")
        return select(pairs.c.entity_id, pairs.c.attr, firsts.c.pk, firsts.c.instance, firsts.c.at).join_from(
            pairs, firsts, true()
        )
    # SQLite has no LATERAL; it runs a correlated `rowid IN (...)` once per pair and looks the rows up.
    row = aliased(AttributeHistory, name="row")
    keys = _instances(tenant, pairs.c.entity_id, pairs.c.attr, query).with_only_columns(AttributeHistory.pk)
    keys = keys.limit(fetch).correlate(pairs)
    at = _time_column(query, row)
    return select(pairs.c.entity_id, pairs.c.attr, row.pk, row.instance, at).join_from(
        pairs, row, row.pk.in_(keys)
    )


def _cut(
    session: Session, tenant: str, entity_id: str, attr: str, query: TemporalQuery, rows: list[Row]
) -> _Series:
    """One series cut at the instance limit (and lastN), whole instants kept together."""
    limit = query.instance_limit
    if len(rows) <= limit:
        return _Series(rows)
    first, following = rows[0][2], rows[limit][2]
    if following != first:
        return _Series(rows[:limit], following)
    # More than `limit` instances at one instant (rare): that instant comes whole, the next one starts a page.
    stmt = _instances(tenant, entity_id, attr, query)
    column = _time_column(query)
    backwards, wanted = query.last_n is not None, query.last_n
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


def _aggregates(
    session: Session, tenant: str, ids: Sequence[str], query: TemporalQuery
) -> dict[str, dict[str, Any]]:
    """Per entity, per attribute (in name order), per period: the requested aggregates as [value, start, end]."""
    groups: dict[str, dict[str, list[tuple[datetime, Mapping[Any, Any]]]]] = {}
    for part in _chunks(ids, ENTITY_CHUNK):
        for entity_id, attr, begin, values in _groups(session, tenant, part, query):
            groups.setdefault(entity_id, {}).setdefault(attr, []).append((begin, values))
    period = query.aggr_period or WHOLE_RANGE
    found: dict[str, dict[str, Any]] = {}
    for entity_id, per_attr in groups.items():
        out = found[entity_id] = {}
        for attr in sorted(per_attr):
            series: dict[str, list[list[Any]]] = {method: [] for method in query.aggr_methods}
            for begin, values in sorted(per_attr[attr], key=lambda item: item[0]):
                bounds = [ent.format_datetime(begin), ent.format_datetime(begin + period)]
                for method in query.aggr_methods:
                    value = (
                        _stddev(values["numeric"], values["sum"], values["sumsq"])
                        if method == "stddev"
                        else values[method]
                    )
                    series[method].append([value, *bounds])
            out[attr] = series
    return found


def _groups(
    session: Session, tenant: str, ids: Sequence[str], query: TemporalQuery
) -> Iterator[tuple[str, str, datetime, Mapping[Any, Any]]]:
    """Every (entity, attribute, period) group of some entities' history in the window, from one query."""
    column = _time_column(query)
    base = [AttributeHistory.tenant == tenant, AttributeHistory.entity_id.in_(ids), *_window(query)]
    if query.attrs is not None:
        base.append(AttributeHistory.attr.in_(sorted(query.attrs)))
    period = query.aggr_period or WHOLE_RANGE
    start = query.time_at if query.timerel in ("after", "between") else None
    # Group only by the keys that vary: reading two long strings per row costs as much as the aggregate.
    one_entity = ids[0] if len(ids) == 1 else None
    one_attr = next(iter(query.attrs)) if query.attrs is not None and len(query.attrs) == 1 else None
    keys: list[Any] = []
    if one_entity is None:
        keys.append(AttributeHistory.entity_id)
    if one_attr is None:
        keys.append(AttributeHistory.attr)
    starts = None
    if start is None:
        # Without a window start, the periods of each entity start at its oldest instance.
        oldest = select(AttributeHistory.entity_id, func.min(column).label("origin")).where(*base)
        starts = oldest.group_by(AttributeHistory.entity_id).subquery("starts")
        origin: Any = starts.c.origin
        keys.append(origin)
    else:
        origin = _anchor(session, start)
    bucket = _bucket(session, column, origin, period).label("bucket")
    columns = _columns(query.aggr_methods)
    # No ORDER BY: PostgreSQL hashes the groups instead of sorting every row; the few periods sort here.
    stmt = select(*keys, bucket, *columns.values()).where(*base, AttributeHistory.instance.is_not(None))
    if starts is not None:
        stmt = stmt.join(starts, starts.c.entity_id == AttributeHistory.entity_id)
    for row in session.execute(stmt.group_by(*keys, bucket)):
        values = row._mapping
        first = start or values["origin"]
        entity_id = values["entity_id"] if one_entity is None else one_entity
        attr = values["attr"] if one_attr is None else one_attr
        yield entity_id, attr, _period_start(values["bucket"], first, period), values


def _anchor(session: Session, start: datetime) -> Any:
    """A window start as the SQL value bucketing counts from."""
    if _postgresql(session):
        return literal(start)
    # SQLite keeps UTC timestamps as text in this form; julianday() reads it.
    return literal(start.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"))


def _bucket(session: Session, column: Any, origin: Any, period: timedelta) -> Any:
    """The start of the aggregation period a timestamp falls in (PostgreSQL), or its index from `origin`."""
    if _postgresql(session):
        return func.date_bin(literal(period), column, origin, type_=column.type)
    # Half a millisecond absorbs the float error of julianday().
    offset = (func.julianday(column) - func.julianday(origin)) * 86400.0 + 0.0005
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


def _stddev(count: int, total: float | None, sumsq: float | None) -> float | None:
    """Population standard deviation from count, sum and sum of squares."""
    if not count or total is None or sumsq is None:
        return None
    mean = total / count
    return math.sqrt(max(sumsq / count - mean * mean, 0.0))
