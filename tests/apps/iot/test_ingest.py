"""The ingest pipeline: payload forms, checks against the model, rejections kept and counted, idempotency."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select

from citybrain.apps.context import services as context
from citybrain.apps.iot import schemas, services
from citybrain.apps.iot.models import DeadLetter, Device
from citybrain.apps.iot.schemas import Message
from citybrain.core.context import AppContext
from citybrain.core.db import OutboxRow
from citybrain.core.permissions import SYSTEM
from tests.apps.iot.conftest import Provisioned, provision

T0 = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def message(device: Provisioned, body: dict[str, Any], **extra: Any) -> Message:
    """An MQTT message of the device with its key in the payload."""
    payload = orjson.dumps({"k": device.key, **body})
    return Message(
        "", device.device_id, payload, "mqtt", None, extra.pop("received_at", T0 + timedelta(minutes=1))
    )


def history(ctx: AppContext, entity_id: str, attr: str) -> list[tuple[datetime, float]]:
    stored = context.get_entity(ctx, SYSTEM, "", entity_id)
    iri = next(i for i in stored["attrs"] if i.rsplit("/", 1)[-1] == attr)
    return context.attribute_history(ctx, SYSTEM, "", entity_id, iri)


def current(ctx: AppContext, entity_id: str, attr: str) -> Any:
    stored = context.get_entity(ctx, SYSTEM, "", entity_id)
    return next(inst[0]["value"] for iri, inst in stored["attrs"].items() if iri.rsplit("/", 1)[-1] == attr)


def letters(ctx: AppContext) -> list[DeadLetter]:
    with ctx.read() as session:
        return list(session.scalars(select(DeadLetter).order_by(DeadLetter.id)))


def test_three_forms_are_stored(ctx: AppContext, device: Provisioned) -> None:
    report = services.ingest_messages(
        ctx,
        [
            message(device, {"ts": T0.isoformat(), "values": {"pm25": 35.2, "no2": 41}}),
            message(
                device,
                {
                    "readings": [
                        {"ts": ms(T0 + timedelta(seconds=10)), "values": {"pm25": 36}},
                        {"ts": "2026-11-24T16:00:20+08:00", "values": {"pm25": 37, "co": 0.8}},
                    ]
                },
            ),
            message(
                device,
                {
                    "columns": ["ts", "pm25", "no2"],
                    "rows": [
                        [ms(T0 + timedelta(seconds=30)), 38.0, None],
                        [ms(T0 + timedelta(seconds=40)), 39, 44],
                    ],
                },
            ),
        ],
    )
    assert report.rejected == {}
    assert report.accepted == 5
    assert report.stored == 8
    points = history(ctx, device.entity_id, "pm25")
    assert [v for _, v in points] == [35.2, 36, 37, 38, 39]
    assert points[2][0] == T0 + timedelta(seconds=20)
    assert current(ctx, device.entity_id, "pm25") == 39
    assert [v for _, v in history(ctx, device.entity_id, "no2")] == [41, 44]


def test_a_reading_without_ts_takes_the_arrival_time(ctx: AppContext, device: Provisioned) -> None:
    arrival = T0 + timedelta(hours=1)
    services.ingest_messages(ctx, [message(device, {"values": {"pm25": 12}}, received_at=arrival)])
    assert history(ctx, device.entity_id, "pm25") == [(arrival, 12.0)]


def test_bad_values_are_rejected_alone(ctx: AppContext, device: Provisioned) -> None:
    body = {
        "readings": [
            {
                "ts": ms(T0),
                "values": {
                    "pm25": 30,
                    "no2": "high",
                    "co": 999,
                    "samples": 2.5,
                    "quality": "good",
                    "heated": 1,
                    "colour": "red",
                },
            },
            {"ts": ms(T0 + timedelta(seconds=1)), "values": {"samples": 4.0, "heated": False}},
            "not a reading",
            {"ts": "yesterday", "values": {"pm25": 1}},
            {"ts": ms(T0 + timedelta(days=1)), "values": {"pm25": 1}},
            {"ts": ms(T0 - timedelta(days=400)), "values": {"pm25": 1}},
            {"values": "pm25=3"},
        ]
    }
    report = services.ingest_messages(ctx, [message(device, body)])
    item = report.messages[0]
    assert item.readings == 7 and item.accepted == 2
    found = sorted((r.reason, r.reading, r.attribute) for r in item.rejections)
    assert found == [
        ("future_timestamp", 4, None),
        ("malformed", 2, None),
        ("malformed", 3, None),
        ("malformed", 6, None),
        ("out_of_range", 0, "co"),
        ("stale_timestamp", 5, None),
        ("unknown_attribute", 0, "colour"),
        ("wrong_type", 0, "heated"),
        ("wrong_type", 0, "no2"),
        ("wrong_type", 0, "samples"),
    ]
    assert current(ctx, device.entity_id, "pm25") == 30
    assert current(ctx, device.entity_id, "quality") == "good"
    assert current(ctx, device.entity_id, "samples") == 4
    assert current(ctx, device.entity_id, "heated") is False
    rows = letters(ctx)
    by_reason = {row.reason: row for row in rows}
    assert set(by_reason) == {
        "future_timestamp",
        "malformed",
        "out_of_range",
        "stale_timestamp",
        "unknown_attribute",
        "wrong_type",
    }
    assert by_reason["wrong_type"].count == 3
    assert by_reason["malformed"].count == 3
    assert {e["attribute"] for e in by_reason["wrong_type"].errors} == {"heated", "no2", "samples"}
    assert orjson.loads(by_reason["out_of_range"].payload)["readings"][0]["values"]["co"] == 999
    assert all(row.device_id == device.device_id and row.department_id is not None for row in rows)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json", "malformed"),
        (b"[1, 2]", "malformed"),
        (b'{"pm25": 3}', "malformed"),
        (b'{"values": {"pm25": 1}, "readings": []}', "malformed"),
        (b'{"readings": {"a": 1}}', "malformed"),
        (b'{"columns": "ts,pm25", "rows": []}', "malformed"),
        (b'{"columns": ["pm25", "pm25"], "rows": []}', "malformed"),
        (b'{"columns": ["pm25"]}', "malformed"),
        (b'{"k": 5, "values": {}}', "malformed"),
    ],
)
def test_malformed_messages(ctx: AppContext, device: Provisioned, payload: bytes, reason: str) -> None:
    report = services.ingest_messages(ctx, [Message("", device.device_id, payload, "mqtt")])
    assert report.messages[0].refused == reason
    (row,) = letters(ctx)
    assert row.reason == reason and row.payload == payload.decode() and not row.truncated


def test_oversize_is_refused_and_its_head_kept(ctx: AppContext, device: Provisioned) -> None:
    big = orjson.dumps({"k": device.key, "values": {"quality": "x" * 70_000}})
    report = services.ingest_messages(ctx, [Message("", device.device_id, big, "mqtt")])
    assert report.messages[0].refused == "oversize"
    (row,) = letters(ctx)
    assert row.truncated and row.payload_size == len(big) and len(row.payload) == 8192


def test_credentials(ctx: AppContext, device: Provisioned) -> None:
    good = {"values": {"pm25": 1}}
    batch = [
        Message("", "nobody", orjson.dumps(good), "mqtt"),
        Message("", device.device_id, orjson.dumps(good), "mqtt"),
        Message("", device.device_id, orjson.dumps({**good, "k": "cbd_wrong"}), "mqtt"),
        Message("", device.device_id, orjson.dumps(good), "http", "cbd_wrong"),
        Message("", device.device_id, orjson.dumps(good), "http", device.key),
        Message("", device.device_id, orjson.dumps({"ts": ms(T0), "values": {"pm25": 2}}), "internal"),
        Message("other", device.device_id, orjson.dumps({**good, "k": device.key}), "mqtt"),
    ]
    report = services.ingest_messages(ctx, batch)
    assert [m.refused for m in report.messages] == [
        "unknown_device",
        "missing_key",
        "wrong_key",
        "wrong_key",
        None,
        None,
        "unknown_device",
    ]
    services.revoke_device(ctx, SYSTEM, device.pk)
    again = services.ingest_messages(ctx, [message(device, good)])
    assert again.messages[0].refused == "revoked"
    # the cache was cleared by the revocation: the very next message is refused
    rotated = services.rotate_key(ctx, SYSTEM, device.pk)
    old = services.ingest_messages(ctx, [message(device, good)])
    assert old.messages[0].refused == "wrong_key"
    fresh = Provisioned(device.pk, device.device_id, device.entity_id, rotated.key)
    assert services.ingest_messages(ctx, [message(fresh, good)]).messages[0].refused is None


def test_keys_are_optional_on_mqtt_when_the_broker_authenticates(
    ctx: AppContext, device: Provisioned
) -> None:
    from citybrain.apps.iot.settings import IotSettings

    settings = ctx.app_setting("iot", IotSettings)
    settings.mqtt_require_key = False
    try:
        report = services.ingest_messages(
            ctx, [Message("", device.device_id, b'{"values": {"pm25": 5}}', "mqtt")]
        )
        assert report.messages[0].refused is None and report.stored == 1
        http = services.ingest_messages(
            ctx, [Message("", device.device_id, b'{"values": {"pm25": 5}}', "http")]
        )
        assert http.messages[0].refused == "missing_key"
    finally:
        settings.mqtt_require_key = True


def test_redelivery_is_stored_once(ctx: AppContext, device: Provisioned) -> None:
    batch = [
        message(device, {"ts": ms(T0 + timedelta(seconds=i)), "values": {"pm25": i, "no2": 2 * i}})
        for i in range(20)
    ]
    first = services.ingest_messages(ctx, batch)
    second = services.ingest_messages(ctx, batch)
    assert (first.stored, first.duplicates) == (40, 0)
    assert (second.stored, second.duplicates) == (0, 40)
    assert len(history(ctx, device.entity_id, "pm25")) == 20


def test_same_instant_from_two_messages_merges(ctx: AppContext, device: Provisioned) -> None:
    report = services.ingest_messages(
        ctx,
        [
            message(device, {"ts": ms(T0), "values": {"pm25": 10}}),
            message(device, {"ts": ms(T0), "values": {"no2": 20, "pm25": 11}}),
        ],
    )
    assert report.stored == 2 and report.accepted == 2
    assert history(ctx, device.entity_id, "pm25") == [(T0, 10.0)]


def test_a_deleted_entity_rejects_its_readings(ctx: AppContext, device: Provisioned) -> None:
    other = provision(ctx, "aq-other")
    context.delete_entity(ctx, SYSTEM, "", device.entity_id)
    report = services.ingest_messages(
        ctx, [message(device, {"values": {"pm25": 1}}), message(other, {"values": {"pm25": 2}})]
    )
    assert [m.accepted for m in report.messages] == [0, 1]
    assert report.messages[0].rejections[0].reason == "unknown_entity"
    assert report.stored == 1
    assert [row.reason for row in letters(ctx)] == ["unknown_entity"]


def test_counters_last_seen_and_online_event(ctx: AppContext, device: Provisioned) -> None:
    before = ctx.db.engine.connect()
    before.close()
    arrival = datetime.now(UTC)
    services.ingest_messages(
        ctx,
        [
            message(device, {"values": {"pm25": 1, "no2": -1}}, received_at=arrival),
            Message("", "ghost", b"{}", "mqtt"),
        ],
    )
    rates = services.ingest_rates(ctx, SYSTEM, 5)
    assert sum(rates.messages) == 2 and sum(rates.readings) == 1 and sum(rates.stored) == 1
    assert {k: sum(v) for k, v in rates.rejected.items()} == {"out_of_range": 1, "malformed": 1}
    read = services.get_device(ctx, SYSTEM, device.pk)
    assert read.status == "online" and read.last_seen_at is not None
    with ctx.read() as session:
        events = list(
            session.scalars(select(OutboxRow.event_type).where(OutboxRow.event_type.like("%DeviceOnline")))
        )
    assert len(events) == 1
    # a second batch keeps it online without another event
    services.ingest_messages(ctx, [message(device, {"values": {"pm25": 2}})])
    with ctx.read() as session:
        assert session.scalar(select(func.count()).where(OutboxRow.event_type.like("%DeviceOnline"))) == 1
        assert session.get_one(Device, device.pk).last_seen_at >= read.last_seen_at


def test_unknown_tenant_devices_are_told_apart(ctx: AppContext, aq_model: schemas.DeviceModelCreate) -> None:
    a = provision(ctx, "aq-t1", tenant="cityb")
    report = services.ingest_messages(
        ctx,
        [
            Message("cityb", "aq-t1", orjson.dumps({"k": a.key, "values": {"pm25": 3}}), "mqtt"),
            Message("", "aq-t1", orjson.dumps({"k": a.key, "values": {"pm25": 3}}), "mqtt"),
        ],
    )
    assert [m.refused for m in report.messages] == [None, "unknown_device"]
    stored = context.get_entity(ctx, SYSTEM, "cityb", a.entity_id)
    assert stored["id"] == a.entity_id


def test_purge_drops_old_rows(ctx: AppContext, device: Provisioned) -> None:
    services.ingest_messages(ctx, [Message("", device.device_id, b"oops", "mqtt")])
    assert services.purge(ctx, datetime.now(UTC) + timedelta(days=1)) == (0, 0)
    deleted = services.purge(ctx, datetime.now(UTC) + timedelta(days=31))
    assert deleted == (1, 2)  # the rejected message; the "messages" and "rejected.malformed" counters
    assert letters(ctx) == []


def test_dead_letters_api(ctx: AppContext, device: Provisioned, api: Any) -> None:
    services.ingest_messages(
        ctx,
        [
            Message("", device.device_id, b"oops", "mqtt"),
            message(device, {"values": {"pm25": -3}}, received_at=datetime.now(UTC)),
        ],
    )
    page = api.get("/api/iot/dead-letters").json()
    assert page["total"] == 2
    assert {item["reason"] for item in page["items"]} == {"malformed", "out_of_range"}
    only = api.get(
        "/api/iot/dead-letters", params={"reason": "out_of_range", "device_id": device.device_id}
    ).json()
    (item,) = only["items"]
    detail = api.get(f"/api/iot/dead-letters/{item['id']}").json()
    assert orjson.loads(detail["payload"])["values"] == {"pm25": -3}
    since = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    assert api.get("/api/iot/dead-letters", params={"since": since}).json()["total"] == 0
    assert api.get("/api/iot/dead-letters", params={"since": "2026-01-01T00:00:00"}).status_code == 400
    assert api.get("/api/iot/dead-letters", params={"reason": "bored"}).status_code == 422
    assert api.get("/api/iot/dead-letters/999999").status_code == 404
    rates = api.get("/api/iot/rates", params={"minutes": 10}).json()
    assert len(rates["minutes"]) == 10 and sum(rates["messages"]) == 2
    assert api.get("/api/iot/rates", params={"minutes": 0}).status_code == 422


def test_dead_letters_are_scoped(
    client: Any, ctx: AppContext, device: Provisioned, fucheng: dict[str, str]
) -> None:
    theirs = provision(ctx, "aq-yx", department="510704", where=(104.772, 31.482))
    services.ingest_messages(
        ctx,
        [
            Message("", device.device_id, b"mine", "mqtt"),
            Message("", theirs.device_id, b"theirs", "mqtt"),
            Message("", "nobody-knows", b"{}", "mqtt"),
        ],
    )
    listed = client.get("/api/iot/dead-letters", headers=fucheng).json()
    assert [item["device_id"] for item in listed["items"]] == [device.device_id]
    other = next(row for row in letters(ctx) if row.device_id == theirs.device_id)
    assert client.get(f"/api/iot/dead-letters/{other.id}", headers=fucheng).status_code == 404
    assert client.get("/api/iot/dead-letters").status_code == 401
