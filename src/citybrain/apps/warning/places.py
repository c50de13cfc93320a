"""Where a warning applies, by name: its district, or the division (city or district) its entity stands for.

An entity that stands for a whole area (a city's air-quality forecast, `urn:ngsi-ld:AirQualityForecast:
510700`) carries no location, so its warnings have no district; the last segment of its id is then the
area's administrative division code (GB/T 2260), and the geo app names it: 510700 绵阳市, 510703 涪城区.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from citybrain.apps.geo import services as geo
from citybrain.sdk import AppContext

DIVISION_CODE = re.compile(r"\d{6}")


@dataclass(frozen=True)
class Place:
    """A named area: its division code, its names, and whether it is the whole city."""

    code: str
    name_zh: str
    name_en: str
    city: bool


def division(ctx: AppContext, code: str) -> Place | None:
    """The city or one of its districts by division code; None for a code the geo app does not know."""
    city = geo.city(ctx)
    if code == city.code:
        return Place(city.code, city.name_zh, city.name_en, True)
    found = geo.district(ctx, code)
    return Place(found.code, found.name_zh, found.name_en, False) if found is not None else None


def named_by(ctx: AppContext, entity_id: str) -> Place | None:
    """The division an entity id names by its last segment (…:510700), if it names one."""
    tail = entity_id.rsplit(":", 1)[-1]
    return division(ctx, tail) if DIVISION_CODE.fullmatch(tail) else None


def place_of(ctx: AppContext, entity_id: str, district: str | None) -> Place | None:
    """Where a warning applies as a whole: its district, else the division its entity names, else None."""
    found = division(ctx, district) if district else None
    return found if found is not None else named_by(ctx, entity_id)
