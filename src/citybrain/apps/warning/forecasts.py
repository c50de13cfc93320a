"""Forecast series: what to forecast, the scheduled job that fits models and stores forecasts, and reads.

A series declaration (`SeriesSpec`) names an attribute of one entity, or of every entity of a type that
holds numbers in it (each gets a series of its own), with a frequency, a horizon and an aggregation.
Apps declare them in their `warnings.py` (`FORECASTS`), operators add and remove their own.

The job (`run`, started by the app's lifespan in a worker thread) examines at most
`forecast_max_series` series per run, the least recently examined first. For each it reads the
aggregated history from the context broker's temporal service (an hourly mean by default), decides
with the library's `refit_due` whether the model needs a refit or a new choice, and when it does,
backtests, forecasts and stores the model choice, the backtest report and the forecast with its 80 %
and 95 % intervals; past forecasts are kept, a bounded number per series. Each stored forecast is
handed to the forecast rules (`services.forecast_stored`). A series with too little history is marked
"short"; a series that fails is marked "failed" with the reason, and the others carry on.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citybrain.apps.context import services as context
from citybrain.apps.context import temporal
from citybrain.apps.context.errors import NgsiError
from citybrain.apps.context.query import QueryError, parse_q
from citybrain.apps.warning import services
from citybrain.apps.warning.forecasting import (
    ForecastConfig,
    ForecastInputError,
    ForecastResult,
    Frequency,
    ModelChoice,
    RefitDecision,
    RefitPolicy,
    SeriesTooShortError,
    TimeSeries,
    forecast,
    refit,
    refit_due,
)
from citybrain.apps.warning.models import ForecastIssue, ForecastSeries, SeriesDeclaration
from citybrain.apps.warning.schemas import (
    ForecastRead,
    Page,
    RunSummary,
    SeriesDeclarationRead,
    SeriesDetail,
    SeriesRead,
    SeriesSpec,
)
from citybrain.apps.warning.services import N_, expand
from citybrain.apps.warning.settings import WarningSettings
from citybrain.sdk import SYSTEM, Actor, AppContext, Conflict, NotFound, utcnow

log = logging.getLogger(__name__)
FORECAST_READ, FORECAST_WRITE = "warning.forecast.read", "warning.forecast.write"
LOCK = "warning.forecast.lock"
# Set when the app stops: a run in progress ends after the series it is working on.
STOP = "warning.forecast.stop"
# Interior gaps of at most this many steps are interpolated; the history before a longer one is dropped.
MAX_GAP = 3
# The series is read one week (the longest season) longer than the models need, so a short outage at
# the end still leaves enough history.
SLACK_DAYS = 7
CITY_TZ = ZoneInfo("Asia/Shanghai")


# --- declarations ---------------------------------------------------------------------------------


def _declaration_read(session: Session, row: SeriesDeclaration) -> SeriesDeclarationRead:
    count = session.scalar(
        select(func.count(ForecastSeries.id)).where(ForecastSeries.declaration_id == row.id)
    )
    return SeriesDeclarationRead(
        id=row.id,
        code=row.code,
        origin=row.origin,
        definition=dict(row.definition),
        series=int(count or 0),
        created_at=row.created_at,
    )


def _insert(session: Session, spec: SeriesSpec, origin: str) -> SeriesDeclaration:
    row = SeriesDeclaration(
        code=spec.code, tenant=spec.tenant, entity_type=expand(spec.entity_type), attr=expand(spec.attr),
        definition=spec.model_dump(mode="json"), origin=origin,
    )  # fmt: skip
    session.add(row)
    session.flush()
    return row


def sync_declared(ctx: AppContext) -> int:
    """Store the series the apps declare that are not stored yet; return how many were added."""
    declared = services.declared_forecasts(ctx)
    if not declared:
        return 0
    with ctx.read() as session:
        have = set(session.scalars(select(SeriesDeclaration.code)))
    added = 0
    for label, spec in declared:
        if spec.code in have:
            continue
        with ctx.uow(SYSTEM, "warning.forecast.declare") as uow:
            _insert(uow.session, spec, label)
        added += 1
    return added


def validate(ctx: AppContext, spec: SeriesSpec) -> None:
    """Check a declaration against the context broker: the type, the entity, a numeric attribute."""
    type_iri, attr_iri = expand(spec.entity_type), expand(spec.attr)
    if not services._type_exists(ctx, spec.tenant, type_iri):
        raise services._field_error(
            ["entity_type"], N_("Unknown entity type {name} ({field})."), name=spec.entity_type
        )
    if spec.entity_id:
        services._check_entity(ctx, spec.tenant, spec.entity_id, type_iri, ["entity_id"])
        stored = context.get_entity(ctx, SYSTEM, spec.tenant, spec.entity_id)
        carriers = [stored] if attr_iri in stored.get("attrs", {}) else []
    else:
        carriers = services._carriers(ctx, spec.tenant, type_iri, spec.attr)
    if not carriers:
        raise services._field_error(
            ["attr"], N_("Entity type {type} has no attribute {name} ({field})."),
            type=spec.entity_type, name=spec.attr,
        )  # fmt: skip
    if not services._holds_numbers(carriers, attr_iri):
        raise services._field_error(
            ["attr"], N_("Attribute {name} does not hold numbers ({field})."), name=spec.attr
        )


def create_declaration(ctx: AppContext, actor: Actor, spec: SeriesSpec) -> SeriesDeclarationRead:
    """Add an operator's series declaration (validated) and its series."""
    actor.require(FORECAST_WRITE)
    validate(ctx, spec)
    entity_ids = _entities(ctx, services.settings(ctx), spec)
    with ctx.uow(actor, "warning.forecast.create") as uow:
        if uow.session.scalar(select(SeriesDeclaration.id).where(SeriesDeclaration.code == spec.code)):
            raise Conflict("A forecast series with the code {code} exists already.", code=spec.code)
        row = _insert(uow.session, spec, "operator")
        for entity_id in entity_ids:
            uow.session.add(ForecastSeries(declaration_id=row.id, entity_id=entity_id))
        uow.session.flush()
        return _declaration_read(uow.session, row)


