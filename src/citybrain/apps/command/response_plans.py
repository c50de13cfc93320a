"""Emergency plans (应急预案) apps declare in their `emergency_plans.py` (PLANS), checked when the platform starts.

A plan names what triggers it (warning rules, event categories) and, for each response level I–IV, the
departments it activates and their tasks. Response levels follow the four grades of 突发事件应对法 (standards
notes §8.1): I (一级, red) is the most severe, IV (四级, blue) the least; a warning of a colour starts the
response of the same grade.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from citybrain.sdk import AppContext

CODE_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
# The warning app's rule codes (warning/schemas.py CODE_RE).
RULE_RE = re.compile(r"^[a-z][a-z0-9_.-]{1,63}$")
DEPARTMENT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
# A task of this department goes to the government of the response's district (the city's without one).
DISTRICT = "@district"
CITY = "510700"
LEVELS = (1, 2, 3, 4)
# Standards notes §8.1: 一级 red … 四级 blue; warning colours map to the same grade.
LEVEL_OF_WARNING = {"red": 1, "orange": 2, "yellow": 3, "blue": 4}
ROMAN = {1: "I", 2: "II", 3: "III", 4: "IV"}
LEVEL_COLORS = {1: "#d32f2f", 2: "#f57c00", 3: "#fbc02d", 4: "#1976d2"}
LEVEL_NAMES = {
    1: ("I级（红色）", "Level I (red)"),
    2: ("II级（橙色）", "Level II (orange)"),
    3: ("III级（黄色）", "Level III (yellow)"),
    4: ("IV级（蓝色）", "Level IV (blue)"),
}


class PlanError(ValueError):
    """A plan declaration is malformed; the message names the app and the plan."""


@dataclass(frozen=True)
class PlanTask:
    """One task a plan gives a department at a level."""

    department: str
    name_zh: str
    name_en: str


@dataclass(frozen=True)
class Plan:
    """An emergency plan: what triggers it and the tasks each response level (1 = I … 4 = IV) activates."""

    code: str
    name_zh: str
    name_en: str
    # Warning rule codes whose warnings start the plan, and event categories it answers.
    rules: tuple[str, ...]
    categories: tuple[str, ...]
    levels: Mapping[int, tuple[PlanTask, ...]]

    def tasks(self, level: int) -> tuple[PlanTask, ...]:
        """The tasks the level activates."""
        return self.levels[level]

    def departments(self, level: int) -> list[str]:
        """The department codes the level activates, in the plan's order."""
        return list(dict.fromkeys(t.department for t in self.levels[level]))


def cumulative(
    iv: Iterable[PlanTask], iii: Iterable[PlanTask], ii: Iterable[PlanTask], i: Iterable[PlanTask]
) -> dict[int, tuple[PlanTask, ...]]:
    """Levels where each grade also does everything of the grades below it (IV ⊂ III ⊂ II ⊂ I)."""
    four, three, two, one = tuple(iv), tuple(iii), tuple(ii), tuple(i)
    return {4: four, 3: four + three, 2: four + three + two, 1: four + three + two + one}


def department_for(code: str, district: str | None) -> str:
    """The department code a task goes to: `@district` becomes the district's government (else the city's)."""
    if code == DISTRICT:
        return district or CITY
    return code


def check(label: str, item: object, categories: Iterable[str]) -> Plan:
    """Validate one declared plan; raise PlanError naming the app and the plan."""
    if not isinstance(item, Plan):
        raise PlanError(f"app {label!r} declares a plan that is not a Plan: {item!r}")
    where = f"app {label!r}, plan {item.code!r}"
    if not CODE_RE.match(item.code) or len(item.code) > 64:
        raise PlanError(f"{where}: the code must be lowercase words joined by dots, e.g. flood or gas.leak")
    if not item.name_zh or not item.name_en:
        raise PlanError(f"{where}: both a Chinese and an English name are needed")
    if not item.rules and not item.categories:
        raise PlanError(f"{where}: name the warning rules or the event categories that trigger it")
    for rule in item.rules:
        if not RULE_RE.match(rule):
            raise PlanError(f"{where}: {rule!r} is not a warning rule code")
    known = set(categories)
    for category in item.categories:
        if category not in known:
            raise PlanError(f"{where}: there is no event category {category!r}")
    if set(item.levels) != set(LEVELS):
        raise PlanError(f"{where}: every response level 1 (I) to 4 (IV) needs its tasks")
    for level in LEVELS:
        tasks = item.levels[level]
        if not tasks:
            raise PlanError(f"{where}: level {ROMAN[level]} activates no task")
        seen: set[tuple[str, str]] = set()
        for task in tasks:
            if not isinstance(task, PlanTask):
                raise PlanError(f"{where}: level {ROMAN[level]} has a task that is not a PlanTask")
            if task.department != DISTRICT and not DEPARTMENT_RE.match(task.department):
                raise PlanError(f"{where}: {task.department!r} is not a department code")
            if not task.name_zh or not task.name_en or len(task.name_zh) > 200 or len(task.name_en) > 300:
                raise PlanError(f"{where}: a task needs a Chinese and an English name (200/300 characters)")
            if (task.department, task.name_zh) in seen:
                raise PlanError(f"{where}: level {ROMAN[level]} lists a task twice: {task.name_zh}")
            seen.add((task.department, task.name_zh))
    return item


def collect(ctx: AppContext, categories: Iterable[str]) -> dict[str, Plan]:
    """Every plan the enabled apps declare, by code; duplicates and malformed entries are refused."""
    known = list(categories)
    found: dict[str, Plan] = {}
    owner: dict[str, str] = {}
    for spec in ctx.apps:
        module = spec.module("emergency_plans")
        for item in getattr(module, "PLANS", ()) if module is not None else ():
            plan = check(spec.label, item, known)
            if plan.code in found:
                raise PlanError(f"plan {plan.code!r} is declared by {owner[plan.code]!r} and {spec.label!r}")
            found[plan.code], owner[plan.code] = plan, spec.label
    return found


def plans_for_rule(plans: Mapping[str, Plan], rule: str) -> list[Plan]:
    """The plans a warning rule triggers."""
    return [p for p in plans.values() if rule in p.rules]
