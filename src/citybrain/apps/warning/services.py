"""Warning services: rules (validated against the context broker, versioned), warnings and their life-cycle.

The evaluator (started by the app's lifespan) calls `apply_transitions` and `record_failures`; the API
calls the rest. Every write goes through a unit of work, so it is audited in the ledger, and warnings'
events go out through the outbox.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from shapely.geometry import shape
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from citybrain.apps.context import entities as ent
from citybrain.apps.context import services as context
from citybrain.apps.context.errors import NgsiError
from citybrain.apps.context.jsonld import Context
from citybrain.apps.context.query import QueryError, parse_q
from citybrain.apps.geo import services as geo
from citybrain.apps.identity import services as identity
from citybrain.apps.warning import cap, places
from citybrain.apps.warning import evaluator as ev
from citybrain.apps.warning.events import WarningChanged, WarningLifted, WarningRaised
from citybrain.apps.warning.models import (
    Clock,
    ForecastIssue,
    ForecastSeries,
    IssuedWarning,
    QualityFlag,
    Rule,
    RuleVersion,
    SeriesDeclaration,
    WarningStep,
)
from citybrain.apps.warning.schemas import (
    LEVEL_COLORS,
    LEVEL_NAMES_ZH,
    LEVEL_OF_RANK,
    DryRunFiring,
    DryRunResult,
    HealthWatch,
    Page,
    QualityFlagRead,
    RuleRead,
    RuleSpec,
    RuleUpdate,
    RuleVersionRead,
    SeriesSpec,
    StepRead,
    WarningDetail,
    WarningRead,
)
from citybrain.apps.warning.settings import WarningSettings
from citybrain.sdk import (
    ALL,
    SYSTEM,
    Actor,
    AllDepartments,
    AppContext,
    Conflict,
    Forbidden,
    NotFound,
    Scope,
    ValidationFailed,
    utcnow,
)

RULE_READ, RULE_WRITE = "warning.rule.read", "warning.rule.write"
WARNING_READ, WARNING_ACK, WARNING_LIFT = (
    "warning.warning.read",
    "warning.warning.acknowledge",
    "warning.warning.lift",
)
# Read every department's warnings (the operations centre's city-wide view).
WARNING_READ_ALL = "warning.warning.read_all"
RUNTIME = "warning.runtime"
# How long storing a forecast waits for the forecast rules' warnings to be written (seconds).
FORECAST_WAIT = 30.0
# How many entities of a type the validation samples to see whether an attribute holds numbers.
SAMPLE = 50
_JSONLD = Context()


def N_(message: str) -> str:  # noqa: N802
    """Mark a message for the catalogue; it is translated where it is shown."""
    return message


def expand(term: str) -> str:
    """The IRI of a type or attribute name of the core @context."""
    return _JSONLD.expand(term)


def compact(iri: str) -> str:
    """The short name of an attribute or type IRI in the core @context (the IRI where it has none)."""
    return _JSONLD.compact(iri)


def settings(ctx: AppContext) -> WarningSettings:
    """The app's settings."""
    return ctx.app_setting("warning", WarningSettings)


def _runtime(ctx: AppContext) -> Any:
    """The running evaluator of this process, if the lifespan started one."""
    return ctx.extensions.get(RUNTIME)


# --- declared rules -------------------------------------------------------------------------------


def declared_rules(ctx: AppContext) -> list[tuple[str, RuleSpec]]:
    """The rules the enabled apps declare in their warnings.py, with the declaring app's label."""
    found: list[tuple[str, RuleSpec]] = []
    seen: dict[str, str] = {}
    for spec in ctx.apps:
        module = spec.module("warnings")
        for item in getattr(module, "WARNING_RULES", ()) if module is not None else ():
            if not isinstance(item, RuleSpec):
                raise TypeError(
                    f"app {spec.label!r} declares a warning rule that is not a RuleSpec: {item!r}"
                )
            if item.code in seen:
                raise ValueError(
                    f"warning rule {item.code!r} is declared by {seen[item.code]!r} and {spec.label!r}"
                )
            seen[item.code] = spec.label
            found.append((spec.label, item))
    return found


def declared_forecasts(ctx: AppContext) -> list[tuple[str, SeriesSpec]]:
    """The forecast series the enabled apps declare in their warnings.py (FORECASTS), with the app's label."""
    found: list[tuple[str, SeriesSpec]] = []
    seen: dict[str, str] = {}
    for spec in ctx.apps:
        module = spec.module("warnings")
        for item in getattr(module, "FORECASTS", ()) if module is not None else ():
            if not isinstance(item, SeriesSpec):
                raise TypeError(f"app {spec.label!r} declares a forecast that is not a SeriesSpec: {item!r}")
            if item.code in seen:
                raise ValueError(
                    f"forecast {item.code!r} is declared by {seen[item.code]!r} and {spec.label!r}"
                )
            seen[item.code] = spec.label
            found.append((spec.label, item))
    return found


def _watch_of(label: str, index: int, item: object) -> HealthWatch:
    """A declared health watch: a HealthWatch, or plain data (a dict of builtins) checked as one.

    Plain data lets an app that does not require the warning app (iot) declare watches without importing it.
    """
    if isinstance(item, HealthWatch):
        return item
    if not isinstance(item, Mapping):
        raise TypeError(
            f"app {label!r} declares HEALTH_WATCHES[{index}] that is neither a HealthWatch nor a dict: {item!r}"
        )
    try:
        return HealthWatch.model_validate(dict(item))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'watch'}: {e['msg']}" for e in exc.errors()
        )
        raise ValueError(
            f"app {label!r} declares a bad health watch HEALTH_WATCHES[{index}]: {problems}"
        ) from None


def declared_watches(ctx: AppContext) -> list[tuple[str, HealthWatch]]:
    """The device-health watches the enabled apps declare in their warnings.py (HEALTH_WATCHES), checked."""
    found: list[tuple[str, HealthWatch]] = []
    for spec in ctx.apps:
        module = spec.module("warnings")
        declared = getattr(module, "HEALTH_WATCHES", ()) if module is not None else ()
        if not isinstance(declared, list | tuple):
            raise TypeError(f"app {spec.label!r} declares HEALTH_WATCHES that is not a list: {declared!r}")
        for index, item in enumerate(declared):
            found.append((spec.label, _watch_of(spec.label, index, item)))
    return found


def declared_specs(ctx: AppContext) -> list[tuple[str, RuleSpec]]:
    """The declared rules and the rules of the declared health watches, codes unique among them."""
    found = declared_rules(ctx)
    seen = {spec.code: label for label, spec in found}
    for label, watch in declared_watches(ctx):
        spec = watch.rule()
        if spec.code in seen:
            raise ValueError(f"warning rule {spec.code!r} is declared by {seen[spec.code]!r} and {label!r}")
        seen[spec.code] = label
        found.append((label, spec))
    return found


