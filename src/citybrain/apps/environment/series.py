"""The platform's hourly pollutant forecasts of each station: the series declared, and what the pages show.

The environment app declares one series per station and pollutant (PM2.5, PM10, O3) to the warning
app's forecasting job: hourly means, the next 24 hours. The AQI itself is computed, not stored, so the
pollutants that lead it are forecast instead. The job chooses each series' model by a rolling-origin
backtest and stores the forecast with its conformal 80 % and 95 % intervals; this module reads them
back through the warning app's services for the station and overview pages and the API.

A forecast step at time T is the mean of the hour [T, T + 1 h); the pages label hours by their end
(HJ 633's real-time report), so a step is shown at T + 1 h.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, cast

from citybrain.apps.environment import services
from citybrain.apps.environment.settings import EnvironmentSettings
from citybrain.apps.warning import forecasts as wf
from citybrain.apps.warning import services as warning
from citybrain.apps.warning.forecasting import Frequency
from citybrain.apps.warning.schemas import SeriesDetail, SeriesRead, SeriesSpec
from citybrain.sdk import SYSTEM, Actor, AppContext

READ = "environment.air.read"
HOUR = timedelta(hours=1)
PREFIX = "environment-"
# (attribute, name zh, name en): the pollutants forecast, the page's order.
POLLUTANTS: tuple[tuple[str, str, str], ...] = (
    ("pm25", "PM2.5小时浓度预测", "Hourly PM2.5 forecast"),
    ("pm10", "PM10小时浓度预测", "Hourly PM10 forecast"),
    ("o3", "臭氧小时浓度预测", "Hourly ozone forecast"),
)
HORIZON = 24
# missing (no series yet), pending (not examined yet), ok, short (too little history) or failed
Status = Literal["missing", "pending", "ok", "short", "failed"]
BAND = 0.8  # the interval the pages draw
RUN_SECONDS = 60.0  # about how long the job's first run takes
# The stations' type as the app's settings name it by default (a deployment naming another type declares
# its own series through the forecast API).
STATION_TYPE = str(EnvironmentSettings.model_fields["station_type"].default)


def code_of(attr: str) -> str:
    """The code of the declared series of an attribute."""
    return f"{PREFIX}{attr}"


FORECASTS = [
    SeriesSpec(
        code=code_of(attr),
        name_zh=name_zh,
        name_en=name_en,
        entity_type=STATION_TYPE,
        attr=attr,
        frequency="hourly",
        horizon=HORIZON,
        aggregation="avg",
    )
    for attr, name_zh, name_en in POLLUTANTS
]


@dataclass(frozen=True)
class StationForecast:
    """One pollutant's forecast of one station, or why there is none yet."""

    attr: str
    status: Status
    detail: str | None = None
    points: int | None = None  # hours of history the job found
    needed: int | None = None  # hours of history a forecast needs
    model: str | None = None
    issued_at: datetime | None = None
    data_end: datetime | None = None
    hours: tuple[datetime, ...] = ()  # the end of each forecast hour (UTC)
    mean: tuple[float, ...] = ()
    lower: tuple[float, ...] = ()  # the 80 % interval
    upper: tuple[float, ...] = ()
    mae: tuple[float, ...] = ()  # the chosen model's backtest MAE per step (1 h … 24 h ahead)

    @property
    def ready(self) -> bool:
        """Whether a forecast is stored."""
        return bool(self.mean)

    @property
    def peak(self) -> tuple[datetime, float] | None:
        """The hour with the highest forecast mean, and that mean."""
        if not self.mean:
            return None
        i = max(range(len(self.mean)), key=lambda k: self.mean[k])
        return self.hours[i], self.mean[i]


def first_forecast_minutes(ctx: AppContext) -> int:
    """About how many minutes after start the first forecasts are stored: the job's first delay and its run."""
    # A run over the demo's 36 series (three models, five backtest origins each) takes about a minute.
    return math.ceil((warning.settings(ctx).forecast_first_delay_seconds + RUN_SECONDS) / 60)


