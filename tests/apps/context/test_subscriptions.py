"""NGSI-LD subscriptions over the real app: CRUD, validation, matching and delivery to real receivers."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

import aiomqtt
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import func, select

from citybrain.apps.context.events import AttributeChange, AttributesChanged, EntityDeleted
from citybrain.apps.context.models import Notification, Subscription
from citybrain.apps.context.settings import ContextSettings
from citybrain.apps.context.subscriptions import SubscriptionEngine, parse_scope_query
from citybrain.core.context import AppContext
from citybrain.core.ledger import LedgerRecord
from tests.apps.context.conftest import token_for
from tests.apps.context.test_ngsild import BASE, CORE, problem, station
from tests.conftest import Seeded, service_missing

ENTITY = "urn:ngsi-ld:AirQualityObserved:mianyang-001"
DEFAULT = "https://uri.etsi.org/ngsi-ld/default-context/"
PM25 = {"type": "Property", "value": 35.0, "createdAt": "2026-11-24T08:00:00.000000Z"}
MQTT_HOST, MQTT_PORT = "127.0.0.1", 1883
SCOPES = [
    "context.entity.read",
    "context.entity.write",
    "context.subscription.read",
    "context.subscription.write",
]


@pytest.fixture(autouse=True)
def fast_delivery(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny poll and backoff delays and local receivers allowed, read when the app is built."""
    for name, value in {
        "POLL_SECONDS": "0.1",
        "RETRY_BASE_SECONDS": "0.1",
        "RETRY_MAX_SECONDS": "0.4",
        "TIMEOUT_SECONDS": "2",
        "INDEX_REFRESH_SECONDS": "0.1",
        "ENDPOINT_ALLOWLIST": "127.0.0.1",
    }.items():
        monkeypatch.setenv(f"CITYBRAIN_CONTEXT_SUBSCRIPTION_{name}", value)


@pytest.fixture
def api(client: TestClient, ctx: AppContext, seeded: Seeded) -> TestClient:
    """A client with a token for entities and subscriptions."""
    client.headers["Authorization"] = f"Bearer {token_for(ctx, seeded, SCOPES)}"
    return client


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Receiver:
    """A tiny threaded HTTP server that records the notifications POSTed to it."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.received: list[tuple[dict[str, str], Any]] = []
        self.cond = threading.Condition()
        self.server: ThreadingHTTPServer | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/notify"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver.cond:
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    receiver.received.append((headers, json.loads(raw)))
                    receiver.cond.notify_all()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def wait(self, count: int = 1, timeout: float = 3.0) -> list[tuple[dict[str, str], Any]]:
        """The first `count` notifications, failing if they do not all arrive in time."""
        with self.cond:
            ok = self.cond.wait_for(lambda: len(self.received) >= count, timeout=timeout)
            assert ok, f"expected {count} notification(s), got {len(self.received)}"
            return list(self.received[:count])

    def bodies(self) -> list[Any]:
        with self.cond:
            return [body for _, body in self.received]

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver().start()
    yield started
    started.stop()


def subscription(uri: str, **members: Any) -> dict[str, Any]:
    """A subscription to the air-quality stations, notified at `uri`."""
    body: dict[str, Any] = {
        "type": "Subscription",
        "entities": [{"type": "AirQualityObserved"}],
        "notification": {"endpoint": {"uri": uri, "accept": "application/json"}},
    }
    body.update(members)
    return body


def subscribe(api: TestClient, body: dict[str, Any], **kwargs: Any) -> str:
    created = api.post(f"{BASE}/subscriptions", json=body, **kwargs)
    assert created.status_code == 201, created.text
    location: str = created.headers["location"]
    return location.rsplit("/", 1)[1]


def update_pm25(api: TestClient, value: float, entity_id: str = ENTITY, **kwargs: Any) -> None:
    response = api.patch(
        f"{BASE}/entities/{entity_id}/attrs", json={"pm25": {"type": "Property", "value": value}}, **kwargs
    )
    assert response.status_code == 204, response.text


def sub_state(api: TestClient, subscription_id: str) -> dict[str, Any]:
    got = api.get(f"{BASE}/subscriptions/{subscription_id}")
    assert got.status_code == 200, got.text
    body: dict[str, Any] = got.json()
    return body


def eventually(check: Any, timeout: float = 3.0) -> Any:
    """Poll `check` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            assert value, "condition not met in time"
            return value
        time.sleep(0.05)


def count(ctx: AppContext, model: Any) -> int:
    with ctx.read() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


# --- CRUD ---------------------------------------------------------------------------------------


