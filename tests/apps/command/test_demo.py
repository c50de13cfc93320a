"""The demo runner: the 12345 ticket stream through intake, and the demo's warnings becoming events."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from citybrain.apps.command import demo, services
from citybrain.apps.warning.events import WarningRaised
from citybrain.core.context import AppContext
from citybrain.sdk import utcnow
from tests.apps.command.conftest import Org


def test_the_stream_is_deterministic_and_goes_through_intake(ctx: AppContext, org: Org) -> None:
    first, again = demo.TicketStream(7), demo.TicketStream(7)
    tickets = [first.next() for _ in range(6)]
    assert tickets == [again.next() for _ in range(6)]
    assert tickets != [demo.TicketStream(8).next() for _ in range(6)]
    assert all(t.caller_phone and len(t.caller_phone) == 11 and t.location for t in tickets)
    assert all(20 <= first.pause() <= 60 for _ in range(20))
    stream = demo.TicketStream(7)
    taken = [demo.take_next(ctx, stream) for _ in range(6)]
    assert [t.description for t in taken] == [t.content for t in tickets]
    assert all(t.source == "hotline" and t.district is not None for t in taken)  # located by the geo app
    assert any(t.category is not None for t in taken)  # classified
    # a reader who does not handle the ticket sees the caller's phone masked
    read = services.get_event(ctx, org.dispatcher, taken[0].id)
    assert read.caller_phone is not None and "****" in read.caller_phone


def test_the_pollution_warning_on_the_bus_becomes_an_ecology_event(
    client: TestClient, ctx: AppContext, org: Org
) -> None:
    services.use_demo_warnings(ctx, demo.WARNING_CATEGORIES)
    raised = WarningRaised(
        warning_id=901, rule_code="heavy-pollution", level="orange",
        entity_id="urn:ngsi-ld:AirQualityForecast:mianyang", district="510703", scope_key="k901",
        at=utcnow(), values={"heavyPollutionLevel": 3},
    )  # fmt: skip
    client.portal.call(ctx.bus.publish, raised)
    deadline = time.monotonic() + 10
    found = services.list_events(ctx, org.leader, workflow="hotline")
    while not found.total and time.monotonic() < deadline:
        time.sleep(0.05)
        found = services.list_events(ctx, org.leader, workflow="hotline")
    assert found.total == 1
    event = found.items[0]
    assert (event.source, event.category, event.state, event.department_id) == (
        "warning",
        "hotline.pollution",
        "accepted",
        org.sthj,
    )
    # another rule stays a warning; the platform's own setting comes before the demo's mapping
    assert services.warning_category(ctx, "health.noise-monitor") is None
    assert services.warning_category(ctx, "heavy-pollution") == ("hotline.pollution", "create")
