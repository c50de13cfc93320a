"""Indicator definitions: what an app declares in its indicators.py (INDICATORS), checked at startup.

An app declares each indicator as a plain mapping (so declaring apps need not depend on this app):

    INDICATORS = [{
        "code": "environment.aqi",               # <declaring app's label>.<name>
        "name_zh": "空气质量指数", "name_en": "Air quality index",
        "unit": "",                              # a symbol shown after the value ("%", "m", "")
        "kind": "number",                        # or "text" (e.g. the primary pollutant)
        "period": "hourly",                      # "realtime", "hourly" or "daily"
        "by_district": True,                     # the value is also given per district
        "source": "attribute_history",           # entity_state, attribute_history, events or warnings
        "thresholds": {"direction": "higher_is_worse", "warn": 100, "bad": 200},
        "department": "sthj",                    # the owner department's code
        "description_zh": "...", "description_en": "...",
        "compute": aqi_now,                      # (ctx, start, end) -> {area code: value}
        # optional:
        "empty_zh": "暂无监测数据", "empty_en": "no readings yet",  # why a value may be None
        "backfill": False,                       # True: compute answers a past `end` from the history
    }]

`compute(ctx, start, end)` answers the values of the period [start, end) so far: a mapping from the
city's code and district codes (GB/T 2260) to a number (or text), None where there is no value (the
page then shows "—" with `empty_zh`/`empty_en` as the reason). An indicator declared with `backfill`
answers the values as they were at a past `end` (it reads the recorded history, not the current state),
so the platform can fill its history for a time it was not running (the demo's first day).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from citybrain.sdk import AppContext

Period = Literal["realtime", "hourly", "daily"]
Source = Literal["entity_state", "attribute_history", "events", "warnings"]
Level = Literal["good", "warn", "bad"]
Compute = Callable[[AppContext, datetime, datetime], Mapping[str, Any]]
PERIODS: tuple[Period, ...] = ("realtime", "hourly", "daily")
CODE_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$"


class InvalidIndicator(ValueError):
    """An app declares an indicator that cannot be used; the platform refuses to start."""


class Thresholds(BaseModel):
    """Where an indicator turns from good to warn and to bad, and which way is worse."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    direction: Literal["higher_is_worse", "lower_is_worse"]
    warn: float
    bad: float

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        """The bad threshold lies beyond the warn threshold in the worse direction."""
        if self.direction == "higher_is_worse" and self.bad < self.warn:
            raise ValueError("bad must not be below warn when higher is worse")
        if self.direction == "lower_is_worse" and self.bad > self.warn:
            raise ValueError("bad must not be above warn when lower is worse")
        return self

    def level(self, value: float) -> Level:
        """The level of a value: good, warn or bad."""
        sign = 1.0 if self.direction == "higher_is_worse" else -1.0
        if sign * value >= sign * self.bad:
            return "bad"
        if sign * value >= sign * self.warn:
            return "warn"
        return "good"


class IndicatorSpec(BaseModel):
    """One declared indicator."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str = Field(pattern=CODE_PATTERN, max_length=64)
    name_zh: str = Field(min_length=1, max_length=60)
    name_en: str = Field(min_length=1, max_length=120)
    unit: str = Field(default="", max_length=16)
    kind: Literal["number", "text"] = "number"
    decimals: int = Field(default=1, ge=0, le=4)
    period: Period
    by_district: bool = True
    source: Source
    thresholds: Thresholds | None = None
    department: str = Field(min_length=1, max_length=64)
    description_zh: str = Field(default="", max_length=1000)
    description_en: str = Field(default="", max_length=2000)
    # Why a value may be None (e.g. 暂无已结案事件 / no closed events yet), shown as the reason of "—".
    empty_zh: str = Field(default="", max_length=120)
    empty_en: str = Field(default="", max_length=200)
    # Whether compute answers a past `end` from the recorded history (the history can be backfilled).
    backfill: bool = False
    compute: Compute

    @model_validator(mode="after")
    def _text_has_no_thresholds(self) -> IndicatorSpec:
        """Only a number can be coloured by thresholds."""
        if self.kind == "text" and self.thresholds is not None:
            raise ValueError("a text indicator cannot have thresholds")
        return self

    def name(self, locale: str) -> str:
        """The indicator's name in a locale."""
        return self.name_en if locale == "en" else self.name_zh

    def description(self, locale: str) -> str:
        """The indicator's definition in a locale."""
        return self.description_en if locale == "en" else self.description_zh

    def empty(self, locale: str) -> str:
        """Why a value may be None, as declared (empty when not declared)."""
        return self.empty_en if locale == "en" else self.empty_zh

    def level(self, value: float | None) -> Level | None:
        """The level of a value (None without thresholds or value)."""
        if value is None or self.thresholds is None:
            return None
        return self.thresholds.level(value)


@dataclass(frozen=True)
class Declared:
    """A checked indicator and the app that declares it."""

    app: str
    spec: IndicatorSpec


def _problems(error: ValidationError) -> str:
    """A validation error as one readable line per field."""
    return "; ".join(
        f"{'.'.join(str(p) for p in item['loc']) or 'definition'}: {item['msg']}" for item in error.errors()
    )


def check(label: str, items: Any) -> list[IndicatorSpec]:
    """The indicators one app declares, checked; InvalidIndicator names the app, the indicator and the fault."""
    if not isinstance(items, list | tuple):
        raise InvalidIndicator(f"app {label!r}: INDICATORS must be a list of indicator definitions")
    found: list[IndicatorSpec] = []
    for number, item in enumerate(items, start=1):
        name = item.get("code", f"#{number}") if isinstance(item, Mapping) else f"#{number}"
        if isinstance(item, IndicatorSpec):
            spec = item
        elif isinstance(item, Mapping):
            try:
                spec = IndicatorSpec.model_validate(dict(item))
            except ValidationError as exc:
                raise InvalidIndicator(
                    f"app {label!r} declares an invalid indicator {name!r}: {_problems(exc)}"
                ) from None
        else:
            raise InvalidIndicator(
                f"app {label!r} declares indicator {name} as {type(item).__name__}, not a mapping"
            )
        if not spec.code.startswith(label + "."):
            raise InvalidIndicator(
                f"app {label!r} declares indicator {spec.code!r}: its code must start with {label + '.'!r}"
            )
        found.append(spec)
    return found


def collect(apps: list[tuple[str, Any]]) -> list[Declared]:
    """Every app's declared indicators (label, INDICATORS), checked, codes unique."""
    found: list[Declared] = []
    seen: dict[str, str] = {}
    for label, items in apps:
        for spec in check(label, items):
            if spec.code in seen:
                raise InvalidIndicator(
                    f"indicator {spec.code!r} is declared by {seen[spec.code]!r} and {label!r}"
                )
            seen[spec.code] = label
            found.append(Declared(label, spec))
    return found