def test_create_retrieve_list_update_delete(api: TestClient, ctx: AppContext) -> None:
    body = subscription(
        "http://127.0.0.1:9/notify",
        id="urn:ngsi-ld:Subscription:aq",
        subscriptionName="空气质量",
        watchedAttributes=["pm25"],
        q="pm25>50",
        geoQ={"geometry": "Point", "coordinates": [104.679, 31.467], "georel": "near;maxDistance==5000"},
        notification={
            "attributes": ["pm25", "name"],
            "format": "keyValues",
            "endpoint": {
                "uri": "http://127.0.0.1:9/notify",
                "accept": "application/ld+json",
                "receiverInfo": [{"key": "X-Token", "value": "abc"}],
            },
        },
        throttling=5,
        expiresAt="2099-01-01T00:00:00Z",
    )
    created = api.post(f"{BASE}/subscriptions", json=body)
    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"{BASE}/subscriptions/urn:ngsi-ld:Subscription:aq"
    problem(api.post(f"{BASE}/subscriptions", json=body), 409, "AlreadyExists")

    got = api.get(f"{BASE}/subscriptions/urn:ngsi-ld:Subscription:aq", params={"options": "sysAttrs"})
    assert got.status_code == 200
    assert got.headers["link"].startswith(f"<{CORE}>")
    sub = got.json()
    assert sub["id"] == "urn:ngsi-ld:Subscription:aq" and sub["type"] == "Subscription"
    assert sub["entities"] == [{"type": "AirQualityObserved"}]
    assert sub["watchedAttributes"] == ["pm25"]
    assert sub["notificationTrigger"] == ["attributeCreated", "attributeUpdated"]
    assert sub["q"] == "pm25>50" and sub["geoQ"]["geoproperty"] == "location"
    assert sub["status"] == "active" and sub["isActive"] is True
    assert sub["expiresAt"] == "2099-01-01T00:00:00.000000Z" and sub["throttling"] == 5
    notification = sub["notification"]
    assert notification["attributes"] == ["pm25", "name"] and notification["format"] == "keyValues"
    assert notification["endpoint"]["receiverInfo"] == [{"key": "X-Token", "value": "abc"}]
    assert notification["status"] == "ok" and notification["timesSent"] == 0
    assert "createdAt" in sub and "modifiedAt" in sub

    generated = subscribe(api, subscription("http://127.0.0.1:9/other"))
    assert generated.startswith("urn:ngsi-ld:Subscription:")
    listed = api.get(f"{BASE}/subscriptions", params={"count": "true", "limit": "1"})
    assert listed.status_code == 200
    assert listed.headers["ngsild-results-count"] == "2"
    assert [s["id"] for s in listed.json()] == ["urn:ngsi-ld:Subscription:aq"]
    second = api.get(f"{BASE}/subscriptions", params={"limit": "1", "offset": "1"}).json()
    assert [s["id"] for s in second] == [generated]
    problem(api.get(f"{BASE}/subscriptions", params={"bogus": "1"}), 400, "InvalidRequest")

    patched = api.patch(
        f"{BASE}/subscriptions/urn:ngsi-ld:Subscription:aq",
        json={"isActive": False, "throttling": None, "notification": {"format": "concise"}},
    )
    assert patched.status_code == 204, patched.text
    sub = sub_state(api, "urn:ngsi-ld:Subscription:aq")
    assert sub["status"] == "paused" and sub["isActive"] is False
    assert "throttling" not in sub
    assert sub["notification"]["format"] == "concise"
    assert sub["notification"]["endpoint"]["accept"] == "application/ld+json"

    assert api.delete(f"{BASE}/subscriptions/urn:ngsi-ld:Subscription:aq").status_code == 204
    problem(api.get(f"{BASE}/subscriptions/urn:ngsi-ld:Subscription:aq"), 404, "ResourceNotFound")
    problem(api.delete(f"{BASE}/subscriptions/urn:ngsi-ld:Subscription:aq"), 404, "ResourceNotFound")
    problem(
        api.patch(f"{BASE}/subscriptions/urn:ngsi-ld:nope", json={"isActive": True}), 404, "ResourceNotFound"
    )
    problem(api.get(f"{BASE}/subscriptions/not-a-uri"), 400, "BadRequestData")
    problem(api.delete(f"{BASE}/subscriptions/not-a-uri"), 400, "BadRequestData")
    with ctx.read() as session:
        actions = set(session.scalars(select(LedgerRecord.action)))
    assert {
        "context.subscription.create",
        "context.subscription.update",
        "context.subscription.delete",
    } <= actions


def test_subscriptions_are_per_tenant(api: TestClient) -> None:
    subscribe(api, subscription("http://127.0.0.1:9/n"), headers={"NGSILD-Tenant": "mianyang"})
    assert api.get(f"{BASE}/subscriptions").json() == []
    assert len(api.get(f"{BASE}/subscriptions", headers={"NGSILD-Tenant": "mianyang"}).json()) == 1


def test_permissions(client: TestClient, ctx: AppContext, seeded: Seeded) -> None:
    reader = token_for(ctx, seeded, ["context.subscription.read"])
    client.headers["Authorization"] = f"Bearer {reader}"
    assert client.get(f"{BASE}/subscriptions").status_code == 200
    assert client.post(f"{BASE}/subscriptions", json=subscription("http://127.0.0.1:9/n")).status_code == 403
    entities_only = token_for(ctx, seeded, ["context.entity.read", "context.entity.write"])
    client.headers["Authorization"] = f"Bearer {entities_only}"
    assert client.get(f"{BASE}/subscriptions").status_code == 403
    del client.headers["Authorization"]
    assert client.get(f"{BASE}/subscriptions").status_code == 401
    assert count(ctx, Subscription) == 0


URI = "http://127.0.0.1:9/notify"
BAD = {
    "type": {"type": "Subscriptions"},
    "notification missing": {"notification": None},
    "endpoint missing": {"notification": {"format": "normalized"}},
    "uri scheme": {"notification": {"endpoint": {"uri": "ftp://127.0.0.1/x"}}},
    "uri relative": {"notification": {"endpoint": {"uri": "/notify"}}},
    "uri without host": {"notification": {"endpoint": {"uri": "http:///notify"}}},
    "mqtt without topic": {"notification": {"endpoint": {"uri": "mqtt://127.0.0.1:1883"}}},
    "accept": {"notification": {"endpoint": {"uri": URI, "accept": "text/plain"}}},
    "format": {"notification": {"endpoint": {"uri": URI}, "format": "simplified-ish"}},
    "attributes": {"notification": {"endpoint": {"uri": URI}, "attributes": []}},
    "receiverInfo": {"notification": {"endpoint": {"uri": URI, "receiverInfo": [{"key": "X"}]}}},
    "mqtt qos": {
        "notification": {
            "endpoint": {"uri": "mqtt://127.0.0.1/t", "notifierInfo": [{"key": "MQTT-QoS", "value": "3"}]}
        }
    },
    "id": {"id": "not a uri"},
    "entities not array": {"entities": {"type": "AirQualityObserved"}},
    "entities empty": {"entities": []},
    "selector without type": {"entities": [{"id": "urn:ngsi-ld:A:1"}]},
    "selector id": {"entities": [{"type": "A", "id": "nope"}]},
    "selector idPattern": {"entities": [{"type": "A", "idPattern": "(["}]},
    "selector member": {"entities": [{"type": "A", "idpattern": ".*"}]},
    "neither entities nor watchedAttributes": {"entities": None},
    "watchedAttributes": {"watchedAttributes": []},
    "watchedAttributes name": {"watchedAttributes": ["bad name"]},
    "q": {"q": "pm25>>1"},
    "geoQ georel": {"geoQ": {"geometry": "Point", "coordinates": [104, 31], "georel": "close"}},
    "geoQ missing": {"geoQ": {"geometry": "Point", "georel": "near;maxDistance==10"}},
    "notificationTrigger": {"notificationTrigger": ["entityChanged"]},
    "notificationTrigger empty": {"notificationTrigger": []},
    "throttling": {"throttling": -1},
    "throttling text": {"throttling": "5"},
    "timeInterval": {"timeInterval": 0},
    "timeInterval with watchedAttributes": {"timeInterval": 10, "watchedAttributes": ["pm25"]},
    "timeInterval with throttling": {"timeInterval": 10, "throttling": 1},
    "expiresAt past": {"expiresAt": "2001-01-01T00:00:00Z"},
    "expiresAt text": {"expiresAt": "tomorrow"},
    "isActive": {"isActive": "yes"},
    "unknown member": {"notifyMe": True},
    "showChanges with keyValues": {
        "notification": {"endpoint": {"uri": URI}, "format": "keyValues", "showChanges": True}
    },
    "showChanges text": {"notification": {"endpoint": {"uri": URI}, "showChanges": "yes"}},
    "temporalQ": {"temporalQ": {"timerel": "after", "timeAt": "2026-01-01T00:00:00Z"}},
    "scopeQ without slash": {"scopeQ": "Mianyang"},
    "scopeQ hash inside": {"scopeQ": "/Mianyang/#/Fucheng"},
    "scopeQ parenthesis": {"scopeQ": "(/Mianyang,/Beijing"},
    "scopeQ operator": {"scopeQ": "/Mianyang;;/Beijing"},
    "scopeQ text": {"scopeQ": 5},
    "csf": {"csf": "endpoint>>1"},
}


