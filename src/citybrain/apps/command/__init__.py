"""Command: every city event, from intake to closing, through the 数字城管 and 12345 workflows."""

from citybrain.apps.command.settings import CommandSettings
from citybrain.sdk import AppSpec, NavItem

APP = AppSpec(
    label="command",
    title="Command and disposal",
    description="Every city event taken in, routed to the responsible department, handled, verified and closed.",
    layer="brain",
    requires=("identity", "context", "geo", "warning"),
    icon="command",
    settings=CommandSettings,
    mounts=(("/open311/v2", "open311"),),
    nav=(
        NavItem("Operator console", "/command/events", "command.event.read"),
        NavItem("Department inbox", "/command/inbox", "command.event.read"),
        NavItem("New 12345 ticket", "/command/tickets/new", "command.ticket.create"),
        NavItem("KPI reports", "/command/kpi", "command.event.read"),
        NavItem("Supervision board", "/command/supervision", "command.event.read"),
        NavItem("Emergency command", "/command/emergency", "command.emergency.read"),
    ),
)
