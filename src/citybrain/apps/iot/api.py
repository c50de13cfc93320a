"""The iot REST API under /api/iot: device models, devices and their keys, CSV import, ingest, rejected messages."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse

from citybrain.apps.iot import schemas, services
from citybrain.apps.iot.payloads import N_
from citybrain.apps.iot.schemas import Message
from citybrain.apps.iot.settings import IotSettings
from citybrain.sdk import BadRequest, Ctx, CurrentActor, ProblemError, Unauthorized, ValidationFailed, utcnow

router = APIRouter()
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=schemas.MAX_INT)]
Id = Annotated[int, Path(ge=1, le=schemas.MAX_INT)]
Code = Annotated[str, Path(min_length=1, max_length=64)]
TenantHeader = Annotated[str | None, Header(alias="NGSILD-Tenant", max_length=64)]
# The refusals of a message that mean "who are you?": answered 401 alike, so ids cannot be probed.
CREDENTIAL_REASONS = frozenset({"unknown_device", "revoked", "missing_key", "wrong_key"})
CSV_TYPES = ("text/csv", "text/plain", "application/csv", "application/octet-stream")


IMPORT_DOC = """Register the devices of a CSV file (UTF-8, header row `device_id,name,model,lon,lat,department`,
optionally `entity_id` and `protocol`). Valid rows are created and their keys are in this answer only;
each refused row is listed with its row number, column and reason. Answers 201 with the report when at
least one device was created, 422 (a problem carrying the report) when none was."""
INGEST_DOC = """Store readings of one device, sent by the device itself.

