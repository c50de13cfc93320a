"""IoT services: device models, devices and their keys, the ingest pipeline, status, rejected messages.

Device keys are random (256 bits) and shown once; like the platform's API tokens only their SHA-256 is
stored: a key that long cannot be guessed, so a slow password hash would add nothing but cost on a path
that checks thousands of messages a second. A process keeps the device records it has read (with their
key hashes) for a few seconds; a change made in the same process clears them at once.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import secrets
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from pydantic import ValidationError
from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    Table,
    any_,
    bindparam,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from citybrain.apps.context import services as context
from citybrain.apps.geo import services as geo
from citybrain.apps.identity import services as identity
from citybrain.apps.iot import payloads, schemas
from citybrain.apps.iot.events import DeviceOffline, DeviceOnline, DeviceProvisioned
from citybrain.apps.iot.models import DeadLetter, Device, DeviceModel, IngestCounter
from citybrain.apps.iot.payloads import N_
from citybrain.apps.iot.schemas import IngestReport, Message, MessageReport, Rejection
from citybrain.apps.iot.settings import IotSettings
from citybrain.sdk import (
    SYSTEM,
    Actor,
    AllDepartments,
    AppContext,
    Conflict,
    ExpiringCache,
    Forbidden,
    NotFound,
    ProblemError,
    Scope,
    UnitOfWork,
    ValidationFailed,
    bulk_insert,
    utcnow,
)

__all__ = [
    "IngestReport",
    "Message",
    "create_model",
    "ensure_model",
    "ingest_messages",
    "provision",
]

KEY_PREFIX = "cbd_"
CACHE = "iot.device_cache"
LOOKUP_CHUNK = 500
# Rejections kept in detail per dead letter (the count says how many there were).
ERRORS_KEPT = 20
CSV_COLUMNS = ("device_id", "name", "model", "lon", "lat", "department", "entity_id", "protocol")
CSV_REQUIRED = ("device_id", "name", "model", "lon", "lat", "department")
CSV_FIELDS = {
    "device_id": "device_id",
    "name": "name",
    "model_code": "model",
    "lon": "lon",
    "lat": "lat",
    "department_code": "department",
    "entity_id": "entity_id",
    "protocol": "protocol",
}
METRICS = ("messages", "readings", "stored", "duplicates")


def _settings(ctx: AppContext) -> IotSettings:
    return ctx.app_setting("iot", IotSettings)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def new_key() -> str:
    """A fresh device key: 256 random bits, URL-safe."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


# --- the device cache ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A device model as ingest uses it."""

    id: int
    code: str
    entity_type: str
    specs: dict[str, tuple[str, float | None, float | None]]
    units: dict[str, str]


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """A device as ingest uses it: where its readings go, its key hash and whether it is revoked."""

    pk: int
    tenant: str
    device_id: str
    entity_id: str
    department_id: int
    key_hash: str
    revoked: bool
    model: ModelInfo


class DeviceCache(ExpiringCache[tuple[str, str], "DeviceInfo | None", float]):
    """Device records read recently, by (tenant, device id); absent devices are remembered as None too."""

    def __init__(self) -> None:
        """Start empty; at most 200,000 devices."""
        super().__init__(max_entries=200_000)


def device_cache(ctx: AppContext) -> DeviceCache:
    """This process's device cache of the platform instance."""
    cache: DeviceCache | None = ctx.extensions.get(CACHE)
    if cache is None:
        cache = ctx.extensions.setdefault(CACHE, DeviceCache())
    return cache


@contextmanager
def _device_change(ctx: AppContext, actor: Actor, action: str) -> Iterator[UnitOfWork]:
    """A unit of work that changes devices or models: the device cache is cleared once it has ended."""
    try:
        with ctx.uow(actor, action) as uow:
            yield uow
    finally:
        device_cache(ctx).clear()


def _model_info(row: DeviceModel | Any) -> ModelInfo:
    attributes = list(row.attributes or [])
    return ModelInfo(
        id=row.id,
        code=row.code,
        entity_type=row.entity_type,
        specs=payloads.specs_of(attributes),
        units={a["name"]: a["unit_code"] for a in attributes if a.get("unit_code")},
    )


def lookup_devices(
    ctx: AppContext, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], DeviceInfo | None]:
    """The records of devices by (tenant, device id), from the cache or in a few queries."""
    cache, now = device_cache(ctx), time.monotonic()
    found: dict[tuple[str, str], DeviceInfo | None] = {}
    missing: dict[str, list[str]] = {}
    for key in keys:
        known, info = cache.lookup(key, now)
        if known:
            found[key] = info
        else:
            missing.setdefault(key[0], []).append(key[1])
    if not missing:
        return found
    generation = cache.generation
    loaded: dict[tuple[str, str], DeviceInfo | None] = {}
    models: dict[int, ModelInfo] = {}
    with ctx.read() as session:
        for tenant, ids in missing.items():
            for start in range(0, len(ids), LOOKUP_CHUNK):
                chunk = ids[start : start + LOOKUP_CHUNK]
                loaded.update({(tenant, device_id): None for device_id in chunk})
                stmt = (
                    select(Device, DeviceModel)
                    .join(DeviceModel, DeviceModel.id == Device.model_id)
                    .where(Device.tenant == tenant, Device.device_id.in_(chunk))
                )
                for device, model in session.execute(stmt):
                    model_info = models.get(model.id)
                    if model_info is None:
                        model_info = models[model.id] = _model_info(model)
                    loaded[(tenant, device.device_id)] = DeviceInfo(
                        pk=device.id,
                        tenant=tenant,
                        device_id=device.device_id,
                        entity_id=device.entity_id,
                        department_id=device.department_id,
                        key_hash=device.key_hash,
                        revoked=device.revoked,
                        model=model_info,
                    )
    seconds = _settings(ctx).key_cache_seconds
    if seconds > 0:
        cache.put_many(loaded, now + seconds, generation)
    found.update(loaded)
    return found


def key_matches(info: DeviceInfo, key: str) -> bool:
    """Whether a key is the device's (compared in constant time)."""
    return hmac.compare_digest(info.key_hash, _sha256(key))


# --- departments and districts ----------------------------------------------------------------------


def _departments(ctx: AppContext) -> dict[str, tuple[int, str]]:
    """Every department by code: (id, code)."""
    return {d.code: (d.id, d.code) for d in identity.list_departments(ctx, SYSTEM)}