def forecast_attrs(ctx: AppContext, tenant: str, type_iri: str) -> set[str]:
    """The attributes (IRIs) of an entity type that declared or stored forecast series cover."""
    found = {
        expand(item.attr)
        for _label, item in declared_forecasts(ctx)
        if item.tenant == tenant and expand(item.entity_type) == type_iri
    }
    with ctx.read() as session:
        found.update(
            session.scalars(
                select(SeriesDeclaration.attr).where(
                    SeriesDeclaration.tenant == tenant, SeriesDeclaration.entity_type == type_iri
                )
            )
        )
    return found


def sync_declared(ctx: AppContext) -> int:
    """Store the declared rules (and health watches) not stored yet (operators may edit or disable them later)."""
    declared = declared_specs(ctx)
    if not declared:
        return 0
    with ctx.read() as session:
        have = set(session.scalars(select(Rule.code)))
    added = 0
    for label, spec in declared:
        if spec.code in have:
            continue
        try:
            with ctx.uow(SYSTEM, "warning.rule.declare") as uow:
                _insert_rule(uow.session, spec, origin=label, by=SYSTEM.ref)
        except IntegrityError:  # another process of the platform stored it at the same moment
            continue
        added += 1
    return added


# --- validation -----------------------------------------------------------------------------------


def _field_error(loc: Sequence[str | int], detail: str, **params: Any) -> ValidationFailed:
    """A 422 naming the field at fault."""
    where = ".".join(str(p) for p in loc)
    return ValidationFailed(
        detail,
        extra={
            "errors": [
                {
                    "loc": ["body", *(str(p) for p in loc)],
                    "msg": detail.format(field=where, **params),
                    "type": "value_error",
                }
            ]
        },
        field=where,
        **params,
    )


def _declared_attrs(ctx: AppContext) -> dict[str, set[str]]:
    """The attributes of each entity type that declared rules watch (known even before data arrives)."""
    found: dict[str, set[str]] = {}
    for _label, spec in declared_specs(ctx):
        attrs = found.setdefault(expand(spec.entity_type), set())
        attrs.update(expand(cond.attr) for cond in spec.conditions)
        if spec.forecast is not None:
            attrs.add(expand(spec.forecast.attr))
        if spec.health is not None:
            attrs.update(expand(attr) for attr in spec.health.attrs)
    return found


def _type_exists(ctx: AppContext, tenant: str, type_iri: str) -> bool:
    """Whether the context broker holds an entity of the type, or a declared rule watches it."""
    if type_iri in _declared_attrs(ctx):
        return True
    try:
        query = context.EntityQuery(types=[type_iri], limit=1)
        return bool(context.query_entities(ctx, SYSTEM, tenant, query).entities)
    except NgsiError:
        return False


def _carriers(ctx: AppContext, tenant: str, type_iri: str, attr: str) -> list[dict[str, Any]]:
    """Some entities of the type that carry the attribute (an indexed existence query)."""
    try:
        query = context.EntityQuery(types=[type_iri], q=parse_q(attr, _JSONLD.expand), limit=SAMPLE)
        return context.query_entities(ctx, SYSTEM, tenant, query).entities
    except (NgsiError, QueryError):
        return []


def _holds_numbers(carriers: list[dict[str, Any]], attr_iri: str) -> bool:
    """Whether a sampled entity holds a number in the attribute (True when none holds a value yet)."""
    seen = False
    for stored in carriers:
        for instance in stored.get("attrs", {}).get(attr_iri, ()):
            value = instance.get("value")
            if isinstance(value, int | float) and not isinstance(value, bool):
                return True
            seen = True
    return not seen


def validate(ctx: AppContext, spec: RuleSpec) -> None:
    """Check a rule against what the city holds: entity types, attributes, numbers, the scope's target."""
    declared = _declared_attrs(ctx)
    type_iri = expand(spec.entity_type)
    if not _type_exists(ctx, spec.tenant, type_iri):
        raise _field_error(
            ["entity_type"], N_("Unknown entity type {name} ({field})."), name=spec.entity_type
        )
    if spec.scope.kind == "district" and geo.district(ctx, spec.scope.district or "") is None:
        raise _field_error(
            ["scope", "district"], N_("Unknown district {name} ({field})."), name=spec.scope.district
        )
    if spec.scope.kind == "entity":
        _check_entity(ctx, spec.tenant, spec.scope.entity_id or "", type_iri, ["scope", "entity_id"])
    for i, cond in enumerate(spec.conditions):
        cond_type = expand(cond.entity_type) if cond.entity_type else type_iri
        if cond_type != type_iri and not _type_exists(ctx, spec.tenant, cond_type):
            raise _field_error(
                ["conditions", i, "entity_type"],
                N_("Unknown entity type {name} ({field})."),
                name=cond.entity_type,
            )
        attr_iri = expand(cond.attr)
        carriers = _carriers(ctx, spec.tenant, cond_type, cond.attr)
        if not carriers and attr_iri not in declared.get(cond_type, ()):
            raise _field_error(
                ["conditions", i, "attr"], N_("Entity type {type} has no attribute {name} ({field})."),
                type=spec.entity_type, name=cond.attr,
            )  # fmt: skip
        if spec.kind != "absence" and not _holds_numbers(carriers, attr_iri):
            raise _field_error(
                ["conditions", i, "attr"],
                N_("Attribute {name} does not hold numbers ({field})."),
                name=cond.attr,
            )
        if cond.entity_id:
            _check_entity(ctx, spec.tenant, cond.entity_id, cond_type, ["conditions", i, "entity_id"])
    for i, attr in enumerate(spec.health.attrs if spec.health is not None else ()):
        carriers = _carriers(ctx, spec.tenant, type_iri, attr)
        if not carriers and expand(attr) not in declared.get(type_iri, ()):
            raise _field_error(
                ["health", "attrs", i], N_("Entity type {type} has no attribute {name} ({field})."),
                type=spec.entity_type, name=attr,
            )  # fmt: skip
        if not _holds_numbers(carriers, expand(attr)):
            raise _field_error(
                ["health", "attrs", i], N_("Attribute {name} does not hold numbers ({field})."), name=attr
            )
    if spec.forecast is not None:  # a forecast rule: a forecast series' attribute, or one holding numbers
        attr_iri = expand(spec.forecast.attr)
        if attr_iri not in forecast_attrs(ctx, spec.tenant, type_iri):
            carriers = _carriers(ctx, spec.tenant, type_iri, spec.forecast.attr)
            if not carriers:
                raise _field_error(
                    ["forecast", "attr"], N_("Entity type {type} has no attribute {name} ({field})."),
                    type=spec.entity_type, name=spec.forecast.attr,
                )  # fmt: skip
            if not _holds_numbers(carriers, attr_iri):
                raise _field_error(
                    ["forecast", "attr"],
                    N_("Attribute {name} does not hold numbers ({field})."),
                    name=spec.forecast.attr,
                )


