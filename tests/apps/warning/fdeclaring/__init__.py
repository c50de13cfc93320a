"""A small app declaring a forecast series in its warnings.py, as domain apps do."""

from citybrain.sdk import AppSpec

APP = AppSpec(
    label="fdeclare",
    title="Forecast-declaring app",
    description="Declares a forecast series.",
    layer="application",
    requires=("warning",),
)
