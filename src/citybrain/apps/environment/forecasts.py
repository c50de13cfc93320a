"""Official heavy-pollution levels (重污染天气预警) from the daily-AQI forecasts in the context broker.

The environment monitoring centre publishes its forecast of the coming days' daily AQI as an
AirQualityForecast entity (`dailyAQI`: day 1 first, `issuedAt`, `validFrom`, `source`). Each new
bulletin is graded by `heavy_pollution.next_state` (standards notes §8.2) with the app's policy, and
the result is written back to the same entity:

- `heavyPollutionLevel`: 0 none, 1 blue, 2 yellow, 3 orange, 4 red (the warning app's ranks);
- `heavyPollutionReason`: why, as a LanguageProperty (zh-CN and English);
- `heavyPollutionState`: the bulletin judged last and the run of lower forecasts a step down waits for.

The warning app's rule on `heavyPollutionLevel` (this app's warnings.py) raises, upgrades and lifts the
warning itself. A bulletin is judged once: the state names it, so a repeated event changes nothing, and
the app's own writes (which change none of the bulletin's attributes) are not judged again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from citybrain.apps.context import services as context
from citybrain.apps.context.jsonld import Context
from citybrain.apps.environment import aqi
from citybrain.apps.environment import heavy_pollution as hp
from citybrain.apps.environment.aqi import N_
from citybrain.apps.environment.settings import EnvironmentSettings
from citybrain.apps.warning import places
from citybrain.apps.warning import services as warning
from citybrain.apps.warning.schemas import WarningRead
from citybrain.sdk import SYSTEM, Actor, AppContext, ProblemError

log = logging.getLogger(__name__)

READ = "environment.air.read"
RULE_CODE = "heavy-pollution"
DAILY = "dailyAQI"
ISSUED = "issuedAt"
VALID_FROM = "validFrom"
LEVEL = "heavyPollutionLevel"
REASON = "heavyPollutionReason"
STATE = "heavyPollutionState"
# The attributes whose change is a new bulletin (the level, reason and state are this app's own).
BULLETIN_ATTRS = (DAILY, ISSUED)
LEVEL_OF_RANK: dict[int, hp.Level] = {level.rank: level for level in hp.Level}
NO_LEVEL = N_("The forecast meets no heavy-pollution warning level.")
LOWERED = N_("Lowered after {count} consecutive forecasts below the previous level.")
# The language tags of the reason (zh-CN first) and the catalogue locale of each.
LANGUAGES = (("zh-CN", "zh_CN"), ("en", "en"))


def settings(ctx: AppContext) -> EnvironmentSettings:
    """The environment app's settings."""
    return ctx.app_setting("environment", EnvironmentSettings)


def policy(config: EnvironmentSettings) -> hp.Policy:
    """How warnings follow the forecasts, from the settings."""
    return hp.Policy(
        scheme=config.heavy_pollution_scheme,
        merge_gap_days=config.heavy_pollution_merge_gap_days,
        hold_updates=config.heavy_pollution_hold_updates,
    )


def _term(iri: str) -> str:
    return iri.rsplit("/", 1)[-1].rsplit("#", 1)[-1]


def _instance(stored: Mapping[str, Any], term: str) -> Mapping[str, Any] | None:
    """The default instance of an attribute given by its term."""
    for iri, instances in stored.get("attrs", {}).items():
        if _term(iri) == term:
            return next((i for i in instances if "datasetId" not in i), None)
    return None


def _value(stored: Mapping[str, Any], term: str) -> Any:
    instance = _instance(stored, term)
    return None if instance is None else instance.get("value")


def _text(stored: Mapping[str, Any], term: str) -> str:
    value = _value(stored, term)
    return value if isinstance(value, str) else ""


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def bulletin_key(stored: Mapping[str, Any]) -> str | None:
    """What names a bulletin: its issuedAt, else when its dailyAQI was last written; None without a forecast."""
    daily = _instance(stored, DAILY)
    if daily is None:
        return None
    issued = _value(stored, ISSUED)
    if isinstance(issued, str) and issued:
        return issued
    modified = daily.get("modifiedAt")
    return modified if isinstance(modified, str) else None


def _rank(value: Any) -> int:
    """A stored rank (0…4); anything else reads as 0."""
    if isinstance(value, bool) or not isinstance(value, int):
        return 0
    return value if value in LEVEL_OF_RANK else 0


