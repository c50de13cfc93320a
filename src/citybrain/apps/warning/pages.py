"""What the warning pages read besides the services: rule names, where warnings lie, the data that triggered them.

Reads only: the warning app's own rule tables, the geo app's districts and the context broker's entities
and attribute history (through their services). Every function checks the reader's permission first;
the history that triggered a warning is read as the reader, so the context app's own checks apply and
a series the reader may not read is marked `access=False` with no data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shapely.geometry import shape
from sqlalchemy import select

from citybrain.apps.context import entities as ent
from citybrain.apps.context import services as context
from citybrain.apps.context import temporal
from citybrain.apps.context.errors import NgsiError
from citybrain.apps.geo import services as geo
from citybrain.apps.warning import places
from citybrain.apps.warning.models import Rule, RuleVersion
from citybrain.apps.warning.schemas import (
    LEVEL_COLORS,
    RANK,
    TriggerRead,
    TriggerSeriesRead,
    WarningDetail,
    WarningRead,
)
from citybrain.apps.warning.services import WARNING_READ, expand, reader_scope
from citybrain.sdk import SYSTEM, Actor, AppContext, Forbidden, Unauthorized, utcnow

# The chart of a warning shows this much history before it was raised (plus the longest duration).
LEAD = timedelta(hours=3)
# ... and this much after it was lifted (or until now), at most MAX_SPAN in all.
TRAIL = timedelta(minutes=30)
MAX_SPAN = timedelta(days=7)
MAX_POINTS = 2000
# Kinds whose thresholds are values of the attribute itself (drawn as lines on its chart).
VALUE_THRESHOLDS = ("threshold", "composite")


@dataclass(frozen=True)
class RuleName:
    """A rule as the warning pages name it."""

    id: int
    code: str
    name_zh: str
    name_en: str
    tenant: str


@dataclass
class Series:
    """One watched attribute of one entity around a warning's time, with the rule's thresholds."""

    entity_id: str
    attr: str
    op: str
    points: list[tuple[datetime, float]]
    thresholds: list[tuple[str, float]] = field(default_factory=list)
    # False: the reader may not read the entity's history (no points are shown).
    access: bool = True


@dataclass
class Trigger:
    """The data that triggered a warning: the rule's kind, the window read and one series per condition."""

    kind: str
    since: datetime
    until: datetime
    version: int | None
    series: list[Series]


def rule_names(ctx: AppContext, actor: Actor) -> list[RuleName]:
    """Every rule's code and names, by code (for naming warnings and filtering them by rule)."""
    actor.require(WARNING_READ)
    with ctx.read() as session:
        rows = session.execute(
            select(Rule.id, Rule.code, Rule.name_zh, Rule.name_en, Rule.definition).order_by(Rule.code)
        )
        return [
            RuleName(rule_id, code, zh, en, str((definition or {}).get("tenant", "")))
            for rule_id, code, zh, en, definition in rows
        ]


def district_map(ctx: AppContext) -> dict[str, Any]:
    """The districts (simplified GeoJSON) and the city's bounds, as the warning map draws them."""
    west, south, east, north = geo.city(ctx).geometry.bounds
    return {"districts": geo.district_collection(ctx, simplify=0.002), "bounds": [west, south, east, north]}


def _district_centre(ctx: AppContext, code: str | None) -> tuple[float, float] | None:
    """A point inside a district, near its middle."""
    found = geo.district(ctx, code) if code else None
    if found is None and code == geo.city(ctx).code:
        found = geo.city(ctx)
    if found is None:
        return None
    centre = found.geometry.centroid
    if not found.geometry.contains(centre):
        centre = found.geometry.representative_point()
    return (round(centre.x, 6), round(centre.y, 6))


def _locations(ctx: AppContext, tenant: str, ids: Sequence[str]) -> dict[str, tuple[float, float]]:
    """The location (a point on it) of each entity that has one, in one query."""
    found: dict[str, tuple[float, float]] = {}
    if not ids:
        return found
    try:
        query = context.EntityQuery(ids=list(ids), limit=len(ids))
        stored = context.query_entities(ctx, SYSTEM, tenant, query).entities
    except NgsiError:
        return found
    for item in stored:
        geometry = ent.geometry_of(item, ent.LOCATION)
        if not isinstance(geometry, dict):
            continue
        try:
            point = shape(geometry).representative_point()
        except (ValueError, TypeError, AttributeError):
            continue
        found[item["id"]] = (round(point.x, 6), round(point.y, 6))
    return found


def warning_places(
    ctx: AppContext, actor: Actor, warnings: Sequence[WarningRead], rules: Sequence[RuleName]
) -> list[dict[str, Any]]:
    """Map markers of warnings: at their entity's location, or their district's centre (district scopes too)."""
    actor.require(WARNING_READ)
    tenants = {rule.id: rule.tenant for rule in rules}
    wanted: dict[str, set[str]] = {}
    for item in warnings:
        if item.scope_key != item.district:
            wanted.setdefault(tenants.get(item.rule_id, ""), set()).add(item.entity_id)
    located = {
        (tenant, entity_id): point
        for tenant, ids in wanted.items()
        for entity_id, point in _locations(ctx, tenant, sorted(ids)).items()
    }
    markers = []
    for item in warnings:
        point = None
        placed = "district"
        if item.scope_key != item.district:
            point = located.get((tenants.get(item.rule_id, ""), item.entity_id))
            placed = "entity"
        if point is None:
            point, placed = _district_centre(ctx, item.district), "district"
        if point is None:  # no location and no district: the area the entity names, else the whole city
            named = places.named_by(ctx, item.entity_id)
            placed = "district" if named is not None and not named.city else "city"
            point = _district_centre(ctx, named.code if named is not None else geo.city(ctx).code)
        if point is None:
            continue
        markers.append(
            {
                "id": item.id,
                "lon": point[0],
                "lat": point[1],
                "level": item.level,
                "color": LEVEL_COLORS[item.level],
                "status": item.status,
                "title": item.title,
                "entity_id": item.entity_id,
                "placed": placed,
            }
        )
    markers.sort(key=lambda m: RANK[str(m["level"])])  # the highest level is drawn last, on top
    return markers


