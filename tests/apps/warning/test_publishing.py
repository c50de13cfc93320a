"""Publishing warnings: in-app notifications, signed webhooks to a real local receiver, SMS, filters, API."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from citybrain.apps.identity import schemas as ids
from citybrain.apps.identity import services as identity
from citybrain.apps.warning import publishing
from citybrain.apps.warning import services as warning_services
from citybrain.apps.warning.events import WarningChanged, WarningRaised
from citybrain.apps.warning.models import Delivery, IssuedWarning, Rule, Subscription
from citybrain.core.asgi import create_app
from citybrain.core.context import AppContext
from citybrain.core.permissions import SYSTEM
from citybrain.core.settings import Settings
from tests.apps.warning.conftest import FULESHAN, T0, observe, rule_body, settle, station, wait_for
from tests.conftest import Seeded, login

PASSWORD = "a-long-password-123"
PHONE = "13812345678"


@pytest.fixture
def app(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> FastAPI:
    """The warning app and what it requires, with short back-off and polling, and loopback webhooks allowed."""
    monkeypatch.setenv("CITYBRAIN_WARNING_DELIVERY_RETRY_BASE_SECONDS", "0.05")
    monkeypatch.setenv("CITYBRAIN_WARNING_DELIVERY_POLL_SECONDS", "0.05")
    monkeypatch.setenv("CITYBRAIN_WARNING_WEBHOOK_TIMEOUT_SECONDS", "2")
    monkeypatch.setenv("CITYBRAIN_WARNING_WEBHOOK_ALLOWLIST", "127.0.0.1")
    monkeypatch.setenv("CITYBRAIN_WARNING_PUBLIC_URL", "https://brain.example.cn")
    return create_app(settings.model_copy(update={"apps": ("identity", "context", "geo", "warning")}))


class Receiver:
    """A tiny HTTP server on 127.0.0.1 that records every POST and answers the statuses it is given."""

    def __init__(self, statuses: list[int] | None = None, port: int = 0, delay: float = 0.0) -> None:
        """Bind (port 0: any free one); answer `statuses` in turn, then 200, each after `delay` seconds."""
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.statuses = list(statuses or [])
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                time.sleep(delay)
                self.send_response(outer.statuses.pop(0) if outer.statuses else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        """Where to POST."""
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Callable[..., Receiver]]:
    """Start receivers; all are stopped after the test."""
    started: list[Receiver] = []

    def start(statuses: list[int] | None = None, port: int = 0, delay: float = 0.0) -> Receiver:
        found = Receiver(statuses, port, delay)
        started.append(found)
        return found

    yield start
    for found in started:
        found.close()


def subscribe(api: TestClient, **body: Any) -> dict[str, Any]:
    """Create a subscription through the API."""
    response = api.post("/api/warning/subscriptions", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def raise_orange(
    api: TestClient, ctx: AppContext, name: str = "fc-01", where: tuple[float, float] | None = None
) -> int:
    """A PM2.5 rule and a station reading 160 (orange): the evaluator raises a warning; its id."""
    sid = station(ctx, name) if where is None else station(ctx, name, where=where)
    if api.get("/api/warning/rules").json() == []:
        assert api.post("/api/warning/rules", json=rule_body()).status_code == 201
    observe(ctx, sid, T0, pm25=160.0)
    settle(ctx)
    with ctx.read() as session:
        return int(session.scalars(select(IssuedWarning.id).where(IssuedWarning.entity_id == sid)).one())


def deliveries(ctx: AppContext, subscription_id: int) -> list[Delivery]:
    """The deliveries of a subscription, oldest first."""
    with ctx.read() as session:
        return list(
            session.scalars(
                select(Delivery).where(Delivery.subscription_id == subscription_id).order_by(Delivery.id)
            )
        )


def delivered(ctx: AppContext, subscription_id: int, count: int = 1) -> list[Delivery]:
    """Wait until `count` deliveries of a subscription are delivered."""
    return wait_for(
        lambda: (
            rows
            if len(rows := [d for d in deliveries(ctx, subscription_id) if d.state == "delivered"]) >= count
            else None
        )
    )


def make_user(ctx: AppContext, seeded: Seeded, username: str, permissions: list[str]) -> int:
    """A user of the city department holding a role with exactly these permissions."""
    role = identity.create_role(
        ctx, SYSTEM, ids.RoleCreate(code=f"r_{username}", name_zh=username, permissions=permissions)
    )
    user = identity.create_user(
        ctx,
        SYSTEM,
        ids.UserCreate(
            username=username, display_name=username, department_id=seeded.city_dept, password=PASSWORD
        ),
    )
    identity.assign_role(ctx, SYSTEM, user.id, ids.AssignmentCreate(role_id=role.id))
    return user.id


@pytest.fixture
def other(app: FastAPI) -> Iterator[Callable[[str], TestClient]]:
    """Clients of the same running app signed in as other users."""
    made: list[TestClient] = []

    def make(username: str) -> TestClient:
        found = TestClient(app, base_url="http://testserver")
        made.append(found)
        login(found, username, PASSWORD)
        return found

    yield make
    for found in made:
        found.close()


# --- delivery -------------------------------------------------------------------------------------


def test_inapp_notification_appears_and_is_read(api: TestClient, ctx: AppContext) -> None:
    """A warning raised by the evaluator becomes the subscriber's unread notification; reading it counts down."""
    sub = subscribe(api, channel="inapp")
    assert sub["user_id"] is not None and sub["transitions"] == ["raised", "upgraded", "downgraded", "lifted"]
    warning_id = raise_orange(api, ctx)
    delivered(ctx, sub["id"])
    page = api.get("/api/warning/notifications").json()
    (note,) = page["items"]
    assert (note["warning_id"], note["level"], note["transition"]) == (warning_id, "orange", "raised")
    assert (note["title"], note["read_at"]) == ("橙色预警：PM2.5 超标", None)
    shown = f"{T0.astimezone(ZoneInfo('Asia/Shanghai')):%Y-%m-%d %H:%M}"  # stored UTC, shown in Beijing time
    assert note["body"] == f"涪城区fc-01于{shown}发布橙色预警：PM2.5 超标。"
    (english,) = api.get("/api/warning/notifications", params={"lang": "en"}).json()["items"]
    assert english["title"] == "Orange warning: PM2.5 high"
    assert english["body"].startswith("Fucheng District fc-01: Orange warning issued at ")
    assert api.get("/api/warning/notifications/unread-count").json() == {"unread": 1}
    read = api.post(f"/api/warning/notifications/{note['id']}/read")
    assert read.status_code == 200 and read.json()["read_at"] is not None
    assert api.get("/api/warning/notifications/unread-count").json() == {"unread": 0}
    assert api.get("/api/warning/notifications", params={"unread": "true"}).json()["total"] == 0
    assert api.post("/api/warning/notifications/999999/read").status_code == 404


