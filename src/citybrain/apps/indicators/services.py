"""Indicator services: the declared catalogue, the compute round, current values, history and export.

A round computes every indicator that is due, as the system, and stores in one transaction the value of
each area for the indicator's current period (replacing what the same period held) and the current
values. An indicator whose compute function fails, answers something unusable or takes longer than
`compute_timeout_seconds`, is stored as unavailable with the reason; the other indicators of the round
are stored as usual. A compute function runs in a thread of its own, so one that hangs is abandoned
(Python cannot stop a thread): while it still runs, its indicator is not computed again.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, select

from citybrain.apps.geo import services as geo
from citybrain.apps.identity import services as identity
from citybrain.apps.indicators.definitions import Declared, IndicatorSpec, Level, collect
from citybrain.apps.indicators.events import (
    ValuesChanged,
    WarningChangedSeen,
    WarningLiftedSeen,
    WarningRaisedSeen,
)
from citybrain.apps.indicators.models import CurrentValue, IndicatorValue, SeenWarning
from citybrain.apps.indicators.settings import IndicatorsSettings
from citybrain.sdk import SYSTEM, Actor, AppContext, BadRequest, NotFound, ValidationFailed, utcnow

log = logging.getLogger(__name__)
READ = "indicators.indicator.read"
DECLARED = "indicators.declared"
STATE = "indicators.state"
OK, UNAVAILABLE = "ok", "unavailable"
REASON_CHARS = 500
TEXT_CHARS = 64
# Set by the lifespan: when the scheduler's first round began and when it finished (UTC).
FIRST_ROUND = "indicators.first_round"
# The stored reasons the pages translate (the others are a compute function's own error, shown as is).
TIMED_OUT = "timed out after {seconds} s"
STILL_RUNNING = "timed out: the computation started at {time} is still running"
# The history a request shows when it names no start: a day of real-time values, a week of hourly ones,
# 90 days of daily ones.
DEFAULT_SPAN = {"realtime": timedelta(days=1), "hourly": timedelta(days=7), "daily": timedelta(days=90)}


def settings(ctx: AppContext) -> IndicatorsSettings:
    """The indicators app's settings."""
    return ctx.app_setting("indicators", IndicatorsSettings)


# --- the catalogue --------------------------------------------------------------------------------


def declared(ctx: AppContext) -> list[Declared]:
    """The indicators the enabled apps declare in their indicators.py, checked once per platform."""
    found: list[Declared] | None = ctx.extensions.get(DECLARED)
    if found is None:
        apps: list[tuple[str, Any]] = []
        for spec in ctx.apps:
            module = spec.module("indicators")
            if module is not None and hasattr(module, "INDICATORS"):
                apps.append((spec.label, module.INDICATORS))
        found = ctx.extensions.setdefault(DECLARED, collect(apps))
    return found


def catalogue(ctx: AppContext, actor: Actor) -> list[Declared]:
    """Every declared indicator, in declaration order."""
    actor.require(READ)
    return declared(ctx)


def definition(ctx: AppContext, actor: Actor, code: str) -> Declared:
    """One indicator by code (404 when none is declared)."""
    actor.require(READ)
    for item in declared(ctx):
        if item.spec.code == code:
            return item
    raise NotFound("There is no indicator {code}.", code=code)


@dataclass(frozen=True)
class Area:
    """The city or one of its districts."""

    code: str
    name_zh: str
    name_en: str

    def name(self, locale: str) -> str:
        """The area's name in a locale."""
        return self.name_en if locale == "en" else self.name_zh


def department_names(ctx: AppContext) -> dict[str, tuple[str, str]]:
    """The departments' names (zh, en) by code, for the owners of the indicators."""
    return {d.code: (d.name_zh, d.name_en) for d in identity.list_departments(ctx, SYSTEM)}


def areas(ctx: AppContext) -> list[Area]:
    """The city first, then its districts."""
    city = geo.city(ctx)
    return [Area(city.code, city.name_zh, city.name_en)] + [
        Area(d.code, d.name_zh, d.name_en) for d in geo.districts(ctx)
    ]


def check_area(ctx: AppContext, code: str) -> Area:
    """The city or a district by code (404 otherwise)."""
    for item in areas(ctx):
        if item.code == code:
            return item
    raise NotFound("{code} is not a district of Mianyang.", code=code)