def department_names(ctx: AppContext) -> dict[int, tuple[str, str, str]]:
    """Every department by id: (code, name_zh, name_en), for the pages."""
    return {d.id: (d.code, d.name_zh, d.name_en) for d in identity.list_departments(ctx, SYSTEM)}


def district_of(ctx: AppContext, lon: float, lat: float) -> str | None:
    """The code of the district or county a point lies in, None outside the city."""
    found = geo.district_at(ctx, lon, lat)
    return found.code if found is not None else None


def districts(ctx: AppContext) -> list[tuple[str, str, str]]:
    """The city's districts and counties: (code, name_zh, name_en)."""
    return [(d.code, d.name_zh, d.name_en) for d in geo.districts(ctx)]


# --- device models ---------------------------------------------------------------------------------


def _require_city_wide(actor: Actor, permission: str) -> None:
    """Models are city-wide objects: changing them needs the permission in every department."""
    actor.require(permission)
    if not isinstance(actor.scope(permission), AllDepartments):
        raise Forbidden("Changing device models needs {permission} city-wide.", permission=permission)


def _model_read(model: DeviceModel, devices: int = 0) -> schemas.DeviceModelRead:
    return schemas.DeviceModelRead(
        id=model.id,
        code=model.code,
        name_zh=model.name_zh,
        name_en=model.name_en,
        entity_type=model.entity_type,
        offline_timeout_seconds=model.offline_timeout_seconds,
        attributes=[schemas.AttributeSpec.model_validate(a) for a in model.attributes],
        devices=devices,
    )


def _spec_rows(specs: Sequence[schemas.AttributeSpec]) -> list[dict[str, Any]]:
    return [spec.model_dump() for spec in specs]


def ensure_model(ctx: AppContext, actor: Actor, model: schemas.DeviceModelCreate) -> None:
    """Create a device model, or bring the one with its code up to date (idempotent)."""
    _require_city_wide(actor, "iot.model.write")
    with _device_change(ctx, actor, "iot.model.ensure") as uow:
        row = uow.session.scalar(select(DeviceModel).where(DeviceModel.code == model.code))
        if row is None:
            uow.session.add(DeviceModel(**{**model.model_dump(), "attributes": _spec_rows(model.attributes)}))
            return
        if row.entity_type != model.entity_type:
            raise Conflict(
                "The device model {code} feeds entities of type {type}; its entity type cannot change.",
                code=model.code,
                type=row.entity_type,
            )
        row.name_zh, row.name_en = model.name_zh, model.name_en
        row.offline_timeout_seconds = model.offline_timeout_seconds
        if row.attributes != _spec_rows(model.attributes):
            row.attributes = _spec_rows(model.attributes)


def create_model(ctx: AppContext, actor: Actor, data: schemas.DeviceModelCreate) -> schemas.DeviceModelRead:
    """Create a device model."""
    _require_city_wide(actor, "iot.model.write")
    with _device_change(ctx, actor, "iot.model.create") as uow:
        if uow.session.scalar(select(DeviceModel.id).where(DeviceModel.code == data.code)) is not None:
            raise Conflict("A device model with code {code} exists already.", code=data.code)
        row = DeviceModel(**{**data.model_dump(), "attributes": _spec_rows(data.attributes)})
        uow.session.add(row)
        uow.session.flush()
        return _model_read(row)


def _model_counts(session: Session) -> dict[int, int]:
    stmt = select(Device.model_id, func.count()).group_by(Device.model_id)
    return {model_id: int(n) for model_id, n in session.execute(stmt)}


def list_models(ctx: AppContext, actor: Actor) -> list[schemas.DeviceModelRead]:
    """Every device model, with how many devices use it."""
    actor.require("iot.model.read")
    with ctx.read() as session:
        counts = _model_counts(session)
        rows = session.scalars(select(DeviceModel).order_by(DeviceModel.code))
        return [_model_read(row, counts.get(row.id, 0)) for row in rows]


def model_choices(ctx: AppContext, actor: Actor) -> list[schemas.DeviceModelRead]:
    """The device models to choose from when registering devices (for whoever may register them)."""
    actor.require("iot.device.create")
    with ctx.read() as session:
        return [_model_read(row) for row in session.scalars(select(DeviceModel).order_by(DeviceModel.code))]


def _load_model(session: Session, code: str) -> DeviceModel:
    row = session.scalar(select(DeviceModel).where(DeviceModel.code == code))
    if row is None:
        raise NotFound("No device model {code}.", code=code)
    return row


def get_model(ctx: AppContext, actor: Actor, code: str) -> schemas.DeviceModelRead:
    """One device model."""
    actor.require("iot.model.read")
    with ctx.read() as session:
        row = _load_model(session, code)
        return _model_read(row, _model_counts(session).get(row.id, 0))


def update_model(
    ctx: AppContext, actor: Actor, code: str, data: schemas.DeviceModelUpdate
) -> schemas.DeviceModelRead:
    """Rename a model, change its offline timeout or its attributes."""
    _require_city_wide(actor, "iot.model.write")
    changes = {k: v for k, v in data.model_dump(exclude_unset=True).items() if v is not None}
    with _device_change(ctx, actor, "iot.model.update") as uow:
        row = _load_model(uow.session, code)
        if data.attributes is not None:
            changes["attributes"] = _spec_rows(data.attributes)
        for key, value in changes.items():
            setattr(row, key, value)
        uow.session.flush()
        return _model_read(row, _model_counts(uow.session).get(row.id, 0))


def delete_model(ctx: AppContext, actor: Actor, code: str) -> None:
    """Delete a model no device uses."""
    _require_city_wide(actor, "iot.model.write")
    with _device_change(ctx, actor, "iot.model.delete") as uow:
        row = _load_model(uow.session, code)
        used = uow.session.scalar(select(func.count()).where(Device.model_id == row.id))
        if used:
            raise Conflict(
                "{count} devices use the model {code}; delete or move them first.", count=used, code=code
            )
        uow.session.delete(row)


# --- devices ---------------------------------------------------------------------------------------


def check_tenant(value: str | None) -> str:
    """A tenant name ('' is the default tenant)."""
    if not value:
        return ""
    if not schemas.TENANT_RE.match(value):
        raise ValidationFailed("The tenant may only hold letters, digits, '_' and '-'.")
    return value


