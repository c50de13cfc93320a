"""Traffic services: road segments, their current speeds and grades, the TPI now and over time.

Segments are the geo app's roads, each cut into equal parts shorter than GB/T 33171 §5.2–5.5 allows
(3 km for expressways, 1.5 km for other roads). The demo's road file gives centre lines between the
road's ends, not its stop lines, so the cut is by length; a segment keeps the district of its midpoint.

A segment's current speed is the space-mean speed (§7.2.1.3) of the fresh readings of the traffic
detectors on it: a detector is a context entity of type TrafficFlowObserved whose `refRoadSegment` names
the geo road it stands on; its position along that road picks the segment. Free-flow speeds (§7.2.1.2)
are learned from the detectors' speed history (15-minute means computed by the context broker) and kept
in this app's table; the periodic task in lifespan.py learns them again and records the index of the city
and each district once per interval.

Live state and history come through the context and geo apps' functions, never their tables. Whoever
holds `traffic.index.read` sees the traffic picture, so the reads of the broker run as the system.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import shapely
from shapely.geometry import LineString, Point
from shapely.ops import substring
from sqlalchemy import delete, select

from citybrain.apps.context import entities as ent
from citybrain.apps.context import services as context
from citybrain.apps.context import temporal
from citybrain.apps.context.errors import NonexistentTenant
from citybrain.apps.context.jsonld import Context
from citybrain.apps.geo import services as geo
from citybrain.apps.geo.roads import haversine_m
from citybrain.apps.traffic import tpi
from citybrain.apps.traffic.models import FreeFlowSpeed, IndexRecord
from citybrain.apps.traffic.settings import TrafficSettings
from citybrain.apps.traffic.tpi import Grade
from citybrain.sdk import SYSTEM, Actor, AppContext, BadRequest, NotFound, utcnow

READ = "traffic.index.read"
CITY_CODE = "510700"
STATE = "traffic.segments"
SPEED = "averageVehicleSpeed"
FLOW = "intensity"
ROAD_REF = "refRoadSegment"
# The segments are published to the context broker as entities of this type (Smart Data Models name).
SEGMENT_TYPE = "RoadSegment"
# The free-flow history is aggregated in intervals of this length (§7.2.1.2: at most 15 minutes).
LEARN_INTERVAL = timedelta(minutes=15)
# The longest window one history request may span.
MAX_HISTORY = timedelta(days=31)
_lock = threading.Lock()


def settings(ctx: AppContext) -> TrafficSettings:
    """The traffic app's settings."""
    return ctx.app_setting("traffic", TrafficSettings)


# --- segments --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    """A road segment: a part of one geo road, its class, speed limit, length, line and district."""

    id: str
    road_id: str
    index: int  # 0-based position along the road
    parts: int  # how many segments the road was cut into
    name_zh: str
    name_en: str
    road_class: str
    speed_limit_kmh: float
    length_m: float
    coordinates: tuple[tuple[float, float], ...]
    district_code: str | None

    def name(self, locale: str) -> str:
        """The road's name in a locale, with the segment's number when the road has several."""
        base = self.name_en if locale == "en" else self.name_zh
        return base if self.parts == 1 else f"{base} ({self.index + 1}/{self.parts})"


def _line_meters(coordinates: Sequence[tuple[float, float]]) -> float:
    """The length of a polyline in metres (great-circle distances between its vertices)."""
    return sum(haversine_m(a, b) for a, b in itertools.pairwise(coordinates))


