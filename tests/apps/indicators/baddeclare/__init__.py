"""A test app whose indicator declaration is invalid (thresholds in the wrong order)."""

from citybrain.sdk import AppSpec

APP = AppSpec(
    label="ibad",
    title="Bad",
    description="Declares a bad indicator.",
    layer="application",
    requires=("identity", "context", "geo"),
)