def stored_state(stored: Mapping[str, Any]) -> tuple[hp.WarningState, str | None]:
    """The warning state kept on a forecast entity and the bulletin it was judged from."""
    level = LEVEL_OF_RANK.get(_rank(_value(stored, LEVEL)))
    raw = _value(stored, STATE)
    state = raw if isinstance(raw, dict) else {}
    updates = state.get("lowerUpdates")
    lower = LEVEL_OF_RANK.get(_rank(state.get("lowerLevel")))
    judged = state.get("bulletin")
    try:
        kept = (
            hp.WarningState(level, updates, lower)
            if level is not None and updates
            else hp.WarningState(level)
        )
    except hp.ForecastInputError:  # a state this version cannot read: start again from the level
        kept = hp.WarningState(level)
    return kept, judged if isinstance(judged, str) else None


def _reason(decision: hp.Decision, config: EnvironmentSettings) -> tuple[str, dict[str, int]] | None:
    """The reason message of the level after a decision; None keeps the stored reason (a held level)."""
    level = decision.state.level
    if decision.action == "hold":
        return None
    if level is None:
        return NO_LEVEL, {}
    trigger = decision.trigger
    if trigger is not None and trigger.level == level:
        return trigger.message, trigger.params
    return LOWERED, {"count": config.heavy_pollution_hold_updates}


def _language_map(ctx: AppContext, message: str, params: Mapping[str, int]) -> dict[str, str]:
    """A message in every language of the reason."""
    return {tag: ctx.i18n.gettext(locale, message, **params) for tag, locale in LANGUAGES}


@dataclass(frozen=True)
class Judgement:
    """What one bulletin made of the warning level: the decision and the attributes written."""

    entity_id: str
    bulletin: str
    decision: hp.Decision
    written: tuple[str, ...]


def judge(ctx: AppContext, tenant: str, entity_id: str) -> Judgement | None:
    """Grade a forecast entity's latest bulletin (once) and write its level, reason and state where they change."""
    config = settings(ctx)
    try:
        stored = context.get_entity(ctx, SYSTEM, tenant, entity_id)
    except ProblemError:
        return None  # deleted meanwhile
    if Context().expand_type(config.forecast_type) not in stored.get("type", ()):
        return None
    key = bulletin_key(stored)
    previous, judged = stored_state(stored)
    if key is None or key == judged:
        return None
    try:
        decision = hp.next_state(previous, _value(stored, DAILY), policy(config))
    except hp.ForecastInputError as exc:
        log.warning("forecast %s (bulletin %s) cannot be graded: %s", entity_id, key, exc)
        return None
    new = decision.state
    body: dict[str, Any] = {"id": entity_id, "type": config.forecast_type}
    rank = 0 if new.level is None else new.level.rank
    if _instance(stored, LEVEL) is None or _rank(_value(stored, LEVEL)) != rank:
        body[LEVEL] = {"type": "Property", "value": rank}
    reason = _reason(decision, config)
    if reason is not None:
        texts = _language_map(ctx, *reason)
        current = _instance(stored, REASON)
        if current is None or current.get("languageMap") != texts:
            body[REASON] = {"type": "LanguageProperty", "languageMap": texts}
    body[STATE] = {
        "type": "Property",
        "value": {
            "bulletin": key,
            "lowerUpdates": new.lower_updates,
            "lowerLevel": 0 if new.lower_level is None else new.lower_level.rank,
            "forecastLevel": 0 if decision.forecast_level is None else decision.forecast_level.rank,
        },
    }
    result = context.upsert_entities(ctx, SYSTEM, tenant, [body])
    if result.errors:
        raise RuntimeError(f"the heavy-pollution level of {entity_id} could not be written: {result.errors}")
    written = tuple(term for term in body if term not in ("id", "type"))
    return Judgement(entity_id, key, decision, written)


def judge_all(ctx: AppContext, tenant: str | None = None) -> list[Judgement]:
    """Grade every forecast entity's latest bulletin not graded yet (at start: bulletins published meanwhile)."""
    config = settings(ctx)
    tenant = config.tenant if tenant is None else tenant
    query = context.EntityQuery(
        types=[Context().expand_type(config.forecast_type)], limit=config.max_stations
    )
    found = context.query_entities(ctx, SYSTEM, tenant, query).entities
    done = []
    for stored in found:
        judgement = judge(ctx, tenant, str(stored["id"]))
        if judgement is not None:
            done.append(judgement)
    return done