def build_segments(ctx: AppContext) -> list[Segment]:
    """Every geo road cut into equal parts short enough for its class (§5.2–5.5), with their districts."""
    planned: list[tuple[geo.Road, int, int, tuple[tuple[float, float], ...]]] = []
    for road in geo.roads(ctx):
        # cut in a plane where a degree of longitude is as long as it is at the road (equal metres)
        scale = math.cos(math.radians(road.coordinates[0][1]))
        line = LineString([(x * scale, y) for x, y in road.coordinates])
        parts = tpi.split_count(road.meters, road.road_class)
        for i in range(parts):
            piece = line if parts == 1 else substring(line, i / parts, (i + 1) / parts, normalized=True)
            coords = tuple((float(x) / scale, float(y)) for x, y in shapely.get_coordinates(piece).tolist())
            planned.append((road, i, parts, coords))
    middles = []
    for _road, _i, _parts, coords in planned:
        mid = LineString(coords).interpolate(0.5, normalized=True)
        middles.append((float(mid.x), float(mid.y)))
    codes = geo.district_codes_at(ctx, middles)
    return [
        Segment(
            id=road.id if parts == 1 else f"{road.id}-{i + 1}",
            road_id=road.id,
            index=i,
            parts=parts,
            name_zh=road.name_zh,
            name_en=road.name_en,
            road_class=road.road_class,
            speed_limit_kmh=road.speed_limit_kmh,
            length_m=_line_meters(coords),
            coordinates=coords,
            district_code=code,
        )
        for (road, i, parts, coords), code in zip(planned, codes, strict=True)
    ]


def segments(ctx: AppContext) -> list[Segment]:
    """The road segments (built once per platform context: the roads are reference data)."""
    found: list[Segment] | None = ctx.extensions.get(STATE)
    if found is None:
        with _lock:
            found = ctx.extensions.get(STATE)
            if found is None:
                found = build_segments(ctx)
                ctx.extensions[STATE] = found
    return found


def _segment_of(by_road: Mapping[str, list[Segment]], road_id: str, point: Point) -> str:
    """The id of the segment of a road holding the point nearest to a detector."""
    parts = by_road[road_id]
    if len(parts) == 1:
        return parts[0].id
    line = LineString([c for s in parts for c in s.coordinates])
    fraction = float(line.project(point, normalized=True))
    return parts[min(len(parts) - 1, int(fraction * len(parts)))].id


# --- detectors and current speeds ------------------------------------------------------------------


@dataclass(frozen=True)
class Reading:
    """A detector's latest speed (km/h) and flow (veh/h) and when they were observed."""

    entity_id: str
    segment_id: str
    speed_kmh: float
    flow_vph: float | None
    observed_at: datetime


def _term(iri: str) -> str:
    return iri.rsplit("/", 1)[-1].rsplit("#", 1)[-1]


def _instance(stored: Mapping[str, Any], term: str) -> Mapping[str, Any] | None:
    """The default instance of an attribute given by its term."""
    for iri, instances in stored.get("attrs", {}).items():
        if _term(iri) == term:
            return next((i for i in instances if "datasetId" not in i), None)
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _point(stored: Mapping[str, Any]) -> Point | None:
    location = _instance(stored, "location")
    value = None if location is None else location.get("value")
    if isinstance(value, Mapping) and value.get("type") == "Point":
        coords = value.get("coordinates")
        if isinstance(coords, list) and len(coords) >= 2:
            return Point(float(coords[0]), float(coords[1]))
    return None


def _detectors(ctx: AppContext, config: TrafficSettings, limit: int | None = None) -> list[dict[str, Any]]:
    """The stored detector entities (the first `limit` of them)."""
    query = context.EntityQuery(
        types=[Context().expand_type(config.detector_type)], limit=limit or config.max_detectors
    )
    try:
        return context.query_entities(ctx, SYSTEM, config.tenant, query).entities
    except NonexistentTenant:  # the tenant holds no entities yet
        return []