Authenticate with the device's own key: `Authorization: Device <device-id>:<key>` (the key shown when
the device was registered or its key last rotated). The tenant is `NGSILD-Tenant` (none: the default
tenant). The body is one of the three device payload forms: `{"ts": ..., "values": {"pm25": 35.2}}`,
`{"readings": [{"ts": ..., "values": {...}}, ...]}` or `{"columns": ["ts", "pm25"], "rows": [[..., 35.2],
...]}`; `ts` is ISO 8601 with an offset or epoch milliseconds, and a reading without one takes the time
it arrived. Values are checked against the device model (type, range) and each bad value is rejected
alone: the answer (200) lists every rejection. Every rejection is also kept as a rejected message for
operators to inspect (`/api/iot/dead-letters`)."""


class PayloadTooLarge(ProblemError):
    """The request body is larger than the platform accepts."""

    status = 413
    slug = "payload-too-large"
    title = "Payload too large"


# --- device models ---------------------------------------------------------------------------------


@router.get("/models", response_model=list[schemas.DeviceModelRead])
def models(ctx: Ctx, actor: CurrentActor) -> list[schemas.DeviceModelRead]:
    """Every device model with its attributes and how many devices use it."""
    return services.list_models(ctx, actor)


@router.post("/models", response_model=schemas.DeviceModelRead, status_code=status.HTTP_201_CREATED)
def create_model(data: schemas.DeviceModelCreate, ctx: Ctx, actor: CurrentActor) -> schemas.DeviceModelRead:
    """Create a device model (city-wide `iot.model.write`)."""
    return services.create_model(ctx, actor, data)


@router.get("/models/{code}", response_model=schemas.DeviceModelRead)
def model(code: Code, ctx: Ctx, actor: CurrentActor) -> schemas.DeviceModelRead:
    """One device model."""
    return services.get_model(ctx, actor, code)


@router.patch("/models/{code}", response_model=schemas.DeviceModelRead)
def update_model(
    code: Code, data: schemas.DeviceModelUpdate, ctx: Ctx, actor: CurrentActor
) -> schemas.DeviceModelRead:
    """Rename a device model, change its offline timeout or its attributes."""
    return services.update_model(ctx, actor, code, data)


@router.delete("/models/{code}", status_code=status.HTTP_204_NO_CONTENT)
def delete_model(code: Code, ctx: Ctx, actor: CurrentActor) -> None:
    """Delete a device model no device uses."""
    services.delete_model(ctx, actor, code)


# --- devices ---------------------------------------------------------------------------------------


@router.get("/devices", response_model=schemas.Page[schemas.DeviceRead])
def devices(
    ctx: Ctx,
    actor: CurrentActor,
    tenant: TenantHeader = None,
    model: Annotated[str | None, Query(max_length=64)] = None,
    status_: Annotated[schemas.DeviceStatus | Literal["revoked"] | None, Query(alias="status")] = None,
    department_id: Annotated[int | None, Query(ge=1, le=schemas.MAX_INT)] = None,
    district: Annotated[str | None, Query(max_length=12)] = None,
    device_id: Annotated[str | None, Query(max_length=128)] = None,
    q: Annotated[str | None, Query(max_length=64)] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> schemas.Page[schemas.DeviceRead]:
    """Devices of the departments the caller may see, filtered by model, status, department, district, text."""
    if device_id is not None:
        found = services.find_device(ctx, actor, services.check_tenant(tenant), device_id)
        return schemas.Page[schemas.DeviceRead](items=[found], total=1, limit=limit, offset=0)
    return services.list_devices(
        ctx,
        actor,
        tenant=services.check_tenant(tenant),
        model_code=model,
        status=status_,
        department_id=department_id,
        district_code=district,
        q=q,
        limit=limit,
        offset=offset,
    )


@router.post("/devices", response_model=schemas.ProvisionedDevice, status_code=status.HTTP_201_CREATED)
def provision(
    data: schemas.DeviceCreate, ctx: Ctx, actor: CurrentActor, tenant: TenantHeader = None
) -> schemas.ProvisionedDevice:
    """Register a device and its context entity; the device key is in this response only."""
    return services.provision(ctx, actor, services.check_tenant(tenant), data)


@router.post(
    "/devices/import",
    response_model=schemas.ImportReport,
    status_code=status.HTTP_201_CREATED,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"text/csv": {"schema": {"type": "string"}}},
            "description": "UTF-8 CSV with a header row: device_id,name,model,lon,lat,department"
            "[,entity_id,protocol]",
        }
    },
    description=IMPORT_DOC,
)
async def import_devices(
    request: Request, ctx: Ctx, actor: CurrentActor, tenant: TenantHeader = None
) -> Response:
    """Register the devices of a CSV file; valid rows are created (keys in this answer only), others listed."""
    actor.require("iot.device.create")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in CSV_TYPES:
        raise BadRequest("Send the CSV file as the request body (Content-Type: text/csv).")
    limit = ctx.app_setting("iot", IotSettings).max_payload_bytes * 256
    body = await _read_body(request, limit)
    report = await asyncio.to_thread(services.import_devices, ctx, actor, services.check_tenant(tenant), body)
    if not report.created and report.errors:
        raise ValidationFailed(
            "No device was imported: {count} rows have problems.",
            count=len({e.row for e in report.errors}),
            extra={"report": report.model_dump(mode="json")},
        )
    return JSONResponse(report.model_dump(mode="json"), status_code=201 if report.created else 200)


@router.get("/devices/{device_pk}", response_model=schemas.DeviceRead)
def device(device_pk: Id, ctx: Ctx, actor: CurrentActor) -> schemas.DeviceRead:
    """One device."""
    return services.get_device(ctx, actor, device_pk)


@router.patch("/devices/{device_pk}", response_model=schemas.DeviceRead)
def update_device(
    device_pk: Id, data: schemas.DeviceUpdate, ctx: Ctx, actor: CurrentActor
) -> schemas.DeviceRead:
    """Rename, move or re-assign a device; its entity's name and location follow."""
    return services.update_device(ctx, actor, device_pk, data)


@router.delete("/devices/{device_pk}", status_code=status.HTTP_204_NO_CONTENT)
def delete_device(device_pk: Id, ctx: Ctx, actor: CurrentActor) -> None:
    """Delete a device (its entity and history stay)."""
    services.delete_device(ctx, actor, device_pk)


@router.post("/devices/{device_pk}/key", response_model=schemas.ProvisionedDevice)
def rotate_key(device_pk: Id, ctx: Ctx, actor: CurrentActor) -> schemas.ProvisionedDevice:
    """Issue a new key (in this response only); the old key stops working, a revoked device is re-admitted."""
    return services.rotate_key(ctx, actor, device_pk)


@router.post("/devices/{device_pk}/revoke", response_model=schemas.DeviceRead)
def revoke(device_pk: Id, ctx: Ctx, actor: CurrentActor) -> schemas.DeviceRead:
    """Refuse every message of the device from now on (a new key re-admits it)."""
    return services.revoke_device(ctx, actor, device_pk)


