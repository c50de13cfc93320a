"""The forecast series this app declares (no rules)."""

from citybrain.apps.warning.schemas import RuleSpec, SeriesSpec

WARNING_RULES: list[RuleSpec] = []
FORECASTS = [
    SeriesSpec(
        code="river-height",
        name_zh="河道水位预测",
        entity_type="WaterObserved",
        attr="height",
        horizon=24,
    )
]
