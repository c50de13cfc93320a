"""Open311 GeoReport v2 services: the service list and definitions, requests listed, read and submitted.

A service is a leaf category (its code is the service_code) plus `general` (其他问题), whose requests the
complaint classifier sorts. A submitted request becomes a citizen-sourced event through the same intake as
every other source (classified, routed to the responsible department, timed). Submitting needs an api_key:
an API token of the identity app (issued per client, stored as a hash, revocable) carrying
`command.open311.submit`. Requests are public as GeoReport has them, except 12345 tickets (their callers'
complaints are not published); nobody's phone or e-mail is ever shown.

Errors are ProblemErrors like everywhere else; the Open311 routes render them in the spec's error format.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select

from citybrain.apps.command import services, taxonomy
from citybrain.apps.command import workflows as wf
from citybrain.apps.command.models import CityEvent
from citybrain.apps.geo import services as geo
from citybrain.apps.identity import services as identity
from citybrain.sdk import Actor, AppContext, BadRequest, Forbidden, NotFound, utcnow

SUBMIT = "command.open311.submit"
GENERAL = "general"
# A request list holds at most this many requests (GeoReport v2: servers may cap it, 1000 is customary).
MAX_REQUESTS = 1000
# Sources whose events are published as service requests (not 12345 tickets).
PUBLIC_SOURCES = ("citizen", "inspector", "department", "warning")
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,188}\.[^@\s]{1,60}$")
PHONE_RE = re.compile(r"^\+?[0-9][0-9 -]{4,19}$")
URL_RE = re.compile(r"^https?://[^\s]{1,490}$")
NUMBER_RE = re.compile(r"^\d{8,16}$")
CLOSED = {"city": ("closed", "cancelled", wf.MERGED), "hotline": (*wf.COMPLETED_STATES, wf.MERGED)}


@dataclass(frozen=True)
class Service:
    """A GeoReport service: a category (or `general`) in the reader's language."""

    code: str
    name: str
    description: str
    group: str
    keywords: str


def _name(locale: str, zh: str, en: str) -> str:
    return (en or zh) if locale == "en" else (zh or en)


def _local(ctx: AppContext, moment: datetime | None) -> str | None:
    """A moment as ISO 8601 in China time (2026-11-26T09:30:00+08:00)."""
    if moment is None:
        return None
    return moment.astimezone(ZoneInfo(ctx.settings.timezone)).isoformat(timespec="seconds")


def check_jurisdiction(ctx: AppContext, given: str | None) -> None:
    """Accept no jurisdiction_id or ours; 404 for another (GeoReport v2 errors)."""
    if given is not None and given != services.settings(ctx).open311_jurisdiction:
        raise NotFound("jurisdiction_id {value} not found.", value=given)


def list_services(ctx: AppContext, locale: str) -> list[Service]:
    """Every service: the leaf categories, then `general`."""
    found = [
        Service(
            code=c.code,
            name=_name(locale, c.name_zh, c.name_en),
            description=_name(locale, "、".join(c.group_zh), " / ".join(c.group_en)),
            group=_name(locale, c.group_zh[0] if c.group_zh else "", c.group_en[0] if c.group_en else ""),
            keywords=c.code.rsplit(".", 1)[-1].replace("_", ","),
        )
        for c in services.categories(ctx).values()
    ]
    found.append(
        Service(
            code=GENERAL,
            name=_name(locale, "其他问题", "Other problem"),
            description=_name(
                locale,
                "说明问题，系统自动分类并派往责任部门。",
                "Describe the problem; it is classified and routed.",
            ),
            group=_name(locale, "其他", "Other"),
            keywords="general",
        )
    )
    return found


def service_definition(ctx: AppContext, locale: str, code: str) -> dict[str, Any]:
    """A service's definition: its attributes (the district it is in, to choose where it is not located)."""
    if code != GENERAL and code not in services.categories(ctx):
        raise NotFound("service_code {value} not found.", value=code)
    return {
        "service_code": code,
        "attributes": [
            {
                "variable": True,
                "code": "district",
                "datatype": "singlevaluelist",
                "required": False,
                "datatype_description": _name(locale, "所在区县", "District or county"),
                "order": 1,
                "description": _name(
                    locale,
                    "问题所在区县（未给出位置时用于派单）",
                    "Where the problem is (routes it when no location is given)",
                ),
                "values": [
                    {"key": d.code, "name": _name(locale, d.name_zh, d.name_en)} for d in geo.districts(ctx)
                ],
            }
        ],
    }


