"""API shapes of the indicators app (tables are in models.py)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from citybrain.apps.indicators import services
from citybrain.apps.indicators.definitions import Declared


class ThresholdsRead(BaseModel):
    """Where the indicator turns from good to warn and bad, and which way is worse."""

    direction: str
    warn: float
    bad: float


class IndicatorRead(BaseModel):
    """An indicator's definition."""

    code: str
    app: str
    name: str
    name_zh: str
    name_en: str
    description: str
    unit: str
    kind: str
    decimals: int
    period: str
    by_district: bool
    source: str
    department: str
    thresholds: ThresholdsRead | None


class ValueRead(BaseModel):
    """An area's value of an indicator (current or recorded); `level` colours it: good, warn or bad."""

    area: str
    area_name: str
    period_start: datetime
    value: float | None
    text: str | None
    level: str | None
    status: str
    reason: str | None
    computed_at: datetime | None


class IndicatorNowRead(BaseModel):
    """An indicator now: its definition, the city's value and the districts' values."""

    indicator: IndicatorRead
    city: ValueRead | None
    districts: list[ValueRead]


class SnapshotRead(BaseModel):
    """Every vital sign now; `version` changes whenever any value changes (send it as If-None-Match)."""

    version: str
    computed_at: datetime | None
    city: str
    district: str | None
    indicators: list[IndicatorNowRead]


class HistoryRead(BaseModel):
    """Recorded values of an indicator for one area in [start, end), oldest first, one page."""

    indicator: str
    area: str
    area_name: str
    start: datetime
    end: datetime
    limit: int
    offset: int
    next_offset: int | None
    points: list[ValueRead]


def indicator_read(item: Declared, locale: str) -> IndicatorRead:
    """The definition in a locale."""
    spec = item.spec
    return IndicatorRead(
        code=spec.code,
        app=item.app,
        name=spec.name(locale),
        name_zh=spec.name_zh,
        name_en=spec.name_en,
        description=spec.description(locale),
        unit=spec.unit,
        kind=spec.kind,
        decimals=spec.decimals,
        period=spec.period,
        by_district=spec.by_district,
        source=spec.source,
        department=spec.department,
        thresholds=None if spec.thresholds is None else ThresholdsRead(**spec.thresholds.model_dump()),
    )


def value_read(value: services.Value, names: dict[str, str]) -> ValueRead:
    """A value with its area's name."""
    return ValueRead(
        area=value.area,
        area_name=names.get(value.area, value.area),
        period_start=value.period_start,
        value=value.value,
        text=value.text,
        level=value.level,
        status=value.status,
        reason=value.reason,
        computed_at=value.computed_at,
    )