def _check_entity(ctx: AppContext, tenant: str, entity_id: str, type_iri: str, loc: list[str | int]) -> None:
    """The entity exists and has the type."""
    try:
        stored = context.get_entity(ctx, SYSTEM, tenant, entity_id)
    except NgsiError:
        raise _field_error(loc, N_("Unknown entity {name} ({field})."), name=entity_id) from None
    if type_iri not in stored.get("type", ()):
        raise _field_error(
            loc, N_("Entity {name} is not of the rule's entity type ({field})."), name=entity_id
        )


# --- rules ----------------------------------------------------------------------------------------


def _rule_read(row: Rule) -> RuleRead:
    return RuleRead.model_validate(row, from_attributes=True)


def _insert_rule(
    session: Session, spec: RuleSpec, *, origin: str, by: str, department_id: int | None = None
) -> Rule:
    definition = spec.model_dump(mode="json")
    row = Rule(
        code=spec.code, name_zh=spec.name_zh, name_en=spec.name_en, kind=spec.kind,
        entity_type=spec.entity_type, definition=definition, enabled=True, version=1, origin=origin,
        department_id=department_id,
    )  # fmt: skip
    session.add(row)
    session.flush()
    session.add(
        RuleVersion(rule_id=row.id, version=1, definition=definition, changed_by=by, changed_at=utcnow())
    )
    return row


def department_ids(ctx: AppContext) -> dict[str, int]:
    """The identity app's department ids by code."""
    return {d.code: d.id for d in identity.list_departments(ctx, SYSTEM)}


def _rule_department(ctx: AppContext, spec: RuleSpec) -> int | None:
    """The id of the department a rule names (422 for an unknown one); None when it names none."""
    if spec.department is None:
        return None
    found = department_ids(ctx).get(spec.department)
    if found is None:
        raise _field_error(["department"], N_("Unknown department {name} ({field})."), name=spec.department)
    return found


def create_rule(ctx: AppContext, actor: Actor, spec: RuleSpec) -> RuleRead:
    """Create a rule (validated against the context broker) and start evaluating it."""
    # The rule, and so its warnings, belongs to the department it names, else to the creator's department.
    actor.require(RULE_WRITE)
    validate(ctx, spec)
    department = _rule_department(ctx, spec)
    if department is None:
        department = actor.department_id
    with ctx.uow(actor, "warning.rule.create") as uow:
        if uow.session.scalar(select(Rule.id).where(Rule.code == spec.code)) is not None:
            raise Conflict("A rule with the code {code} exists already.", code=spec.code)
        row = _insert_rule(uow.session, spec, origin="operator", by=actor.ref, department_id=department)
        result = _rule_read(row)
    _notify(ctx, result.id, spec)
    return result


def list_rules(ctx: AppContext, actor: Actor) -> list[RuleRead]:
    """Every rule, by code."""
    actor.require(RULE_READ)
    with ctx.read() as session:
        return [_rule_read(r) for r in session.scalars(select(Rule).order_by(Rule.code))]


def _get_rule(session: Session, rule_id: int) -> Rule:
    row = session.get(Rule, rule_id)
    if row is None:
        raise NotFound("Rule {id} does not exist.", id=rule_id)
    return row


def get_rule(ctx: AppContext, actor: Actor, rule_id: int) -> RuleRead:
    """One rule."""
    actor.require(RULE_READ)
    with ctx.read() as session:
        return _rule_read(_get_rule(session, rule_id))


def rule_versions(ctx: AppContext, actor: Actor, rule_id: int) -> list[RuleVersionRead]:
    """Every saved definition of a rule, newest first."""
    actor.require(RULE_READ)
    with ctx.read() as session:
        _get_rule(session, rule_id)
        rows = session.scalars(
            select(RuleVersion).where(RuleVersion.rule_id == rule_id).order_by(RuleVersion.version.desc())
        )
        return [RuleVersionRead.model_validate(r, from_attributes=True) for r in rows]


def update_rule(ctx: AppContext, actor: Actor, rule_id: int, data: RuleUpdate) -> RuleRead:
    """Save a new version of a rule's definition (its evaluation state starts afresh)."""
    actor.require(RULE_WRITE)
    with ctx.read() as session:
        current = dict(_get_rule(session, rule_id).definition)
    merged = {**current, **data.model_dump(exclude_unset=True, mode="json")}
    try:
        spec = RuleSpec.model_validate(merged)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise _field_error(
            [str(p) for p in first["loc"]], N_("Invalid rule: {reason} ({field})."), reason=first["msg"]
        ) from None
    validate(ctx, spec)
    department = _rule_department(ctx, spec)
    definition = spec.model_dump(mode="json")
    with ctx.uow(actor, "warning.rule.update") as uow:
        row = _get_rule(uow.session, rule_id)
        if department is not None:  # naming a department moves the rule (its new warnings) there
            row.department_id = department
        if definition != _normalised(row.definition):
            row.version += 1
            row.definition = definition
            row.name_zh, row.name_en, row.kind, row.entity_type = (
                spec.name_zh,
                spec.name_en,
                spec.kind,
                spec.entity_type,
            )
            uow.session.add(
                RuleVersion(
                    rule_id=row.id,
                    version=row.version,
                    definition=definition,
                    changed_by=actor.ref,
                    changed_at=utcnow(),
                )
            )
        uow.session.flush()
        result = _rule_read(row)
    _notify(ctx, rule_id, spec if result.enabled else None)
    return result


def _normalised(definition: Mapping[str, Any]) -> dict[str, Any]:
    """A stored definition as the current RuleSpec writes it (fields added since filled with defaults)."""
    try:
        return RuleSpec.model_validate(dict(definition)).model_dump(mode="json")
    except ValidationError:
        return dict(definition)