# --- computing --------------------------------------------------------------------------------------


def period_start(ctx: AppContext, spec: IndicatorSpec, moment: datetime) -> datetime:
    """The start (UTC) of the period of an indicator holding a moment; days are China's days."""
    if spec.period == "daily":
        local = moment.astimezone(ZoneInfo(ctx.settings.timezone))
        return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)
    moment = moment.astimezone(UTC)
    if spec.period == "hourly":
        return moment.replace(minute=0, second=0, microsecond=0)
    step = settings(ctx).realtime_minutes
    minutes = moment.hour * 60 + moment.minute
    minutes -= minutes % step
    return moment.replace(hour=minutes // 60, minute=minutes % 60, second=0, microsecond=0)


@dataclass
class _State:
    """When each indicator was last computed in this process: (period start, monotonic seconds), and the
    compute functions abandoned while still running (their thread and when they started)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    last: dict[str, tuple[datetime, float]] = field(default_factory=dict)
    running: dict[str, tuple[threading.Thread, datetime]] = field(default_factory=dict)


def _state(ctx: AppContext) -> _State:
    found: _State | None = ctx.extensions.get(STATE)
    if found is None:
        found = ctx.extensions.setdefault(STATE, _State())
    return found


def _refresh_seconds(config: IndicatorsSettings, spec: IndicatorSpec) -> float:
    """How long a computed value of the indicator's current period is good for."""
    if spec.period == "hourly":
        return config.hourly_refresh_minutes * 60
    if spec.period == "daily":
        return config.daily_refresh_minutes * 60
    return 0.0  # real-time: every round


@dataclass(frozen=True)
class Computed:
    """One area's outcome of computing an indicator."""

    area: str
    value: float | None
    text: str | None
    status: str
    reason: str | None


def _reason(text: str) -> str:
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 1] + "…"


class ComputeTimeout(Exception):
    """A compute function did not answer within the time limit."""


def _seconds(value: float) -> str:
    return f"{value:g}"


def _call(ctx: AppContext, spec: IndicatorSpec, start: datetime, end: datetime) -> Any:
    """Call an indicator's compute function in a thread of its own, waiting at most the time limit."""
    limit = settings(ctx).compute_timeout_seconds
    if limit <= 0:
        return spec.compute(ctx, start, end)
    state = _state(ctx)
    with state.lock:
        running = state.running.get(spec.code)
        if running is not None and not running[0].is_alive():
            del state.running[spec.code]
            running = None
    if running is not None:
        local = running[1].astimezone(ZoneInfo(ctx.settings.timezone))
        raise ComputeTimeout(STILL_RUNNING.format(time=local.strftime("%H:%M:%S")))
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["answer"] = spec.compute(ctx, start, end)
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc

    began = utcnow()
    thread = threading.Thread(target=work, name=f"citybrain-indicator-{spec.code}", daemon=True)
    thread.start()
    thread.join(limit)
    if thread.is_alive():
        with state.lock:
            state.running[spec.code] = (thread, began)
        raise ComputeTimeout(TIMED_OUT.format(seconds=_seconds(limit)))
    if "error" in box:
        raise box["error"]
    return box["answer"]


def evaluate(ctx: AppContext, spec: IndicatorSpec, start: datetime, end: datetime) -> list[Computed]:
    """Run an indicator's compute function and check its answer; a failure is one unavailable city value."""
    known = areas(ctx)
    city = known[0].code
    allowed = {a.code for a in known} if spec.by_district else {city}
    try:
        answer = _call(ctx, spec, start, end)
        if not isinstance(answer, Mapping):
            raise TypeError(
                f"compute answered {type(answer).__name__}, not a mapping of area codes to values"
            )
        found: list[Computed] = []
        for area, value in answer.items():
            if area not in allowed:
                raise ValueError(
                    f"compute answered a value for {area!r}, which is not an area of this indicator"
                )
            if value is None:
                found.append(Computed(area, None, None, OK, None))
            elif spec.kind == "text":
                if not isinstance(value, str):
                    raise TypeError(f"compute answered {value!r} for {area}, not a text")
                found.append(Computed(area, None, value[:TEXT_CHARS], OK, None))
            else:
                if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                    raise TypeError(f"compute answered {value!r} for {area}, not a finite number")
                found.append(Computed(area, float(value), None, OK, None))
    except ComputeTimeout as exc:
        log.warning("indicator %s is unavailable: %s", spec.code, exc)
        return [Computed(city, None, None, UNAVAILABLE, _reason(str(exc)))]
    except Exception as exc:
        log.warning("indicator %s is unavailable: %s", spec.code, exc, exc_info=True)
        return [Computed(city, None, None, UNAVAILABLE, _reason(f"{type(exc).__name__}: {exc}"))]
    order = {a.code: i for i, a in enumerate(known)}
    return sorted(found, key=lambda c: order[c.area])