# --- what the pages show ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ForecastDay:
    """One forecast day: its date (China time) and daily AQI with the AQI level."""

    day: int
    on: date | None
    value: int | None
    level: aqi.Level | None


@dataclass(frozen=True)
class Forecast:
    """An area's latest daily-AQI forecast and the official heavy-pollution level graded from it."""

    entity_id: str
    name: str
    area_code: str
    area_name: str
    source: str
    issued_at: datetime | None
    valid_from: datetime | None
    days: tuple[ForecastDay, ...]
    level: hp.Level | None
    reason: Mapping[str, str]  # by language tag (zh-CN, en)


def _days(values: Any, valid_from: datetime | None, zone: ZoneInfo) -> tuple[ForecastDay, ...]:
    """The forecast days of a stored dailyAQI list; values that are no AQI show as unknown."""
    if not isinstance(values, list):
        return ()
    days = []
    first = valid_from.astimezone(zone).date() if valid_from is not None else None
    for i, value in enumerate(values[:15]):
        known = (
            value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 500 else None
        )
        days.append(
            ForecastDay(
                day=i + 1,
                on=None if first is None else first + timedelta(days=i),
                value=known,
                level=None if known is None else aqi.level_of(known),
            )
        )
    return tuple(days)


def _area_name(ctx: AppContext, code: str) -> str:
    """The Chinese name of an area by its division code (绵阳市 for 510700), '' when unknown."""
    found = places.division(ctx, code) if code else None
    return found.name_zh if found is not None else ""


def forecasts(ctx: AppContext, actor: Actor) -> list[Forecast]:
    """The latest forecast of every area (the city first), with its official heavy-pollution level."""
    actor.require(READ)
    config = settings(ctx)
    zone = ZoneInfo(ctx.settings.timezone)
    query = context.EntityQuery(
        types=[Context().expand_type(config.forecast_type)], limit=config.max_stations
    )
    found = context.query_entities(ctx, SYSTEM, config.tenant, query).entities
    result = []
    for stored in found:
        valid_from = _moment(_value(stored, VALID_FROM))
        reason = _instance(stored, REASON)
        texts = reason.get("languageMap") if reason is not None else None
        result.append(
            Forecast(
                entity_id=str(stored["id"]),
                name=_text(stored, "name") or str(stored["id"]),
                area_code=_text(stored, "areaCode"),
                area_name=_text(stored, "areaServed") or _area_name(ctx, _text(stored, "areaCode")),
                source=_text(stored, "source"),
                issued_at=_moment(_value(stored, ISSUED)),
                valid_from=valid_from,
                days=_days(_value(stored, DAILY), valid_from, zone),
                level=LEVEL_OF_RANK.get(_rank(_value(stored, LEVEL))),
                reason={k: v for k, v in texts.items() if isinstance(v, str)}
                if isinstance(texts, dict)
                else {},
            )
        )
    # the city's forecast (a six-digit code ending in 00) first, then the districts by code
    result.sort(key=lambda f: (not f.area_code.endswith("00"), f.area_code, f.entity_id))
    return result


def active_warnings(ctx: AppContext, actor: Actor) -> list[WarningRead]:
    """The heavy-pollution warnings in force (public information: whoever sees the air quality sees them)."""
    actor.require(READ)
    page = warning.list_warnings(ctx, SYSTEM, status="active", rule=RULE_CODE, limit=100)
    return sorted(page.items, key=lambda w: (-w.raised_at.timestamp(), w.id))


@dataclass(frozen=True)
class Outlook:
    """What the overview shows: the forecasts, the warnings in force with their forecast, the level scheme."""

    forecasts: tuple[Forecast, ...]
    warnings: tuple[tuple[WarningRead, Forecast | None], ...]
    scheme: str


def outlook(ctx: AppContext, actor: Actor) -> Outlook:
    """The latest forecasts and the heavy-pollution warnings in force, each with the forecast it comes from."""
    found = forecasts(ctx, actor)
    by_entity = {f.entity_id: f for f in found}
    warnings = tuple((w, by_entity.get(w.entity_id)) for w in active_warnings(ctx, actor))
    return Outlook(tuple(found), warnings, settings(ctx).heavy_pollution_scheme)
