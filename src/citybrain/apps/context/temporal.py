"""Temporal queries over attribute history: raw instances, temporalValues and aggregatedValues."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Integer, cast, func, literal, select
from sqlalchemy.orm import Session
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
MAX_INSTANCES = 1000


def parse_duration(text: str) -> timedelta:
    """An ISO 8601 duration of weeks, days, hours, minutes, seconds (years and months vary in length)."""
    match = DURATION_RE.match(text)
    if not match or text in ("P", "PT") or text.endswith("T"):
        raise BadRequestData(f"aggrPeriodDuration {text!r} is not an ISO 8601 duration such as PT1H or P1D")
    parts = {k: float(v) for k, v in match.groupdict().items() if v}
    period = timedelta(
        weeks=parts.get("w", 0),
        days=parts.get("d", 0),
        hours=parts.get("h", 0),
        minutes=parts.get("m", 0),
        seconds=parts.get("s", 0),
    )
    if period <= timedelta(0):
        raise BadRequestData("aggrPeriodDuration must be longer than zero")
    return period


@dataclass
class TemporalQuery:
    """Which entities and attributes, which time window on which time property, and how to return them."""

    entities: EntityQuery
    attrs: set[str] | None = None
    timerel: TimeRel | None = None
    time_at: datetime | None = None
    end_time_at: datetime | None = None
    timeproperty: Literal["observedAt", "modifiedAt"] = "observedAt"
    last_n: int | None = None
    aggr_methods: Sequence[str] = ()
    aggr_period: timedelta | None = None


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


def temporal_entities(
    ctx: AppContext, actor: Actor, tenant: str, query: TemporalQuery
) -> list[dict[str, Any]]:
    """The selected entities, each with the history of its (selected) attributes in the window."""
    actor.require(READ)
    selected = query_entities(ctx, actor, tenant, query.entities).entities
    with ctx.read() as session:
        return [_history_of(session, tenant, stored, query) for stored in selected]


def _history_of(
    session: Session, tenant: str, stored: dict[str, Any], query: TemporalQuery
) -> dict[str, Any]:
    """One entity's temporal representation in the stored (expanded) naming."""
    result: dict[str, Any] = {"id": stored["id"], "type": stored["type"], "attrs": {}}
    base = [AttributeHistory.tenant == tenant, AttributeHistory.entity_id == stored["id"], *_window(query)]
    if query.attrs is not None:
        base.append(AttributeHistory.attr.in_(query.attrs))
    if query.aggr_methods:
        result["aggregates"] = _aggregate(session, base, query)
        return result
    column = _time_column(query)
    stmt = select(AttributeHistory.pk, AttributeHistory.attr, AttributeHistory.instance, column).where(
        *base, AttributeHistory.instance.is_not(None)
    )
    if query.last_n:
        ranked = stmt.add_columns(
            func.row_number().over(partition_by=AttributeHistory.attr, order_by=column.desc()).label("rank")
        ).subquery()
        stmt = select(ranked.c.pk, ranked.c.attr, ranked.c.instance, ranked.c[column.key]).where(
            ranked.c.rank <= query.last_n
        )
        order_column: Any = ranked.c[column.key]
    else:
        order_column = column
    rows = session.execute(stmt.order_by(order_column).limit(MAX_INSTANCES * 10)).all()
    for pk, attr, instance, _at in rows:
        series = result["attrs"].setdefault(attr, [])
        if len(series) < MAX_INSTANCES:
            series.append({**instance, "instanceId": f"urn:ngsi-ld:attribute:instance:{pk}"})
    return result


def _bucket(session: Session, column: Any, start: datetime, period: timedelta) -> Any:
    """The index of the aggregation period a timestamp falls in, counted from `start`."""
    seconds = period.total_seconds()
    if session.get_bind().dialect.name == "postgresql":
        return func.floor(func.extract("epoch", column - literal(start)) / seconds)
    # SQLite keeps UTC timestamps as text; julianday() reads them. Half a millisecond absorbs float error.
    anchor = start.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    offset = (func.julianday(column) - func.julianday(anchor)) * 86400.0 + 0.0005
    return cast(offset / seconds, Integer)


def _aggregate(session: Session, base: list[ColumnElement[bool]], query: TemporalQuery) -> dict[str, Any]:
    """Per attribute, per period: the requested aggregates, as [value, start, end] triples."""
    column = _time_column(query)
    start = query.time_at if query.timerel in ("after", "between") else None
    if start is None:
        start = session.scalar(select(func.min(column)).where(*base))
        if start is None:
            return {}
    period = query.aggr_period or timedelta(days=36500)
    bucket = _bucket(session, column, start, period)
    number = AttributeHistory.number
    stmt = (
        select(
            AttributeHistory.attr,
            bucket.label("bucket"),
            func.count(),
            func.count(func.distinct(number)),
            func.sum(number),
            func.avg(number),
            func.min(number),
            func.max(number),
            func.sum(number * number),
            func.count(number),
        )
        .where(*base, AttributeHistory.instance.is_not(None))
        .group_by(AttributeHistory.attr, bucket)
        .order_by(AttributeHistory.attr, bucket)
    )
    out: dict[str, Any] = {}
    for attr, index, total, distinct, total_sum, mean, low, high, sumsq, numeric in session.execute(stmt):
        begin = start + period * int(index)
        end = begin + period
        values = {
            "totalCount": total,
            "distinctCount": distinct,
            "sum": total_sum,
            "avg": mean,
            "min": low,
            "max": high,
            "sumsq": sumsq,
            "stddev": _stddev(numeric, total_sum, sumsq),
        }
        series = out.setdefault(attr, {method: [] for method in query.aggr_methods})
        for method in query.aggr_methods:
            series[method].append([values[method], ent.format_datetime(begin), ent.format_datetime(end)])
    return out


def _stddev(count: int, total: float | None, sumsq: float | None) -> float | None:
    """Population standard deviation from count, sum and sum of squares."""
    if not count or total is None or sumsq is None:
        return None
    mean = total / count
    return math.sqrt(max(sumsq / count - mean * mean, 0.0))