def list_declarations(ctx: AppContext, actor: Actor) -> list[SeriesDeclarationRead]:
    """Every series declaration, by code."""
    actor.require(FORECAST_READ)
    with ctx.read() as session:
        rows = session.scalars(select(SeriesDeclaration).order_by(SeriesDeclaration.code))
        return [_declaration_read(session, row) for row in rows]


def delete_declaration(ctx: AppContext, actor: Actor, code: str) -> None:
    """Remove an operator's declaration with its series and their forecasts (apps' ones stay)."""
    actor.require(FORECAST_WRITE)
    with ctx.uow(actor, "warning.forecast.delete") as uow:
        session = uow.session
        row = session.scalar(select(SeriesDeclaration).where(SeriesDeclaration.code == code))
        if row is None:
            raise NotFound("Forecast series {code} does not exist.", code=code)
        if row.origin != "operator":
            raise Conflict(
                "Forecast series {code} is declared by the app {app} and cannot be removed.",
                code=code,
                app=row.origin,
            )
        series = list(session.scalars(select(ForecastSeries).where(ForecastSeries.declaration_id == row.id)))
        if series:
            ids = [s.id for s in series]
            for issue in session.scalars(select(ForecastIssue).where(ForecastIssue.series_id.in_(ids))):
                session.delete(issue)
            session.flush()
            for item in series:
                session.delete(item)
            session.flush()
        session.delete(row)


# --- series ---------------------------------------------------------------------------------------


