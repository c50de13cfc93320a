"""The test app's map layers: river gauges (coloured by status) for everyone who reads entities, cameras for a few."""

from citybrain.apps.geo.layers import Layer, Swatch

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
        color_by="status",
        palette=(
            Swatch("normal", "#2e9d5b", "正常", "Normal"),
            Swatch("warning", "#d32f2f", "超警戒", "Above warning level"),
        ),
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
