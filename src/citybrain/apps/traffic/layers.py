"""The traffic app's map layer: the road segments with their current grade, TTI, DTP and speeds.

Each segment is drawn in the colour of its grade (GB/T 33171-2016 §8.1, 畅通 green … 严重拥堵 dark red);
a segment without a current speed keeps the layer's grey.
"""

from __future__ import annotations

from citybrain.apps.geo.layers import Layer, Swatch
from citybrain.apps.traffic import tpi

NO_SPEED = "#9aa8b6"  # grey: no current speed, as on the traffic page's map

LAYERS = [
    Layer(
        id="traffic-segments",
        entity_type="RoadSegment",
        title_zh="路段运行状况",
        title_en="Road segment traffic",
        color=NO_SPEED,
        icon="堵",
        popup=(
            "trafficGradeName",
            "travelTimeIndex",
            "delayTimeProportion",
            "averageVehicleSpeed",
            "freeFlowSpeed",
            "maximumAllowedSpeed",
        ),
        filters=("trafficGrade",),
        permission="traffic.index.read",
        color_by="trafficGrade",
        palette=tuple(Swatch(str(g.level), g.color, g.name_zh, g.name_en) for g in tpi.GRADES),
    ),
]
