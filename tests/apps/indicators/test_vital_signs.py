"""The city's vital signs the domain apps declare, computed on the whole platform."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from citybrain.apps.context import services as context
from citybrain.apps.indicators import services
from citybrain.core.asgi import create_app
from citybrain.core.context import AppContext
from citybrain.core.permissions import SYSTEM
from citybrain.core.settings import Settings

FUCHENG = (104.715, 31.46)  # 安昌河城区站, in 涪城区 (510703)
PINGWU = (104.538, 32.406)  # 涪江平武站, in 平武县 (510727)


def gauge(ctx: AppContext, name: str, where: tuple[float, float], height: float, warning: float) -> None:
    """A water-level gauge entity with its stage and warning stage."""
    body = {
        "id": f"urn:ngsi-ld:WaterObserved:{name}",
        "type": "WaterObserved",
        "height": {"type": "Property", "value": height, "observedAt": datetime.now(UTC).isoformat()},
        "warningLevel": {"type": "Property", "value": warning},
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": list(where)}},
    }
    assert context.upsert_entities(ctx, SYSTEM, "", [body]).success == [body["id"]]


def test_every_vital_sign_computes_on_the_platform(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every declared vital sign is computed (none unavailable); river gauges against their warning levels."""
    monkeypatch.setenv("CITYBRAIN_INDICATORS_COMPUTE_SECONDS", "0")
    with TestClient(create_app(settings), base_url="http://testserver") as client:
        ctx: AppContext = client.app.state.ctx  # type: ignore[attr-defined]
        gauge(ctx, "anchang", FUCHENG, 3.8, 3.6)
        gauge(ctx, "pingwu", PINGWU, 2.0, 4.0)
        report = services.compute_round(ctx, force=True)
        assert report.unavailable == ()
        codes = {d.spec.code for d in services.declared(ctx)}
        assert {"environment.aqi", "traffic.tpi", "iot.devices_online", "warning.active_red"} <= codes
        assert set(report.computed) == codes
        snapshot = services.current(ctx, SYSTEM)
        found = {i.item.spec.code: i for i in snapshot.indicators}
        over = found["iot.river_over_warning"]
        assert over.city is not None and over.city.value == 50.0 and over.city.level == "bad"
        ratio = found["iot.river_level_ratio"]
        by_area = {v.area: v.value for v in ratio.districts}
        assert ratio.city is not None and ratio.city.value == 105.6
        assert (by_area["510703"], by_area["510727"], by_area["510704"]) == (105.6, 50.0, None)
        active = found["warning.active"]
        assert active.city is not None and active.city.value == 0.0 and active.city.level == "good"
