"""Geo pages under /geo: the one map of the city.

The page carries the boundaries, the layers the reader may see and the base-layer settings as JSON;
the browser (static/geo/map.js) draws them with Leaflet and loads each layer's features from the API,
refreshing them periodically without moving the view.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from citybrain.apps.geo import services
from citybrain.sdk import Ctx, CurrentActor, Locale, render

router = APIRouter()


@router.get("")
def geo_home() -> Response:
    """The app's entry: the map."""
    return RedirectResponse("/geo/map", status_code=303)


@router.get("/map")
def city_map(request: Request, ctx: Ctx, actor: CurrentActor, locale: Locale) -> Response:
    """The one map: districts, main roads and every layer the reader may see."""
    page = services.map_page(ctx, actor, locale)
    response = render(request, "geo/map.html", page=page, district_list=page["districts"]["features"])
    response.headers["Cache-Control"] = "no-store"
    return response
