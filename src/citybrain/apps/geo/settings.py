"""The geo app's settings, read from CITYBRAIN_GEO_* (declared in the app's AppSpec)."""

from __future__ import annotations

from pydantic import Field, field_validator

from citybrain.sdk import AppSettings


class GeoSettings(AppSettings):
    """The map's base layer, its refresh period and the size of a layer's answer."""

    tile_url: str = Field(
        default="",
        max_length=2048,
        description=(
            "CITYBRAIN_GEO_TILE_URL: an XYZ tile URL template such as https://tiles.example/{z}/{x}/{y}.png "
            "drawn under the map's layers; empty draws the base from the district boundaries alone."
        ),
    )
    tile_attribution: str = Field(
        default="",
        max_length=500,
        description="CITYBRAIN_GEO_TILE_ATTRIBUTION: the attribution the tile provider asks for (plain text).",
    )
    refresh_seconds: float = Field(
        default=10.0,
        ge=2,
        le=3600,
        description="CITYBRAIN_GEO_REFRESH_SECONDS: how often the map page reloads the features of its layers.",
    )
    max_features: int = Field(
        default=50_000,
        ge=100,
        le=500_000,
        description="CITYBRAIN_GEO_MAX_FEATURES: the most features one layer request may ask for.",
    )

    @field_validator("tile_url")
    @classmethod
    def _check_tile_url(cls, value: str) -> str:
        """A tile URL is an http(s) URL with the {z}, {x} and {y} placeholders."""
        value = value.strip()
        if not value:
            return value
        if not value.startswith(("https://", "http://", "/")):
            raise ValueError("the tile URL must start with https://, http:// or /")
        missing = [p for p in ("{z}", "{x}", "{y}") if p not in value]
        if missing:
            raise ValueError(f"the tile URL lacks the placeholder(s) {', '.join(missing)}")
        return value