@pytest.mark.parametrize("change", BAD.values(), ids=BAD.keys())
def test_invalid_subscriptions_are_refused(api: TestClient, ctx: AppContext, change: dict[str, Any]) -> None:
    body = subscription(URI)
    for key, value in change.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    problem(api.post(f"{BASE}/subscriptions", json=body), 400, "BadRequestData")
    assert count(ctx, Subscription) == 0


def test_bad_requests_and_bad_updates_change_nothing(api: TestClient, ctx: AppContext) -> None:
    bad_json = api.post(f"{BASE}/subscriptions", content=b"{", headers={"Content-Type": "application/json"})
    problem(bad_json, 400, "InvalidRequest")
    problem(api.post(f"{BASE}/subscriptions", json=[1]), 400, "BadRequestData")
    sub_id = subscribe(api, subscription(URI, watchedAttributes=["pm25"]))
    before = sub_state(api, sub_id)
    for fragment in (
        {"timeInterval": 5},
        {"notification": None},
        {"entities": None, "watchedAttributes": None},
        {"expiresAt": "2000-01-01T00:00:00Z"},
        {"id": "urn:ngsi-ld:Subscription:other"},
        {"notification": {"endpoint": {"uri": "gopher://x/y"}}},
        {"notification": {"format": "keyValues", "showChanges": True}},
        {"notification": {"endpoint": {"uri": "http://10.20.30.40/notify"}}},
        {"temporalQ": {"timerel": "before", "timeAt": "2026-01-01T00:00:00Z"}},
        {},
    ):
        problem(api.patch(f"{BASE}/subscriptions/{sub_id}", json=fragment), 400, "BadRequestData")
    after = sub_state(api, sub_id)
    assert after == before


# --- notifications over HTTP --------------------------------------------------------------------


def test_update_notifies_a_real_receiver(api: TestClient, ctx: AppContext, receiver: Receiver) -> None:
    assert api.post(f"{BASE}/entities", json=station()).status_code == 201
    sub_id = subscribe(
        api,
        subscription(
            receiver.uri,
            watchedAttributes=["pm25"],
            notificationTrigger=["attributeUpdated"],
            q="pm25>50",
            notification={
                "attributes": ["pm25"],
                "endpoint": {"uri": receiver.uri, "receiverInfo": [{"key": "X-City", "value": "mianyang"}]},
            },
        ),
    )
    started = time.monotonic()
    update_pm25(api, 80.0)
    [(headers, body)] = receiver.wait(1, timeout=2.0)
    assert time.monotonic() - started < 2.0
    assert headers["content-type"] == "application/json"
    assert headers["link"].startswith(f"<{CORE}>") and "json-ld#context" in headers["link"]
    assert headers["x-city"] == "mianyang"
    assert body["type"] == "Notification" and body["subscriptionId"] == sub_id
    assert body["id"].startswith("urn:ngsi-ld:Notification:")
    assert body["notifiedAt"].endswith("Z") and body["triggerReason"] == "attributeUpdated"
    [entity] = body["data"]
    assert entity["id"] == ENTITY and entity["type"] == "AirQualityObserved"
    assert entity["pm25"] == {"type": "Property", "value": 80.0}
    assert "name" not in entity and "@context" not in body
    state = eventually(lambda: (s := sub_state(api, sub_id))["notification"]["timesSent"] == 1 and s)
    assert state["notification"]["status"] == "ok"
    assert "lastSuccess" in state["notification"] and "lastNotification" in state["notification"]
    with ctx.read() as session:
        assert session.scalar(select(Notification.state)) == "sent"


def test_key_values_json_ld_and_deleted_attributes(api: TestClient, receiver: Receiver) -> None:
    assert api.post(f"{BASE}/entities", json=station()).status_code == 201
    subscribe(
        api,
        subscription(
            receiver.uri,
            notificationTrigger=["attributeUpdated", "attributeDeleted"],
            notification={
                "format": "keyValues",
                "endpoint": {"uri": receiver.uri, "accept": "application/ld+json"},
            },
        ),
    )
    update_pm25(api, 12.5)
    [(headers, body)] = receiver.wait(1)
    assert headers["content-type"] == "application/ld+json"
    assert body["@context"] == CORE
    assert body["data"][0]["pm25"] == 12.5 and body["data"][0]["name"] == "站点1"
    assert api.delete(f"{BASE}/entities/{ENTITY}/attrs/name").status_code == 204
    _, (_, deleted) = receiver.wait(2)
    assert deleted["triggerReason"] == "attributeDeleted"
    assert deleted["data"][0]["name"] == "urn:ngsi-ld:null"


