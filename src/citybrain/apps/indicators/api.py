"""The indicators REST API under /api/indicators: the catalogue, every vital sign now, history, export.

`GET /current` answers every indicator's city and district values in one call, with a version stamp as
its ETag: a screen that polls with If-None-Match gets 304 until a value changes. `GET /screen` answers
what the IOC screen draws, and `GET /stream` pushes the changes to it as server-sent events.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse

from citybrain.apps.indicators import schemas, screen, services
from citybrain.sdk import Ctx, CurrentActor, Locale

router = APIRouter()
Code = Annotated[str, Path(min_length=1, max_length=64, description="The indicator's code.")]
AreaCode = Annotated[
    str | None,
    Query(min_length=1, max_length=12, description="The city's (510700) or a district's six-digit code."),
]
Codes = Annotated[
    str | None, Query(max_length=2000, description="Comma-separated indicator codes (default: all).")
]
CSV = "text/csv; charset=utf-8"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _names(ctx: Ctx, locale: str) -> dict[str, str]:
    return {a.code: a.name(locale) for a in services.areas(ctx)}


def _now_read(item: services.IndicatorNow, names: dict[str, str], locale: str) -> schemas.IndicatorNowRead:
    return schemas.IndicatorNowRead(
        indicator=schemas.indicator_read(item.item, locale),
        city=None if item.city is None else schemas.value_read(item.city, names),
        districts=[schemas.value_read(v, names) for v in item.districts],
    )


@router.get("/indicators", response_model=list[schemas.IndicatorRead])
def catalogue(ctx: Ctx, actor: CurrentActor, locale: Locale) -> list[schemas.IndicatorRead]:
    """Every declared indicator: name, unit, period, breakdown, thresholds, source and owner department."""
    return [schemas.indicator_read(item, locale) for item in services.catalogue(ctx, actor)]


@router.get("/indicators/{code}", response_model=schemas.IndicatorNowRead)
def indicator(ctx: Ctx, actor: CurrentActor, locale: Locale, code: Code) -> schemas.IndicatorNowRead:
    """One indicator's definition with its city value and its breakdown by district now."""
    snapshot = services.current(ctx, actor, codes=[services.definition(ctx, actor, code).spec.code])
    return _now_read(snapshot.indicators[0], _names(ctx, locale), locale)


@router.get(
    "/current", response_model=schemas.SnapshotRead, responses={304: {"description": "Nothing changed."}}
)
def current(
    request: Request,
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    district: AreaCode = None,
    codes: Codes = None,
    if_none_match: Annotated[str | None, Header(max_length=200)] = None,
) -> Response:
    """Every vital sign now (or the named ones): the city and each district, or one district's drill-down."""
    wanted = [c.strip() for c in codes.split(",") if c.strip()] if codes else None
    snapshot = services.current(ctx, actor, district=district, codes=wanted)
    etag = f'"{snapshot.version}"'
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if if_none_match is not None and etag in [t.strip() for t in if_none_match.split(",")]:
        return Response(status_code=304, headers=headers)
    names = _names(ctx, locale)
    body = schemas.SnapshotRead(
        version=snapshot.version,
        computed_at=snapshot.computed_at,
        city=services.areas(ctx)[0].code,
        district=district,
        indicators=[_now_read(i, names, locale) for i in snapshot.indicators],
    )
    return Response(body.model_dump_json(), media_type="application/json", headers=headers)


@router.get("/indicators/{code}/history", response_model=schemas.HistoryRead)
def history(
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    code: Code,
    area: AreaCode = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: Annotated[int | None, Query(ge=1, le=100_000)] = None,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> schemas.HistoryRead:
    """Recorded values of an indicator for the city (default) or a district in [start, end), oldest first."""
    found = services.history(ctx, actor, code, area, start, end, limit, offset)
    names = _names(ctx, locale)
    return schemas.HistoryRead(
        indicator=code,
        area=found.area.code,
        area_name=found.area.name(locale),
        start=found.start,
        end=found.end,
        limit=found.limit,
        offset=found.offset,
        next_offset=found.offset + found.limit if found.more else None,
        points=[schemas.value_read(p, names) for p in found.points],
    )


def _attachment(name: str) -> str:
    """A Content-Disposition naming the file (ASCII fallback and UTF-8 name)."""
    return f"attachment; filename=\"{name}\"; filename*=UTF-8''{quote(name)}"


@router.get(
    "/indicators/{code}/history.csv", response_class=Response, responses={200: {"content": {CSV: {}}}}
)
def export_csv(
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    code: Code,
    area: AreaCode = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Response:
    """The recorded values of [start, end) as CSV (UTF-8 with BOM; period starts in China time)."""
    found, table = services.export_rows(ctx, actor, code, area, start, end, locale)
    name = f"{code}-{found.area.code}.csv"
    return Response(
        services.to_csv(table), media_type=CSV, headers={"Content-Disposition": _attachment(name)}
    )


@router.get(
    "/indicators/{code}/history.xlsx", response_class=Response, responses={200: {"content": {XLSX: {}}}}
)
def export_xlsx(
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    code: Code,
    area: AreaCode = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Response:
    """The recorded values of [start, end) as an Excel workbook (period starts in China time)."""
    found, table = services.export_rows(ctx, actor, code, area, start, end, locale)
    name = f"{code}-{found.area.code}.xlsx"
    body = services.to_xlsx(table, found.item.spec.name(locale))
    return Response(body, media_type=XLSX, headers={"Content-Disposition": _attachment(name)})


@router.get("/screen")
def screen_data(ctx: Ctx, actor: CurrentActor, locale: Locale, district: AreaCode = None) -> Response:
    """What the IOC screen draws for the city or a district: gauges, signs, rankings and trends."""
    body = screen.screen_data(ctx, actor, district, locale)
    return Response(orjson.dumps(body), media_type="application/json", headers={"Cache-Control": "no-store"})


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Server-sent events."}},
)
def stream(ctx: Ctx, actor: CurrentActor, district: AreaCode = None) -> StreamingResponse:
    """Changes for the IOC screen as server-sent events: indicators, warning and event messages."""
    wanted = screen.check_stream(ctx, actor, district)
    return StreamingResponse(
        screen.stream(ctx, wanted),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
