"""Environment pages under /environment: the city's air quality now with its trend, and each station's day.

Views stay thin: call one service, shape what the templates draw, render. The services check the
permission; the kernel answers a missing one with the error page (403) or the sign-in redirect (401).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from citybrain.apps.environment import aqi, forecasts, series, services
from citybrain.apps.environment import heavy_pollution as hp
from citybrain.apps.environment.aqi import N_
from citybrain.apps.warning.schemas import LEVEL_COLORS
from citybrain.sdk import AppContext, Ctx, CurrentActor, Locale, render, utcnow

router = APIRouter()
EntityId = Annotated[str, Path(min_length=1, max_length=256)]
SORTS = ("aqi", "-aqi", "district", "name")
Sort = Literal["aqi", "-aqi", "district", "name"]
# Display names and units of the station attributes (chemical formulas read the same in both languages).
POLLUTANT_NAMES: dict[str, str] = {
    "pm25": "PM2.5",
    "pm10": "PM10",
    "no2": "NO₂",
    "so2": "SO₂",
    "o3": "O₃",
    "co": "CO",
}
UNITS: dict[str, str] = {a: ("mg/m³" if a == "co" else "µg/m³") for a in POLLUTANT_NAMES}
DARK_TEXT_LEVELS = (1, 2, 3)  # green, yellow and orange take dark text; the rest take white
DARK_TEXT_WARNINGS = ("yellow",)  # the warning colours that take dark text
# Display names of the forecasting models (the baseline's name is translated; the others are names).
MODEL_NAMES: dict[str, str] = {
    "seasonal_naive": N_("Seasonal naive"),
    "ets": "AutoETS",
    "mstl": "MSTL",
    "lightgbm": "LightGBM",
}


def _chart_time(moment: datetime, zone: ZoneInfo) -> int:
    """Milliseconds of the wall-clock time in the zone, read as UTC (the charts draw in UTC mode)."""
    return int(moment.astimezone(zone).replace(tzinfo=UTC).timestamp() * 1000)


def _page(request: Request, ctx: AppContext, locale: str, template: str, **values: Any) -> HTMLResponse:
    """Render an environment page with its helpers (China time, level texts in the reader's language)."""
    zone = ZoneInfo(ctx.settings.timezone)

    def when(moment: datetime | None) -> str:
        """A timestamp in China Standard Time."""
        if moment is None:
            return ""
        aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
        return aware.astimezone(zone).strftime("%Y-%m-%d %H:%M")

    def text(level: aqi.Level | None, what: str) -> str:
        """A level's text (category, name, colour, effect, advice) in the reader's language."""
        if level is None:
            return ""
        return str(getattr(level, f"{what}_{'en' if locale == 'en' else 'zh'}"))

    def name_of(zh: str, en: str) -> str:
        """A name in the reader's language."""
        return (en or zh) if locale == "en" else (zh or en)

    def ink(level: aqi.Level | None) -> str:
        """The text colour readable on a level's colour."""
        return "#1a1a1a" if level is None or level.level in DARK_TEXT_LEVELS else "#ffffff"

    def warning_name(level: str) -> str:
        """A heavy-pollution warning level's name in the reader's language (红色预警（I级）…)."""
        zh, en = hp.NAMES[hp.Level(level)]
        return en if locale == "en" else zh

    def warning_ink(level: str) -> str:
        """The text colour readable on a warning level's colour."""
        return "#1a1a1a" if level in DARK_TEXT_WARNINGS else "#ffffff"

    def reason_of(reason: Mapping[str, str]) -> str:
        """A forecast's reason in the reader's language."""
        return reason.get("en" if locale == "en" else "zh-CN") or next(iter(reason.values()), "")

    response = render(
        request,
        template,
        when=when,
        level_text=text,
        name_of=name_of,
        ink=ink,
        warning_name=warning_name,
        warning_ink=warning_ink,
        warning_colors=LEVEL_COLORS,
        reason_of=reason_of,
        pollutant_names=POLLUTANT_NAMES,
        units=UNITS,
        now=utcnow(),
        **values,
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def _aqi_points(hours: Sequence[services.HourValue], zone: ZoneInfo) -> list[dict[str, Any]]:
    """Hourly AQI as chart points coloured by level (hours without a published AQI are left out)."""
    return [
        {"value": [_chart_time(h.hour, zone), h.result.aqi], "itemStyle": {"color": h.result.level.hex}}
        for h in hours
        if h.result is not None and h.result.aqi is not None and h.result.level is not None
    ]


def _pollutant_series(hours: Sequence[services.HourValue], zone: ZoneInfo) -> dict[str, list[list[Any]]]:
    """Per attribute, the 1-hour means as chart points."""
    series: dict[str, list[list[Any]]] = {}
    for h in hours:
        for term, value in h.concentrations.items():
            if value is not None:
                series.setdefault(term, []).append([_chart_time(h.hour, zone), round(value, 3)])
    return series


def _points(hours: Sequence[datetime], values: Sequence[float], zone: ZoneInfo) -> list[list[Any]]:
    """Chart points of forecast hours (labelled by their end) and values."""
    return [[_chart_time(h, zone), round(v, 1)] for h, v in zip(hours, values, strict=True)]


def _forecast_chart(
    found: series.StationForecast, observed: Sequence[list[Any]], zone: ZoneInfo
) -> dict[str, Any]:
    """A pollutant's chart: the observed 1-hour means, the forecast means and the 80 % band."""
    return {
        "id": f"forecast-{found.attr}",
        "attr": found.attr,
        "name": POLLUTANT_NAMES[found.attr],
        "unit": UNITS[found.attr],
        "observed": list(observed),
        "mean": _points(found.hours, found.mean, zone),
        "lower": _points(found.hours, found.lower, zone),
        "upper": _points(found.hours, found.upper, zone),
    }


def _sorted(stations: Sequence[services.Station], sort: str) -> list[services.Station]:
    """Stations in the order the table asks for; stations without an AQI go last."""

    def value(station: services.Station) -> int | None:
        now = station.now
        return None if now is None or now.result is None else now.result.aqi

    if sort in ("aqi", "-aqi"):
        known = [s for s in stations if value(s) is not None]
        unknown = [s for s in stations if value(s) is None]
        known.sort(key=lambda s: (value(s) or 0, s.entity_id), reverse=sort == "-aqi")
        return known + unknown
    if sort == "name":
        return sorted(stations, key=lambda s: (s.name, s.entity_id))
    return sorted(stations, key=lambda s: (s.district_code or "~", s.entity_id))


@router.get("")
def overview(
    request: Request,
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    sort: Annotated[Sort, Query()] = "-aqi",
) -> Response:
    """The city's air quality now, its trend, the forecast with its warnings, the districts and the stations."""
    picture = services.air_quality(ctx, actor)
    zone = ZoneInfo(ctx.settings.timezone)
    outlook = forecasts.outlook(ctx, actor)
    peaks = series.peaks(ctx, actor, [s.entity_id for s in picture.stations])
    return _page(
        request,
        ctx,
        locale,
        "environment/overview.html",
        picture=picture,
        peaks=peaks,
        city=picture.city,
        stations=_sorted(picture.stations, sort),
        sort=sort,
        sorts=SORTS,
        chart={"id": "city-aqi", "points": _aqi_points(picture.city.hours, zone)},
        forecasts=outlook.forecasts,
        heavy_warnings=outlook.warnings,
        scheme=outlook.scheme,
    )


@router.get("/stations/{entity_id}")
def station_page(
    entity_id: EntityId, request: Request, ctx: Ctx, actor: CurrentActor, locale: Locale
) -> Response:
    """A station's AQI now and its last hours: the AQI and each pollutant's 1-hour means."""
    station = services.station(ctx, actor, entity_id)
    zone = ZoneInfo(ctx.settings.timezone)
    pollutants: Mapping[str, list[list[Any]]] = _pollutant_series(station.hours, zone)
    charts = [
        {
            "id": f"pollutant-{term}",
            "name": POLLUTANT_NAMES[term],
            "unit": UNITS[term],
            "points": pollutants[term],
        }
        for term in services.ATTRIBUTES
        if pollutants.get(term)
    ]
    predicted = [
        (f, _forecast_chart(f, pollutants.get(f.attr, []), zone) if f.ready else None)
        for f in series.station_forecasts(ctx, actor, entity_id)
    ]
    return _page(
        request,
        ctx,
        locale,
        "environment/station.html",
        station=station,
        predicted=predicted,
        forecast_charts=[c for _f, c in predicted if c is not None],
        first_minutes=series.first_forecast_minutes(ctx),
        model_names=MODEL_NAMES,
        chart={"id": "station-aqi", "points": _aqi_points(station.hours, zone)},
        charts=charts,
    )