@dataclass(frozen=True)
class RoundReport:
    """What one round did: the indicators computed and those unavailable, and how long it took."""

    computed: tuple[str, ...]
    unavailable: tuple[str, ...]
    seconds: float
    changed: tuple[str, ...] = ()


def compute_round(
    ctx: AppContext, now: datetime | None = None, *, force: bool = False, codes: Iterable[str] | None = None
) -> RoundReport:
    """Compute every due indicator (all of them with `force`, or those named) and store the values."""
    began = time.perf_counter()
    moment = now or utcnow()
    config = settings(ctx)
    state = _state(ctx)
    wanted = set(codes) if codes is not None else None
    clock = time.monotonic()
    due: list[tuple[IndicatorSpec, datetime]] = []
    for item in declared(ctx):
        spec = item.spec
        if wanted is not None and spec.code not in wanted:
            continue
        start = period_start(ctx, spec, moment)
        last = state.last.get(spec.code)
        fresh = last is not None and last[0] == start and clock - last[1] < _refresh_seconds(config, spec)
        if force or wanted is not None or not fresh:
            due.append((spec, start))
    results = [(spec, start, evaluate(ctx, spec, start, moment)) for spec, start in due]
    changed: list[str] = []
    if results:
        changed = _store(ctx, results, moment)
    with state.lock:
        for spec, start, _found in results:
            state.last[spec.code] = (start, clock)
    return RoundReport(
        tuple(s.code for s, _, _ in results),
        tuple(s.code for s, _, found in results if any(c.status == UNAVAILABLE for c in found)),
        time.perf_counter() - began,
        tuple(changed),
    )


def _store(
    ctx: AppContext, results: Sequence[tuple[IndicatorSpec, datetime, list[Computed]]], at: datetime
) -> list[str]:
    """Replace each indicator's period values and current values in one transaction; announce what changed."""
    codes = [spec.code for spec, _, _ in results]
    changed: list[str] = []
    history: list[IndicatorValue] = []
    current: list[CurrentValue] = []
    with ctx.uow(SYSTEM, "indicators.compute") as uow:
        session = uow.session
        before = {
            (row.indicator, row.area): row
            for row in session.execute(
                select(CurrentValue).where(CurrentValue.indicator.in_(codes))
            ).scalars()
        }
        for spec, start, found in results:
            areas_before = {area for (code, area) in before if code == spec.code}
            if areas_before != {c.area for c in found}:
                changed.append(spec.code)
            session.execute(
                delete(IndicatorValue).where(
                    IndicatorValue.indicator == spec.code, IndicatorValue.period_start == start
                )
            )
            for c in found:
                history.append(
                    IndicatorValue(
                        indicator=spec.code,
                        area=c.area,
                        period_start=start,
                        value=c.value,
                        text=c.text,
                        status=c.status,
                        reason=c.reason,
                        computed_at=at,
                    )
                )
                old = before.get((spec.code, c.area))
                same = old is not None and (old.value, old.text, old.status) == (c.value, c.text, c.status)
                if not same and (not changed or changed[-1] != spec.code):
                    changed.append(spec.code)
                current.append(
                    CurrentValue(
                        indicator=spec.code,
                        area=c.area,
                        period_start=start,
                        value=c.value,
                        text=c.text,
                        status=c.status,
                        reason=c.reason,
                        computed_at=at,
                        changed_at=old.changed_at if same and old is not None else at,
                    )
                )
        session.execute(delete(CurrentValue).where(CurrentValue.indicator.in_(codes)))
        session.flush()
        session.add_all(history)
        session.add_all(current)
        if changed:
            uow.emit(ValuesChanged(codes=changed, at=at))
    return changed


