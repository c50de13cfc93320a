"""NGSI-LD subscriptions (ETSI GS CIM 009 v1.8 clauses 5.2.12 and 5.8): validation, storage, matching, delivery.

The write path never waits for a subscriber. Every committed change of an entity reaches the bus as
``EntityCreated``, ``AttributesChanged`` or ``EntityDeleted``; the ``SubscriptionEngine`` (started by
``lifespan.py``) consumes them, finds the tenant's active subscriptions that match (entity selector,
trigger, watchedAttributes, q and geoQ on the entity's current state, throttling) and, in one
transaction, queues a Notification in ``context_notification`` and stamps the subscription's
``lastNotification``. A redelivered event adds nothing: a notification is unique per (subscription,
event). A deliverer drains the queue: HTTP POST (httpx) or MQTT publish (aiomqtt, QoS 1 unless the
endpoint's notifierInfo says otherwise), retrying with exponential backoff; because the queue is a
table, a receiver that is down, or a broker restart, loses no notification that is still due. A row
being delivered is leased (its next attempt moved a little ahead) so that a crash mid-delivery only
delays it, and on PostgreSQL several workers can share the queue (``FOR UPDATE SKIP LOCKED``).
Periodic subscriptions (``timeInterval``) are served by a scheduler that queues the current state.

Matching costs no database query for an event no subscription can want: the engine keeps the active
change-based subscriptions in memory, indexed by tenant and entity type, reloaded when a subscription
changes (a ``SubscriptionChanged`` bus event, emitted by the services below) and, for changes made in
other processes, when a cheap fingerprint of the table changes (checked every
``subscription_index_refresh_seconds``).

Where GS CIM 009 v1.8 leaves a choice, or names what this broker does not have:

* ``q``, ``geoQ`` and ``scopeQ`` hold on the entity as this change left it (the stored entity with the
  event's attribute instances applied); for ``entityDeleted`` on the entity as it was when deleted. An
  ``EntityDeleted`` event without that state does not notify a subscription that has one of them.
* ``notification.showChanges`` adds the previous value member (``previousValue``, ``previousObject``,
  ``previousLanguageMap``, ``previousJson``, ``previousValueList``, ``previousObjectList``,
  ``previousVocab``) to each changed or deleted attribute shown; refused with ``keyValues``.
* ``scopeQ`` (clause 4.19): '+' stands for one level, a final '#' for the scope and any below it, ';'
  joins (and), ',' alternates (or), parentheses group.
* ``csf`` filters Context Source Registrations. This broker holds none and forwards nothing, so ``csf`` is
  validated (q-language syntax), stored and returned, and does not filter local entities.
* ``temporalQ`` is only used by Context Source Registration subscriptions; an entity subscription
  carrying it is refused with BadRequestData.
* Notification endpoints pass an allow-list policy (``ContextSettings.subscription_endpoint_*``) when a
  subscription is created or its endpoint changes (BadRequestData) and again before each delivery (a
  refused delivery counts as a failed attempt): a host resolving to a loopback, private, link-local,
  multicast or other non-public address is refused unless the allow-list names it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import ipaddress
import logging
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import aiomqtt
import httpx
import orjson
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from citybrain.apps.context import entities as ent
from citybrain.apps.context import jsonld, services
from citybrain.apps.context.errors import (
    AlreadyExists,
    BadRequestData,
    NgsiError,
    ResourceNotFound,
)
from citybrain.apps.context.events import (
    AttributeChange,
    AttributesChanged,
    EntityCreated,
    EntityDeleted,
    SubscriptionChanged,
)
from citybrain.apps.context.geo import GeoQuery, GeoQueryError, parse_geoquery
from citybrain.apps.context.models import Entity
from citybrain.apps.context.models import Notification as NotificationRow
from citybrain.apps.context.models import Subscription as SubscriptionRow
from citybrain.apps.context.query import Node, QueryError, matches, parse_q
from citybrain.apps.context.settings import ContextSettings
from citybrain.sdk import SYSTEM, Actor, AppContext, Bus, utcnow, uuid4, wait_event

log = logging.getLogger(__name__)

READ, WRITE = "context.subscription.read", "context.subscription.write"
SUBSCRIPTION_PREFIX = "urn:ngsi-ld:Subscription:"
TRIGGERS = (
    "entityCreated",
    "entityUpdated",
    "entityDeleted",
    "attributeCreated",
    "attributeUpdated",
    "attributeDeleted",
)
DEFAULT_TRIGGERS = ("attributeCreated", "attributeUpdated")
ENTITY_UPDATED = ("attributeCreated", "attributeUpdated", "attributeDeleted")
FORMATS = ("normalized", "keyValues", "concise")
JSON, JSONLD = "application/json", "application/ld+json"
SCHEMES = ("http", "https", "mqtt", "mqtts")
DEFAULT_PORTS = {"http": 80, "https": 443, "mqtt": 1883, "mqtts": 8883}
MQTT_VERSIONS = {"mqtt3.1.1": aiomqtt.ProtocolVersion.V311, "mqtt5.0": aiomqtt.ProtocolVersion.V5}
CONTEXT_LINK = '<{}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
# Removing an optional member in an update: JSON null or the NGSI-LD Null.
NULLS = (None, ent.NGSI_LD_NULL)
# At most this many entities go into one periodic notification.
PERIODIC_LIMIT = 1000
# The in-memory subscription index is rebuilt at least this often (seconds), whatever the fingerprint says.
INDEX_MAX_AGE = 60.0
MAX_SCOPE_QUERY_LENGTH, MAX_SCOPE_QUERY_DEPTH = 1024, 16
Form = Literal["normalized", "concise", "keyValues"]
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
EntityEvent = EntityCreated | AttributesChanged | EntityDeleted


# --- validation ---------------------------------------------------------------------------------


def _string(value: Any, member: str) -> str:
    if not isinstance(value, str) or not value:
        raise BadRequestData(f"{member} must be a non-empty string")
    return value


def _number(value: Any, member: str, *, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequestData(f"{member} must be a number")
    if value < 0 or (positive and value == 0):
        raise BadRequestData(f"{member} must be {'greater than' if positive else 'at least'} 0")
    return float(value)


def _name_list(value: Any, member: str, context: jsonld.Context) -> list[str]:
    if not isinstance(value, list) or not value:
        raise BadRequestData(f"{member} must be a non-empty array of attribute names")
    names: list[str] = []
    for name in value:
        try:
            names.append(context.expand(ent.validate_attr_name(name)))
        except BadRequestData:
            raise BadRequestData(f"{member} holds an invalid attribute name {name!r}") from None
    return list(dict.fromkeys(names))


def _type_expression(value: Any, member: str, context: jsonld.Context) -> list[str]:
    """Entity types a selector accepts: a name, or names joined by ',' or '|' (any of them)."""
    if not isinstance(value, str) or not value.strip():
        raise BadRequestData(f"{member} must be an entity type name")
    if any(char in value for char in ";()"):
        raise BadRequestData(f"{member}: type expressions with ';' or parentheses are not supported")
    names = [part.strip() for part in re.split(r"[,|]", value)]
    types: list[str] = []
    for name in names:
        try:
            types.append(context.expand_type(ent.validate_attr_name(name)))
        except BadRequestData:
            raise BadRequestData(f"{member} holds an invalid entity type {name!r}") from None
    return list(dict.fromkeys(types))


def _selector(raw: Any, index: int, context: jsonld.Context) -> dict[str, Any]:
    member = f"entities[{index}]"
    if not isinstance(raw, dict):
        raise BadRequestData(f"{member} must be an object with type and optionally id or idPattern")
    unknown = sorted(set(raw) - {"id", "idPattern", "type"})
    if unknown:
        raise BadRequestData(f"{member} has unknown member(s) {', '.join(unknown)}")
    if "type" not in raw:
        raise BadRequestData(f"{member}.type is missing")
    selector: dict[str, Any] = {"type": _type_expression(raw["type"], f"{member}.type", context)}
    if "id" in raw:
        if not jsonld.is_absolute_uri(raw["id"]):
            raise BadRequestData(f"{member}.id must be an absolute URI, not {raw['id']!r}")
        selector["id"] = raw["id"]
    if "idPattern" in raw:
        pattern = _string(raw["idPattern"], f"{member}.idPattern")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise BadRequestData(f"{member}.idPattern is not a valid regular expression: {exc}") from None
        selector["idPattern"] = pattern
    return selector


def _key_values(value: Any, member: str) -> list[dict[str, str]]:
    if not isinstance(value, list):
        raise BadRequestData(f"{member} must be an array of {{key, value}} objects")
    pairs: list[dict[str, str]] = []
    for item in value:
        if (
            not isinstance(item, dict)
            or set(item) != {"key", "value"}
            or not isinstance(item["key"], str)
            or not item["key"]
            or not isinstance(item["value"], str)
        ):
            raise BadRequestData(f"{member} must hold objects with a string key and a string value")
        pairs.append({"key": item["key"], "value": item["value"]})
    return pairs


def _endpoint(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise BadRequestData("notification.endpoint must be an object with a uri")
    unknown = sorted(set(raw) - {"uri", "accept", "receiverInfo", "notifierInfo"})
    if unknown:
        raise BadRequestData(f"notification.endpoint has unknown member(s) {', '.join(unknown)}")
    uri = raw.get("uri")
    if not isinstance(uri, str) or not jsonld.is_absolute_uri(uri):
        raise BadRequestData(f"notification.endpoint.uri must be an absolute URI, not {uri!r}")
    parts = urlsplit(uri)
    if parts.scheme.lower() not in SCHEMES:
        raise BadRequestData(
            f"notification.endpoint.uri must use one of {', '.join(SCHEMES)}, not {parts.scheme!r}"
        )
    try:
        host, _port = parts.hostname, parts.port
    except ValueError:
        raise BadRequestData(f"notification.endpoint.uri has an invalid port: {uri!r}") from None
    if not host:
        raise BadRequestData(f"notification.endpoint.uri names no host: {uri!r}")
    if parts.scheme.lower().startswith("mqtt") and not parts.path.strip("/"):
        raise BadRequestData("notification.endpoint.uri of an MQTT endpoint must name a topic as its path")
    endpoint: dict[str, Any] = {"uri": uri, "accept": raw.get("accept", JSON)}
    if endpoint["accept"] not in (JSON, JSONLD):
        raise BadRequestData(f"notification.endpoint.accept must be {JSON} or {JSONLD}")
    if "receiverInfo" in raw:
        endpoint["receiverInfo"] = _key_values(raw["receiverInfo"], "notification.endpoint.receiverInfo")
    if "notifierInfo" in raw:
        info = _key_values(raw["notifierInfo"], "notification.endpoint.notifierInfo")
        for pair in info:
            if pair["key"] == "MQTT-Version" and pair["value"] not in MQTT_VERSIONS:
                raise BadRequestData(f"notifierInfo MQTT-Version must be one of {', '.join(MQTT_VERSIONS)}")
            if pair["key"] == "MQTT-QoS" and pair["value"] not in ("0", "1", "2"):
                raise BadRequestData("notifierInfo MQTT-QoS must be 0, 1 or 2")
        endpoint["notifierInfo"] = info
    return endpoint


def _notification_member(key: str, value: Any, context: jsonld.Context) -> Any:
    if key == "attributes":
        return _name_list(value, "notification.attributes", context)
    if key == "format":
        if value not in FORMATS:
            raise BadRequestData(f"notification.format must be one of {', '.join(FORMATS)}, not {value!r}")
        return value
    if key == "endpoint":
        return _endpoint(value)
    if key in ("sysAttrs", "showChanges"):
        if not isinstance(value, bool):
            raise BadRequestData(f"notification.{key} must be true or false")
        return value
    raise BadRequestData(f"notification has an unknown or unsupported member {key}")


READ_ONLY_NOTIFICATION = frozenset(
    {"status", "timesSent", "timesFailed", "lastNotification", "lastSuccess", "lastFailure"}
)


def _notification(raw: Any, context: jsonld.Context, current: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate notification parameters; on update, members given replace the current ones."""
    if not isinstance(raw, dict):
        raise BadRequestData("notification must be an object with an endpoint")
    params: dict[str, Any] = dict(current or {})
    for key, value in raw.items():
        if key in READ_ONLY_NOTIFICATION:
            continue
        if value in NULLS and current is not None and key != "endpoint":
            params.pop(key, None)
            continue
        params[key] = _notification_member(key, value, context)
    if "endpoint" not in params:
        raise BadRequestData("notification.endpoint is missing")
    params.setdefault("format", "normalized")
    if params.get("showChanges") and params["format"] == "keyValues":
        raise BadRequestData("notification.showChanges cannot be true when notification.format is keyValues")
    return params