def set_enabled(ctx: AppContext, actor: Actor, rule_id: int, enabled: bool) -> RuleRead:
    """Enable (clearing a recorded failure) or disable a rule."""
    actor.require(RULE_WRITE)
    with ctx.uow(actor, "warning.rule.enable" if enabled else "warning.rule.disable") as uow:
        row = _get_rule(uow.session, rule_id)
        row.enabled = enabled
        if enabled:
            row.failure, row.failed_at = None, None
        uow.session.flush()
        result = _rule_read(row)
        spec = RuleSpec.model_validate(row.definition)
    _notify(ctx, rule_id, spec if enabled else None)
    return result


def delete_rule(ctx: AppContext, actor: Actor, rule_id: int) -> None:
    """Delete a rule that never raised a warning (otherwise disable it: its warnings keep their history)."""
    actor.require(RULE_WRITE)
    with ctx.uow(actor, "warning.rule.delete") as uow:
        row = _get_rule(uow.session, rule_id)
        if uow.session.scalar(select(IssuedWarning.id).where(IssuedWarning.rule_id == rule_id).limit(1)):
            raise Conflict("Rule {id} has raised warnings: disable it instead.", id=rule_id)
        for version in uow.session.scalars(select(RuleVersion).where(RuleVersion.rule_id == rule_id)):
            uow.session.delete(version)
        uow.session.flush()
        uow.session.delete(row)
    _notify(ctx, rule_id, None)


def _notify(ctx: AppContext, rule_id: int, spec: RuleSpec | None) -> None:
    """Tell this process's evaluator about a rule's new definition (None: stop evaluating it)."""
    runtime = _runtime(ctx)
    if runtime is not None:
        runtime.put_rule(rule_id, spec)


def enabled_rules(ctx: AppContext) -> list[tuple[int, str, dict[str, Any]]]:
    """(id, code, stored definition) of the enabled rules; the caller validates each on its own."""
    with ctx.read() as session:
        rows = session.execute(
            select(Rule.id, Rule.code, Rule.definition).where(Rule.enabled.is_(True)).order_by(Rule.id)
        )
        return [(rule_id, code, dict(definition)) for rule_id, code, definition in rows]


def rules_stamp(ctx: AppContext) -> tuple[int, int, Any]:
    """A cheap fingerprint of the rule table: changes when any rule is created, edited or deleted."""
    with ctx.read() as session:
        row = session.execute(
            select(func.count(Rule.id), func.coalesce(func.sum(Rule.version), 0), func.max(Rule.updated_at))
        ).one()
    return int(row[0]), int(row[1]), row[2]


def active_states(ctx: AppContext) -> list[tuple[int, str, int, str, str | None]]:
    """(rule id, scope key, rank, entity id, district) of every active warning."""
    rank = {name: r for r, name in LEVEL_OF_RANK.items()}
    with ctx.read() as session:
        rows = session.execute(
            select(
                IssuedWarning.rule_id,
                IssuedWarning.scope_key,
                IssuedWarning.level,
                IssuedWarning.entity_id,
                IssuedWarning.district,
            ).where(IssuedWarning.status == "active")
        )
        return [(r[0], r[1], rank[r[2]], r[3], r[4]) for r in rows]


# --- reading the context broker for the evaluator -------------------------------------------------


def _moment(instance: Mapping[str, Any]) -> datetime:
    raw = instance.get("observedAt") or instance.get("modifiedAt")
    return datetime.fromisoformat(raw) if isinstance(raw, str) else utcnow()


def current_values(ctx: AppContext, tenant: str, entity_id: str) -> dict[str, tuple[datetime, Any]] | None:
    """The current value and time of every attribute of an entity (default instances), None if it is gone."""
    try:
        stored = context.get_entity(ctx, SYSTEM, tenant, entity_id)
    except NgsiError:
        return None
    values: dict[str, tuple[datetime, Any]] = {}
    for attr, instances in stored.get("attrs", {}).items():
        for instance in instances:
            if "datasetId" not in instance:
                values[attr] = (_moment(instance), instance.get("value"))
    return values


def district_of(ctx: AppContext, tenant: str, entity_id: str) -> str | None:
    """The code of the district holding an entity's location, None without one or outside the city."""
    try:
        stored = context.get_entity(ctx, SYSTEM, tenant, entity_id)
    except NgsiError:
        return None
    return district_of_stored(ctx, stored)


def district_of_stored(ctx: AppContext, stored: Mapping[str, Any]) -> str | None:
    """The district code of a stored entity's location."""
    geometry = ent.geometry_of(stored, ent.LOCATION)
    if not isinstance(geometry, dict):
        return None
    try:
        point = shape(geometry).representative_point()
    except (ValueError, TypeError, AttributeError):
        return None
    found = geo.district_at(ctx, point.x, point.y)
    return found.code if found is not None else None


def absence_seeds(ctx: AppContext, spec: RuleSpec) -> list[tuple[str, datetime]]:
    """(entity id, last update) of the attribute an absence rule watches, for the entities in its scope."""
    type_iri, attr = expand(spec.entity_type), expand(spec.conditions[0].attr)
    ids = [spec.scope.entity_id] if spec.scope.kind == "entity" and spec.scope.entity_id else None
    try:
        rows = context.query_entities(
            ctx, SYSTEM, spec.tenant, context.EntityQuery(types=[type_iri], ids=ids, limit=100_000)
        ).entities
    except NgsiError:
        return []
    seeds = []
    for stored in rows:
        if spec.scope.kind == "district" and district_of_stored(ctx, stored) != spec.scope.district:
            continue
        instances = stored.get("attrs", {}).get(attr)
        if instances:
            raw = instances[0].get("modifiedAt") or instances[0].get("observedAt")
            seeds.append((stored["id"], datetime.fromisoformat(raw) if isinstance(raw, str) else utcnow()))
    return seeds


# --- warnings -------------------------------------------------------------------------------------


def _warning_read(row: IssuedWarning) -> WarningRead:
    data = {c: getattr(row, c) for c in WarningRead.model_fields if hasattr(row, c)}
    return WarningRead(**data, level_name=LEVEL_NAMES_ZH[row.level], color=LEVEL_COLORS[row.level])


