"""The warning pages: the centre (counts, map markers, filters, live refresh), a warning's page with its
timeline and triggering data, acknowledging and lifting through the forms (CSRF), the rule editor with
its field errors, versions, enable/disable and dry run; permissions; Chinese and English."""

from __future__ import annotations

import html as html_text
import json
import re
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from citybrain.apps.warning import services
from citybrain.core.apps import discover
from citybrain.core.asgi import create_app
from citybrain.core.context import AppContext
from citybrain.core.permissions import SYSTEM
from citybrain.core.settings import Settings
from tests.apps.iot.conftest import user_token
from tests.apps.warning.conftest import CITY_HALL, T0, observe, rule_body, settle, station, warnings_of
from tests.conftest import Seeded

HTML = {"Accept": "text/html"}


def page(client: TestClient, path: str, lang: str = "zh_CN", **headers: str) -> str:
    """A page's HTML (200 expected)."""
    sep = "&" if "?" in path else "?"
    response = client.get(f"{path}{sep}lang={lang}", headers={**HTML, **headers})
    assert response.status_code == 200, response.text[:2000]
    return response.text


def json_block(html: str, element_id: str) -> Any:
    """The JSON a page carries in <script type="application/json" id=...>."""
    found = re.search(rf'<script type="application/json" id="{element_id}">(.*?)</script>', html, re.S)
    assert found is not None, element_id
    return json.loads(found.group(1))


def raise_warning(
    api: TestClient, ctx: AppContext, name: str = "fc-v1", pm25: float = 160.0
) -> dict[str, Any]:
    """A station, the pm25 rule and a reading above its orange threshold: one active warning."""
    sid = station(ctx, name)
    response = api.post("/api/warning/rules", json=rule_body())
    assert response.status_code == 201, response.text
    observe(ctx, sid, T0, pm25=80.0)
    observe(ctx, sid, T0 + timedelta(minutes=5), pm25=pm25)
    settle(ctx)
    (warning,) = warnings_of(api, status="active")
    return warning


def csrf_form(api: TestClient, **fields: str) -> dict[str, str]:
    """Form fields with the browser's CSRF token (as the page's hidden field carries it)."""
    return {"csrf_token": api.cookies.get("cb_csrf") or "", **fields}


APPS = ("identity", "context", "geo", "warning")


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    """The platform with the warning app and the apps it needs (no other app's rules)."""
    return create_app(settings, [spec for spec in discover() if spec.label in APPS])


NO_HEADER = {**HTML, "X-CSRF-Token": ""}  # the token must come from the form field


@pytest.fixture
def reader(ctx: AppContext, seeded: Seeded) -> dict[str, str]:
    """Headers of a city-wide user who may only read warnings."""
    token = user_token(ctx, seeded, "warning_reader", ["warning.warning.read"], None)
    return {"Authorization": f"Bearer {token}"}