def _geo_q(raw: Any, context: jsonld.Context) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise BadRequestData("geoQ must be an object with geometry, coordinates and georel")
    unknown = sorted(set(raw) - {"geometry", "coordinates", "georel", "geoproperty"})
    if unknown:
        raise BadRequestData(f"geoQ has unknown member(s) {', '.join(unknown)}")
    missing = [key for key in ("geometry", "coordinates", "georel") if key not in raw]
    if missing:
        raise BadRequestData(f"geoQ needs {', '.join(missing)}")
    geoproperty = raw.get("geoproperty", "location")
    if not isinstance(raw["georel"], str) or not isinstance(raw["geometry"], str):
        raise BadRequestData("geoQ.georel and geoQ.geometry must be strings")
    if not isinstance(raw["coordinates"], str | list):
        raise BadRequestData("geoQ.coordinates must be an array (or its JSON text)")
    stored = {
        "geometry": raw["geometry"],
        "coordinates": raw["coordinates"],
        "georel": raw["georel"],
        "geoproperty": context.expand(ent.validate_attr_name(geoproperty)),
    }
    _compile_geo(stored)
    return stored


def _compile_geo(stored: Mapping[str, Any]) -> GeoQuery:
    try:
        return parse_geoquery(
            stored["georel"], stored["geometry"], stored["coordinates"], stored["geoproperty"]
        )
    except GeoQueryError as exc:
        raise BadRequestData(f"invalid geoQ: {exc}") from None


# --- scope queries (clause 4.19) -----------------------------------------------------------------


@dataclass(frozen=True)
class ScopePattern:
    """One scope pattern: '+' stands for one level, a final '#' for the scope itself and any level below."""

    segments: tuple[str, ...]

    def matches(self, scopes: Sequence[str]) -> bool:
        """Whether one of an entity's scopes fits the pattern."""
        return any(self._fits(scope.strip("/").split("/")) for scope in scopes)

    def _fits(self, levels: list[str]) -> bool:
        pattern = self.segments
        if pattern[-1] == "#":
            pattern = pattern[:-1]
            if len(levels) < len(pattern):
                return False
            levels = levels[: len(pattern)]
        elif len(levels) != len(pattern):
            return False
        return all(want in ("+", level) for want, level in zip(pattern, levels, strict=True))


@dataclass(frozen=True)
class ScopeAll:
    """Scope queries joined by ';': all of them hold."""

    parts: tuple[ScopeNode, ...]

    def matches(self, scopes: Sequence[str]) -> bool:
        """Whether every part holds."""
        return all(part.matches(scopes) for part in self.parts)


@dataclass(frozen=True)
class ScopeAny:
    """Scope queries joined by ',': one of them holds."""

    parts: tuple[ScopeNode, ...]

    def matches(self, scopes: Sequence[str]) -> bool:
        """Whether some part holds."""
        return any(part.matches(scopes) for part in self.parts)


ScopeNode = ScopePattern | ScopeAll | ScopeAny
_SCOPE_LEVEL = r"(?:[^/\s#+;,()]+|\+|#)"
_SCOPE_PATTERN = re.compile(rf"/{_SCOPE_LEVEL}(?:/{_SCOPE_LEVEL})*")


class _ScopeParser:
    """Recursive descent over ``alternatives := all (',' all)*``, ``all := item (';' item)*``."""

    def __init__(self, text: str) -> None:
        self.text, self.position, self.depth = text, 0, 0

    def error(self, message: str) -> BadRequestData:
        return BadRequestData(f"invalid scopeQ: {message} at position {self.position}")

    def parse(self) -> ScopeNode:
        node = self.alternatives()
        if self.position != len(self.text):
            raise self.error(f"unexpected {self.text[self.position]!r}")
        return node

    def _joined(self, separator: str, item: Callable[[], ScopeNode]) -> list[ScopeNode]:
        parts = [item()]
        while self.text.startswith(separator, self.position):
            self.position += 1
            parts.append(item())
        return parts

    def alternatives(self) -> ScopeNode:
        parts = self._joined(",", self.conjunction)
        return parts[0] if len(parts) == 1 else ScopeAny(tuple(parts))

    def conjunction(self) -> ScopeNode:
        parts = self._joined(";", self.item)
        return parts[0] if len(parts) == 1 else ScopeAll(tuple(parts))

    def item(self) -> ScopeNode:
        if self.text.startswith("(", self.position):
            self.depth += 1
            if self.depth > MAX_SCOPE_QUERY_DEPTH:
                raise self.error("parentheses nested too deeply")
            self.position += 1
            node = self.alternatives()
            if not self.text.startswith(")", self.position):
                raise self.error("missing ')'")
            self.position += 1
            self.depth -= 1
            return node
        found = _SCOPE_PATTERN.match(self.text, self.position)
        if found is None:
            raise self.error("expected a scope such as /Madrid/Gardens, /Madrid/+/Park or /Madrid/#")
        segments = tuple(found.group(0)[1:].split("/"))
        if "#" in segments[:-1]:
            raise self.error("'#' may only be the last level of a scope")
        self.position = found.end()
        return ScopePattern(segments)


