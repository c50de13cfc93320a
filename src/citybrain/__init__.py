"""CityBrain (城市智脑): an open-source city operating platform."""

__version__ = "0.1.0"
