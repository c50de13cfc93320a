"""Permissions the traffic app declares."""

from citybrain.sdk import Permission

PERMISSIONS = (
    Permission(
        "traffic.index.read",
        "查看交通运行指数：城市、区县和路段的交通运行状况",
        "View the traffic index: the traffic performance of the city, its districts and road segments",
    ),
)
