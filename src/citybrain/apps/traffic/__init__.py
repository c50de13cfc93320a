"""Traffic: the city's traffic performance index (TPI) by GB/T 33171-2016, per district and road segment."""

from citybrain.apps.traffic.settings import TrafficSettings
from citybrain.sdk import AppSpec, NavItem

APP = AppSpec(
    label="traffic",
    title="Traffic",
    description="The traffic performance index of the city and its districts, and the grade of every road segment.",
    layer="application",
    requires=("identity", "context", "geo"),
    icon="road",
    settings=TrafficSettings,
    nav=(NavItem("Traffic index", "/traffic", "traffic.index.read"),),
)
