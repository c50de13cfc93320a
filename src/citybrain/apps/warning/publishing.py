"""Publishing warnings to subscribers: in-app notifications, signed webhooks and SMS.

A subscription says who is told (a user in-app, a webhook endpoint, a phone number) and about what
(department, district, lowest level, transitions). The publisher consumes the warning events on the bus
with durable consumers; for each event it writes one delivery row per matching subscription, in one
transaction, and a redelivered event adds nothing (a delivery is unique per subscription and event).
The delivery worker (started by the app's lifespan) drains that table: it leases due rows, sends them
concurrently and records each attempt; a failure is retried with exponential back-off until the last
attempt. Because the queue is a table, a receiver that is down loses no delivery that is still due, and
the evaluator never waits for a receiver: it only writes warnings, whose events reach the publisher
through the outbox and the bus.

A webhook receives the warning's summary as JSON, POSTed with `X-CityBrain-Timestamp` (Unix seconds)
and `X-CityBrain-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" under the subscription's
secret>`, so a receiver can check both who sent it and that it is fresh (refusing old timestamps stops
replays). The secret is shown once, when the subscription is created or its secret rotated, and kept
sealed (sealing.py). Rotating issues a new secret; for the grace period (`webhook_secret_grace_hours`)
the header carries a signature under each, the new one first (`sha256=<new>,sha256=<old>`, as Stripe
and Standard Webhooks do), so a receiver accepting any listed signature it can verify switches over
without losing a delivery; then the old secret is dropped. An SMS goes through an `SmsSender`; the
default one logs the message and keeps it.

An in-app subscriber hears only of warnings they may read (their departments', or every one with
`warning.warning.read_all`), checked against their grants when the delivery is queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import hashlib
import hmac
import ipaddress
import logging
import math
import secrets
import socket
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol, Self
from urllib.parse import urlsplit
from uuid import uuid4
from zoneinfo import ZoneInfo

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from citybrain.apps.geo import services as geo
from citybrain.apps.identity import services as identity
from citybrain.apps.identity.schemas import PHONE  # phone numbers are validated as the identity app does
from citybrain.apps.warning import places, sealing
from citybrain.apps.warning.events import WarningChanged, WarningLifted, WarningRaised
from citybrain.apps.warning.models import Delivery, IssuedWarning, Notification, Rule, Subscription
from citybrain.apps.warning.schemas import LEVEL_NAMES_ZH, RANK, Level, Page
from citybrain.apps.warning.services import N_, WARNING_READ_ALL, settings
from citybrain.apps.warning.settings import WarningSettings
from citybrain.sdk import (
    SYSTEM,
    Actor,
    AllDepartments,
    AppContext,
    Bus,
    NotFound,
    ValidationFailed,
    mask_phone,
    utcnow,
    wait_event,
)

log = logging.getLogger(__name__)

WARNING_READ = "warning.warning.read"
SUB_READ, SUB_WRITE = "warning.subscription.read", "warning.subscription.write"
# ctx.extensions keys: the running publisher and the SMS sender (a deployment may put its own first).
PUBLISHER, SMS_SENDER = "warning.publisher", "warning.sms"
MAX_INT = 2**31 - 1
Channel = Literal["inapp", "webhook", "sms"]
Transition = Literal["raised", "upgraded", "downgraded", "lifted"]
TRANSITIONS: tuple[Transition, ...] = ("raised", "upgraded", "downgraded", "lifted")
# One SMS segment holds 70 UCS-2 characters; a longer text is sent in parts of 67 (3GPP TS 23.040).
SMS_SEGMENT, SMS_PART = 70, 67
# Old delivered and given-up deliveries are deleted this often (seconds).
PURGE_SECONDS = 3600.0
# Texts of in-app notifications (msgids; the catalogue gives 橙色预警 and so on).
LEVEL_WORDS = {
    "red": N_("Red warning"),
    "orange": N_("Orange warning"),
    "yellow": N_("Yellow warning"),
    "blue": N_("Blue warning"),
}
SENTENCES = {
    "raised": N_("{where}: {level} issued at {time}: {title}."),
    "upgraded": N_("{where}: {title} upgraded to {level} at {time}."),
    "downgraded": N_("{where}: {title} downgraded to {level} at {time}."),
    "lifted": N_("{where}: {level} of {title} lifted at {time}."),
}
COLOR_ZH = {"red": "红色", "orange": "橙色", "yellow": "黄色", "blue": "蓝色"}


# --- API shapes -----------------------------------------------------------------------------------


class _Strict(BaseModel):
    """Input shapes refuse unknown fields."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _url_problem(url: str) -> str | None:
    """Why a webhook URL is unusable (None: an absolute http(s) URL with a host)."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        return "the URL must start with http:// or https://"
    if not parts.hostname:
        return "the URL has no host"
    if any(c.isspace() for c in url):
        return "the URL contains spaces"
    return None


class SubscriptionFilters(_Strict):
    """What a subscriber wants to hear about."""

    department_id: int | None = Field(default=None, ge=1, le=MAX_INT)
    # A six-digit administrative division code (GB/T 2260), e.g. 510703 for 涪城区.
    district: str | None = Field(default=None, pattern=r"^\d{6}$")
    min_level: Level = "blue"
    transitions: list[Transition] = Field(
        default_factory=lambda: list(TRANSITIONS), min_length=1, max_length=4
    )

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        """Each transition once, in the life-cycle's order."""
        self.transitions = [t for t in TRANSITIONS if t in self.transitions]
        return self


