"""API shapes of the traffic app: grades, the index of an area, segments, recorded values, calculations."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from citybrain.apps.traffic import services, tpi


class GradeRead(BaseModel):
    """A traffic grade (1 畅通 … 5 严重拥堵) and its colour."""

    level: int
    name: str
    name_zh: str
    name_en: str
    color: str


class AreaRead(BaseModel):
    """The index of the city or a district now (tpi and grade are null when no segment has a speed)."""

    code: str
    name: str
    segments: int
    covered: int
    tpi: float | None
    grade: GradeRead | None
    dtp: float | None
    tti: float | None
    weighting: str | None
    length_km: float | None
    # GB/T 33171 §7.2.2.3: the share of the covered length in each grade, by grade level "1".."5".
    mileage_ratios: dict[str, float] | None


class IndexRead(BaseModel):
    """The traffic index now: the city and its districts, busiest first."""

    at: datetime
    city: AreaRead
    districts: list[AreaRead]


class SegmentRead(BaseModel):
    """A road segment now: speeds, travel times, TTI, DTP and grade (null without a fresh reading)."""

    id: str
    road_id: str
    name: str
    road_class: str
    district: str | None
    length_m: float
    speed_limit_kmh: float
    free_flow_kmh: float
    free_flow_source: str
    detectors: int
    observed_at: datetime | None
    speed_kmh: float | None
    flow_vph: float | None
    travel_s: float | None
    free_flow_s: float | None
    tti: float | None
    dtp: float | None
    grade: GradeRead | None


class HistoryPointRead(BaseModel):
    """A recorded index value of an interval starting at `at`."""

    at: datetime
    tpi: float
    grade: GradeRead
    dtp: float
    tti: float
    segments: int


class HistoryRead(BaseModel):
    """The recorded index of an area in a window."""

    area: str
    start: datetime
    end: datetime
    points: list[HistoryPointRead]


class SegmentInput(BaseModel):
    """A segment to evaluate: length, mean travel speed, free-flow speed and (optionally) flow."""

    length_m: float
    speed_kmh: float
    free_flow_kmh: float
    flow_vph: float | None = None


class EvaluateRequest(BaseModel):
    """Segments to evaluate as one network, and how to weight them."""

    segments: list[SegmentInput] = Field(min_length=1, max_length=10_000)
    weighting: Literal["vkt", "length"] = "vkt"


class SegmentResult(BaseModel):
    """One evaluated segment."""

    travel_s: float
    free_flow_s: float
    tti: float
    dtp: float
    grade: GradeRead


class EvaluateRead(BaseModel):
    """The network index of the given segments and each segment's indicators."""

    tpi: float
    grade: GradeRead
    dtp: float
    tti: float
    weighting: str
    mileage_ratios: dict[str, float]
    segments: list[SegmentResult]


def grade_read(grade: tpi.Grade, locale: str) -> GradeRead:
    """A grade in the reader's language."""
    return GradeRead(
        level=grade.level,
        name=grade.name(locale),
        name_zh=grade.name_zh,
        name_en=grade.name_en,
        color=grade.color,
    )


def area_read(area: services.AreaIndex, locale: str) -> AreaRead:
    """An area's index."""
    index = area.index
    return AreaRead(
        code=area.code,
        name=area.name(locale),
        segments=area.segments,
        covered=area.covered,
        tpi=None if index is None else round(index.tpi, 2),
        grade=None if index is None else grade_read(index.grade, locale),
        dtp=None if index is None else round(index.dtp, 4),
        tti=None if index is None else round(index.tti, 3),
        weighting=None if index is None else index.weighting,
        length_km=None if index is None else round(index.length_m / 1000, 3),
        mileage_ratios=None
        if index is None
        else {str(k): round(v, 4) for k, v in index.mileage_ratios.items()},
    )


def index_read(picture: services.Picture, locale: str) -> IndexRead:
    """The index now."""
    return IndexRead(
        at=picture.at,
        city=area_read(picture.city, locale),
        districts=[area_read(a, locale) for a in picture.districts],
    )


def segment_read(state: services.SegmentState, locale: str) -> SegmentRead:
    """A segment now."""
    seg, index = state.segment, state.index
    return SegmentRead(
        id=seg.id,
        road_id=seg.road_id,
        name=seg.name(locale),
        road_class=seg.road_class,
        district=seg.district_code,
        length_m=round(seg.length_m, 1),
        speed_limit_kmh=seg.speed_limit_kmh,
        free_flow_kmh=round(state.free_flow_kmh, 1),
        free_flow_source=state.free_flow_source,
        detectors=state.detectors,
        observed_at=state.observed_at,
        speed_kmh=None if index is None else round(index.speed_kmh, 1),
        flow_vph=None if index is None or index.flow_vph is None else round(index.flow_vph, 1),
        travel_s=None if index is None else round(index.travel_s, 1),
        free_flow_s=None if index is None else round(index.free_flow_s, 1),
        tti=None if index is None else round(index.tti, 3),
        dtp=None if index is None else round(index.dtp, 4),
        grade=None if index is None else grade_read(index.grade, locale),
    )