def _device_read(device: Device, model: DeviceModel) -> schemas.DeviceRead:
    return schemas.DeviceRead(
        id=device.id,
        tenant=device.tenant,
        device_id=device.device_id,
        name=device.name,
        model_code=model.code,
        entity_type=model.entity_type,
        entity_id=device.entity_id,
        protocol=device.protocol,
        lon=device.lon,
        lat=device.lat,
        department_id=device.department_id,
        department_code=device.department_code,
        district_code=device.district_code,
        static_attributes=dict(device.static_attributes or {}),
        status=device.status,
        status_changed_at=device.status_changed_at,
        last_seen_at=device.last_seen_at,
        revoked=device.revoked,
        revoked_at=device.revoked_at,
        key_issued_at=device.key_issued_at,
        created_at=device.created_at,
        updated_at=device.updated_at,
    )


def entity_of(
    entity_id: str, entity_type: str, name: str, lon: float, lat: float, static: Mapping[str, Any]
) -> dict[str, Any]:
    """A device's context entity (normalized NGSI-LD, core @context terms)."""
    entity: dict[str, Any] = {
        "id": entity_id,
        "type": entity_type,
        "name": {"type": "Property", "value": name},
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}},
    }
    for key, value in static.items():
        entity[key] = {"type": "Property", "value": value}
    return entity


@dataclass
class _Planned:
    """A device ready to be inserted, its key (clear text, shown once) and its entity."""

    row: int
    device: Device
    model: DeviceModel
    key: str
    entity: dict[str, Any]


class RowProblem(ProblemError):
    """A device that cannot be registered, naming the input field at fault."""

    status = 422
    slug = "validation-failed"
    title = "Validation failed"

    def __init__(self, column: str, problem: ProblemError) -> None:
        """Wrap a problem with the field (CSV column) it concerns."""
        super().__init__(problem.detail, extra=problem.extra, **problem.params)
        self.column = column
        self.problem = problem


@dataclass
class _Registry:
    """What provisioning checks against: departments, models, and ids taken (in the database or this batch)."""

    departments: dict[str, tuple[int, str]]
    models: dict[str, DeviceModel]
    taken_devices: set[str] = field(default_factory=set)
    taken_entities: set[str] = field(default_factory=set)


def _registry(
    ctx: AppContext, session: Session, tenant: str, devices: Sequence[schemas.DeviceCreate]
) -> _Registry:
    """Load what the given devices refer to, in a few queries."""
    models = {m.code: m for m in session.scalars(select(DeviceModel))}
    registry = _Registry(_departments(ctx), models)
    ids = sorted({d.device_id for d in devices})
    for start in range(0, len(ids), LOOKUP_CHUNK):
        chunk = ids[start : start + LOOKUP_CHUNK]
        stmt = select(Device.device_id).where(Device.tenant == tenant, Device.device_id.in_(chunk))
        registry.taken_devices.update(session.scalars(stmt))
    entity_ids = sorted(
        {
            d.entity_id or f"urn:ngsi-ld:{models[d.model_code].entity_type}:{d.device_id}"
            for d in devices
            if d.model_code in models
        }
    )
    for start in range(0, len(entity_ids), LOOKUP_CHUNK):
        chunk = entity_ids[start : start + LOOKUP_CHUNK]
        stmt = select(Device.entity_id).where(Device.tenant == tenant, Device.entity_id.in_(chunk))
        registry.taken_entities.update(session.scalars(stmt))
    return registry


def _plan(
    ctx: AppContext,
    actor: Actor,
    tenant: str,
    row: int,
    data: schemas.DeviceCreate,
    registry: _Registry,
    now: datetime,
) -> _Planned:
    """Check one device against the registry and build its row, key and entity (RowProblem naming the field)."""
    dept = registry.departments.get(data.department_code)
    if dept is None:
        raise RowProblem(
            "department", ValidationFailed("No department has the code {code}.", code=data.department_code)
        )
    try:
        actor.require("iot.device.create", dept[0])
    except ProblemError as exc:
        raise RowProblem("department", exc) from None
    model = registry.models.get(data.model_code)
    if model is None:
        raise RowProblem("model", ValidationFailed("No device model {code}.", code=data.model_code))
    if data.device_id in registry.taken_devices:
        raise RowProblem("device_id", Conflict("The device {id} is registered already.", id=data.device_id))
    entity_id = data.entity_id or f"urn:ngsi-ld:{model.entity_type}:{data.device_id}"
    if entity_id in registry.taken_entities:
        raise RowProblem("entity_id", Conflict("Another device feeds the entity {id}.", id=entity_id))
    clash = sorted(set(data.static_attributes) & {a["name"] for a in model.attributes})
    if clash:
        raise RowProblem(
            "static_attributes",
            ValidationFailed(
                "{name} is measured by the device; it cannot be a static attribute.", name=clash[0]
            ),
        )
    registry.taken_devices.add(data.device_id)
    registry.taken_entities.add(entity_id)
    key = new_key()
    device = Device(
        tenant=tenant,
        device_id=data.device_id,
        name=data.name,
        model_id=model.id,
        entity_id=entity_id,
        protocol=data.protocol,
        lon=data.lon,
        lat=data.lat,
        department_id=dept[0],
        department_code=dept[1],
        district_code=district_of(ctx, data.lon, data.lat),
        static_attributes=dict(data.static_attributes),
        key_hash=_sha256(key),
        key_issued_at=now,
        revoked=False,
        status="new",
        created_at=now,
        updated_at=now,
    )
    entity = entity_of(entity_id, model.entity_type, data.name, data.lon, data.lat, data.static_attributes)
    return _Planned(row, device, model, key, entity)


def _create(
    ctx: AppContext, actor: Actor, tenant: str, planned: Sequence[_Planned]
) -> tuple[list[_Planned], dict[int, RowProblem]]:
    """Write the entities (one batch), then the devices whose entity was written (one unit of work)."""
    failed: dict[int, RowProblem] = {}
    if not planned:
        return [], failed
    result = context.upsert_entities(ctx, SYSTEM, tenant, [p.entity for p in planned])
    bad = {str(e.get("entityId")): e.get("error") or {} for e in result.errors}
    done = []
    for item in planned:
        problem = bad.get(item.entity["id"])
        if problem is None:
            done.append(item)
        else:
            detail = str(problem.get("detail") or problem.get("title") or "")
            failed[item.row] = RowProblem(
                "entity_id",
                ValidationFailed("The context broker refused the entity: {reason}", reason=detail),
            )
    if not done:
        return done, failed
    try:
        with _device_change(ctx, actor, "iot.device.create") as uow:
            uow.session.add_all([item.device for item in done])
            uow.session.flush()
            uow.emit_many(
                [
                    DeviceProvisioned(
                        tenant=tenant,
                        device_id=item.device.device_id,
                        entity_id=item.device.entity_id,
                        model_code=item.model.code,
                        department_id=item.device.department_id,
                    )
                    for item in done
                ]
            )
    except IntegrityError:
        raise Conflict("A device with one of these ids was registered at the same time; try again.") from None
    return done, failed


