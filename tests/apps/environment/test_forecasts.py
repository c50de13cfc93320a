"""Heavy-pollution warnings from the daily-AQI forecast: bulletin → graded level → warning, and the page."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from citybrain.apps.context import services as context
from citybrain.apps.context.jsonld import Context
from citybrain.apps.environment import forecasts
from citybrain.apps.environment import heavy_pollution as hp
from citybrain.apps.environment.settings import EnvironmentSettings
from citybrain.apps.iot import city, demo
from citybrain.apps.iot import simulator as sim
from citybrain.apps.warning import services as warning
from citybrain.core.asgi import create_app
from citybrain.core.context import AppContext
from citybrain.core.permissions import SYSTEM
from citybrain.core.settings import Settings
from tests.apps.warning.conftest import settle
from tests.conftest import Seeded, login

CITY = "urn:ngsi-ld:AirQualityForecast:510700"
HTML = {"Accept": "text/html"}
T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
# Daily AQI forecasts (day 1 first) and the §8.2 level each meets in the national three-level scheme.
ORANGE = [214, 258, 318, 246, 176]  # 4 days above 200, one above 300
RED = [236, 312, 347, 326, 258]  # 5 days above 200, 3 in a row above 300
CLEAN = [96, 78, 64, 58, 61]


def issue(
    ctx: AppContext, daily: Sequence[Any], issued: datetime, entity_id: str = CITY, **extra: Any
) -> None:
    """Publish a bulletin of the city's forecast through the context services."""
    body: dict[str, Any] = {
        "id": entity_id,
        "type": "AirQualityForecast",
        "name": {"type": "Property", "value": "绵阳市空气质量预报"},
        "areaServed": {"type": "Property", "value": "绵阳市"},
        "areaCode": {"type": "Property", "value": entity_id.rsplit(":", 1)[-1]},
        "source": {"type": "Property", "value": "绵阳市生态环境监测中心站"},
        "issuedAt": {"type": "Property", "value": issued.isoformat()},
        "validFrom": {"type": "Property", "value": "2026-12-02T00:00:00+08:00"},
        "dailyAQI": {"type": "Property", "value": list(daily)},
    }
    body.update({k: {"type": "Property", "value": v} for k, v in extra.items()})
    result = context.upsert_entities(ctx, SYSTEM, "", [body])
    assert result.success == [entity_id], result.errors
    settle(ctx)


def value(ctx: AppContext, term: str, entity_id: str = CITY) -> Any:
    """An attribute of the forecast entity: a Property's value or a LanguageProperty's map."""
    instance = forecasts._instance(context.get_entity(ctx, SYSTEM, "", entity_id), term)
    if instance is None:
        return None
    return instance.get("languageMap", instance.get("value"))


def heavy(ctx: AppContext, status: str | None = None) -> list[tuple[str, str, str]]:
    """The heavy-pollution warnings as (entity, level, status), read through the warning app's services."""
    page = warning.list_warnings(ctx, SYSTEM, rule="heavy-pollution", status=status)
    return [(w.entity_id, w.level, w.status) for w in page.items]


def test_the_rule_is_declared_and_stored(admin_client: TestClient, ctx: AppContext) -> None:
    rules = {r.code: r for r in warning.list_rules(ctx, SYSTEM)}
    rule = rules["heavy-pollution"]
    assert (rule.origin, rule.name_zh, rule.enabled) == ("environment", "重污染天气预警", True)
    levels = rule.definition["conditions"][0]["levels"]
    assert [(item["level"], item["threshold"]) for item in levels] == [
        ("blue", 1),
        ("yellow", 2),
        ("orange", 3),
        ("red", 4),
    ]
    assert rule.definition["hysteresis"]["hold_seconds"] == 0


