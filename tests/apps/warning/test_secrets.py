"""Webhook secrets: sealed at rest, shown once, rotated with a grace period signed by both secrets."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import select, update

from citybrain.apps.warning import publishing, sealing
from citybrain.apps.warning.models import Subscription
from citybrain.apps.warning.settings import WarningSettings
from citybrain.core.context import AppContext
from citybrain.core.db import utcnow
from citybrain.core.permissions import SYSTEM
from citybrain.core.settings import load_settings
from tests.apps.warning import test_publishing as publishing_tests
from tests.apps.warning.conftest import wait_for
from tests.apps.warning.test_publishing import PHONE, Receiver, delivered, make_user, raise_orange, subscribe
from tests.conftest import TEST_SECRET, Seeded

# The publishing tests' fixtures: loopback webhooks allowed, short back-off; receivers; other users.
app = publishing_tests.app
receiver_fixture = pytest.fixture(publishing_tests.receiver.__wrapped__, name="receiver")  # type: ignore[attr-defined]
other_fixture = pytest.fixture(publishing_tests.other.__wrapped__, name="other")  # type: ignore[attr-defined]


def stored(ctx: AppContext, subscription_id: int) -> Subscription:
    """A subscription's row."""
    with ctx.read() as session:
        return session.get_one(Subscription, subscription_id)


def valid(secret: str, stamp: str, body: bytes, signature: str) -> bool:
    """Whether a signature value is the HMAC-SHA256 of "<stamp>.<body>" under the secret."""
    expected = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(signature, f"sha256={expected}")


def test_a_secret_is_sealed_at_rest_and_shown_once(api: TestClient, ctx: AppContext) -> None:
    sub = subscribe(api, channel="webhook", url="http://127.0.0.1:9/hook")
    secret = sub["secret"]
    row = stored(ctx, sub["id"])
    assert row.secret_sealed is not None and row.secret_sealed.startswith("v1:")
    assert secret not in row.secret_sealed
    assert sealing.unseal(publishing.sealing_key(ctx), row.secret_sealed) == secret
    assert secret not in json.dumps(api.get(f"/api/warning/subscriptions/{sub['id']}").json())
    assert secret not in json.dumps(api.get("/api/warning/subscriptions").json())
    again = subscribe(api, channel="webhook", url="http://127.0.0.1:9/other")
    assert again["secret"] != secret and stored(ctx, again["id"]).secret_sealed != row.secret_sealed


def test_rotation_signs_with_both_secrets_for_the_grace_period_then_the_new_one_only(
    api: TestClient, ctx: AppContext, receiver: Callable[..., Receiver]
) -> None:
    hook = receiver()
    sub = subscribe(api, channel="webhook", url=hook.url)
    old = sub["secret"]
    rotated = api.post(f"/api/warning/subscriptions/{sub['id']}/rotate-secret")
    assert rotated.status_code == 200, rotated.text
    new, until = rotated.json()["secret"], rotated.json()["previous_secret_until"]
    assert new != old and until is not None
    shown = api.get(f"/api/warning/subscriptions/{sub['id']}").json()
    assert "secret" not in shown and shown["previous_secret_until"] == until
    raise_orange(api, ctx, "fc-rot1")
    delivered(ctx, sub["id"])
    ((headers, body),) = wait_for(lambda: hook.requests)
    stamp = headers["x-citybrain-timestamp"]
    first, second = headers["x-citybrain-signature"].split(",")
    assert valid(new, stamp, body, first) and valid(old, stamp, body, second)
    # the grace period ends: the old secret is dropped
    with ctx.uow(SYSTEM, "test.expire") as uow:
        uow.session.execute(
            update(Subscription)
            .where(Subscription.id == sub["id"])
            .values(previous_secret_until=utcnow() - timedelta(seconds=1))
        )
    raise_orange(api, ctx, "fc-rot2")
    delivered(ctx, sub["id"], 2)
    (headers, body) = wait_for(lambda: hook.requests[1] if len(hook.requests) > 1 else None)
    signature = headers["x-citybrain-signature"]
    assert "," not in signature and valid(new, headers["x-citybrain-timestamp"], body, signature)
    publishing.purge(ctx)
    row = stored(ctx, sub["id"])
    assert (row.previous_secret_sealed, row.previous_secret_until) == (None, None)


