"""Device health (设备健康): the anomaly detectors fed with the attribute changes the evaluator sees.

Rules of the kind `health` (an app's HEALTH_WATCHES, or an operator's) name an entity type and the
attributes to watch. Every numeric value of a watched (type, attribute) is fed to that rule's `Detector`
(anomaly.py), with the nearest entities of the type within `peers_within_m` as the peers for drift.
Findings become:

* stuck, drop, jump and drift: a device-health warning per (entity, attribute, kind), raised at the level
  the finding suggests, upgraded when it rises and lifted when the episode ends (a `recovered` finding).
  They go through the evaluator's active states and transitions, so they are written, published and
  lifted by operators like every other warning (an operator's lift keeps the scope quiet until the
  anomaly ends);
* spikes: data-quality flags, written in batches by the runtime's writer.

A drift warning needs its comparison with the peers to go on: when none could be made for a while (the
peers went silent, the entity did, or the detectors forgot the series to stay within their bound),
`tick` lifts it, since nothing says the drift goes on any more, and the series learns its offset anew.

Pure in-memory state, no I/O: the runtime loads entity positions off the event loop and hands them over
with `set_positions`. Warnings still active from an earlier process have no episode in the fresh
detectors ("adopted"): a stuck one is lifted when the value moves, the others after the quiet period.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from citybrain.apps.warning import evaluator as ev
from citybrain.apps.warning.anomaly import (
    EPISODES,
    Detector,
    DetectorConfig,
    DriftConfig,
    Finding,
    SeriesKey,
    ShiftConfig,
    SpikeConfig,
    StuckConfig,
)
from citybrain.apps.warning.schemas import RANK, Health, RuleSpec

EARTH_RADIUS_M = 6_371_008.8  # the mean Earth radius (IUGG)
# The most data-quality flags kept waiting for the writer (the oldest are dropped beyond it).
MAX_PENDING_FLAGS = 10_000
SCOPE_MAX = 256  # warning_warning.scope_key


@dataclass(slots=True)
class Watch:
    """A health rule ready to run: its attributes (IRI → compact name) and its detector."""

    rule_id: int
    code: str
    tenant: str
    type_iri: str
    attrs: dict[str, str]
    health: Health
    detector: Detector


@dataclass(frozen=True, slots=True)
class Flag:
    """A data-quality flag waiting to be written."""

    tenant: str
    entity_id: str
    attr: str
    observed_at: datetime
    kind: str
    score: float
    value: float
    expected: float
    message: str
    params: dict[str, Any]


@dataclass(slots=True)
class Adopted:
    """An active device-health warning of an earlier process, whose episode the detectors do not know."""

    rule_id: int
    scope_key: str
    kind: str
    value: float | None
    changed_at: datetime


def detector_for(health: Health, names: Iterable[str], max_series: int) -> Detector:
    """A detector with the rule's sensitivity, per attribute where it names a minimum change."""

    def config(min_change: float) -> DetectorConfig:
        return DetectorConfig(
            stuck=StuckConfig(min_readings=health.stuck_readings),
            spike=SpikeConfig(min_deviation=min_change),
            shift=ShiftConfig(min_shift=min_change, quiet=timedelta(hours=health.quiet_hours)),
            drift=DriftConfig(
                enabled=health.peers_within_m is not None,
                min_deviation=min_change,
                min_peers=health.min_peers,
            ),
            max_series=max_series,
        )

    overrides = {name: config(health.min_change[name]) for name in names if name in health.min_change}
    return Detector(config(0.0), overrides)