def parse_scope_query(text: str) -> ScopeNode:
    """Parse a scopeQ (clause 4.19); BadRequestData when it is malformed."""
    if len(text) > MAX_SCOPE_QUERY_LENGTH:
        raise BadRequestData(f"invalid scopeQ: longer than {MAX_SCOPE_QUERY_LENGTH} characters")
    return _ScopeParser(text).parse()


def _member(
    key: str,
    value: Any,
    context: jsonld.Context,
    resolver: jsonld.Resolver | None,
    now: datetime,
    current: Mapping[str, Any] | None,
) -> Any:
    """Validate one subscription member, returning its stored (expanded) value."""
    if key in ("subscriptionName", "description"):
        return _string(value, key)
    if key == "entities":
        if not isinstance(value, list) or not value:
            raise BadRequestData("entities must be a non-empty array of entity selectors")
        return [_selector(raw, index, context) for index, raw in enumerate(value)]
    if key == "watchedAttributes":
        return _name_list(value, key, context)
    if key == "notificationTrigger":
        if not isinstance(value, list) or not value or any(t not in TRIGGERS for t in value):
            raise BadRequestData(f"notificationTrigger must be a non-empty array of {', '.join(TRIGGERS)}")
        return list(dict.fromkeys(value))
    if key == "timeInterval":
        return _number(value, key, positive=True)
    if key == "throttling":
        return _number(value, key, positive=False)
    if key in ("q", "csf"):
        text = _string(value, key)
        try:
            parse_q(text, context.expand)
        except QueryError as exc:
            raise BadRequestData(f"invalid {key}: {exc}") from None
        return text
    if key == "scopeQ":
        text = _string(value, key)
        parse_scope_query(text)
        return text
    if key == "temporalQ":
        raise BadRequestData(
            "temporalQ is only used by context source registration subscriptions, "
            "which this broker does not offer"
        )
    if key == "geoQ":
        return _geo_q(value, context)
    if key == "isActive":
        if not isinstance(value, bool):
            raise BadRequestData("isActive must be true or false")
        return value
    if key == "expiresAt":
        moment = ent.parse_datetime(value, key)
        if datetime.fromisoformat(moment) <= now:
            raise BadRequestData(f"expiresAt must be in the future, not {value}")
        return moment
    if key == "lang":
        ent.parse_lang(_string(value, key))
        return value
    if key == "jsonldContext":
        if not jsonld.is_absolute_uri(value):
            raise BadRequestData(f"jsonldContext must be an absolute URI, not {value!r}")
        jsonld.Context([value], resolver)  # LdContextNotAvailable when the broker does not hold it
        return value
    if key == "notification":
        return _notification(value, context, current.get("notification") if current else None)
    raise BadRequestData(f"the subscription has an unknown or unsupported member {key}")


READ_ONLY = frozenset({"status", "createdAt", "modifiedAt", "@context"})


def _check_whole(doc: Mapping[str, Any]) -> None:
    """Rules that join several members (clause 5.2.12)."""
    if "entities" not in doc and "watchedAttributes" not in doc:
        raise BadRequestData("a subscription needs entities or watchedAttributes (or both)")
    if "timeInterval" in doc and "watchedAttributes" in doc:
        raise BadRequestData("timeInterval (periodic) and watchedAttributes cannot be used together")
    if "timeInterval" in doc and "throttling" in doc:
        raise BadRequestData("timeInterval (periodic) and throttling cannot be used together")
    if "notification" not in doc:
        raise BadRequestData("notification is missing")


def parse_subscription(
    payload: Any, context: jsonld.Context, resolver: jsonld.Resolver | None = None
) -> dict[str, Any]:
    """Validate a Subscription (clause 5.2.12) and return its stored form (names expanded)."""
    if not isinstance(payload, dict):
        raise BadRequestData("the body must be a JSON object (a Subscription)")
    if payload.get("type") != "Subscription":
        raise BadRequestData(f'type must be "Subscription", not {payload.get("type")!r}')
    now = utcnow()
    doc: dict[str, Any] = {"type": "Subscription"}
    if "id" in payload:
        if not jsonld.is_absolute_uri(payload["id"]):
            raise BadRequestData(f"id must be an absolute URI, not {payload['id']!r}")
        doc["id"] = payload["id"]
    else:
        doc["id"] = f"{SUBSCRIPTION_PREFIX}{uuid4()}"
    for key, value in payload.items():
        if key in ("id", "type") or key in READ_ONLY:
            continue
        doc[key] = _member(key, value, context, resolver, now, None)
    doc.setdefault("notificationTrigger", list(DEFAULT_TRIGGERS))
    doc.setdefault("isActive", True)
    _check_whole(doc)
    doc["@context"] = context.as_json()
    return doc


def merge_subscription(
    current: Mapping[str, Any],
    fragment: Any,
    context: jsonld.Context,
    resolver: jsonld.Resolver | None = None,
    *,
    own_context: bool = False,
) -> dict[str, Any]:
    """Apply an update fragment (clause 5.8.2): each member given replaces the current one; null removes it."""
    if not isinstance(fragment, dict) or not fragment:
        raise BadRequestData("the body must be a non-empty JSON object (a Subscription fragment)")
    if "id" in fragment and fragment["id"] != current["id"]:
        raise BadRequestData("id cannot be changed")
    if "type" in fragment and fragment["type"] != "Subscription":
        raise BadRequestData(f'type must be "Subscription", not {fragment["type"]!r}')
    now = utcnow()
    doc = dict(current)
    for key, value in fragment.items():
        if key in ("id", "type") or key in READ_ONLY:
            continue
        if value in NULLS:
            if key == "notification":
                raise BadRequestData("notification cannot be removed")
            doc.pop(key, None)
            continue
        doc[key] = _member(key, value, context, resolver, now, current)
    if not doc.get("notificationTrigger"):
        doc["notificationTrigger"] = list(DEFAULT_TRIGGERS)
    doc.setdefault("isActive", True)
    _check_whole(doc)
    if own_context:
        doc["@context"] = context.as_json()
    return doc


# --- rendering ----------------------------------------------------------------------------------


def _status(row: SubscriptionRow, now: datetime) -> str:
    if not row.is_active:
        return "paused"
    if row.expires_at is not None and row.expires_at <= now:
        return "expired"
    return "active"


def _stamp(moment: datetime | None) -> str | None:
    return ent.format_datetime(moment) if moment is not None else None


def render_subscription(
    row: SubscriptionRow, context: jsonld.Context, *, sys_attrs: bool = False
) -> dict[str, Any]:
    """A stored subscription compacted with the request's @context, with its status and delivery counters."""
    doc = row.data
    compact = context.compact
    out: dict[str, Any] = {"id": row.subscription_id, "type": "Subscription"}
    for key in ("subscriptionName", "description"):
        if key in doc:
            out[key] = doc[key]
    if "entities" in doc:
        out["entities"] = [
            {
                **{k: v for k, v in selector.items() if k != "type"},
                "type": ",".join(context.compact_type(t) for t in selector["type"]),
            }
            for selector in doc["entities"]
        ]
    if "watchedAttributes" in doc:
        out["watchedAttributes"] = [compact(n) for n in doc["watchedAttributes"]]
    out["notificationTrigger"] = doc.get("notificationTrigger", list(DEFAULT_TRIGGERS))
    for key in ("timeInterval", "q", "scopeQ", "csf", "throttling", "lang", "jsonldContext"):
        if key in doc:
            out[key] = doc[key]
    if "geoQ" in doc:
        out["geoQ"] = {**doc["geoQ"], "geoproperty": compact(doc["geoQ"]["geoproperty"])}
    out["isActive"] = row.is_active
    if "expiresAt" in doc:
        out["expiresAt"] = doc["expiresAt"]
    params = dict(doc["notification"])
    if "attributes" in params:
        params["attributes"] = [compact(n) for n in params["attributes"]]
    failed = row.last_failure is not None and (
        row.last_success is None or row.last_failure > row.last_success
    )
    params["status"] = "failed" if failed else "ok"
    params["timesSent"] = row.times_sent
    params["timesFailed"] = row.times_failed
    for key, moment in (
        ("lastNotification", row.last_notification),
        ("lastSuccess", row.last_success),
        ("lastFailure", row.last_failure),
    ):
        if moment is not None:
            params[key] = _stamp(moment)
    out["notification"] = params
    out["status"] = _status(row, utcnow())
    if sys_attrs:
        out["createdAt"] = _stamp(row.created_at)
        out["modifiedAt"] = _stamp(row.modified_at)
    return out