def _provisioned(item: _Planned) -> schemas.ProvisionedDevice:
    return schemas.ProvisionedDevice(**_device_read(item.device, item.model).model_dump(), key=item.key)


def provision(
    ctx: AppContext, actor: Actor, tenant: str, device: schemas.DeviceCreate
) -> schemas.ProvisionedDevice:
    """Register a device: its row, its key (returned once, only a hash is kept) and its context entity."""
    tenant = check_tenant(tenant)
    actor.require("iot.device.create")
    with ctx.read() as session:
        registry = _registry(ctx, session, tenant, [device])
    try:
        planned = _plan(ctx, actor, tenant, 0, device, registry, utcnow())
    except RowProblem as exc:
        raise exc.problem from None
    done, failed = _create(ctx, actor, tenant, [planned])
    if failed:
        raise failed[0].problem
    return _provisioned(done[0])


def import_devices(ctx: AppContext, actor: Actor, tenant: str, data: bytes) -> schemas.ImportReport:
    """Register the devices of a CSV file (UTF-8, header row); rows with a problem are listed, not imported."""
    tenant = check_tenant(tenant)
    actor.require("iot.device.create")
    limit = _settings(ctx).import_max_rows
    problems: list[schemas.ImportProblem] = []
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationFailed("The file is not UTF-8 text (byte {position}).", position=exc.start) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [name.strip().lower() for name in next(reader, [])]
    if not header or header == [""]:
        raise ValidationFailed("The file is empty; the first row names the columns.")
    unknown = [name for name in header if name not in CSV_COLUMNS]
    missing = [name for name in CSV_REQUIRED if name not in header]
    if unknown or missing or len(set(header)) != len(header):
        for name in unknown:
            problems.append(_problem(1, name, N_("Unknown column.")))
        for name in missing:
            problems.append(_problem(1, name, N_("The column is missing.")))
        if len(set(header)) != len(header):
            problems.append(_problem(1, "", N_("A column is named twice.")))
        return schemas.ImportReport(rows=0, created=[], errors=problems)
    parsed: list[tuple[int, schemas.DeviceCreate]] = []
    rows = 0
    for line in reader:
        if not any(cell.strip() for cell in line):
            continue
        rows += 1
        row = reader.line_num
        if rows > limit:
            raise ValidationFailed("The file holds more than {limit} devices; split it.", limit=limit)
        if len(line) != len(header):
            problems.append(
                _problem(
                    row,
                    "",
                    N_("The row has {found} cells, the header {wanted}."),
                    found=len(line),
                    wanted=len(header),
                )
            )
            continue
        cells = {name: value.strip() for name, value in zip(header, line, strict=True)}
        values: dict[str, Any] = {
            "device_id": cells["device_id"],
            "name": cells["name"],
            "model_code": cells["model"],
            "lon": cells["lon"] or None,
            "lat": cells["lat"] or None,
            "department_code": cells["department"],
        }
        if cells.get("entity_id"):
            values["entity_id"] = cells["entity_id"]
        if cells.get("protocol"):
            values["protocol"] = cells["protocol"].lower()
        try:
            parsed.append((row, schemas.DeviceCreate(**values)))
        except ValidationError as exc:
            problems += _cell_problems(row, exc)
    with ctx.read() as session:
        registry = _registry(ctx, session, tenant, [d for _, d in parsed])
    now = utcnow()
    planned: list[_Planned] = []
    for row, device in parsed:
        try:
            planned.append(_plan(ctx, actor, tenant, row, device, registry, now))
        except RowProblem as exc:
            problems.append(_row_problem(row, exc))
    done, failed = _create(ctx, actor, tenant, planned)
    problems += [_row_problem(row, exc) for row, exc in failed.items()]
    problems.sort(key=lambda p: (p.row, p.column))
    return schemas.ImportReport(rows=rows, created=[_provisioned(item) for item in done], errors=problems)


# Messages of the pydantic errors a CSV cell can cause, by error type (the pages translate them).
CELL_MESSAGES = {
    "missing": N_("A value is required."),
    "string_too_short": N_("A value is required."),
    "string_too_long": N_("At most {max_length} characters."),
    "string_pattern_mismatch": N_("The value has a format that is not allowed."),
    "float_parsing": N_("A number is required."),
    "float_type": N_("A number is required."),
    "finite_number": N_("A number is required."),
    "greater_than_equal": N_("At least {ge}."),
    "less_than_equal": N_("At most {le}."),
    "literal_error": N_("Not one of the allowed values: {expected}."),
}


def _problem(row: int, column: str, msgid: str, **params: Any) -> schemas.ImportProblem:
    """A row problem in English, with what the pages need to translate it."""
    return schemas.ImportProblem(
        row=row,
        column=column,
        message=msgid.format(**params) if params else msgid,
        msgid=msgid,
        params=params,
    )


def _row_problem(row: int, exc: RowProblem) -> schemas.ImportProblem:
    return _problem(row, exc.column, exc.problem.detail, **exc.problem.params)


def _cell_problems(row: int, exc: ValidationError) -> list[schemas.ImportProblem]:
    """The problems of a row's cells, by column."""
    found = []
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else ""
        msgid = CELL_MESSAGES.get(str(error["type"]))
        details = {
            k: v for k, v in (error.get("ctx") or {}).items() if k in ("max_length", "ge", "le", "expected")
        }
        column = CSV_FIELDS.get(name, name)
        if msgid is None:
            found.append(
                schemas.ImportProblem(
                    row=row,
                    column=column,
                    message=str(error["msg"]),
                    msgid="{reason}",
                    params={"reason": str(error["msg"])},
                )
            )
        else:
            found.append(_problem(row, column, msgid, **{k: str(v) for k, v in details.items()}))
    return found


def _device_scope(actor: Actor, permission: str) -> Scope:
    return actor.visible_departments(permission)


