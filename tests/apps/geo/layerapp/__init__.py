"""A small app that declares map layers, for the geo app's tests."""

from citybrain.sdk import AppSpec

APP = AppSpec(
    label="geolayers",
    title="Layer test app",
    description="Declares map layers.",
    layer="application",
    requires=("geo",),
)