# --- ingest ----------------------------------------------------------------------------------------


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 beyond `limit` bytes (without reading all of it)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(
            N_("The body has {size} bytes; at most {limit} are accepted."), size=int(declared), limit=limit
        )
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(N_("The body has more than {limit} bytes."), limit=limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _credentials(header: str | None) -> tuple[str, str] | None:
    """(device id, key) of `Authorization: Device <device-id>:<key>`, or None when malformed."""
    scheme, _, value = (header or "").partition(" ")
    device_id, sep, key = value.strip().partition(":")
    if scheme.lower() != "device" or not sep or not key or not schemas.DEVICE_ID_RE.match(device_id):
        return None
    return device_id, key


@router.post(
    "/ingest",
    response_model=schemas.IngestAnswer,
    responses={
        400: {"description": "The body is not a device message (not JSON, or none of the three forms)."},
        401: {"description": "The device id or key is missing or wrong, or the device is revoked."},
        413: {"description": "The body is larger than CITYBRAIN_IOT_MAX_PAYLOAD_BYTES."},
        422: {"description": "Every reading was rejected (the problem's `report` says why)."},
    },
    description=INGEST_DOC,
)
async def ingest(
    request: Request,
    ctx: Ctx,
    authorization: Annotated[str | None, Header()] = None,
    tenant: TenantHeader = None,
) -> schemas.IngestAnswer:
    """Store readings of one device, sent by the device itself with its own key."""
    settings = ctx.app_setting("iot", IotSettings)
    tenant_name = services.check_tenant(tenant)
    received = utcnow()
    credentials = _credentials(authorization)
    if credentials is None:
        await asyncio.to_thread(
            services.reject_messages,
            ctx,
            [Message(tenant_name, "", b"", "http", None, received)],
            "missing_key",
            N_("no `Authorization: Device <device-id>:<key>` header"),
        )
        raise Unauthorized("Authenticate the device with `Authorization: Device <device-id>:<key>`.")
    device_id, key = credentials
    try:
        body = await _read_body(request, settings.max_payload_bytes)
    except PayloadTooLarge as exc:
        head = b""
        message = Message(tenant_name, device_id, head, "http", key, received)
        await asyncio.to_thread(services.reject_messages, ctx, [message], "oversize", exc.detail, exc.params)
        raise
    message = Message(tenant_name, device_id, body, "http", key, received)
    report = await asyncio.to_thread(services.ingest_messages, ctx, [message])
    item = report.messages[0]
    refused = item.refused
    if refused in CREDENTIAL_REASONS:
        raise Unauthorized("The device id or key is not valid, or the device is revoked.")
    if refused is not None:
        raise BadRequest("The body is not a device message: {reason}", reason=item.rejections[0].message)
    answer = schemas.IngestAnswer(
        device_id=device_id,
        readings=item.readings,
        accepted=item.accepted,
        stored=report.stored,
        duplicates=report.duplicates,
        rejections=[schemas.RejectionRead(**_rejection(r)) for r in item.rejections],
    )
    if item.accepted == 0 and item.rejections:
        raise ValidationFailed(
            "No reading was accepted: {reason}",
            reason=item.rejections[0].message,
            extra={"report": answer.model_dump()},
        )
    return answer


def _rejection(rejection: schemas.Rejection) -> dict[str, Any]:
    return {
        "reason": rejection.reason,
        "message": rejection.message,
        "reading": rejection.reading,
        "attribute": rejection.attribute,
    }


# --- rates and rejected messages -------------------------------------------------------------------


@router.get("/rates", response_model=schemas.RateSeries)
def rates(
    ctx: Ctx, actor: CurrentActor, minutes: Annotated[int, Query(ge=1, le=24 * 60)] = 60
) -> schemas.RateSeries:
    """Per-minute counts of the last minutes, from every ingest process: messages, readings, values, rejections."""
    return services.ingest_rates(ctx, actor, minutes)


@router.get("/dead-letters", response_model=schemas.Page[schemas.DeadLetterRead])
def dead_letters(
    ctx: Ctx,
    actor: CurrentActor,
    reason: Annotated[schemas.Reason | None, Query()] = None,
    device_id: Annotated[str | None, Query(max_length=128)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> schemas.Page[schemas.DeadLetterRead]:
    """Rejected messages, newest first, filtered by reason, device and time (ISO 8601 with an offset)."""
    for name, moment in (("since", since), ("until", until)):
        if moment is not None and moment.tzinfo is None:
            raise BadRequest("{name} needs a UTC offset, e.g. 2026-01-01T08:00:00+08:00.", name=name)
    return services.list_dead_letters(
        ctx, actor, reason=reason, device_id=device_id, since=since, until=until, limit=limit, offset=offset
    )


@router.get("/dead-letters/{letter_id}", response_model=schemas.DeadLetterDetail)
def dead_letter(
    letter_id: Annotated[int, Path(ge=1, le=2**62)], ctx: Ctx, actor: CurrentActor
) -> schemas.DeadLetterDetail:
    """One rejected message with its payload."""
    return services.get_dead_letter(ctx, actor, letter_id)