def apply_transitions(ctx: AppContext, transitions: Sequence[ev.Transition]) -> int:
    """Write the evaluator's transitions: raise, upgrade, downgrade or lift warnings, with their events."""
    if not transitions:
        return 0
    written = 0
    with ctx.uow(SYSTEM, "warning.warning.evaluate") as uow:
        session = uow.session
        rules = {
            rule_id: (
                name,
                str(definition.get("tenant", "")),
                kind,
                department_id,
                definition.get("department"),
                name_en or "",
            )
            for rule_id, name, name_en, definition, kind, department_id in session.execute(
                select(
                    Rule.id, Rule.name_zh, Rule.name_en, Rule.definition, Rule.kind, Rule.department_id
                ).where(Rule.id.in_({t.rule_id for t in transitions}))
            )
        }
        districts: dict[tuple[str, str], str | None] = {}
        codes: dict[str, int] | None = None
        for t in transitions:
            if t.rule_id not in rules:
                continue
            title, tenant, kind, owner, owner_code, title_en = rules[t.rule_id]
            key = f"{t.rule_id}:{t.scope_key}"
            row = session.scalar(select(IssuedWarning).where(IssuedWarning.active_key == key))
            to_level = LEVEL_OF_RANK.get(t.to_rank)
            values = _json_values(t.values)
            if row is None:
                if to_level is None:
                    continue  # lifted already (by an operator)
                district = t.district
                if district is None:
                    where = (tenant, t.entity_id)
                    if where not in districts:
                        districts[where] = district_of(ctx, tenant, t.entity_id)
                    district = districts[where]
                department = owner
                if department is None and (owner_code or district):
                    codes = department_ids(ctx) if codes is None else codes
                    department = codes.get(str(owner_code)) if owner_code else None
                    department = department or (codes.get(district) if district else None)
                row = IssuedWarning(
                    rule_id=t.rule_id, rule_code=t.rule_code, kind=kind, title=title, scope_key=t.scope_key,
                    active_key=key, entity_id=t.entity_id, district=district, level=to_level, status="active",
                    raised_at=t.at, changed_at=t.at, values=values, department_id=department,
                )  # fmt: skip
                session.add(row)
                session.flush()
                session.add(
                    WarningStep(
                        warning_id=row.id, kind="raised", at=t.at, by="rule", to_level=to_level, values=values
                    )
                )
                uow.emit(WarningRaised(
                    warning_id=row.id, rule_code=t.rule_code, level=to_level, entity_id=t.entity_id,
                    district=district, scope_key=t.scope_key, at=t.at, values=values, title=title,
                    title_en=title_en,
                ))  # fmt: skip
            elif to_level is None:
                previous = row.level
                row.status, row.active_key, row.lifted_at, row.lifted_by, row.changed_at = (
                    "lifted",
                    None,
                    t.at,
                    "rule",
                    t.at,
                )
                session.add(
                    WarningStep(
                        warning_id=row.id,
                        kind="lifted",
                        at=t.at,
                        by="rule",
                        from_level=previous,
                        values=values,
                    )
                )
                uow.emit(WarningLifted(
                    warning_id=row.id, rule_code=t.rule_code, previous_level=previous, district=row.district, at=t.at,
                    by="rule", entity_id=row.entity_id, title=title, title_en=title_en,
                ))  # fmt: skip
            else:
                previous = row.level
                if previous == to_level:
                    continue
                change = "upgraded" if t.to_rank > t.from_rank else "downgraded"
                row.level, row.changed_at, row.values, row.entity_id = to_level, t.at, values, t.entity_id
                session.add(
                    WarningStep(
                        warning_id=row.id,
                        kind=change,
                        at=t.at,
                        by="rule",
                        from_level=previous,
                        to_level=to_level,
                        values=values,
                    )
                )
                uow.emit(WarningChanged(
                    warning_id=row.id, rule_code=t.rule_code, change=change, level=to_level, previous_level=previous,
                    district=row.district, at=t.at, by="rule", values=values, title=title, title_en=title_en,
                ))  # fmt: skip
            written += 1
    return written


def forecast_stored(
    ctx: AppContext,
    tenant: str,
    entity_id: str,
    types: Sequence[str],
    attr: str,
    points: Sequence[ev.ForecastPoint],
    now: datetime,
) -> None:
    """Evaluate the forecast rules on a forecast just stored, on the evaluator's loop; wait for the writes."""
    runtime = _runtime(ctx)
    loop = getattr(runtime, "loop", None)
    if runtime is None or loop is None or loop.is_closed():
        return

    async def feed() -> None:
        runtime.evaluator.forecasted(tenant, entity_id, types, attr, points, now)
        await runtime.flush()

    asyncio.run_coroutine_threadsafe(feed(), loop).result(timeout=FORECAST_WAIT)


def _json_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """Triggering values with compact attribute names, JSON-ready."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        entity, _, attr = key.rpartition(" ")
        name = _JSONLD.compact(attr)
        out[f"{entity} {name}" if entity else name] = (
            value if isinstance(value, int | float | str | bool) or value is None else str(value)
        )
    return out


def record_clocks(
    ctx: AppContext,
    cleared: Sequence[int],
    changes: Mapping[tuple[int, str, int, int], datetime | None],
) -> int:
    """Keep the duration clocks: drop the cleared rules' clocks, then start (a time) or stop (None) each one."""
    if not cleared and not changes:
        return 0
    with ctx.uow(SYSTEM, "warning.clock.record") as uow:
        session = uow.session
        if cleared:
            session.execute(delete(Clock).where(Clock.rule_id.in_(sorted(set(cleared)))))
        live = set(session.scalars(select(Rule.id).where(Rule.id.in_({k[0] for k in changes}))))
        for rule_id, entity_id, condition, rank in changes:
            session.execute(
                delete(Clock).where(
                    Clock.rule_id == rule_id,
                    Clock.entity_id == entity_id[:256],
                    Clock.condition == condition,
                    Clock.rank == rank,
                )
            )
        session.add_all(
            Clock(rule_id=key[0], entity_id=key[1][:256], condition=key[2], rank=key[3], since=since)
            for key, since in changes.items()
            if since is not None and key[0] in live
        )
    return len(changes)


def clocks_of(ctx: AppContext, rule_id: int) -> list[tuple[str, int, int, datetime]]:
    """(entity, condition, rank, since) of a rule's running duration clocks."""
    with ctx.read() as session:
        rows = session.execute(
            select(Clock.entity_id, Clock.condition, Clock.rank, Clock.since).where(Clock.rule_id == rule_id)
        )
        return [(e, c, r, since) for e, c, r, since in rows]


def record_failures(ctx: AppContext, failures: Sequence[ev.Failure]) -> None:
    """Disable rules that raised at run time and keep the error for operators."""
    for failure in failures:
        with ctx.uow(SYSTEM, "warning.rule.fail") as uow:
            row = uow.session.get(Rule, failure.rule_id)
            if row is not None:
                row.enabled, row.failure, row.failed_at = False, failure.error[:2000], failure.at