def test_centre_counts_map_filters_zh_en(api: TestClient, ctx: AppContext) -> None:
    warning = raise_warning(api, ctx)
    zh = page(api, "/warning/warnings")
    assert "预警中心" in zh and "PM2.5 超标" in zh and "涪城区" in zh
    assert 'hx-trigger="every 5s"' in zh
    counts = dict(re.findall(r'<strong data-count="(\w+)">(\d+)</strong>', zh))
    assert counts == {"red": "0", "orange": "1", "yellow": "0", "blue": "0"}
    assert f'data-warning="{warning["id"]}" data-level="orange"' in zh
    (marker,) = json_block(zh, "warning-markers")
    assert (marker["id"], marker["level"], marker["placed"]) == (warning["id"], "orange", "entity")
    assert (marker["lon"], marker["lat"]) == pytest.approx(CITY_HALL)
    config = json_block(zh, "warning-map-config")
    assert len(config["districts"]["features"]) == 9
    refresh = api.get("/warning/warnings?status=active", headers={**HTML, "HX-Request": "true"})
    assert refresh.status_code == 200 and 'id="warning-map-config"' not in refresh.text
    assert [m["id"] for m in json_block(refresh.text, "warning-markers")] == [warning["id"]]
    en = page(api, "/warning/warnings", "en")
    assert "Warning centre" in en and "PM2.5 high" in en and "Orange warning (level II)" in en
    for query in ("level=red", "district=510704", "rule=other-rule", "status=lifted"):
        filtered = page(api, f"/warning/warnings?{query}")
        assert f'data-warning="{warning["id"]}"' not in filtered, query
        assert json_block(filtered, "warning-markers") == []
    for query in ("level=orange", "district=510703", "rule=pm25-high", "status=all"):
        assert f'data-warning="{warning["id"]}"' in page(api, f"/warning/warnings?{query}"), query
    for bad in ("level=purple", "status=gone", "district=12", "page=0"):
        assert api.get(f"/warning/warnings?{bad}", headers=HTML).status_code == 422, bad
    assert (
        api.get("/warning", headers=HTML, follow_redirects=False).headers["location"] == "/warning/warnings"
    )


def test_district_warning_is_placed_at_the_district(api: TestClient, ctx: AppContext) -> None:
    sid = station(ctx, "fc-v2")
    body = rule_body("pm25-fucheng", scope={"kind": "district", "district": "510703"})
    assert api.post("/api/warning/rules", json=body).status_code == 201
    observe(ctx, sid, T0, pm25=300.0)
    settle(ctx)
    (marker,) = json_block(page(api, "/warning/warnings"), "warning-markers")
    assert (marker["level"], marker["placed"]) == ("red", "district")
    assert 104.4 < marker["lon"] < 105.0 and 31.3 < marker["lat"] < 31.8


def test_warning_page_timeline_chart_ack_and_lift(api: TestClient, ctx: AppContext) -> None:
    warning = raise_warning(api, ctx)
    url = f"/warning/warnings/{warning['id']}"
    zh = page(api, url)
    assert "橙色预警（II级）" in zh and "生效中" in zh and "时间线" in zh
    assert 'data-step="raised"' in zh and 'data-step="upgraded"' in zh
    assert f"/api/warning/warnings/{warning['id']}.cap" in zh
    assert 'id="ack-form"' in zh and 'id="lift-form"' in zh
    (chart,) = json_block(zh, "trigger-charts")
    assert [p[1] for p in chart["points"]][-2:] == [80.0, 160.0]
    assert {(t["level"], t["value"]) for t in chart["thresholds"]} == {
        ("blue", 75.0), ("yellow", 115.0), ("orange", 150.0), ("red", 250.0)
    }  # fmt: skip
    assert "Timeline" in page(api, url, "en")

    refused = api.post(f"{url}/acknowledge", data={"note": "x"}, headers=NO_HEADER)
    assert refused.status_code == 403
    assert warnings_of(api)[0]["acknowledged_at"] is None
    acked = api.post(
        f"{url}/acknowledge",
        data=csrf_form(api, note="已通知环保局"),
        headers=NO_HEADER,
        follow_redirects=False,
    )
    assert acked.status_code == 303 and acked.headers["location"] == f"{url}?ok=acknowledged"
    after = page(api, f"{url}?ok=acknowledged")
    assert "预警已确认" in after and "已通知环保局" in after and 'id="ack-form"' not in after
    again = api.post(f"{url}/acknowledge", data=csrf_form(api), headers=NO_HEADER)
    assert again.status_code == 409 and "已被确认" in again.text
    too_long = api.post(f"{url}/lift", data=csrf_form(api, note="长" * 501), headers=NO_HEADER)
    assert too_long.status_code == 422
    lifted = api.post(
        f"{url}/lift", data=csrf_form(api, note="现场核实"), headers=NO_HEADER, follow_redirects=False
    )
    assert lifted.status_code == 303
    done = page(api, url)
    assert "已解除" in done and 'id="lift-form"' not in done and "现场核实" in done
    assert [s["kind"] for s in api.get(f"/api/warning/warnings/{warning['id']}").json()["timeline"]] == [
        "raised", "upgraded", "acknowledged", "lifted"
    ]  # fmt: skip
    assert api.post(f"{url}/lift", data=csrf_form(api), headers=NO_HEADER).status_code == 409
    assert api.get("/warning/warnings/99999", headers=HTML).status_code == 404
    assert api.get("/warning/warnings/abc", headers=HTML).status_code == 422
    assert api.post("/warning/warnings/99999/lift", data=csrf_form(api), headers=NO_HEADER).status_code == 404


