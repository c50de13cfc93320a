"""Permissions the indicators app declares."""

from citybrain.sdk import Permission

PERMISSIONS = (
    Permission(
        "indicators.indicator.read",
        "查看城市体征：指标目录、各区县的当前值和历史",
        "View the vital signs: the indicator catalogue, values by district now and their history",
    ),
)
