"""Indicators: the city's vital signs (城市运行体征) the apps declare, computed, recorded and served."""

from citybrain.apps.indicators.settings import IndicatorsSettings
from citybrain.sdk import AppSpec, NavItem

APP = AppSpec(
    label="indicators",
    title="Vital signs",
    description="The city's vital signs by district: what each indicator means, its value now and its history.",
    layer="brain",
    requires=("identity", "context", "geo"),
    icon="pulse",
    settings=IndicatorsSettings,
    nav=(
        NavItem("Vital signs", "/indicators/signs", "indicators.indicator.read"),
        NavItem("City operations screen", "/indicators/screen", "indicators.indicator.read"),
        NavItem("Daily brief", "/indicators/brief", "indicators.indicator.read"),
    ),
)
