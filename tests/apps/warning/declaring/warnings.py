"""Rules this app declares."""

from citybrain.apps.warning.schemas import RuleSpec

WARNING_RULES = [
    RuleSpec.model_validate(
        {
            "code": "river-level",
            "name_zh": "河道水位超警戒",
            "entity_type": "WaterObserved",
            "category": "Met",
            "conditions": [
                {
                    "attr": "height",
                    "levels": [{"level": "blue", "threshold": 3.0}, {"level": "red", "threshold": 5.0}],
                }
            ],
            "hysteresis": {"hold_seconds": 0},
        }
    )
]
