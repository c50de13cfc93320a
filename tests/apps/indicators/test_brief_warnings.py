"""The daily brief's list of the day's warnings, kept from the warning app's bus events and drawn by the
server: a saved or printed copy of the page holds it. Events that come twice or out of order change
nothing; a reader without the warning permission is told so; the whole platform lists real warnings."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from citybrain.apps.indicators import brief, services
from citybrain.apps.indicators.events import WarningChangedSeen, WarningLiftedSeen, WarningRaisedSeen
from citybrain.apps.indicators.models import SeenWarning
from citybrain.core.asgi import create_app
from citybrain.core.context import AppContext
from citybrain.core.permissions import SYSTEM
from citybrain.core.settings import Settings
from citybrain.sdk import ALL, ANONYMOUS, Actor, Forbidden, Unauthorized, utcnow
from tests.apps.warning.conftest import FULESHAN, observe, rule_body, settle, station
from tests.conftest import Seeded

ZONE = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 11, 20)
# Reads the vital signs, not the warnings.
READER = Actor(kind="user", id=99, username="reader", grants={"indicators.indicator.read": ALL})


def at(hours: float, days: int = 0) -> datetime:
    """A moment of DAY (or a day around it) in China time, as UTC."""
    return (datetime.combine(DAY, time(0), ZONE) + timedelta(days=days, hours=hours)).astimezone(UTC)


def day_window() -> tuple[datetime, datetime]:
    """DAY's [start, end) in UTC."""
    return at(0), at(0, 1)


def test_events_are_kept_once_and_in_order(ctx: AppContext) -> None:
    """A lifted event before its raised one, a repeated one, an older change: the row ends right."""
    lifted = WarningLiftedSeen(
        warning_id=7, district="510703", at=at(12), rule_code="r", previous_level="orange"
    )
    raised = WarningRaisedSeen(
        warning_id=7,
        level="yellow",
        district="510703",
        at=at(10),
        rule_code="r",
        entity_id="urn:x",
        title="水位超警",
    )
    upgraded = WarningChangedSeen(
        warning_id=7, change="upgraded", level="orange", district="510703", at=at(11)
    )
    for event in (lifted, upgraded, raised, raised, upgraded):
        services.seen_warning(ctx, event)
    with ctx.read() as session:
        row = session.get(SeenWarning, 7)
        assert row is not None
        assert (row.level, row.title, row.entity_id, row.rule_code) == ("orange", "水位超警", "urn:x", "r")
        assert row.raised_at == at(10) and row.lifted_at == at(12)
    # a warning without a title shows its rule's code
    services.seen_warning(ctx, WarningRaisedSeen(warning_id=8, level="red", at=at(13), rule_code="pm25-high"))
    # of other days: lifted the day before, raised the day after; in force since the day before: listed
    services.seen_warning(ctx, WarningRaisedSeen(warning_id=9, level="blue", at=at(-5)))
    services.seen_warning(ctx, WarningLiftedSeen(warning_id=9, at=at(-1), previous_level="blue"))
    services.seen_warning(ctx, WarningRaisedSeen(warning_id=10, level="blue", at=at(1, 1)))
    services.seen_warning(ctx, WarningRaisedSeen(warning_id=11, level="yellow", at=at(-30)))
    found = services.day_warnings(ctx, SYSTEM, *day_window())
    assert [(w.warning_id, w.title) for w in found] == [(11, ""), (7, "水位超警"), (8, "pm25-high")]
    assert found[1].lifted_at == at(12) and found[2].lifted_at is None
    with pytest.raises(Forbidden):
        services.day_warnings(ctx, READER, *day_window())
    with pytest.raises(Unauthorized):
        services.day_warnings(ctx, ANONYMOUS, *day_window())


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    """The whole platform: the brief with the warning app beside it."""
    return create_app(settings)


def test_the_brief_lists_the_days_warnings(ctx: AppContext, seeded: Seeded, admin_client: TestClient) -> None:
    """Real warnings through the bus: level, title, district and place, raised and lifted (or 生效中)."""
    from citybrain.apps.warning import services as warning
    from citybrain.apps.warning.schemas import RuleSpec

    day = (utcnow().astimezone(ZONE) - timedelta(days=1)).date()
    ten = datetime.combine(day, time(10), ZONE).astimezone(UTC)
    warning.create_rule(ctx, SYSTEM, RuleSpec.model_validate(rule_body()))
    lifted, held, later = station(ctx, "brief-a"), station(ctx, "brief-b", FULESHAN), station(ctx, "brief-c")
    observe(ctx, lifted, ten, pm25=168.0)  # 橙 raised at 10:00 ...
    observe(ctx, lifted, ten + timedelta(hours=2), pm25=20.0)  # ... lifted at 12:00
    observe(ctx, held, ten + timedelta(hours=3, minutes=15), pm25=300.0)  # 红 at 13:15, still in force
    observe(ctx, later, utcnow(), pm25=130.0)  # 黄 today: not of the day
    settle(ctx)

    html = admin_client.get(f"/indicators/brief?date={day.isoformat()}").text
    assert 'data-state="ready" data-count="2"' in html
    rows = re.findall(r'<tr data-warning="\d+" data-level="(\w+)">(.*?)</tr>', html, re.S)
    assert [level for level, _ in rows] == ["orange", "red"]
    cells = [
        [re.sub(r"<[^>]+>", " ", c).split() for c in re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)]
        for _, r in rows
    ]
    assert cells[0][0] == ["橙色"] and cells[0][2][0] == "涪城区" and lifted in cells[0][2]
    assert (
        " ".join(cells[0][3]) == f"{day.isoformat()} 10:00"
        and " ".join(cells[0][4]) == f"{day.isoformat()} 12:00"
    )
    assert cells[1][2][0] == "游仙区" and " ".join(cells[1][3]) == f"{day.isoformat()} 13:15"
    assert cells[1][4] == ["生效中"]
    assert "AirQualityObserved:brief-c" not in html
    # the title warning.raised carries: the rule's Chinese name
    assert " ".join(cells[0][1]) == "PM2.5 超标"
    # a reader of the vital signs without the warning permission is told the list is not for them
    assert brief.daily_brief(ctx, READER, day).listing == "forbidden"
    # a day without warnings says so
    html = admin_client.get(f"/indicators/brief?date={(day - timedelta(days=5)).isoformat()}").text
    assert "当日无发布或生效的预警。" in html
