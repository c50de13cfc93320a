"""A layer coloured by an attribute with no palette: the platform must refuse to start."""

from citybrain.apps.geo.layers import Layer

LAYERS = [
    Layer(
        id="bins",
        entity_type="WasteContainer",
        title_zh="垃圾桶",
        title_en="Waste containers",
        color_by="status",
    ),
]
