"""The demo city's sensor layers on the one map: one per device kind, styled by what they measure."""

from __future__ import annotations

from citybrain.apps.geo.layers import Layer

LAYERS = [
    Layer(
        id="air-quality",
        entity_type="AirQualityObserved",
        title_zh="空气质量监测站",
        title_en="Air-quality stations",
        color="#2e9d5b",
        icon="气",
        popup=("stationName", "pm25", "pm10", "o3", "no2", "so2", "co"),
        filters=("areaServed",),
    ),
    Layer(
        id="traffic-detectors",
        entity_type="TrafficFlowObserved",
        title_zh="交通流量检测器",
        title_en="Traffic detectors",
        color="#d9534f",
        icon="车",
        popup=("roadName", "intensity", "averageVehicleSpeed", "occupancy", "congested"),
        filters=("roadName",),
    ),
    Layer(
        id="water-levels",
        entity_type="WaterObserved",
        title_zh="河道水位站",
        title_en="River gauges",
        color="#1f6fd1",
        icon="水",
        popup=("riverName", "height", "warningLevel", "guaranteeLevel", "flow"),
        filters=("riverName",),
    ),
    Layer(
        id="rain-gauges",
        entity_type="WeatherObserved",
        title_zh="雨量站",
        title_en="Rain gauges",
        color="#5bc0de",
        icon="雨",
        popup=("precipitation", "temperature", "relativeHumidity", "windSpeed"),
    ),
    Layer(
        id="noise-monitors",
        entity_type="NoiseLevelObserved",
        title_zh="噪声监测点",
        title_en="Noise monitors",
        color="#8e44ad",
        icon="声",
        popup=("LAeq", "LAmax"),
    ),
    Layer(
        id="lamp-poles",
        entity_type="Streetlight",
        title_zh="智慧灯杆",
        title_en="Smart lamp poles",
        color="#c9a227",
        icon="灯",
        popup=("status", "powerState", "illuminanceLevel"),
        filters=("status", "powerState"),
    ),
]
