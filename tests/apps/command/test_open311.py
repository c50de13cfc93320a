"""Open311 GeoReport v2, exercised as a GeoReport client does: suffixes, form-encoded POST, api_key, errors."""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree as ET

import pytest
from fastapi.testclient import TestClient

from citybrain.apps.command import kpi
from citybrain.apps.identity import services as identity
from citybrain.apps.identity.models import User
from citybrain.core.context import AppContext
from tests.apps.command.conftest import CITY_HALL, Org
from tests.apps.command.test_services import ticket
from tests.apps.context.conftest import token_for
from tests.conftest import Seeded

BASE = "/open311/v2"


@pytest.fixture
def key(ctx: AppContext, seeded: Seeded, org: Org) -> str:
    """An api_key: an API token carrying command.open311.submit."""
    return token_for(ctx, seeded, ["command.open311.submit"])


def errors(response: Any, status: int) -> list[dict[str, Any]]:
    """Assert a GeoReport JSON error list of this status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: list[dict[str, Any]] = response.json()
    assert isinstance(body, list) and body[0]["code"] == status and body[0]["description"]
    return body


def test_services_and_definitions_in_json_and_xml(client: TestClient, org: Org) -> None:
    services = client.get(f"{BASE}/services.json")
    assert services.status_code == 200
    listed = {s["service_code"]: s for s in services.json()}
    assert len(listed) == 28 and listed["part.manhole_cover"]["service_name"] == "井盖破损或缺失"
    assert listed["general"]["metadata"] is True and listed["hotline.noise"]["type"] == "realtime"
    xml = client.get(f"{BASE}/services.xml", params={"jurisdiction_id": "mianyang.gov.cn"})
    assert xml.headers["content-type"].startswith("text/xml")
    root = ET.fromstring(xml.content)
    assert root.tag == "services" and len(root.findall("service")) == 28
    assert root.find("service/service_code") is not None
    definition = client.get(f"{BASE}/services/part.manhole_cover.json").json()
    assert definition["service_code"] == "part.manhole_cover"
    attribute = definition["attributes"][0]
    assert attribute["code"] == "district" and len(attribute["values"]) == 9
    tree = ET.fromstring(client.get(f"{BASE}/services/part.manhole_cover.xml").content)
    assert tree.tag == "service_definition" and tree.findtext("attributes/attribute/code") == "district"
    assert len(tree.findall("attributes/attribute/values/value")) == 9
    errors(client.get(f"{BASE}/services/nothing.here.json"), 404)
    errors(client.get(f"{BASE}/services.json", params={"jurisdiction_id": "elsewhere.gov"}), 404)
    bad = client.get(f"{BASE}/services/nothing.here.xml")
    assert bad.status_code == 404 and ET.fromstring(bad.content).findtext("error/code") == "404"
    assert client.get(f"{BASE}/services.html").status_code == 404


def test_post_a_request_read_it_list_it_and_count_it(
    client: TestClient, ctx: AppContext, key: str, org: Org
) -> None:
    form = {
        "api_key": key, "jurisdiction_id": "mianyang.gov.cn", "service_code": "event.street_vending",
        "lat": str(CITY_HALL[1]), "long": str(CITY_HALL[0]), "description": "人行道有人占道经营",
        "email": "zhang@example.cn", "phone": "13812345678", "first_name": "三", "last_name": "张",
        "media_url": "https://example.cn/photo.jpg",
    }  # fmt: skip
    posted = client.post(f"{BASE}/requests.json", data=form)  # form-encoded, no cookie, no CSRF token
    assert posted.status_code == 201, posted.text
    number = posted.json()[0]["service_request_id"]
    one = client.get(f"{BASE}/requests/{number}.json").json()[0]
    assert (one["status"], one["service_code"], one["lat"], one["long"]) == (
        "open", "event.street_vending", CITY_HALL[1], CITY_HALL[0],
    )  # fmt: skip
    assert one["media_url"] == "https://example.cn/photo.jpg" and one["requested_datetime"].endswith("+08:00")
    assert one["agency_responsible"] == "涪城区" or one["agency_responsible"]  # routed to the district
    text = client.get(f"{BASE}/requests/{number}.json").text
    assert "13812345678" not in text and "zhang@example.cn" not in text and "张" not in text
    xml = ET.fromstring(client.get(f"{BASE}/requests/{number}.xml").content)
    assert xml.tag == "service_requests" and xml.findtext("request/service_request_id") == number
    # classified and routed through the same intake: a general request about noise
    general = client.post(
        f"{BASE}/requests.xml",
        data={"api_key": key, "service_code": "general", "address_string": "涪城区临园路",
              "description": "市民反映：楼下KTV每天深夜唱歌到两点，噪声扰民，吵得孩子睡不着",
              "attribute[district]": "510703"},
    )  # fmt: skip
    assert general.status_code == 201, general.text
    second = ET.fromstring(general.content).findtext("request/service_request_id")
    assert second is not None
    listed = client.get(f"{BASE}/requests.json", params={"status": "open"}).json()
    assert [r["service_request_id"] for r in listed] == [second, number]
    assert listed[0]["service_code"] == "hotline.noise"
    by_code = client.get(f"{BASE}/requests.json", params={"service_code": "event.street_vending"}).json()
    assert [r["service_request_id"] for r in by_code] == [number]
    assert client.get(f"{BASE}/requests.json", params={"status": "closed"}).json() == []
    picked = client.get(f"{BASE}/requests.json", params={"service_request_id": f"{number},{second}"}).json()
    assert len(picked) == 2
    assert client.get(f"{BASE}/requests.json", params={"end_date": "2020-01-01T00:00:00+08:00"}).json() == []
    # the KPI report counts the citizen's requests
    report = kpi.report(ctx, org.leader, "zh_CN", dimension="district", period="day")
    assert report.city.tickets == 1 and {r.key: r for r in report.rows}["510703"].tickets == 1


def test_bad_requests_are_refused_in_the_spec_format(
    client: TestClient, ctx: AppContext, seeded: Seeded, key: str, org: Org
) -> None:
    url = f"{BASE}/requests.json"
    good = {"api_key": key, "service_code": "part.street_lamp", "address_string": "临园路"}
    errors(client.post(url, data={k: v for k, v in good.items() if k != "api_key"}), 403)
    errors(client.post(url, data={**good, "api_key": "cbt_1_wrong"}), 403)
    errors(client.post(url, data={**good, "service_code": "no.such"}), 404)
    errors(client.post(url, data={**good, "jurisdiction_id": "elsewhere.gov"}), 404)
    errors(client.post(url, data={k: v for k, v in good.items() if k != "address_string"}), 400)
    errors(client.post(url, data={**good, "lat": "31.4"}), 400)
    errors(client.post(url, data={**good, "lat": "x", "long": "104"}), 400)
    errors(client.post(url, data={**good, "email": "not-an-email"}), 400)
    errors(client.post(url, data={**good, "media_url": "javascript:alert(1)"}), 400)
    errors(client.post(url, data={**good, "attribute[district]": "999999"}), 400)
    errors(client.post(url, data={**good, "service_code": "general"}), 400)  # nothing to classify
    errors(client.post(url, content=b"{}", headers={"Content-Type": "application/json"}), 400)
    refused = client.post(f"{BASE}/requests.xml", data={**good, "api_key": ""})
    assert refused.status_code == 403
    assert ET.fromstring(refused.content).tag == "errors"
    errors(client.get(url, params={"status": "pending"}), 400)
    errors(client.get(url, params={"start_date": "yesterday"}), 400)
    errors(
        client.get(url, params={"start_date": "2026-01-01T00:00:00Z", "end_date": "2025-01-01T00:00:00Z"}),
        400,
    )
    errors(
        client.get(url, params={"start_date": "2020-01-01T00:00:00Z", "end_date": "2026-01-01T00:00:00Z"}),
        400,
    )
    errors(client.get(url, params={"service_request_id": "abc"}), 400)
    errors(client.get(f"{BASE}/requests/424242424242.json"), 404)
    assert client.get(f"{BASE}/requests.json").json() == []  # nothing was written
    # a revoked key stops working at once
    with ctx.read() as session:
        admin = identity.actor_for(ctx, session, session.get_one(User, seeded.admin_id))
    identity.revoke_token(ctx, admin, int(key.split("_")[1]))
    errors(client.post(url, data=good), 403)


def test_a_ticket_is_not_published(client: TestClient, ctx: AppContext, org: Org) -> None:
    ticket(ctx, org)
    assert client.get(f"{BASE}/requests.json").json() == []
