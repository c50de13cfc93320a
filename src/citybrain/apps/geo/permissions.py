"""Permissions the geo app declares."""

from citybrain.sdk import Permission

PERMISSIONS = (
    Permission(
        "geo.map.read",
        "查看一张图：行政区划、图层、道路与路径",
        "View the one map: boundaries, layers, roads and routes",
    ),
)