def test_bulletins_raise_orange_then_red_and_clean_ones_lift(
    admin_client: TestClient, ctx: AppContext
) -> None:
    issue(ctx, CLEAN, T0)
    assert value(ctx, "heavyPollutionLevel") == 0
    assert value(ctx, "heavyPollutionReason")["zh-CN"] == "预报未达到任何重污染天气预警级别。"
    assert heavy(ctx) == []

    issue(ctx, ORANGE, T0 + timedelta(minutes=5))
    assert value(ctx, "heavyPollutionLevel") == 3
    reason = value(ctx, "heavyPollutionReason")
    assert (
        reason["zh-CN"] == "预报第 1 至第 4 天：日 AQI 超过 200 的有 4 天，超过 300 的有 1 天，最高为 318。"
    )
    assert reason["en"] == (
        "Forecast days 1 to 4: daily AQI above 200 on 4 of them and above 300 on 1; the highest is 318."
    )
    assert heavy(ctx) == [(CITY, "orange", "active")]
    (raised,) = warning.list_warnings(ctx, SYSTEM, rule="heavy-pollution").items
    assert raised.title == "重污染天气预警" and raised.district is None  # city-wide

    issue(ctx, RED, T0 + timedelta(minutes=10))
    assert value(ctx, "heavyPollutionLevel") == 4
    assert heavy(ctx) == [(CITY, "red", "active")]

    # one clean bulletin is not enough: the level holds (2 updates by default), the warning stays red
    issue(ctx, CLEAN, T0 + timedelta(minutes=15))
    assert value(ctx, "heavyPollutionLevel") == 4
    assert value(ctx, "heavyPollutionState")["lowerUpdates"] == 1
    assert heavy(ctx) == [(CITY, "red", "active")]

    issue(ctx, CLEAN, T0 + timedelta(minutes=20))
    assert value(ctx, "heavyPollutionLevel") == 0
    assert heavy(ctx) == [(CITY, "red", "lifted")]
    assert heavy(ctx, status="active") == []
    # the same warning went through its life-cycle: raised orange, upgraded to red, lifted by the rule
    detail = warning.get_warning(ctx, SYSTEM, raised.id)
    assert [(s.kind, s.from_level, s.to_level) for s in detail.timeline] == [
        ("raised", None, "orange"),
        ("upgraded", "orange", "red"),
        ("lifted", "red", None),
    ]


def test_the_warning_belongs_to_the_ecology_bureau_and_is_public(
    client: TestClient, ctx: AppContext, seeded: Seeded
) -> None:
    from citybrain.apps.identity import schemas, services

    (rule,) = [r for r in warning.list_rules(ctx, SYSTEM) if r.code == "heavy-pollution"]
    assert (rule.definition["department"], rule.definition["public"]) == ("sthj", True)
    bureau = services.create_department(
        ctx, SYSTEM, schemas.DepartmentCreate(code="sthj", name_zh="市生态环境局", parent_id=seeded.root)
    )
    issue(ctx, ORANGE, T0)
    (raised,) = warning.list_warnings(ctx, SYSTEM, rule="heavy-pollution").items
    assert raised.department_id == bureau.id  # the bureau's, not the city's nor a district's
    # anyone may read it, without signing in: the public feed and its CAP message
    client.cookies.clear()
    feed = client.get("/api/warning/public/feed.atom")
    assert feed.status_code == 200 and f"/api/warning/public/{raised.id}.cap" in feed.text
    assert "重污染天气预警" in feed.text
    cap = client.get(f"/api/warning/public/{raised.id}.cap")
    assert cap.status_code == 200 and cap.headers["content-type"].startswith("application/cap+xml")
    assert client.get(f"/api/warning/public/{raised.id + 1}.cap").status_code == 404


def test_a_bulletin_is_graded_once(admin_client: TestClient, ctx: AppContext) -> None:
    issue(ctx, ORANGE, T0)
    state = value(ctx, "heavyPollutionState")
    assert state == {"bulletin": T0.isoformat(), "lowerUpdates": 0, "lowerLevel": 0, "forecastLevel": 3}
    # the same bulletin again (a repeated delivery) and a direct call change nothing
    issue(ctx, ORANGE, T0)
    assert forecasts.judge(ctx, "", CITY) is None
    assert value(ctx, "heavyPollutionState") == state
    # a clean bulletin issued twice counts once towards the hold
    issue(ctx, CLEAN, T0 + timedelta(minutes=5))
    issue(ctx, CLEAN, T0 + timedelta(minutes=5))
    assert value(ctx, "heavyPollutionState")["lowerUpdates"] == 1
    assert value(ctx, "heavyPollutionLevel") == 3
    assert heavy(ctx) == [(CITY, "orange", "active")]


