"""Map layers: what an app declares in its own `layers.py` as `LAYERS = [Layer(...), ...]`.

An app that declares layers lists "geo" in its `requires`. Each layer draws the located context
entities of one type, in the layer's colour or coloured by the value of one attribute (`color_by` and
its `palette`); a located entity type that no app declares still gets a default layer. The geo app
declares its own road layer here. The declarations are checked when the platform starts.
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
class Swatch:
    """One entry of a layer's palette: the features whose attribute has this value take this colour."""

    # The attribute's value as text: a string as it is, a number as JSON writes it ("2"), "true"/"false".
    value: str
    color: str  # #rrggbb
    label_zh: str
    label_en: str

    def label(self, locale: str) -> str:
        """The label in a locale."""
        return self.label_zh if locale == "zh_CN" else self.label_en


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
    # Colour each feature by this attribute (a core @context term) through the palette; features whose
    # value is not in the palette keep the layer's colour. Both are given or neither.
    color_by: str | None = None
    palette: tuple[Swatch, ...] = ()

    def __post_init__(self) -> None:
        """Refuse a malformed id, colour, attribute name or palette."""
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
        self._check_palette()

    def _check_palette(self) -> None:
        """Refuse a colour_by without a palette (or the reverse) and a malformed palette."""
        if self.color_by is None and not self.palette:
            return
        if self.color_by is None:
            raise ValueError(f"layer {self.id!r} has a palette but no color_by attribute to apply it to")
        if not self.palette:
            raise ValueError(f"layer {self.id!r} is coloured by {self.color_by!r} but has no palette")
        if self.source != "entities":
            raise ValueError(f"layer {self.id!r}: only a layer of entities can be coloured by an attribute")
        if not ATTR_RE.match(self.color_by):
            raise ValueError(f"layer {self.id!r}: color_by {self.color_by!r} is not an attribute name")
        if not isinstance(self.palette, tuple) or not all(isinstance(s, Swatch) for s in self.palette):
            raise ValueError(f"layer {self.id!r}: the palette is a tuple of Swatch")
        values = [swatch.value for swatch in self.palette]
        if len(set(values)) != len(values):
            raise ValueError(f"layer {self.id!r}: a value appears twice in the palette")
        for swatch in self.palette:
            if not COLOR_RE.match(swatch.color):
                raise ValueError(
                    f"layer {self.id!r}: colour {swatch.color!r} of {swatch.value!r} is not #rrggbb"
                )
            if not swatch.label_zh.strip() or not swatch.label_en.strip():
                raise ValueError(f"layer {self.id!r}: the palette entry {swatch.value!r} needs both labels")


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
