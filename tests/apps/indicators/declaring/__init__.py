"""A test app that declares indicators: one it controls, one that fails, one of text, one city-wide."""

from citybrain.sdk import AppSpec

APP = AppSpec(
    label="ideclare",
    title="Declaring",
    description="Declares test indicators.",
    layer="application",
    requires=("identity", "context", "geo"),
)