def list_devices(
    ctx: AppContext,
    actor: Actor,
    *,
    tenant: str = "",
    model_code: str | None = None,
    status: str | None = None,
    department_id: int | None = None,
    district_code: str | None = None,
    q: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> schemas.Page[schemas.DeviceRead]:
    """Devices in the departments the actor may see, filtered."""
    scope = _device_scope(actor, "iot.device.read")
    stmt = (
        select(Device, DeviceModel)
        .join(DeviceModel, DeviceModel.id == Device.model_id)
        .where(Device.tenant == tenant)
    )
    if not isinstance(scope, AllDepartments):
        stmt = stmt.where(Device.department_id.in_(scope))
    if model_code:
        stmt = stmt.where(DeviceModel.code == model_code)
    if status == "revoked":
        stmt = stmt.where(Device.revoked.is_(True))
    elif status:
        stmt = stmt.where(Device.status == status, Device.revoked.is_(False))
    if department_id is not None:
        stmt = stmt.where(Device.department_id == department_id)
    if district_code:
        stmt = stmt.where(Device.district_code == district_code)
    if q:
        like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(
            or_(Device.device_id.ilike(like, escape="\\"), Device.name.ilike(like, escape="\\"))
        )
    with ctx.read() as session:
        total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        rows = session.execute(stmt.order_by(Device.device_id, Device.id).limit(limit).offset(offset))
        items = [_device_read(device, model) for device, model in rows]
    return schemas.Page[schemas.DeviceRead](items=items, total=total, limit=limit, offset=offset)


def status_counts(ctx: AppContext, actor: Actor, tenant: str = "") -> dict[str, int]:
    """How many visible devices are new, online, offline and revoked."""
    scope = _device_scope(actor, "iot.device.read")
    stmt = select(Device.status, Device.revoked, func.count()).where(Device.tenant == tenant)
    if not isinstance(scope, AllDepartments):
        stmt = stmt.where(Device.department_id.in_(scope))
    counts = {"new": 0, "online": 0, "offline": 0, "revoked": 0}
    with ctx.read() as session:
        for status, revoked, n in session.execute(stmt.group_by(Device.status, Device.revoked)):
            key = "revoked" if revoked else status
            counts[key] = counts.get(key, 0) + int(n)
    return counts


def _visible(session: Session, actor: Actor, permission: str, device_pk: int) -> tuple[Device, DeviceModel]:
    """A device the actor may act on with `permission`; 404 otherwise (existence is not revealed)."""
    row = session.execute(
        select(Device, DeviceModel)
        .join(DeviceModel, DeviceModel.id == Device.model_id)
        .where(Device.id == device_pk)
    ).first()
    if row is None or not actor.can(permission, row[0].department_id):
        actor.require(permission)
        if row is not None and actor.can("iot.device.read", row[0].department_id):
            raise Forbidden("You lack the permission {permission}.", permission=permission)
        raise NotFound("No device {id}.", id=device_pk)
    return row[0], row[1]


def get_device(ctx: AppContext, actor: Actor, device_pk: int) -> schemas.DeviceRead:
    """One device."""
    with ctx.read() as session:
        return _device_read(*_visible(session, actor, "iot.device.read", device_pk))


def device_model(ctx: AppContext, actor: Actor, device_pk: int) -> schemas.DeviceModelRead:
    """The model of a device the actor may see."""
    with ctx.read() as session:
        _, model = _visible(session, actor, "iot.device.read", device_pk)
        return _model_read(model)


def find_device(ctx: AppContext, actor: Actor, tenant: str, device_id: str) -> schemas.DeviceRead:
    """One device by its device id."""
    actor.require("iot.device.read")
    with ctx.read() as session:
        pk = session.scalar(select(Device.id).where(Device.tenant == tenant, Device.device_id == device_id))
        if pk is None:
            raise NotFound("No device {id}.", id=device_id)
        return _device_read(*_visible(session, actor, "iot.device.read", pk))


def update_device(
    ctx: AppContext, actor: Actor, device_pk: int, data: schemas.DeviceUpdate
) -> schemas.DeviceRead:
    """Rename, move, re-assign or re-describe a device; its entity follows."""
    changes = {k: v for k, v in data.model_dump(exclude_unset=True).items() if v is not None}
    with ctx.read() as session:
        device, model = _visible(session, actor, "iot.device.update", device_pk)
    if "department_code" in changes and changes["department_code"] != device.department_code:
        dept = _departments(ctx).get(changes["department_code"])
        if dept is None:
            raise ValidationFailed("No department has the code {code}.", code=changes["department_code"])
        actor.require("iot.device.update", dept[0])
        changes["department_id"] = dept[0]
    if "static_attributes" in changes:
        clash = sorted(set(changes["static_attributes"]) & {a["name"] for a in model.attributes})
        if clash:
            raise ValidationFailed(
                "{name} is measured by the device; it cannot be a static attribute.", name=clash[0]
            )
    if "lon" in changes:
        changes["district_code"] = district_of(ctx, changes["lon"], changes["lat"])
    entity_changes: dict[str, Any] = {}
    if "name" in changes and changes["name"] != device.name:
        entity_changes["name"] = {"type": "Property", "value": changes["name"]}
    if "lon" in changes and (changes["lon"], changes["lat"]) != (device.lon, device.lat):
        point = {"type": "Point", "coordinates": [changes["lon"], changes["lat"]]}
        entity_changes["location"] = {"type": "GeoProperty", "value": point}
    for key, value in changes.get("static_attributes", {}).items():
        entity_changes[key] = {"type": "Property", "value": value}
    if entity_changes:
        result = context.upsert_entities(
            ctx,
            SYSTEM,
            device.tenant,
            [{"id": device.entity_id, "type": model.entity_type, **entity_changes}],
        )
        if result.errors:
            detail = str((result.errors[0].get("error") or {}).get("detail") or "")
            raise ValidationFailed("The context broker refused the entity: {reason}", reason=detail)
    with _device_change(ctx, actor, "iot.device.update") as uow:
        row = uow.session.get_one(Device, device.id)
        for key, value in changes.items():
            setattr(row, key, value)
        uow.session.flush()
        return _device_read(row, model)


def delete_device(ctx: AppContext, actor: Actor, device_pk: int) -> None:
    """Delete a device (its entity and its history stay in the context broker)."""
    with _device_change(ctx, actor, "iot.device.delete") as uow:
        device, _ = _visible(uow.session, actor, "iot.device.delete", device_pk)
        uow.session.delete(device)


def rotate_key(ctx: AppContext, actor: Actor, device_pk: int) -> schemas.ProvisionedDevice:
    """Give a device a new key (the old one stops working at once); a revoked device is re-admitted."""
    key = new_key()
    with _device_change(ctx, actor, "iot.device.rotate") as uow:
        device, model = _visible(uow.session, actor, "iot.device.credentials", device_pk)
        device.key_hash = _sha256(key)
        device.key_issued_at = utcnow()
        device.revoked = False
        device.revoked_at = None
        uow.session.flush()
        read = _device_read(device, model)
    return schemas.ProvisionedDevice(**read.model_dump(), key=key)


def revoke_device(ctx: AppContext, actor: Actor, device_pk: int) -> schemas.DeviceRead:
    """Refuse the device's messages from now on (a new key re-admits it)."""
    with _device_change(ctx, actor, "iot.device.revoke") as uow:
        device, model = _visible(uow.session, actor, "iot.device.credentials", device_pk)
        if not device.revoked:
            device.revoked = True
            device.revoked_at = utcnow()
        uow.session.flush()
        return _device_read(device, model)


@dataclass(frozen=True)
class DeviceData:
    """A device's entity as the device page shows it: current values and the history of numeric ones."""

    entity: dict[str, Any] | None
    history: dict[str, list[tuple[datetime, float]]]


def device_data(ctx: AppContext, actor: Actor, device_pk: int, limit: int = 200) -> DeviceData:
    """The device's entity and the recent history of its model's numeric attributes."""
    with ctx.read() as session:
        device, model = _visible(session, actor, "iot.device.read", device_pk)
    # Whoever may see the device sees what it measured, whatever their rights on the whole broker.
    try:
        entity = context.get_entity(ctx, SYSTEM, device.tenant, device.entity_id)
    except ProblemError:
        return DeviceData(None, {})
    history: dict[str, list[tuple[datetime, float]]] = {}
    for spec in model.attributes:
        if spec.get("kind") in ("number", "integer"):
            iri = _attribute_iri(entity, spec["name"])
            if iri is not None:
                history[spec["name"]] = context.attribute_history(
                    ctx, SYSTEM, device.tenant, device.entity_id, iri, limit
                )
    return DeviceData(entity, history)


def _attribute_iri(stored: Mapping[str, Any], name: str) -> str | None:
    """The expanded name under which a stored entity holds an attribute given by its term."""
    for iri in stored.get("attrs", {}):
        if iri == name or iri.rsplit("/", 1)[-1] == name or iri.rsplit("#", 1)[-1] == name:
            return str(iri)
    return None


# --- ingest ----------------------------------------------------------------------------------------


@dataclass
class _Origin:
    """Where a reading handed to the context broker came from: a message and a reading in it."""

    report: MessageReport
    message: int
    reading: int


@dataclass
class _Batch:
    """One tenant's readings of a batch, merged per (entity, instant), with where each came from."""

    readings: dict[tuple[str, datetime], tuple[dict[str, Any], dict[str, str], list[_Origin]]] = field(
        default_factory=dict
    )


def ingest_messages(ctx: AppContext, messages: Sequence[Message]) -> IngestReport:
    """Check and store a batch of device messages; rejections are counted and kept, never dropped."""
    # The good readings of every message go to the context broker in one call per tenant (one
    # transaction each); then the rejected items, the counters, the devices' last_seen and status
    # changes are written in one more transaction. A database error raises before anything is
    # acknowledged; storing the same batch again stores each value once.
    settings = _settings(ctx)
    now = utcnow()
    limits = payloads.Limits(
        future=timedelta(seconds=settings.max_future_seconds),
        age=timedelta(days=settings.max_age_days) if settings.max_age_days > 0 else None,
    )
    report = IngestReport()
    decoded: list[payloads.Decoded | None] = []
    for message in messages:
        item = MessageReport(device_id=message.device_id)
        report.messages.append(item)
        decoded.append(_decode(message, item, settings.max_payload_bytes))
    # every message's device, so even an unreadable message is filed under its owner
    wanted = {(m.tenant, m.device_id) for m in messages if m.device_id}
    devices = lookup_devices(ctx, wanted) if wanted else {}
    batches: dict[str, _Batch] = {}
    seen: dict[int, DeviceInfo] = {}
    require_mqtt_key = settings.mqtt_require_key
    for number, (message, data) in enumerate(zip(messages, decoded, strict=True)):
        if data is None:
            continue
        item = report.messages[number]
        info = devices.get((message.tenant, message.device_id))
        if not _admit(message, data, info, item, require_mqtt_key):
            continue
        assert info is not None
        seen[info.pk] = info
        batch = batches.setdefault(message.tenant, _Batch())
        model = info.model
        item.readings = len(data.readings)
        for raw in data.readings:
            checked = payloads.check_reading(raw, model.specs, message.received_at, limits, item.rejections)
            if checked is None:
                continue
            observed, values = checked
            key = (info.entity_id, observed)
            merged = batch.readings.get(key)
            if merged is None:
                batch.readings[key] = (values, model.units, [_Origin(item, number, raw.index)])
            else:
                for name, value in values.items():
                    merged[0].setdefault(name, value)
                merged[2].append(_Origin(item, number, raw.index))
            item.accepted += 1
            item.values += len(values)
    for tenant, batch in batches.items():
        if not batch.readings:
            continue
        keys = list(batch.readings)
        readings = [
            context.Reading(entity_id=entity_id, observed_at=observed, values=values, unit_codes=units)
            for (entity_id, observed), (values, units, _) in batch.readings.items()
        ]
        result = context.ingest(ctx, SYSTEM, tenant, readings)
        report.stored += result.stored
        report.duplicates += result.duplicates
        for index in result.unknown:
            values, _, origins = batch.readings[keys[index]]
            for origin in origins:
                origin.report.accepted -= 1
                origin.report.rejections.append(
                    Rejection("unknown_entity", N_("the device's entity does not exist"), origin.reading)
                )
    for item in report.messages:
        for rejection in item.rejections:
            report.rejected[rejection.reason] = report.rejected.get(rejection.reason, 0) + 1
    _record(ctx, settings, messages, report, devices, seen, now)
    return report


def _decode(message: Message, item: MessageReport, max_bytes: int) -> payloads.Decoded | None:
    """The message's readings, or None after recording why the whole message is refused."""
    if len(message.payload) > max_bytes:
        item.rejections.append(
            Rejection(
                "oversize",
                N_("{size} bytes, more than the limit of {limit}"),
                params={"size": len(message.payload), "limit": max_bytes},
            )
        )
        return None
    try:
        return payloads.decode(message.payload)
    except payloads.PayloadError as exc:
        item.rejections.append(Rejection("malformed", exc.template, params=exc.params))
        return None


def _admit(
    message: Message,
    data: payloads.Decoded,
    info: DeviceInfo | None,
    item: MessageReport,
    require_mqtt_key: bool,
) -> bool:
    """Whether the message comes from a known, admitted device holding its key (recording why not)."""
    if info is None:
        item.rejections.append(Rejection("unknown_device", N_("no device is registered with this id")))
        return False
    if info.revoked:
        item.rejections.append(Rejection("revoked", N_("the device's key is revoked")))
        return False
    if message.channel == "internal" or (message.channel == "mqtt" and not require_mqtt_key):
        return True
    key = message.key or data.key
    if not key:
        item.rejections.append(Rejection("missing_key", N_("the message carries no device key")))
        return False
    if not key_matches(info, key):
        item.rejections.append(Rejection("wrong_key", N_("the device key is wrong")))
        return False
    return True


def _short(value: Any) -> Any:
    """A rejection parameter as kept in a dead letter (long text cut)."""
    return value[:200] if isinstance(value, str) else value


def _payload_text(payload: bytes, limit: int) -> tuple[str, bool]:
    """The first bytes of a payload as text (undecodable bytes escaped), and whether it was cut."""
    cut = len(payload) > limit
    return payload[:limit].decode("utf-8", errors="backslashreplace"), cut


def _dead_letters(
    messages: Sequence[Message],
    report: IngestReport,
    departments: Mapping[tuple[str, str], int],
    payload_limit: int,
) -> list[dict[str, Any]]:
    """One row per (message, reason) with rejections: the message's payload and the rejected items."""
    rows: list[dict[str, Any]] = []
    for message, item in zip(messages, report.messages, strict=True):
        if not item.rejections:
            continue
        by_reason: dict[str, list[Rejection]] = {}
        for rejection in item.rejections:
            by_reason.setdefault(rejection.reason, []).append(rejection)
        payload, cut = _payload_text(message.payload, payload_limit)
        for reason, items in by_reason.items():
            rows.append(
                {
                    "received_at": message.received_at,
                    "tenant": message.tenant[:64],
                    "device_id": message.device_id[:128],
                    "department_id": departments.get((message.tenant, message.device_id)),
                    "channel": message.channel,
                    "reason": reason,
                    "count": len(items),
                    "detail": items[0].message[:1000],
                    "errors": [
                        {
                            "reading": r.reading,
                            "attribute": r.attribute,
                            "message": r.message[:300],
                            "template": r.template,
                            "params": {k: _short(v) for k, v in r.params.items()},
                        }
                        for r in items[:ERRORS_KEPT]
                    ],
                    "payload": payload,
                    "payload_size": len(message.payload),
                    "truncated": cut,
                }
            )
    return rows


def _record(
    ctx: AppContext,
    settings: IotSettings,
    messages: Sequence[Message],
    report: IngestReport,
    devices: Mapping[tuple[str, str], DeviceInfo | None],
    seen: Mapping[int, DeviceInfo],
    now: datetime,
) -> None:
    """Write the rejected items, the minute's counters and the devices' last_seen and status, in one go."""
    departments = {key: info.department_id for key, info in devices.items() if info is not None}
    dead = _dead_letters(messages, report, departments, settings.dead_letter_payload_bytes)
    counts = {
        "messages": len(messages),
        "readings": report.accepted,
        "stored": report.stored,
        "duplicates": report.duplicates,
        **{f"rejected.{reason}": n for reason, n in report.rejected.items()},
    }
    minute = now.replace(second=0, microsecond=0)
    for attempt in range(3):
        try:
            with ctx.uow(SYSTEM, "iot.ingest") as uow:
                conn = uow.session.connection()
                bulk_insert(conn, DeadLetter, dead)
                _count(uow.session, minute, counts)
                if seen:
                    _mark_seen(uow, sorted(seen), now)
            return
        except DBAPIError:
            # two processes updating the same devices or counters in another order: try again
            if attempt == 2:
                raise
            time.sleep(0.05 * (attempt + 1))


def reject_messages(
    ctx: AppContext,
    messages: Sequence[Message],
    reason: schemas.Reason,
    template: str,
    params: Mapping[str, Any] | None = None,
) -> None:
    """Record whole messages as rejected for one reason (a dead letter each, counted)."""
    rejection = Rejection(reason, template[:1000], params=dict(params or {}))
    report = IngestReport(
        messages=[MessageReport(m.device_id, rejections=[rejection]) for m in messages],
        rejected={reason: len(messages)},
    )
    _record(ctx, _settings(ctx), messages, report, {}, {}, utcnow())


def _count(session: Session, minute: datetime, counts: Mapping[str, int]) -> None:
    """Add to the minute's counters (one upsert statement, rows in a fixed order)."""
    rows = [{"minute": minute, "metric": metric, "count": n} for metric, n in sorted(counts.items()) if n]
    if not rows:
        return
    table = cast(Table, IngestCounter.__table__)
    dialect = session.get_bind().dialect.name
    stmt = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    stmt = stmt.values(rows)
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["minute", "metric"], set_={"count": table.c.count + stmt.excluded.count}
        )
    )


