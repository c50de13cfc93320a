"""Warning rules the environment app declares: the heavy-pollution warning (重污染天气预警).

The level is graded from the official daily-AQI forecast by this app (forecasts.py, standards notes
§8.2) and kept on the forecast entity as `heavyPollutionLevel` (1 blue … 4 red, the warning app's ranks).
The rule only follows that level: no duration and no hold of its own (the forecast grading holds a step
down for a number of bulletins), no margin (the level is a whole number). Its warnings belong to the
ecology and environment bureau and are public (the public CAP feed).
"""

from citybrain.apps.environment.forecasts import LEVEL, RULE_CODE
from citybrain.apps.warning.schemas import HealthWatch, RuleSpec

# The identity department code of the ecology and environment bureau (市生态环境局).
DEPARTMENT = "sthj"

WARNING_RULES = [
    RuleSpec.model_validate(
        {
            "code": RULE_CODE,
            "name_zh": "重污染天气预警",
            "name_en": "Heavy air pollution warning",
            "kind": "threshold",
            "entity_type": "AirQualityForecast",
            "category": "Env",
            "description": "依据环境监测中心站的日空气质量指数预报，按重污染天气预警分级发布（黄色、橙色、红色）。",
            "conditions": [
                {
                    "attr": LEVEL,
                    "op": ">=",
                    "levels": [
                        {"level": "blue", "threshold": 1},
                        {"level": "yellow", "threshold": 2},
                        {"level": "orange", "threshold": 3},
                        {"level": "red", "threshold": 4},
                    ],
                    "for_seconds": 0,
                }
            ],
            "hysteresis": {"margin": 0, "hold_seconds": 0},
            # The ecology and environment bureau (市生态环境局, the identity seed's "sthj") issues it, and the
            # public is told: heavy-pollution warnings are published to society (重污染天气应急预案).
            "department": DEPARTMENT,
            "public": True,
        }
    )
]


# Device health (设备健康) of the air-quality stations: a stuck analyser, a step in its readings or a drift
# away from the stations around it raises a device-health warning; a single implausible reading (a spike)
# is a data-quality flag. Concentrations are reported in whole µg/m³ (CO in 0.01 mg/m³): smaller
# deviations are no finding.
HEALTH_WATCHES = [
    HealthWatch(
        code="health.air-quality-station",
        name_zh="空气质量监测站设备健康",
        name_en="Air quality station health",
        entity_type="AirQualityObserved",
        category="Env",
        attrs=["pm25", "pm10", "no2", "so2", "o3", "co"],
        peers_within_m=8000,
        min_change={"pm25": 2, "pm10": 3, "no2": 2, "so2": 2, "o3": 3, "co": 0.05},
    )
]

# The hourly forecast series of the stations' pollutants (declared in series.py, read here by the warning app).
from citybrain.apps.environment.series import FORECASTS as FORECASTS  # noqa: E402
