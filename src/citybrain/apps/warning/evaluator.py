"""The rule evaluator: attribute changes in, level transitions out; pure in-memory state, no I/O.

Rules are indexed by (tenant, entity type, attribute), so a change costs only the rules that can match
it. State is kept per (rule, entity) for durations and rates, and per (rule, scope) for the active level
with its hysteresis. Times are the observation times of the values (so a history can be replayed);
absence rules and pending downgrades are also checked by `tick(now)`. With `persist` set, every duration
clock that starts or stops is noted in `clocks` (and every rule whose state is dropped in `cleared`), for
the runtime to store; `restore_clock` puts a stored one back after a restart, so "for 2 h" goes on counting. Forecast rules are not fed by
changes but by `forecasted`, whenever a forecast of an entity's attribute is stored. A rule that raises
while being evaluated is disabled and reported in `failures`; the evaluator carries on with the others.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from citybrain.apps.warning.schemas import RANK, Condition, RuleSpec

# Loads an entity's current numeric attributes: {attr IRI: (observed at, value)}; None when it is gone.
Loader = Callable[[str, str], Mapping[str, tuple[datetime, Any]] | None]
# The district code of an entity (tenant, entity id), None when unknown or outside the city.
Locator = Callable[[str, str], str | None]
# One forecast step: (time, mean, lower and upper bound of the 80 % interval).
ForecastPoint = tuple[datetime, float, float, float]
Expander = Callable[[str], str]


@dataclass(frozen=True, slots=True)
class CompiledCondition:
    """A condition with expanded names and its levels as (rank, threshold, duration, margin), rank ascending."""

    index: int
    attr: str
    type_iri: str
    op: str
    levels: tuple[tuple[int, float, float, float], ...]
    period: float | None
    entity_id: str | None


@dataclass(slots=True)
class CompiledRule:
    """A rule ready to evaluate."""

    id: int
    code: str
    kind: str
    tenant: str
    type_iri: str
    scope_kind: str
    scope_entity: str | None
    scope_district: str | None
    conditions: tuple[CompiledCondition, ...]
    combine: str
    hold: float
    # forecast rules: how far ahead a crossing counts (seconds) and which value is compared.
    horizon: float = 0.0
    bound: str = "mean"


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of the level of (rule, scope): 0 → n raises, n → 0 lifts."""

    rule_id: int
    rule_code: str
    scope_key: str
    entity_id: str
    district: str | None
    from_rank: int
    to_rank: int
    at: datetime
    values: dict[str, Any]


@dataclass(slots=True)
class ActiveState:
    """The level of one (rule, scope) and a pending lower level waiting out the hold time."""

    rank: int
    lower_since: datetime | None = None
    pending: int = 0
    # Lifted by an operator: no new transition until the condition clears.
    suppressed: bool = False
    entity_id: str = ""
    district: str | None = None


@dataclass(slots=True)
class Track:
    """Per condition of one (rule, entity): since when each level holds, the rank reached, the last sample."""

    since: list[dict[int, datetime]]
    reached: list[int | None]
    previous: list[tuple[datetime, float] | None]


@dataclass(slots=True)
class Failure:
    """A rule that raised at run time."""

    rule_id: int
    rule_code: str
    error: str
    at: datetime


def compile_rule(rule_id: int, spec: RuleSpec, expand: Expander) -> CompiledRule:
    """Expand names and precompute margins; raises ValueError for what cannot be evaluated."""
    type_iri = expand(spec.entity_type)
    conditions = []
    watched = list(spec.conditions)
    if spec.forecast is not None:  # a forecast rule: its one condition is the forecast's
        watched = [Condition(attr=spec.forecast.attr, op=spec.forecast.op, levels=spec.forecast.levels)]
    for i, cond in enumerate(watched):
        levels = []
        for item in cond.levels:
            if spec.hysteresis.margin is not None:
                margin = spec.hysteresis.margin
            else:
                margin = abs(item.threshold) * spec.hysteresis.margin_ratio
            duration = float(item.for_seconds if item.for_seconds is not None else cond.for_seconds)
            levels.append((RANK[item.level], item.threshold, duration, margin))
        conditions.append(
            CompiledCondition(
                index=i,
                attr=expand(cond.attr),
                type_iri=expand(cond.entity_type) if cond.entity_type else type_iri,
                op=cond.op,
                levels=tuple(sorted(levels)),
                period=float(cond.period_seconds) if cond.period_seconds else None,
                entity_id=cond.entity_id,
            )
        )
    return CompiledRule(
        id=rule_id,
        code=spec.code,
        kind=spec.kind,
        tenant=spec.tenant,
        type_iri=type_iri,
        scope_kind=spec.scope.kind,
        scope_entity=spec.scope.entity_id,
        scope_district=spec.scope.district,
        conditions=tuple(conditions),
        combine=spec.combine,
        hold=float(spec.hysteresis.hold_seconds),
        horizon=spec.forecast.horizon_hours * 3600 if spec.forecast is not None else 0.0,
        bound=spec.forecast.bound if spec.forecast is not None else "mean",
    )