def _definition_at(ctx: AppContext, rule_id: int, moment: datetime) -> tuple[dict[str, Any], int | None]:
    """The rule's definition in force at a moment (its first version if the moment is earlier)."""
    with ctx.read() as session:
        rows = session.execute(
            select(RuleVersion.version, RuleVersion.definition, RuleVersion.changed_at)
            .where(RuleVersion.rule_id == rule_id)
            .order_by(RuleVersion.version)
        ).all()
        if not rows:
            current = session.scalar(select(Rule.definition).where(Rule.id == rule_id))
            return dict(current or {}), None
    chosen = rows[0]
    for row in rows:
        if row[2] <= moment:
            chosen = row
    return dict(chosen[1]), int(chosen[0])


def _history(
    ctx: AppContext,
    actor: Actor,
    tenant: str,
    entity_id: str,
    attr_iri: str,
    since: datetime,
    until: datetime,
) -> list[tuple[datetime, float]]:
    """An attribute's numeric values in a window (observedAt, else modifiedAt), oldest first, read as the actor.

    Raises the context app's 401/403 when the actor may not read it.
    """
    props: tuple[temporal.TimeProperty, ...] = ("observedAt", "modifiedAt")
    for prop in props:
        query = temporal.TemporalQuery(
            entities=context.EntityQuery(ids=[entity_id], limit=1),
            attrs={attr_iri},
            timerel="between",
            time_at=since,
            end_time_at=until,
            timeproperty=prop,
            instance_limit=MAX_POINTS,
        )
        try:
            result = temporal.temporal_entities(ctx, actor, tenant, query)
        except NgsiError:
            return []
        points: list[tuple[datetime, float]] = []
        for item in result.entities:
            for instance in item.get("attrs", {}).get(attr_iri, ()):
                value, raw = instance.get("value"), instance.get(prop)
                if "datasetId" in instance or not isinstance(raw, str):
                    continue
                if isinstance(value, int | float) and not isinstance(value, bool):
                    points.append((datetime.fromisoformat(raw), float(value)))
        if points:
            return sorted(points, key=lambda p: p[0])
    return []


def trigger(ctx: AppContext, actor: Actor, warning: WarningDetail) -> Trigger:
    """The watched attributes' history around a warning's time (as far as the actor may read it), with the thresholds."""
    reader_scope(actor)
    definition, version = _definition_at(ctx, warning.rule_id, warning.raised_at)
    kind = str(definition.get("kind", "threshold"))
    tenant = str(definition.get("tenant", ""))
    conditions = [c for c in definition.get("conditions", ()) if isinstance(c, dict)]
    if kind == "health" and warning.values.get("attr"):  # device health: the attribute the finding is about
        conditions = [{"attr": str(warning.values["attr"])}]
    longest = max(
        [int(c.get("for_seconds") or 0) for c in conditions]
        + [int(c.get("period_seconds") or 0) for c in conditions]
        + [int(x.get("for_seconds") or 0) for c in conditions for x in c.get("levels", ())]
        + [0]
    )
    now = utcnow()
    since = warning.raised_at - LEAD - timedelta(seconds=longest)
    until = min(now, (warning.lifted_at or now) + TRAIL)
    until = min(until, since + MAX_SPAN)
    if until <= since:
        until = since + timedelta(minutes=1)
    series = []
    for cond in conditions:
        attr = str(cond.get("attr", ""))
        entity_id = str(cond.get("entity_id") or warning.entity_id)
        if not attr:
            continue
        thresholds = []
        if kind in VALUE_THRESHOLDS:
            thresholds = [
                (str(x["level"]), float(x["threshold"]))
                for x in cond.get("levels", ())
                if isinstance(x, dict) and x.get("level") in RANK
            ]
        try:
            points, access = _history(ctx, actor, tenant, entity_id, expand(attr), since, until), True
        except (Forbidden, Unauthorized):
            points, access = [], False
        series.append(Series(entity_id, attr, str(cond.get("op", ">")), points, thresholds, access))
    return Trigger(kind=kind, since=since, until=until, version=version, series=series)


def trigger_read(trigger: Trigger) -> TriggerRead:
    """The API shape of a warning's triggering data."""
    return TriggerRead(
        kind=trigger.kind,
        since=trigger.since,
        until=trigger.until,
        version=trigger.version,
        series=[
            TriggerSeriesRead(
                entity_id=s.entity_id,
                attr=s.attr,
                op=s.op,
                access=s.access,
                points=s.points,
                thresholds=s.thresholds,
            )
            for s in trigger.series
        ],
    )
