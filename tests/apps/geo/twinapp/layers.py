"""The same layers again."""

from tests.apps.geo.layerapp.layers import LAYERS

__all__ = ["LAYERS"]
