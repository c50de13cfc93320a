"""Indicator definitions: thresholds, levels, and the refusal of bad declarations (also at startup)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from citybrain.apps.indicators.definitions import InvalidIndicator, Thresholds, check, collect
from citybrain.core.asgi import create_app
from citybrain.core.settings import Settings
from tests.apps.indicators import baddeclare
from tests.apps.indicators.conftest import specs


def good(**changes: Any) -> dict[str, Any]:
    """A valid declaration, changed."""
    found: dict[str, Any] = {
        "code": "app.x",
        "name_zh": "指标",
        "name_en": "Indicator",
        "period": "hourly",
        "source": "warnings",
        "department": "dsj",
        "compute": lambda ctx, start, end: {},
    }
    found.update(changes)
    return found


def test_levels_follow_the_direction() -> None:
    """Higher-is-worse and lower-is-worse thresholds colour values good, warn and bad (edges included)."""
    up = Thresholds(direction="higher_is_worse", warn=4, bad=6)
    assert [up.level(v) for v in (3.9, 4, 5.9, 6, 9)] == ["good", "warn", "warn", "bad", "bad"]
    down = Thresholds(direction="lower_is_worse", warn=95, bad=90)
    assert [down.level(v) for v in (99, 95, 92, 90, 10)] == ["good", "warn", "warn", "bad", "bad"]


@pytest.mark.parametrize(
    ("changes", "fault"),
    [
        ({"code": "App.X"}, "code"),
        ({"code": "other.x"}, "must start with 'app.'"),
        ({"period": "weekly"}, "period"),
        ({"source": "rumour"}, "source"),
        ({"name_zh": ""}, "name_zh"),
        ({"department": ""}, "department"),
        ({"compute": 42}, "compute"),
        ({"colour": "red"}, "colour"),
        ({"thresholds": {"direction": "higher_is_worse", "warn": 5, "bad": 4}}, "bad must not be below warn"),
        ({"thresholds": {"direction": "lower_is_worse", "warn": 5, "bad": 6}}, "bad must not be above warn"),
        ({"kind": "text", "thresholds": {"direction": "higher_is_worse", "warn": 1, "bad": 2}}, "text"),
    ],
)
def test_bad_declarations_are_refused_with_the_fault(changes: dict[str, Any], fault: str) -> None:
    """The message names the app, the indicator and what is wrong."""
    with pytest.raises(InvalidIndicator) as caught:
        check("app", [good(**changes)])
    assert "app 'app'" in str(caught.value)
    assert fault in str(caught.value)


def test_declarations_must_be_a_list_of_mappings_with_unique_codes() -> None:
    """Not a list, not a mapping, or a code declared twice: refused."""
    with pytest.raises(InvalidIndicator, match="must be a list"):
        check("app", good())
    with pytest.raises(InvalidIndicator, match="not a mapping"):
        check("app", ["app.x"])
    with pytest.raises(InvalidIndicator, match="declared by 'app' and 'app'"):
        collect([("app", [good()]), ("app", [good()])])
    assert [s.code for s in check("app", [good(), good(code="app.y")])] == ["app.x", "app.y"]


def test_the_platform_refuses_to_start_with_a_bad_declaration(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Startup stops with a message naming the app and the indicator."""
    monkeypatch.setenv("CITYBRAIN_INDICATORS_COMPUTE_SECONDS", "0")
    app = create_app(settings, specs(("tests.apps.indicators.baddeclare", baddeclare.APP)))
    with pytest.raises(InvalidIndicator) as caught, TestClient(app):
        pass
    message = str(caught.value)
    assert "'ibad'" in message and "'ibad.level'" in message and "bad must not be below warn" in message


def test_every_domain_apps_declarations_are_valid() -> None:
    """The vital signs the built-in apps declare pass the checks, codes unique."""
    from citybrain.apps.environment import indicators as environment
    from citybrain.apps.iot import indicators as iot
    from citybrain.apps.traffic import indicators as traffic
    from citybrain.apps.warning import indicators as warning

    found = collect(
        [
            ("environment", environment.INDICATORS),
            ("traffic", traffic.INDICATORS),
            ("iot", iot.INDICATORS),
            ("warning", warning.INDICATORS),
        ]
    )
    assert len(found) == 3 + 1 + 3 + 5
    assert all(d.spec.department for d in found)


def test_daily_aqi_needs_valid_days() -> None:
    """Steady concentrations give the daily AQI of their 24-hour means; too few hours give none."""
    from datetime import timedelta

    from citybrain.apps.environment.indicators import daily_aqi

    day_end = datetime(2026, 11, 20, 16, tzinfo=UTC)  # midnight in China
    values = {"so2": 10.0, "no2": 20.0, "co": 0.5, "o3": 60.0, "pm10": 50.0, "pm25": 80.0}
    hours = {day_end - timedelta(hours=i): values for i in range(24)}
    # PM2.5 80 µg/m³ → IAQI 119 (HJ 633—2026 表3: 60–115 µg/m³ ↔ 100–150, rounded up)
    assert daily_aqi(hours, day_end) == 119
    few = {h: v for n, (h, v) in enumerate(sorted(hours.items())) if n < 10}
    assert daily_aqi(few, day_end) is None