def purge(ctx: AppContext, now: datetime | None = None) -> int:
    """Delete history rows (and warnings lifted) older than the retention; history rows deleted."""
    cutoff = (now or utcnow()) - timedelta(days=settings(ctx).retention_days)
    with ctx.uow(SYSTEM, "indicators.purge") as uow:
        result = uow.session.execute(delete(IndicatorValue).where(IndicatorValue.period_start < cutoff))
        uow.session.execute(delete(SeenWarning).where(SeenWarning.lifted_at < cutoff))
        return int(getattr(result, "rowcount", 0) or 0)


# --- filling the history ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BackfillReport:
    """What a backfill stored: the indicators filled, those skipped with the reason, rows and seconds."""

    filled: tuple[str, ...]
    skipped: dict[str, str]
    rows: int
    seconds: float


BACKFILL_SKIPPED = "its compute function reads the current state only (not declared with backfill)"


def backfill(ctx: AppContext, hours: int, now: datetime | None = None) -> BackfillReport:
    """Fill the last `hours` of history, hourly (daily for daily ones), where nothing is recorded."""
    # Only the indicators declared with `backfill` are filled: their compute functions answer a past
    # `end` from the recorded history; the others are skipped with the reason. A period that already
    # holds a value keeps it, so running it again adds nothing.
    began = time.perf_counter()
    moment = (now or utcnow()).astimezone(UTC)
    first = moment - timedelta(hours=hours)
    filled: list[str] = []
    skipped: dict[str, str] = {}
    rows: list[IndicatorValue] = []
    for item in declared(ctx):
        spec = item.spec
        if not spec.backfill:
            skipped[spec.code] = BACKFILL_SKIPPED
            continue
        step = timedelta(days=1) if spec.period == "daily" else timedelta(hours=1)
        moments: list[datetime] = []
        at = moment - step
        while at >= first:
            moments.append(at)
            at -= step
        starts = {period_start(ctx, spec, m): m for m in reversed(moments)}
        with ctx.read() as session:
            held = {
                h.astimezone(UTC)
                for h in session.execute(
                    select(IndicatorValue.period_start).where(
                        IndicatorValue.indicator == spec.code,
                        IndicatorValue.period_start.in_(list(starts)),
                    )
                ).scalars()
            }
        failed = None
        for start, end in starts.items():
            if start in held:
                continue
            found = evaluate(ctx, spec, start, end)
            if any(c.status == UNAVAILABLE for c in found):
                failed = found[0].reason
                break
            rows += [
                IndicatorValue(
                    indicator=spec.code,
                    area=c.area,
                    period_start=start,
                    value=c.value,
                    text=c.text,
                    status=c.status,
                    reason=c.reason,
                    computed_at=moment,
                )
                for c in found
            ]
        if failed is not None:
            skipped[spec.code] = f"computing a past value failed: {failed}"
        else:
            filled.append(spec.code)
    if rows:
        with ctx.uow(SYSTEM, "indicators.backfill") as uow:
            uow.session.add_all(rows)
    return BackfillReport(tuple(filled), skipped, len(rows), time.perf_counter() - began)


# --- reading ----------------------------------------------------------------------------------------


class Value(NamedTuple):
    """An area's current (or recorded) value of an indicator, with its level (a tuple: cheap by the thousand)."""

    area: str
    period_start: datetime
    value: float | None
    text: str | None
    status: str
    reason: str | None
    computed_at: datetime | None  # None for history points (not read: a year of them costs too much)
    level: Level | None


@dataclass(frozen=True)
class IndicatorNow:
    """An indicator's definition with the city's value now and the districts' values."""

    item: Declared
    city: Value | None
    districts: list[Value]


@dataclass(frozen=True)
class Snapshot:
    """Every indicator now, and a version stamp that changes whenever any current value changes."""

    version: str
    computed_at: datetime | None
    indicators: list[IndicatorNow]


def _value(spec: IndicatorSpec, row: CurrentValue | IndicatorValue) -> Value:
    level = spec.level(row.value) if row.status == OK else None
    return Value(
        row.area, row.period_start, row.value, row.text, row.status, row.reason, row.computed_at, level
    )


def version(ctx: AppContext) -> str:
    """The version stamp of the current values: the last change and how many values there are."""
    with ctx.read() as session:
        changed, count = session.execute(select(func.max(CurrentValue.changed_at), func.count())).one()
    stamp = 0 if changed is None else int(changed.timestamp() * 1000)
    return f"{stamp:x}-{int(count):x}"