def test_non_matching_changes_notify_nothing(api: TestClient, receiver: Receiver) -> None:
    assert api.post(f"{BASE}/entities", json=station()).status_code == 201
    other = {**station(2), "id": "urn:ngsi-ld:WeatherObserved:mianyang-002", "type": "WeatherObserved"}
    assert api.post(f"{BASE}/entities", json=other).status_code == 201
    updated = ["attributeUpdated"]
    subscribe(api, subscription(receiver.uri, notificationTrigger=updated, q="pm25>100"))
    subscribe(api, subscription(receiver.uri, notificationTrigger=updated, watchedAttributes=["name"]))
    subscribe(api, subscription(receiver.uri, notificationTrigger=updated, entities=[{"type": "Parking"}]))
    subscribe(
        api,
        subscription(
            receiver.uri, notificationTrigger=updated, entities=[{"type": "A", "idPattern": "^urn:x"}]
        ),
    )
    subscribe(
        api,
        subscription(
            receiver.uri,
            notificationTrigger=updated,
            geoQ={"geometry": "Point", "coordinates": [116.4, 39.9], "georel": "near;maxDistance==1000"},
        ),
    )
    subscribe(
        api, subscription(receiver.uri, notificationTrigger=updated), headers={"NGSILD-Tenant": "other"}
    )
    control = Receiver().start()
    try:
        subscribe(
            api,
            subscription(
                control.uri,
                notificationTrigger=updated,
                entities=[{"type": "WeatherObserved", "id": "urn:ngsi-ld:WeatherObserved:mianyang-002"}],
            ),
        )
        update_pm25(api, 60.0)  # q, watchedAttributes, type, idPattern, geoQ and tenant all say no
        update_pm25(api, 70.0, entity_id="urn:ngsi-ld:WeatherObserved:mianyang-002")
        [(_, body)] = control.wait(1)
        assert body["data"][0]["id"] == "urn:ngsi-ld:WeatherObserved:mianyang-002"
    finally:
        control.stop()
    time.sleep(0.4)
    assert receiver.bodies() == []


def test_throttling_suppresses_a_second_notification(api: TestClient, receiver: Receiver) -> None:
    assert api.post(f"{BASE}/entities", json=station()).status_code == 201
    sub_id = subscribe(
        api, subscription(receiver.uri, notificationTrigger=["attributeUpdated"], throttling=60)
    )
    update_pm25(api, 40.0)
    receiver.wait(1)
    update_pm25(api, 41.0)
    update_pm25(api, 42.0)
    time.sleep(0.6)
    assert len(receiver.bodies()) == 1
    assert sub_state(api, sub_id)["notification"]["timesSent"] == 1


def test_entity_created_and_deleted_triggers(api: TestClient, receiver: Receiver) -> None:
    subscribe(
        api,
        subscription(
            receiver.uri, notificationTrigger=["entityCreated", "attributeCreated", "entityDeleted"]
        ),
    )
    assert api.post(f"{BASE}/entities", json=station()).status_code == 201
    [(_, created)] = receiver.wait(1)
    assert created["triggerReason"] == "entityCreated"
    assert created["data"][0]["id"] == ENTITY and created["data"][0]["pm25"]["value"] == 35.0
    assert api.delete(f"{BASE}/entities/{ENTITY}").status_code == 204
    _, (_, deleted) = receiver.wait(2)
    assert deleted["triggerReason"] == "entityDeleted"
    assert deleted["data"][0]["id"] == ENTITY and deleted["data"][0]["type"] == "AirQualityObserved"
    assert deleted["data"][0]["deletedAt"].endswith("Z")
    time.sleep(0.3)
    assert len(receiver.bodies()) == 2  # the attributes created with the entity add no second one


def test_default_triggers_notify_creation_and_updates(api: TestClient, receiver: Receiver) -> None:
    subscribe(api, subscription(receiver.uri))
    assert api.post(f"{BASE}/entities", json=station()).status_code == 201
    [(_, first)] = receiver.wait(1)
    assert first["triggerReason"] == "attributeCreated"
    update_pm25(api, 99.0)
    _, (_, second) = receiver.wait(2)
    assert second["triggerReason"] == "attributeUpdated" and second["data"][0]["pm25"]["value"] == 99.0


def test_receiver_down_then_up_still_gets_the_notification(api: TestClient, ctx: AppContext) -> None:
    assert api.post(f"{BASE}/entities", json=station()).status_code == 201
    late = Receiver()  # its port is free: nothing listens yet
    sub_id = subscribe(api, subscription(late.uri, notificationTrigger=["attributeUpdated"]))
    update_pm25(api, 77.0)
    failed = eventually(lambda: (s := sub_state(api, sub_id))["notification"]["timesFailed"] >= 1 and s)
    assert failed["notification"]["status"] == "failed" and "lastFailure" in failed["notification"]
    with ctx.read() as session:
        row = session.scalars(select(Notification)).one()
        assert row.state == "pending" and row.attempts >= 1 and row.last_error
    late.start()
    try:
        [(_, body)] = late.wait(1, timeout=3.0)
        assert body["data"][0]["pm25"]["value"] == 77.0
        state = eventually(lambda: (s := sub_state(api, sub_id))["notification"]["status"] == "ok" and s)
        assert state["notification"]["timesSent"] == 1 and "lastSuccess" in state["notification"]
    finally:
        late.stop()


def test_paused_and_expired_subscriptions_notify_nothing(api: TestClient, receiver: Receiver) -> None:
    assert api.post(f"{BASE}/entities", json=station()).status_code == 201
    updated = ["attributeUpdated"]
    paused = subscribe(api, subscription(receiver.uri, notificationTrigger=updated, isActive=False))
    soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat().replace("+00:00", "Z")
    expiring = subscribe(api, subscription(receiver.uri, notificationTrigger=updated, expiresAt=soon))
    assert sub_state(api, paused)["status"] == "paused"
    eventually(lambda: sub_state(api, expiring)["status"] == "expired")
    update_pm25(api, 50.0)
    time.sleep(0.6)
    assert receiver.bodies() == []
    assert api.patch(f"{BASE}/subscriptions/{paused}", json={"isActive": True}).status_code == 204
    update_pm25(api, 51.0)
    [(_, body)] = receiver.wait(1)
    assert body["subscriptionId"] == paused and body["data"][0]["pm25"]["value"] == 51.0
    time.sleep(0.3)
    assert len(receiver.bodies()) == 1