class SubscriptionCreate(SubscriptionFilters):
    """A new subscription: in-app for the signed-in user, a webhook URL or a phone number."""

    channel: Channel
    name: str = Field(default="", max_length=120)
    url: str | None = Field(default=None, min_length=1, max_length=2000)
    phone: str | None = Field(default=None, pattern=PHONE)
    enabled: bool = True

    @model_validator(mode="after")
    def _target(self) -> Self:
        """A webhook names an http(s) URL, an SMS subscription a phone, an in-app one neither."""
        if self.channel == "webhook":
            if not self.url:
                raise ValueError("a webhook subscription needs url")
            if (problem := _url_problem(self.url)) is not None:
                raise ValueError(problem)
        elif self.url is not None:
            raise ValueError("url belongs to webhook subscriptions only")
        if self.channel == "sms" and not self.phone:
            raise ValueError("an SMS subscription needs phone")
        if self.channel != "sms" and self.phone is not None:
            raise ValueError("phone belongs to SMS subscriptions only")
        return self


class SubscriptionUpdate(_Strict):
    """Changes to a subscription (its channel stays)."""

    name: str | None = Field(default=None, max_length=120)
    url: str | None = Field(default=None, min_length=1, max_length=2000)
    phone: str | None = Field(default=None, pattern=PHONE)
    department_id: int | None = Field(default=None, ge=1, le=MAX_INT)
    district: str | None = Field(default=None, pattern=r"^\d{6}$")
    min_level: Level | None = None
    transitions: list[Transition] | None = Field(default=None, min_length=1, max_length=4)
    enabled: bool | None = None

    @model_validator(mode="after")
    def _url(self) -> Self:
        """A new URL is an http(s) URL."""
        if self.url is not None and (problem := _url_problem(self.url)) is not None:
            raise ValueError(problem)
        return self


class SubscriptionRead(BaseModel):
    """A subscription as the API shows it: the phone masked except to its creator, never the secret."""

    id: int
    channel: str
    name: str
    user_id: int | None
    url: str | None
    phone: str | None
    department_id: int | None
    district: str | None
    min_level: str
    transitions: list[str]
    enabled: bool
    created_by: str
    created_at: datetime
    updated_at: datetime
    # After a rotation: until when deliveries are signed with the replaced secret too.
    previous_secret_until: datetime | None


class SubscriptionCreated(SubscriptionRead):
    """A new subscription, or one whose secret was rotated; a webhook's signing secret is shown here only."""

    secret: str | None


class DeliveryRead(BaseModel):
    """One delivery of a warning event to a subscriber, with its attempts."""

    id: int
    subscription_id: int
    event_id: str
    warning_id: int
    transition: str
    level: str
    state: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    receipt: str | None
    created_at: datetime
    delivered_at: datetime | None


class NotificationRead(BaseModel):
    """An in-app notification."""

    id: int
    warning_id: int
    transition: str
    level: str
    title: str
    body: str
    created_at: datetime
    read_at: datetime | None


class UnreadCount(BaseModel):
    """How many in-app notifications the user has not read."""

    unread: int


# --- subscriptions --------------------------------------------------------------------------------


def _owner(actor: Actor) -> str:
    """Who a subscription belongs to: the user (also when acting through a token)."""
    return f"user:{actor.id}" if actor.id is not None else actor.ref


def _read(row: Subscription, actor: Actor) -> SubscriptionRead:
    data = {name: getattr(row, name) for name in SubscriptionRead.model_fields}
    if row.created_by != _owner(actor):
        data["phone"] = mask_phone(row.phone)
    return SubscriptionRead(**data)


def _field_error(field: str, detail: str, **params: Any) -> ValidationFailed:
    """A 422 naming the body field at fault."""
    return ValidationFailed(
        detail,
        extra={"errors": [{"loc": ["body", field], "msg": detail.format(**params), "type": "value_error"}]},
        **params,
    )


def _allowlist(conf: WarningSettings) -> list[str]:
    return [entry.strip().lower() for entry in conf.webhook_allowlist.split(",") if entry.strip()]


def _addresses(host: str, port: int) -> list[str]:
    """The addresses a host resolves to (empty when it does not resolve)."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []
    return sorted({str(info[4][0]).split("%")[0] for info in infos})


def endpoint_problem(conf: WarningSettings, url: str) -> str | None:
    """Why the webhook policy refuses a URL: a host that does not resolve or resolves to a non-public address."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower().rstrip(".")
    allowed = _allowlist(conf)
    if any(fnmatch.fnmatchcase(host, entry) for entry in allowed):
        return None
    networks = []
    for entry in allowed:
        with contextlib.suppress(ValueError):
            networks.append(ipaddress.ip_network(entry, strict=False))
    addresses = _addresses(host, parts.port or (443 if parts.scheme.lower() == "https" else 80))
    if not addresses:
        return f"the host {host} does not resolve"
    for text in addresses:
        address = ipaddress.ip_address(text)
        if any(address in network for network in networks):
            continue
        if not address.is_global or address.is_multicast:
            return f"the host {host} resolves to a non-public address ({address}) not on the allow-list"
    return None


def _check_url(conf: WarningSettings, url: str) -> None:
    """Refuse (422) a webhook URL the endpoint policy does not permit."""
    problem = endpoint_problem(conf, url)
    if problem is not None:
        raise _field_error("url", N_("The webhook URL is not permitted: {reason}."), reason=problem)


