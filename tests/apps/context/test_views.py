"""The entity browser pages over the real app: list filters, paging, detail, history charts, 403/404."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from citybrain.apps.context import services
from citybrain.apps.identity import schemas
from citybrain.apps.identity import services as identity
from citybrain.core.context import AppContext
from citybrain.core.errors import Forbidden
from citybrain.core.permissions import SYSTEM
from tests.conftest import Seeded

HTML = {"Accept": "text/html"}
BASE = "/ngsi-ld/v1"
PASSWORD = "Str0ng-pass-2024"
STATION = "urn:ngsi-ld:AirQualityObserved:mianyang-{:03d}"


class Page(Protocol):
    """What the tests read of a response (the test client's httpx flavour varies)."""

    @property
    def status_code(self) -> int: ...
    @property
    def text(self) -> str: ...
    @property
    def headers(self) -> Mapping[str, str]: ...


def page(client: TestClient, url: str) -> Page:
    """GET a page as a browser."""
    return client.get(url, headers=HTML, follow_redirects=False)


def text_of(response: Page) -> str:
    """The page's text with tags dropped (word-break hints joined) and entities decoded."""
    return strip_tags(response.text)


def strip_tags(markup: str) -> str:
    """Text of an HTML fragment with tags dropped (word-break hints joined) and entities decoded."""
    joined = markup.replace("<wbr>", "")
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", joined)))


def embedded(response: Page, element_id: str) -> Any:
    """The JSON a page embeds for its scripts (map features, chart series)."""
    found = re.search(
        rf'<script type="application/json" id="{element_id}">(.*?)</script>', response.text, re.S
    )
    assert found, f"no #{element_id} in the page"
    return json.loads(found.group(1))


def listed(response: Page) -> list[str]:
    """The entity ids of the list's rows, in order."""
    return [html.unescape(i) for i in re.findall(r'<tr data-entity="([^"]+)"', response.text)]


def station(number: int, pm25: float, district: str = "涪城区") -> dict[str, Any]:
    """An air-quality station of Mianyang (normalized NGSI-LD)."""
    return {
        "id": STATION.format(number),
        "type": "AirQualityObserved",
        "name": {"type": "Property", "value": f"{district}监测站{number}"},
        "pm25": {"type": "Property", "value": pm25, "unitCode": "GQ", "observedAt": "2026-11-24T08:00:00Z"},
        "location": {
            "type": "GeoProperty",
            "value": {
                "type": "Point",
                "coordinates": [round(104.68 + number / 100, 4), round(31.47 - number / 200, 4)],
            },
        },
        "refDevice": {"type": "Relationship", "object": f"urn:ngsi-ld:Device:aq-{number:03d}"},
    }


def create(client: TestClient, *entities: dict[str, Any]) -> None:
    """Create entities through the NGSI-LD API (the admin's session may write entities)."""
    for entity in entities:
        response = client.post(f"{BASE}/entities", json=entity)
        assert response.status_code == 201, response.text


def observe(client: TestClient, number: int, pm25: float, at: str) -> None:
    """A new PM2.5 reading of a station."""
    response = client.patch(
        f"{BASE}/entities/{STATION.format(number)}/attrs",
        json={"pm25": {"type": "Property", "value": pm25, "unitCode": "GQ", "observedAt": at}},
    )
    assert response.status_code == 204, response.text


@pytest.fixture
def stations(admin_client: TestClient) -> TestClient:
    """Three stations (PM2.5 20, 55, 90), a weather observer without a location; the admin's client."""
    create(admin_client, station(1, 20.0), station(2, 55.0, "游仙区"), station(3, 90.0, "安州区"))
    create(
        admin_client,
        {
            "id": "urn:ngsi-ld:WeatherObserved:mianyang-airport",
            "type": "WeatherObserved",
            "temperature": {"type": "Property", "value": 12.5, "unitCode": "CEL"},
        },
    )
    return admin_client


def test_list_shows_entities_types_values_and_map(stations: TestClient) -> None:
    response = page(stations, "/context/entities")
    assert response.status_code == 200
    assert listed(response) == [
        STATION.format(1),
        STATION.format(2),
        STATION.format(3),
        "urn:ngsi-ld:WeatherObserved:mianyang-airport",
    ]
    text = text_of(response)
    assert "实体浏览" in text and "第 1–4 个，共 4 个实体" in text
    assert "AirQualityObserved (3)" in text and "WeatherObserved (1)" in text
    assert "涪城区监测站1" in text and "μg/m³" in text and "°C" in text
    assert 'href="/context/entities/urn:ngsi-ld:AirQualityObserved:mianyang-001"' in response.text
    features = embedded(response, "entity-map-data")
    assert sorted(f["id"] for f in features) == [STATION.format(n) for n in (1, 2, 3)]
    assert features[0]["geometry"]["type"] == "Point"
    assert features[0]["href"].startswith("/context/entities/urn:ngsi-ld:AirQualityObserved:")
    assert features[0]["type"] == "AirQualityObserved"
    assert re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", text)  # modifiedAt, to the second


def test_list_filters_by_type_q_and_id(stations: TestClient) -> None:
    weather = page(stations, "/context/entities?type=WeatherObserved")
    assert listed(weather) == ["urn:ngsi-ld:WeatherObserved:mianyang-airport"]
    assert '<option value="WeatherObserved" selected>' in weather.text
    assert 'id="entity-map"' not in weather.text and "leaflet.js" not in weather.text
    assert "匹配的实体均无位置信息。" in text_of(weather)

    polluted = page(stations, "/context/entities?q=pm25%3E50")
    assert polluted.status_code == 200
    assert listed(polluted) == [STATION.format(2), STATION.format(3)]
    assert len(embedded(polluted, "entity-map-data")) == 2
    assert 'value="pm25&gt;50"' in polluted.text

    both = page(stations, "/context/entities?type=AirQualityObserved&q=pm25%3C30%7Cpm25%3E80")
    assert listed(both) == [STATION.format(1), STATION.format(3)]
    by_name = page(stations, "/context/entities?q=" + quote('name=="游仙区监测站2"'))
    assert listed(by_name) == [STATION.format(2)]

    by_id = page(stations, "/context/entities?id=MIANYANG-00")  # case-insensitive substring
    assert listed(by_id) == [STATION.format(n) for n in (1, 2, 3)]
    special = page(stations, "/context/entities?id=.*")  # no regular expression is injected
    assert listed(special) == []
    assert "没有符合筛选条件的实体。" in text_of(special)


@pytest.mark.parametrize("q", ["pm25>", "pm25>(", "((pm25==1", "pm25=="])
def test_bad_q_is_a_400_with_an_alert(stations: TestClient, q: str) -> None:
    response = stations.get("/context/entities", params={"q": q}, headers=HTML)
    assert response.status_code == 400
    assert '<div class="alert error" role="alert">' in response.text
    text = text_of(response)
    assert "查询条件有误：" in text
    assert "请修改查询条件后重新查询。" in text
    assert listed(response) == []
    assert f'value="{html.escape(q)}"' in response.text  # the expression stays in the box


def test_bad_q_in_english(stations: TestClient) -> None:
    stations.get("/lang/en", follow_redirects=False)
    response = stations.get("/context/entities", params={"q": "pm25>"}, headers=HTML)
    assert response.status_code == 400
    assert "The q expression is not valid:" in text_of(response)


def test_paging_twenty_a_page(admin_client: TestClient) -> None:
    batch = [station(n, float(n)) for n in range(1, 26)]
    response = admin_client.post(f"{BASE}/entityOperations/create", json=batch)
    assert response.status_code == 201, response.text
    first = page(admin_client, "/context/entities?type=AirQualityObserved")
    assert listed(first) == [STATION.format(n) for n in range(1, 21)]
    text = text_of(first)
    assert "第 1–20 个，共 25 个实体" in text and "第 1 / 2 页" in text
    assert 'href="/context/entities?type=AirQualityObserved&amp;page=2" rel="next"' in first.text
    assert len(embedded(first, "entity-map-data")) == 25  # the map shows every match, not one page
    second = page(admin_client, "/context/entities?type=AirQualityObserved&page=2")
    assert listed(second) == [STATION.format(n) for n in range(21, 26)]
    assert "第 21–25 个，共 25 个实体" in text_of(second)
    assert 'rel="prev"' in second.text and 'rel="next"' not in second.text
    assert page(admin_client, "/context/entities?page=0").status_code == 422


def test_empty_state_explains_how_to_create_entities(admin_client: TestClient) -> None:
    response = page(admin_client, "/context/entities")
    assert response.status_code == 200
    text = text_of(response)
    assert "暂无实体" in text
    assert "/ngsi-ld/v1/entities" in text and "Authorization: Bearer" in text
    assert 'href="/identity/tokens"' in response.text
    assert 'id="entity-map"' not in response.text


def test_detail_shows_attributes_relationships_map_and_links(stations: TestClient) -> None:
    response = page(stations, "/context/entities/" + STATION.format(1))
    assert response.status_code == 200
    text = text_of(response)
    assert STATION.format(1) in text and "AirQualityObserved" in text
    rows = dict(re.findall(r'<tr data-attr="([^"]+)">(.*?)</tr>', response.text, re.S))
    assert sorted(rows) == ["location", "name", "pm25", "refDevice"]
    pm25 = strip_tags(rows["pm25"])
    assert " 20 " in pm25 and "GQ (μg/m³)" in pm25
    assert "2026-11-24 16:00:00" in pm25  # observedAt 08:00Z in China time
    assert "Point 104.69, 31.465" in strip_tags(rows["location"])
    assert 'href="/context/entities/urn:ngsi-ld:Device:aq-001"' in rows["refDevice"]
    assert "关联实体" in text
    assert 'href="/ngsi-ld/v1/entities/urn:ngsi-ld:AirQualityObserved:mianyang-001"' in response.text
    shapes = embedded(response, "entity-map-data")
    assert shapes == [
        {
            "id": "location",
            "type": "",
            "label": "涪城区监测站1",
            "geometry": {"type": "Point", "coordinates": [104.69, 31.465]},
        }
    ]
    assert re.search(r"<h1[^>]*>涪城区监测站1", response.text)  # the name heads the page, the id below
    raw = stations.get("/ngsi-ld/v1/entities/" + STATION.format(1))
    assert raw.status_code == 200 and raw.json()["id"] == STATION.format(1)


def test_detail_structured_values_datasets_and_sub_attributes(admin_client: TestClient) -> None:
    create(
        admin_client,
        {
            "id": "urn:ngsi-ld:WaterLevelObserved:fujiang-1",
            "type": "WaterLevelObserved",
            "waterLevel": [
                {
                    "type": "Property",
                    "value": 3.2,
                    "unitCode": "MTR",
                    "datasetId": "urn:ngsi-ld:Dataset:radar",
                },
                {"type": "Property", "value": 3.1, "unitCode": "MTR"},
            ],
            "status": {
                "type": "Property",
                "value": {"alert": "blue", "since": "2026-11-24"},
                "reliability": {"type": "Property", "value": 0.9},
            },
            "feeds": {
                "type": "ListRelationship",
                "objectList": ["urn:ngsi-ld:River:fujiang", "urn:ngsi-ld:River:anchang"],
            },
            "area": {
                "type": "GeoProperty",
                "value": {
                    "type": "Polygon",
                    "coordinates": [[[104.7, 31.4], [104.8, 31.4], [104.8, 31.5], [104.7, 31.4]]],
                },
            },
        },
    )
    response = page(admin_client, "/context/entities/urn:ngsi-ld:WaterLevelObserved:fujiang-1")
    assert response.status_code == 200
    assert '<pre class="json">{\n  &#34;alert&#34;: &#34;blue&#34;,' in response.text
    text = text_of(response)
    assert "reliability 0.9" in text
    assert "urn:ngsi-ld:Dataset:radar" in text and "默认" in text
    assert 'href="/context/entities/urn:ngsi-ld:River:anchang"' in response.text
    assert [s["geometry"]["type"] for s in embedded(response, "entity-map-data")] == ["Polygon"]
    charts = embedded(response, "entity-charts")
    assert [(c["name"], c["dataset"], [p[1] for p in c["points"]]) for c in charts] == [
        ("waterLevel", "", [3.1]),
        ("waterLevel", "urn:ngsi-ld:Dataset:radar", [3.2]),
    ]
    assert charts[0]["unit"] == "m"


def test_history_values_are_in_the_chart_data(stations: TestClient) -> None:
    for value, at in (
        (35.5, "2026-11-24T09:00:00Z"),
        (61.0, "2026-11-24T10:00:00Z"),
        (48.0, "2026-11-24T11:00:00Z"),
    ):
        observe(stations, 1, value, at)
    response = page(stations, "/context/entities/" + STATION.format(1))
    assert response.status_code == 200
    charts = embedded(response, "entity-charts")
    assert len(charts) == 1
    chart = charts[0]
    assert chart["name"] == "pm25" and chart["unit"] == "μg/m³"
    assert [value for _, value in chart["points"]] == [20.0, 35.5, 61.0, 48.0]
    # times are China wall-clock read as UTC (the chart draws in UTC mode): 08:00Z is 16:00 in Mianyang
    first = datetime.fromtimestamp(chart["points"][0][0] / 1000, UTC)
    assert first.strftime("%Y-%m-%d %H:%M") == "2026-11-24 16:00"
    assert f'data-chart="{chart["id"]}"' in response.text
    assert "共 4 个值" in text_of(response)
    assert "/static/core/vendor/echarts/echarts.min.js" in response.text


def test_attribute_history_service(ctx: AppContext, stations: TestClient) -> None:
    for n in range(6):
        observe(stations, 2, 60.0 + n, f"2026-11-24T{9 + n:02d}:00:00Z")
    pm25 = "https://uri.etsi.org/ngsi-ld/default-context/pm25"
    points = services.attribute_history(ctx, SYSTEM, "", STATION.format(2), pm25, 3)
    assert [v for _, v in points] == [63.0, 64.0, 65.0]
    assert [t.hour for t, _ in points] == [12, 13, 14] and points[0][0].tzinfo is not None
    assert services.attribute_history(ctx, SYSTEM, "", STATION.format(2), pm25, 3, dataset_id="x") == []
    name = "https://uri.etsi.org/ngsi-ld/default-context/name"
    assert services.attribute_history(ctx, SYSTEM, "", STATION.format(2), name, 10) == []  # not numeric
    counts = services.entity_type_counts(ctx, SYSTEM, "")
    assert counts == {
        "https://uri.etsi.org/ngsi-ld/default-context/AirQualityObserved": 3,
        "https://uri.etsi.org/ngsi-ld/default-context/WeatherObserved": 1,
    }


def _staff_client(client: TestClient, ctx: AppContext, seeded: Seeded) -> TestClient:
    """Sign in as a staff member, who may not read entities."""
    user = identity.create_user(
        ctx,
        SYSTEM,
        schemas.UserCreate(
            username="staffer", display_name="王芳", department_id=seeded.city_dept, password=PASSWORD
        ),
    )
    identity.assign_role(ctx, SYSTEM, user.id, schemas.AssignmentCreate(role_id=seeded.roles["staff"]))
    client.headers.pop("X-CSRF-Token", None)
    client.cookies.clear()
    page(client, "/identity/login")
    response = client.post(
        "/identity/login",
        data={
            "username": "staffer",
            "password": PASSWORD,
            "next": "/",
            "csrf_token": client.cookies["cb_csrf"],
        },
        headers=HTML,
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return client


@pytest.mark.parametrize("path", ["/context/entities", "/context/entities/" + STATION.format(1)])
def test_staff_without_the_permission_gets_403(
    stations: TestClient, ctx: AppContext, seeded: Seeded, path: str
) -> None:
    client = _staff_client(stations, ctx, seeded)
    response = page(client, path)
    assert response.status_code == 403
    text = text_of(response)
    assert "无权访问" in text and "context.entity.read" in text
    nav = page(client, "/").text
    assert 'class="side-link" href="/context/entities"' not in nav
    with pytest.raises(Forbidden):
        services.attribute_history(ctx, _actor(ctx, "staffer"), "", STATION.format(1), "x", 10)


def _actor(ctx: AppContext, username: str) -> Any:
    """The actor of a user, as the session would build it."""
    from sqlalchemy import select

    from citybrain.apps.identity.models import User

    with ctx.read() as session:
        user = session.scalars(select(User).where(User.username == username)).one()
        return identity.actor_for(ctx, session, user)


def test_unknown_entity_is_a_404_page(stations: TestClient) -> None:
    response = page(stations, "/context/entities/urn:ngsi-ld:AirQualityObserved:nowhere")
    assert response.status_code == 404
    text = text_of(response)
    assert "未找到标识为 urn:ngsi-ld:AirQualityObserved:nowhere 的实体。" in text
    assert 'class="card narrow error-page"' in response.text
    stations.get("/lang/en", follow_redirects=False)
    english = page(stations, "/context/entities/urn:ngsi-ld:AirQualityObserved:nowhere")
    assert "No entity has the id urn:ngsi-ld:AirQualityObserved:nowhere." in text_of(english)


def test_anonymous_is_sent_to_sign_in(client: TestClient) -> None:
    response = page(client, "/context/entities?type=AirQualityObserved")
    assert response.status_code == 303
    assert (
        response.headers["location"] == "/identity/login?next=/context/entities%3Ftype%3DAirQualityObserved"
    )
    assert page(client, "/context").headers["location"] == "/context/entities"


def test_english_pages(stations: TestClient) -> None:
    stations.get("/lang/en", follow_redirects=False)
    listing = text_of(page(stations, "/context/entities"))
    assert "Entities" in listing and "1–4 of 4" in listing and "Key values" in listing
    detail = text_of(page(stations, "/context/entities/" + STATION.format(1)))
    assert "Attribute value" in detail and "Related entities" in detail and "History" in detail


def test_entity_text_is_escaped(admin_client: TestClient) -> None:
    hostile = "<img src=x onerror=alert(1)>"
    entity = station(7, 30.0)
    entity["name"]["value"] = hostile
    entity["pm25"]["unitCode"] = "<b>"
    create(admin_client, entity)
    listing = page(admin_client, "/context/entities")
    assert hostile not in listing.text and "&lt;img src=x onerror=alert(1)&gt;" in listing.text
    assert embedded(listing, "entity-map-data")[0]["label"].startswith("<img src=x")  # drawn as text
    assert "\\u003cimg" in listing.text  # JSON for scripts cannot close its <script> element
    detail = page(admin_client, "/context/entities/" + STATION.format(7))
    assert hostile not in detail.text and "<b>" not in detail.text