def _id_sets(session: Session, column: Any, ids: Sequence[int]) -> list[ColumnElement[bool]]:
    """Conditions selecting rows by id: one array parameter on PostgreSQL, chunks of an IN list on SQLite."""
    if session.get_bind().dialect.name == "postgresql":
        return [column == any_(bindparam("ids", list(ids), type_=postgresql.ARRAY(Integer)))]
    return [column.in_(ids[start : start + LOOKUP_CHUNK]) for start in range(0, len(ids), LOOKUP_CHUNK)]


def _mark_seen(uow: UnitOfWork, pks: Sequence[int], now: datetime) -> None:
    """Set the devices' last_seen (set-based) and bring new or offline ones online (events, ledger)."""
    session = uow.session
    came: list[Any] = []
    for among in _id_sets(session, Device.id, pks):
        found = session.execute(
            update(Device)
            .where(among, Device.status != "online")
            .values(status="online", status_changed_at=now, last_seen_at=now, updated_at=Device.updated_at)
            .returning(
                Device.id,
                Device.tenant,
                Device.device_id,
                Device.entity_id,
                Device.department_id,
                Device.status,
            )
            .execution_options(synchronize_session=False)
        ).all()
        came += found
        session.execute(
            update(Device)
            .where(among)
            .values(last_seen_at=now, updated_at=Device.updated_at)
            .execution_options(synchronize_session=False)
        )
    for pk, _tenant, device_id, _entity, _dept, _status in came:
        uow.record("update", f"iot_device:{pk}", None, {"device_id": device_id, "status": "online"})
    uow.emit_many(
        [
            DeviceOnline(
                tenant=tenant, device_id=device_id, entity_id=entity_id, department_id=dept, last_seen_at=now
            )
            for _, tenant, device_id, entity_id, dept, _ in came
        ]
    )