def _status(row: CityEvent) -> str:
    return "closed" if row.state in CLOSED.get(row.workflow, ()) else "open"


def _request(ctx: AppContext, locale: str, row: CityEvent, names: Mapping[int, str]) -> dict[str, Any]:
    """An event as a GeoReport service request (no personal data)."""
    cats = services.categories(ctx)
    cat = cats.get(row.category) if row.category else None
    try:
        state = wf.workflow(row.workflow).state(row.state)
        notes = _name(locale, state.name_zh, state.name_en)
    except KeyError:
        notes = row.state
    return {
        "service_request_id": row.number,
        "status": _status(row),
        "status_notes": notes,
        "service_name": _name(locale, cat.name_zh, cat.name_en) if cat else "",
        "service_code": row.category or GENERAL,
        "description": row.description,
        "agency_responsible": names.get(row.department_id, "") if row.department_id else "",
        "service_notice": "",
        "requested_datetime": _local(ctx, row.created_at),
        "updated_datetime": _local(ctx, row.updated_at),
        "expected_datetime": _local(ctx, row.deadline),
        "address": row.address,
        "address_id": "",
        "zipcode": "",
        "lat": row.lat,
        "long": row.lon,
        "media_url": row.media_url or "",
    }


def _parse_moment(ctx: AppContext, name: str, text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest("{name} is not an ISO 8601 date and time.", name=name) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=ZoneInfo(ctx.settings.timezone))


def _names(ctx: AppContext, locale: str) -> dict[int, str]:
    return {d.id: _name(locale, d.name_zh, d.name_en) for d in services.departments(ctx).values()}


def list_requests(ctx: AppContext, locale: str, params: Mapping[str, str]) -> list[dict[str, Any]]:
    """Service requests, newest first: by id (others ignored), or by service, time span and status."""
    stmt = select(CityEvent).where(CityEvent.source.in_(PUBLIC_SOURCES))
    ids = params.get("service_request_id")
    if ids:
        numbers = [n.strip() for n in ids.split(",") if n.strip()]
        if not numbers or len(numbers) > MAX_REQUESTS or not all(NUMBER_RE.match(n) for n in numbers):
            raise BadRequest("service_request_id must be request ids separated by commas.")
        stmt = stmt.where(CityEvent.number.in_(numbers))
    else:
        days = services.settings(ctx).open311_days
        end = _parse_moment(ctx, "end_date", params["end_date"]) if params.get("end_date") else utcnow()
        start = (
            _parse_moment(ctx, "start_date", params["start_date"])
            if params.get("start_date")
            else end - timedelta(days=days)
        )
        if start > end:
            raise BadRequest("start_date comes after end_date.")
        if end - start > timedelta(days=days):
            raise BadRequest("A request list spans at most {days} days.", days=days)
        stmt = stmt.where(CityEvent.created_at >= start, CityEvent.created_at <= end)
        codes = [c.strip() for c in params.get("service_code", "").split(",") if c.strip()]
        if codes:
            named = CityEvent.category.in_([c for c in codes if c != GENERAL])
            stmt = stmt.where(or_(named, CityEvent.category.is_(None)) if GENERAL in codes else named)
        statuses = {s.strip() for s in params.get("status", "").split(",") if s.strip()}
        if statuses - {"open", "closed"}:
            raise BadRequest("status must be open, closed or both.")
        if len(statuses) == 1:
            closed = [s for states in CLOSED.values() for s in states]
            stmt = stmt.where(
                CityEvent.state.in_(closed) if statuses == {"closed"} else CityEvent.state.not_in(closed)
            )
    stmt = stmt.order_by(CityEvent.created_at.desc(), CityEvent.id.desc()).limit(MAX_REQUESTS)
    names = _names(ctx, locale)
    with ctx.read() as session:
        return [_request(ctx, locale, row, names) for row in session.scalars(stmt)]


