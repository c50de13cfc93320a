"""The traffic page: the gauge, the districts, the day's trend and the segments, in Chinese and English."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient

from citybrain.apps.traffic import services
from citybrain.core.context import AppContext
from citybrain.sdk import utcnow
from tests.apps.traffic.conftest import add_detector, read, segment
from tests.conftest import login


def test_the_page_in_chinese_and_english(admin_client: TestClient, started: AppContext) -> None:
    det = add_detector(started, "v", segment(started, "jiuzhou-2"))
    read(started, det, [(utcnow() - timedelta(seconds=10), 15.0, 600.0)])
    services.record(started)
    page = admin_client.get("/traffic")
    assert page.status_code == 200
    assert "交通运行指数" in page.text
    assert 'data-segment="jiuzhou-2"' in page.text
    assert "严重拥堵" in page.text
    assert 'data-district="510703"' in page.text
    assert "data-tpi-trend" in page.text  # the record just made is today's trend
    # sorted by TTI, highest first: the only segment with a speed leads the table
    rows = page.text.split('data-segment="')[1:]
    assert rows[0].startswith("jiuzhou-2")
    admin_client.cookies.set("cb_lang", "en")
    english = admin_client.get("/traffic", params={"sort": "name"})
    assert english.status_code == 200
    assert "Traffic index" in english.text
    assert "Severe congestion" in english.text
    assert admin_client.get("/traffic", params={"sort": "bogus"}).status_code == 422


def test_the_page_needs_the_permission(client: TestClient, started: AppContext, seeded: object) -> None:
    from citybrain.apps.identity import schemas
    from citybrain.apps.identity import services as identity
    from citybrain.core.permissions import SYSTEM

    anonymous = client.get("/traffic", headers={"Accept": "text/html"}, follow_redirects=False)
    assert anonymous.status_code in (302, 303, 401)
    identity.create_user(
        started,
        SYSTEM,
        schemas.UserCreate(
            username="clerk",
            display_name="办事员",
            department_id=seeded.city_dept,
            password="clerk-password-123",  # type: ignore[attr-defined]
        ),
    )
    login(client, "clerk", "clerk-password-123")
    assert client.get("/traffic", headers={"Accept": "text/html"}).status_code == 403
