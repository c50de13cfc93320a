"""The traffic REST API under /api/traffic: the index now, segments, recorded values, calculations."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query, Response

from citybrain.apps.traffic import schemas, services, tpi
from citybrain.sdk import Ctx, CurrentActor, Locale, ValidationFailed

router = APIRouter()
GEOJSON = "application/geo+json"
District = Annotated[
    str | None, Query(min_length=1, max_length=12, description="A district's six-digit code.")
]
Sort = Literal["-tti", "tti", "-dtp", "dtp", "name", "length"]


def sort_states(states: list[services.SegmentState], sort: str, locale: str) -> list[services.SegmentState]:
    """Segments in the asked order; segments without a speed go last."""
    if sort == "name":
        return sorted(states, key=lambda s: (s.segment.name(locale), s.segment.id))
    if sort == "length":
        return sorted(states, key=lambda s: (-s.segment.length_m, s.segment.id))
    key = sort.lstrip("-")
    known = [s for s in states if s.index is not None]
    unknown = [s for s in states if s.index is None]
    known.sort(key=lambda s: (getattr(s.index, key), s.segment.id), reverse=sort.startswith("-"))
    return known + sorted(unknown, key=lambda s: s.segment.id)


def select_segments(
    ctx: Ctx, actor: CurrentActor, district: str | None, sort: str, locale: str
) -> list[services.SegmentState]:
    """The current segments of the city or of one district, in order."""
    code = services.check_district(ctx, district)
    states = services.picture(ctx, actor).segments
    if code is not None and code != services.CITY_CODE:
        states = [s for s in states if s.segment.district_code == code]
    return sort_states(states, sort, locale)


@router.get("/index", response_model=schemas.IndexRead)
def index(ctx: Ctx, actor: CurrentActor, locale: Locale) -> schemas.IndexRead:
    """The traffic performance index (GB/T 33171) of the city and each district now, with grades."""
    return schemas.index_read(services.picture(ctx, actor), locale)


@router.get("/segments", response_model=list[schemas.SegmentRead])
def segments(
    ctx: Ctx, actor: CurrentActor, locale: Locale, district: District = None, sort: Sort = "-tti"
) -> list[schemas.SegmentRead]:
    """Every road segment now (or a district's): speeds, travel times, TTI, DTP and grade."""
    return [schemas.segment_read(s, locale) for s in select_segments(ctx, actor, district, sort, locale)]


@router.get("/segments.geojson", response_class=Response, responses={200: {"content": {GEOJSON: {}}}})
def segment_features(ctx: Ctx, actor: CurrentActor, locale: Locale, district: District = None) -> Response:
    """The road segments as GeoJSON lines with their grade and colour (for maps)."""
    features: list[dict[str, Any]] = []
    for state in select_segments(ctx, actor, district, "name", locale):
        props = schemas.segment_read(state, locale).model_dump(mode="json")
        props["color"] = props["grade"]["color"] if props["grade"] else None
        features.append(
            {
                "type": "Feature",
                "id": state.segment.id,
                "geometry": {
                    "type": "LineString",
                    "coordinates": [list(c) for c in state.segment.coordinates],
                },
                "properties": props,
            }
        )
    body = orjson.dumps({"type": "FeatureCollection", "features": features})
    return Response(body, media_type=GEOJSON)


@router.get("/history", response_model=schemas.HistoryRead)
def history(
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    area: Annotated[str, Query(min_length=1, max_length=12)] = services.CITY_CODE,
    start: datetime | None = None,
    end: datetime | None = None,
) -> schemas.HistoryRead:
    """The recorded index of the city (510700) or a district in [start, end) (default: today so far)."""
    points = services.history(ctx, actor, area, start, end)
    window = services.window(ctx, start, end)
    return schemas.HistoryRead(
        area=area,
        start=window[0],
        end=window[1],
        points=[
            schemas.HistoryPointRead(
                at=p.at,
                tpi=round(p.tpi, 2),
                grade=schemas.grade_read(p.grade, locale),
                dtp=round(p.dtp, 4),
                tti=round(p.tti, 3),
                segments=p.segments,
            )
            for p in points
        ],
    )


@router.post("/evaluate", response_model=schemas.EvaluateRead)
def evaluate(
    data: schemas.EvaluateRequest, ctx: Ctx, actor: CurrentActor, locale: Locale
) -> schemas.EvaluateRead:
    """Evaluate given segments as one network (TTI, DTP, grades, TPI by GB/T 33171); nothing is stored."""
    actor.require(services.READ)
    done: list[tpi.SegmentIndex] = []
    for i, item in enumerate(data.segments):
        try:
            done.append(
                tpi.evaluate_segment(item.length_m, item.speed_kmh, item.free_flow_kmh, item.flow_vph)
            )
        except tpi.InvalidInput as exc:
            raise ValidationFailed(
                "Segment {number} cannot be evaluated: {reason}",
                number=i + 1,
                reason=str(exc),
                extra={"pointer": f"/segments/{i}"},
            ) from None
    network = tpi.aggregate(done, data.weighting)
    return schemas.EvaluateRead(
        tpi=round(network.tpi, 2),
        grade=schemas.grade_read(network.grade, locale),
        dtp=round(network.dtp, 4),
        tti=round(network.tti, 3),
        weighting=network.weighting,
        mileage_ratios={str(k): round(v, 4) for k, v in network.mileage_ratios.items()},
        segments=[
            schemas.SegmentResult(
                travel_s=round(s.travel_s, 2),
                free_flow_s=round(s.free_flow_s, 2),
                tti=round(s.tti, 4),
                dtp=round(s.dtp, 4),
                grade=schemas.grade_read(s.grade, locale),
            )
            for s in done
        ],
    )