def get_request(ctx: AppContext, locale: str, number: str) -> dict[str, Any]:
    """One service request by its id (404 when there is none, or it is a 12345 ticket)."""
    if not NUMBER_RE.match(number):
        raise NotFound("service_request_id {value} not found.", value=number)
    with ctx.read() as session:
        row = session.scalar(
            select(CityEvent).where(CityEvent.number == number, CityEvent.source.in_(PUBLIC_SOURCES))
        )
        if row is None:
            raise NotFound("service_request_id {value} not found.", value=number)
        return _request(ctx, locale, row, _names(ctx, locale))


def client(ctx: AppContext, api_key: str | None) -> Actor:
    """The client an api_key stands for; 403 without a valid key carrying command.open311.submit."""
    actor = identity.authenticate_bearer(ctx, api_key) if api_key else None
    if actor is None or not actor.can(SUBMIT):
        raise Forbidden("A valid api_key is required.")
    return actor


def _text(form: Mapping[str, str], name: str, most: int) -> str:
    value = form.get(name, "").strip()
    if len(value) > most:
        raise BadRequest("{name} is longer than {most} characters.", name=name, most=most)
    return value


def _number(form: Mapping[str, str], name: str, low: float, high: float) -> float | None:
    text = form.get(name, "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise BadRequest("{name} must be a number.", name=name) from None
    if not low <= value <= high:
        raise BadRequest("{name} must lie between {low} and {high}.", name=name, low=low, high=high)
    return value


def submit(ctx: AppContext, form: Mapping[str, str]) -> dict[str, Any]:
    """Take in a citizen's request (POST requests): check it all, then one intake; its id and notice."""
    actor = client(ctx, form.get("api_key"))
    check_jurisdiction(ctx, form.get("jurisdiction_id"))
    code = _text(form, "service_code", 64)
    if not code:
        raise BadRequest("service_code is required.")
    category: taxonomy.Category | None = None
    if code != GENERAL:
        category = services.categories(ctx).get(code)
        if category is None:
            raise NotFound("service_code {value} not found.", value=code)
    lat, lon = _number(form, "lat", -90, 90), _number(form, "long", -180, 180)
    address = _text(form, "address_string", 300)
    if (lat is None) != (lon is None):
        raise BadRequest("lat and long go together.")
    if lat is None and not address and not form.get("address_id", "").strip():
        raise BadRequest("A location is required: lat and long, address_string or address_id.")
    description = _text(form, "description", 4000)
    if code == GENERAL and len(description) < 2:
        raise BadRequest("description is required for the service general.")
    district = form.get("attribute[district]", "").strip() or None
    if district is not None and geo.district(ctx, district) is None:
        raise BadRequest("attribute[district] {value} is not a district.", value=district)
    email, phone = _text(form, "email", 254) or None, _text(form, "phone", 32) or None
    if email is not None and not EMAIL_RE.match(email):
        raise BadRequest("email is not an e-mail address.")
    if phone is not None and not PHONE_RE.match(phone):
        raise BadRequest("phone is not a phone number.")
    media = _text(form, "media_url", 500) or None
    if media is not None and not URL_RE.match(media):
        raise BadRequest("media_url must be an http or https URL.")
    name = " ".join(p for p in (_text(form, "last_name", 32), _text(form, "first_name", 32)) if p)
    note = ""
    if category is None and description:
        guess = services.classify(ctx, description)
        if guess is not None:
            category = services.categories(ctx)[guess[0]]
            # kept in the timeline like an operator's note (notes are Chinese text)
            note = f"自动分类：{category.name_zh}（置信度 {guess[1]:.2f}）"
    workflow = category.workflow if category is not None else "hotline"
    title = (category.name_zh if category else "") + (f"：{description[:40]}" if description else "")
    event_id = services.create(
        ctx,
        actor,
        services.Intake(
            source="citizen",
            workflow=workflow,
            state=wf.INITIAL[workflow],
            title=title or "市民上报",
            description=description,
            category=category.code if category else None,
            district=district,
            lon=lon,
            lat=lat,
            address=address,
            caller_name=name or None,
            caller_phone=phone.replace(" ", "") if phone else None,
            caller_email=email,
            media_url=media,
            note=note,
        ),
    )
    with ctx.read() as session:
        row = session.get_one(CityEvent, event_id)
        return {"service_request_id": row.number, "service_notice": "", "account_id": None}