def _met(op: str, value: float, threshold: float) -> bool:
    """Whether a value meets a threshold."""
    if op == ">":
        return value > threshold
    if op == ">=":
        return value >= threshold
    if op == "<":
        return value < threshold
    return value <= threshold


def _relaxed(op: str, threshold: float, margin: float) -> float:
    """The threshold that keeps an active level: the margin further on the safe side."""
    return threshold - margin if op in (">", ">=") else threshold + margin


def number(value: Any) -> float | None:
    """The value as a float, or None when it is not a number (strings, booleans, objects)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    result = float(value)  # an integer too large for a float raises OverflowError here
    return result if math.isfinite(result) else None


@dataclass
class Evaluator:
    """Holds the rules, their index and their state; feed it changes, collect transitions and failures."""

    loader: Loader | None = None
    locator: Locator | None = None
    rules: dict[int, CompiledRule] = field(default_factory=dict)
    index: dict[tuple[str, str, str], list[tuple[CompiledRule, CompiledCondition]]] = field(
        default_factory=dict
    )
    # forecast rules, by (tenant, entity type, attribute): fed by `forecasted`, not by changes.
    forecast_index: dict[tuple[str, str, str], list[tuple[CompiledRule, CompiledCondition]]] = field(
        default_factory=dict
    )
    active: dict[tuple[int, str], ActiveState] = field(default_factory=dict)
    transitions: list[Transition] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    # (rule, entity) → the conditions' state for that entity.
    _tracks: dict[tuple[int, str], Track] = field(default_factory=dict)
    # district rules: (rule, district) → {entity: rank}; absence rules: (rule, entity) → last update.
    _district_ranks: dict[tuple[int, str], dict[str, int]] = field(default_factory=dict)
    _last_seen: dict[tuple[int, str], datetime] = field(default_factory=dict)
    _districts: dict[tuple[str, str], str | None] = field(default_factory=dict)
    # Duration clocks to store: (rule, entity, condition, rank) → since (None: stopped); rules to clear.
    persist: bool = False
    clocks: dict[tuple[int, str, int, int], datetime | None] = field(default_factory=dict)
    cleared: set[int] = field(default_factory=set)

    # --- rules ---------------------------------------------------------------------------------------

    def add(self, rule: CompiledRule) -> None:
        """Start evaluating a rule (replacing an earlier version of it, whose state is dropped)."""
        self.remove(rule.id)
        self.rules[rule.id] = rule
        index = self.forecast_index if rule.kind == "forecast" else self.index
        for cond in rule.conditions:
            index.setdefault((rule.tenant, cond.type_iri, cond.attr), []).append((rule, cond))

    def remove(self, rule_id: int) -> None:
        """Stop evaluating a rule and forget its state (its active levels stay known)."""
        rule = self.rules.pop(rule_id, None)
        if rule is None:
            return
        if self.persist:  # its clocks start afresh too
            self.cleared.add(rule_id)
            for clock in [k for k in self.clocks if k[0] == rule_id]:
                del self.clocks[clock]
        index = self.forecast_index if rule.kind == "forecast" else self.index
        for cond in rule.conditions:
            key = (rule.tenant, cond.type_iri, cond.attr)
            kept = [pair for pair in index.get(key, ()) if pair[0].id != rule_id]
            if kept:
                index[key] = kept
            else:
                index.pop(key, None)
        for k1 in [k for k in self._tracks if k[0] == rule_id]:
            del self._tracks[k1]
        for k2 in [k for k in self._district_ranks if k[0] == rule_id]:
            del self._district_ranks[k2]
        for k3 in [k for k in self._last_seen if k[0] == rule_id]:
            del self._last_seen[k3]

    def set_active(
        self, rule_id: int, scope_key: str, rank: int, entity_id: str, district: str | None
    ) -> None:
        """Know the level of an active warning (loaded at start)."""
        self.active[(rule_id, scope_key)] = ActiveState(rank, entity_id=entity_id, district=district)

    def forget_active(self, rule_id: int, scope_key: str, *, suppress: bool) -> None:
        """An operator lifted a warning: stay quiet until the condition clears (or forget it at once)."""
        state = self.active.get((rule_id, scope_key))
        if state is None:
            return
        if suppress:
            state.suppressed, state.lower_since = True, None
        else:
            del self.active[(rule_id, scope_key)]

    def restore_clock(self, rule_id: int, entity_id: str, condition: int, rank: int, since: datetime) -> None:
        """Put back a stored duration clock of a rule being evaluated (at start)."""
        rule = self.rules.get(rule_id)
        if rule is None or not 0 <= condition < len(rule.conditions):
            return
        self._track(rule, entity_id).since[condition].setdefault(rank, since)

    def drain_clocks(self) -> tuple[set[int], dict[tuple[int, str, int, int], datetime | None]]:
        """Take the rules cleared and the clocks started or stopped so far."""
        cleared, clocks = self.cleared, self.clocks
        self.cleared, self.clocks = set(), {}
        return cleared, clocks

    def seen(self, rule_id: int, entity_id: str, at: datetime) -> None:
        """Record when an absence rule's attribute of an entity was last updated (seeded at start)."""
        self._last_seen[(rule_id, entity_id)] = at

    def forget_district(self, tenant: str, entity_id: str) -> None:
        """Forget the cached district of an entity (its location changed)."""
        self._districts.pop((tenant, entity_id), None)

    # --- evaluation ----------------------------------------------------------------------------------

    def change(
        self,
        tenant: str,
        entity_id: str,
        types: Iterable[str],
        attr: str,
        value: Any,
        at: datetime,
        now: datetime,
    ) -> None:
        """Evaluate one attribute change (value None: removed) observed `at` and received `now`."""
        for type_iri in types:
            pairs = self.index.get((tenant, type_iri, attr))
            if not pairs:
                continue
            for rule, cond in list(pairs):
                if rule.id not in self.rules:
                    continue
                try:
                    self._evaluate(rule, cond, entity_id, value, at, now)
                except Exception as exc:
                    self._fail(rule, exc, now)

    def tick(self, now: datetime) -> None:
        """Check silence for absence rules and apply downgrades whose hold time has passed."""
        for (rule_id, entity_id), last in list(self._last_seen.items()):
            rule = self.rules.get(rule_id)
            if rule is None:
                continue
            try:
                silence = (now - last).total_seconds() / 60
                cond = rule.conditions[0]
                rank = self._rank(cond, silence, rule, entity_id, now, None)
                self._settle(rule, entity_id, rank, now, {cond.attr: round(silence, 2)})
            except Exception as exc:
                self._fail(rule, exc, now)
        for (rule_id, scope_key), state in list(self.active.items()):
            rule = self.rules.get(rule_id)
            if rule is None or state.lower_since is None or state.suppressed:
                continue
            if (now - state.lower_since).total_seconds() >= rule.hold:
                self._move(rule, scope_key, state, state.pending, now, {})

    def forecasted(
        self,
        tenant: str,
        entity_id: str,
        types: Iterable[str],
        attr: str,
        points: Sequence[ForecastPoint],
        now: datetime,
    ) -> None:
        """Evaluate the forecast rules watching an attribute on its new forecast, made at `now`."""
        for type_iri in types:
            for rule, cond in list(self.forecast_index.get((tenant, type_iri, attr), ())):
                if rule.id not in self.rules or self._in_scope(rule, tenant, entity_id) is None:
                    continue
                try:
                    rank, values = self._forecast_rank(rule, cond, entity_id, points, now)
                    self._settle(rule, entity_id, rank, now, values)
                except Exception as exc:
                    self._fail(rule, exc, now)

    def _forecast_rank(
        self,
        rule: CompiledRule,
        cond: CompiledCondition,
        entity_id: str,
        points: Sequence[ForecastPoint],
        now: datetime,
    ) -> tuple[int, dict[str, Any]]:
        """The highest level a forecast step within the horizon reaches, with the first step reaching it."""
        rising = cond.op in (">", ">=")
        best: tuple[int, datetime, float] | None = None
        extreme: tuple[datetime, float] | None = None
        for at, mean, lower, upper in points:
            if (at - now).total_seconds() > rule.horizon:
                break
            value = mean if rule.bound == "mean" else (upper if rising else lower)
            if extreme is None or (value > extreme[1] if rising else value < extreme[1]):
                extreme = (at, value)
            rank = self._rank(cond, value, rule, entity_id, at, None)
            if rank and (best is None or rank > best[0]):
                best = (rank, at, value)
        if best is not None:
            rank, at, value = best
        elif extreme is not None:
            rank, (at, value) = 0, extreme
        else:
            return 0, {}
        return rank, {cond.attr: round(value, 6), "forecastAt": at.isoformat()}

    def _fail(self, rule: CompiledRule, exc: Exception, now: datetime) -> None:
        """Disable a rule that raised and report it."""
        self.remove(rule.id)
        self.failures.append(Failure(rule.id, rule.code, f"{type(exc).__name__}: {exc}", now))

    def _in_scope(self, rule: CompiledRule, tenant: str, entity_id: str) -> str | None:
        """The scope key of an entity for a rule, or None when the entity is outside the scope."""
        if rule.scope_kind == "entity":
            return entity_id if entity_id == rule.scope_entity else None
        if rule.scope_kind == "district":
            return rule.scope_district if self.district(tenant, entity_id) == rule.scope_district else None
        return entity_id

    def district(self, tenant: str, entity_id: str) -> str | None:
        """The district of an entity (cached)."""
        key = (tenant, entity_id)
        if key not in self._districts:
            self._districts[key] = self.locator(tenant, entity_id) if self.locator else None
        return self._districts[key]

    def _evaluate(
        self,
        rule: CompiledRule,
        cond: CompiledCondition,
        entity_id: str,
        raw: Any,
        at: datetime,
        now: datetime,
    ) -> None:
        """Evaluate one condition of a rule on a new value of an entity."""
        if cond.entity_id is not None:  # a composite condition on a fixed entity
            if entity_id != cond.entity_id:
                return
            self._condition_value(rule, cond, entity_id, raw, at, self._track(rule, entity_id))
            targets = {e for (r, e) in self._tracks if r == rule.id and e != entity_id}
            if rule.scope_kind == "entity" and rule.scope_entity:
                targets.add(rule.scope_entity)
            for target in targets:
                self._combine(rule, target, at)
            return
        if self._in_scope(rule, rule.tenant, entity_id) is None:
            return
        if rule.kind == "absence":
            self._last_seen[(rule.id, entity_id)] = now
            self._settle(rule, entity_id, 0, now, {cond.attr: 0})
            return
        track = self._track(rule, entity_id)
        if self._condition_value(rule, cond, entity_id, raw, at, track) is None:
            return
        if rule.kind == "composite":
            self._fill(rule, entity_id)
            self._combine(rule, entity_id, at)
        else:
            self._settle(rule, entity_id, track.reached[cond.index] or 0, at, {cond.attr: raw})

    def _track(self, rule: CompiledRule, entity_id: str) -> Track:
        """The state of (rule, entity), created on first use."""
        key = (rule.id, entity_id)
        track = self._tracks.get(key)
        if track is None:
            n = len(rule.conditions)
            track = self._tracks[key] = Track([{} for _ in range(n)], [None] * n, [None] * n)
        return track

    def _condition_value(
        self,
        rule: CompiledRule,
        cond: CompiledCondition,
        entity_id: str,
        raw: Any,
        at: datetime,
        track: Track,
    ) -> float | None:
        """Compute the rank a condition reaches with a new value; None when the value is not usable."""
        value = number(raw)
        i = cond.index
        if value is None:
            if raw is None:  # the attribute was removed: the condition no longer holds
                if self.persist:
                    for rank in track.since[i]:
                        self.clocks[(rule.id, entity_id, i, rank)] = None
                track.since[i].clear()
                track.reached[i] = 0
            return None
        if cond.period is not None:
            previous = track.previous[i]
            track.previous[i] = (at, value)
            if previous is None or at <= previous[0]:
                return None
            value = (value - previous[1]) / (at - previous[0]).total_seconds() * cond.period
        track.reached[i] = self._rank(cond, value, rule, entity_id, at, track.since[i])
        return value

    def _current(self, rule: CompiledRule, entity_id: str) -> int:
        """The active rank of the scope an entity belongs to (0: none)."""
        scope_key = rule.scope_district if rule.scope_kind == "district" else entity_id
        state = self.active.get((rule.id, scope_key or ""))
        return 0 if state is None or state.suppressed else state.rank

    def _rank(
        self,
        cond: CompiledCondition,
        value: float,
        rule: CompiledRule,
        entity_id: str,
        at: datetime,
        since: dict[int, datetime] | None,
    ) -> int:
        """The highest level the value reaches (held long enough where `since` tracks it); active ones keep a margin."""
        current = self._current(rule, entity_id)
        op = cond.op
        reached = 0
        for rank, threshold, duration, margin in cond.levels:
            limit = threshold if rank > current else _relaxed(op, threshold, margin)
            if _met(op, value, limit):
                if since is None or not duration:
                    reached = rank
                    continue
                started = since.get(rank)
                if started is None:
                    started = since[rank] = at
                    if self.persist:
                        self.clocks[(rule.id, entity_id, cond.index, rank)] = at
                if (at - started).total_seconds() >= duration:
                    reached = rank
            elif since and rank in since:
                del since[rank]
                if self.persist:
                    self.clocks[(rule.id, entity_id, cond.index, rank)] = None
        return reached

    def _fill(self, rule: CompiledRule, entity_id: str) -> None:
        """Load the current values of a composite rule's conditions not yet seen for an entity."""
        track = self._track(rule, entity_id)
        missing = [c for c in rule.conditions if c.entity_id is None and track.reached[c.index] is None]
        pinned = [
            c
            for c in rule.conditions
            if c.entity_id is not None and self._track(rule, c.entity_id).reached[c.index] is None
        ]
        if not (missing or pinned) or self.loader is None:
            return
        current = self.loader(rule.tenant, entity_id) if missing else None
        for cond in missing:
            if current and cond.attr in current:
                at, raw = current[cond.attr]
                self._condition_value(rule, cond, entity_id, raw, at, track)
            if track.reached[cond.index] is None:
                track.reached[cond.index] = 0
        for cond in pinned:
            assert cond.entity_id is not None
            other_track = self._track(rule, cond.entity_id)
            other = self.loader(rule.tenant, cond.entity_id)
            if other and cond.attr in other:
                at, raw = other[cond.attr]
                self._condition_value(rule, cond, cond.entity_id, raw, at, other_track)
            if other_track.reached[cond.index] is None:
                other_track.reached[cond.index] = 0

    def _combine(self, rule: CompiledRule, entity_id: str, at: datetime) -> None:
        """Combine a composite rule's condition ranks for an entity and settle the result."""
        ranks = []
        for cond in rule.conditions:
            track = self._tracks.get((rule.id, cond.entity_id or entity_id))
            ranks.append((track.reached[cond.index] or 0) if track is not None else 0)
        rank = min(ranks) if rule.combine == "all" else max(ranks)
        values = {
            f"{c.entity_id or entity_id} {c.attr}": r for c, r in zip(rule.conditions, ranks, strict=True)
        }
        self._settle(rule, entity_id, rank, at, values)

    def _settle(
        self, rule: CompiledRule, entity_id: str, rank: int, at: datetime, values: dict[str, Any]
    ) -> None:
        """Move the scope's level towards `rank`: up at once, down only after the hold time."""
        district: str | None = None
        if rule.scope_kind == "district":
            district = scope_key = rule.scope_district or ""
            ranks = self._district_ranks.setdefault((rule.id, scope_key), {})
            ranks[entity_id] = rank
            rank = max(ranks.values())
        else:
            scope_key = entity_id  # its district is looked up when a warning is written
        state = self.active.get((rule.id, scope_key))
        if state is None:
            if rank > 0:
                state = self.active[(rule.id, scope_key)] = ActiveState(
                    0, entity_id=entity_id, district=district
                )
                self._move(rule, scope_key, state, rank, at, values)
            return
        state.entity_id = entity_id
        if state.suppressed:
            if rank == 0:
                del self.active[(rule.id, scope_key)]
            return
        if rank > state.rank:
            self._move(rule, scope_key, state, rank, at, values)
        elif rank < state.rank:
            if state.lower_since is None:
                state.lower_since = at
            state.pending = rank
            if (at - state.lower_since).total_seconds() >= rule.hold:
                self._move(rule, scope_key, state, rank, at, values)
        else:
            state.lower_since = None

    def _move(
        self,
        rule: CompiledRule,
        scope_key: str,
        state: ActiveState,
        rank: int,
        at: datetime,
        values: dict[str, Any],
    ) -> None:
        """Record a transition and update the scope's state."""
        self.transitions.append(
            Transition(
                rule.id, rule.code, scope_key, state.entity_id, state.district, state.rank, rank, at, values
            )
        )
        state.rank, state.lower_since, state.pending = rank, None, 0
        if rank == 0:
            self.active.pop((rule.id, scope_key), None)

    def drain(self) -> tuple[list[Transition], list[Failure]]:
        """Take the transitions and failures collected so far."""
        transitions, failures = self.transitions, self.failures
        self.transitions, self.failures = [], []
        return transitions, failures
