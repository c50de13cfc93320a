"""The iot pages: device list (live), registration with the key shown once, device page, CSV import,
models, ingest rates and rejected messages; in Chinese and English; forms that fail explain why."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

import orjson
import pytest
from fastapi.testclient import TestClient

from citybrain.apps.iot import services
from citybrain.apps.iot.schemas import Message
from citybrain.core.context import AppContext
from tests.apps.iot.conftest import Provisioned, provision

HTML = {"Accept": "text/html"}


def page(client: TestClient, path: str, lang: str = "zh_CN", **headers: str) -> str:
    sep = "&" if "?" in path else "?"
    response = client.get(f"{path}{sep}lang={lang}", headers={**HTML, **headers})
    assert response.status_code == 200, response.text[:2000]
    return response.text


def feed(ctx: AppContext, device: Provisioned) -> None:
    """A few good readings and a few rejected ones."""
    body = {
        "readings": [
            {"values": {"pm25": 30 + i, "no2": 40 + i}, "ts": f"2026-11-24T0{i}:00:00+08:00"}
            for i in range(3)
        ]
    }
    services.ingest_messages(
        ctx,
        [
            Message("", device.device_id, orjson.dumps({**body, "k": device.key}), "mqtt"),
            Message("", device.device_id, b"{broken", "mqtt"),
        ],
    )


def test_device_list_zh_and_en(api: TestClient, ctx: AppContext, device: Provisioned) -> None:
    feed(ctx, device)
    zh = page(api, "/iot/devices")
    assert "设备" in zh and device.device_id in zh and "在线" in zh
    assert 'hx-trigger="every 10s"' in zh
    assert "涪城区" in zh
    en = page(api, "/iot/devices", "en")
    assert "Online" in en and "Register a device" in en
    filtered = page(api, "/iot/devices?status=offline&model=aq-station&district=510704&q=x")
    assert device.device_id not in filtered
    assert api.get("/iot", headers=HTML, follow_redirects=False).headers["location"] == "/iot/devices"


def test_register_shows_the_key_once(api: TestClient, ctx: AppContext, device: Provisioned) -> None:
    form = page(api, "/iot/devices/new")
    assert "空气质量监测站" in form and "涪城区" in form
    response = api.post(
        "/iot/devices",
        data={
            "device_id": "aq-web-1",
            "name": "网页登记",
            "model_code": "aq-station",
            "lon": "104.741",
            "lat": "31.464",
            "department_code": "510703",
            "protocol": "http",
            "static_attributes": '{"stationCode": "2271A"}',
        },
        headers=HTML,
    )
    assert response.status_code == 201, response.text[:2000]
    key = re.search(r'id="device-key">(cbd_[^<]+)<', response.text)
    assert key is not None
    assert "只显示这一次" in response.text
    listed = services.list_devices(ctx, services.SYSTEM, q="aq-web-1").items[0]
    assert listed.protocol == "http" and listed.static_attributes == {"stationCode": "2271A"}
    # the device page never shows it again
    detail = page(api, f"/iot/devices/{listed.id}")
    assert key.group(1) not in detail


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"device_id": "bad id"}, "设备编号"),
        ({"lon": "east"}, "经度"),
        ({"static_attributes": "[1]"}, "静态属性"),
        ({"model_code": "nope"}, "nope"),
    ],
)
def test_register_form_errors(
    api: TestClient, device: Provisioned, change: dict[str, str], message: str
) -> None:
    data = {
        "device_id": "aq-web-2",
        "name": "x",
        "model_code": "aq-station",
        "lon": "104.7",
        "lat": "31.4",
        "department_code": "510703",
        **change,
    }
    response = api.post("/iot/devices", data=data, headers=HTML)
    assert response.status_code == 422, response.text[:500]
    alert = re.search(r'<div class="alert error" role="alert">([^<]+)</div>', response.text)
    assert alert is not None and message in alert.group(1)


def test_device_page_rotate_revoke_edit_delete(api: TestClient, ctx: AppContext, device: Provisioned) -> None:
    feed(ctx, device)
    zh = page(api, f"/iot/devices/{device.pk}")
    assert "最近读数" in zh and 'id="device-charts"' in zh and "pm25" in zh
    assert "2026-11-24 02:00:00" in zh  # readings in China time
    en = page(api, f"/iot/devices/{device.pk}", "en")
    assert "Recent readings" in en and "Issue a new key" in en
    rotated = api.post(f"/iot/devices/{device.pk}/key", headers=HTML)
    assert rotated.status_code == 200 and 'id="device-key"' in rotated.text
    revoked = api.post(f"/iot/devices/{device.pk}/revoke", headers=HTML, follow_redirects=False)
    assert revoked.status_code == 303
    assert "已撤销" in page(api, f"/iot/devices/{device.pk}")
    edited = api.post(
        f"/iot/devices/{device.pk}",
        data={"name": "改名", "lon": "104.772", "lat": "31.482", "department_code": "510703"},
        headers=HTML,
        follow_redirects=False,
    )
    assert edited.status_code == 303
    assert "改名" in page(api, f"/iot/devices/{device.pk}")
    bad = api.post(f"/iot/devices/{device.pk}", data={"name": "x", "lon": "500", "lat": "1"}, headers=HTML)
    assert bad.status_code == 422 and "经度" in bad.text
    gone = api.post(f"/iot/devices/{device.pk}/delete", headers=HTML, follow_redirects=False)
    assert gone.status_code == 303
    assert api.get(f"/iot/devices/{device.pk}", headers=HTML).status_code == 404


def test_import_page(api: TestClient, device: Provisioned) -> None:
    assert "CSV" in page(api, "/iot/import")
    csv_text = (
        "device_id,name,model,lon,lat,department\n"
        "aq-csv-1,导入一号,aq-station,104.741,31.464,510703\n"
        "aq-csv-2,导入二号,aq-station,north,31.464,510703\n"
    )
    response = api.post(
        "/iot/import", files={"file": ("devices.csv", csv_text.encode(), "text/csv")}, headers=HTML
    )
    assert response.status_code == 201, response.text[:2000]
    assert 'data-row="3"' in response.text and "需要数字" in response.text
    link = re.search(r'href="(data:text/csv;charset=utf-8,[^"]+)"', response.text)
    assert link is not None
    keys = unquote(link.group(1).split(",", 1)[1]).lstrip("\ufeff").splitlines()
    assert keys[0] == "device_id,entity_id,key" and keys[1].startswith("aq-csv-1,")
    empty = api.post("/iot/import", files={"file": ("e.csv", b"", "text/csv")}, headers=HTML)
    assert empty.status_code == 422
    nothing = api.post("/iot/import", data={"x": "1"}, headers=HTML)
    assert nothing.status_code == 400


def test_models_page(api: TestClient, device: Provisioned) -> None:
    zh = page(api, "/iot/models")
    assert "空气质量监测站" in zh and "新建设备型号" in zh
    created = api.post(
        "/iot/models",
        data={
            "code": "noise",
            "name_zh": "噪声监测仪",
            "entity_type": "NoiseLevelObserved",
            "offline_timeout_seconds": "900",
            "attributes": "LAeq, number, 0, 140, 2N\nstatus, string",
        },
        headers=HTML,
        follow_redirects=False,
    )
    assert created.status_code == 303, created.text[:1000]
    assert "噪声监测仪" in page(api, "/iot/models")
    bad = api.post(
        "/iot/models",
        data={"code": "x", "name_zh": "x", "entity_type": "X", "attributes": "a, number, low"},
        headers=HTML,
    )
    assert bad.status_code == 422 and "low" in bad.text


def test_ingest_and_dead_letter_pages(api: TestClient, ctx: AppContext, device: Provisioned) -> None:
    feed(ctx, device)
    zh = page(api, "/iot/ingest")
    assert "接入速率" in zh and 'id="rate-data"' in zh and "格式错误" in zh
    assert "Rejections by reason" in page(api, "/iot/ingest", "en")
    listed = page(api, "/iot/dead-letters?reason=malformed")
    letter = re.search(r'data-letter="(\d+)"', listed)
    assert letter is not None
    detail = page(api, f"/iot/dead-letters/{letter.group(1)}")
    assert "{broken" in detail
    assert "Payload" in page(api, f"/iot/dead-letters/{letter.group(1)}", "en")
    assert (
        page(api, "/iot/dead-letters?since=2026-01-01T00:00&until=2020-01-01T00:00").count("data-letter=")
        == 0
    )
    assert api.get("/iot/dead-letters/99999", headers=HTML).status_code == 404


def test_pages_need_permissions(
    client: TestClient, reader: dict[str, str], device: Provisioned, ctx: AppContext
) -> None:
    anonymous = client.get("/iot/devices", headers=HTML, follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/identity/login")
    assert client.get("/iot/devices", headers={**HTML, **reader}).status_code == 200
    assert client.get("/iot/devices/new", headers={**HTML, **reader}).status_code == 403
    assert client.get("/iot/import", headers={**HTML, **reader}).status_code == 403
    assert client.get("/iot/ingest", headers={**HTML, **reader}).status_code == 403
    assert client.get("/iot/dead-letters", headers={**HTML, **reader}).status_code == 403
    detail = client.get(f"/iot/devices/{device.pk}", headers={**HTML, **reader})
    assert detail.status_code == 200 and "签发新密钥" not in detail.text


def test_scoped_user_sees_only_their_devices(
    client: TestClient, ctx: AppContext, fucheng: dict[str, str], device: Any
) -> None:
    theirs = provision(ctx, "aq-youxian", department="510704", where=(104.772, 31.482))
    listed = client.get("/iot/devices", headers={**HTML, **fucheng})
    assert device.device_id in listed.text and theirs.device_id not in listed.text
    assert client.get(f"/iot/devices/{theirs.pk}", headers={**HTML, **fucheng}).status_code == 404