def _check_filters(ctx: AppContext, department_id: int | None, district: str | None) -> None:
    """The department and the district exist."""
    if department_id is not None:
        try:
            identity.get_department(ctx, SYSTEM, department_id)
        except NotFound:
            raise _field_error("department_id", N_("Unknown department {id}."), id=department_id) from None
    if district is not None and geo.district(ctx, district) is None:
        raise _field_error("district", N_("Unknown district {code}."), code=district)


def _require_manage(actor: Actor, channel: str) -> None:
    """In-app subscriptions are the user's own business; webhooks and SMS need the write permission."""
    if channel == "inapp":
        actor.require(WARNING_READ)
        if actor.id is None:
            raise ValidationFailed("Only a user can subscribe in-app.")
    else:
        actor.require(SUB_WRITE)


def sealing_key(ctx: AppContext) -> bytes:
    """The key webhook secrets are sealed with (the app's setting, else derived from the platform secret)."""
    configured = settings(ctx).webhook_secret_key.get_secret_value()
    return sealing.derive_key(ctx.settings.secret_key.get_secret_value(), configured)


def _new_secret() -> str:
    """A new webhook signing secret: 256 random bits."""
    return secrets.token_urlsafe(32)


def create_subscription(ctx: AppContext, actor: Actor, data: SubscriptionCreate) -> SubscriptionCreated:
    """Create a subscription; a webhook gets a new signing secret, shown in this answer only."""
    _require_manage(actor, data.channel)
    _check_filters(ctx, data.department_id, data.district)
    if data.url is not None:
        _check_url(settings(ctx), data.url)
    secret = _new_secret() if data.channel == "webhook" else None
    with ctx.uow(actor, "warning.subscription.create") as uow:
        row = Subscription(
            channel=data.channel, name=data.name, user_id=actor.id if data.channel == "inapp" else None,
            url=data.url, phone=data.phone, department_id=data.department_id, district=data.district,
            min_level=data.min_level, transitions=list(data.transitions), enabled=data.enabled,
            secret_sealed=sealing.seal(sealing_key(ctx), secret) if secret is not None else None,
            created_by=_owner(actor),
        )  # fmt: skip
        uow.session.add(row)
        uow.session.flush()
        return SubscriptionCreated(**_read(row, actor).model_dump(), secret=secret)


def rotate_secret(ctx: AppContext, actor: Actor, subscription_id: int) -> SubscriptionCreated:
    """Issue a webhook a new signing secret (shown in this answer only); the old one signs too for a while."""
    # The old secret signs alongside for the grace period. Rotating again within it replaces the newest
    # secret: the oldest one is dropped at once.
    _require_list(actor)
    key = sealing_key(ctx)
    secret = _new_secret()
    now = utcnow()
    grace = timedelta(hours=settings(ctx).webhook_secret_grace_hours)
    with ctx.uow(actor, "warning.subscription.rotate") as uow:
        row = _get(uow.session, actor, subscription_id)
        actor.require(SUB_WRITE)
        if row.channel != "webhook":
            raise ValidationFailed("Only a webhook subscription has a signing secret.")
        keep = grace > timedelta(0) and row.secret_sealed is not None
        row.previous_secret_sealed = row.secret_sealed if keep else None
        row.previous_secret_until = now + grace if keep else None
        row.secret_sealed = sealing.seal(key, secret)
        uow.session.flush()
        return SubscriptionCreated(**_read(row, actor).model_dump(), secret=secret)


def _visible(actor: Actor, row: Subscription) -> bool:
    """Whether the actor may see the subscription (its own, or every one with the read permission)."""
    return actor.can(SUB_READ) or row.created_by == _owner(actor)


def _get(session: Session, actor: Actor, subscription_id: int) -> Subscription:
    row = session.get(Subscription, subscription_id)
    if row is None or not _visible(actor, row):
        raise NotFound("Subscription {id} does not exist.", id=subscription_id)
    return row


def _require_change(actor: Actor, row: Subscription) -> None:
    """A user changes their own in-app subscription; anything else needs the write permission."""
    if row.channel == "inapp" and row.created_by == _owner(actor):
        actor.require(WARNING_READ)
    else:
        actor.require(SUB_WRITE)


def _require_list(actor: Actor) -> None:
    """Reading subscriptions: every one with the read permission, one's own with the warning read one."""
    if not actor.can(SUB_READ):
        actor.require(WARNING_READ)


def list_subscriptions(
    ctx: AppContext, actor: Actor, *, limit: int = 50, offset: int = 0
) -> Page[SubscriptionRead]:
    """The actor's own subscriptions, or every one for an actor with the read permission."""
    _require_list(actor)
    stmt = select(Subscription)
    if not actor.can(SUB_READ):
        stmt = stmt.where(Subscription.created_by == _owner(actor))
    with ctx.read() as session:
        total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        rows = session.scalars(stmt.order_by(Subscription.id).limit(limit).offset(offset))
        items = [_read(r, actor) for r in rows]
    return Page[SubscriptionRead](items=items, total=total, limit=limit, offset=offset)


def get_subscription(ctx: AppContext, actor: Actor, subscription_id: int) -> SubscriptionRead:
    """One subscription."""
    _require_list(actor)
    with ctx.read() as session:
        return _read(_get(session, actor, subscription_id), actor)