# --- status, retention, rates, dead letters ---------------------------------------------------------


def mark_offline(ctx: AppContext, now: datetime | None = None) -> int:
    """Mark online devices silent beyond their model's timeout offline (one statement per timeout)."""
    now = now or utcnow()
    with ctx.read() as session:
        timeouts = session.execute(select(DeviceModel.id, DeviceModel.offline_timeout_seconds)).all()
    by_timeout: dict[int, list[int]] = {}
    for model_id, seconds in timeouts:
        by_timeout.setdefault(seconds, []).append(model_id)
    gone: list[Any] = []
    with ctx.uow(SYSTEM, "iot.device.offline") as uow:
        for seconds, model_ids in sorted(by_timeout.items()):
            gone += uow.session.execute(
                update(Device)
                .where(
                    Device.status == "online",
                    Device.model_id.in_(model_ids),
                    Device.last_seen_at < now - timedelta(seconds=seconds),
                )
                .values(status="offline", status_changed_at=now, updated_at=Device.updated_at)
                .returning(
                    Device.id,
                    Device.tenant,
                    Device.device_id,
                    Device.entity_id,
                    Device.department_id,
                    Device.last_seen_at,
                )
                .execution_options(synchronize_session=False)
            ).all()
        for pk, _tenant, device_id, _entity, _dept, _seen in gone:
            uow.record("update", f"iot_device:{pk}", None, {"device_id": device_id, "status": "offline"})
        uow.emit_many(
            [
                DeviceOffline(tenant=t, device_id=d, entity_id=e, department_id=dept, last_seen_at=seen)
                for _, t, d, e, dept, seen in gone
            ]
        )
    return len(gone)