def _entities(ctx: AppContext, conf: WarningSettings, spec: SeriesSpec) -> list[str]:
    """The entities a declaration covers: its entity, or those of its type holding numbers in the attribute."""
    if spec.entity_id:
        return [spec.entity_id]
    attr_iri = expand(spec.attr)
    try:
        query = context.EntityQuery(
            types=[expand(spec.entity_type)],
            q=parse_q(spec.attr, expand),
            limit=conf.forecast_max_entities,
        )
        found = context.query_entities(ctx, SYSTEM, spec.tenant, query).entities
    except (NgsiError, QueryError):
        return []
    return [stored["id"] for stored in found if services._holds_numbers([stored], attr_iri)]


def sync_series(ctx: AppContext) -> int:
    """Give every entity a declaration covers a series (new entities of a type join); return how many."""
    conf = services.settings(ctx)
    with ctx.read() as session:
        declarations = [(row.id, SeriesSpec.model_validate(row.definition)) for row in session.scalars(
            select(SeriesDeclaration).order_by(SeriesDeclaration.id)
        )]  # fmt: skip
        have = set(session.execute(select(ForecastSeries.declaration_id, ForecastSeries.entity_id)))
    added = 0
    for declaration_id, spec in declarations:
        missing = [e for e in _entities(ctx, conf, spec) if (declaration_id, e) not in have]
        if not missing:
            continue
        with ctx.uow(SYSTEM, "warning.forecast.series") as uow:
            for entity_id in missing:
                uow.session.add(ForecastSeries(declaration_id=declaration_id, entity_id=entity_id))
        added += len(missing)
    return added


def _series_read(row: ForecastSeries, declaration: SeriesDeclaration) -> SeriesRead:
    spec = declaration.definition
    report = row.report or {}
    choice = row.choice or {}
    return SeriesRead(
        id=row.id, declaration=declaration.code, tenant=declaration.tenant, entity_id=row.entity_id,
        attr=str(spec.get("attr", "")), frequency=str(spec.get("frequency", "hourly")),
        horizon=int(spec.get("horizon", 24)), aggregation=str(spec.get("aggregation", "avg")),
        status=row.status, detail=row.detail, model=choice.get("model"),
        margin=report.get("margin_over_seasonal_naive"), decision=row.decision, points=row.points,
        data_end=row.data_end, issued_at=row.issued_at, run_at=row.run_at,
    )  # fmt: skip


def _forecast_read(data: dict[str, Any], issued_at: datetime, data_end: datetime) -> ForecastRead:
    return ForecastRead.model_validate({**data, "issued_at": issued_at, "data_end": data_end})


