"""The stations' pollutant forecasts: the declared series, the job storing them, the pages and the API."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from citybrain.apps.context import services as context
from citybrain.apps.environment import series
from citybrain.apps.warning import forecasts as wf
from citybrain.apps.warning import services as warning
from citybrain.core.context import AppContext
from citybrain.core.permissions import SYSTEM
from citybrain.sdk import utcnow
from tests.apps.environment.conftest import CITY_HALL, FULESHAN, add_station, read, station_id
from tests.apps.environment.test_api import token_with
from tests.conftest import Seeded

HTML = {"Accept": "text/html"}
PROBLEM = "application/problem+json"
HOUR = timedelta(hours=1)


def cheap(ctx: AppContext) -> None:
    """Forecasting settings for a fast run: one backtest origin, the shortest window, seasonal-naive."""
    conf = warning.settings(ctx).model_copy(
        update={"forecast_origins": 1, "forecast_max_train": 504, "forecast_models": ("seasonal_naive",)}
    )
    ctx.app_settings["warning"] = conf


def pm25_hours(ctx: AppContext, entity_id: str, hours: int) -> datetime:
    """Store `hours` hourly PM2.5 readings ending before the current hour (a daily cycle); return the hour."""
    end = utcnow().astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    readings = [
        (
            end - (hours - i) * HOUR + timedelta(minutes=30),
            {"pm25": 40.0 + 20.0 * math.sin(2 * math.pi * i / 24)},
        )
        for i in range(hours)
    ]
    read(ctx, entity_id, readings)
    return end


def page(client: TestClient, path: str, lang: str = "zh_CN") -> str:
    """A page's HTML (it must answer 200)."""
    response = client.get(f"{path}?lang={lang}", headers=HTML)
    assert response.status_code == 200, response.text[:2000]
    return response.text


def block(html: str) -> str:
    """The station page's forecast section."""
    return html.split('class="card station-forecast"', 1)[1].split("</section>", 1)[0]


def test_the_app_declares_valid_series_for_every_station(ctx: AppContext) -> None:
    declared = {spec.code: (label, spec) for label, spec in warning.declared_forecasts(ctx)}
    codes = {"environment-pm25", "environment-pm10", "environment-o3"}
    assert codes <= set(declared)
    for code in codes:
        label, spec = declared[code]
        assert label == "environment"
        assert (spec.entity_type, spec.entity_id, spec.frequency, spec.horizon) == (
            "AirQualityObserved",
            None,
            "hourly",
            24,
        )
    a = add_station(ctx, "fc-a", "市政府", CITY_HALL)
    b = add_station(ctx, "fc-b", "富乐山", FULESHAN)
    now = utcnow()
    read(ctx, a, [(now - HOUR, {"pm25": 30.0, "pm10": 50.0, "o3": 60.0})])
    read(ctx, b, [(now - HOUR, {"pm25": 20.0})])
    for code in codes:
        wf.validate(ctx, declared[code][1])  # the context broker has the type and numbers in the attribute
    assert wf.sync_declared(ctx) == 3
    assert wf.sync_series(ctx) == 4  # b reports PM2.5 only
    assert wf.sync_declared(ctx) == 0 and wf.sync_series(ctx) == 0
    listed = wf.list_series(ctx, SYSTEM, declaration="environment-pm25").items
    assert {s.entity_id for s in listed} == {a, b}


