"""The screen's push stream over a real HTTP connection: hello, then each change as it happens."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx

from citybrain.apps.indicators import services
from citybrain.apps.indicators.events import EventChangedSeen, WarningRaisedSeen
from citybrain.core.context import AppContext
from citybrain.core.permissions import SYSTEM
from tests.apps.indicators.declaring import indicators as declared
from tests.apps.indicators.live.conftest import __all__ as _fixtures  # noqa: F401
from tests.browser.conftest import LiveServer
from tests.conftest import Seeded

PUSH_SECONDS = 2.0


def messages(lines: Iterator[str]) -> Iterator[tuple[str, dict]]:  # type: ignore[type-arg]
    """The (event, data) pairs of a server-sent event stream."""
    event, data = "message", ""
    for line in lines:
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif line == "" and data:
            yield event, json.loads(data)
            event, data = "message", ""


def signed_in(server: LiveServer, seeded: Seeded) -> httpx.Client:
    """An HTTP client signed in as the admin."""
    client = httpx.Client(base_url=server.url, timeout=10)
    client.get("/")
    answer = client.post(
        "/api/identity/session",
        json={"username": seeded.admin_username, "password": seeded.admin_password},
        headers={"X-CSRF-Token": client.cookies.get("cb_csrf") or ""},
    )
    assert answer.status_code == 200, answer.text
    return client


def test_changes_are_pushed_within_two_seconds(
    live_server: LiveServer, seeded: Seeded, ctx: AppContext
) -> None:
    """A round that changes values, a warning and an event each reach an open stream within 2 s."""
    client = signed_in(live_server, seeded)
    try:
        check_stream(client, ctx)
    finally:
        client.close()


def check_stream(client: httpx.Client, ctx: AppContext) -> None:
    """Open the stream of a district, change things, read what comes."""
    with client.stream("GET", "/api/indicators/stream?district=510703") as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        received = messages(stream.iter_lines())
        event, hello = next(received)
        assert event == "hello" and hello["district"] == "510703" and hello["version"]

        began = time.monotonic()
        declared.VALUES.update({"510700": 42.0})
        services.compute_round(ctx, force=True)
        event, data = next(received)
        assert event == "indicators" and "ideclare.level" in data["codes"]
        assert time.monotonic() - began < PUSH_SECONDS

        at = datetime.now(UTC)
        began = time.monotonic()
        with ctx.uow(SYSTEM, "test.raise") as uow:  # as the warning app announces a warning
            uow.emit(WarningRaisedSeen(warning_id=7, level="orange", district="510704", at=at))
        event, data = next(received)
        assert (event, data["id"], data["change"], data["level"]) == ("warning", 7, "raised", "orange")
        assert time.monotonic() - began < PUSH_SECONDS

        with ctx.uow(SYSTEM, "test.event") as uow:  # as the command app announces an event
            uow.emit(EventChangedSeen(case_id=3, number="E1", action="intake", state="accepted", at=at))
        event, data = next(received)
        assert (event, data["id"], data["state"]) == ("event", 3, "accepted")
