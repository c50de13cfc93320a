"""A small app declaring warning rules in its warnings.py, as domain apps do."""

from citybrain.sdk import AppSpec

APP = AppSpec(
    label="wdeclare",
    title="Declaring app",
    description="Declares warning rules.",
    layer="application",
    requires=("warning",),
)