def test_the_job_forecasts_and_the_pages_show_it(admin_client: TestClient, ctx: AppContext) -> None:
    sid = add_station(ctx, "fc-long", "市政府", CITY_HALL)
    end = pm25_hours(ctx, sid, 530)  # 504 hours of training and one backtest day
    cheap(ctx)
    summary = wf.run(ctx, utcnow())
    assert (summary.examined, summary.forecast, summary.failed) == (1, 1, 0)

    (pm25, pm10, o3) = series.station_forecasts(ctx, SYSTEM, sid)
    assert (pm25.attr, pm25.status, pm25.model) == ("pm25", "ok", "seasonal_naive")
    assert pm25.hours[0] == end + HOUR and len(pm25.mean) == len(pm25.mae) == 24  # labelled by the hour's end
    assert all(lo <= m <= hi for lo, m, hi in zip(pm25.lower, pm25.mean, pm25.upper, strict=True))
    assert (pm10.status, o3.status) == ("missing", "missing")  # the station reports neither

    html = page(admin_client, f"/environment/stations/{quote(sid)}")
    found = block(html)
    assert 'data-forecast-block="ready"' in found and 'data-forecast="pm25"' in found
    mae = re.search(r"模型 季节朴素 · 回测 MAE (\d+\.\d) µg/m³（1 小时）… (\d+\.\d)（24 小时）", found)
    assert mae is not None and float(mae.group(1)) == pytest.approx(pm25.mae[0], abs=0.051)
    assert "预测时间 " in found and "峰值 " in found
    charts = json.loads(found.split('id="forecast-charts">', 1)[1].split("</script>", 1)[0])
    assert [c["id"] for c in charts] == ["forecast-pm25"]
    assert len(charts[0]["mean"]) == len(charts[0]["lower"]) == len(charts[0]["upper"]) == 24
    assert "echarts.min.js" in html
    english = block(page(admin_client, f"/environment/stations/{quote(sid)}", "en"))
    assert "Model Seasonal naive · backtest MAE" in english and "(24 h)" in english

    overview = page(admin_client, "/environment")
    peak = re.search(rf'<tr data-station="{re.escape(sid)}">.*?data-peak="(\d+)"', overview, re.S)
    assert peak is not None and int(peak.group(1)) == round(max(pm25.mean))
    assert "未来 24 小时 PM2.5 峰值" in overview

    response = admin_client.get(f"/api/environment/stations/{quote(sid)}/forecast")
    assert response.status_code == 200, response.text
    body: list[dict[str, Any]] = response.json()
    assert [f["attr"] for f in body] == ["pm25", "pm10", "o3"]
    assert body[0]["status"] == "ok" and len(body[0]["lower_80"]) == 24 and body[0]["backtest_mae"]
    assert body[1]["status"] == "missing" and body[1]["mean"] == []


def test_no_forecast_yet_is_said_plainly(admin_client: TestClient, ctx: AppContext) -> None:
    sid = add_station(ctx, "fc-new", "市政府", CITY_HALL)
    pm25_hours(ctx, sid, 3)
    found = block(page(admin_client, f"/environment/stations/{quote(sid)}"))
    assert 'data-forecast-block="none"' in found
    assert "预测尚未生成，首次预测约在启动后 2 分钟。" in found  # the job's first delay (60 s) and its run
    english = block(page(admin_client, f"/environment/stations/{quote(sid)}", "en"))
    assert "the first forecast is made about 2 minutes after the platform starts" in english
    overview = page(admin_client, "/environment")
    assert re.search(rf'<tr data-station="{re.escape(sid)}">.*?data-peak="none"', overview, re.S)

    wf.run(ctx, utcnow())  # too little history: the series is marked short
    found = block(page(admin_client, f"/environment/stations/{quote(sid)}"))
    needed = series.station_forecasts(ctx, SYSTEM, sid)[0].needed
    assert f"预测尚未生成：预测需要 {needed} 小时的历史数据，目前有 3 小时。" in found


def test_unknown_stations_and_bad_input(admin_client: TestClient, ctx: AppContext, seeded: Seeded) -> None:
    missing = admin_client.get(f"/api/environment/stations/{quote(station_id('none'))}/forecast")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith(PROBLEM)
    assert missing.json()["status"] == 404
    page_missing = admin_client.get(f"/environment/stations/{quote(station_id('none'))}", headers=HTML)
    assert page_missing.status_code == 404
    # another type's entity is no station
    forecast = "urn:ngsi-ld:AirQualityForecast:510700"
    body = {"id": forecast, "type": "AirQualityForecast", "dailyAQI": {"type": "Property", "value": [50]}}
    assert context.upsert_entities(ctx, SYSTEM, "", [body]).success == [forecast]
    other = admin_client.get(f"/api/environment/stations/{quote(forecast)}/forecast")
    assert other.status_code == 404 and other.headers["content-type"].startswith(PROBLEM)
    too_long = admin_client.get("/api/environment/stations/" + "x" * 300 + "/forecast")
    assert too_long.status_code == 422 and too_long.headers["content-type"].startswith(PROBLEM)
    sid = add_station(ctx, "fc-perm", "市政府", CITY_HALL)
    headers = token_with(ctx, seeded, "no_air", ["warning.forecast.read"])
    denied = admin_client.get(f"/api/environment/stations/{quote(sid)}/forecast", headers=headers)
    assert denied.status_code == 403 and denied.headers["content-type"].startswith(PROBLEM)