# --- endpoint policy (no notifications to the broker's own network unless allowed) ------------------


def _non_public(address: Address) -> str | None:
    """Why an address is not a public one, or None when it is."""
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_private:
        return "private"
    return None if address.is_global else "reserved"


def _target(uri: str) -> tuple[str, int]:
    """The host and port a notification endpoint URI points at."""
    parts = urlsplit(uri)
    return parts.hostname or "", parts.port or DEFAULT_PORTS.get(parts.scheme.lower(), 80)


def _literal(host: str) -> list[str] | None:
    """The host as an address when it is an IP literal."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        return None


def _addresses(infos: Iterable[tuple[Any, ...]]) -> list[str]:
    """The addresses in getaddrinfo results (an IPv6 zone index dropped)."""
    return sorted({str(info[4][0]).split("%")[0] for info in infos})


def name_allowed(settings: ContextSettings, host: str) -> bool:
    """Whether the allow-list names the host (exactly or by a wildcard pattern)."""
    name = host.lower().rstrip(".")
    return any(fnmatch.fnmatchcase(name, entry) for entry in settings.subscription_endpoint_allowlist)


def address_problem(settings: ContextSettings, host: str, addresses: Sequence[str]) -> str | None:
    """Why the policy refuses a host resolving to these addresses (None: permitted)."""
    if not addresses:
        return f"its host {host} does not resolve to an address"
    networks = []
    for entry in settings.subscription_endpoint_allowlist:
        with contextlib.suppress(ValueError):
            networks.append(ipaddress.ip_network(entry, strict=False))
    for text in addresses:
        address = ipaddress.ip_address(text)
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if any(address in network for network in networks):
            continue
        if not settings.subscription_endpoint_allow_public:
            return f"its host {host} is not on the broker's endpoint allow-list"
        reason = _non_public(address)
        if reason is not None:
            return (
                f"its host {host} resolves to a {reason} address ({address}), "
                "which the broker's endpoint allow-list does not permit"
            )
    return None


def resolve_host(host: str, port: int) -> list[str]:
    """The addresses a host resolves to (an empty list when it does not resolve)."""
    literal = _literal(host)
    if literal is not None:
        return literal
    try:
        return _addresses(socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP))
    except (OSError, UnicodeError):
        return []


def check_endpoint(settings: ContextSettings, uri: str) -> None:
    """Refuse (BadRequestData) a notification endpoint the allow-list policy does not permit."""
    host, port = _target(uri)
    if name_allowed(settings, host):
        return
    problem = address_problem(settings, host, resolve_host(host, port))
    if problem is not None:
        raise BadRequestData(f"notification.endpoint.uri is not permitted: {problem}")


# --- services -----------------------------------------------------------------------------------


def _columns(doc: Mapping[str, Any]) -> dict[str, Any]:
    """Values of the columns derived from a subscription document."""
    return {
        "is_active": bool(doc.get("isActive", True)),
        "status": "active" if doc.get("isActive", True) else "paused",
        "expires_at": datetime.fromisoformat(doc["expiresAt"]) if "expiresAt" in doc else None,
        "throttling": doc.get("throttling"),
        "time_interval": doc.get("timeInterval"),
        "data": dict(doc),
    }


def _load(
    session: Session, tenant: str, subscription_id: str, *, for_update: bool = False
) -> SubscriptionRow:
    stmt = select(SubscriptionRow).where(
        SubscriptionRow.tenant == tenant, SubscriptionRow.subscription_id == subscription_id
    )
    if for_update:
        stmt = stmt.with_for_update()
    row = session.scalar(stmt)
    if row is None:
        raise ResourceNotFound(f"subscription {subscription_id} does not exist")
    return row


def _settings(ctx: AppContext) -> ContextSettings:
    return ctx.app_setting("context", ContextSettings)


def _endpoint_uri(doc: Mapping[str, Any]) -> str:
    return str(doc["notification"]["endpoint"]["uri"])


def create_subscription(ctx: AppContext, actor: Actor, tenant: str, doc: dict[str, Any]) -> str:
    """Store a validated subscription; AlreadyExists when its id is taken, BadRequestData for a refused endpoint."""
    actor.require(WRITE)
    check_endpoint(_settings(ctx), _endpoint_uri(doc))
    now = utcnow()
    with ctx.uow(actor, "context.subscription.create") as uow:
        taken = uow.session.scalar(
            select(SubscriptionRow.pk).where(
                SubscriptionRow.tenant == tenant, SubscriptionRow.subscription_id == doc["id"]
            )
        )
        if taken is not None:
            raise AlreadyExists(f"subscription {doc['id']} already exists")
        uow.session.add(
            SubscriptionRow(
                tenant=tenant, subscription_id=doc["id"], created_at=now, modified_at=now, **_columns(doc)
            )
        )
        uow.record("create", f"context_subscription:{tenant}/{doc['id']}", None, doc)
        uow.emit(SubscriptionChanged(tenant=tenant, subscription_id=doc["id"]))
    return str(doc["id"])


def list_subscriptions(
    ctx: AppContext, actor: Actor, tenant: str, *, limit: int, offset: int, count: bool
) -> tuple[list[SubscriptionRow], int | None]:
    """One page of the tenant's subscriptions in creation order, and the total when asked."""
    actor.require(READ)
    with ctx.read() as session:
        where = SubscriptionRow.tenant == tenant
        total = session.scalar(select(func.count()).where(where)) if count else None
        rows: list[SubscriptionRow] = []
        if limit:
            stmt = (
                select(SubscriptionRow)
                .where(where)
                .order_by(SubscriptionRow.created_at, SubscriptionRow.pk)
                .limit(limit)
                .offset(offset)
            )
            rows = list(session.scalars(stmt))
    return rows, total


def get_subscription(ctx: AppContext, actor: Actor, tenant: str, subscription_id: str) -> SubscriptionRow:
    """One subscription of the tenant."""
    actor.require(READ)
    with ctx.read() as session:
        return _load(session, tenant, subscription_id)


def update_subscription(
    ctx: AppContext,
    actor: Actor,
    tenant: str,
    subscription_id: str,
    apply: Callable[[dict[str, Any]], dict[str, Any]],
) -> None:
    """Replace a subscription's document with `apply(current)` (which validates), atomically."""
    # A new endpoint is checked against the policy before the transaction (name resolution holds no lock).
    actor.require(WRITE)
    with ctx.read() as session:
        current = dict(_load(session, tenant, subscription_id).data)
    first = apply(current)
    if _endpoint_uri(first) != _endpoint_uri(current):
        check_endpoint(_settings(ctx), _endpoint_uri(first))
    with ctx.uow(actor, "context.subscription.update") as uow:
        row = _load(uow.session, tenant, subscription_id, for_update=True)
        before = dict(row.data)
        doc = apply(before)
        if _endpoint_uri(doc) not in (_endpoint_uri(before), _endpoint_uri(first)):
            check_endpoint(_settings(ctx), _endpoint_uri(doc))  # changed by another request meanwhile
        for key, value in _columns(doc).items():
            setattr(row, key, value)
        row.modified_at = utcnow()
        if doc.get("timeInterval") != before.get("timeInterval"):
            row.next_periodic_at = None
        uow.record("update", f"context_subscription:{tenant}/{subscription_id}", before, doc)
        uow.emit(SubscriptionChanged(tenant=tenant, subscription_id=subscription_id))


def delete_subscription(ctx: AppContext, actor: Actor, tenant: str, subscription_id: str) -> None:
    """Delete a subscription and the notifications still queued for it."""
    actor.require(WRITE)
    with ctx.uow(actor, "context.subscription.delete") as uow:
        row = _load(uow.session, tenant, subscription_id, for_update=True)
        uow.session.execute(delete(NotificationRow).where(NotificationRow.subscription_pk == row.pk))
        uow.session.delete(row)
        uow.record("delete", f"context_subscription:{tenant}/{subscription_id}", row.data, None)
        uow.emit(SubscriptionChanged(tenant=tenant, subscription_id=subscription_id))


# --- matching -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Selector:
    types: frozenset[str]
    entity_id: str | None
    pattern: re.Pattern[str] | None

    def matches(self, entity_id: str, types: Iterable[str]) -> bool:
        if self.types.isdisjoint(types):
            return False
        if self.entity_id is not None:
            return entity_id == self.entity_id
        return self.pattern is None or self.pattern.search(entity_id) is not None