def test_pages_need_permissions(
    client: TestClient, ctx: AppContext, reader: dict[str, str], api: TestClient
) -> None:
    warning = raise_warning(api, ctx)
    client.cookies.clear()
    client.headers.pop("X-CSRF-Token", None)
    for path in ("/warning/warnings", "/warning/rules", f"/warning/warnings/{warning['id']}"):
        anonymous = client.get(path, headers=HTML, follow_redirects=False)
        assert anonymous.status_code == 303, path
        assert anonymous.headers["location"].startswith("/identity/login?next=")
    as_reader = {**HTML, **reader}
    nav = page(client, "/warning/warnings", **reader)
    assert 'href="/warning/warnings"' in nav and 'href="/warning/rules"' not in nav
    detail = page(client, f"/warning/warnings/{warning['id']}", **reader)
    assert "预警" in detail and 'id="ack-form"' not in detail and 'id="lift-form"' not in detail
    assert client.post(f"/warning/warnings/{warning['id']}/acknowledge", headers=as_reader).status_code == 403
    assert client.post(f"/warning/warnings/{warning['id']}/lift", headers=as_reader).status_code == 403
    for path in ("/warning/rules", "/warning/rules/new", "/warning/rules/1"):
        denied = client.get(path, headers=as_reader)
        assert denied.status_code == 403, path
        assert "warning.rule.read" in denied.text or "warning.rule.write" in denied.text
    assert client.post("/warning/rules/1/disable", headers=as_reader).status_code == 403
    assert services.get_warning(ctx, SYSTEM, warning["id"]).acknowledged_at is None
    assert services.get_rule(ctx, SYSTEM, 1).enabled


def rule_form(**fields: str) -> dict[str, str]:
    """The editor's fields of a threshold rule on the stations' pm25."""
    form = {
        "code": "pm25-web",
        "kind": "threshold",
        "name_zh": "网页规则",
        "name_en": "Web rule",
        "entity_type": "AirQualityObserved",
        "category": "Env",
        "scope_kind": "type",
        "attr": "pm25",
        "op": ">",
        "for_seconds": "0",
        "threshold_red": "250",
        "threshold_orange": "150",
        "threshold_yellow": "",
        "threshold_blue": "75",
        "margin": "5",
        "hold_seconds": "0",
    }
    form.update(fields)
    return form