def purge(ctx: AppContext, now: datetime | None = None) -> tuple[int, int]:
    """Delete rejected messages and counters past their retention; (dead letters, counters) deleted."""
    settings, now = _settings(ctx), now or utcnow()
    letters_before = now - timedelta(days=settings.dead_letter_retention_days)
    counters_before = now - timedelta(days=settings.counter_retention_days)
    with ctx.uow(SYSTEM, "iot.retention") as uow:
        letters = uow.session.execute(delete(DeadLetter).where(DeadLetter.received_at < letters_before))
        counters = uow.session.execute(delete(IngestCounter).where(IngestCounter.minute < counters_before))
        deleted = int(getattr(letters, "rowcount", 0) or 0), int(getattr(counters, "rowcount", 0) or 0)
        if any(deleted):  # a purge that found nothing wrote nothing
            uow.record(
                "delete",
                "iot_retention:*",
                None,
                {"dead_letters": deleted[0], "counters": deleted[1], "before": letters_before.isoformat()},
            )
    return deleted


def ingest_rates(
    ctx: AppContext, actor: Actor, minutes: int = 60, now: datetime | None = None
) -> schemas.RateSeries:
    """Per-minute counts of the last `minutes` minutes (all processes), oldest first."""
    actor.require("iot.ingest.read")
    now = now or utcnow()
    last = now.replace(second=0, microsecond=0)
    moments = [last - timedelta(minutes=minutes - 1 - i) for i in range(minutes)]
    at = {moment: i for i, moment in enumerate(moments)}
    series: dict[str, list[int]] = {metric: [0] * minutes for metric in METRICS}
    rejected: dict[str, list[int]] = {}
    with ctx.read() as session:
        rows = session.execute(
            select(IngestCounter.minute, IngestCounter.metric, IngestCounter.count).where(
                IngestCounter.minute >= moments[0]
            )
        )
        for minute, metric, count in rows:
            i = at.get(minute)
            if i is None:
                continue
            if metric.startswith("rejected."):
                rejected.setdefault(metric.removeprefix("rejected."), [0] * minutes)[i] += int(count)
            elif metric in series:
                series[metric][i] += int(count)
    return schemas.RateSeries(minutes=moments, rejected=dict(sorted(rejected.items())), **series)


def _dead_letter_scope(stmt: Select[Any], actor: Actor) -> Select[Any]:
    scope = actor.visible_departments("iot.ingest.read")
    if isinstance(scope, AllDepartments):
        return stmt
    return stmt.where(DeadLetter.department_id.in_(scope))


def list_dead_letters(
    ctx: AppContext,
    actor: Actor,
    *,
    reason: str | None = None,
    device_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> schemas.Page[schemas.DeadLetterRead]:
    """Rejected messages, newest first (of the devices of the actor's departments; all when city-wide)."""
    stmt = _dead_letter_scope(select(DeadLetter), actor)
    if reason:
        stmt = stmt.where(DeadLetter.reason == reason)
    if device_id:
        stmt = stmt.where(DeadLetter.device_id == device_id)
    if since is not None:
        stmt = stmt.where(DeadLetter.received_at >= since)
    if until is not None:
        stmt = stmt.where(DeadLetter.received_at < until)
    with ctx.read() as session:
        total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        rows = session.scalars(
            stmt.order_by(DeadLetter.received_at.desc(), DeadLetter.id.desc()).limit(limit).offset(offset)
        )
        items = [schemas.DeadLetterRead.model_validate(row) for row in rows]
    return schemas.Page[schemas.DeadLetterRead](items=items, total=total, limit=limit, offset=offset)


def get_dead_letter(ctx: AppContext, actor: Actor, letter_id: int) -> schemas.DeadLetterDetail:
    """One rejected message with its payload."""
    stmt = _dead_letter_scope(select(DeadLetter).where(DeadLetter.id == letter_id), actor)
    with ctx.read() as session:
        row = session.scalar(stmt)
        if row is None:
            raise NotFound("No rejected message {id}.", id=letter_id)
        return schemas.DeadLetterDetail.model_validate(row)
