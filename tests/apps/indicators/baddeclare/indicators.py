"""An invalid declaration: bad below warn although higher is worse."""

INDICATORS = [
    {
        "code": "ibad.level",
        "name_zh": "坏",
        "name_en": "Bad",
        "period": "realtime",
        "source": "entity_state",
        "department": "dsj",
        "thresholds": {"direction": "higher_is_worse", "warn": 100, "bad": 90},
        "compute": print,
    }
]