def update_subscription(
    ctx: AppContext, actor: Actor, subscription_id: int, data: SubscriptionUpdate
) -> SubscriptionRead:
    """Change a subscription's target, filters or whether it is enabled."""
    _require_list(actor)
    changes = data.model_dump(exclude_unset=True)
    with ctx.read() as session:
        current = _get(session, actor, subscription_id)
        _require_change(actor, current)
        channel = current.channel
    for name in ("name", "min_level", "transitions", "enabled", "url", "phone"):
        if name in changes and changes[name] is None:
            raise _field_error(name, N_("The field {name} cannot be empty."), name=name)
    if "url" in changes and channel != "webhook":
        raise _field_error("url", N_("Only a webhook subscription has a URL."))
    if "phone" in changes and channel != "sms":
        raise _field_error("phone", N_("Only an SMS subscription has a phone number."))
    _check_filters(ctx, changes.get("department_id"), changes.get("district"))
    if changes.get("url"):
        _check_url(settings(ctx), changes["url"])
    if "transitions" in changes:
        changes["transitions"] = [t for t in TRANSITIONS if t in changes["transitions"]]
    with ctx.uow(actor, "warning.subscription.update") as uow:
        row = _get(uow.session, actor, subscription_id)
        for name, value in changes.items():
            setattr(row, name, value)
        uow.session.flush()
        return _read(row, actor)


def delete_subscription(ctx: AppContext, actor: Actor, subscription_id: int) -> None:
    """Delete a subscription and its deliveries."""
    _require_list(actor)
    with ctx.uow(actor, "warning.subscription.delete") as uow:
        row = _get(uow.session, actor, subscription_id)
        _require_change(actor, row)
        uow.session.delete(row)


def list_deliveries(
    ctx: AppContext, actor: Actor, subscription_id: int, *, limit: int = 50, offset: int = 0
) -> Page[DeliveryRead]:
    """A subscription's deliveries, newest first, with their attempts and last error."""
    _require_list(actor)
    with ctx.read() as session:
        _get(session, actor, subscription_id)
        stmt = select(Delivery).where(Delivery.subscription_id == subscription_id)
        total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        rows = session.scalars(stmt.order_by(Delivery.id.desc()).limit(limit).offset(offset))
        items = [DeliveryRead.model_validate(r, from_attributes=True) for r in rows]
    return Page[DeliveryRead](items=items, total=total, limit=limit, offset=offset)


# --- in-app notifications -------------------------------------------------------------------------


def _user(actor: Actor) -> int:
    """The signed-in user's id (notifications belong to users)."""
    actor.require(WARNING_READ)
    if actor.id is None:
        raise NotFound("Only users have notifications.")
    return actor.id


def _notification(ctx: AppContext, locale: str, row: Notification) -> NotificationRead:
    title, body = texts(ctx, locale, row)
    return NotificationRead(
        id=row.id, warning_id=row.warning_id, transition=row.transition, level=row.level, title=title,
        body=body, created_at=row.created_at, read_at=row.read_at,
    )  # fmt: skip


def list_notifications(
    ctx: AppContext,
    actor: Actor,
    locale: str,
    *,
    unread: bool = False,
    limit: int = 50,
    offset: int = 0,
) -> Page[NotificationRead]:
    """The user's own in-app notifications, newest first (only the unread ones if asked)."""
    user_id = _user(actor)
    stmt = select(Notification).where(Notification.user_id == user_id)
    if unread:
        stmt = stmt.where(Notification.read_at.is_(None))
    with ctx.read() as session:
        total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        rows = session.scalars(stmt.order_by(Notification.id.desc()).limit(limit).offset(offset))
        items = [_notification(ctx, locale, r) for r in rows]
    return Page[NotificationRead](items=items, total=total, limit=limit, offset=offset)


def unread_count(ctx: AppContext, actor: Actor) -> int:
    """How many of the user's notifications are unread (one indexed count)."""
    user_id = _user(actor)
    with ctx.read() as session:
        stmt = select(func.count(Notification.id)).where(
            Notification.user_id == user_id, Notification.read_at.is_(None)
        )
        return int(session.scalar(stmt) or 0)


def mark_read(ctx: AppContext, actor: Actor, locale: str, notification_id: int) -> NotificationRead:
    """Mark one of the user's notifications read (again: no change)."""
    user_id = _user(actor)
    with ctx.uow(actor, "warning.notification.read") as uow:
        row = uow.session.get(Notification, notification_id)
        if row is None or row.user_id != user_id:
            raise NotFound("Notification {id} does not exist.", id=notification_id)
        if row.read_at is None:
            row.read_at = utcnow()
        uow.session.flush()
        return _notification(ctx, locale, row)


def mark_all_read(ctx: AppContext, actor: Actor) -> int:
    """Mark every unread notification of the user read; how many were."""
    user_id = _user(actor)
    with ctx.uow(actor, "warning.notification.read") as uow:
        result = uow.session.execute(
            update(Notification)
            .where(Notification.user_id == user_id, Notification.read_at.is_(None))
            .values(read_at=utcnow())
        )
        return int(getattr(result, "rowcount", 0) or 0)


# --- matching events to subscriptions -------------------------------------------------------------


@dataclass(frozen=True)
class Fact:
    """What a warning event says, as subscriptions filter it."""

    event_id: str
    warning_id: int
    transition: str
    level: str
    district: str | None
    department_id: int | None
    at: datetime
    values: dict[str, Any]


WarningEvent = WarningRaised | WarningChanged | WarningLifted


