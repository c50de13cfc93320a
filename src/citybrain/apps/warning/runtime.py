"""The evaluator at work: fed by the context broker's AttributesChanged events, ticked periodically.

The evaluator's state lives on the event loop; rule edits and operator lifts made by requests (in
worker threads) reach it through `call_soon_threadsafe`. Transitions and failures are written in a
worker thread, so the loop is never blocked by the database.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from typing import Any

from citybrain.apps.context.entities import LOCATION
from citybrain.apps.context.events import AttributesChanged
from citybrain.apps.warning import evaluator as ev
from citybrain.apps.warning import services
from citybrain.apps.warning.schemas import RuleSpec
from citybrain.sdk import AppContext, utcnow

log = logging.getLogger(__name__)
DURABLE = "warning.evaluator"


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
        )
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
        return self._writing or bool(self.evaluator.transitions or self.evaluator.failures)

    def load(self) -> None:
        """Load the enabled rules and the active warnings' levels from the database."""
        self.stamp = services.rules_stamp(self.ctx)
        wanted = {
            rule_id: (code, definition) for rule_id, code, definition in services.enabled_rules(self.ctx)
        }
        for rule_id in [r for r in self.evaluator.rules if r not in wanted]:
            self.evaluator.remove(rule_id)
        for rule_id, (code, definition) in wanted.items():
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
        for rule_id, scope_key, rank, entity_id, district in services.active_states(self.ctx):
            if (rule_id, scope_key) not in self.evaluator.active:
                self.evaluator.set_active(rule_id, scope_key, rank, entity_id, district)

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
        for change in event.changes:
            if change.dataset_id:
                continue
            if change.attr == LOCATION:
                evaluator.forget_district(event.tenant, event.entity_id)
            value = change.new.get("value") if change.new else None
            at = _moment(change.new, event.occurred_at)
            evaluator.change(event.tenant, event.entity_id, event.types, change.attr, value, at, now)
            self.changes += 1
        if evaluator.transitions or evaluator.failures:
            self._wake.set()  # the writer batches what accumulates while it writes
        self.seconds += time.perf_counter() - started

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
            if not (self.evaluator.transitions or self.evaluator.failures):
                return
            self._writing = True
            try:
                await self._write()
            finally:
                self._writing = False

    async def _write(self) -> None:
        """Write what is pending now; on failure put it back for the next attempt."""
        transitions, failures = self.evaluator.drain()
        try:
            if failures:
                await asyncio.to_thread(services.record_failures, self.ctx, failures)
                failures = []
            if transitions:
                await asyncio.to_thread(services.apply_transitions, self.ctx, transitions)
        except BaseException:
            # Keep them (in order) for the next attempt.
            self.evaluator.transitions[:0] = transitions
            self.evaluator.failures[:0] = failures
            raise

    async def tick(self, now: datetime | None = None) -> None:
        """Check absence rules and held downgrades; reload the rules when another process changed them."""
        stamp = await asyncio.to_thread(services.rules_stamp, self.ctx)
        if stamp != self.stamp:
            await asyncio.to_thread(self.load)
        self.evaluator.tick(now or utcnow())
        await self.flush()

    async def run_ticks(self, seconds: float) -> None:
        """Tick forever, every `seconds`."""
        while True:
            await asyncio.sleep(seconds)
            try:
                await self.tick()
            except Exception:
                log.exception("the warning tick failed; trying again later")
