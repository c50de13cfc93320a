"""IoT pages under /iot: devices with live status, registration (the key shown once), CSV import,
device models, the ingest-rate panel and the inspector of rejected messages.

Views stay thin: parse the form, call one service, render. Services check every permission; a page the
actor may not see raises there and the kernel answers with the error page (403) or the sign-in
redirect (401). A failed form re-renders with a translated alert and a 4xx status. Pages that show a
device key render it directly (never redirect), so the key never enters a URL or the browser history.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from citybrain.apps.context.views import unit_label, unit_symbol
from citybrain.apps.identity.views import VALIDATION_MESSAGES, visible_tree
from citybrain.apps.iot import schemas, services
from citybrain.apps.iot.payloads import N_
from citybrain.apps.iot.settings import IotSettings
from citybrain.sdk import (
    Actor,
    AllDepartments,
    AppContext,
    Ctx,
    CurrentActor,
    Locale,
    ProblemError,
    render,
    utcnow,
)

router = APIRouter()
PAGE_SIZE = 20
HISTORY_LIMIT = 200  # values per chart on the device page
READING_ROWS = 30  # rows of the recent readings table
TENANT = ""  # the pages show the default tenant
FormText = Annotated[str, Form(max_length=4000)]
Id = Annotated[int, Path(ge=1, le=schemas.MAX_INT)]
FormError = ProblemError | ValidationError
STATUSES = ("online", "offline", "new", "revoked")


FIELD_LABELS = {
    "device_id": N_("Device id"),
    "name": N_("Device name"),
    "model_code": N_("Device model"),
    "entity_id": N_("Entity id"),
    "protocol": N_("Protocol"),
    "lon": N_("Longitude"),
    "lat": N_("Latitude"),
    "department_code": N_("Owner department"),
    "static_attributes": N_("Static attributes"),
    "code": N_("Code"),
    "name_zh": N_("Chinese name"),
    "name_en": N_("English name"),
    "entity_type": N_("Entity type"),
    "offline_timeout_seconds": N_("Offline after (seconds)"),
    "attributes": N_("Attributes"),
}
STATUS_LABELS = {
    "online": N_("Online"),
    "offline": N_("Offline"),
    "new": N_("Not heard from yet"),
    "revoked": N_("Revoked"),
}
REASON_LABELS = {
    "oversize": N_("Too large"),
    "malformed": N_("Malformed"),
    "unknown_device": N_("Unknown device"),
    "revoked": N_("Device revoked"),
    "missing_key": N_("No device key"),
    "wrong_key": N_("Wrong device key"),
    "future_timestamp": N_("Timestamp in the future"),
    "stale_timestamp": N_("Timestamp too old"),
    "unknown_attribute": N_("Unknown attribute"),
    "wrong_type": N_("Wrong type"),
    "out_of_range": N_("Out of range"),
    "unknown_entity": N_("Entity missing"),
    "internal_error": N_("Could not be processed"),
}
KIND_LABELS = {
    "number": N_("Number"),
    "integer": N_("Integer"),
    "string": N_("Text"),
    "boolean": N_("True/false"),
}


# --- helpers -----------------------------------------------------------------------------------


def error_text(ctx: AppContext, locale: str, exc: FormError) -> str:
    """A failed form's reason in the reader's language."""
    if isinstance(exc, ProblemError):
        return ctx.i18n.gettext(locale, exc.detail, **exc.params)
    parts: list[str] = []
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else ""
        label = ctx.i18n.gettext(locale, FIELD_LABELS.get(name, name)) if name else ""
        details = dict(error.get("ctx") or {})
        if error["type"] == "value_error":
            reason = ctx.i18n.gettext(locale, str(details.get("error") or error["msg"]))
            text = (
                ctx.i18n.gettext(locale, "{field}: {reason}", field=label, reason=reason) if label else reason
            )
        else:
            kind = str(error["type"])
            if kind.endswith("_type") and error.get("input") is None:
                kind = "missing"
            template = VALIDATION_MESSAGES.get(kind, N_("{field} is invalid."))
            params = {k: v for k, v in details.items() if k not in ("pattern", "error")}
            text = ctx.i18n.gettext(
                locale, template, **params, field=label or ctx.i18n.gettext(locale, "Value")
            )
        parts.append(text)
    return " ".join(dict.fromkeys(parts))


def error_status(exc: FormError) -> int:
    """The HTTP status a failed form answers with (always a 4xx)."""
    return exc.status if isinstance(exc, ProblemError) else 422


def page(
    request: Request, ctx: AppContext, locale: str, template: str, status_code: int = 200, **values: Any
) -> HTMLResponse:
    """Render an iot page with the helpers its templates use (China time, localised names, labels)."""
    zone = ZoneInfo(ctx.settings.timezone)

    def when(moment: datetime | None, seconds: bool = False) -> str:
        """A timestamp in the platform's time zone (China Standard Time)."""
        if moment is None:
            return ""
        aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
        return aware.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")

    def name_of(obj: Any) -> str:
        """An object's name in the reader's language (Chinese when there is no English one)."""
        if isinstance(obj, tuple):
            zh, en = str(obj[-2]), str(obj[-1])
        else:
            zh, en = str(getattr(obj, "name_zh", "") or ""), str(getattr(obj, "name_en", "") or "")
        return (en or zh) if locale == "en" else (zh or en)

    def number(value: Any) -> str:
        """A value as people read it: no binary noise, no trailing '.0' (60.800000000000004 → '60.8')."""
        if isinstance(value, float) and math.isfinite(value):
            return f"{value:.10g}"
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    response = render(
        request,
        template,
        status_code=status_code,
        when=when,
        name_of=name_of,
        number=number,
        unit_label=unit_label,
        status_labels=STATUS_LABELS,
        reason_labels=REASON_LABELS,
        kind_labels=KIND_LABELS,
        now=utcnow(),
        **values,
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def _blank_none(value: str | None) -> str | None:
    text = (value or "").strip()
    return text or None


def _see_other(path: str, ok: str) -> RedirectResponse:
    sep = "&" if "?" in path else "?"
    return RedirectResponse(f"{path}{sep}ok={ok}", status_code=303)


def _static_attributes(text: str) -> dict[str, Any]:
    """The static attributes field: a JSON object (empty: none)."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise FormProblem(N_("Static attributes are not valid JSON.")) from None
    if not isinstance(value, dict):
        raise FormProblem(
            N_("Static attributes must be a JSON object, e.g. {example}."), example='{"riverName": "涪江"}'
        )
    return value


class FormProblem(ProblemError):
    """A form field that could not be read."""

    status = 422
    slug = "validation-failed"
    title = "Validation failed"


def _districts(ctx: AppContext) -> list[tuple[str, str, str]]:
    return services.districts(ctx)


# --- devices -----------------------------------------------------------------------------------


@router.get("")
def iot_home() -> Response:
    """The app's entry: the device list."""
    return RedirectResponse("/iot/devices", status_code=303)


@router.get("/devices")
def devices(
    request: Request,
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    model: Annotated[str, Query(max_length=64)] = "",
    status: Annotated[str, Query(max_length=16)] = "",
    department: Annotated[str, Query(max_length=12)] = "",
    district: Annotated[str, Query(max_length=12)] = "",
    q: Annotated[str, Query(max_length=64)] = "",
    page_no: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1,
) -> Response:
    """Devices with their live status (the table refreshes itself), filtered by model, status, department, district."""
    status_filter = status if status in STATUSES else ""
    dept_given = department.strip()
    dept_filter = int(dept_given) if dept_given.isdigit() and 0 < int(dept_given) <= schemas.MAX_INT else None
    result = services.list_devices(
        ctx,
        actor,
        tenant=TENANT,
        model_code=model.strip() or None,
        status=status_filter or None,
        department_id=dept_filter,
        district_code=district.strip() or None,
        q=q.strip() or None,
        limit=PAGE_SIZE,
        offset=(page_no - 1) * PAGE_SIZE,
    )
    filters = {
        k: v
        for k, v in (
            ("model", model.strip()),
            ("status", status_filter),
            ("department", dept_filter),
            ("district", district.strip()),
            ("q", q.strip()),
        )
        if v
    }
    pages = max(1, math.ceil(result.total / PAGE_SIZE))

    def page_url(number: int) -> str:
        """The list's URL at another page, filters kept."""
        return "/iot/devices?" + urlencode({**filters, "page": number})

    try:
        models = services.list_models(ctx, actor)
    except ProblemError:
        models = []
    return page(
        request,
        ctx,
        locale,
        "iot/devices.html",
        result=result,
        counts=services.status_counts(ctx, actor, TENANT),
        models=models,
        tree=visible_tree(ctx, actor),
        departments=services.department_names(ctx),
        districts=_districts(ctx),
        filters=filters,
        page_no=page_no,
        pages=pages,
        page_url=page_url,
        self_url="/iot/devices"
        + ("?" + urlencode({**filters, "page": page_no}) if filters or page_no > 1 else ""),
    )


def _new_page(
    request: Request,
    ctx: AppContext,
    actor: Actor,
    locale: str,
    status_code: int = 200,
    error: str | None = None,
    form: dict[str, Any] | None = None,
    created: schemas.ProvisionedDevice | None = None,
) -> HTMLResponse:
    """The registration form, and a fresh device's key (shown once)."""
    actor.require("iot.device.create")
    tree = visible_tree(ctx, actor)
    return page(
        request,
        ctx,
        locale,
        "iot/device_new.html",
        status_code,
        models=services.model_choices(ctx, actor),
        choices=tree.where(lambda dept_id: actor.can("iot.device.create", dept_id)),
        error=error,
        form=form or {"protocol": "mqtt"},
        created=created,
        base_url=str(request.base_url).rstrip("/"),
    )


@router.get("/devices/new")
def device_new(request: Request, ctx: Ctx, actor: CurrentActor, locale: Locale) -> Response:
    """The form that registers a device."""
    return _new_page(request, ctx, actor, locale)


@router.post("/devices")
def device_create(
    request: Request,
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    device_id: FormText = "",
    name: FormText = "",
    model_code: FormText = "",
    lon: FormText = "",
    lat: FormText = "",
    department_code: FormText = "",
    protocol: FormText = "mqtt",
    entity_id: FormText = "",
    static_attributes: FormText = "",
) -> Response:
    """Register a device and show its key this once (no redirect: the key never enters a URL)."""
    form = {
        "device_id": device_id,
        "name": name,
        "model_code": model_code,
        "lon": lon,
        "lat": lat,
        "department_code": department_code,
        "protocol": protocol,
        "entity_id": entity_id,
        "static_attributes": static_attributes,
    }
    try:
        static = _static_attributes(static_attributes)
        data = schemas.DeviceCreate(
            device_id=device_id,
            name=name,
            model_code=model_code,
            lon=_blank_none(lon),
            lat=_blank_none(lat),
            department_code=department_code,
            protocol=protocol or "mqtt",
            entity_id=_blank_none(entity_id),
            static_attributes=static,
        )
        created = services.provision(ctx, actor, TENANT, data)
    except (ProblemError, ValidationError) as exc:
        return _new_page(request, ctx, actor, locale, error_status(exc), error_text(ctx, locale, exc), form)
    return _new_page(request, ctx, actor, locale, 201, created=created)


def _chart_time(moment: datetime, zone: ZoneInfo) -> int:
    """Milliseconds of the wall-clock time in the zone, read as UTC (the charts draw in UTC mode)."""
    return int(moment.astimezone(zone).replace(tzinfo=UTC).timestamp() * 1000)


def _moment(value: Any) -> datetime | None:
    """An NGSI-LD timestamp (ISO text) as a datetime, None when absent or unreadable."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _current_values(
    entity: Mapping[str, Any] | None, specs: Sequence[schemas.AttributeSpec]
) -> list[dict[str, Any]]:
    """The device's measured attributes as the entity holds them now: value, unit, observed at."""
    rows = []
    attrs = (entity or {}).get("attrs", {})
    for spec in specs:
        instance = None
        for iri, instances in attrs.items():
            if iri == spec.name or iri.rsplit("/", 1)[-1] == spec.name:
                instance = next((i for i in instances if "datasetId" not in i), None)
        rows.append(
            {
                "name": spec.name,
                "kind": spec.kind,
                "unit": spec.unit_code or "",
                "value": None if instance is None else instance.get("value"),
                "observed": _moment(None if instance is None else instance.get("observedAt")),
            }
        )
    return rows


def _device_page(
    request: Request,
    ctx: AppContext,
    actor: Actor,
    locale: str,
    device_pk: int,
    status_code: int = 200,
    error: str | None = None,
    form: dict[str, Any] | None = None,
    key: str | None = None,
) -> HTMLResponse:
    """A device: metadata, status, key actions, edit form, current values, recent readings and charts."""
    device = services.get_device(ctx, actor, device_pk)
    model = services.device_model(ctx, actor, device_pk)
    data = services.device_data(ctx, actor, device_pk, HISTORY_LIMIT)
    zone = ZoneInfo(ctx.settings.timezone)
    charts = [
        {
            "id": f"chart-{i}",
            "name": name,
            "unit": unit_symbol(next((a.unit_code or "" for a in model.attributes if a.name == name), "")),
            "points": [[_chart_time(when, zone), value] for when, value in points],
        }
        for i, (name, points) in enumerate(data.history.items())
        if points
    ]
    # recent readings: the numeric history merged by instant, newest first
    by_time: dict[datetime, dict[str, float]] = {}
    for name, points in data.history.items():
        for when, value in points:
            by_time.setdefault(when, {})[name] = value
    recent = sorted(by_time.items(), key=lambda item: item[0], reverse=True)[:READING_ROWS]
    tree = visible_tree(ctx, actor)
    return page(
        request,
        ctx,
        locale,
        "iot/device.html",
        status_code,
        device=device,
        model=model,
        current=_current_values(data.entity, model.attributes),
        entity_found=data.entity is not None,
        charts=charts,
        recent=recent,
        recent_names=list(data.history),
        departments=services.department_names(ctx),
        districts={code: (code, zh, en) for code, zh, en in _districts(ctx)},
        move_choices=tree.where(lambda dept_id: actor.can("iot.device.update", dept_id)),
        error=error,
        form=form
        or {
            "name": device.name,
            "lon": f"{device.lon:g}",
            "lat": f"{device.lat:g}",
            "department_code": device.department_code,
            "protocol": device.protocol,
        },
        key=key,
        history_limit=HISTORY_LIMIT,
        entity_href="/context/entities/" + quote(device.entity_id, safe=":/"),
        base_url=str(request.base_url).rstrip("/"),
    )


@router.get("/devices/{device_pk}")
def device_detail(device_pk: Id, request: Request, ctx: Ctx, actor: CurrentActor, locale: Locale) -> Response:
    """A device's page."""
    return _device_page(request, ctx, actor, locale, device_pk)


@router.post("/devices/{device_pk}")
def device_update(
    device_pk: Id,
    request: Request,
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    name: FormText = "",
    lon: FormText = "",
    lat: FormText = "",
    department_code: FormText = "",
    protocol: FormText = "",
) -> Response:
    """Rename, move or re-assign a device."""
    form = {"name": name, "lon": lon, "lat": lat, "department_code": department_code, "protocol": protocol}
    changes = {k: v.strip() for k, v in form.items() if v.strip()}
    try:
        services.update_device(ctx, actor, device_pk, schemas.DeviceUpdate(**changes))
    except (ProblemError, ValidationError) as exc:
        return _device_page(
            request, ctx, actor, locale, device_pk, error_status(exc), error_text(ctx, locale, exc), form
        )
    return _see_other(f"/iot/devices/{device_pk}", "updated")


@router.post("/devices/{device_pk}/key")
def device_rotate(device_pk: Id, request: Request, ctx: Ctx, actor: CurrentActor, locale: Locale) -> Response:
    """Issue a new key and show it this once."""
    try:
        rotated = services.rotate_key(ctx, actor, device_pk)
    except ProblemError as exc:
        return _device_page(
            request, ctx, actor, locale, device_pk, error_status(exc), error_text(ctx, locale, exc)
        )
    return _device_page(request, ctx, actor, locale, device_pk, key=rotated.key)


@router.post("/devices/{device_pk}/revoke")
def device_revoke(device_pk: Id, request: Request, ctx: Ctx, actor: CurrentActor, locale: Locale) -> Response:
    """Refuse the device's messages from now on."""
    try:
        services.revoke_device(ctx, actor, device_pk)
    except ProblemError as exc:
        return _device_page(
            request, ctx, actor, locale, device_pk, error_status(exc), error_text(ctx, locale, exc)
        )
    return _see_other(f"/iot/devices/{device_pk}", "revoked")


@router.post("/devices/{device_pk}/delete")
def device_delete(device_pk: Id, request: Request, ctx: Ctx, actor: CurrentActor, locale: Locale) -> Response:
    """Delete a device (its entity and history stay)."""
    try:
        services.delete_device(ctx, actor, device_pk)
    except ProblemError as exc:
        return _device_page(
            request, ctx, actor, locale, device_pk, error_status(exc), error_text(ctx, locale, exc)
        )
    return _see_other("/iot/devices", "deleted")


# --- CSV import --------------------------------------------------------------------------------


def keys_csv(created: Sequence[schemas.ProvisionedDevice]) -> str:
    """The keys of imported devices as CSV (device_id,key), for the download link."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["device_id", "entity_id", "key"])
    for device in created:
        writer.writerow([device.device_id, device.entity_id, device.key])
    return out.getvalue()


def _import_page(
    request: Request,
    ctx: AppContext,
    actor: Actor,
    locale: str,
    status_code: int = 200,
    error: str | None = None,
    report: schemas.ImportReport | None = None,
) -> HTMLResponse:
    actor.require("iot.device.create")
    problems = [
        {
            "row": p.row,
            "column": p.column,
            "message": ctx.i18n.gettext(locale, p.msgid, **p.params) if p.msgid else p.message,
        }
        for p in (report.errors if report else [])
    ]
    download = ""
    if report is not None and report.created:
        download = "data:text/csv;charset=utf-8," + quote("\ufeff" + keys_csv(report.created))
    return page(
        request,
        ctx,
        locale,
        "iot/import.html",
        status_code,
        error=error,
        report=report,
        problems=problems,
        download=download,
        max_rows=ctx.app_setting("iot", IotSettings).import_max_rows,
    )


@router.get("/import")
def import_form(request: Request, ctx: Ctx, actor: CurrentActor, locale: Locale) -> Response:
    """The CSV import form."""
    return _import_page(request, ctx, actor, locale)


@router.post("/import")
async def import_submit(
    request: Request,
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """Import the devices of an uploaded CSV file; show the report, the new keys (once) and a CSV of them."""
    import asyncio

    limit = ctx.app_setting("iot", IotSettings).max_payload_bytes * 256
    if file is None:
        return await asyncio.to_thread(
            _import_page, request, ctx, actor, locale, 400, ctx.i18n.gettext(locale, "Choose a CSV file.")
        )
    data = await file.read(limit + 1)
    if len(data) > limit:
        message = ctx.i18n.gettext(locale, "The file is larger than {limit} bytes.", limit=limit)
        return await asyncio.to_thread(_import_page, request, ctx, actor, locale, 413, message)
    try:
        report = await asyncio.to_thread(services.import_devices, ctx, actor, TENANT, data)
    except ProblemError as exc:
        return await asyncio.to_thread(
            _import_page, request, ctx, actor, locale, error_status(exc), error_text(ctx, locale, exc)
        )
    status_code = 201 if report.created else (422 if report.errors else 200)
    return await asyncio.to_thread(_import_page, request, ctx, actor, locale, status_code, None, report)


# --- device models -----------------------------------------------------------------------------


def parse_attribute_lines(text: str) -> list[dict[str, Any]]:
    """Attribute lines of the model form: `name, kind, minimum, maximum, unit` (the last four optional)."""
    specs = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        cells = [cell.strip() for cell in line.split(",")]
        if len(cells) > 5:
            raise FormProblem(N_("Line {line} has more than five parts."), line=number)
        cells += [""] * (5 - len(cells))
        spec: dict[str, Any] = {"name": cells[0], "kind": cells[1] or "number"}
        for key, cell in (("minimum", cells[2]), ("maximum", cells[3])):
            if cell:
                try:
                    spec[key] = float(cell)
                except ValueError:
                    raise FormProblem(
                        N_("Line {line}: {value} is not a number."), line=number, value=cell
                    ) from None
        if cells[4]:
            spec["unit_code"] = cells[4]
        specs.append(spec)
    return specs


def attribute_lines(specs: Sequence[schemas.AttributeSpec]) -> str:
    """A model's attributes as the form's lines."""
    lines = []
    for spec in specs:
        cells = [
            spec.name,
            spec.kind,
            "" if spec.minimum is None else f"{spec.minimum:g}",
            "" if spec.maximum is None else f"{spec.maximum:g}",
            spec.unit_code or "",
        ]
        lines.append(", ".join(cells).rstrip(", "))
    return "\n".join(lines)


def _models_page(
    request: Request,
    ctx: AppContext,
    actor: Actor,
    locale: str,
    status_code: int = 200,
    error: str | None = None,
    form: dict[str, Any] | None = None,
) -> HTMLResponse:
    return page(
        request,
        ctx,
        locale,
        "iot/models.html",
        status_code,
        models=services.list_models(ctx, actor),
        can_write=isinstance(actor.scope("iot.model.write"), AllDepartments),
        error=error,
        form=form or {"offline_timeout_seconds": "600", "attributes": "pm25, number, 0, 1000, GQ"},
    )


@router.get("/models")
def models(request: Request, ctx: Ctx, actor: CurrentActor, locale: Locale) -> Response:
    """Device models and the form that adds one."""
    return _models_page(request, ctx, actor, locale)


@router.post("/models")
def model_create(
    request: Request,
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    code: FormText = "",
    name_zh: FormText = "",
    name_en: FormText = "",
    entity_type: FormText = "",
    offline_timeout_seconds: FormText = "600",
    attributes: FormText = "",
) -> Response:
    """Add a device model."""
    form = {
        "code": code,
        "name_zh": name_zh,
        "name_en": name_en,
        "entity_type": entity_type,
        "offline_timeout_seconds": offline_timeout_seconds,
        "attributes": attributes,
    }
    try:
        data = schemas.DeviceModelCreate(
            code=code,
            name_zh=name_zh,
            name_en=name_en,
            entity_type=entity_type,
            offline_timeout_seconds=_blank_none(offline_timeout_seconds) or 600,
            attributes=parse_attribute_lines(attributes),
        )
        services.create_model(ctx, actor, data)
    except (ProblemError, ValidationError) as exc:
        return _models_page(
            request, ctx, actor, locale, error_status(exc), error_text(ctx, locale, exc), form
        )
    return _see_other("/iot/models", "created")


# --- ingest rates ------------------------------------------------------------------------------


@router.get("/ingest")
def ingest_panel(
    request: Request,
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    minutes: Annotated[int, Query(ge=5, le=24 * 60)] = 60,
) -> Response:
    """The ingest-rate panel: per-minute messages, stored values and rejections by reason (refreshing)."""
    series = services.ingest_rates(ctx, actor, minutes)
    zone = ZoneInfo(ctx.settings.timezone)
    totals = {
        "messages": sum(series.messages),
        "readings": sum(series.readings),
        "stored": sum(series.stored),
        "duplicates": sum(series.duplicates),
        "rejected": sum(sum(values) for values in series.rejected.values()),
    }
    last = {
        "messages": series.messages[-2] if len(series.messages) > 1 else 0,
        "stored": series.stored[-2] if len(series.stored) > 1 else 0,
    }
    chart = {
        "times": [_chart_time(m, zone) for m in series.minutes],
        "series": [
            {"key": "messages", "name": ctx.i18n.gettext(locale, "Messages"), "values": series.messages},
            {"key": "stored", "name": ctx.i18n.gettext(locale, "Values stored"), "values": series.stored},
        ],
        "rejected": [
            {
                "key": reason,
                "name": ctx.i18n.gettext(locale, REASON_LABELS.get(reason, reason)),
                "values": values,
            }
            for reason, values in series.rejected.items()
        ],
    }
    worker = ctx.extensions.get("iot.mqtt")
    return page(
        request,
        ctx,
        locale,
        "iot/ingest.html",
        series=series,
        totals=totals,
        last=last,
        chart=chart,
        minutes=minutes,
        by_reason={reason: sum(values) for reason, values in series.rejected.items()},
        mqtt=worker is not None,
        mqtt_url=ctx.app_setting("iot", IotSettings).mqtt_url or "",
    )


# --- rejected messages -------------------------------------------------------------------------


def _local_moment(text: str, zone: ZoneInfo) -> datetime | None:
    """A `datetime-local` form value read in the platform's time zone (None when empty or invalid)."""
    if not text.strip():
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=zone)).astimezone(UTC)