def fact_of(event: WarningEvent, department_id: int | None = None) -> Fact | None:
    """The transition and level of an event (None for an acknowledgement: nobody is told)."""
    if isinstance(event, WarningRaised):
        transition, level, values = "raised", event.level, event.values
    elif isinstance(event, WarningChanged):
        if event.change not in ("upgraded", "downgraded"):
            return None
        transition, level, values = event.change, event.level, event.values
    else:
        transition, level, values = "lifted", event.previous_level, {}
    return Fact(
        str(event.event_id),
        event.warning_id,
        transition,
        level,
        event.district,
        department_id,
        event.at,
        values,
    )


def may_read(grants: Mapping[str, Any], department_id: int | None) -> bool:
    """Whether grants let a user read a warning of the department (as services.reader_scope decides)."""
    if WARNING_READ_ALL in grants:
        return True
    scope = grants.get(WARNING_READ)
    if isinstance(scope, AllDepartments):
        return True
    return department_id is not None and scope is not None and department_id in scope


def matches(row: Subscription, fact: Fact) -> bool:
    """Whether a subscription wants the fact: enabled, its transition, level, district and department."""
    if not row.enabled or fact.transition not in (row.transitions or ()):
        return False
    if RANK.get(fact.level, 0) < RANK.get(row.min_level, 1):
        return False
    if row.district is not None and row.district != fact.district:
        return False
    # A warning whose rule names no department passes a department filter (it concerns no one department).
    return row.department_id is None or fact.department_id is None or row.department_id == fact.department_id


def _public_url(ctx: AppContext) -> str:
    conf = settings(ctx)
    return conf.public_url.rstrip("/") or f"http://{ctx.settings.host}:{ctx.settings.port}"


def summary(ctx: AppContext, warning: IssuedWarning, names: tuple[str, str], fact: Fact) -> dict[str, Any]:
    """The warning as subscribers receive it (JSON-ready): what changed, where, when, why, and its CAP link."""
    district = geo.district(ctx, warning.district) if warning.district else None
    # the area the warning's entity stands for, if any (a city-wide forecast …:510700 is 绵阳市)
    area = places.named_by(ctx, warning.entity_id)
    return {
        "event_id": fact.event_id,
        "transition": fact.transition,
        "warning": {
            "id": warning.id,
            "rule": {"id": warning.rule_id, "code": warning.rule_code, "name": names[0], "name_en": names[1]},
            "title": warning.title,
            "level": fact.level,
            "level_name": LEVEL_NAMES_ZH.get(fact.level, fact.level),
            "status": "lifted" if fact.transition == "lifted" else "active",
            "scope": warning.scope_key,
            "entity_id": warning.entity_id,
            "district": warning.district,
            "district_name": district.name_zh if district is not None else None,
            "district_name_en": district.name_en if district is not None else None,
            "area": area.code if area is not None else None,
            "area_name": area.name_zh if area is not None else None,
            "area_name_en": area.name_en if area is not None else None,
            "raised_at": warning.raised_at.isoformat(),
            "at": fact.at.isoformat(),
            "lifted_at": fact.at.isoformat() if fact.transition == "lifted" else None,
            "values": fact.values,
            "cap": f"{_public_url(ctx)}/api/warning/warnings/{warning.id}.cap",
        },
    }


def enqueue(ctx: AppContext, event: WarningEvent) -> int:
    """Write one delivery per subscription the event matches (in one transaction); how many were new."""
    with ctx.read() as session:
        warning = session.get(IssuedWarning, event.warning_id)
        if warning is None:
            return 0
        rule = session.execute(select(Rule.name_zh, Rule.name_en).where(Rule.id == warning.rule_id)).first()
        names = (str(rule[0]), str(rule[1])) if rule is not None else (warning.title, "")
        fact = fact_of(event, warning.department_id)
        if fact is None:
            return 0
        wanted = [
            s
            for s in session.scalars(select(Subscription).where(Subscription.enabled.is_(True)))
            if matches(s, fact)
        ]
        users = {s.user_id for s in wanted if s.channel == "inapp" and s.user_id is not None}
        readers = {
            u for u in users if may_read(identity.grants_for_user(ctx, session, u), fact.department_id)
        }
        wanted = [s for s in wanted if s.channel != "inapp" or s.user_id in readers]
    if not wanted:
        return 0
    payload = summary(ctx, warning, names, fact)
    now = utcnow()
    with ctx.uow(SYSTEM, "warning.publishing.enqueue") as uow:
        have = set(
            uow.session.scalars(select(Delivery.subscription_id).where(Delivery.event_id == fact.event_id))
        )
        added = 0
        for sub in wanted:
            if sub.id in have:
                continue  # a redelivered event
            uow.session.add(
                Delivery(
                    subscription_id=sub.id, event_id=fact.event_id, warning_id=fact.warning_id,
                    transition=fact.transition, level=fact.level, payload=payload, state="pending",
                    attempts=0, next_attempt_at=now, created_at=now,
                )
            )  # fmt: skip
            added += 1
    return added


# --- texts ----------------------------------------------------------------------------------------


def _local(ctx: AppContext, moment: str) -> str:
    """A time as 11月25日 15:30 in the platform's time zone."""
    local = datetime.fromisoformat(moment).astimezone(ZoneInfo(ctx.settings.timezone))
    return f"{local.month}月{local.day}日 {local:%H:%M}"


