"""Traffic pages under /traffic: the city's index gauge, the district ranking, the day's trend, the map
of segments coloured by grade and the table of segments.

Views stay thin: call the services, shape what the templates draw, render. The services check the
permission; the kernel answers a missing one with the error page (403) or the sign-in redirect (401).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from citybrain.apps.traffic import services, tpi
from citybrain.apps.traffic.api import sort_states
from citybrain.sdk import Ctx, CurrentActor, Locale, render

router = APIRouter()
Sort = Literal["-tti", "tti", "-dtp", "dtp", "name", "length"]
SORTS = ("-tti", "tti", "name", "length")
DARK_TEXT_LEVELS = (2, 3)  # light green and yellow take dark text; the rest take white


def _chart_time(moment: datetime, zone: ZoneInfo) -> int:
    """Milliseconds of the wall-clock time in the zone, read as UTC (the charts draw in UTC mode)."""
    return int(moment.astimezone(zone).replace(tzinfo=UTC).timestamp() * 1000)


@router.get("")
def overview(
    request: Request,
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    sort: Annotated[Sort, Query()] = "-tti",
) -> Response:
    """The traffic index now: the city's gauge, the districts, the day's trend, the map and the segments."""
    picture = services.picture(ctx, actor)
    points = services.history(ctx, actor, services.CITY_CODE)
    zone = ZoneInfo(ctx.settings.timezone)

    def when(moment: datetime | None) -> str:
        """A timestamp in China Standard Time."""
        return "" if moment is None else moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")

    def ink(grade: tpi.Grade | None) -> str:
        """The text colour readable on a grade's colour."""
        return "#1a1a1a" if grade is not None and grade.level in DARK_TEXT_LEVELS else "#ffffff"

    midnight = picture.at.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    city = picture.city.index
    chart: dict[str, Any] = {
        "tpi": None if city is None else round(city.tpi, 2),
        "grade": None if city is None else city.grade.name(locale),
        "bands": [[b, g.color] for b, g in zip((*tpi.TPI_GRADE_BOUNDS, 10.0), tpi.GRADES, strict=True)],
        "trend": [
            {"value": [_chart_time(p.at, zone), round(p.tpi, 2)], "itemStyle": {"color": p.grade.color}}
            for p in points
        ],
        "grades": [{"level": g.level, "name": g.name(locale), "color": g.color} for g in tpi.GRADES],
        "segments": "/api/traffic/segments.geojson",
        # the day (China time) the trend spans: midnight to midnight
        "day_start": _chart_time(midnight, zone),
        "day_end": _chart_time(midnight + timedelta(days=1), zone),
    }
    names = {d.code: d.name(locale) for d in picture.districts}
    response = render(
        request,
        "traffic/overview.html",
        picture=picture,
        city=picture.city,
        districts=picture.districts,
        segments=sort_states(picture.segments, sort, locale),
        district_names=names,
        sort=sort,
        sorts=SORTS,
        grades=tpi.GRADES,
        chart=chart,
        when=when,
        ink=ink,
        covered=sum(1 for s in picture.segments if s.index is not None),
    )
    response.headers["Cache-Control"] = "no-store"
    return response