def current(
    ctx: AppContext, actor: Actor, *, district: str | None = None, codes: Sequence[str] | None = None
) -> Snapshot:
    """Every indicator's current values (or the named ones'): the city, and each district (or just one)."""
    actor.require(READ)
    items = declared(ctx)
    if codes:
        known = {i.spec.code for i in items}
        unknown = [c for c in codes if c not in known]
        if unknown:
            raise NotFound("There is no indicator {code}.", code=unknown[0])
        items = [i for i in items if i.spec.code in set(codes)]
    city = geo.city(ctx).code
    if district is not None and district != city:
        check_area(ctx, district)
    order = {a.code: n for n, a in enumerate(areas(ctx))}
    stmt = select(CurrentValue).where(CurrentValue.indicator.in_([i.spec.code for i in items]))
    if district is not None:
        stmt = stmt.where(CurrentValue.area.in_({city, district}))
    by_code: dict[str, list[CurrentValue]] = {}
    with ctx.read() as session:
        for row in session.execute(stmt).scalars():
            by_code.setdefault(row.indicator, []).append(row)
    stamp = version(ctx)
    found: list[IndicatorNow] = []
    latest: datetime | None = None
    for item in items:
        rows = sorted(by_code.get(item.spec.code, []), key=lambda r: order.get(r.area, len(order)))
        values = [_value(item.spec, r) for r in rows]
        city_value = next((v for v in values if v.area == city), None)
        districts = [v for v in values if v.area != city and (district is None or v.area == district)]
        for v in values:
            if v.computed_at is not None and (latest is None or v.computed_at > latest):
                latest = v.computed_at
        found.append(IndicatorNow(item, city_value, districts))
    return Snapshot(stamp, latest, found)


def window(
    ctx: AppContext, spec: IndicatorSpec, start: datetime | None, end: datetime | None
) -> tuple[datetime, datetime]:
    """A history window [start, end): default end now, default start a span back that suits the period."""
    if end is None:
        end = utcnow()
    if start is None:
        start = end - DEFAULT_SPAN[spec.period]
    if start.tzinfo is None or end.tzinfo is None:
        raise BadRequest("start and end need a time zone, e.g. 2026-11-25T08:00:00+08:00.")
    if start >= end:
        raise BadRequest("start must be before end.")
    return start.astimezone(UTC), end.astimezone(UTC)


@dataclass(frozen=True)
class History:
    """Recorded values of one indicator and area in a window, one page of them."""

    item: Declared
    area: Area
    start: datetime
    end: datetime
    points: list[Value]
    limit: int
    offset: int
    more: bool


def _history_rows(
    ctx: AppContext, spec: IndicatorSpec, area: str, start: datetime, end: datetime, limit: int, offset: int
) -> list[Value]:
    """Recorded values, oldest first: plain columns, no ORM objects (a year of hourly values is 8 760 rows)."""
    v = IndicatorValue
    stmt = (
        select(v.period_start, v.value, v.text, v.status, v.reason)
        .where(v.indicator == spec.code, v.area == area, v.period_start >= start, v.period_start < end)
        .order_by(v.period_start)
        .limit(limit)
        .offset(offset)
    )
    limits = spec.thresholds
    with ctx.read() as session:
        rows = session.connection().execute(stmt).all()
    if limits is None:
        return [
            Value(area, at, value, text, status, reason, None, None)
            for at, value, text, status, reason in rows
        ]
    level = limits.level
    return [
        Value(
            area,
            at,
            value,
            text,
            status,
            reason,
            None,
            level(value) if status == OK and value is not None else None,
        )
        for at, value, text, status, reason in rows
    ]