def detector_segments(ctx: AppContext, stored: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """The segment id of each detector entity on a known road (by its refRoadSegment and position)."""
    by_road: dict[str, list[Segment]] = {}
    for seg in segments(ctx):
        by_road.setdefault(seg.road_id, []).append(seg)
    found: dict[str, str] = {}
    for item in stored:
        ref = _instance(item, ROAD_REF)
        road_id = None if ref is None else ref.get("value", ref.get("object"))
        point = _point(item)
        if isinstance(road_id, str) and road_id in by_road and point is not None:
            found[item["id"]] = _segment_of(by_road, road_id, point)
    return found


def readings(ctx: AppContext, now: datetime | None = None) -> list[Reading]:
    """The fresh speed readings of the detectors on known roads."""
    config = settings(ctx)
    moment = now or utcnow()
    oldest = moment - timedelta(minutes=config.stale_minutes)
    stored = _detectors(ctx, config)
    placed = detector_segments(ctx, stored)
    out: list[Reading] = []
    for item in stored:
        segment_id = placed.get(item["id"])
        speed = _instance(item, SPEED)
        if segment_id is None or speed is None:
            continue
        value, when = _number(speed.get("value")), _moment(speed.get("observedAt"))
        if value is None or value <= 0 or when is None or not oldest <= when <= moment + timedelta(minutes=5):
            continue
        flow = _instance(item, FLOW)
        flow_value = None if flow is None else _number(flow.get("value"))
        out.append(
            Reading(item["id"], segment_id, value, flow_value if (flow_value or 0) >= 0 else None, when)
        )
    return out


# --- free-flow speeds (§7.2.1.2) -------------------------------------------------------------------


def free_flow_speeds(ctx: AppContext) -> dict[str, tuple[float, str, int]]:
    """The stored free-flow speed, its source and days of history, by segment id."""
    with ctx.read() as session:
        rows = session.execute(select(FreeFlowSpeed)).scalars().all()
        return {r.segment_id: (r.speed_kmh, r.source, r.days) for r in rows}


def _interval_means(
    ctx: AppContext, config: TrafficSettings, ids: Sequence[str], start: datetime, end: datetime
) -> dict[str, dict[datetime, float]]:
    """Per detector, the mean speed of each 15-minute interval of the window (computed by the broker)."""
    if not ids:
        return {}
    query = temporal.TemporalQuery(
        entities=context.EntityQuery(ids=list(ids), limit=len(ids)),
        attrs={Context().expand(SPEED)},
        timerel="between",
        time_at=start,
        end_time_at=end,
        aggr_methods=["avg"],
        aggr_period=LEARN_INTERVAL,
    )
    found = temporal.temporal_entities(ctx, SYSTEM, config.tenant, query)
    means: dict[str, dict[datetime, float]] = {}
    for item in found.entities:
        per = means.setdefault(item["id"], {})
        for methods in item.get("aggregates", {}).values():
            for value, begin, _end in methods.get("avg", []):
                number, moment = _number(value), _moment(begin)
                if number is not None and number > 0 and moment is not None:
                    per[moment.astimezone(UTC)] = number
    return means


def learn_free_flow(ctx: AppContext, now: datetime | None = None) -> dict[str, tpi.FreeFlow]:
    """Learn every segment's free-flow speed from the detectors' history and store it (§7.2.1.2)."""
    config = settings(ctx)
    moment = (now or utcnow()).astimezone(UTC)
    end = moment.replace(minute=moment.minute - moment.minute % 15, second=0, microsecond=0)
    start = end - timedelta(days=config.free_flow_lookback_days)
    stored = _detectors(ctx, config)
    if not stored:  # no detector, no history: every segment keeps its speed limit (nothing to store)
        return {}
    placed = detector_segments(ctx, stored)
    means = _interval_means(ctx, config, sorted(placed), start, end)
    by_segment: dict[str, dict[datetime, list[float]]] = {}
    for entity_id, per in means.items():
        target = by_segment.setdefault(placed[entity_id], {})
        for at, value in per.items():
            target.setdefault(at, []).append(value)
    zone = ZoneInfo(ctx.settings.timezone)
    learned: dict[str, tpi.FreeFlow] = {}
    for seg in segments(ctx):
        samples = [(at, tpi.space_mean_speed(v)) for at, v in by_segment.get(seg.id, {}).items()]
        learned[seg.id] = tpi.free_flow_speed(
            samples,
            seg.speed_limit_kmh,
            zone=zone,
            interval=LEARN_INTERVAL,
            min_days=config.free_flow_min_days,
        )
    with ctx.uow(SYSTEM, "traffic.free_flow.learn") as uow:
        uow.session.execute(delete(FreeFlowSpeed))
        uow.session.add_all(
            FreeFlowSpeed(
                segment_id=k, speed_kmh=v.speed_kmh, source=v.source, days=v.days, computed_at=moment
            )
            for k, v in learned.items()
        )
        uow.record(
            "update",
            "traffic_free_flow",
            None,
            {"segments": len(learned), "learned": sum(1 for v in learned.values() if v.source == "history")},
        )
    return learned


# --- the current picture ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SegmentState:
    """A segment now: its detectors' space-mean speed, free-flow speed, and the indicators (None: no data)."""

    segment: Segment
    free_flow_kmh: float
    free_flow_source: str
    detectors: int
    observed_at: datetime | None
    index: tpi.SegmentIndex | None


@dataclass(frozen=True)
class AreaIndex:
    """The index of the city or a district now (None without a segment that has a speed)."""

    code: str
    name_zh: str
    name_en: str
    segments: int  # segments of the area
    covered: int  # of which have a current speed
    index: tpi.NetworkIndex | None

    def name(self, locale: str) -> str:
        """The area's name in a locale."""
        return self.name_en if locale == "en" else self.name_zh


@dataclass(frozen=True)
class Picture:
    """The traffic now: when, the city, its districts (busiest first) and every segment."""

    at: datetime
    city: AreaIndex
    districts: list[AreaIndex]
    segments: list[SegmentState]


def interval_readings(
    ctx: AppContext, start: datetime, end: datetime, step: timedelta
) -> dict[datetime, list[Reading]]:
    """The detectors' mean speed and flow of each interval of [start, end), by interval start (history)."""
    # The means are computed by the context broker from the detectors' recorded readings; an interval's
    # mean speed stands for the detector's speed at the interval's end (§7.2.1.3: intervals ≤ 5 min).
    config = settings(ctx)
    placed = detector_segments(ctx, _detectors(ctx, config))
    if not placed:
        return {}
    jctx = Context()
    query = temporal.TemporalQuery(
        entities=context.EntityQuery(ids=sorted(placed), limit=len(placed)),
        attrs={jctx.expand(SPEED), jctx.expand(FLOW)},
        timerel="between",
        time_at=start,
        end_time_at=end,
        aggr_methods=["avg"],
        aggr_period=step,
    )
    found = temporal.temporal_entities(ctx, SYSTEM, config.tenant, query)
    by_interval: dict[datetime, list[Reading]] = {}
    for item in found.entities:
        speeds: dict[datetime, float] = {}
        flows: dict[datetime, float] = {}
        for iri, methods in item.get("aggregates", {}).items():
            target = speeds if _term(iri) == SPEED else flows if _term(iri) == FLOW else None
            if target is None:
                continue
            for value, begin, _end in methods.get("avg", []):
                number, moment = _number(value), _moment(begin)
                if number is not None and number >= 0 and moment is not None:
                    target[moment.astimezone(UTC)] = number
        for at, speed in speeds.items():
            if speed > 0:
                by_interval.setdefault(at, []).append(
                    Reading(item["id"], placed[item["id"]], speed, flows.get(at), at + step)
                )
    return by_interval


def segment_states(
    ctx: AppContext, now: datetime | None = None, found: Sequence[Reading] | None = None
) -> list[SegmentState]:
    """Every segment with its speed and indicators (from the detectors' fresh readings, or those given)."""
    by_segment: dict[str, list[Reading]] = {}
    for reading in readings(ctx, now) if found is None else found:
        by_segment.setdefault(reading.segment_id, []).append(reading)
    free = free_flow_speeds(ctx)
    states = []
    for seg in segments(ctx):
        speed, source, _days = free.get(seg.id, (seg.speed_limit_kmh, "speed_limit", 0))
        found = by_segment.get(seg.id, [])
        index = None
        if found:
            flows = [r.flow_vph for r in found]
            flow = None if any(f is None for f in flows) else sum(f or 0.0 for f in flows) / len(flows)
            v = tpi.space_mean_speed([r.speed_kmh for r in found])
            index = tpi.evaluate_segment(seg.length_m, v, speed, flow_vph=flow)
        observed = max((r.observed_at for r in found), default=None)
        states.append(SegmentState(seg, speed, source, len(found), observed, index))
    return states


def _area(code: str, name_zh: str, name_en: str, states: Sequence[SegmentState], weighting: str) -> AreaIndex:
    """The network index of the segments of an area."""
    covered = [s.index for s in states if s.index is not None]
    index = tpi.aggregate(covered, "vkt" if weighting == "vkt" else "length") if covered else None
    return AreaIndex(code, name_zh, name_en, len(states), len(covered), index)


def evaluate(ctx: AppContext, now: datetime | None = None, found: Sequence[Reading] | None = None) -> Picture:
    """The traffic now (or of the readings given): every segment, the city's and each district's index."""
    moment = now or utcnow()
    config = settings(ctx)
    states = segment_states(ctx, moment, found)
    outline = geo.city(ctx)
    city = _area(outline.code, outline.name_zh, outline.name_en, states, config.weighting)
    districts = []
    for district in geo.districts(ctx):
        mine = [s for s in states if s.segment.district_code == district.code]
        if mine:
            districts.append(_area(district.code, district.name_zh, district.name_en, mine, config.weighting))
    districts.sort(key=lambda a: (-(a.index.tpi if a.index else -1.0), a.code))
    return Picture(moment, city, districts, states)


def evaluate_past(ctx: AppContext, moment: datetime) -> Picture:
    """The traffic at a past moment, from the detectors' mean speeds of the 15 minutes ending then."""
    # §7.2.2 computes the indicators over intervals of at most 15 minutes: the longest is taken, so a detector
    # that reported a few times in it (the history may be sparser than the live feed) counts.
    step = tpi.MAX_INTERVAL
    start = moment - step
    found = interval_readings(ctx, start, moment, step)
    return evaluate(ctx, moment, [r for at, batch in found.items() if at >= start for r in batch])


def is_past(ctx: AppContext, moment: datetime) -> bool:
    """Whether a moment lies before the detectors' current readings (their history answers for it)."""
    return moment < utcnow() - timedelta(minutes=settings(ctx).stale_minutes)


def backfill_records(ctx: AppContext, hours: float, now: datetime | None = None) -> int:
    """Record the index of the last `hours` from the detectors' history, where no interval is recorded."""
    config = settings(ctx)
    step = timedelta(minutes=config.record_minutes)
    end = interval_start(now or utcnow(), config.record_minutes)
    start = end - timedelta(hours=hours)
    with ctx.read() as session:
        held = {
            at.astimezone(UTC)
            for at in session.execute(
                select(IndexRecord.at).where(IndexRecord.at >= start, IndexRecord.at < end).distinct()
            ).scalars()
        }
    found = interval_readings(ctx, start, end, step)
    rows: list[IndexRecord] = []
    for at, batch in sorted(found.items()):
        if at in held or not start <= at < end:
            continue
        picture = evaluate(ctx, at + step, batch)
        rows += [_record(area, at) for area in (picture.city, *picture.districts) if area.index is not None]
    if rows:
        with ctx.uow(SYSTEM, "traffic.index.backfill") as uow:
            uow.session.add_all(rows)
            uow.record("create", "traffic_index", None, {"backfilled": len(rows), "hours": hours})
    return len(rows)


def picture(ctx: AppContext, actor: Actor, now: datetime | None = None) -> Picture:
    """The traffic now for an actor allowed to read the traffic index."""
    actor.require(READ)
    return evaluate(ctx, now)


def check_district(ctx: AppContext, code: str | None) -> str | None:
    """The district code when it names a district of the city (or the city itself); NotFound otherwise."""
    if code is None or code == CITY_CODE:
        return code
    if geo.district(ctx, code) is None:
        raise NotFound("{code} is not a district of Mianyang.", code=code)
    return code


# --- the recorded index ----------------------------------------------------------------------------


def interval_start(moment: datetime, minutes: int) -> datetime:
    """The start of the recording interval holding a moment (UTC)."""
    moment = moment.astimezone(UTC)
    return moment.replace(minute=moment.minute - moment.minute % minutes, second=0, microsecond=0)


def record(ctx: AppContext, now: datetime | None = None) -> int:
    """Record the current index of the city and each district for this interval; rows written."""
    config = settings(ctx)
    if not _detectors(ctx, config, 1):  # a platform without traffic detectors has nothing to record
        return 0
    current = evaluate(ctx, now)
    at = interval_start(current.at, config.record_minutes)
    rows = [_record(area, at) for area in (current.city, *current.districts) if area.index is not None]
    if config.publish_road_speeds:
        publish_road_speeds(ctx, current.segments)
    if config.publish_segments and any(s.index is not None for s in current.segments):
        publish_segments(ctx, current)
    if not rows:
        return 0
    with ctx.uow(SYSTEM, "traffic.index.record") as uow:
        uow.session.execute(delete(IndexRecord).where(IndexRecord.at == at))
        uow.session.add_all(rows)
        uow.record("create", f"traffic_index:{at.isoformat()}", None, {r.area_code: r.tpi for r in rows})
    return len(rows)


def _record(area: AreaIndex, at: datetime) -> IndexRecord:
    """The row recording an area's index of an interval."""
    assert area.index is not None
    return IndexRecord(
        area_code=area.code,
        at=at,
        tpi=area.index.tpi,
        grade=area.index.grade.level,
        dtp=area.index.dtp,
        tti=area.index.tti,
        segments=area.index.segments,
        length_m=area.index.length_m,
        weighting=area.index.weighting,
    )


def purge(ctx: AppContext, now: datetime | None = None) -> int:
    """Delete recorded index values older than the retention; rows deleted."""
    oldest = (now or utcnow()) - timedelta(days=settings(ctx).retention_days)
    with ctx.uow(SYSTEM, "traffic.index.purge") as uow:
        result = uow.session.execute(delete(IndexRecord).where(IndexRecord.at < oldest))
        gone = int(getattr(result, "rowcount", 0) or 0)
        if gone:
            uow.record("delete", "traffic_index", {"older_than": oldest.isoformat(), "rows": gone}, None)
    return gone


def publish_road_speeds(ctx: AppContext, states: Sequence[SegmentState]) -> None:
    """Hand each road's current space-mean speed to the geo app (roads without data go back to their limit)."""
    by_road: dict[str, list[tuple[float, float]]] = {}
    for state in states:
        if state.index is not None:
            by_road.setdefault(state.segment.road_id, []).append(
                (state.segment.length_m, state.index.speed_kmh)
            )
    speeds: dict[str, float | None] = {seg.road_id: None for seg in segments(ctx)}
    for road_id, parts in by_road.items():
        # V = ΣL / Σt over the covered segments of the road (§7.2.1.3)
        speeds[road_id] = sum(length for length, _ in parts) / sum(length / v for length, v in parts)
    geo.set_road_speeds(ctx, speeds)


def segment_entity(state: SegmentState) -> dict[str, Any]:
    """A segment as a normalized NGSI-LD RoadSegment entity with its current indicators (if it has a speed)."""
    seg, index = state.segment, state.index

    def prop(value: Any, unit: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "Property", "value": value}
        if unit:
            out["unitCode"] = unit
        if state.observed_at is not None and index is not None:
            out["observedAt"] = ent.format_datetime(state.observed_at)
        return out

    entity: dict[str, Any] = {
        "id": f"urn:ngsi-ld:{SEGMENT_TYPE}:{seg.id}",
        "type": SEGMENT_TYPE,
        "name": {
            "type": "LanguageProperty",
            "languageMap": {"zh-CN": seg.name("zh_CN"), "en": seg.name("en")},
        },
        "roadClass": {"type": "Property", "value": seg.road_class},
        "length": {"type": "Property", "value": round(seg.length_m / 1000, 3), "unitCode": "KMT"},
        "maximumAllowedSpeed": {"type": "Property", "value": seg.speed_limit_kmh, "unitCode": "KMH"},
        "freeFlowSpeed": {"type": "Property", "value": round(state.free_flow_kmh, 1), "unitCode": "KMH"},
        "location": {
            "type": "GeoProperty",
            "value": {"type": "LineString", "coordinates": [list(c) for c in seg.coordinates]},
        },
    }
    if seg.district_code:
        entity["areaServed"] = {"type": "Property", "value": seg.district_code}
    if index is not None:
        grade = index.grade
        entity["averageVehicleSpeed"] = prop(round(index.speed_kmh, 1), "KMH")
        entity["travelTimeIndex"] = prop(round(index.tti, 3))
        entity["delayTimeProportion"] = prop(round(index.dtp, 4))
        entity["trafficGrade"] = prop(grade.level)
        entity["trafficGradeName"] = {
            "type": "LanguageProperty",
            "languageMap": {"zh-CN": grade.name_zh, "en": grade.name_en},
        }
    return entity


def publish_segments(ctx: AppContext, current: Picture) -> None:
    """Replace the RoadSegment entities of the broker with the segments now (a map layer draws them)."""
    jctx, now = Context(), utcnow()
    items: list[dict[str, Any] | Exception] = [
        ent.parse_entity(segment_entity(state), jctx, now) for state in current.segments
    ]
    result = context.batch(ctx, SYSTEM, settings(ctx).tenant, "upsert", items, upsert_mode="replace")
    if result.errors:
        raise RuntimeError(f"the road segments could not be published: {result.errors[:3]}")


@dataclass(frozen=True)
class HistoryPoint:
    """A recorded index value."""

    at: datetime
    tpi: float
    grade: Grade
    dtp: float
    tti: float
    segments: int


def window(ctx: AppContext, start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    """A history window [start, end): default end now, default start the day's midnight (China time)."""
    if end is None:
        end = utcnow()
    if start is None:
        local = end.astimezone(ZoneInfo(ctx.settings.timezone))
        start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if start.tzinfo is None or end.tzinfo is None:
        raise BadRequest("start and end need a time zone, e.g. 2026-11-25T08:00:00+08:00.")
    if start >= end:
        raise BadRequest("start must be before end.")
    if end - start > MAX_HISTORY:
        raise BadRequest("The window may span at most {days} days.", days=MAX_HISTORY.days)
    return start.astimezone(UTC), end.astimezone(UTC)


def history(
    ctx: AppContext, actor: Actor, area: str, start: datetime | None = None, end: datetime | None = None
) -> list[HistoryPoint]:
    """The recorded index of the city or a district in [start, end) (default: the day so far, China time)."""
    actor.require(READ)
    check_district(ctx, area)
    begin, finish = window(ctx, start, end)
    stmt = (
        select(IndexRecord)
        .where(IndexRecord.area_code == area, IndexRecord.at >= begin, IndexRecord.at < finish)
        .order_by(IndexRecord.at)
    )
    with ctx.read() as session:
        rows = session.execute(stmt).scalars().all()
        return [HistoryPoint(r.at, r.tpi, tpi.GRADES[r.grade - 1], r.dtp, r.tti, r.segments) for r in rows]