def field_error(html: str, name: str) -> str:
    """The message shown next to a field."""
    found = re.search(rf'<p class="field-error" id="error-{name}" role="alert">([^<]+)</p>', html)
    assert found is not None, f"no error next to {name}: {html[:300]}"
    return html_text.unescape(found.group(1))


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"threshold_blue": "200"}, "levels", "级别顺序错误"),
        ({"threshold_blue": "abc"}, "levels", "请输入数字"),
        ({"threshold_red": "", "threshold_orange": "", "threshold_blue": ""}, "levels", "至少为一个级别"),
        ({"entity_type": "NoSuchThing"}, "entity_type", "未知的实体类型"),
        ({"attr": "rain"}, "attr", "rain"),
        ({"attr": "quality"}, "attr", "quality"),
        ({"code": "Bad Code"}, "code", "编码"),
        ({"scope_kind": "district", "scope_district": ""}, "scope_district", "district"),
        (
            {"scope_kind": "entity", "scope_entity": "urn:ngsi-ld:AirQualityObserved:none"},
            "scope_entity",
            "none",
        ),
        ({"kind": "rate", "period_seconds": ""}, "period_seconds", "period_seconds"),
        ({"kind": "composite", "conditions_json": "[{"}, "conditions_json", "JSON"),
        ({"kind": "composite", "conditions_json": '[{"attr": "pm25", "levels": []}]'}, "conditions_json", ""),
        ({"hold_seconds": "1.5"}, "hold_seconds", "整数"),
        ({"kind": "absence", "op": "<", "threshold_red": "", "threshold_orange": ""}, "op", ">="),
    ],
)
def test_rule_form_errors_next_to_their_field(
    api: TestClient, ctx: AppContext, change: dict[str, str], field: str, message: str
) -> None:
    station(ctx, "fc-v3")
    response = api.post("/warning/rules", data=rule_form(**change), headers=HTML)
    assert response.status_code in (409, 422), response.text[:500]
    assert message in field_error(response.text, field)
    assert "规则未保存" in response.text
    assert api.get("/api/warning/rules").json() == []
    assert 'value="网页规则"' in response.text  # what was typed stays


def test_rule_kinds_the_editor_does_not_handle_are_refused(api: TestClient, ctx: AppContext) -> None:
    station(ctx, "fc-v6")
    refused = api.post("/warning/rules", data=rule_form(kind="forecast"), headers=HTML)
    assert refused.status_code == 400 and "接口" in refused.text
    assert api.get("/api/warning/rules").json() == []