@router.get("/dead-letters")
def dead_letters(
    request: Request,
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    reason: Annotated[str, Query(max_length=32)] = "",
    device_id: Annotated[str, Query(max_length=128)] = "",
    since: Annotated[str, Query(max_length=32)] = "",
    until: Annotated[str, Query(max_length=32)] = "",
    page_no: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1,
) -> Response:
    """Rejected messages, newest first, filtered by reason, device and time."""
    zone = ZoneInfo(ctx.settings.timezone)
    reason_filter = reason if reason in schemas.REASONS else ""
    result = services.list_dead_letters(
        ctx,
        actor,
        reason=reason_filter or None,
        device_id=device_id.strip() or None,
        since=_local_moment(since, zone),
        until=_local_moment(until, zone),
        limit=PAGE_SIZE,
        offset=(page_no - 1) * PAGE_SIZE,
    )
    filters = {
        k: v
        for k, v in (
            ("reason", reason_filter),
            ("device_id", device_id.strip()),
            ("since", since.strip()),
            ("until", until.strip()),
        )
        if v
    }
    pages = max(1, math.ceil(result.total / PAGE_SIZE))

    def page_url(number: int) -> str:
        """The list's URL at another page, filters kept."""
        return "/iot/dead-letters?" + urlencode({**filters, "page": number})

    details = {
        item.id: rejection_text(ctx, locale, item.errors[0]) if item.errors else item.detail
        for item in result.items
    }
    return page(
        request,
        ctx,
        locale,
        "iot/dead_letters.html",
        result=result,
        details=details,
        filters=filters,
        reasons=schemas.REASONS,
        page_no=page_no,
        pages=pages,
        page_url=page_url,
        since_default=(utcnow() - timedelta(hours=1)).astimezone(zone).strftime("%Y-%m-%dT%H:%M"),
    )