def _where(payload: dict[str, Any], locale: str = "zh_CN") -> str:
    """Where a warning applies, briefly: the district, the area its entity stands for, or the district and entity."""
    warning = payload["warning"]
    en = locale == "en"
    entity = str(warning["entity_id"]).rsplit(":", 1)[-1]
    district = (warning.get("district_name_en") if en else None) or warning.get("district_name") or ""
    area = (warning.get("area_name_en") if en else None) or warning.get("area_name") or ""
    if warning["scope"] == warning.get("district"):
        return district or entity
    if area:
        return area  # the entity stands for the whole area (绵阳市, not 510700)
    if not district:
        return entity
    return f"{district} {entity}" if en else f"{district}{entity}"


def notification_params(ctx: AppContext, payload: dict[str, Any]) -> dict[str, Any]:
    """What an in-app notification's text is made of: the rule's names, the place and the local time."""
    warning = payload["warning"]
    local = datetime.fromisoformat(warning["at"]).astimezone(ZoneInfo(ctx.settings.timezone))
    rule = warning["rule"]
    return {
        "title": warning["title"],
        "title_en": rule.get("name_en") or warning["title"],
        "where": _where(payload),
        "where_en": _where(payload, "en"),
        "time": f"{local:%Y-%m-%d %H:%M}",
    }


def texts(ctx: AppContext, locale: str, row: Notification) -> tuple[str, str]:
    """A notification's headline and sentence in the reader's language."""
    params = dict(row.params)
    title = params.get("title_en", "") if locale == "en" else params.get("title", "")
    level = ctx.i18n.gettext(locale, LEVEL_WORDS.get(row.level, row.level))
    values = {
        "level": level,
        "title": title,
        "where": (params.get("where_en") if locale == "en" else None) or params.get("where", ""),
        "time": params.get("time", ""),
    }
    headline = ctx.i18n.gettext(locale, N_("{level}: {title}"), **values)
    return headline, ctx.i18n.gettext(locale, SENTENCES[row.transition], **values)


def sms_segments(text: str) -> int:
    """How many SMS segments a text takes: 70 characters fit one, longer texts go in parts of 67."""
    return 1 if len(text) <= SMS_SEGMENT else math.ceil(len(text) / SMS_PART)


def sms_text(ctx: AppContext, payload: dict[str, Any]) -> str:
    """The SMS of a warning event: 【绵阳城市智脑】橙色预警：… — the title shortened to fit one segment when it can."""
    warning, transition = payload["warning"], payload["transition"]
    color = COLOR_ZH.get(warning["level"], "")
    when = _local(ctx, warning["at"])
    head = settings(ctx).sms_signature + (
        f"{color}预警解除：" if transition == "lifted" else f"{color}预警："
    )
    change = {"raised": "发布", "upgraded": "升级", "downgraded": "降级", "lifted": "解除"}[transition]
    tail = f"，{_where(payload)}，{when}{change}。"
    title = str(warning["title"])
    room = SMS_SEGMENT - len(head) - len(tail)
    if len(title) > room >= 4:
        title = title[: room - 1] + "…"
    return f"{head}{title}{tail}"


# --- sending --------------------------------------------------------------------------------------


class SmsSender(Protocol):
    """An SMS gateway: sends a text to a phone number and answers the gateway's message id."""

    def send(self, phone: str, text: str) -> str:
        """Send one text; raise on failure."""
        ...


@dataclass(frozen=True)
class SentSms:
    """A message the logging sender handled."""

    message_id: str
    phone: str
    text: str
    segments: int
    at: datetime


class LoggingSmsSender:
    """The default sender (no gateway): logs each message and keeps the most recent ones."""

    def __init__(self, keep: int = 1000) -> None:
        """Keep up to `keep` messages."""
        self.sent: deque[SentSms] = deque(maxlen=keep)

    def send(self, phone: str, text: str) -> str:
        """Log the message (the phone masked) and keep it; answer a new message id."""
        message_id = uuid4().hex
        self.sent.append(SentSms(message_id, phone, text, sms_segments(text), utcnow()))
        log.info("SMS %s to %s (%d segment(s)): %s", message_id, mask_phone(phone), sms_segments(text), text)
        return message_id


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """One signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def signatures(secrets_: Sequence[str], timestamp: str, body: bytes) -> str:
    """The signature header's value: a signature under each secret, the newest first, comma-separated."""
    return ",".join(sign(secret, timestamp, body) for secret in secrets_)


@dataclass(frozen=True)
class Due:
    """A leased delivery with what sending it needs."""

    id: int
    subscription_id: int
    attempts: int
    channel: str
    payload: dict[str, Any]
    user_id: int | None
    url: str | None
    # The webhook's signing secrets, the newest first (two during a rotation's grace period); empty when
    # the stored one cannot be opened.
    secrets: tuple[str, ...]
    phone: str | None


class SendError(Exception):
    """A receiver refused or could not be reached."""


def _pending() -> tuple[Any, ...]:
    """Pending deliveries of enabled subscriptions (those of a disabled one wait for it)."""
    return (
        Delivery.state == "pending",
        Delivery.subscription_id.in_(select(Subscription.id).where(Subscription.enabled.is_(True))),
    )