def test_periodic_subscription_sends_the_current_state(api: TestClient, receiver: Receiver) -> None:
    assert api.post(f"{BASE}/entities", json=station()).status_code == 201
    subscribe(api, subscription(receiver.uri, timeInterval=0.5, q="pm25>10"))
    first, second = receiver.wait(2, timeout=3.0)
    assert first[1]["data"][0]["id"] == ENTITY and "triggerReason" not in first[1]
    assert second[1]["id"] != first[1]["id"]


def test_a_redelivered_event_queues_nothing_twice(api: TestClient, ctx: AppContext) -> None:
    assert api.post(f"{BASE}/entities", json=station()).status_code == 201
    subscribe(api, subscription("http://127.0.0.1:9/n", isActive=True))
    engine = SubscriptionEngine(ctx, ctx.app_setting("context", ContextSettings))
    event = AttributesChanged(
        tenant="",
        entity_id=ENTITY,
        types=["https://uri.etsi.org/ngsi-ld/default-context/AirQualityObserved"],
        changes=[AttributeChange(attr=f"{DEFAULT}pm25", old=PM25, new={**PM25, "value": 36.0})],
    )
    assert engine.match(event) == 1
    assert engine.match(event) == 0
    with ctx.read() as session:
        keys = session.scalars(
            select(Notification.event_key).where(Notification.event_key == str(event.event_id))
        )
        assert len(list(keys)) == 1


# --- notifications over MQTT --------------------------------------------------------------------


def test_mqtt_notification(api: TestClient) -> None:
    try:
        socket.create_connection((MQTT_HOST, MQTT_PORT), timeout=1).close()
    except OSError as exc:
        service_missing("Mosquitto", exc)
    topic = f"citybrain/test/{uuid.uuid4().hex}"
    messages: list[Any] = []
    ready, done = threading.Event(), threading.Event()

    async def listen() -> None:
        async with aiomqtt.Client(MQTT_HOST, MQTT_PORT) as client:
            await client.subscribe(topic, qos=1)
            ready.set()
            async with asyncio.timeout(5):
                async for msg in client.messages:
                    messages.append(json.loads(bytes(msg.payload)))
                    break
        done.set()

    thread = threading.Thread(target=asyncio.run, args=(listen(),), daemon=True)
    thread.start()
    assert ready.wait(5), "could not subscribe to the MQTT broker"
    assert api.post(f"{BASE}/entities", json=station()).status_code == 201
    sub_id = subscribe(
        api,
        subscription(
            f"mqtt://{MQTT_HOST}:{MQTT_PORT}/{topic}",
            notificationTrigger=["attributeUpdated"],
            notification={
                "endpoint": {
                    "uri": f"mqtt://{MQTT_HOST}:{MQTT_PORT}/{topic}",
                    "notifierInfo": [{"key": "MQTT-QoS", "value": "1"}],
                }
            },
        ),
    )
    update_pm25(api, 66.0)
    assert done.wait(5), "no MQTT notification arrived"
    thread.join(1)
    [message] = messages
    assert message["metadata"]["Content-Type"] == "application/json"
    assert message["body"]["type"] == "Notification" and message["body"]["subscriptionId"] == sub_id
    assert message["body"]["data"][0]["pm25"]["value"] == 66.0
    eventually(lambda: sub_state(api, sub_id)["notification"]["timesSent"] == 1)


# --- q, geoQ and scopeQ on deletions --------------------------------------------------------------


def scoped_station(number: int, pm25: float, lon: float, lat: float, scope: str) -> dict[str, Any]:
    return {**station(number, pm25=pm25, lon=lon, lat=lat), "scope": scope}


def test_entity_deleted_honours_q_geo_q_and_scope_q(api: TestClient, receiver: Receiver) -> None:
    near = scoped_station(1, 35.0, 104.679, 31.467, "/Mianyang/Fucheng")
    far = scoped_station(2, 80.0, 116.4, 39.9, "/Beijing")
    for entity in (near, far):
        assert api.post(f"{BASE}/entities", json=entity).status_code == 201
    deleted = ["entityDeleted"]
    by_q = subscribe(api, subscription(receiver.uri, notificationTrigger=deleted, q="pm25>50"))
    by_geo = subscribe(
        api,
        subscription(
            receiver.uri,
            notificationTrigger=deleted,
            geoQ={"geometry": "Point", "coordinates": [104.68, 31.47], "georel": "near;maxDistance==5000"},
        ),
    )
    by_scope = subscribe(api, subscription(receiver.uri, notificationTrigger=deleted, scopeQ="/Mianyang/#"))
    for entity in (near, far):
        assert api.delete(f"{BASE}/entities/{entity['id']}").status_code == 204
    receiver.wait(3)
    time.sleep(0.4)
    got = {(body["subscriptionId"], body["data"][0]["id"]) for body in receiver.bodies()}
    assert got == {(by_q, far["id"]), (by_geo, near["id"]), (by_scope, near["id"])}
    assert len(receiver.bodies()) == 3


def test_a_deletion_without_the_deleted_state_does_not_pass_a_filter(
    api: TestClient, ctx: AppContext
) -> None:
    filtered = subscribe(api, subscription(URI, notificationTrigger=["entityDeleted"], q="pm25>50"))
    plain = subscribe(api, subscription(URI, notificationTrigger=["entityDeleted"]))
    engine = SubscriptionEngine(ctx, ctx.app_setting("context", ContextSettings))
    types = [f"{DEFAULT}AirQualityObserved"]
    assert engine.match(EntityDeleted(tenant="", entity_id=ENTITY, types=types)) == 1
    with ctx.read() as session:
        assert set(session.scalars(select(Notification.subscription_id))) == {plain}
    state = {"id": ENTITY, "type": types, "attrs": {f"{DEFAULT}pm25": [{**PM25, "value": 60.0}]}}
    assert engine.match(EntityDeleted(tenant="", entity_id=ENTITY, types=types, entity=state)) == 2
    with ctx.read() as session:
        assert filtered in set(session.scalars(select(Notification.subscription_id)))