def list_warnings(
    ctx: AppContext,
    actor: Actor,
    *,
    level: str | None = None,
    status: str | None = None,
    district: str | None = None,
    rule: str | None = None,
    kind: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page[WarningRead]:
    """The warnings the actor may read, newest change first, filtered by level, status, district, rule and kind."""
    stmt = _readable(select(IssuedWarning), reader_scope(actor))
    if kind:
        stmt = stmt.where(IssuedWarning.kind == kind)
    if level:
        stmt = stmt.where(IssuedWarning.level == level)
    if status:
        stmt = stmt.where(IssuedWarning.status == status)
    if district:
        stmt = stmt.where(IssuedWarning.district == district)
    if rule:
        stmt = stmt.where(IssuedWarning.rule_code == rule)
    with ctx.read() as session:
        total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        rows = session.scalars(
            stmt.order_by(IssuedWarning.changed_at.desc(), IssuedWarning.id.desc())
            .limit(limit)
            .offset(offset)
        )
        return Page[WarningRead](
            items=[_warning_read(r) for r in rows], total=total, limit=limit, offset=offset
        )


def active_counts(ctx: AppContext, actor: Actor) -> dict[str, int]:
    """How many of the warnings the actor may read are active at each level."""
    stmt = select(IssuedWarning.level, func.count()).where(IssuedWarning.status == "active")
    stmt = _readable(stmt, reader_scope(actor)).group_by(IssuedWarning.level)
    with ctx.read() as session:
        rows = session.execute(stmt)
        found = {str(level): int(n) for level, n in rows}
    return {level: found.get(level, 0) for level in reversed(LEVEL_OF_RANK.values())}


def reader_scope(actor: Actor) -> Scope:
    """The departments whose warnings the actor may read: ALL with a city-wide grant (401/403 with none)."""
    if actor.is_authenticated and actor.can(WARNING_READ_ALL):
        return ALL
    return actor.visible_departments(WARNING_READ)


def _readable(stmt: Any, scope: Scope) -> Any:
    """Narrow a query of warnings to those of the departments in scope (a warning of none: city-wide only)."""
    if isinstance(scope, AllDepartments):
        return stmt
    return stmt.where(IssuedWarning.department_id.in_(sorted(scope)))


def _in_scope(scope: Scope, department_id: int | None) -> bool:
    """Whether a department is in a scope (a warning of no department: only in a city-wide one)."""
    return isinstance(scope, AllDepartments) or (department_id is not None and department_id in scope)


def _get_warning(session: Session, warning_id: int, scope: Scope = ALL) -> IssuedWarning:
    """A warning in the scope (404 otherwise: another department's warning is not shown to exist)."""
    row = session.get(IssuedWarning, warning_id)
    if row is None or not _in_scope(scope, row.department_id):
        raise NotFound("Warning {id} does not exist.", id=warning_id)
    return row


def _require_department(actor: Actor, permission: str, row: IssuedWarning) -> None:
    """Raise 403 unless the actor holds the permission in the warning's department (or city-wide)."""
    if not _in_scope(actor.scope(permission), row.department_id):
        raise Forbidden(
            "Warning {id} belongs to another department: you lack {permission} there.",
            id=row.id,
            permission=permission,
        )


def _detail(session: Session, row: IssuedWarning) -> WarningDetail:
    """A warning with its timeline."""
    steps = session.scalars(
        select(WarningStep).where(WarningStep.warning_id == row.id).order_by(WarningStep.id)
    )
    timeline = [StepRead.model_validate(s, from_attributes=True) for s in steps]
    return WarningDetail(**_warning_read(row).model_dump(), timeline=timeline)


def get_warning(ctx: AppContext, actor: Actor, warning_id: int) -> WarningDetail:
    """A warning the actor may read, with its full timeline (404 for another department's)."""
    scope = reader_scope(actor)
    with ctx.read() as session:
        return _detail(session, _get_warning(session, warning_id, scope))


def _acted(ctx: AppContext, warning_id: int) -> WarningDetail:
    """A warning just acknowledged or lifted by an actor allowed to (no further check)."""
    with ctx.read() as session:
        return _detail(session, _get_warning(session, warning_id))


def _actionable(session: Session, actor: Actor, permission: str, warning_id: int) -> IssuedWarning:
    """A warning the actor may see (404 otherwise) and act on in its department (403 otherwise)."""
    scope = reader_scope(actor) if actor.can(WARNING_READ) or actor.can(WARNING_READ_ALL) else ALL
    row = _get_warning(session, warning_id, scope)
    _require_department(actor, permission, row)
    return row


def _name_en(session: Session, rule_id: int) -> str:
    """The English name of a warning's rule ("" when it has none)."""
    return session.scalar(select(Rule.name_en).where(Rule.id == rule_id)) or ""


def acknowledge(ctx: AppContext, actor: Actor, warning_id: int, note: str = "") -> WarningDetail:
    """An operator acknowledges an active warning of a department where they may (once)."""
    actor.require(WARNING_ACK)
    now = utcnow()
    with ctx.uow(actor, "warning.warning.acknowledge") as uow:
        row = _actionable(uow.session, actor, WARNING_ACK, warning_id)
        if row.status != "active":
            raise Conflict("Warning {id} is no longer active.", id=warning_id)
        if row.acknowledged_at is not None:
            raise Conflict("Warning {id} is acknowledged already.", id=warning_id)
        row.acknowledged_at, row.acknowledged_by = now, actor.ref
        uow.session.add(
            WarningStep(
                warning_id=row.id,
                kind="acknowledged",
                at=now,
                by=actor.ref,
                from_level=row.level,
                to_level=row.level,
                note=note,
            )
        )
        uow.emit(WarningChanged(
            warning_id=row.id, rule_code=row.rule_code, change="acknowledged", level=row.level,
            previous_level=row.level, district=row.district, at=now, by=actor.ref, values={},
            title=row.title, title_en=_name_en(uow.session, row.rule_id),
        ))  # fmt: skip
    return _acted(ctx, warning_id)


def lift(ctx: AppContext, actor: Actor, warning_id: int, note: str = "") -> WarningDetail:
    """An operator lifts (解除) an active warning of their department; its rule stays quiet until the condition clears."""
    actor.require(WARNING_LIFT)
    now = utcnow()
    with ctx.uow(actor, "warning.warning.lift") as uow:
        row = _actionable(uow.session, actor, WARNING_LIFT, warning_id)
        if row.status != "active":
            raise Conflict("Warning {id} is no longer active.", id=warning_id)
        previous = row.level
        row.status, row.active_key, row.lifted_at, row.lifted_by, row.changed_at = (
            "lifted",
            None,
            now,
            actor.ref,
            now,
        )
        uow.session.add(
            WarningStep(
                warning_id=row.id, kind="lifted", at=now, by=actor.ref, from_level=previous, note=note
            )
        )
        uow.emit(WarningLifted(
            warning_id=row.id, rule_code=row.rule_code, previous_level=previous, district=row.district, at=now,
            by=actor.ref, entity_id=row.entity_id, title=row.title, title_en=_name_en(uow.session, row.rule_id),
        ))  # fmt: skip
        rule_id, scope_key = row.rule_id, row.scope_key
    runtime = _runtime(ctx)
    if runtime is not None:
        runtime.operator_lifted(rule_id, scope_key)
    return _acted(ctx, warning_id)


# --- CAP 1.2 -------------------------------------------------------------------------------------


def cap_alert(ctx: AppContext, actor: Actor, warning_id: int) -> bytes:
    """The CAP 1.2 message of a warning's current state (a warning the actor may read)."""
    return _cap(ctx, get_warning(ctx, actor, warning_id))


def _cap(ctx: AppContext, detail: WarningDetail) -> bytes:
    """The CAP 1.2 message of a warning."""
    with ctx.read() as session:
        definition = session.scalar(select(Rule.definition).where(Rule.id == detail.rule_id)) or {}
    area = detail.entity_id
    if (named := places.named_by(ctx, detail.entity_id)) is not None:
        area = named.name_zh  # an entity standing for an area: its name, not its code
    elif detail.district and (found := geo.district(ctx, detail.district)) is not None:
        area = found.name_zh if detail.scope_key == detail.district else f"{found.name_zh} {detail.entity_id}"
    category = str(definition.get("category", "Other"))
    return cap.alert(detail, sender=settings(ctx).cap_sender, category=category, area=area)


def cap_feed(ctx: AppContext, actor: Actor, self_url: str, cap_url: str) -> bytes:
    """An Atom feed of the active warnings the actor may read (the most recent 500), each linking to its CAP."""
    page = list_warnings(ctx, actor, status="active", limit=500)
    return cap.feed(
        page.items, sender=settings(ctx).cap_sender, title="城市智脑 预警", self_url=self_url, cap_url=cap_url
    )


def public_rule_ids(ctx: AppContext) -> list[int]:
    """The rules whose warnings are public: marked public, or named in the setting public_rules."""
    named = set(settings(ctx).public_rules)
    with ctx.read() as session:
        rows = session.execute(select(Rule.id, Rule.code, Rule.definition))
        return sorted(r for r, code, definition in rows if code in named or (definition or {}).get("public"))


def public_feed(ctx: AppContext, self_url: str, cap_url: str) -> bytes:
    """The public Atom feed: the active warnings of public rules only (e.g. heavy pollution), for anyone."""
    # Nobody signs in to read it, so it carries no other warning, whatever its department: a warning
    # concerning one department stays with the readers of that department (`cap_feed`).
    stmt = (
        select(IssuedWarning)
        .where(IssuedWarning.status == "active", IssuedWarning.rule_id.in_(public_rule_ids(ctx)))
        .order_by(IssuedWarning.changed_at.desc(), IssuedWarning.id.desc())
        .limit(500)
    )
    with ctx.read() as session:
        items = [_warning_read(r) for r in session.scalars(stmt)]
    return cap.feed(
        items, sender=settings(ctx).cap_sender, title="城市智脑 公众预警", self_url=self_url, cap_url=cap_url
    )


def public_cap(ctx: AppContext, warning_id: int) -> bytes:
    """The CAP 1.2 message of a public rule's warning, for anyone (404 for any other warning)."""
    with ctx.read() as session:
        row = session.get(IssuedWarning, warning_id)
        if row is None or row.rule_id not in public_rule_ids(ctx):
            raise NotFound("Warning {id} does not exist.", id=warning_id)
        detail = _detail(session, row)
    return _cap(ctx, detail)


# --- dry run --------------------------------------------------------------------------------------


def dry_run(ctx: AppContext, actor: Actor, rule_id: int) -> DryRunResult:
    """Replay the last days of attribute history through a rule: when it would have fired."""
    actor.require(RULE_READ)
    with ctx.read() as session:
        spec = RuleSpec.model_validate(_get_rule(session, rule_id).definition)
    return replay(ctx, spec)


def replay(ctx: AppContext, spec: RuleSpec) -> DryRunResult:
    """Replay the history of the entities in a rule's scope through a fresh evaluator."""
    conf = settings(ctx)
    until = utcnow()
    since = until - timedelta(days=conf.dry_run_days)
    rule = ev.compile_rule(0, spec, expand)
    evaluator = ev.Evaluator(locator=lambda tenant, entity_id: district_of(ctx, tenant, entity_id))
    evaluator.add(rule)
    if rule.kind == "forecast":
        return _replay_forecasts(ctx, spec, rule, evaluator, since, until)
    samples: list[tuple[datetime, str, str, list[str], Any]] = []
    entities: set[str] = set()
    for cond in rule.conditions:
        if cond.entity_id:
            ids = [cond.entity_id]
        elif spec.scope.kind == "entity" and spec.scope.entity_id:
            ids = [spec.scope.entity_id]
        else:
            query = context.EntityQuery(types=[cond.type_iri], limit=conf.dry_run_entities)
            ids = [e["id"] for e in context.query_entities(ctx, SYSTEM, spec.tenant, query).entities]
        for entity_id in ids:
            history = context.attribute_history(
                ctx, SYSTEM, spec.tenant, entity_id, cond.attr, conf.dry_run_values
            )
            entities.add(entity_id)
            samples += [
                (at, entity_id, cond.attr, [cond.type_iri], value) for at, value in history if at >= since
            ]
    samples.sort(key=lambda s: s[0])
    for at, entity_id, attr, types, value in samples:
        if rule.kind == "absence":
            evaluator.tick(at)  # the silence before this update
        evaluator.change(spec.tenant, entity_id, types, attr, value, at, at)
    evaluator.tick(until)
    return _dry_run_result(evaluator, since, until, len(entities), len(samples))


def _replay_forecasts(
    ctx: AppContext,
    spec: RuleSpec,
    rule: ev.CompiledRule,
    evaluator: ev.Evaluator,
    since: datetime,
    until: datetime,
) -> DryRunResult:
    """Replay the kept forecasts of the rule's attribute, for the entities of its type, through a forecast rule."""
    cond = rule.conditions[0]
    stmt = (
        select(ForecastSeries.entity_id, ForecastIssue.issued_at, ForecastIssue.forecast)
        .join(ForecastSeries, ForecastSeries.id == ForecastIssue.series_id)
        .join(SeriesDeclaration, SeriesDeclaration.id == ForecastSeries.declaration_id)
        .where(
            SeriesDeclaration.tenant == spec.tenant,
            SeriesDeclaration.attr == cond.attr,
            ForecastIssue.issued_at >= since,
        )
        .order_by(ForecastIssue.issued_at, ForecastIssue.id)
        .limit(settings(ctx).dry_run_values)
    )
    with ctx.read() as session:
        issues = [(entity_id, issued_at, dict(data)) for entity_id, issued_at, data in session.execute(stmt)]
    ids = sorted({entity_id for entity_id, _at, _data in issues})
    typed: set[str] = set()
    if ids:
        try:
            query = context.EntityQuery(types=[rule.type_iri], ids=ids, limit=len(ids))
            typed = {e["id"] for e in context.query_entities(ctx, SYSTEM, spec.tenant, query).entities}
        except NgsiError:
            typed = set()
    replayed = 0
    for entity_id, issued_at, data in issues:
        if entity_id not in typed:
            continue
        band = next((i for i in data.get("intervals", ()) if i.get("level") == 0.8), None)
        mean = [float(v) for v in data.get("mean", ())]
        lower = [float(v) for v in band["lower"]] if band else mean
        upper = [float(v) for v in band["upper"]] if band else mean
        stamps = [datetime.fromisoformat(t) for t in data.get("timestamps", ())]
        points = list(zip(stamps, mean, lower, upper, strict=True))
        evaluator.forecasted(spec.tenant, entity_id, [rule.type_iri], cond.attr, points, issued_at)
        replayed += 1
    return _dry_run_result(evaluator, since, until, len(typed), replayed)


def _dry_run_result(
    evaluator: ev.Evaluator, since: datetime, until: datetime, entities: int, values: int
) -> DryRunResult:
    """What a replay through the evaluator produced: every transition, and the firings among them."""
    transitions, _failures = evaluator.drain()
    steps = [
        DryRunFiring(
            at=t.at,
            scope_key=t.scope_key,
            entity_id=t.entity_id,
            from_level=LEVEL_OF_RANK.get(t.from_rank),
            to_level=LEVEL_OF_RANK.get(t.to_rank),
        )
        for t in transitions
    ]
    firings = [s for s in steps if s.from_level is None and s.to_level is not None]
    return DryRunResult(
        since=since, until=until, entities=entities, values=values, fired=len(firings),
        firings=firings, transitions=steps,
    )  # fmt: skip


# --- device health and data-quality flags ---------------------------------------------------------


def entity_positions(ctx: AppContext, tenant: str, type_iri: str) -> dict[str, tuple[float, float]]:
    """Where each entity of a type stands (a point of its location), for choosing drift's peers."""
    limit = settings(ctx).health_max_series
    try:
        query = context.EntityQuery(types=[type_iri], attrs={ent.LOCATION}, limit=limit)
        rows = context.query_entities(ctx, SYSTEM, tenant, query).entities
    except NgsiError:
        return {}
    found: dict[str, tuple[float, float]] = {}
    for stored in rows:
        geometry = ent.geometry_of(stored, ent.LOCATION)
        if not isinstance(geometry, dict):
            continue
        try:
            point = shape(geometry).representative_point()
        except (ValueError, TypeError, AttributeError):
            continue
        found[stored["id"]] = (point.x, point.y)
    return found


def adopted_health(ctx: AppContext) -> list[tuple[int, str, str, str, str, float | None, datetime]]:
    """(rule, scope, entity, attribute, anomaly, value, last change) of the active device-health warnings."""
    with ctx.read() as session:
        rows = session.execute(
            select(
                IssuedWarning.rule_id,
                IssuedWarning.scope_key,
                IssuedWarning.entity_id,
                IssuedWarning.values,
                IssuedWarning.changed_at,
            ).where(IssuedWarning.status == "active", IssuedWarning.kind == "health")
        )
        found = []
        for rule_id, scope, entity_id, values, changed_at in rows:
            values = values or {}
            value = values.get("value")
            number = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
            attr, kind = str(values.get("attr", "")), str(values.get("anomaly", ""))
            found.append((rule_id, scope, entity_id, attr, kind, number, changed_at))
        return found


def record_flags(ctx: AppContext, flags: Sequence[Any]) -> int:
    """Write data-quality flags (health.Flag) in one transaction."""
    if not flags:
        return 0
    with ctx.uow(SYSTEM, "warning.flag.record") as uow:
        uow.session.add_all(
            QualityFlag(
                tenant=f.tenant, entity_id=f.entity_id[:256], attr=f.attr[:300], observed_at=f.observed_at,
                kind=f.kind, score=f.score, value=f.value, expected=f.expected, message=f.message[:300],
                params=dict(f.params), created_at=utcnow(),
            )
            for f in flags
        )  # fmt: skip
    return len(flags)


def purge_flags(ctx: AppContext, now: datetime | None = None) -> int:
    """Delete the data-quality flags older than the retention; how many were deleted."""
    before = (now or utcnow()) - timedelta(days=settings(ctx).quality_flag_retention_days)
    with ctx.uow(SYSTEM, "warning.flag.purge") as uow:
        result = uow.session.execute(delete(QualityFlag).where(QualityFlag.observed_at < before))
        return int(getattr(result, "rowcount", 0) or 0)


def _flag_read(row: QualityFlag) -> QualityFlagRead:
    params = dict(row.params or {})
    try:
        text = row.message.format(**params)
    except (KeyError, IndexError, ValueError):
        text = row.message
    return QualityFlagRead(
        id=row.id, tenant=row.tenant, entity_id=row.entity_id, attr=row.attr, observed_at=row.observed_at,
        kind=row.kind, score=row.score, value=row.value, expected=row.expected, message=text,
        template=row.message, params=params, created_at=row.created_at,
    )  # fmt: skip


def list_quality_flags(
    ctx: AppContext,
    actor: Actor,
    *,
    entity_id: str | None = None,
    attr: str | None = None,
    since: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page[QualityFlagRead]:
    """Data-quality flags, the latest reading first, filtered by entity, attribute and time."""
    actor.require(WARNING_READ)
    stmt = select(QualityFlag)
    if entity_id:
        stmt = stmt.where(QualityFlag.entity_id == entity_id)
    if attr:
        stmt = stmt.where(QualityFlag.attr.in_({attr, _JSONLD.compact(expand(attr))}))
    if since is not None:
        stmt = stmt.where(QualityFlag.observed_at >= since)
    with ctx.read() as session:
        total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        rows = session.scalars(
            stmt.order_by(QualityFlag.observed_at.desc(), QualityFlag.id.desc()).limit(limit).offset(offset)
        )
        return Page[QualityFlagRead](
            items=[_flag_read(r) for r in rows], total=total, limit=limit, offset=offset
        )
