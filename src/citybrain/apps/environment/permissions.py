"""Permissions the environment app declares."""

from citybrain.sdk import Permission

PERMISSIONS = (
    Permission(
        "environment.air.read",
        "查看空气质量：城市、区县和站点的空气质量指数",
        "View air quality: the AQI of the city, its districts and stations",
    ),
)
