"""Indicator pages under /indicators: the catalogue of vital signs and one indicator's page (the value of
each district as a table and a bar chart, the history as a line chart, the export links).

The catalogue lives at /indicators/signs (its indicators under it), not at /indicators: the shell marks a
navigation entry as current when the path starts with the entry's path, and /indicators would be marked
on the screen's and the brief's pages as well. /indicators and /indicators/<code> redirect there.

Views stay thin: call the services, shape what the templates draw, render. The services check the
permission; the kernel answers a missing one with the error page (403) or the sign-in redirect (401).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from citybrain.apps.indicators import brief, screen, services
from citybrain.apps.indicators.definitions import IndicatorSpec
from citybrain.sdk import AppContext, Ctx, CurrentActor, Locale, render, utcnow

router = APIRouter()
# The level colours (the warning app's green/amber/red family), and grey for "no value".
LEVEL_COLORS = {"good": "#2e7d32", "warn": "#f0a500", "bad": "#c62828", None: "#9aa8b6"}
SPANS = {
    "1d": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "1y": timedelta(days=365),
}


def _owner(ctx: AppContext, locale: str) -> Callable[[str], str]:
    """The owner department's name in the reader's language, by code (the code when it is unknown)."""
    names = services.department_names(ctx)

    def name(code: str) -> str:
        zh, en = names.get(code, (code, code))
        return (en or zh) if locale == "en" else zh

    return name


def _chart_time(moment: datetime, zone: ZoneInfo) -> int:
    """Milliseconds of the wall-clock time in the zone, read as UTC (the charts draw in UTC mode)."""
    return int(moment.astimezone(zone).replace(tzinfo=UTC).timestamp() * 1000)


def shown(spec: IndicatorSpec, value: services.Value | None) -> str:
    """A value as text with its unit; "—" without one."""
    if value is None or value.status != services.OK:
        return "—"
    if spec.kind == "text":
        return value.text or "—"
    if value.value is None:
        return "—"
    number = f"{value.value:.{spec.decimals}f}"
    return f"{number} {spec.unit}".strip() if spec.unit not in ("%",) else number + spec.unit


CATALOGUE = "/indicators/signs"


@router.get("", include_in_schema=False)
def home() -> Response:
    """The app's start page is the catalogue."""
    return RedirectResponse(CATALOGUE, status_code=307)


@router.get("/signs")
def catalogue(request: Request, ctx: Ctx, actor: CurrentActor, locale: Locale) -> Response:
    """The catalogue: every vital sign with its definition and the city's value now."""
    snapshot = services.current(ctx, actor)
    zone = ZoneInfo(ctx.settings.timezone)
    response = render(
        request,
        "indicators/catalogue.html",
        snapshot=snapshot,
        shown=shown,
        why=lambda spec, value: services.explain(ctx, spec, value, locale),
        colors=LEVEL_COLORS,
        owner=_owner(ctx, locale),
        when=lambda m: "" if m is None else m.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/screen")
def screen_page(
    request: Request,
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    district: Annotated[str | None, Query(min_length=1, max_length=12)] = None,
) -> Response:
    """The IOC screen (城市运行一屏观全域) of the city, or of one district (drill-down)."""
    data = screen.screen_data(ctx, actor, district, locale)
    config = {
        "locale": locale,
        "district": data["district"],
        "city": data["city"],
        "map": screen.map_config(ctx, actor, locale),
        "refresh_ms": int(services.settings(ctx).screen_refresh_seconds * 1000),
        "apps": {label: ctx.app(label) is not None for label in ("warning", "command")},
    }
    response = render(request, "indicators/screen.html", data=data, config=config)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/brief")
def daily_brief(
    request: Request,
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    day: Annotated[str | None, Query(alias="date", max_length=40)] = None,
) -> Response:
    """The daily city operations brief (城市运行日报) of a day, printable."""
    found = brief.daily_brief(ctx, actor, brief.parse_day(ctx, day))
    zone = ZoneInfo(ctx.settings.timezone)
    response = render(
        request,
        "indicators/brief.html",
        brief=found,
        names={a.code: a.name(locale) for a in found.areas},
        colors=LEVEL_COLORS,
        chart=(brief.CHART_W, brief.CHART_H),
        number=lambda spec, x: "—" if x is None else f"{x:.{spec.decimals}f}",
        when=lambda m: m.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
        why=lambda sign: found.why(ctx, sign, locale),
        previous=(found.day - timedelta(days=1)).isoformat(),
        following=(found.day + timedelta(days=1)).isoformat(),
        latest=brief.parse_day(ctx, None),
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/{code}", include_in_schema=False)
def moved(request: Request, code: Annotated[str, Path(min_length=1, max_length=64)]) -> Response:
    """An indicator's page at its former address: redirect to the one under the catalogue."""
    query = f"?{request.url.query}" if request.url.query else ""
    return RedirectResponse(f"{CATALOGUE}/{quote(code)}{query}", status_code=307)


@router.get("/signs/{code}")
def detail(
    request: Request,
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    code: Annotated[str, Path(min_length=1, max_length=64)],
    area: Annotated[str | None, Query(min_length=1, max_length=12)] = None,
    span: Annotated[Literal["1d", "7d", "30d", "1y"], Query()] = "1d",
) -> Response:
    """One indicator: its definition, each district's value now, and the history of the city or a district."""
    item = services.definition(ctx, actor, code)
    spec = item.spec
    now = services.current(ctx, actor, codes=[spec.code]).indicators[0]
    found = services.history(ctx, actor, spec.code, area, start=utcnow() - SPANS[span])
    zone = ZoneInfo(ctx.settings.timezone)
    names = {a.code: a.name(locale) for a in services.areas(ctx)}
    ranked = sorted(now.districts, key=lambda v: (v.value is None, -(v.value or 0.0), v.area))
    chart: dict[str, Any] = {
        "unit": spec.unit,
        "decimals": spec.decimals,
        "numeric": spec.kind == "number",
        "bars": [
            {
                "name": names.get(v.area, v.area),
                "value": v.value,
                "itemStyle": {"color": LEVEL_COLORS[v.level]},
            }
            for v in ranked
            if v.value is not None
        ],
        "trend": [
            [_chart_time(p.period_start, zone), p.value] for p in found.points if p.status == services.OK
        ],
        "thresholds": None if spec.thresholds is None else spec.thresholds.model_dump(),
        "colors": {k or "none": v for k, v in LEVEL_COLORS.items()},
    }
    query = f"area={found.area.code}&start={found.start.isoformat()}&end={found.end.isoformat()}"
    response = render(
        request,
        "indicators/indicator.html",
        item=item,
        spec=spec,
        now=now,
        districts=ranked,
        names=names,
        history=found,
        area=found.area,
        areas=services.areas(ctx),
        span=span,
        spans=tuple(SPANS),
        chart=chart,
        shown=shown,
        why=lambda spec, value: services.explain(ctx, spec, value, locale),
        owner=_owner(ctx, locale),
        colors=LEVEL_COLORS,
        export_query=query.replace("+", "%2B"),
        when=lambda m: "" if m is None else m.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
    )
    response.headers["Cache-Control"] = "no-store"
    return response