def scope_key(entity_id: str, attr: str, kind: str) -> str:
    """One active warning per (entity, attribute, anomaly kind); a long entity id is shortened by a hash."""
    key = f"{entity_id}|{attr}|{kind}"
    if len(key) <= SCOPE_MAX:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return f"{entity_id[: SCOPE_MAX - len(attr) - len(kind) - 20]}~{digest}|{attr}|{kind}"


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """The great-circle distance between two (lon, lat) points in metres (haversine)."""
    lon1, lat1, lon2, lat2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def finding_values(finding: Finding) -> dict[str, Any]:
    """What a warning's step records of a finding: kind, attribute, score, values, the message."""
    kind = finding.ended or finding.kind
    values: dict[str, Any] = {
        "anomaly": kind,
        "attr": finding.series.attribute,
        "value": finding.value,
        "since": finding.since.isoformat(),
        "message": finding.text(),
    }
    if finding.kind != "recovered":
        values |= {"expected": round(finding.expected, 6), "score": round(finding.score, 3)}
    for name in ("readings", "minutes", "offset", "peers"):
        if name in finding.params:
            values[name] = finding.params[name]
    return values


@dataclass
class Monitor:
    """The health rules, their detectors and peers; feed it changes, collect flags (and transitions)."""

    evaluator: ev.Evaluator
    max_series: int = 100_000
    watches: dict[int, Watch] = field(default_factory=dict)
    specs: dict[int, RuleSpec] = field(default_factory=dict)
    # (tenant, type IRI, attribute IRI) → the watch of that attribute.
    index: dict[tuple[str, str, str], Watch] = field(default_factory=dict)
    flags: list[Flag] = field(default_factory=list)
    # (tenant, type IRI) → entity id → (lon, lat); the types whose positions are wanted (not loaded yet).
    positions: dict[tuple[str, str], dict[str, tuple[float, float]]] = field(default_factory=dict)
    wanted: set[tuple[str, str]] = field(default_factory=set)
    _peers: dict[tuple[int, str, str], list[SeriesKey]] = field(default_factory=dict)
    _adopted: dict[tuple[int, str, str], list[Adopted]] = field(default_factory=dict)
    # Active drift warnings: (rule, entity, attribute) → scope; (rule, scope) → last comparison (wall clock).
    _drifting: dict[tuple[int, str, str], str] = field(default_factory=dict)
    _compared: dict[tuple[int, str], datetime] = field(default_factory=dict)

    # --- rules ---------------------------------------------------------------------------------------

    def set_watches(
        self,
        rules: Iterable[tuple[int, RuleSpec]],
        expand: Callable[[str], str],
        compact: Callable[[str], str],
    ) -> None:
        """Run these health rules (and no others); an unchanged rule keeps its detector's state."""
        watches: dict[int, Watch] = {}
        specs: dict[int, RuleSpec] = {}
        for rule_id, spec in rules:
            if spec.health is None:
                continue
            specs[rule_id] = spec
            type_iri = expand(spec.entity_type)
            attrs = {expand(a): compact(expand(a)) for a in spec.health.attrs}
            old = self.watches.get(rule_id)
            if old is not None and (old.type_iri, old.health, old.tenant) == (
                type_iri,
                spec.health,
                spec.tenant,
            ):
                old.code = spec.code
                watches[rule_id] = old
                continue
            detector = detector_for(spec.health, attrs.values(), self.max_series)
            watches[rule_id] = Watch(rule_id, spec.code, spec.tenant, type_iri, attrs, spec.health, detector)
        index = {(w.tenant, w.type_iri, attr): w for w in watches.values() for attr in w.attrs}
        self.watches, self.index, self.specs = watches, index, specs
        self._peers = {k: v for k, v in self._peers.items() if k[0] in watches}
        self.wanted |= {
            (w.tenant, w.type_iri)
            for w in watches.values()
            if w.health.peers_within_m is not None and (w.tenant, w.type_iri) not in self.positions
        }

    def types(self) -> set[tuple[str, str]]:
        """(tenant, type IRI) of every watch that judges drift against peers."""
        return {(w.tenant, w.type_iri) for w in self.watches.values() if w.health.peers_within_m is not None}

    def set_positions(self, tenant: str, type_iri: str, positions: Mapping[str, tuple[float, float]]) -> None:
        """The entities of a type and where they are (loaded by the runtime); peers are chosen anew."""
        self.positions[(tenant, type_iri)] = dict(positions)
        self.wanted.discard((tenant, type_iri))
        ids = {w.rule_id for w in self.watches.values() if (w.tenant, w.type_iri) == (tenant, type_iri)}
        self._peers = {k: v for k, v in self._peers.items() if k[0] not in ids}

    def adopt(self, rows: Iterable[tuple[int, str, str, str, str, float | None, datetime]]) -> None:
        """Know the active device-health warnings of an earlier process (rule, scope, entity, attr, kind, value, at)."""
        known = {(a.rule_id, a.scope_key) for items in self._adopted.values() for a in items}
        for rule_id, scope, entity_id, attr, kind, value, changed_at in rows:
            if (rule_id, scope) in known or kind not in EPISODES:
                continue
            item = Adopted(rule_id, scope, kind, value, changed_at)
            self._adopted.setdefault((rule_id, entity_id, attr), []).append(item)

    # --- feeding -------------------------------------------------------------------------------------

    def observe(
        self,
        tenant: str,
        entity_id: str,
        types: Sequence[str],
        attr: str,
        raw: Any,
        at: datetime,
        now: datetime | None = None,
    ) -> None:
        """Feed one attribute change observed `at` (received `now`) to the watches of the entity's types."""
        for type_iri in types:
            watch = self.index.get((tenant, type_iri, attr))
            if watch is None:
                continue
            try:
                value = ev.number(raw)
            except OverflowError:
                return
            if value is None:
                return
            if at.utcoffset() is None:
                at = at.replace(tzinfo=UTC)
            name = watch.attrs[attr]
            peers = self._peers_of(watch, entity_id, name) if watch.health.peers_within_m else None
            key = SeriesKey(entity_id, name)
            for finding in watch.detector.observe(key, at, value, peers):
                self._found(watch, finding)
            scope = self._drifting.get((watch.rule_id, entity_id, name)) if self._drifting else None
            if scope is not None and watch.detector.drift_compared(key) == at:
                self._compared[(watch.rule_id, scope)] = now or at
            if self._adopted:
                self._check_adopted(watch, entity_id, name, value, at)

    def _peers_of(self, watch: Watch, entity_id: str, name: str) -> list[SeriesKey] | None:
        """The peer series of an entity's attribute: the nearest entities of the type within the radius."""
        key = (watch.rule_id, entity_id, name)
        found = self._peers.get(key)
        if found is not None:
            return found
        where = (watch.tenant, watch.type_iri)
        positions = self.positions.get(where)
        if positions is None or entity_id not in positions:
            self.wanted.add(where)  # a new entity: load the positions again
            return None
        radius = watch.health.peers_within_m or 0.0
        here = positions[entity_id]
        near = sorted(
            (d, other)
            for other, point in positions.items()
            if other != entity_id and (d := distance_m(here, point)) <= radius
        )
        found = [SeriesKey(other, name) for _d, other in near[: watch.health.max_peers]]
        self._peers[key] = found
        return found

    def _found(self, watch: Watch, finding: Finding) -> None:
        """Turn a finding into a flag or a warning's transition."""
        if finding.kind == "spike":
            self.flags.append(
                Flag(
                    watch.tenant, finding.series.entity, finding.series.attribute, finding.time, finding.kind,
                    round(finding.score, 3), finding.value, finding.expected, finding.message,
                    dict(finding.params),
                )
            )  # fmt: skip
            if len(self.flags) > MAX_PENDING_FLAGS:
                del self.flags[: len(self.flags) - MAX_PENDING_FLAGS]
            return
        kind = finding.ended or finding.kind
        scope = scope_key(finding.series.entity, finding.series.attribute, kind)
        self._forget_adopted(watch.rule_id, finding.series.entity, finding.series.attribute, scope)
        rank = 0 if finding.kind == "recovered" else RANK[finding.severity]
        self._settle(watch, scope, finding.series.entity, rank, finding.time, finding_values(finding))

    def _settle(
        self, watch: Watch, scope: str, entity_id: str, rank: int, at: datetime, values: dict[str, Any]
    ) -> None:
        """Raise, upgrade or lift the scope's warning (never downgraded: the episode's worst level stays)."""
        active = self.evaluator.active
        state = active.get((watch.rule_id, scope))
        if state is None:
            if rank > 0:
                state = active[(watch.rule_id, scope)] = ev.ActiveState(0, entity_id=entity_id)
                self._move(watch, scope, state, rank, at, values)
            return
        if state.suppressed:  # lifted by an operator: quiet until the episode ends
            if rank == 0:
                del active[(watch.rule_id, scope)]
            return
        if rank == 0 or rank > state.rank:
            self._move(watch, scope, state, rank, at, values)

    def _move(
        self, watch: Watch, scope: str, state: ev.ActiveState, rank: int, at: datetime, values: dict[str, Any]
    ) -> None:
        """Record a transition for the writer and update the scope's state."""
        self.evaluator.transitions.append(
            ev.Transition(
                watch.rule_id,
                watch.code,
                scope,
                state.entity_id,
                state.district,
                state.rank,
                rank,
                at,
                values,
            )
        )
        state.rank, state.lower_since, state.pending = rank, None, 0
        if rank == 0:
            self.evaluator.active.pop((watch.rule_id, scope), None)

    def _forget_adopted(self, rule_id: int, entity_id: str, name: str, scope: str) -> None:
        """The detectors know this episode now: it is no longer adopted."""
        items = self._adopted.get((rule_id, entity_id, name))
        if items:
            items[:] = [a for a in items if a.scope_key != scope]
            if not items:
                del self._adopted[(rule_id, entity_id, name)]

    def _check_adopted(self, watch: Watch, entity_id: str, name: str, value: float, at: datetime) -> None:
        """Lift adopted warnings of the series: stuck once the value moves, others after the quiet period."""
        items = self._adopted.get((watch.rule_id, entity_id, name))
        if not items:
            return
        quiet = timedelta(hours=watch.health.quiet_hours)
        kept = []
        for item in items:
            if item.kind == "stuck":
                over = item.value is None or value != item.value
            else:
                over = at - item.changed_at >= quiet
            if not over:
                kept.append(item)
                continue
            values = {"anomaly": item.kind, "attr": name, "value": value}
            self._settle(watch, item.scope_key, entity_id, 0, at, values)
        if kept:
            items[:] = kept
        else:
            del self._adopted[(watch.rule_id, entity_id, name)]

    def tick(self, now: datetime, stale_after: timedelta) -> None:
        """Lift the drift warnings whose comparison with the peers could not be made for `stale_after`."""
        drifting: dict[tuple[int, str, str], str] = {}
        compared: dict[tuple[int, str], datetime] = {}
        for (rule_id, scope), state in list(self.evaluator.active.items()):
            watch = self.watches.get(rule_id)
            if watch is None or not scope.endswith("|drift"):
                continue
            name = scope[: -len("|drift")].rpartition("|")[2]
            last = self._compared.get((rule_id, scope), now)  # first seen now: it has `stale_after` to go on
            if now - last < stale_after:
                drifting[(rule_id, state.entity_id, name)] = scope
                compared[(rule_id, scope)] = last
                continue
            values = {"anomaly": "drift", "attr": name, "stale": True, "since": last.isoformat()}
            self._forget_adopted(rule_id, state.entity_id, name, scope)
            watch.detector.reset_drift(SeriesKey(state.entity_id, name))
            if state.suppressed:  # lifted by an operator already: just forget it
                del self.evaluator.active[(rule_id, scope)]
            else:
                self._settle(watch, scope, state.entity_id, 0, now, values)
        self._drifting, self._compared = drifting, compared

    def drain_flags(self) -> list[Flag]:
        """Take the flags collected so far."""
        flags, self.flags = self.flags, []
        return flags
