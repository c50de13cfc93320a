"""Event categories apps declare in their `categories.py` (CATEGORIES), checked when the platform starts.

A category is a class of the digital city-management tree (部件/事件, GB/T 30428; CJ/T 214) or of the
12345 hotline's local classification. Each leaf names its workflow, its time limits and the responsible
department for the whole city with per-district overrides (权责清单).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from citybrain.sdk import AppContext

CODE_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
LIMIT_RE = re.compile(r"^([1-9][0-9]{0,3})([hd])$")
DISTRICT_RE = re.compile(r"^\d{6}$")
Workflow = Literal["city", "hotline"]
Stage = Literal["file", "dispatch", "handle"]
# The stages each workflow has a clock for.
STAGES: dict[str, tuple[Stage, ...]] = {
    "city": ("file", "dispatch", "handle"),
    "hotline": ("dispatch", "handle"),
}


class CategoryError(ValueError):
    """A category declaration is malformed; the message names the app and the category."""


@dataclass(frozen=True)
class Limit:
    """A time limit: an amount of working hours or working days."""

    amount: int
    unit: Literal["h", "d"]

    @classmethod
    def parse(cls, text: str) -> Limit:
        """Read "4h" (working hours) or "3d" (working days)."""
        match = LIMIT_RE.match(text)
        if match is None:
            raise CategoryError(f"time limit {text!r} is not <n>h (working hours) or <n>d (working days)")
        return cls(int(match.group(1)), "h" if match.group(2) == "h" else "d")

    def __str__(self) -> str:
        """The limit as written: "4h" or "3d"."""
        return f"{self.amount}{self.unit}"


@dataclass(frozen=True)
class Category:
    """A leaf category: its class in the tree, workflow, time limits per stage and responsible departments."""

    code: str
    name_zh: str
    name_en: str
    workflow: Workflow
    # The top classes it sits under, e.g. ("部件", "公用设施类") with English names.
    group_zh: tuple[str, ...]
    group_en: tuple[str, ...]
    # Limits per stage, "<n>h" or "<n>d" (立案/派遣/处置 for 数字城管; 派单/办理 for 12345).
    limits: Mapping[str, str]
    # The identity app's department code responsible city-wide, and per district code (权责清单).
    department: str
    districts: Mapping[str, str] = field(default_factory=dict)

    def department_for(self, district: str | None) -> str:
        """The code of the department responsible for this category in a district."""
        if district is not None and district in self.districts:
            return self.districts[district]
        return self.department


def check(label: str, item: object) -> Category:
    """Validate one declared category; raise CategoryError naming the app and the category."""
    if not isinstance(item, Category):
        raise CategoryError(f"app {label!r} declares a category that is not a Category: {item!r}")
    where = f"app {label!r}, category {item.code!r}"
    if not CODE_RE.match(item.code):
        raise CategoryError(f"{where}: the code must be dot-separated lowercase words, e.g. part.street_lamp")
    if not item.name_zh or not item.name_en:
        raise CategoryError(f"{where}: both a Chinese and an English name are needed")
    if item.workflow not in STAGES:
        raise CategoryError(f"{where}: workflow {item.workflow!r} is not 'city' or 'hotline'")
    if not item.group_zh or len(item.group_zh) != len(item.group_en):
        raise CategoryError(f"{where}: group_zh and group_en must name the same classes")
    for stage, text in item.limits.items():
        if stage not in STAGES[item.workflow]:
            raise CategoryError(f"{where}: the {item.workflow} workflow has no stage {stage!r}")
        try:
            Limit.parse(text)
        except CategoryError as exc:
            raise CategoryError(f"{where}: {exc}") from None
    if "handle" not in item.limits:
        raise CategoryError(f"{where}: a 'handle' time limit is needed")
    if not item.department:
        raise CategoryError(f"{where}: a responsible department (code) is needed")
    for district, dept in item.districts.items():
        if not DISTRICT_RE.match(district) or not dept:
            raise CategoryError(f"{where}: district overrides map 6-digit district codes to department codes")
    return item


def collect(ctx: AppContext) -> dict[str, Category]:
    """Every category the enabled apps declare, by code; duplicates and malformed entries are refused."""
    found: dict[str, Category] = {}
    owner: dict[str, str] = {}
    for spec in ctx.apps:
        module = spec.module("categories")
        for item in getattr(module, "CATEGORIES", ()) if module is not None else ():
            category = check(spec.label, item)
            if category.code in found:
                raise CategoryError(
                    f"category {category.code!r} is declared by {owner[category.code]!r} and {spec.label!r}"
                )
            found[category.code], owner[category.code] = category, spec.label
    return found