def test_the_policy_comes_from_the_settings(
    admin_client: TestClient, ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = EnvironmentSettings(heavy_pollution_scheme="local4", heavy_pollution_hold_updates=1)
    monkeypatch.setitem(ctx.app_settings, "environment", local)
    issue(ctx, [120, 230, 150, 90, 80], T0)  # one heavy day: blue in a four-level scheme
    assert value(ctx, "heavyPollutionLevel") == 1
    assert heavy(ctx) == [(CITY, "blue", "active")]
    # with a hold of one update, the next clean bulletin lifts at once
    issue(ctx, CLEAN, T0 + timedelta(minutes=5))
    assert value(ctx, "heavyPollutionLevel") == 0
    assert heavy(ctx) == [(CITY, "blue", "lifted")]


def test_a_bulletin_that_is_no_forecast_changes_nothing(
    admin_client: TestClient, ctx: AppContext, caplog: pytest.LogCaptureFixture
) -> None:
    issue(ctx, ORANGE, T0)
    with caplog.at_level(logging.WARNING, logger="citybrain.apps.environment.forecasts"):
        issue(ctx, [214, 258, 640, 246, 176], T0 + timedelta(minutes=5))  # above the AQI scale
        issue(ctx, "many", T0 + timedelta(minutes=10))
    assert "cannot be graded" in caplog.text
    assert value(ctx, "heavyPollutionLevel") == 3
    assert value(ctx, "heavyPollutionState")["bulletin"] == T0.isoformat()
    assert heavy(ctx) == [(CITY, "orange", "active")]


def test_other_entities_and_own_writes_are_not_graded(admin_client: TestClient, ctx: AppContext) -> None:
    # an entity of another type with a dailyAQI is no forecast
    body = {"id": "urn:ngsi-ld:Thing:x", "type": "Thing", "dailyAQI": {"type": "Property", "value": RED}}
    assert context.upsert_entities(ctx, SYSTEM, "", [body]).success == ["urn:ngsi-ld:Thing:x"]
    settle(ctx)
    assert (
        forecasts._instance(context.get_entity(ctx, SYSTEM, "", "urn:ngsi-ld:Thing:x"), "heavyPollutionLevel")
        is None
    )
    assert forecasts.judge(ctx, "", "urn:ngsi-ld:Thing:x") is None
    assert forecasts.judge(ctx, "", "urn:ngsi-ld:AirQualityForecast:nowhere") is None
    # a new bulletin at the same level writes the state only: the level is written when it changes
    issue(ctx, RED, T0)
    issue(ctx, RED, T0 + timedelta(minutes=5))
    history = context.attribute_history(ctx, SYSTEM, "", CITY, Context().expand("heavyPollutionLevel"))
    assert [number for _, number in history] == [4.0]
    assert value(ctx, "heavyPollutionState")["bulletin"] == (T0 + timedelta(minutes=5)).isoformat()


def test_the_demo_bulletins_escalate_and_lift(admin_client: TestClient, ctx: AppContext) -> None:
    start = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    timeline = sim.default_timeline(start, city.fixed_devices())
    levels = []
    # the episode starts 15 minutes after the demo start; bulletins every 5 minutes
    for minutes in (0, 30, 45, 65, 320, 325, 380, 385):
        demo.publish_bulletin(ctx, sim.bulletin(timeline, (start + timedelta(minutes=minutes)).timestamp()))
        settle(ctx)
        levels.append((minutes, value(ctx, "heavyPollutionLevel"), [w[1:] for w in heavy(ctx)]))
    assert levels == [
        (0, 0, []),
        (30, 2, [("yellow", "active")]),
        (45, 3, [("orange", "active")]),
        (65, 4, [("red", "active")]),
        (320, 4, [("red", "active")]),  # easing: the first lower bulletin holds the level
        (325, 2, [("yellow", "active")]),  # the second lowers it to the easing forecast's yellow
        (380, 2, [("yellow", "active")]),
        (385, 0, [("yellow", "lifted")]),  # clean twice: lifted
    ]


def page(client: TestClient, lang: str) -> str:
    """The air-quality overview in a language."""
    response = client.get(f"/environment?lang={lang}", headers=HTML)
    assert response.status_code == 200, response.text[:2000]
    return response.text


def test_the_page_shows_the_warning_and_the_forecast(admin_client: TestClient, ctx: AppContext) -> None:
    quiet = page(admin_client, "zh_CN")
    assert "data-forecast=" not in quiet and "heavy-warning" not in quiet
    issue(ctx, ORANGE, T0)
    html = page(admin_client, "zh_CN")
    card = html.split('class="card heavy-warning"', 1)[1].split("</section>", 1)[0]
    assert 'data-warning-level="orange"' in card and "#f57c00" in card
    assert "橙色预警（II级）" in card and "重污染天气预警" in card and "绵阳市" in card
    assert "预报第 1 至第 4 天：日 AQI 超过 200 的有 4 天，超过 300 的有 1 天，最高为 318。" in card
    assert 'href="/warning/warnings"' in card
    forecast = html.split(f'data-forecast="{CITY}"', 1)[1].split("</ol>", 1)[0]
    days = re.findall(r'data-day="(\d)" data-aqi="(\d+)"', forecast)
    assert days == [("1", "214"), ("2", "258"), ("3", "318"), ("4", "246"), ("5", "176")]
    # bars coloured by the AQI level of each day (HJ 633 表1): 重度 purple, 严重 maroon, 中度 red
    assert "#99004C" in forecast and "#7E0023" in forecast and "#FF0000" in forecast
    assert "12-02" in forecast and "12-06" in forecast  # days counted from validFrom, China time
    assert "绵阳市生态环境监测中心站" in html
    english = page(admin_client, "en")
    assert "Orange warning (level II)" in english and "Heavy air pollution warning" in english
    assert "Forecast days 1 to 4: daily AQI above 200 on 4 of them and above 300 on 1" in english
    assert "Daily AQI forecast" in english and "Open the warning centre" in english
    # lifted: the warning leaves the page, the forecast stays with no level
    issue(ctx, CLEAN, T0 + timedelta(minutes=5))
    issue(ctx, CLEAN, T0 + timedelta(minutes=10))
    after = page(admin_client, "zh_CN")
    assert "heavy-warning" not in after and 'data-level="none"' in after and "无预警" in after


def test_a_reader_of_air_quality_sees_the_warning(
    client: TestClient, ctx: AppContext, seeded: Seeded
) -> None:
    from citybrain.apps.identity import schemas, services

    role = services.create_role(
        ctx,
        SYSTEM,
        schemas.RoleCreate(code="air_reader", name_zh="空气质量查看", permissions=["environment.air.read"]),
    )
    user = services.create_user(
        ctx,
        SYSTEM,
        schemas.UserCreate(
            username="reader",
            display_name="查看员",
            department_id=seeded.district,
            password="reader-password-1",
        ),
    )
    services.assign_role(ctx, SYSTEM, user.id, schemas.AssignmentCreate(role_id=role.id))
    login(client, "reader", "reader-password-1")
    issue(ctx, RED, T0)
    html = page(client, "zh_CN")
    assert 'data-warning-level="red"' in html and "红色预警（I级）" in html
    # the warning centre itself stays closed to whoever lacks its permission
    assert client.get("/api/warning/warnings").status_code == 403


def test_bulletins_stored_while_down_are_graded_at_start(settings: Settings) -> None:
    app = create_app(settings)
    ctx: AppContext = app.state.ctx
    body = sim.Bulletin(T0.timestamp(), T0, tuple(ORANGE), "orange").entity()
    assert context.upsert_entities(ctx, SYSTEM, "", [body]).success == [CITY]
    (judged,) = forecasts.judge_all(ctx)  # what the app's start does before it subscribes
    assert (judged.entity_id, judged.decision.action, judged.decision.state.level) == (
        CITY,
        "issue",
        hp.Level.ORANGE,
    )
    assert forecasts.judge_all(ctx) == []  # graded once
    with TestClient(app, base_url="http://testserver"):
        settle(ctx)
        assert value(ctx, "heavyPollutionLevel") == 3
        assert heavy(ctx) == [(CITY, "orange", "active")]