def claim(ctx: AppContext, limit: int) -> list[Due]:
    """Lease due deliveries of enabled subscriptions (skipping rows another worker holds)."""
    conf = settings(ctx)
    now = utcnow()
    due = (*_pending(), Delivery.next_attempt_at <= now)
    with ctx.read() as session:
        if session.scalar(select(Delivery.id).where(*due).limit(1)) is None:
            return []
    with ctx.uow(SYSTEM, "warning.publishing.claim") as uow:
        rows = list(
            uow.session.scalars(
                select(Delivery)
                .where(*due)
                .order_by(Delivery.next_attempt_at, Delivery.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        subs = {
            s.id: s
            for s in uow.session.scalars(
                select(Subscription).where(Subscription.id.in_({r.subscription_id for r in rows}))
            )
        }
        # The lease outlasts a webhook's timeout, so no row is sent twice at once.
        lease = now + timedelta(seconds=max(conf.delivery_lease_seconds, 2 * conf.webhook_timeout_seconds))
        claimed = []
        key = sealing_key(ctx) if any(s.secret_sealed for s in subs.values()) else b""
        for row in rows:
            sub = subs[row.subscription_id]
            row.next_attempt_at = lease
            claimed.append(
                Due(
                    row.id,
                    sub.id,
                    row.attempts,
                    sub.channel,
                    dict(row.payload),
                    sub.user_id,
                    sub.url,
                    _secrets(key, sub, now),
                    sub.phone,
                )
            )
    return claimed


def _secrets(key: bytes, sub: Subscription, now: datetime) -> tuple[str, ...]:
    """A webhook's signing secrets in force, opened: the current one, and the replaced one in its grace period."""
    if sub.secret_sealed is None:
        return ()
    sealed = [sub.secret_sealed]
    if (
        sub.previous_secret_sealed
        and sub.previous_secret_until is not None
        and sub.previous_secret_until > now
    ):
        sealed.append(sub.previous_secret_sealed)
    try:
        return tuple(sealing.unseal(key, value) for value in sealed)
    except sealing.SealError:
        log.error("the signing secret of webhook subscription %s does not open: rotate it", sub.id)
        return ()


def deliver_inapp(ctx: AppContext, due: Due) -> None:
    """Write the user's notification and mark the delivery done, in one transaction."""
    params = notification_params(ctx, due.payload)
    warning = due.payload["warning"]
    now = utcnow()
    with ctx.uow(SYSTEM, "warning.publishing.deliver") as uow:
        if uow.session.scalar(select(Notification.id).where(Notification.delivery_id == due.id)) is None:
            note = Notification(
                user_id=due.user_id, delivery_id=due.id, warning_id=warning["id"],
                transition=due.payload["transition"], level=warning["level"], params=params,
                created_at=now,
            )  # fmt: skip
            uow.session.add(note)
            uow.session.flush()
            receipt = f"notification:{note.id}"
        else:
            receipt = None
        values: dict[str, Any] = {"state": "delivered", "attempts": due.attempts + 1, "delivered_at": now}
        if receipt is not None:
            values["receipt"] = receipt
        uow.session.execute(update(Delivery).where(Delivery.id == due.id).values(last_error=None, **values))


def record(ctx: AppContext, due: Due, error: str | None, receipt: str | None = None) -> None:
    """Store the outcome of an attempt: delivered, or due again after the back-off, or given up."""
    conf = settings(ctx)
    now = utcnow()
    attempts = due.attempts + 1
    if error is None:
        values: dict[str, Any] = {
            "state": "delivered",
            "delivered_at": now,
            "last_error": None,
            "receipt": receipt,
        }
    else:
        wait = min(conf.delivery_retry_base_seconds * 2 ** (attempts - 1), conf.delivery_retry_max_seconds)
        values = {
            "state": "failed" if attempts >= conf.delivery_max_attempts else "pending",
            "next_attempt_at": now + timedelta(seconds=wait),
            "last_error": error[:2000],
        }
        log.info("warning delivery %s: attempt %d failed: %s", due.id, attempts, error)
    with ctx.uow(SYSTEM, "warning.publishing.deliver") as uow:
        uow.session.execute(update(Delivery).where(Delivery.id == due.id).values(attempts=attempts, **values))


def next_due_in(ctx: AppContext) -> float | None:
    """Seconds until the next pending delivery is due (None: none is pending)."""
    with ctx.read() as session:
        first = session.scalar(select(func.min(Delivery.next_attempt_at)).where(*_pending()))
    return None if first is None else (first - utcnow()).total_seconds()


def purge(ctx: AppContext) -> int:
    """Delete delivered and given-up deliveries older than the retention period; how many went."""
    # Also drops the webhook secrets replaced by a rotation whose grace period is over.
    now = utcnow()
    horizon = now - timedelta(days=settings(ctx).delivery_retention_days)
    with ctx.uow(SYSTEM, "warning.publishing.purge") as uow:
        result = uow.session.execute(
            delete(Delivery).where(Delivery.state != "pending", Delivery.created_at < horizon)
        )
        for sub in uow.session.scalars(
            select(Subscription).where(
                Subscription.previous_secret_until.is_not(None), Subscription.previous_secret_until <= now
            )
        ):
            sub.previous_secret_sealed, sub.previous_secret_until = None, None
        return int(getattr(result, "rowcount", 0) or 0)


class Publisher:
    """The bus consumers that queue deliveries, and the worker that sends them."""

    def __init__(self, ctx: AppContext, sender: SmsSender) -> None:
        """Prepare the publisher; `register` subscribes it, `run` sends."""
        self.ctx = ctx
        self.conf = settings(ctx)
        self.sender = sender
        self.client: httpx.AsyncClient | None = None
        self._wake = asyncio.Event()
        # Attempts in flight: a slow receiver holds only its own delivery, never the queue.
        self._sending: set[asyncio.Task[None]] = set()
        self._purged = 0.0

    def register(self, bus: Bus) -> None:
        """Consume the warning events (one durable consumer per event type)."""
        bus.subscribe(WarningRaised, self.on_event, durable="warning.publishing.raised")
        bus.subscribe(WarningChanged, self.on_event, durable="warning.publishing.changed")
        bus.subscribe(WarningLifted, self.on_event, durable="warning.publishing.lifted")

    async def on_event(self, event: WarningEvent) -> None:
        """Queue the deliveries of one event and wake the worker."""
        if await asyncio.to_thread(enqueue, self.ctx, event):
            self._wake.set()

    async def run(self) -> None:
        """Send due deliveries until cancelled: wake on new ones, else when the next one is due."""
        self.client = httpx.AsyncClient(
            timeout=self.conf.webhook_timeout_seconds, trust_env=False, follow_redirects=False
        )
        try:
            while True:
                delay = self.conf.delivery_poll_seconds
                try:
                    await self.start_due()
                    due_in = await asyncio.to_thread(next_due_in, self.ctx)
                    if due_in is not None:
                        delay = min(delay, max(due_in, 0.01))
                    if time.monotonic() - self._purged > PURGE_SECONDS:
                        await asyncio.to_thread(purge, self.ctx)
                        self._purged = time.monotonic()
                except Exception:
                    log.exception("the warning delivery worker failed; trying again shortly")
                await wait_event(self._wake, delay)
                self._wake.clear()
        finally:
            # Attempts in flight end within the webhook timeout: let them finish and be recorded rather
            # than cancel a request midway. One that still overruns is cancelled; its lease runs out
            # and it is sent again later.
            if self._sending:
                await asyncio.wait(self._sending, timeout=self.conf.webhook_timeout_seconds + 1)
            for task in self._sending:
                task.cancel()
            await asyncio.gather(*self._sending, return_exceptions=True)
            await self.client.aclose()

    async def start_due(self) -> int:
        """Lease what is due, up to the batch size in flight, and start sending each; how many started."""
        free = self.conf.delivery_batch - len(self._sending)
        if free <= 0:
            return 0
        batch = await asyncio.to_thread(claim, self.ctx, free)
        for due in batch:
            task = asyncio.create_task(self.attempt(due), name=f"citybrain-warning-delivery-{due.id}")
            self._sending.add(task)
            task.add_done_callback(self._sent)
        return len(batch)

    def _sent(self, task: asyncio.Task[None]) -> None:
        """An attempt ended: make room and look for more."""
        self._sending.discard(task)
        self._wake.set()

    async def attempt(self, due: Due) -> None:
        """Send one delivery and record the outcome (a failure never stops the others)."""
        try:
            if due.channel == "inapp":
                await asyncio.to_thread(deliver_inapp, self.ctx, due)
                return
            receipt = await (self.post(due) if due.channel == "webhook" else self.text(due))
            error = None
        except SendError as exc:
            receipt, error = None, str(exc)
        except (httpx.HTTPError, OSError, TimeoutError) as exc:
            receipt, error = None, f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # a broken receiver or gateway must not stall the queue
            log.exception("unexpected error delivering warning delivery %s", due.id)
            receipt, error = None, f"{type(exc).__name__}: {exc}"
        try:
            await asyncio.to_thread(record, self.ctx, due, error, receipt)
        except Exception:  # the row stays leased, and is due again when the lease runs out
            log.exception("recording warning delivery %s failed", due.id)

    async def post(self, due: Due) -> str:
        """POST the signed summary to the webhook; a 2xx answer delivers it."""
        assert self.client is not None and due.url is not None
        if not due.secrets:
            raise SendError("the webhook's signing secret cannot be read: rotate it")
        problem = await asyncio.to_thread(endpoint_problem, self.conf, due.url)
        if problem is not None:
            raise SendError(f"the endpoint is not permitted: {problem}")
        body = orjson.dumps(due.payload)
        stamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "CityBrain-Warning",
            "X-CityBrain-Event": due.payload["transition"],
            "X-CityBrain-Delivery": str(due.id),
            "X-CityBrain-Timestamp": stamp,
            "X-CityBrain-Signature": signatures(due.secrets, stamp, body),
        }
        response = await self.client.post(due.url, content=body, headers=headers)
        if not response.is_success:
            raise SendError(f"HTTP {response.status_code} from the webhook")
        return f"HTTP {response.status_code}"

    async def text(self, due: Due) -> str:
        """Send the SMS through the sender (in a worker thread); answer its message id and segments."""
        assert due.phone is not None
        message = sms_text(self.ctx, due.payload)
        message_id = await asyncio.to_thread(self.sender.send, due.phone, message)
        return f"{message_id} ({sms_segments(message)} segment(s))"[:200]


def start(ctx: AppContext) -> asyncio.Task[None]:
    """Subscribe the publisher to the bus (before it starts) and start the delivery worker."""
    sender: SmsSender = ctx.extensions.setdefault(SMS_SENDER, LoggingSmsSender())
    publisher = Publisher(ctx, sender)
    publisher.register(ctx.bus)
    ctx.extensions[PUBLISHER] = publisher
    return asyncio.create_task(publisher.run(), name="citybrain-warning-publisher")