def history(
    ctx: AppContext,
    actor: Actor,
    code: str,
    area: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> History:
    """The recorded values of an indicator for the city (default) or a district in [start, end), oldest first."""
    item = definition(ctx, actor, code)
    place = check_area(ctx, area or geo.city(ctx).code)
    if not item.spec.by_district and place.code != geo.city(ctx).code:
        raise NotFound("{code} is not broken down by district.", code=code)
    top = settings(ctx).max_points
    size = top if limit is None else limit
    if not 1 <= size <= top:
        raise ValidationFailed("limit must be between 1 and {top}.", top=top)
    if offset < 0:
        raise ValidationFailed("offset must not be negative.")
    begin, finish = window(ctx, item.spec, start, end)
    rows = _history_rows(ctx, item.spec, place.code, begin, finish, size + 1, offset)
    return History(item, place, begin, finish, rows[:size], size, offset, len(rows) > size)


# --- why a value is missing ----------------------------------------------------------------------------


def N_(message: str) -> str:  # noqa: N802 - the gettext convention for "mark only"
    """Mark a text for translation where it is shown."""
    return message


NOT_COMPUTED = N_("Not computed yet.")
COMPUTING = N_("Computing: the first round began at {time}.")
NEXT_ROUND = N_("Not computed yet: the next round is at {time}.")
NO_VALUE = N_("No value: there is nothing to compute it from yet.")
FAILED = N_("The computation failed: {reason}")
TIMED_OUT_TEXT = N_("Timed out after {seconds} s: the computation was abandoned for this round.")
STILL_RUNNING_TEXT = N_("Timed out: the computation started at {time} is still running.")
NOTHING_RECORDED = N_("Nothing was recorded this day.")


def _local_time(ctx: AppContext, moment: datetime) -> str:
    return moment.astimezone(ZoneInfo(ctx.settings.timezone)).strftime("%H:%M")


def reason_text(ctx: AppContext, reason: str | None, locale: str) -> str:
    """A stored reason of an unavailable value in the reader's language (a compute error as it was)."""
    gettext = ctx.i18n.gettext
    text = reason or ""
    for stored, shown in ((TIMED_OUT, TIMED_OUT_TEXT), (STILL_RUNNING, STILL_RUNNING_TEXT)):
        head, _, tail = stored.partition("{")
        name, _, rest = tail.partition("}")
        if text.startswith(head) and text.endswith(rest):
            return gettext(locale, shown, **{name: text[len(head) : len(text) - len(rest)]})
    return gettext(locale, FAILED, reason=text)


def explain(ctx: AppContext, spec: IndicatorSpec, value: Value | None, locale: str) -> str | None:
    """Why an indicator shows "—" (not computed yet, failed, timed out, nothing to compute); None with a value."""
    gettext = ctx.i18n.gettext
    if value is None and spec.code in _state(ctx).last:  # computed: the function gave this area nothing
        return spec.empty(locale) or gettext(locale, NO_VALUE)
    if value is None:
        rounds: dict[str, datetime | None] | None = ctx.extensions.get(FIRST_ROUND)
        if rounds is None or settings(ctx).compute_seconds <= 0:
            return gettext(locale, NOT_COMPUTED)
        began, finished = rounds.get("began"), rounds.get("finished")
        if finished is None and began is not None:
            return gettext(locale, COMPUTING, time=_local_time(ctx, began))
        step = settings(ctx).compute_seconds
        stamp = utcnow().timestamp()
        upcoming = datetime.fromtimestamp(stamp + step - stamp % step, UTC)
        return gettext(locale, NEXT_ROUND, time=_local_time(ctx, upcoming))
    if value.status != OK:
        return reason_text(ctx, value.reason, locale)
    if (spec.kind == "text" and value.text) or (spec.kind == "number" and value.value is not None):
        return None
    return spec.empty(locale) or gettext(locale, NO_VALUE)


# --- the warnings seen on the bus -------------------------------------------------------------------

WARNING_READ = "warning.warning.read"
LEVEL_RANK = {"red": 0, "orange": 1, "yellow": 2, "blue": 3}


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def seen_warning(ctx: AppContext, event: WarningRaisedSeen | WarningChangedSeen | WarningLiftedSeen) -> None:
    """Keep what a warning event says (raised, changed or lifted); a repeated or late event changes nothing."""
    at = _aware(event.at)
    with ctx.uow(SYSTEM, "indicators.warning.seen") as uow:
        row = uow.session.get(SeenWarning, event.warning_id)
        if row is None:
            level = event.previous_level if isinstance(event, WarningLiftedSeen) else event.level
            row = SeenWarning(warning_id=event.warning_id, level=level or "blue", changed_at=at)
            uow.session.add(row)
        if event.rule_code:
            row.rule_code = event.rule_code[:64]
        if event.district:
            row.district = event.district
        if isinstance(event, WarningRaisedSeen):
            row.raised_at = at
            row.title = event.title[:200] or row.title or ""
            row.entity_id = event.entity_id[:256] or row.entity_id or ""
        if isinstance(event, WarningLiftedSeen):
            row.lifted_at = at
        elif at >= _aware(row.changed_at):
            row.level, row.changed_at = event.level, at


@dataclass(frozen=True)
class DayWarning:
    """A warning raised during a day or in force at some time of it."""

    warning_id: int
    level: str
    title: str
    district: str | None
    entity_id: str
    raised_at: datetime | None
    lifted_at: datetime | None


def day_warnings(ctx: AppContext, actor: Actor, start: datetime, end: datetime) -> list[DayWarning]:
    """The warnings raised in [start, end) or in force at some time of it, oldest raised first."""
    actor.require(WARNING_READ)
    w = SeenWarning
    stmt = select(w).where(
        (w.raised_at < end) | w.raised_at.is_(None),
        (w.lifted_at >= start) | w.lifted_at.is_(None),
        w.raised_at.is_not(None) | w.lifted_at.is_not(None) | (w.changed_at < end),
    )
    with ctx.read() as session:
        rows = session.execute(stmt).scalars().all()
    found = [
        DayWarning(
            r.warning_id,
            r.level,
            r.title or r.rule_code,
            r.district,
            r.entity_id,
            None if r.raised_at is None else _aware(r.raised_at),
            None if r.lifted_at is None else _aware(r.lifted_at),
        )
        for r in rows
    ]
    floor = datetime.min.replace(tzinfo=UTC)
    found.sort(key=lambda d: (d.raised_at or floor, LEVEL_RANK.get(d.level, 9), d.warning_id))
    return found


# --- export -----------------------------------------------------------------------------------------

EXPORT_COLUMNS = (
    "indicator",
    "area",
    "area_name",
    "period_start",
    "value",
    "unit",
    "level",
    "status",
    "reason",
)


def export_rows(
    ctx: AppContext,
    actor: Actor,
    code: str,
    area: str | None,
    start: datetime | None,
    end: datetime | None,
    locale: str,
) -> tuple[History, list[list[Any]]]:
    """The rows of an export (period starts in China time); 422 when the window holds too many."""
    top = settings(ctx).max_export_rows
    found = history(ctx, actor, code, area, start, end, limit=settings(ctx).max_points)
    rows = found.points
    if found.more:
        rows = _history_rows(ctx, found.item.spec, found.area.code, found.start, found.end, top + 1, 0)
        if len(rows) > top:
            raise ValidationFailed("The window holds more than {top} values: export a shorter one.", top=top)
    zone = ZoneInfo(ctx.settings.timezone)
    spec = found.item.spec
    table = [
        [
            spec.code,
            found.area.code,
            found.area.name(locale),
            p.period_start.astimezone(zone).replace(tzinfo=None),
            p.text if spec.kind == "text" else p.value,
            spec.unit,
            p.level or "",
            p.status,
            p.reason or "",
        ]
        for p in rows
    ]
    return found, table


def to_csv(table: Sequence[Sequence[Any]]) -> bytes:
    """CSV (UTF-8 with a byte-order mark, which spreadsheet programs need to read Chinese)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    for row in table:
        writer.writerow(
            [c.isoformat(sep=" ") if isinstance(c, datetime) else ("" if c is None else c) for c in row]
        )
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def to_xlsx(table: Sequence[Sequence[Any]], title: str) -> bytes:
    """An Excel workbook of one sheet (written in streaming mode: memory stays flat)."""
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet(title=_sheet_title(title))
    sheet.append(list(EXPORT_COLUMNS))
    for row in table:
        sheet.append(list(row))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _sheet_title(text: str) -> str:
    """A sheet title Excel accepts: at most 31 characters, none of []:*?/\\."""
    cleaned = "".join("_" if ch in "[]:*?/\\" else ch for ch in text)
    return cleaned[:31] or "data"


def bulk_history(ctx: AppContext, rows: Iterable[Mapping[str, Any]]) -> None:
    """Store recorded values as given (seeding, migration from another system); no checks beyond the table's."""
    from citybrain.sdk import bulk_insert

    with ctx.uow(SYSTEM, "indicators.import") as uow:
        bulk_insert(uow.session.connection(), IndicatorValue, list(rows))
