"""The test app's map layers: river gauges for everyone who reads entities, cameras for a few."""

from citybrain.apps.geo.layers import Layer

LAYERS = [
    Layer(
        id="river-gauges",
        entity_type="WaterLevelObserved",
        title_zh="河道水位站",
        title_en="River gauges",
        color="#00838f",
        icon="水",
        popup=("waterLevel", "riverName"),
        filters=("riverName", "status"),
    ),
    Layer(
        id="cameras",
        entity_type="Camera",
        title_zh="视频监控",
        title_en="Cameras",
        color="#6a1b9a",
        icon="摄",
        popup=("status",),
        permission="geolayers.camera.read",
    ),
]