@router.get("/dead-letters/{letter_id}")
def dead_letter(
    letter_id: Annotated[int, Path(ge=1, le=2**62)],
    request: Request,
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
) -> Response:
    """One rejected message: why, and its payload (pretty-printed when it is JSON)."""
    letter = services.get_dead_letter(ctx, actor, letter_id)
    pretty = letter.payload
    if not letter.truncated:
        try:
            pretty = json.dumps(json.loads(letter.payload), ensure_ascii=False, indent=2)
        except (json.JSONDecodeError, ValueError):
            pretty = letter.payload
    errors = [
        {
            "reading": e.get("reading"),
            "attribute": e.get("attribute"),
            "message": rejection_text(ctx, locale, e),
        }
        for e in letter.errors
    ]
    return page(request, ctx, locale, "iot/dead_letter.html", letter=letter, pretty=pretty, errors=errors)


def rejection_text(ctx: AppContext, locale: str, error: Mapping[str, Any]) -> str:
    """A kept rejection in the reader's language (its English text when it has no catalogue message)."""
    template = error.get("template")
    if not isinstance(template, str) or not template:
        return str(error.get("message", ""))
    params = error.get("params") or {}
    try:
        return ctx.i18n.gettext(locale, template, **params)
    except (KeyError, IndexError, ValueError):
        return str(error.get("message", ""))
