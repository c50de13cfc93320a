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
from typing import Any

import aiomqtt
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from citybrain.apps.context.events import AttributeChange, AttributesChanged
from citybrain.apps.context.models import Notification, Subscription
from citybrain.apps.context.subscriptions import SubscriptionEngine, SubscriptionSettings
from citybrain.core.context import AppContext
from citybrain.core.ledger import LedgerRecord
from tests.apps.context.conftest import token_for
from tests.apps.context.test_ngsild import BASE, CORE, problem, station
from tests.conftest import Seeded, service_missing

ENTITY = "urn:ngsi-ld:AirQualityObserved:mianyang-001"
MQTT_HOST, MQTT_PORT = "127.0.0.1", 1883
SCOPES = [
    "context.entity.read",
    "context.entity.write",
    "context.subscription.read",
    "context.subscription.write",
]


@pytest.fixture(autouse=True)
def fast_delivery(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny poll and backoff delays, read by the app's lifespan when the client starts."""
    for name, value in {
        "POLL_SECONDS": "0.1",
        "RETRY_BASE_SECONDS": "0.1",
        "RETRY_MAX_SECONDS": "0.4",
        "TIMEOUT_SECONDS": "2",
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
    "unknown member": {"csf": "x==1"},
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
    engine = SubscriptionEngine(ctx, SubscriptionSettings())
    event = AttributesChanged(
        tenant="",
        entity_id=ENTITY,
        types=["https://uri.etsi.org/ngsi-ld/default-context/AirQualityObserved"],
        changes=[AttributeChange(attr="https://uri.etsi.org/ngsi-ld/default-context/pm25", old={}, new={})],
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