# --- showChanges ---------------------------------------------------------------------------------


def test_show_changes_adds_previous_values(api: TestClient, receiver: Receiver) -> None:
    assert api.post(f"{BASE}/entities", json=station()).status_code == 201
    sub_id = subscribe(
        api,
        subscription(
            receiver.uri,
            notificationTrigger=["attributeCreated", "attributeUpdated", "attributeDeleted"],
            notification={"showChanges": True, "endpoint": {"uri": receiver.uri}},
        ),
    )
    assert sub_state(api, sub_id)["notification"]["showChanges"] is True
    update_pm25(api, 80.0)
    [(_, body)] = receiver.wait(1)
    pm25 = body["data"][0]["pm25"]
    assert pm25["value"] == 80.0 and pm25["previousValue"] == 35.0
    assert "previousValue" not in body["data"][0]["name"]  # unchanged attributes carry none
    device = {"refDevice": {"type": "Relationship", "object": "urn:ngsi-ld:Device:aq-999"}}
    assert api.patch(f"{BASE}/entities/{ENTITY}/attrs", json=device).status_code == 204
    _, (_, body) = receiver.wait(2)
    assert body["data"][0]["refDevice"] == {
        "type": "Relationship",
        "object": "urn:ngsi-ld:Device:aq-999",
        "previousObject": "urn:ngsi-ld:Device:aq-001",
    }
    assert api.delete(f"{BASE}/entities/{ENTITY}/attrs/name").status_code == 204
    _, _, (_, body) = receiver.wait(3)
    assert body["triggerReason"] == "attributeDeleted"
    assert body["data"][0]["name"] == {
        "type": "Property",
        "value": "urn:ngsi-ld:null",
        "previousValue": "站点1",
    }
    created = {"noise": {"type": "Property", "value": 51}}
    assert api.post(f"{BASE}/entities/{ENTITY}/attrs", json=created).status_code == 204
    *_, (_, body) = receiver.wait(4)
    assert body["triggerReason"] == "attributeCreated"
    assert body["data"][0]["noise"] == {"type": "Property", "value": 51}  # nothing was there before
    problem(
        api.patch(f"{BASE}/subscriptions/{sub_id}", json={"notification": {"format": "keyValues"}}),
        400,
        "BadRequestData",
    )


def test_show_changes_pairs_each_value_with_its_own_previous_one(api: TestClient, receiver: Receiver) -> None:
    assert api.post(f"{BASE}/entities", json=station()).status_code == 201
    subscribe(
        api,
        subscription(
            receiver.uri,
            notificationTrigger=["attributeUpdated"],
            watchedAttributes=["pm25"],
            notification={
                "format": "concise",
                "attributes": ["pm25"],
                "showChanges": True,
                "endpoint": {"uri": receiver.uri},
            },
        ),
    )
    for value in (40.0, 41.0, 42.0):
        update_pm25(api, value)
    receiver.wait(3)
    pairs = [
        (b["data"][0]["pm25"]["value"], b["data"][0]["pm25"]["previousValue"]) for b in receiver.bodies()
    ]
    assert pairs == [(40.0, 35.0), (41.0, 40.0), (42.0, 41.0)]


def test_show_changes_names_the_previous_member_after_the_attribute_type(
    api: TestClient, receiver: Receiver
) -> None:
    before = {
        "id": ENTITY,
        "type": "AirQualityObserved",
        "label": {"type": "LanguageProperty", "languageMap": {"zh": "旧", "en": "old"}},
        "config": {"type": "JsonProperty", "json": {"a": 1}},
        "readings": {"type": "ListProperty", "valueList": [1, 2]},
        "devices": {"type": "ListRelationship", "objectList": [{"object": "urn:ngsi-ld:Device:1"}]},
        "category": {"type": "VocabProperty", "vocab": "urban"},
    }
    after = {
        "label": {"type": "LanguageProperty", "languageMap": {"zh": "新", "en": "new"}},
        "config": {"type": "JsonProperty", "json": {"a": 2}},
        "readings": {"type": "ListProperty", "valueList": [3]},
        "devices": {"type": "ListRelationship", "objectList": [{"object": "urn:ngsi-ld:Device:2"}]},
        "category": {"type": "VocabProperty", "vocab": "rural"},
    }
    assert api.post(f"{BASE}/entities", json=before).status_code == 201
    subscribe(
        api,
        subscription(
            receiver.uri,
            notificationTrigger=["attributeUpdated"],
            notification={"showChanges": True, "endpoint": {"uri": receiver.uri}},
        ),
    )
    assert api.patch(f"{BASE}/entities/{ENTITY}/attrs", json=after).status_code == 204
    [(_, body)] = receiver.wait(1)
    entity = body["data"][0]
    assert entity["label"]["previousLanguageMap"] == {"zh": "旧", "en": "old"}
    assert entity["config"]["previousJson"] == {"a": 1}
    assert entity["readings"]["previousValueList"] == [1, 2]
    assert entity["devices"]["previousObjectList"] == [{"object": "urn:ngsi-ld:Device:1"}]
    assert entity["category"]["previousVocab"] == "urban"
    assert entity["category"]["vocab"] == "rural"


# --- the endpoint allow-list ---------------------------------------------------------------------


@pytest.fixture
def policy(ctx: AppContext) -> ContextSettings:
    """The running app's context settings, which services and the deliverer both read."""
    settings: ContextSettings = ctx.app_setting("context", ContextSettings)
    return settings


REFUSED = {
    "loopback": "http://127.0.0.1:9/notify",
    "loopback by name": "http://localhost:9/notify",
    "loopback IPv6": "http://[::1]:9/notify",
    "private": "http://10.1.2.3/notify",
    "link-local": "http://169.254.169.254/latest/meta-data",
    "multicast": "mqtt://224.0.0.1/topic",
    "mapped loopback": "http://[::ffff:127.0.0.1]/notify",
    "does not resolve": "https://receiver.invalid/notify",
}


