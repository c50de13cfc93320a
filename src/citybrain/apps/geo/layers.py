"""Map layers: what an app declares in its own `layers.py` as `LAYERS = [Layer(...), ...]`.

An app that declares layers lists "geo" in its `requires`. Each layer draws the located context
entities of one type; a located entity type that no app declares still gets a default layer. The geo
app declares its own road layer here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

LAYER_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
COLOR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")
ATTR_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$")
# Names the features endpoint keeps for itself (a filter attribute cannot be called so).
RESERVED_PARAMS = frozenset({"bbox", "district", "limit", "lang"})
Source = Literal["entities", "roads"]


@dataclass(frozen=True)
class Layer:
    """A map layer: the entities of one type, how they look, what their popups show, who may see them."""

    # Unique over the platform, lowercase: e.g. "air-quality".
    id: str
    # The NGSI-LD entity type, as a term of the core @context ("AirQualityObserved") or an IRI.
    entity_type: str
    title_zh: str
    title_en: str
    # Marker, cluster and line colour (#rrggbb) and a short glyph drawn in the marker (e.g. "气").
    color: str = "#0b5cad"
    icon: str = ""
    # Attributes (core @context terms) shown in the popup with their observedAt time, in this order.
    popup: tuple[str, ...] = ()
    # Attributes users may filter the layer by (exact values); every layer can also be filtered by district.
    filters: tuple[str, ...] = ()
    # The permission an actor needs to see the layer (besides geo.map.read).
    permission: str = "context.entity.read"
    # "entities": context entities of entity_type; "roads": the geo app's road graph (entity_type unused).
    source: Source = "entities"

    def __post_init__(self) -> None:
        """Refuse a malformed id, colour or attribute name."""
        if not LAYER_ID_RE.match(self.id):
            raise ValueError(f"layer id {self.id!r} must be lowercase letters, digits, '-' and '_'")
        if self.source == "entities" and not self.entity_type.strip():
            raise ValueError(f"layer {self.id!r} needs an entity type")
        if not COLOR_RE.match(self.color):
            raise ValueError(f"layer {self.id!r}: colour {self.color!r} is not #rrggbb")
        if len(self.icon) > 2:
            raise ValueError(f"layer {self.id!r}: the icon is one or two characters")
        for name in (*self.popup, *self.filters):
            if not ATTR_RE.match(name):
                raise ValueError(f"layer {self.id!r}: {name!r} is not an attribute name")
        reserved = RESERVED_PARAMS.intersection(self.filters)
        if reserved:
            raise ValueError(f"layer {self.id!r}: {', '.join(sorted(reserved))} cannot be a filter attribute")
        if not isinstance(self.popup, tuple) or not isinstance(self.filters, tuple):
            raise ValueError(f"layer {self.id!r}: popup and filters are tuples")


LAYERS = [
    Layer(
        id="roads",
        entity_type="",
        title_zh="主干道路",
        title_en="Main roads",
        color="#e8a33d",
        icon="路",
        permission="geo.map.read",
        source="roads",
    ),
]