def test_rotating_twice_keeps_only_the_newest_two(api: TestClient, ctx: AppContext) -> None:
    sub = subscribe(api, channel="webhook", url="http://127.0.0.1:9/hook")
    second = api.post(f"/api/warning/subscriptions/{sub['id']}/rotate-secret").json()["secret"]
    third = api.post(f"/api/warning/subscriptions/{sub['id']}/rotate-secret").json()["secret"]
    row = stored(ctx, sub["id"])
    key = publishing.sealing_key(ctx)
    assert row.secret_sealed is not None and row.previous_secret_sealed is not None
    assert (sealing.unseal(key, row.secret_sealed), sealing.unseal(key, row.previous_secret_sealed)) == (
        third,
        second,
    )


def test_rotation_is_refused_where_it_should_be(
    api: TestClient, ctx: AppContext, seeded: Seeded, other: Callable[[str], TestClient]
) -> None:
    hook = subscribe(api, channel="webhook", url="http://127.0.0.1:9/hook")
    sms = subscribe(api, channel="sms", phone=PHONE)
    before = stored(ctx, hook["id"]).secret_sealed
    refused = api.post(f"/api/warning/subscriptions/{sms['id']}/rotate-secret")
    assert refused.status_code == 422 and refused.headers["content-type"].startswith(
        "application/problem+json"
    )
    assert api.post("/api/warning/subscriptions/999999/rotate-secret").status_code == 404
    assert api.post("/api/warning/subscriptions/0/rotate-secret").status_code == 422
    make_user(ctx, seeded, "auditor", ["warning.warning.read", "warning.subscription.read"])
    make_user(ctx, seeded, "reader", ["warning.warning.read"])
    assert other("auditor").post(f"/api/warning/subscriptions/{hook['id']}/rotate-secret").status_code == 403
    assert other("reader").post(f"/api/warning/subscriptions/{hook['id']}/rotate-secret").status_code == 404
    anonymous = TestClient(api.app, base_url="http://testserver")
    assert anonymous.post(f"/api/warning/subscriptions/{hook['id']}/rotate-secret").status_code in (401, 403)
    assert stored(ctx, hook["id"]).secret_sealed == before


def test_a_secret_that_does_not_open_fails_the_delivery_naming_the_fix(
    api: TestClient, ctx: AppContext, receiver: Callable[..., Receiver]
) -> None:
    hook = receiver()
    sub = subscribe(api, channel="webhook", url=hook.url)
    with ctx.uow(SYSTEM, "test.reseal") as uow:
        uow.session.execute(
            update(Subscription)
            .where(Subscription.id == sub["id"])
            .values(secret_sealed=sealing.seal(b"k" * 32, "sealed under another key"))
        )
    raise_orange(api, ctx, "fc-badkey")
    with ctx.read() as session:
        wait_for(
            lambda: session.scalar(
                select(publishing.Delivery.last_error).where(publishing.Delivery.subscription_id == sub["id"])
            )
        )
    (row,) = publishing.list_deliveries(ctx, SYSTEM, sub["id"]).items
    assert row.last_error is not None and "rotate" in row.last_error and hook.requests == []


def test_sealing() -> None:
    """The key is stable per platform secret, a configured one wins, and a wrong key or a change is refused."""
    key = sealing.derive_key(TEST_SECRET)
    assert key == sealing.derive_key(TEST_SECRET) and len(key) == 32
    assert key != sealing.derive_key(TEST_SECRET + "x")
    configured = base64.urlsafe_b64encode(b"c" * 32).decode()
    assert sealing.derive_key(TEST_SECRET, configured) == b"c" * 32
    value = sealing.seal(key, "s3cret")
    assert sealing.unseal(key, value) == "s3cret" and sealing.seal(key, "s3cret") != value
    for bad in (value[:-2] + ("A" if value[-2] != "A" else "B") + value[-1], "plain", "v1:", "v1:!!"):
        with pytest.raises(sealing.SealError):
            sealing.unseal(key, bad)
    with pytest.raises(sealing.SealError):
        sealing.unseal(sealing.derive_key("another platform secret"), value)


@pytest.mark.parametrize("bad", ["short", base64.urlsafe_b64encode(b"k" * 16).decode(), "%%%%"])
def test_a_bad_configured_key_stops_startup(bad: str) -> None:
    with pytest.raises(ValidationError, match="webhook secret key"):
        WarningSettings(webhook_secret_key=bad)  # type: ignore[arg-type]


def test_the_settings_key_is_the_platform_secret_derived_one(ctx: AppContext) -> None:
    platform = load_settings(secret_key=TEST_SECRET).secret_key.get_secret_value()
    assert publishing.sealing_key(ctx) == sealing.derive_key(platform)
