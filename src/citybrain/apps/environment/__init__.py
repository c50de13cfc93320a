"""Environment: air quality by HJ 633 (station, district and city AQI) and heavy-pollution warnings."""

from citybrain.apps.environment.settings import EnvironmentSettings
from citybrain.sdk import AppSpec, NavItem

APP = AppSpec(
    label="environment",
    title="Environment",
    description="Air quality of the city, its districts and stations: AQI by HJ 633, now and over the last day.",
    layer="application",
    requires=("identity", "context", "geo", "warning"),
    icon="leaf",
    settings=EnvironmentSettings,
    nav=(NavItem("Air quality", "/environment", "environment.air.read"),),
)
