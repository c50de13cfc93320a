"""A test app with an indicator whose compute function hangs until the test lets it go."""

from citybrain.sdk import AppSpec

APP = AppSpec(
    label="islow",
    title="Slow",
    description="Declares an indicator that takes too long.",
    layer="application",
    requires=("identity", "context", "geo"),
)
