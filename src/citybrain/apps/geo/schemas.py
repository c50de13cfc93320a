"""API shapes of the geo app."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class DistrictRead(BaseModel):
    """A district or county of Mianyang."""

    code: str = Field(examples=["510703"])
    name: str = Field(description="The name in the request's language.")
    name_zh: str = Field(examples=["涪城区"])
    name_en: str = Field(examples=["Fucheng District"])


class SwatchRead(BaseModel):
    """A value of the attribute a layer is coloured by, its colour and its label."""

    value: str = Field(description="The attribute's value as text (a number as JSON writes it).")
    color: str = Field(examples=["#2e9d5b"])
    label: str = Field(description="The label in the request's language.")
    label_zh: str
    label_en: str


class LayerRead(BaseModel):
    """A map layer the caller may see."""

    id: str
    title: str = Field(description="The title in the request's language.")
    title_zh: str
    title_en: str
    source: Literal["entities", "roads"]
    entity_type: str | None = Field(
        description="The NGSI-LD entity type (core @context term); null for roads."
    )
    color: str
    icon: str
    popup: list[str] = Field(description="Attributes the popup shows (empty: the first few of each entity).")
    filters: list[str] = Field(description="Attributes the features can be filtered by, besides district.")
    color_by: str | None = Field(
        description="The attribute the features are coloured by through the palette; null: the layer's colour."
    )
    palette: list[SwatchRead] = Field(
        description="The colour of each value of color_by; other values take the layer's colour."
    )
    permission: str
    app: str | None = Field(description="The app that declares the layer; null for a default layer.")
    count: int = Field(description="Entities of the type (roads: how many roads).")
    features: str = Field(description="Where to get the layer's features (GeoJSON).")


class RouteRoad(BaseModel):
    """A road a route takes."""

    id: str
    name: str
    name_zh: str
    name_en: str


class RouteRead(BaseModel):
    """The fastest route over the open main roads."""

    meters: float
    seconds: float
    geometry: dict[str, Any] = Field(description="A GeoJSON LineString from the start node to the end node.")
    roads: list[RouteRoad]
    start_offset_m: float = Field(
        description="How far the start lies from the road node the route starts at."
    )
    end_offset_m: float = Field(description="How far the end lies from the road node the route ends at.")