def test_webhook_gets_a_signed_post(
    api: TestClient, ctx: AppContext, receiver: Callable[..., Receiver]
) -> None:
    """The receiver gets the warning's summary with a valid HMAC signature over the timestamp and body."""
    hook = receiver()
    sub = subscribe(api, channel="webhook", url=hook.url, name="区应急局")
    secret = sub["secret"]
    assert isinstance(secret, str) and len(secret) >= 32
    shown = api.get(f"/api/warning/subscriptions/{sub['id']}").json()
    assert "secret" not in shown and secret not in json.dumps(api.get("/api/warning/subscriptions").json())
    warning_id = raise_orange(api, ctx)
    (row,) = delivered(ctx, sub["id"])
    assert (row.attempts, row.receipt, row.last_error) == (1, "HTTP 200", None)
    ((headers, body),) = wait_for(lambda: hook.requests)
    stamp = headers["x-citybrain-timestamp"]
    assert abs(int(stamp) - time.time()) < 60
    expected = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-citybrain-signature"], f"sha256={expected}")
    wrong = hmac.new(b"another secret", stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert headers["x-citybrain-signature"] != f"sha256={wrong}"
    assert headers["content-type"] == "application/json" and headers["x-citybrain-event"] == "raised"
    payload = json.loads(body)
    warning = payload["warning"]
    assert payload["transition"] == "raised"
    assert (warning["id"], warning["level"], warning["status"], warning["district"]) == (
        warning_id,
        "orange",
        "active",
        "510703",
    )
    assert warning["rule"]["code"] == "pm25-high" and warning["district_name"] == "涪城区"
    assert warning["values"] == {"pm25": 160.0} and warning["scope"].endswith("fc-01")
    assert warning["cap"] == f"https://brain.example.cn/api/warning/warnings/{warning_id}.cap"
    assert datetime.fromisoformat(warning["at"]) == T0
    listed = api.get(f"/api/warning/subscriptions/{sub['id']}/deliveries").json()
    assert [(d["state"], d["attempts"]) for d in listed["items"]] == [("delivered", 1)]


def test_webhook_retries_after_a_server_error(
    api: TestClient, ctx: AppContext, receiver: Callable[..., Receiver]
) -> None:
    """A receiver answering 500 then 200 gets the delivery on the retry, with the same delivery id."""
    hook = receiver([500])
    sub = subscribe(api, channel="webhook", url=hook.url)
    raise_orange(api, ctx)
    (row,) = delivered(ctx, sub["id"])
    assert row.attempts == 2 and row.last_error is None and row.delivered_at is not None
    assert len(hook.requests) == 2
    assert hook.requests[0][0]["x-citybrain-delivery"] == hook.requests[1][0]["x-citybrain-delivery"]
    assert hook.requests[0][1] == hook.requests[1][1]


def test_a_receiver_that_is_down_gets_it_when_it_is_back(
    api: TestClient, ctx: AppContext, receiver: Callable[..., Receiver]
) -> None:
    """Nothing listens: the delivery stays due with its error and back-off; once the receiver is up it arrives."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sub = subscribe(api, channel="webhook", url=f"http://127.0.0.1:{port}/hook")
    raise_orange(api, ctx)
    (waiting,) = wait_for(lambda: [d for d in deliveries(ctx, sub["id"]) if d.attempts >= 2])
    assert waiting.state == "pending" and waiting.last_error and "ConnectError" in waiting.last_error
    assert waiting.next_attempt_at > datetime.now(UTC) - timedelta(seconds=1)
    hook = receiver(port=port)
    (row,) = delivered(ctx, sub["id"])
    assert row.attempts >= 3 and len(hook.requests) == 1


def test_a_slow_receiver_holds_no_one_else(
    api: TestClient, ctx: AppContext, receiver: Callable[..., Receiver]
) -> None:
    """A receiver slower than the timeout fails its own attempt; the in-app notification does not wait for it."""
    hook = receiver(delay=4.0)
    slow = subscribe(api, channel="webhook", url=hook.url)
    inapp = subscribe(api, channel="inapp")
    raise_orange(api, ctx)
    delivered(ctx, inapp["id"])
    (waiting,) = deliveries(ctx, slow["id"])
    assert waiting.state == "pending" and waiting.attempts == 0  # its first attempt is still in flight
    (failed,) = wait_for(lambda: [d for d in deliveries(ctx, slow["id"]) if d.attempts >= 1])
    assert failed.last_error is not None and "Timeout" in failed.last_error


def test_a_stop_lets_an_attempt_in_flight_finish(
    api: TestClient, client: TestClient, ctx: AppContext, receiver: Callable[..., Receiver]
) -> None:
    """Stopping the platform waits for a webhook attempt in flight (it ends within the timeout) and records it."""
    hook = receiver(delay=1.0)
    sub = subscribe(api, channel="webhook", url=hook.url)
    raise_orange(api, ctx)
    wait_for(lambda: hook.requests)  # the receiver has the request and answers in a second
    client.__exit__(None, None, None)  # the platform stops (the fixture's own exit then does nothing)
    (row,) = deliveries(ctx, sub["id"])
    assert (row.state, row.attempts, row.receipt) == ("delivered", 1, "HTTP 200")


def test_old_deliveries_are_purged(api: TestClient, ctx: AppContext) -> None:
    """Delivered rows older than the retention go; pending ones stay whatever their age."""
    sub = subscribe(api, channel="sms", phone=PHONE)
    raise_orange(api, ctx)
    (row,) = delivered(ctx, sub["id"])
    assert publishing.purge(ctx) == 0
    old = datetime.now(UTC) - timedelta(days=31)
    with ctx.uow(SYSTEM, "test.age") as uow:
        uow.session.execute(update(Delivery).values(created_at=old))
        uow.session.add(
            Delivery(
                subscription_id=sub["id"], event_id="still-due", warning_id=row.warning_id, transition="raised",
                level="blue", payload=row.payload, state="pending", attempts=3, next_attempt_at=old + timedelta(days=60),
                created_at=old,
            )
        )  # fmt: skip
    assert publishing.purge(ctx) == 1
    assert [d.event_id for d in deliveries(ctx, sub["id"])] == ["still-due"]


def test_sms_is_sent_through_the_sender(api: TestClient, ctx: AppContext) -> None:
    """The default sender records the short zh-CN message; the delivery keeps its message id."""
    sub = subscribe(api, channel="sms", phone=PHONE)
    raise_orange(api, ctx)
    (row,) = delivered(ctx, sub["id"])
    sender = ctx.extensions[publishing.SMS_SENDER]
    (sms,) = list(sender.sent)
    assert sms.phone == PHONE
    assert sms.text.startswith("【绵阳城市智脑】橙色预警：PM2.5") and "涪城区" in sms.text
    assert len(sms.text) <= 70 and sms.segments == 1
    assert row.receipt is not None and row.receipt.startswith(sms.message_id)


def _issued(
    entity_id: str, district: str | None = None, rule_id: int = 1, level: str = "orange"
) -> IssuedWarning:
    """A warning of the heavy-pollution kind on an entity (not stored)."""
    return IssuedWarning(
        id=7, rule_id=rule_id, rule_code="heavy-pollution", title="重污染天气预警", scope_key=entity_id,
        entity_id=entity_id, district=district, level=level, status="active", raised_at=T0, changed_at=T0,
        values={},
    )  # fmt: skip


def _payload(ctx: AppContext, warning: IssuedWarning, transition: str = "raised") -> dict[str, Any]:
    """What subscribers receive of a warning event."""
    fact = publishing.Fact("e-1", warning.id, transition, warning.level, warning.district, None, T0, {})
    return publishing.summary(ctx, warning, ("重污染天气预警", "Heavy air pollution warning"), fact)


def test_texts_name_the_city_and_districts_not_their_codes(ctx: AppContext) -> None:
    """A city-wide warning says 绵阳市, a district's says its name; an entity in a district keeps its id."""
    city = _payload(ctx, _issued("urn:ngsi-ld:AirQualityForecast:510700"))
    assert (city["warning"]["area"], city["warning"]["area_name"]) == ("510700", "绵阳市")
    sms = publishing.sms_text(ctx, city)
    assert sms.startswith("【绵阳城市智脑】橙色预警：重污染天气预警，绵阳市，") and "510700" not in sms
    params = publishing.notification_params(ctx, city)
    assert (params["where"], params["where_en"]) == ("绵阳市", "Mianyang")

    fucheng = _payload(ctx, _issued("urn:ngsi-ld:AirQualityForecast:510703"), "lifted")
    sms = publishing.sms_text(ctx, fucheng)
    assert sms.startswith("【绵阳城市智脑】橙色预警解除：重污染天气预警，涪城区，") and "510703" not in sms
    assert publishing.notification_params(ctx, fucheng)["where_en"] == "Fucheng District"

    station = _payload(ctx, _issued("urn:ngsi-ld:AirQualityObserved:fc-01", district="510703"))
    assert "，涪城区fc-01，" in publishing.sms_text(ctx, station)
    assert publishing.notification_params(ctx, station)["where_en"] == "Fucheng District fc-01"
    unknown = _payload(ctx, _issued("urn:ngsi-ld:AirQualityForecast:999999"))
    assert unknown["warning"]["area"] is None and "，999999，" in publishing.sms_text(ctx, unknown)


def test_a_city_wide_warning_is_named_in_cap_and_placed_on_the_map(api: TestClient, ctx: AppContext) -> None:
    """CAP says 绵阳市 (not the entity id) and the warning centre's map puts the warning at the city centre."""
    station(ctx, "fc-city")  # the rule's entity type exists
    assert api.post("/api/warning/rules", json=rule_body()).status_code == 201
    with ctx.read() as session:
        rule_id = session.scalars(select(Rule.id)).one()
    with ctx.uow(SYSTEM, "test.warning") as uow:
        row = _issued("urn:ngsi-ld:AirQualityForecast:510700", rule_id=rule_id)
        row.id = None  # type: ignore[assignment]
        uow.session.add(row)
        uow.session.flush()
        warning_id = row.id
    alert = warning_services.cap_alert(ctx, SYSTEM, warning_id).decode()
    assert "<areaDesc>绵阳市</areaDesc>" in alert and "重污染天气预警（绵阳市）" in alert
    html = api.get("/warning/warnings", headers={"Accept": "text/html"}).text
    markers = json.loads(html.split('id="warning-markers">', 1)[1].split("</script>", 1)[0])
    (marker,) = markers
    assert (marker["id"], marker["placed"]) == (warning_id, "city")
    assert 103.0 < marker["lon"] < 106.0 and 30.5 < marker["lat"] < 33.0  # inside Mianyang's outline
    text = json.loads(html.split('id="warning-map-text">', 1)[1].split("</script>", 1)[0])
    assert text["city_centre"] == "全市范围的预警，标在市中心"


def test_long_sms_is_shortened_and_segments_counted() -> None:
    """Segments hold 70 characters, longer texts go in parts of 67."""
    assert publishing.sms_segments("预" * 70) == 1
    assert publishing.sms_segments("预" * 71) == 2
    assert publishing.sms_segments("预" * 135) == 3


def test_filters_exclude_what_they_should(api: TestClient, ctx: AppContext) -> None:
    """Level, district and transition filters: each SMS subscriber hears only what it asked for."""
    everything = subscribe(api, channel="sms", phone="13800000001")
    red_only = subscribe(api, channel="sms", phone="13800000002", min_level="red")
    youxian = subscribe(api, channel="sms", phone="13800000003", district="510704")
    lifted_only = subscribe(api, channel="sms", phone="13800000004", transitions=["lifted"])
    fucheng_yellow = subscribe(api, channel="sms", phone="13800000005", district="510703", min_level="yellow")
    raise_orange(api, ctx)  # orange in 涪城区 510703
    delivered(ctx, everything["id"])
    delivered(ctx, fucheng_yellow["id"])
    for sub in (red_only, youxian, lifted_only):
        assert deliveries(ctx, sub["id"]) == []
    sid = station(ctx, "yx-01", where=FULESHAN)  # 游仙区 510704
    observe(ctx, sid, T0, pm25=300.0)  # red there
    settle(ctx)
    delivered(ctx, everything["id"], 2)
    assert [d.level for d in delivered(ctx, red_only["id"])] == ["red"]
    assert [d.level for d in delivered(ctx, youxian["id"])] == ["red"]
    assert len(deliveries(ctx, fucheng_yellow["id"])) == 1
    observe(ctx, sid, T0 + timedelta(minutes=1), pm25=5.0)  # lifted
    settle(ctx)
    assert [d.transition for d in delivered(ctx, lifted_only["id"])] == ["lifted"]
    assert [d.transition for d in delivered(ctx, youxian["id"], 2)] == ["raised", "lifted"]
    sender = ctx.extensions[publishing.SMS_SENDER]
    assert [d.transition for d in delivered(ctx, red_only["id"], 2)] == ["raised", "lifted"]
    # 2 for the orange warning, 3 for the red one, 4 for its lifting (the level lifted is red).
    wait_for(lambda: len(sender.sent) == 9)
    assert any(m.text.startswith("【绵阳城市智脑】红色预警解除") for m in sender.sent)


def test_a_redelivered_event_adds_nothing_and_acknowledgements_tell_no_one(
    api: TestClient, ctx: AppContext
) -> None:
    """Delivery rows are unique per (event, subscriber); an acknowledgement is not a transition subscribers hear."""
    sub = subscribe(api, channel="sms", phone=PHONE)
    warning_id = raise_orange(api, ctx)
    delivered(ctx, sub["id"])
    with ctx.read() as session:
        row = session.get(IssuedWarning, warning_id)
        assert row is not None
        event_id = session.scalars(
            select(Delivery.event_id).where(Delivery.subscription_id == sub["id"])
        ).one()
    again = WarningRaised(
        event_id=event_id, warning_id=warning_id, rule_code=row.rule_code, level=row.level, entity_id=row.entity_id,
        district=row.district, scope_key=row.scope_key, at=row.raised_at, values=row.values,
    )  # fmt: skip
    assert publishing.enqueue(ctx, again) == 0
    ack = WarningChanged(
        warning_id=warning_id, rule_code=row.rule_code, change="acknowledged", level="orange",
        previous_level="orange", district="510703", at=T0, by="user:1", values={},
    )  # fmt: skip
    assert publishing.enqueue(ctx, ack) == 0
    assert len(deliveries(ctx, sub["id"])) == 1


def test_department_filter() -> None:
    """A department filter excludes another department's warnings and passes warnings of no department."""
    sub = Subscription(enabled=True, transitions=["raised"], min_level="blue", district=None, department_id=7)
    fact = publishing.Fact("e", 1, "raised", "blue", "510703", 7, T0, {})
    assert publishing.matches(sub, fact)
    assert not publishing.matches(sub, publishing.Fact("e", 1, "raised", "blue", "510703", 8, T0, {}))
    assert publishing.matches(sub, publishing.Fact("e", 1, "raised", "blue", "510703", None, T0, {}))
    sub.enabled = False
    assert not publishing.matches(sub, fact)


# --- API: bad input, permissions, masking ---------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"channel": "webhook", "url": "ftp://example.cn/hook"},
        {"channel": "webhook", "url": "javascript:alert(1)"},
        {"channel": "webhook"},
        {"channel": "webhook", "url": "http://10.1.2.3/hook"},
        {"channel": "webhook", "url": "http://127.0.0.1:1/hook", "phone": PHONE},
        {"channel": "sms"},
        {"channel": "sms", "phone": "call me"},
        {"channel": "sms", "phone": "123"},
        {"channel": "inapp", "url": "https://example.cn/hook"},
        {"channel": "pager"},
        {"channel": "inapp", "min_level": "purple"},
        {"channel": "inapp", "transitions": []},
        {"channel": "inapp", "transitions": ["exploded"]},
        {"channel": "inapp", "district": "999999"},
        {"channel": "inapp", "district": "fucheng"},
        {"channel": "inapp", "department_id": 999999},
        {"channel": "inapp", "colour": "red"},
        {"channel": "inapp", "name": "x" * 121},
    ],
)
def test_bad_subscriptions_are_refused(api: TestClient, ctx: AppContext, body: dict[str, Any]) -> None:
    """Each bad subscription gets a 422 problem and nothing is stored."""
    response = api.post("/api/warning/subscriptions", json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert api.get("/api/warning/subscriptions").json()["total"] == 0


def test_bad_updates_and_ids(api: TestClient, ctx: AppContext) -> None:
    """Updates keep the channel's rules; unknown or malformed ids are 404/422; nothing half-written."""
    sms = subscribe(api, channel="sms", phone=PHONE)
    url = f"/api/warning/subscriptions/{sms['id']}"
    for body in (
        {"url": "https://example.cn/hook"},
        {"phone": None},
        {"min_level": None},
        {"phone": "x"},
        {"district": "999999"},
        {"transitions": []},
        {"unknown": 1},
    ):
        response = api.patch(url, json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    assert api.get(url).json()["phone"] == PHONE and api.get(url).json()["min_level"] == "blue"
    changed = api.patch(
        url, json={"min_level": "orange", "transitions": ["lifted", "raised"], "enabled": False}
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["min_level"], changed.json()["transitions"], changed.json()["enabled"]) == (
        "orange",
        ["raised", "lifted"],
        False,
    )
    hook = subscribe(api, channel="webhook", url="http://127.0.0.1:9/hook")
    assert (
        api.patch(f"/api/warning/subscriptions/{hook['id']}", json={"url": "gopher://x"}).status_code == 422
    )
    assert (
        api.patch(f"/api/warning/subscriptions/{hook['id']}", json={"url": "http://192.168.1.1/"}).status_code
        == 422
    )
    missing = api.get("/api/warning/subscriptions/999999")
    assert missing.status_code == 404 and missing.json()["detail"] == "订阅 999999 不存在。"
    assert api.get("/api/warning/subscriptions/0").status_code == 422
    assert api.delete("/api/warning/subscriptions/999999").status_code == 404
    assert api.get("/api/warning/notifications", params={"limit": 0}).status_code == 422
    assert api.delete(url).status_code == 204
    assert api.get(url).status_code == 404


def test_permissions_and_phone_masking(
    api: TestClient, ctx: AppContext, seeded: Seeded, other: Callable[[str], TestClient]
) -> None:
    """Users manage their own in-app subscription; webhooks and SMS need the write permission; phones masked."""
    sms = subscribe(api, channel="sms", phone=PHONE)
    assert sms["phone"] == PHONE  # its creator sees it whole
    make_user(ctx, seeded, "reader", ["warning.warning.read"])
    make_user(ctx, seeded, "auditor", ["warning.warning.read", "warning.subscription.read"])
    make_user(ctx, seeded, "nobody", [])
    reader = other("reader")
    own = reader.post("/api/warning/subscriptions", json={"channel": "inapp", "min_level": "red"})
    assert own.status_code == 201, own.text
    assert (
        reader.post("/api/warning/subscriptions", json={"channel": "sms", "phone": PHONE}).status_code == 403
    )
    hook = {"channel": "webhook", "url": "http://127.0.0.1:9/hook"}
    assert reader.post("/api/warning/subscriptions", json=hook).status_code == 403
    assert [s["id"] for s in reader.get("/api/warning/subscriptions").json()["items"]] == [own.json()["id"]]
    assert reader.get(f"/api/warning/subscriptions/{sms['id']}").status_code == 404
    assert (
        reader.patch(
            f"/api/warning/subscriptions/{own.json()['id']}", json={"min_level": "orange"}
        ).status_code
        == 200
    )
    assert reader.delete(f"/api/warning/subscriptions/{sms['id']}").status_code == 404
    auditor = other("auditor")
    seen = auditor.get(f"/api/warning/subscriptions/{sms['id']}")
    assert seen.status_code == 200 and seen.json()["phone"] == "138****5678"
    listed = auditor.get("/api/warning/subscriptions").json()
    assert PHONE not in json.dumps(listed) and listed["total"] == 2
    assert (
        auditor.patch(f"/api/warning/subscriptions/{sms['id']}", json={"enabled": False}).status_code == 403
    )
    assert auditor.delete(f"/api/warning/subscriptions/{own.json()['id']}").status_code == 403
    nobody = other("nobody")
    assert nobody.get("/api/warning/subscriptions").status_code == 403
    assert nobody.post("/api/warning/subscriptions", json={"channel": "inapp"}).status_code == 403
    assert nobody.get("/api/warning/notifications/unread-count").status_code == 403
    anonymous = TestClient(api.app, base_url="http://testserver")
    assert anonymous.get("/api/warning/notifications").status_code == 401
    assert anonymous.get("/api/warning/subscriptions").status_code == 401
    with ctx.read() as session:
        assert session.get(Subscription, sms["id"]) is not None


def test_notifications_are_the_users_own(
    api: TestClient, ctx: AppContext, seeded: Seeded, other: Callable[[str], TestClient]
) -> None:
    """Each user lists and reads only their own notifications."""
    make_user(ctx, seeded, "reader", ["warning.warning.read"])
    reader = other("reader")
    mine = reader.post("/api/warning/subscriptions", json={"channel": "inapp"}).json()
    raise_orange(api, ctx)
    delivered(ctx, mine["id"])
    (note,) = reader.get("/api/warning/notifications").json()["items"]
    assert api.get("/api/warning/notifications").json()["total"] == 0
    assert api.post(f"/api/warning/notifications/{note['id']}/read").status_code == 404
    assert reader.post("/api/warning/notifications/read-all").json() == {"unread": 0}
