"""Geo: the one map of the city: administrative boundaries, map layers, the road graph."""

from citybrain.apps.geo.settings import GeoSettings
from citybrain.sdk import AppSpec, NavItem

APP = AppSpec(
    label="geo",
    title="One map",
    description="Mianyang's districts, every located entity as a map layer, and the road graph.",
    layer="base",
    requires=("identity", "context"),
    icon="map",
    settings=GeoSettings,
    nav=(NavItem("City map", "/geo/map", "geo.map.read"),),
)