@dataclass(frozen=True)
class Compiled:
    """A subscription ready for matching and rendering: parsed q, geoQ, scopeQ, selectors and @context."""

    pk: int
    tenant: str
    subscription_id: str
    modified_at: datetime
    context: jsonld.Context
    selectors: tuple[_Selector, ...]
    watched: frozenset[str] | None
    triggers: frozenset[str]
    q: Node | None
    geo: GeoQuery | None
    scope: ScopeNode | None
    attributes: frozenset[str] | None
    form: Form
    sys_attrs: bool
    show_changes: bool
    lang: str | None

    @property
    def effective_triggers(self) -> frozenset[str]:
        """The triggers with entityUpdated spelled out as the attribute triggers it stands for."""
        return self.triggers | (
            frozenset(ENTITY_UPDATED) if "entityUpdated" in self.triggers else frozenset()
        )

    @property
    def types(self) -> frozenset[str] | None:
        """The entity types the selectors accept (None: no selector, any type)."""
        if not self.selectors:
            return None
        return frozenset().union(*(s.types for s in self.selectors))

    @property
    def filters_state(self) -> bool:
        """Whether q, geoQ or scopeQ must hold on the entity."""
        return self.q is not None or self.geo is not None or self.scope is not None

    def wants(self, event: EntityEvent) -> bool:
        """A cheap first look: whether this kind of event (and its attributes) can trigger the subscription."""
        if isinstance(event, EntityCreated):
            return "entityCreated" in self.triggers
        if isinstance(event, EntityDeleted):
            return "entityDeleted" in self.triggers
        if self.effective_triggers.isdisjoint(ENTITY_UPDATED):
            return False
        return self.watched is None or any(change.attr in self.watched for change in event.changes)

    def selects(self, entity_id: str, types: Iterable[str]) -> bool:
        """Whether the entity selector (if any) picks this entity."""
        types = list(types)
        return not self.selectors or any(s.matches(entity_id, types) for s in self.selectors)

    def state_matches(self, stored: Mapping[str, Any]) -> bool:
        """Whether q, geoQ and scopeQ hold on the entity's state."""
        if self.q is not None and not matches(self.q, stored):
            return False
        if self.scope is not None and not self.scope.matches(stored.get("scope") or ()):
            return False
        if self.geo is not None:
            geometry = ent.geometry_of(stored, self.geo.geoproperty)
            return isinstance(geometry, dict) and self.geo.matches(geometry)
        return True

    def render(self, stored: Mapping[str, Any]) -> dict[str, Any]:
        """The entity as the subscription asks for it (format, attributes, sysAttrs, lang)."""
        return ent.render_entity(
            stored,
            self.context,
            form=self.form,
            sys_attrs=self.sys_attrs,
            attrs=set(self.attributes) if self.attributes is not None else None,
            lang=self.lang,
        )


def compile_subscription(row: SubscriptionRow, resolver: jsonld.Resolver | None) -> Compiled:
    """Parse what matching needs from a stored subscription."""
    doc = row.data
    jsonld_context = doc.get("jsonldContext")
    context = jsonld.Context([jsonld_context] if jsonld_context else doc.get("@context"), resolver)
    expand_context = jsonld.Context(doc.get("@context"), resolver) if jsonld_context else context
    params = doc["notification"]
    return Compiled(
        pk=row.pk,
        tenant=row.tenant,
        subscription_id=row.subscription_id,
        modified_at=row.modified_at,
        context=context,
        selectors=tuple(
            _Selector(
                frozenset(s["type"]),
                s.get("id"),
                re.compile(s["idPattern"]) if "idPattern" in s else None,
            )
            for s in doc.get("entities", ())
        ),
        watched=frozenset(doc["watchedAttributes"]) if "watchedAttributes" in doc else None,
        triggers=frozenset(doc.get("notificationTrigger", DEFAULT_TRIGGERS)),
        q=parse_q(doc["q"], expand_context.expand) if "q" in doc else None,
        geo=_compile_geo(doc["geoQ"]) if "geoQ" in doc else None,
        scope=parse_scope_query(doc["scopeQ"]) if "scopeQ" in doc else None,
        attributes=frozenset(params["attributes"]) if "attributes" in params else None,
        form=params.get("format", "normalized"),
        sys_attrs=bool(params.get("sysAttrs", False)),
        show_changes=bool(params.get("showChanges", False)),
        lang=doc.get("lang"),
    )


def _reason(change: AttributeChange) -> str:
    if change.old is None:
        return "attributeCreated"
    if change.new is None:
        return "attributeDeleted"
    return "attributeUpdated"


def _deleted_attr(instance: Mapping[str, Any], form: Form) -> Any:
    """How a deleted attribute shows in a notification: its value member set to the NGSI-LD Null."""
    kind = instance.get("type", "Property")
    member = ent.VALUE_MEMBER.get(kind, "value")
    value: Any = {"@none": ent.NGSI_LD_NULL} if kind == "LanguageProperty" else ent.NGSI_LD_NULL
    if form == "keyValues":
        return value
    if form == "concise":
        return {member: value}
    return {"type": kind, member: value}


def _overlay(stored: Mapping[str, Any], changes: Iterable[AttributeChange]) -> dict[str, Any]:
    """The entity as these changes left it: the stored state with the event's attribute instances applied."""
    attrs = dict(stored.get("attrs", {}))
    for change in changes:
        kept = [i for i in attrs.get(change.attr, []) if i.get("datasetId") != change.dataset_id]
        if change.new is not None:
            kept.append(change.new)
        if kept:
            attrs[change.attr] = sorted(
                kept, key=lambda i: (i.get("datasetId") is not None, i.get("datasetId") or "")
            )
        else:
            attrs.pop(change.attr, None)
    return {**stored, "attrs": attrs}


def _previous(compiled: Compiled, old: Mapping[str, Any]) -> tuple[str, Any]:
    """The previous value member of a changed instance (clause 5.2.14 showChanges): its name and value."""
    kind = old.get("type", "Property")
    member = ent.VALUE_MEMBER.get(kind, "value")
    value = old.get(member)
    if kind == "LanguageProperty" and compiled.lang is not None:
        return "previousValue", ent.select_language(value or {}, ent.parse_lang(compiled.lang))[1]
    if kind == "ListRelationship" and compiled.form == "normalized" and isinstance(value, list):
        value = [{"object": uri} for uri in value]
    elif kind == "VocabProperty" and value is not None:
        value = (
            compiled.context.compact(value)
            if isinstance(value, str)
            else [compiled.context.compact(v) for v in value]
        )
    return "previous" + member[0].upper() + member[1:], value


def _show_change(body: dict[str, Any], compiled: Compiled, change: AttributeChange) -> None:
    """Add the previous value of a changed or deleted instance to the rendered attribute."""
    if change.old is None:
        return
    name = compiled.context.compact(change.attr)
    rendered = body.get(name)
    if rendered is None:
        return
    key, previous = _previous(compiled, change.old)
    if isinstance(rendered, list):  # several datasetIds: each instance is an object
        for instance in rendered:
            if isinstance(instance, dict) and instance.get("datasetId") == change.dataset_id:
                instance[key] = previous
        return
    if not isinstance(rendered, dict):  # a concise bare value gains its value member back
        if change.dataset_id is not None:
            return
        rendered = body[name] = {"value": rendered}
    elif rendered.get("datasetId") != change.dataset_id:
        return
    rendered[key] = previous


@dataclass
class Match:
    """A notification to queue: for which subscription, why, and the entities it carries."""

    compiled: Compiled
    reason: str
    data: list[dict[str, Any]]


def match_event(compiled: Compiled, event: EntityEvent, stored: Mapping[str, Any] | None) -> Match | None:
    """Whether an event triggers a subscription, and the notification."""
    # `stored` is the entity's current state, or for EntityDeleted its state when it was deleted (if known).
    if not compiled.selects(event.entity_id, event.types):
        return None
    if isinstance(event, EntityDeleted):
        if "entityDeleted" not in compiled.triggers:
            return None
        if compiled.filters_state and (stored is None or not compiled.state_matches(stored)):
            return None
        types = [compiled.context.compact_type(t) for t in event.types]
        gone = {
            "id": event.entity_id,
            "type": types[0] if len(types) == 1 else types,
            "deletedAt": ent.format_datetime(event.occurred_at),
        }
        return Match(compiled, "entityDeleted", [gone])
    if stored is None:
        return None
    if isinstance(event, EntityCreated):
        if "entityCreated" not in compiled.triggers or not compiled.state_matches(stored):
            return None
        return Match(compiled, "entityCreated", [compiled.render(stored)])
    state = _overlay(stored, event.changes)
    if not compiled.state_matches(state):
        return None
    changes = [c for c in event.changes if compiled.watched is None or c.attr in compiled.watched]
    reasons = [_reason(c) for c in changes]
    hits = [r for r in reasons if r in compiled.effective_triggers]
    if not hits:
        return None
    # The attributes of a new entity arrive as their own event; entityCreated already covers them.
    created_with_entity = all(
        c.old is None and c.new is not None and c.new.get("createdAt") == stored.get("createdAt")
        for c in event.changes
    )
    if created_with_entity and "entityCreated" in compiled.triggers:
        return None
    reason = hits[0] if hits[0] in compiled.triggers else "entityUpdated"
    body = compiled.render(state)
    shown = [c for c in changes if compiled.attributes is None or c.attr in compiled.attributes]
    if "attributeDeleted" in hits:
        for change in shown:
            if change.new is None and change.old is not None:
                body.setdefault(
                    compiled.context.compact(change.attr), _deleted_attr(change.old, compiled.form)
                )
    if compiled.show_changes:
        for change in shown:
            _show_change(body, compiled, change)
    return Match(compiled, reason, [body])


