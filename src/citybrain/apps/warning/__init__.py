"""Warning: rules over the city's live state, graded warnings (红橙黄蓝) and their life-cycle."""

from citybrain.apps.warning.settings import WarningSettings
from citybrain.sdk import AppSpec, NavItem

APP = AppSpec(
    label="warning",
    title="Early warning",
    description="Rules over live city data raise graded warnings, upgraded, downgraded and lifted.",
    layer="brain",
    requires=("identity", "context", "geo"),
    icon="warning",
    settings=WarningSettings,
    nav=(
        NavItem("Warning centre", "/warning/warnings", "warning.warning.read"),
        NavItem("Warning rules", "/warning/rules", "warning.rule.read"),
        NavItem(
            "My notifications",
            "/warning/notifications",
            "warning.warning.read",
            badge="/api/warning/notifications/unread-count",
        ),
    ),
)