@pytest.mark.parametrize("uri", REFUSED.values(), ids=REFUSED.keys())
def test_endpoints_on_the_broker_network_are_refused_by_default(
    api: TestClient, ctx: AppContext, policy: ContextSettings, uri: str
) -> None:
    policy.subscription_endpoint_allowlist = ()
    response = api.post(f"{BASE}/subscriptions", json=subscription(uri))
    problem(response, 400, "BadRequestData")
    assert "not permitted" in response.json()["detail"]
    assert count(ctx, Subscription) == 0


def test_the_refusal_names_the_reason(api: TestClient, policy: ContextSettings) -> None:
    policy.subscription_endpoint_allowlist = ()
    detail = api.post(f"{BASE}/subscriptions", json=subscription("http://10.1.2.3/n")).json()["detail"]
    assert "private address (10.1.2.3)" in detail
    detail = api.post(f"{BASE}/subscriptions", json=subscription("http://[::1]/n")).json()["detail"]
    assert "loopback address (::1)" in detail
    detail = api.post(f"{BASE}/subscriptions", json=subscription("http://receiver.invalid/n")).json()[
        "detail"
    ]
    assert "does not resolve" in detail


def test_the_allow_list_admits_hosts_networks_and_patterns(
    api: TestClient, ctx: AppContext, policy: ContextSettings
) -> None:
    policy.subscription_endpoint_allowlist = ("10.0.0.0/8", "*.hooks.internal")
    subscribe(api, subscription("http://10.1.2.3/notify"))
    subscribe(api, subscription("https://city.hooks.internal/notify"))  # named: not even resolved
    subscribe(api, subscription("http://93.184.216.34/notify"))  # public addresses need no listing
    problem(
        api.post(f"{BASE}/subscriptions", json=subscription("http://192.168.1.5/n")), 400, "BadRequestData"
    )
    policy.subscription_endpoint_allow_public = False
    refused = api.post(f"{BASE}/subscriptions", json=subscription("http://93.184.216.34/n"))
    problem(refused, 400, "BadRequestData")
    assert "allow-list" in refused.json()["detail"]
    subscribe(api, subscription("http://10.9.9.9/notify"))
    assert count(ctx, Subscription) == 4


def test_an_update_to_a_refused_endpoint_changes_nothing(api: TestClient, policy: ContextSettings) -> None:
    policy.subscription_endpoint_allowlist = ()
    sub_id = subscribe(api, subscription("http://93.184.216.34/notify"))
    before = sub_state(api, sub_id)
    fragment = {"notification": {"endpoint": {"uri": "http://127.0.0.1:9/notify"}}}
    problem(api.patch(f"{BASE}/subscriptions/{sub_id}", json=fragment), 400, "BadRequestData")
    assert sub_state(api, sub_id) == before
    assert api.patch(f"{BASE}/subscriptions/{sub_id}", json={"isActive": False}).status_code == 204


def test_delivery_checks_the_endpoint_again(
    api: TestClient, ctx: AppContext, receiver: Receiver, policy: ContextSettings
) -> None:
    assert api.post(f"{BASE}/entities", json=station()).status_code == 201
    sub_id = subscribe(api, subscription(receiver.uri, notificationTrigger=["attributeUpdated"]))
    policy.subscription_endpoint_allowlist = ()  # as if the name now resolved into the broker's network
    update_pm25(api, 55.0)
    eventually(lambda: sub_state(api, sub_id)["notification"]["timesFailed"] >= 1)
    assert receiver.bodies() == []
    with ctx.read() as session:
        row = session.scalars(select(Notification)).one()
        assert row.state == "pending" and "not permitted" in (row.last_error or "")
    policy.subscription_endpoint_allowlist = ("127.0.0.1",)
    [(_, body)] = receiver.wait(1)
    assert body["data"][0]["pm25"]["value"] == 55.0


def test_allow_list_setting_parses_and_validates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "CITYBRAIN_CONTEXT_SUBSCRIPTION_ENDPOINT_ALLOWLIST", " 10.0.0.0/8, Hooks.Example.org ,::1"
    )
    assert ContextSettings().subscription_endpoint_allowlist == ("10.0.0.0/8", "hooks.example.org", "::1")
    with pytest.raises(ValidationError):
        ContextSettings(subscription_endpoint_allowlist=("not a host!",))


# --- settings ------------------------------------------------------------------------------------


def test_settings_are_declared_by_the_app_and_keep_their_names(ctx: AppContext) -> None:
    spec = ctx.app("context")
    assert spec is not None and spec.settings is ContextSettings
    settings = ctx.app_setting("context", ContextSettings)
    assert settings.subscription_poll_seconds == 0.1  # CITYBRAIN_CONTEXT_SUBSCRIPTION_POLL_SECONDS
    assert settings.subscription_retry_max_seconds == 0.4
    assert settings.subscription_retry_base_seconds == 0.1
    assert settings.subscription_max_attempts == 10


# --- the in-memory index -------------------------------------------------------------------------


def changed(entity_type: str, entity_id: str = ENTITY) -> AttributesChanged:
    return AttributesChanged(
        tenant="",
        entity_id=entity_id,
        types=[DEFAULT + entity_type],
        changes=[AttributeChange(attr=f"{DEFAULT}pm25", old=PM25, new={**PM25, "value": 36.0})],
    )