def notification_body(subscription_id: str, reason: str | None, data: list[dict[str, Any]]) -> dict[str, Any]:
    """The Notification data type (clause 5.3.1); notifiedAt is set when it is sent."""
    body: dict[str, Any] = {
        "id": f"urn:ngsi-ld:Notification:{uuid4()}",
        "type": "Notification",
        "subscriptionId": subscription_id,
        "notifiedAt": None,
        "data": data,
    }
    if reason is not None:
        body["triggerReason"] = reason
    return body


def _throttled(row: SubscriptionRow, now: datetime) -> bool:
    return bool(
        row.throttling
        and row.last_notification is not None
        and row.last_notification + timedelta(seconds=row.throttling) > now
    )


def _enqueue(session: Session, row: SubscriptionRow, key: str, body: dict[str, Any], now: datetime) -> bool:
    """Queue a notification unless this (subscription, event) already has one."""
    exists = session.scalar(
        select(NotificationRow.pk).where(
            NotificationRow.subscription_pk == row.pk, NotificationRow.event_key == key
        )
    )
    if exists is not None:
        return False
    session.add(
        NotificationRow(
            subscription_pk=row.pk,
            subscription_id=row.subscription_id,
            event_key=key,
            payload=body,
            state="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    )
    row.last_notification = now
    return True


def _active(now: datetime) -> Any:
    return (SubscriptionRow.status == "active") & or_(
        SubscriptionRow.expires_at.is_(None), SubscriptionRow.expires_at > now
    )


def _live(row: SubscriptionRow, now: datetime) -> bool:
    """Whether a change-based subscription may notify now (active, not expired, not periodic)."""
    return (
        row.status == "active"
        and row.time_interval is None
        and (row.expires_at is None or row.expires_at > now)
    )


@dataclass(frozen=True)
class Indexed:
    """An active change-based subscription as the in-memory index holds it."""

    compiled: Compiled
    expires_at: datetime | None
    throttling: float | None


class SubscriptionIndex:
    """Active change-based subscriptions by tenant, then by entity type (or for any type)."""

    def __init__(self, entries: Iterable[Indexed]) -> None:
        """Index the entries by the types their entity selectors accept."""
        self._typed: dict[str, dict[str, list[Indexed]]] = {}
        self._untyped: dict[str, list[Indexed]] = {}
        self.size = 0
        for entry in entries:
            self.size += 1
            types = entry.compiled.types
            if types is None:
                self._untyped.setdefault(entry.compiled.tenant, []).append(entry)
                continue
            by_type = self._typed.setdefault(entry.compiled.tenant, {})
            for entity_type in types:
                by_type.setdefault(entity_type, []).append(entry)

    def candidates(self, tenant: str, types: Iterable[str]) -> list[Indexed]:
        """The subscriptions that may want an event of an entity of these types (no duplicates)."""
        untyped = self._untyped.get(tenant)
        by_type = self._typed.get(tenant)
        if by_type is None:
            return list(untyped) if untyped else []
        found = [entry for entity_type in types for entry in by_type.get(entity_type, ())]
        if untyped:
            found.extend(untyped)
        if len(found) > 1:
            found = list({entry.compiled.pk: entry for entry in found}.values())
        return found


# --- delivery -----------------------------------------------------------------------------------


class DeliveryError(Exception):
    """A notification could not be delivered (the message says why)."""


@dataclass(frozen=True)
class Delivery:
    """A claimed notification with what sending it needs."""

    pk: int
    subscription_pk: int
    tenant: str
    attempts: int
    payload: dict[str, Any]
    subscription: dict[str, Any]
    expires_at: datetime | None


def _pairs(pairs: Sequence[Mapping[str, str]] | None) -> dict[str, str]:
    return {p["key"]: p["value"] for p in pairs or ()}


def _context_value(subscription: Mapping[str, Any]) -> Any:
    """The @context a notification carries: jsonldContext if set, else the subscription's."""
    if subscription.get("jsonldContext"):
        return subscription["jsonldContext"]
    return subscription.get("@context") or jsonld.CORE_CONTEXT_URL


def _link(subscription: Mapping[str, Any]) -> str:
    value = _context_value(subscription)
    urls = [value] if isinstance(value, str) else [v for v in value if isinstance(v, str)]
    return CONTEXT_LINK.format(urls[0] if urls else jsonld.CORE_CONTEXT_URL)


def message(delivery: Delivery, now: datetime) -> tuple[dict[str, str], bytes]:
    """The headers and body of a notification as sent (JSON with a Link header, or JSON-LD)."""
    subscription = delivery.subscription
    endpoint = subscription["notification"]["endpoint"]
    body = {**delivery.payload, "notifiedAt": ent.format_datetime(now)}
    accept = endpoint.get("accept", JSON)
    headers = {"Content-Type": accept}
    if accept == JSONLD:
        body["@context"] = _context_value(subscription)
    else:
        headers["Link"] = _link(subscription)
    if delivery.tenant:
        headers["NGSILD-Tenant"] = delivery.tenant
    headers.update(_pairs(endpoint.get("receiverInfo")))
    return headers, orjson.dumps(body)


@dataclass
class SubscriptionEngine:
    """Matches entity events against subscriptions, queues notifications and delivers them."""

    ctx: AppContext
    settings: ContextSettings = field(default_factory=ContextSettings)
    _cache: dict[tuple[int, datetime], Compiled] = field(default_factory=dict)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _inflight: set[int] = field(default_factory=set)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _loops: list[asyncio.Task[None]] = field(default_factory=list)
    _client: httpx.AsyncClient | None = None
    # The in-memory index, the table fingerprint it was built from, and when (monotonic seconds).
    _index: SubscriptionIndex | None = None
    _fingerprint: tuple[Any, ...] | None = None
    _indexed_at: float = 0.0
    _reload: threading.Lock = field(default_factory=threading.Lock)
    _index_changing: asyncio.Lock = field(default_factory=asyncio.Lock)
    # When this process last queued a notification per subscription (a first look at throttling).
    _queued_at: dict[int, datetime] = field(default_factory=dict)

    # --- lifecycle

    def register(self, bus: Bus) -> None:
        """Consume the context broker's entity events (one durable per event type) and subscription changes."""
        bus.subscribe(EntityCreated, self.on_event, durable="context.subscriptions.created")
        bus.subscribe(AttributesChanged, self.on_event, durable="context.subscriptions.changed")
        bus.subscribe(EntityDeleted, self.on_event, durable="context.subscriptions.deleted")
        bus.subscribe(
            SubscriptionChanged, self.on_subscription_changed, durable="context.subscriptions.index"
        )

    async def start(self) -> None:
        """Start the deliverer, the periodic scheduler and the index refresher on the running loop."""
        self._client = httpx.AsyncClient(timeout=self.settings.subscription_timeout_seconds, trust_env=False)
        self._loops = [
            asyncio.create_task(self._deliver_loop(), name="context-subscriptions-deliverer"),
            asyncio.create_task(self._schedule_loop(), name="context-subscriptions-scheduler"),
            asyncio.create_task(self._index_loop(), name="context-subscriptions-index"),
        ]

    async def stop(self) -> None:
        """Stop the loops; let deliveries in flight end (within the timeout), cancel any that overrun."""
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=self.settings.subscription_timeout_seconds + 1)
        for task in self._tasks:
            task.cancel()  # its row becomes due again after the lease
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._loops.clear()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _resolver(self) -> jsonld.Resolver:
        from citybrain.apps.context.contexts import resolve

        return lambda url: resolve(self.ctx, url)

    def compiled(self, row: SubscriptionRow) -> Compiled:
        """The compiled form of a subscription row, cached until the row is modified."""
        key = (row.pk, row.modified_at)
        found = self._cache.get(key)
        if found is None:
            if len(self._cache) > 10_000:
                self._cache.clear()
            found = self._cache[key] = compile_subscription(row, self._resolver())
        return found

    # --- the in-memory index

    def _table_fingerprint(self, session: Session) -> tuple[Any, ...]:
        """Changes whenever a subscription is created, updated or deleted (count and latest change)."""
        found = session.execute(select(func.count(SubscriptionRow.pk), func.max(SubscriptionRow.modified_at)))
        return tuple(found.one())

    def reload_index(self) -> SubscriptionIndex:
        """Rebuild the index of active change-based subscriptions from the database."""
        with self._reload:
            with self.ctx.read() as session:
                fingerprint = self._table_fingerprint(session)
                rows = list(
                    session.scalars(
                        select(SubscriptionRow).where(
                            SubscriptionRow.status == "active", SubscriptionRow.time_interval.is_(None)
                        )
                    )
                )
            entries: list[Indexed] = []
            for row in rows:
                try:
                    entries.append(Indexed(self.compiled(row), row.expires_at, row.throttling))
                except NgsiError as exc:  # e.g. its @context is no longer available
                    log.warning("subscription %s cannot be evaluated: %s", row.subscription_id, exc)
            index = SubscriptionIndex(entries)
            live = {entry.compiled.pk for entry in entries}
            self._queued_at = {pk: at for pk, at in self._queued_at.items() if pk in live}
            self._index, self._fingerprint, self._indexed_at = index, fingerprint, time.monotonic()
            return index

    def refresh_index(self) -> None:
        """Rebuild the index if the subscription table changed (another process) or the index is old."""
        if self._index is not None and time.monotonic() - self._indexed_at < INDEX_MAX_AGE:
            with self.ctx.read() as session:
                if self._table_fingerprint(session) == self._fingerprint:
                    return
        self.reload_index()

    def index(self) -> SubscriptionIndex:
        """The current index (built on first use)."""
        return self._index if self._index is not None else self.reload_index()

    async def _index_loop(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.refresh_index)
            except Exception:
                log.exception("refreshing the subscription index failed; retrying")
            await asyncio.sleep(self.settings.subscription_index_refresh_seconds)

    async def on_subscription_changed(self, event: SubscriptionChanged) -> None:
        """Rebuild the index now; entity events wait for it meanwhile."""
        async with self._index_changing:
            await asyncio.to_thread(self.reload_index)

    # --- matching

    async def on_event(self, event: EntityEvent) -> None:
        """Queue the notifications an entity event triggers (idempotent per event)."""
        if self._index_changing.locked():  # a subscription just changed: match against the new index
            async with self._index_changing:
                pass
        index, now = self._index, utcnow()
        if index is not None and not any(
            self._may_notify(entry, event, now) for entry in index.candidates(event.tenant, event.types)
        ):
            return  # the common case at high rates: no query, no thread
        if await asyncio.to_thread(self.match, event):
            self._wake.set()

    def _may_notify(self, entry: Indexed, event: EntityEvent, now: datetime) -> bool:
        """A first look without the database: live, not throttled here, interested in this kind of event."""
        if entry.expires_at is not None and entry.expires_at <= now:
            return False
        last = self._queued_at.get(entry.compiled.pk)
        if entry.throttling and last is not None and last + timedelta(seconds=entry.throttling) > now:
            return False
        return entry.compiled.wants(event) and entry.compiled.selects(event.entity_id, event.types)

    def match(self, event: EntityEvent) -> int:
        """Find the subscriptions an event triggers and queue their notifications; return how many."""
        now = utcnow()
        entries = [
            entry
            for entry in self.index().candidates(event.tenant, event.types)
            if self._may_notify(entry, event, now)
        ]
        if not entries:
            return 0
        stored: Mapping[str, Any] | None = event.entity if isinstance(event, EntityDeleted) else None
        if not isinstance(event, EntityDeleted):
            with self.ctx.read() as session:
                stored = session.scalar(
                    select(Entity.data).where(
                        Entity.tenant == event.tenant, Entity.entity_id == event.entity_id
                    )
                )
        found = [m for entry in entries if (m := self._match(entry.compiled, event, stored)) is not None]
        if not found:
            return 0
        queued = 0
        with self.ctx.uow(SYSTEM, "context.subscription.notify") as uow:
            for first in found:
                locked = uow.session.get(SubscriptionRow, first.compiled.pk, with_for_update=True)
                if locked is None or not _live(locked, now) or _throttled(locked, now):
                    continue
                hit: Match | None = first
                if locked.modified_at != first.compiled.modified_at:  # changed since it was indexed
                    hit = self._match(self.compiled(locked), event, stored)
                if hit is None:
                    continue
                body = notification_body(locked.subscription_id, hit.reason, hit.data)
                if _enqueue(uow.session, locked, str(event.event_id), body, now):
                    self._queued_at[locked.pk] = now
                    queued += 1
        return queued

    def _match(
        self, compiled: Compiled, event: EntityEvent, stored: Mapping[str, Any] | None
    ) -> Match | None:
        try:
            return match_event(compiled, event, stored)
        except NgsiError as exc:  # e.g. its @context is no longer available
            log.warning("subscription %s cannot be evaluated: %s", compiled.subscription_id, exc)
            return None

    # --- periodic notifications

    async def _schedule_loop(self) -> None:
        housekeeping = 0.0
        while True:
            try:
                if await asyncio.to_thread(self.run_periodic):
                    self._wake.set()
                loop_time = asyncio.get_running_loop().time()
                if loop_time - housekeeping > 60:
                    housekeeping = loop_time
                    await asyncio.to_thread(self.housekeeping)
            except Exception:
                log.exception("periodic subscription scheduler failed; retrying")
            await asyncio.sleep(self.settings.subscription_poll_seconds)

    def run_periodic(self) -> int:
        """Queue the current state for every periodic subscription that is due; return how many."""
        now = utcnow()
        with self.ctx.read() as session:
            due = list(
                session.scalars(
                    select(SubscriptionRow).where(
                        SubscriptionRow.time_interval.is_not(None),
                        _active(now),
                        or_(
                            SubscriptionRow.next_periodic_at.is_(None),
                            SubscriptionRow.next_periodic_at <= now,
                        ),
                    )
                )
            )
        queued = 0
        for row in due:
            try:
                compiled = self.compiled(row)
                data = [compiled.render(stored) for stored in self._current(compiled)]
            except NgsiError as exc:
                log.warning("periodic subscription %s cannot be evaluated: %s", row.subscription_id, exc)
                data = []
            with self.ctx.uow(SYSTEM, "context.subscription.notify") as uow:
                locked = uow.session.get(SubscriptionRow, row.pk, with_for_update=True)
                if locked is None or locked.next_periodic_at != row.next_periodic_at:
                    continue  # deleted, or another worker served this period
                locked.next_periodic_at = now + timedelta(seconds=locked.time_interval or 1)
                if data:
                    body = notification_body(locked.subscription_id, None, data)
                    queued += _enqueue(uow.session, locked, f"periodic:{ent.format_datetime(now)}", body, now)
        return queued

    def _current(self, compiled: Compiled) -> list[dict[str, Any]]:
        """The entities a periodic subscription selects, in their current state."""
        found: dict[str, dict[str, Any]] = {}
        selectors = compiled.selectors or (None,)
        for selector in selectors:
            query = services.EntityQuery(
                types=sorted(selector.types) if selector else None,
                ids=[selector.entity_id] if selector and selector.entity_id else None,
                id_pattern=selector.pattern.pattern if selector and selector.pattern else None,
                q=compiled.q,
                geo=compiled.geo,
                attrs=set(compiled.watched) if compiled.watched else None,
                limit=PERIODIC_LIMIT,
            )
            try:
                result = services.query_entities(self.ctx, SYSTEM, compiled.tenant, query)
            except NgsiError:  # a tenant without entities
                return []
            for stored in result.entities:
                if compiled.scope is None or compiled.scope.matches(stored.get("scope") or ()):
                    found.setdefault(stored["id"], stored)
        return [found[key] for key in sorted(found)][:PERIODIC_LIMIT]

    def housekeeping(self) -> None:
        """Drop old delivered or abandoned notifications; abandon those of expired subscriptions."""
        now = utcnow()
        with self.ctx.uow(SYSTEM, "context.subscription.housekeeping") as uow:
            expired = select(SubscriptionRow.pk).where(SubscriptionRow.expires_at <= now)
            uow.session.execute(
                update(NotificationRow)
                .where(NotificationRow.state == "pending", NotificationRow.subscription_pk.in_(expired))
                .values(state="failed", last_error="the subscription expired")
            )
            horizon = now - timedelta(hours=self.settings.subscription_retention_hours)
            uow.session.execute(
                delete(NotificationRow).where(
                    NotificationRow.state != "pending", NotificationRow.created_at < horizon
                )
            )

    # --- delivery

    async def _deliver_loop(self) -> None:
        while True:
            delay = self.settings.subscription_poll_seconds
            try:
                free = self.settings.subscription_max_parallel - len(self._inflight)
                if free > 0:
                    claimed = await asyncio.to_thread(self.claim, set(self._inflight), free)
                    for subscription_pk, deliveries in claimed.items():
                        self._inflight.add(subscription_pk)
                        task = asyncio.create_task(self._deliver_group(subscription_pk, deliveries))
                        self._tasks.add(task)
                        task.add_done_callback(self._tasks.discard)
                due_in = await asyncio.to_thread(self.next_due_in)
                if due_in is not None:
                    delay = min(delay, max(due_in, 0.01))
            except Exception:
                log.exception("notification deliverer failed; retrying")
            await wait_event(self._wake, delay)
            self._wake.clear()

    def next_due_in(self) -> float | None:
        """Seconds until the next pending notification of a subscription not in flight is due."""
        with self.ctx.read() as session:
            stmt = select(func.min(NotificationRow.next_attempt_at)).where(
                NotificationRow.state == "pending",
                NotificationRow.subscription_pk.in_(select(SubscriptionRow.pk).where(_active(utcnow()))),
            )
            if self._inflight:
                stmt = stmt.where(NotificationRow.subscription_pk.not_in(self._inflight))
            first = session.scalar(stmt)
        return None if first is None else (first - utcnow()).total_seconds()

    def claim(self, busy: set[int], groups: int) -> dict[int, list[Delivery]]:
        """Lease due notifications, grouped by subscription (at most `groups`), skipping busy ones."""
        now = utcnow()
        due_filter = [
            NotificationRow.state == "pending",
            NotificationRow.next_attempt_at <= now,
            NotificationRow.subscription_pk.in_(select(SubscriptionRow.pk).where(_active(now))),
        ]
        if busy:
            due_filter.append(NotificationRow.subscription_pk.not_in(busy))
        with self.ctx.read() as session:
            first = session.scalar(select(NotificationRow.pk).where(*due_filter).limit(1))
        if first is None:
            return {}
        claimed: dict[int, list[Delivery]] = {}
        with self.ctx.uow(SYSTEM, "context.subscription.deliver") as uow:
            stmt = (
                select(NotificationRow)
                .where(*due_filter)
                .order_by(NotificationRow.next_attempt_at, NotificationRow.pk)
                .limit(self.settings.subscription_batch_size)
                .with_for_update(skip_locked=True)
            )
            rows = list(uow.session.scalars(stmt))
            subscriptions = {
                s.pk: s
                for s in uow.session.scalars(
                    select(SubscriptionRow).where(SubscriptionRow.pk.in_({r.subscription_pk for r in rows}))
                )
            }
            lease = now + timedelta(seconds=self.settings.subscription_lease_seconds)
            for row in rows:
                sub = subscriptions[row.subscription_pk]
                if row.subscription_pk not in claimed and len(claimed) >= groups:
                    continue
                row.next_attempt_at = lease
                claimed.setdefault(row.subscription_pk, []).append(
                    Delivery(
                        pk=row.pk,
                        subscription_pk=row.subscription_pk,
                        tenant=sub.tenant,
                        attempts=row.attempts,
                        payload=dict(row.payload),
                        subscription=dict(sub.data),
                        expires_at=sub.expires_at,
                    )
                )
        return claimed

    async def _deliver_group(self, subscription_pk: int, deliveries: list[Delivery]) -> None:
        """Send one subscription's notifications in order; stop at the first failure (order is kept)."""
        try:
            for index, delivery in enumerate(deliveries):
                error = await self.send(delivery)
                resume = await asyncio.to_thread(self.record, delivery, error)
                if resume is not None:
                    rest = [d.pk for d in deliveries[index + 1 :]]
                    if rest:
                        await asyncio.to_thread(self.release, rest, resume)
                    break
        except Exception:
            log.exception("delivering notifications of subscription %s failed", subscription_pk)
        finally:
            self._inflight.discard(subscription_pk)
            self._wake.set()

    async def send(self, delivery: Delivery) -> str | None:
        """Deliver one notification; None on success, else why it failed."""
        now = utcnow()
        headers, body = message(delivery, now)
        endpoint = delivery.subscription["notification"]["endpoint"]
        try:
            problem = await self.endpoint_problem(endpoint["uri"])
            if problem is not None:
                return f"the endpoint is not permitted: {problem}"
            if urlsplit(endpoint["uri"]).scheme.lower() in ("mqtt", "mqtts"):
                async with asyncio.timeout(self.settings.subscription_timeout_seconds):
                    await self._publish(endpoint, headers, body)
            else:
                await self._post(endpoint["uri"], headers, body)
        except DeliveryError as exc:
            return str(exc)
        except (httpx.HTTPError, aiomqtt.MqttError, OSError, TimeoutError) as exc:
            return f"{type(exc).__name__}: {exc}"[:1000]
        except Exception as exc:  # a broken endpoint must not stall the queue
            log.exception("unexpected error delivering notification %s", delivery.pk)
            return f"{type(exc).__name__}: {exc}"[:1000]
        return None

    async def endpoint_problem(self, uri: str) -> str | None:
        """Why the policy refuses the endpoint now (its name may resolve elsewhere than at creation)."""
        host, port = _target(uri)
        if name_allowed(self.settings, host):
            return None
        addresses = _literal(host)
        if addresses is None:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
            except (OSError, UnicodeError):
                infos = []
            addresses = _addresses(infos)
        return address_problem(self.settings, host, addresses)

    async def _post(self, uri: str, headers: dict[str, str], body: bytes) -> None:
        assert self._client is not None, "the engine is not started"
        response = await self._client.post(uri, content=body, headers=headers)
        if not response.is_success:
            raise DeliveryError(f"HTTP {response.status_code} from {uri}")

    async def _publish(self, endpoint: Mapping[str, Any], headers: dict[str, str], body: bytes) -> None:
        """Publish on the endpoint's topic: {"metadata": headers, "body": notification} (clause 7.2)."""
        parts = urlsplit(endpoint["uri"])
        secure = parts.scheme.lower() == "mqtts"
        info = _pairs(endpoint.get("notifierInfo"))
        payload = orjson.dumps({"metadata": headers, "body": orjson.loads(body)})
        async with aiomqtt.Client(
            hostname=parts.hostname or "",
            port=parts.port or (8883 if secure else 1883),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            protocol=MQTT_VERSIONS.get(info.get("MQTT-Version", "mqtt3.1.1")),
            tls_context=ssl.create_default_context() if secure else None,
            timeout=self.settings.subscription_timeout_seconds,
        ) as client:
            await client.publish(parts.path.lstrip("/"), payload=payload, qos=int(info.get("MQTT-QoS", "1")))

    def record(self, delivery: Delivery, error: str | None) -> datetime | None:
        """Store the outcome of an attempt; after a failure, when the notifications behind it may go."""
        now = utcnow()
        attempts = delivery.attempts + 1
        with self.ctx.uow(SYSTEM, "context.subscription.deliver") as uow:
            if error is None:
                values: dict[str, Any] = {"state": "sent", "sent_at": now, "last_error": None}
                counters: dict[str, Any] = {
                    "times_sent": SubscriptionRow.times_sent + 1,
                    "last_success": now,
                }
            else:
                retry = now + timedelta(
                    seconds=min(
                        self.settings.subscription_retry_base_seconds * 2 ** (attempts - 1),
                        self.settings.subscription_retry_max_seconds,
                    )
                )
                give_up = attempts >= self.settings.subscription_max_attempts or (
                    delivery.expires_at is not None and retry >= delivery.expires_at
                )
                values = {
                    "state": "failed" if give_up else "pending",
                    "next_attempt_at": retry,
                    "last_error": error,
                }
                counters = {"times_failed": SubscriptionRow.times_failed + 1, "last_failure": now}
                log.info("notification %s: attempt %d failed: %s", delivery.pk, attempts, error)
            uow.session.execute(
                update(NotificationRow)
                .where(NotificationRow.pk == delivery.pk)
                .values(attempts=attempts, **values)
            )
            uow.session.execute(
                update(SubscriptionRow)
                .where(SubscriptionRow.pk == delivery.subscription_pk)
                .values(**counters)
            )
        if error is None:
            return None
        return now if values["state"] == "failed" else values["next_attempt_at"]

    def release(self, pks: Sequence[int], at: datetime) -> None:
        """Give back leased notifications, due at `at`: behind the one that failed, so order is kept."""
        with self.ctx.uow(SYSTEM, "context.subscription.deliver") as uow:
            uow.session.execute(
                update(NotificationRow)
                .where(NotificationRow.pk.in_(pks), NotificationRow.state == "pending")
                .values(next_attempt_at=at)
            )