def _needed(ctx: AppContext, spec: SeriesSpec) -> int:
    """The hours of history a series needs before it is forecast."""
    config = wf.forecast_config(warning.settings(ctx), spec)
    return config.min_length(Frequency(spec.frequency))


def _numbers(values: Any) -> tuple[float, ...]:
    if not isinstance(values, list):
        return ()
    return tuple(
        float(v) if isinstance(v, int | float) and not isinstance(v, bool) else math.nan for v in values
    )


def _mae(report: Mapping[str, Any] | None, model: str | None) -> tuple[float, ...]:
    """The backtest MAE per step of a model from a stored report."""
    if not report or not model:
        return ()
    found = report.get("models", {}).get(model, {})
    steps = found.get("by_step", []) if isinstance(found, dict) else []
    return tuple(
        float(s["mae"]) for s in steps if isinstance(s, dict) and isinstance(s.get("mae"), int | float)
    )


def _forecast(
    ctx: AppContext, attr: str, row: SeriesRead | None, detail: SeriesDetail | None
) -> StationForecast:
    """What the pages show of a stored series."""
    spec = next(s for s in FORECASTS if s.attr == attr)
    if row is None:
        return StationForecast(attr, "missing", needed=_needed(ctx, spec))
    status = cast(Status, row.status)
    found = detail.forecast if detail is not None else None
    if found is None:
        return StationForecast(attr, status, detail=row.detail, points=row.points, needed=_needed(ctx, spec))
    band = next((i for i in found.intervals if math.isclose(i.level, BAND)), None)
    return StationForecast(
        attr,
        status,
        detail=row.detail,
        points=row.points,
        needed=_needed(ctx, spec),
        model=found.model,
        issued_at=found.issued_at,
        data_end=found.data_end,
        hours=tuple(t + HOUR for t in found.timestamps),
        mean=tuple(found.mean),
        lower=tuple(band.lower) if band is not None else tuple(found.mean),
        upper=tuple(band.upper) if band is not None else tuple(found.mean),
        mae=_mae(detail.report if detail is not None else None, found.model),
    )


def _rows(ctx: AppContext, attr: str, limit: int) -> dict[str, SeriesRead]:
    """The series of an attribute's declaration, by entity id."""
    rows: dict[str, SeriesRead] = {}
    offset = 0
    while offset < limit:
        page = wf.list_series(ctx, SYSTEM, declaration=code_of(attr), limit=min(500, limit), offset=offset)
        rows.update((row.entity_id, row) for row in page.items)
        offset += len(page.items)
        if not page.items or offset >= page.total:
            break
    return rows


def station_forecasts(ctx: AppContext, actor: Actor, entity_id: str) -> list[StationForecast]:
    """A station's forecast of every declared pollutant (whoever sees the air quality sees them; 404: no station)."""
    actor.require(READ)
    services.station_entity(ctx, entity_id)
    limit = warning.settings(ctx).forecast_max_entities
    found = []
    for attr, _zh, _en in POLLUTANTS:
        row = _rows(ctx, attr, limit).get(entity_id)
        detail = wf.get_series(ctx, SYSTEM, row.id) if row is not None and row.issued_at else None
        found.append(_forecast(ctx, attr, row, detail))
    return found


def peaks(
    ctx: AppContext, actor: Actor, station_ids: Sequence[str], attr: str = "pm25"
) -> dict[str, StationForecast]:
    """The stored forecasts of one pollutant for the given stations, by station (those without one left out)."""
    actor.require(READ)
    wanted = set(station_ids)
    rows = _rows(ctx, attr, warning.settings(ctx).forecast_max_entities)
    result = {}
    for entity_id, row in rows.items():
        if entity_id in wanted and row.issued_at is not None:
            result[entity_id] = _forecast(ctx, attr, row, wf.get_series(ctx, SYSTEM, row.id))
    return result
