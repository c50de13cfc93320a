"""The map page /geo/map: rendered for map readers in Chinese and English, with its settings."""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient

from citybrain.apps.geo import services
from citybrain.apps.identity import schemas
from citybrain.apps.identity import services as identity
from citybrain.core.errors import BadRequest
from citybrain.core.permissions import SYSTEM
from citybrain.core.platform import build_context
from citybrain.core.settings import Settings, SettingsError
from tests.conftest import Seeded, login


def page_config(html: str) -> dict[str, object]:
    """The JSON the map page hands to its script."""
    found = re.search(r'<script type="application/json" id="geo-map-config">(.*?)</script>', html, re.S)
    assert found is not None
    config: dict[str, object] = json.loads(found.group(1))
    return config


def test_the_map_page_in_chinese(admin_client: TestClient) -> None:
    response = admin_client.get("/geo/map")
    assert response.status_code == 200
    html = response.text
    assert "<h1>绵阳一张图</h1>" in html
    assert 'href="/geo/map">一张图</a>' in html  # the navigation item
    assert "/static/core/vendor/leaflet.markercluster/leaflet.markercluster.js" in html
    assert "/static/geo/geo/map.js" in html
    assert '<option value="510704">游仙区</option>' in html
    config = page_config(html)
    assert config["locale"] == "zh_CN" and config["refresh_ms"] == 10_000 and config["tile_url"] == ""
    layers = config["layers"]
    assert [layer["id"] for layer in layers if layer["app"] == "geo"] == ["roads"]  # type: ignore[index]
    assert all(layer["app"] for layer in layers)  # type: ignore[index]  # no entities: no default layer
    assert len(config["districts"]["features"]) == 9  # type: ignore[index]
    assert config["city"]["properties"]["code"] == "510700"  # type: ignore[index]
    assert config["entity_pages"] is True
    assert admin_client.get("/static/geo/geo/map.js").status_code == 200
    assert admin_client.get("/static/geo/geo/map.css").status_code == 200


def test_the_map_page_in_english(admin_client: TestClient) -> None:
    admin_client.get("/lang/en")
    html = admin_client.get("/geo/map").text
    assert "<h1>One map of Mianyang</h1>" in html
    assert 'href="/geo/map">City map</a>' in html
    assert '<option value="510704">Youxian District</option>' in html
    config = page_config(html)
    assert config["locale"] == "en"
    assert next(layer["title"] for layer in config["layers"] if layer["id"] == "roads") == "Main roads"  # type: ignore[index]


def test_the_app_entry_leads_to_the_map(admin_client: TestClient) -> None:
    response = admin_client.get("/geo", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/geo/map"


def test_a_visitor_is_asked_to_sign_in(client: TestClient) -> None:
    response = client.get("/geo/map", headers={"Accept": "text/html"}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/identity/login?next=/geo/map"


def test_staff_without_the_map_permission_are_refused(
    client: TestClient, ctx: object, seeded: Seeded
) -> None:
    staff = identity.create_user(
        ctx,  # type: ignore[arg-type]
        SYSTEM,
        schemas.UserCreate(
            username="zhang.wei",
            display_name="张伟",
            department_id=seeded.district,
            password="a-long-password-9",
        ),
    )
    identity.assign_role(ctx, SYSTEM, staff.id, schemas.AssignmentCreate(role_id=seeded.roles["staff"]))  # type: ignore[arg-type]
    login(client, "zhang.wei", "a-long-password-9")
    home = client.get("/").text
    assert 'href="/geo/map">一张图</a>' not in home  # no navigation item (the app card stays)
    response = client.get("/geo/map", headers={"Accept": "text/html"})
    assert response.status_code == 403
    assert "geo.map.read" in response.text


def test_a_tile_layer_when_one_is_configured(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYBRAIN_GEO_TILE_URL", "https://tiles.example.cn/{z}/{x}/{y}.png")
    monkeypatch.setenv("CITYBRAIN_GEO_TILE_ATTRIBUTION", "© 示例地图")
    monkeypatch.setenv("CITYBRAIN_GEO_REFRESH_SECONDS", "30")
    ctx = build_context(settings)
    page = services.map_page(ctx, SYSTEM, "zh_CN")
    assert page["tile_url"] == "https://tiles.example.cn/{z}/{x}/{y}.png"
    assert page["tile_attribution"] == "© 示例地图" and page["refresh_ms"] == 30_000
    ctx.db.dispose()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CITYBRAIN_GEO_TILE_URL", "ftp://tiles.example.cn/{z}/{x}/{y}.png"),
        ("CITYBRAIN_GEO_TILE_URL", "https://tiles.example.cn/{z}/{x}.png"),
        ("CITYBRAIN_GEO_REFRESH_SECONDS", "0.5"),
        ("CITYBRAIN_GEO_MAX_FEATURES", "lots"),
    ],
)
def test_bad_settings_stop_startup(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=name):
        build_context(settings)


def test_the_feature_limit_follows_the_setting(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.apps.geo.conftest import located, upsert

    monkeypatch.setenv("CITYBRAIN_GEO_MAX_FEATURES", "100")
    ctx = build_context(settings)
    try:
        upsert(
            ctx,
            [located(f"urn:ngsi-ld:Bench:{i:03d}", "Bench", 104.74, 31.46 + i * 1e-4) for i in range(120)],
        )
        body = services.layer_features(ctx, SYSTEM, "type-bench")
        assert body["numberReturned"] == 100 and body["truncated"] is True
        with pytest.raises(BadRequest, match="from 1 to 100"):
            services.layer_features(ctx, SYSTEM, "type-bench", limit=101)
    finally:
        ctx.db.dispose()