def test_rule_editor_create_edit_versions_enable_dry_run(api: TestClient, ctx: AppContext) -> None:
    sid = station(ctx, "fc-v4")
    for minute, value in enumerate((80.0, 20.0, 90.0, 300.0)):
        observe(ctx, sid, T0 + timedelta(minutes=minute), pm25=value)
    assert "新建规则" in page(api, "/warning/rules/new")
    created = api.post(
        "/warning/rules", data=csrf_form(api, **rule_form()), headers=NO_HEADER, follow_redirects=False
    )
    assert created.status_code == 303, created.text[:1000]
    location = created.headers["location"]
    rule_id = int(location.split("/")[-1].split("?")[0])
    zh = page(api, location)
    assert "规则已创建" in zh and 'data-version="1"' in zh and 'value="250"' in zh
    assert "pm25-web" in page(api, "/warning/rules") and "Web rule" in page(api, "/warning/rules", "en")
    duplicate = api.post("/warning/rules", data=rule_form(), headers=HTML)
    assert duplicate.status_code == 409 and "pm25-web" in field_error(duplicate.text, "code")

    edited = api.post(
        f"/warning/rules/{rule_id}", data=rule_form(threshold_yellow="115", code="ignored"), headers=HTML,
        follow_redirects=False,
    )  # fmt: skip
    assert edited.status_code == 303
    rule = api.get(f"/api/warning/rules/{rule_id}").json()
    assert rule["code"] == "pm25-web" and rule["version"] == 2
    assert [x["level"] for x in rule["definition"]["conditions"][0]["levels"]] == [
        "blue",
        "yellow",
        "orange",
        "red",
    ]
    assert 'data-version="2"' in page(api, f"/warning/rules/{rule_id}")
    bad_edit = api.post(f"/warning/rules/{rule_id}", data=rule_form(threshold_red="1"), headers=HTML)
    assert bad_edit.status_code == 422 and "级别顺序错误" in field_error(bad_edit.text, "levels")
    assert api.get(f"/api/warning/rules/{rule_id}").json()["version"] == 2

    off = api.post(f"/warning/rules/{rule_id}/disable", headers=HTML, follow_redirects=False)
    assert off.status_code == 303 and not api.get(f"/api/warning/rules/{rule_id}").json()["enabled"]
    assert "规则已停用" in page(api, off.headers["location"])
    on = api.post(f"/warning/rules/{rule_id}/enable", headers=HTML, follow_redirects=False)
    assert on.status_code == 303 and api.get(f"/api/warning/rules/{rule_id}").json()["enabled"]

    fragment = api.post(f"/warning/rules/{rule_id}/dry-run", headers={**HTML, "HX-Request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert "在最近 7 天里会发布 2 次" in fragment.text
    assert fragment.text.count("data-fired=") == 2
    whole = api.post(f"/warning/rules/{rule_id}/dry-run", headers=HTML)
    assert whole.status_code == 200 and "<html" in whole.text and 'id="dry-run-result"' in whole.text
    english = api.post(f"/warning/rules/{rule_id}/dry-run?lang=en", headers={**HTML, "HX-Request": "true"})
    assert "This rule would have fired 2 times in the last 7 days." in english.text
    assert api.get("/warning/rules/99999", headers=HTML).status_code == 404
    assert api.post("/warning/rules/99999/dry-run", headers=HTML).status_code == 404


def test_composite_rule_through_the_json_editor(api: TestClient, ctx: AppContext) -> None:
    station(ctx, "fc-v5")
    conditions = [
        {"attr": "pm25", "op": ">", "levels": [{"level": "yellow", "threshold": 115}]},
        {"attr": "no2", "op": ">", "levels": [{"level": "yellow", "threshold": 200}]},
    ]
    form = rule_form(code="pm25-no2", kind="composite", combine="any", conditions_json=json.dumps(conditions))
    created = api.post("/warning/rules", data=form, headers=HTML, follow_redirects=False)
    assert created.status_code == 303, created.text[:1000]
    rule = api.get("/api/warning/rules").json()[0]
    assert rule["kind"] == "composite" and rule["definition"]["combine"] == "any"
    assert [c["attr"] for c in rule["definition"]["conditions"]] == ["pm25", "no2"]
    assert "&#34;no2&#34;" in page(api, created.headers["location"])


def test_the_triggering_history_is_read_as_the_reader(
    client: TestClient, ctx: AppContext, seeded: Seeded, api: TestClient
) -> None:
    """A reader without the context app's read permission sees "no access", never the entity's history."""
    warning = raise_warning(api, ctx)
    blind = {"Authorization": f"Bearer {user_token(ctx, seeded, 'blind', ['warning.warning.read'], None)}"}
    sighted_token = user_token(ctx, seeded, "sighted", ["warning.warning.read", "context.entity.read"], None)
    sighted = {"Authorization": f"Bearer {sighted_token}"}
    client.cookies.clear()
    client.headers.pop("X-CSRF-Token", None)
    url = f"/warning/warnings/{warning['id']}"
    hidden = page(client, url, **blind)
    (chart,) = json_block(hidden, "trigger-charts")
    assert (chart["access"], chart["points"]) == (False, [])
    assert "data-no-access" in hidden and "无权" in hidden
    assert "No access" in page(client, url, "en", **blind)
    shown = page(client, url, **sighted)
    (chart,) = json_block(shown, "trigger-charts")
    assert chart["access"] is True and [p[1] for p in chart["points"]][-2:] == [80.0, 160.0]
    assert "data-no-access" not in shown
    api_url = f"/api/warning/warnings/{warning['id']}/trigger"
    (series,) = client.get(api_url, headers=blind).json()["series"]
    assert (series["access"], series["points"], series["attr"]) == (False, [], "pm25")
    (series,) = client.get(api_url, headers=sighted).json()["series"]
    assert series["access"] is True and [v for _at, v in series["points"]][-2:] == [80.0, 160.0]
    assert client.get("/api/warning/warnings/999999/trigger", headers=sighted).status_code == 404
    assert client.get(api_url).status_code == 401
