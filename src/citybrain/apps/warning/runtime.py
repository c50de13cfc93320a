"""The evaluator at work: fed by the context broker's AttributesChanged events, ticked periodically.

The same changes feed the device-health monitor (health.py): its warnings' transitions join the
evaluator's, its data-quality flags are written by the same writer, and the positions it needs for
drift's peers are read in a worker thread when it asks for them.

The evaluator's state lives on the event loop; rule edits and operator lifts made by requests (in
worker threads) reach it through `call_soon_threadsafe`. Transitions and failures are written in a
worker thread, so the loop is never blocked by the database. So are the duration clocks ("for 2 h"):
each one that starts or stops is stored, and loading the rules at start puts them back, so a restart
does not start the count again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timedelta
from typing import Any

from citybrain.apps.context.entities import LOCATION
from citybrain.apps.context.events import AttributesChanged
from citybrain.apps.warning import evaluator as ev
from citybrain.apps.warning import health, services
from citybrain.apps.warning.schemas import RuleSpec
from citybrain.sdk import AppContext, utcnow

log = logging.getLogger(__name__)
DURABLE = "warning.evaluator"
# Data-quality flags past their retention are deleted at most this often (seconds).
PURGE_SECONDS = 3600.0


def _moment(instance: dict[str, Any] | None, fallback: datetime) -> datetime:
    """When a value was observed (observedAt, else modifiedAt, else the event's time)."""
    if instance:
        raw = instance.get("observedAt") or instance.get("modifiedAt")
        if isinstance(raw, str):
            return datetime.fromisoformat(raw)
    return fallback


class Runtime:
    """One process's evaluator, its bus subscription and its periodic tick."""

    def __init__(self, ctx: AppContext) -> None:
        """Build the evaluator with the context broker as its loader and geo as its locator."""
        self.ctx = ctx
        self.evaluator = ev.Evaluator(
            loader=lambda tenant, entity_id: services.current_values(ctx, tenant, entity_id),
            locator=lambda tenant, entity_id: services.district_of(ctx, tenant, entity_id),
            persist=True,
        )
        conf = services.settings(ctx)
        self.health = health.Monitor(self.evaluator, max_series=conf.health_max_series)
        self._locating = False
        self._located_at = 0.0  # monotonic time of the last full reading of positions
        self._purged_at = 0.0  # monotonic time of the last purge of old data-quality flags
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stamp: tuple[int, int, Any] | None = None
        # Attribute changes evaluated, and the seconds spent evaluating them (the evaluator's own cost).
        self.changes = 0
        self.seconds = 0.0
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._writing = False

    @property
    def busy(self) -> bool:
        """Whether transitions or failures wait to be written, or are being written."""
        return self._writing or self._pending()

    def _pending(self) -> bool:
        """Whether transitions, failures or data-quality flags wait to be written."""
        evaluator = self.evaluator
        return bool(
            evaluator.transitions
            or evaluator.failures
            or self.health.flags
            or evaluator.clocks
            or evaluator.cleared
        )

    def load(self) -> None:
        """Load the enabled rules and the active warnings' levels from the database."""
        self.stamp = services.rules_stamp(self.ctx)
        wanted = {
            rule_id: (code, definition) for rule_id, code, definition in services.enabled_rules(self.ctx)
        }
        watches: list[tuple[int, RuleSpec]] = []
        for rule_id in [r for r in self.evaluator.rules if r not in wanted]:
            self.evaluator.remove(rule_id)
        for rule_id, (code, definition) in wanted.items():
            if definition.get("kind") == "health":
                try:
                    watches.append((rule_id, RuleSpec.model_validate(definition)))
                except ValueError as exc:
                    self.evaluator.failures.append(
                        ev.Failure(rule_id, code, f"{type(exc).__name__}: {exc}", utcnow())
                    )
                    continue
            if rule_id in self.evaluator.rules:
                continue
            try:
                spec = RuleSpec.model_validate(definition)
            except ValueError as exc:  # a definition this version cannot read: disable the rule, say why
                self.evaluator.failures.append(
                    ev.Failure(rule_id, code, f"{type(exc).__name__}: {exc}", utcnow())
                )
                continue
            self._add(rule_id, spec)
            if rule_id in self.evaluator.rules and spec.kind in ("threshold", "rate", "composite"):
                for entity_id, condition, rank, since in services.clocks_of(self.ctx, rule_id):
                    self.evaluator.restore_clock(rule_id, entity_id, condition, rank, since)
        for rule_id, scope_key, rank, entity_id, district in services.active_states(self.ctx):
            if (rule_id, scope_key) not in self.evaluator.active:
                self.evaluator.set_active(rule_id, scope_key, rank, entity_id, district)
        self.health.set_watches(watches, services.expand, services.compact)
        self.health.adopt(services.adopted_health(self.ctx))

    def _add(self, rule_id: int, spec: RuleSpec) -> None:
        """Compile and add a rule; seed an absence rule with the last updates of its entities."""
        try:
            self.evaluator.add(ev.compile_rule(rule_id, spec, services.expand))
            if spec.kind == "absence":
                for entity_id, at in services.absence_seeds(self.ctx, spec):
                    self.evaluator.seen(rule_id, entity_id, at)
        except Exception as exc:
            self.evaluator.remove(rule_id)
            self.evaluator.failures.append(
                ev.Failure(rule_id, spec.code, f"{type(exc).__name__}: {exc}", utcnow())
            )

    def put_rule(self, rule_id: int, spec: RuleSpec | None) -> None:
        """A rule was saved (None: disabled or deleted); applied on the loop (safe from any thread)."""
        self._call(self._put, rule_id, spec)

    def _put(self, rule_id: int, spec: RuleSpec | None) -> None:
        if spec is None:
            self.evaluator.remove(rule_id)
        else:
            self._add(rule_id, spec)
        if self._pending():
            self._wake.set()  # the dropped clocks (and any failure) are written
        specs = {i: s for i, s in self.health.specs.items() if i != rule_id}
        if spec is not None and spec.kind == "health":
            specs[rule_id] = spec
        self.health.set_watches(specs.items(), services.expand, services.compact)

    def operator_lifted(self, rule_id: int, scope_key: str) -> None:
        """An operator lifted a warning: the rule stays quiet for that scope until its condition clears."""
        self._call(self.evaluator.forget_active, rule_id, scope_key, suppress=True)

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> None:
        """Run on the loop when it runs, else now."""
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(lambda: fn(*args, **kwargs))
        else:
            fn(*args, **kwargs)

    async def on_changed(self, event: AttributesChanged) -> None:
        """Evaluate every default-instance attribute change of an event; wake the writer for what came of it."""
        started = time.perf_counter()
        now = utcnow()
        evaluator = self.evaluator
        monitor = self.health if self.health.index else None
        for change in event.changes:
            if change.dataset_id:
                continue
            if change.attr == LOCATION:
                evaluator.forget_district(event.tenant, event.entity_id)
            value = change.new.get("value") if change.new else None
            at = _moment(change.new, event.occurred_at)
            evaluator.change(event.tenant, event.entity_id, event.types, change.attr, value, at, now)
            if monitor is not None:
                monitor.observe(event.tenant, event.entity_id, event.types, change.attr, value, at, now)
            self.changes += 1
        if self._pending():
            self._wake.set()  # the writer batches what accumulates while it writes
        if monitor is not None and monitor.wanted and not self._locating:
            self._locating = True
            asyncio.get_running_loop().create_task(self.locate(set(monitor.wanted)))
        self.seconds += time.perf_counter() - started

    async def locate(self, wanted: set[tuple[str, str]]) -> None:
        """Read where the entities of watched types stand (in a worker thread), for drift's peers."""
        try:
            for tenant, type_iri in sorted(wanted):
                found = await asyncio.to_thread(services.entity_positions, self.ctx, tenant, type_iri)
                self.health.set_positions(tenant, type_iri, found)
        except Exception:
            log.exception("reading the positions of watched entities failed; trying again later")
        finally:
            self._locating = False

    async def run_writer(self) -> None:
        """Write transitions as they come, in batches; retry after a failure."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                log.exception("writing warnings failed; trying again shortly")
                await asyncio.sleep(1.0)
                self._wake.set()

    async def flush(self) -> None:
        """Write pending transitions and failures (in a worker thread), one batch at a time."""
        async with self._lock:
            if not self._pending():
                return
            self._writing = True
            try:
                await self._write()
            finally:
                self._writing = False

    async def _write(self) -> None:
        """Write what is pending now; on failure put it back for the next attempt."""
        transitions, failures = self.evaluator.drain()
        cleared, clocks = self.evaluator.drain_clocks()
        flags = self.health.drain_flags()
        try:
            if failures:
                await asyncio.to_thread(services.record_failures, self.ctx, failures)
                failures = []
            if cleared or clocks:
                await asyncio.to_thread(services.record_clocks, self.ctx, sorted(cleared), clocks)
                cleared, clocks = set(), {}
            if transitions:
                await asyncio.to_thread(services.apply_transitions, self.ctx, transitions)
                transitions = []
            if flags:
                await asyncio.to_thread(services.record_flags, self.ctx, flags)
        except BaseException:
            # Keep them (in order) for the next attempt; clocks noted meanwhile are newer than these.
            self.evaluator.transitions[:0] = transitions
            self.evaluator.failures[:0] = failures
            self.evaluator.cleared |= cleared
            self.evaluator.clocks = {**clocks, **self.evaluator.clocks}
            self.health.flags[:0] = flags
            raise

    async def tick(self, now: datetime | None = None) -> None:
        """Check absence rules and held downgrades; reload the rules when another process changed them."""
        stamp = await asyncio.to_thread(services.rules_stamp, self.ctx)
        if stamp != self.stamp:
            await asyncio.to_thread(self.load)
        conf = services.settings(self.ctx)
        moment = now or utcnow()
        self.evaluator.tick(moment)
        self.health.tick(moment, timedelta(hours=conf.drift_stale_hours))
        await self.flush()
        clock = time.monotonic()
        if clock - self._located_at >= conf.health_peer_refresh_seconds and self.health.watches:
            self._located_at = clock
            if not self._locating:  # entities come and go: read their positions again
                self._locating = True
                await self.locate(self.health.types())
        if clock - self._purged_at >= PURGE_SECONDS:
            self._purged_at = clock
            await asyncio.to_thread(services.purge_flags, self.ctx)

    async def run_ticks(self, seconds: float) -> None:
        """Tick forever, every `seconds`."""
        while True:
            await asyncio.sleep(seconds)
            try:
                await self.tick()
            except Exception:
                log.exception("the warning tick failed; trying again later")