class CountingContext:
    """The platform context, counting the database sessions opened through it."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx, self.sessions = ctx, 0

    def read(self) -> Any:
        self.sessions += 1
        return self.ctx.read()

    def uow(self, *args: Any) -> Any:
        self.sessions += 1
        return self.ctx.uow(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.ctx, name)


def test_events_nobody_watches_cost_no_query(api: TestClient, ctx: AppContext) -> None:
    assert api.post(f"{BASE}/entities", json=station()).status_code == 201
    subscribe(api, subscription(URI, notificationTrigger=["attributeUpdated"]))
    counting = CountingContext(ctx)
    engine = SubscriptionEngine(cast(AppContext, counting), ctx.app_setting("context", ContextSettings))
    engine.reload_index()
    counting.sessions = 0

    async def run(events: list[AttributesChanged]) -> None:
        for ev in events:
            await engine.on_event(ev)

    asyncio.run(run([changed("WeatherObserved", f"urn:ngsi-ld:W:{i}") for i in range(200)]))
    asyncio.run(
        run([changed("AirQualityObserved", f"urn:ngsi-ld:AirQualityObserved:x{i}") for i in range(3)])
    )
    assert counting.sessions == 3  # one read each: the entity (it does not exist, so nothing is queued)
    asyncio.run(run([changed("AirQualityObserved")]))
    assert counting.sessions == 5  # the entity, then the transaction queuing the notification
    assert count(ctx, Notification) == 1


def test_the_index_sees_changes_made_by_another_process(api: TestClient, ctx: AppContext) -> None:
    other = SubscriptionEngine(ctx, ctx.app_setting("context", ContextSettings))
    other.reload_index()
    air = [f"{DEFAULT}AirQualityObserved"]
    assert other.index().candidates("", air) == []
    sub_id = subscribe(api, subscription(URI))
    assert other.index().candidates("", air) == []  # nothing told this engine yet
    other.refresh_index()  # what its timer does: the table's fingerprint changed
    [entry] = other.index().candidates("", air)
    assert entry.compiled.subscription_id == sub_id
    patched = {"entities": [{"type": "WeatherObserved"}]}
    assert api.patch(f"{BASE}/subscriptions/{sub_id}", json=patched).status_code == 204
    other.refresh_index()
    assert other.index().candidates("", air) == []
    assert len(other.index().candidates("", [f"{DEFAULT}WeatherObserved"])) == 1
    assert api.delete(f"{BASE}/subscriptions/{sub_id}").status_code == 204
    other.refresh_index()
    assert other.index().size == 0


def test_a_new_subscription_applies_at_once_without_the_timer(
    api: TestClient, receiver: Receiver, policy: ContextSettings
) -> None:
    assert api.post(f"{BASE}/entities", json=station()).status_code == 201
    policy.subscription_index_refresh_seconds = 3600.0
    time.sleep(0.3)  # the refresher is now asleep for an hour
    update_pm25(api, 36.0)  # the index is built and holds no subscription
    sub_id = subscribe(api, subscription(receiver.uri, notificationTrigger=["attributeUpdated"]))
    update_pm25(api, 37.0)
    [(_, body)] = receiver.wait(1)
    assert body["subscriptionId"] == sub_id and body["data"][0]["pm25"]["value"] == 37.0
    assert api.patch(f"{BASE}/subscriptions/{sub_id}", json={"isActive": False}).status_code == 204
    update_pm25(api, 38.0)
    time.sleep(0.4)
    assert len(receiver.bodies()) == 1


# --- csf, scopeQ, temporalQ ----------------------------------------------------------------------


def test_csf_is_kept_and_does_not_filter_local_entities(api: TestClient, receiver: Receiver) -> None:
    assert api.post(f"{BASE}/entities", json=station()).status_code == 201
    sub_id = subscribe(
        api, subscription(receiver.uri, notificationTrigger=["attributeUpdated"], csf='mode=="push"')
    )
    assert sub_state(api, sub_id)["csf"] == 'mode=="push"'
    update_pm25(api, 50.0)
    [(_, body)] = receiver.wait(1)
    assert body["subscriptionId"] == sub_id


def test_temporal_q_is_refused_naming_the_member(api: TestClient) -> None:
    body = subscription(URI, temporalQ={"timerel": "after", "timeAt": "2026-01-01T00:00:00Z"})
    response = api.post(f"{BASE}/subscriptions", json=body)
    problem(response, 400, "BadRequestData")
    assert "temporalQ" in response.json()["detail"]


SCOPE_CASES = [
    ("/Mianyang/Fucheng", ["/Mianyang/Fucheng"], True),
    ("/Mianyang/Fucheng", ["/Mianyang/Fucheng/Park"], False),
    ("/Mianyang/#", ["/Mianyang"], True),
    ("/Mianyang/#", ["/Mianyang/Fucheng/Park"], True),
    ("/Mianyang/#", ["/Beijing/Mianyang"], False),
    ("/Mianyang/+/Park", ["/Mianyang/Fucheng/Park"], True),
    ("/Mianyang/+/Park", ["/Mianyang/Park"], False),
    ("/#", ["/Anything"], True),
    ("/#", [], False),
    ("/Mianyang/#;/Sensors", ["/Mianyang/Fucheng", "/Sensors"], True),
    ("/Mianyang/#;/Sensors", ["/Mianyang/Fucheng"], False),
    ("/Beijing,/Mianyang/#", ["/Mianyang/Fucheng"], True),
    ("(/Beijing,/Mianyang/#);/Sensors", ["/Mianyang", "/Sensors"], True),
    ("(/Beijing,/Mianyang/#);/Sensors", ["/Mianyang"], False),
]


@pytest.mark.parametrize(("query", "scopes", "expected"), SCOPE_CASES)
def test_scope_query_language(query: str, scopes: list[str], expected: bool) -> None:
    assert parse_scope_query(query).matches(scopes) is expected


def test_scope_q_filters_change_and_periodic_notifications(api: TestClient, receiver: Receiver) -> None:
    inside = scoped_station(1, 35.0, 104.679, 31.467, "/Mianyang/Fucheng")
    outside = scoped_station(2, 35.0, 104.679, 31.467, "/Beijing")
    for entity in (inside, outside):
        assert api.post(f"{BASE}/entities", json=entity).status_code == 201
    changes = subscribe(
        api, subscription(receiver.uri, notificationTrigger=["attributeUpdated"], scopeQ="/Mianyang/#")
    )
    assert sub_state(api, changes)["scopeQ"] == "/Mianyang/#"
    update_pm25(api, 60.0, entity_id=outside["id"])
    update_pm25(api, 61.0, entity_id=inside["id"])
    [(_, body)] = receiver.wait(1)
    assert body["data"][0]["id"] == inside["id"]
    time.sleep(0.3)
    assert len(receiver.bodies()) == 1
    assert api.delete(f"{BASE}/subscriptions/{changes}").status_code == 204
    subscribe(api, subscription(receiver.uri, timeInterval=0.5, scopeQ="/Beijing"))
    _, (_, periodic) = receiver.wait(2)
    assert [e["id"] for e in periodic["data"]] == [outside["id"]]