def list_series(
    ctx: AppContext,
    actor: Actor,
    *,
    declaration: str | None = None,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page[SeriesRead]:
    """Forecast series with their status, model, margin over seasonal-naive and last run."""
    actor.require(FORECAST_READ)
    stmt = select(ForecastSeries, SeriesDeclaration).join(
        SeriesDeclaration, SeriesDeclaration.id == ForecastSeries.declaration_id
    )
    if declaration:
        stmt = stmt.where(SeriesDeclaration.code == declaration)
    if status:
        stmt = stmt.where(ForecastSeries.status == status)
    with ctx.read() as session:
        total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        rows = session.execute(
            stmt.order_by(SeriesDeclaration.code, ForecastSeries.entity_id).limit(limit).offset(offset)
        )
        items = [_series_read(row, decl) for row, decl in rows]
    return Page[SeriesRead](items=items, total=total, limit=limit, offset=offset)


def _get(session: Session, series_id: int) -> tuple[ForecastSeries, SeriesDeclaration]:
    row = session.get(ForecastSeries, series_id)
    if row is None:
        raise NotFound("Forecast series {id} does not exist.", id=series_id)
    declaration = session.get(SeriesDeclaration, row.declaration_id)
    assert declaration is not None
    return row, declaration


def get_series(ctx: AppContext, actor: Actor, series_id: int) -> SeriesDetail:
    """One series with its latest forecast (with intervals) and its backtest report."""
    actor.require(FORECAST_READ)
    with ctx.read() as session:
        row, declaration = _get(session, series_id)
        latest = None
        if row.forecast is not None and row.issued_at is not None and row.data_end is not None:
            latest = _forecast_read(row.forecast, row.issued_at, row.data_end)
        return SeriesDetail(
            **_series_read(row, declaration).model_dump(),
            choice=row.choice,
            forecast=latest,
            report=row.report,
        )


def series_history(ctx: AppContext, actor: Actor, series_id: int, limit: int = 48) -> list[ForecastRead]:
    """The kept forecasts of a series, newest first."""
    actor.require(FORECAST_READ)
    with ctx.read() as session:
        _get(session, series_id)
        rows = session.scalars(
            select(ForecastIssue)
            .where(ForecastIssue.series_id == series_id)
            .order_by(ForecastIssue.issued_at.desc(), ForecastIssue.id.desc())
            .limit(limit)
        )
        return [_forecast_read(r.forecast, r.issued_at, r.data_end) for r in rows]


# --- the job --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    """What the job needs to know of one series."""

    id: int
    entity_id: str
    spec: SeriesSpec
    choice: ModelChoice | None
    has_forecast: bool


def forecast_config(conf: WarningSettings, spec: SeriesSpec) -> ForecastConfig:
    """The library's configuration for a series under the app's settings."""
    return ForecastConfig(
        horizon=spec.horizon,
        origins=conf.forecast_origins,
        models=tuple(conf.forecast_models) or None,
        max_train=conf.forecast_max_train,
    )


def _policy(conf: WarningSettings) -> RefitPolicy:
    return RefitPolicy(
        max_age=timedelta(hours=conf.forecast_refit_hours),
        max_new_points=conf.forecast_refit_points,
        reselect_age=timedelta(days=conf.forecast_reselect_days),
    )


def _window_end(now: datetime, frequency: Frequency) -> datetime:
    """The end of the last complete step before `now` (a local midnight for daily series)."""
    if frequency is Frequency.DAILY:
        local = now.astimezone(CITY_TZ)
        return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)
    step = frequency.step
    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    return epoch + ((now.astimezone(UTC) - epoch) // step) * step


def read_history(
    ctx: AppContext, spec: SeriesSpec, entity_id: str, config: ForecastConfig, now: datetime
) -> tuple[list[str], list[tuple[datetime, float]]] | None:
    """The entity's types and its aggregated values per step (at the step's start); None when it is gone."""
    frequency = Frequency(spec.frequency)
    needed = config.training_window(frequency) + (config.origins - 1) * config.step_between_origins()
    slack = timedelta(days=SLACK_DAYS) // frequency.step
    end = _window_end(now, frequency)
    start = end - (needed + config.horizon + slack) * frequency.step
    attr_iri = expand(spec.attr)
    query = temporal.TemporalQuery(
        entities=context.EntityQuery(ids=[entity_id], limit=1),
        attrs={attr_iri},
        timerel="between",
        time_at=start,
        end_time_at=end,
        aggr_methods=[spec.aggregation],
        aggr_period=frequency.step,
    )
    try:
        found = temporal.temporal_entities(ctx, SYSTEM, spec.tenant, query).entities
    except NgsiError:
        return None
    if not found:
        return None
    item = found[0]
    points = []
    for value, begin, _finish in item.get("aggregates", {}).get(attr_iri, {}).get(spec.aggregation, []):
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            points.append((datetime.fromisoformat(begin).astimezone(UTC), float(value)))
    points.sort()
    return list(item.get("type", ())), points


def regular_series(points: Sequence[tuple[datetime, float]], frequency: Frequency) -> TimeSeries | None:
    """The points as a regular series after the last gap longer than MAX_GAP steps (None without points)."""
    if not points:
        return None
    step = frequency.step
    first = points[0][0]
    grid = np.full((points[-1][0] - first) // step + 1, np.nan)
    for at, value in points:
        grid[(at - first) // step] = value
    missing = np.isnan(grid)
    begin, run = 0, 0
    for i, gap in enumerate(missing):
        run = run + 1 if gap else 0
        if run > MAX_GAP:
            begin = i + 1
    timestamps = [first + i * step for i in range(begin, grid.size)]
    values = [None if math.isnan(v) else float(v) for v in grid[begin:]]
    return TimeSeries.from_points(timestamps, values, frequency, max_gap=MAX_GAP)


def _targets(ctx: AppContext, limit: int) -> list[_Target]:
    """The series least recently examined first (never examined ones before all others)."""
    with ctx.read() as session:
        rows = session.execute(
            select(ForecastSeries, SeriesDeclaration.definition)
            .join(SeriesDeclaration, SeriesDeclaration.id == ForecastSeries.declaration_id)
            .order_by(ForecastSeries.run_at.is_not(None), ForecastSeries.run_at, ForecastSeries.id)
            .limit(limit)
        )
        return [
            _Target(
                id=row.id,
                entity_id=row.entity_id,
                spec=SeriesSpec.model_validate(definition),
                choice=ModelChoice.from_dict(row.choice) if row.choice else None,
                has_forecast=row.forecast is not None,
            )
            for row, definition in rows
        ]


def _mark(ctx: AppContext, series_id: int, now: datetime, status: str, **fields: Any) -> None:
    """Record the outcome of a run that stored no forecast."""
    with ctx.uow(SYSTEM, "warning.forecast.run") as uow:
        row = uow.session.get(ForecastSeries, series_id)
        if row is not None:
            row.status, row.run_at = status, now
            for name, value in fields.items():
                setattr(row, name, value)


def _store(
    ctx: AppContext,
    conf: WarningSettings,
    target: _Target,
    result: ForecastResult,
    decision: RefitDecision,
    points: int,
    now: datetime,
) -> None:
    """Store a series' new choice, report and forecast, keep it in the history and trim the history."""
    data = result.forecast.to_dict()
    data.pop("model", None)
    data_end = result.choice.data_end
    with ctx.uow(SYSTEM, "warning.forecast.run") as uow:
        session = uow.session
        row = session.get(ForecastSeries, target.id)
        if row is None:  # removed meanwhile
            return
        row.status, row.detail, row.decision, row.points = "ok", None, decision.value, points
        row.choice, row.report = result.choice.to_dict(), result.report.to_dict()
        row.forecast = {"model": result.forecast.model, **data}
        row.data_end, row.issued_at, row.run_at = data_end, now, now
        session.add(
            ForecastIssue(
                series_id=row.id, issued_at=now, data_end=data_end, model=result.forecast.model,
                forecast=row.forecast,
            )
        )  # fmt: skip
        session.flush()
        stale = session.scalars(
            select(ForecastIssue.id)
            .where(ForecastIssue.series_id == row.id)
            .order_by(ForecastIssue.issued_at.desc(), ForecastIssue.id.desc())
            .offset(conf.forecast_history)
        ).all()
        for issue_id in stale:
            issue = session.get(ForecastIssue, issue_id)
            if issue is not None:
                session.delete(issue)


def _rule_points(result: ForecastResult) -> list[tuple[datetime, float, float, float]]:
    """(time, mean, lower and upper 80 % bound) of every forecast step, for the forecast rules."""
    found = result.forecast
    band = next((i for i in found.intervals if math.isclose(i.level, 0.8)), None)
    lower = band.lower if band is not None else found.mean
    upper = band.upper if band is not None else found.mean
    return list(zip(found.timestamps, found.mean, lower, upper, strict=True))


def run_one(ctx: AppContext, conf: WarningSettings, target: _Target, now: datetime) -> str:
    """Examine one series: read, decide, and forecast and store when due; return its status."""
    spec = target.spec
    frequency = Frequency(spec.frequency)
    config = forecast_config(conf, spec)
    read = read_history(ctx, spec, target.entity_id, config, now)
    if read is None:
        _mark(ctx, target.id, now, "failed", detail=N_("The entity no longer exists."))
        return "failed"
    types, points = read
    series = regular_series(points, frequency)
    needed = config.min_length(frequency)
    if series is None or len(series) < needed:
        have = 0 if series is None else len(series)
        detail = N_("Not enough history: {have} of {needed} points.").format(have=have, needed=needed)
        _mark(ctx, target.id, now, "short", detail=detail, points=have, decision=None)
        return "short"
    previous = target.choice
    if previous is None or previous.frequency is not frequency:
        decision = RefitDecision.RESELECT
    else:
        decision = refit_due(previous, now, series.end, _policy(conf))
    if decision is RefitDecision.NONE and target.has_forecast:
        _mark(ctx, target.id, now, "ok", decision=decision.value)
        return "skipped"
    if decision is RefitDecision.RESELECT or previous is None:
        result = forecast(series, config, now)
    else:
        result = refit(series, previous, config, now)
    _store(ctx, conf, target, result, decision, len(series), now)
    try:  # the forecast is stored; warnings not written now are written at the evaluator's next tick
        services.forecast_stored(
            ctx, spec.tenant, target.entity_id, types, expand(spec.attr), _rule_points(result), now
        )
    except Exception:
        log.exception("evaluating the forecast rules on series %s failed", target.id)
    return "ok"


def _lock(ctx: AppContext) -> threading.Lock:
    """The lock that keeps two runs of this process apart."""
    lock: threading.Lock = ctx.extensions.setdefault(LOCK, threading.Lock())
    return lock


def run(ctx: AppContext, now: datetime | None = None) -> RunSummary:
    """One run of the job: sync the declared series, then examine the least recently examined ones."""
    started = time.perf_counter()
    now = now or utcnow()
    conf = services.settings(ctx)
    counts = {"ok": 0, "skipped": 0, "short": 0, "failed": 0}
    with _lock(ctx):
        sync_declared(ctx)
        sync_series(ctx)
        targets = _targets(ctx, conf.forecast_max_series)
        stop = ctx.extensions.get(STOP)
        for target in targets:
            if isinstance(stop, threading.Event) and stop.is_set():
                break
            try:
                outcome = run_one(ctx, conf, target, now)
            except SeriesTooShortError as exc:
                outcome = "short"
                _mark(ctx, target.id, now, "short", detail=str(exc)[:2000], decision=None)
            except ForecastInputError as exc:  # data the library refuses: no error noise in the log
                outcome = "failed"
                _mark(ctx, target.id, now, "failed", detail=str(exc)[:2000])
            except Exception as exc:
                outcome = "failed"
                log.exception("forecasting series %s failed", target.id)
                _mark(ctx, target.id, now, "failed", detail=f"{type(exc).__name__}: {exc}"[:2000])
            counts[outcome] += 1
    return RunSummary(
        examined=sum(counts.values()), forecast=counts["ok"], skipped=counts["skipped"], short=counts["short"],
        failed=counts["failed"], seconds=round(time.perf_counter() - started, 3),
    )  # fmt: skip


async def run_forever(ctx: AppContext) -> None:
    """Run the job soon after start, then every `forecast_seconds`, in a worker thread."""
    conf = services.settings(ctx)
    stop = ctx.extensions[STOP] = threading.Event()
    try:
        await asyncio.sleep(conf.forecast_first_delay_seconds)
        while True:
            try:
                summary = await asyncio.to_thread(run, ctx)
                log.info("forecasts: %s", summary.model_dump())
            except Exception:
                log.exception("the forecasting job failed; trying again at the next run")
            await asyncio.sleep(conf.forecast_seconds)
    finally:
        stop.set()
