"""Forecast series: declarations, the forecasting job on real history, the API, refits and forecast rules."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from citybrain.apps.context import services as context
from citybrain.apps.warning import evaluator as ev
from citybrain.apps.warning import forecasts, services
from citybrain.apps.warning.models import ForecastSeries, SeriesDeclaration
from citybrain.apps.warning.schemas import RuleSpec, SeriesSpec
from citybrain.apps.warning.settings import WarningSettings
from citybrain.core.apps import discover
from citybrain.core.asgi import create_app
from citybrain.core.context import AppContext
from citybrain.core.permissions import SYSTEM
from citybrain.core.settings import Settings
from citybrain.sdk import Conflict
from tests.apps.iot.conftest import user_token
from tests.apps.warning.conftest import TYPE, station, wait_for, warnings_of
from tests.apps.warning.fdeclaring import APP as FDECLARING
from tests.conftest import Seeded

HOUR = timedelta(hours=1)
# 23 days of hourly means: the 504 points (three weeks) a model is fitted on at least, plus one backtest
# horizon of 24 and a day to spare.
DAYS = 23
# The warning app and what it requires: no other app declares series that these tests would count.
APPS = ("identity", "context", "geo", "warning")


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    """The platform with the warning app and what it requires."""
    return create_app(settings.model_copy(update={"apps": APPS}))


def problem(response: Any, status: int) -> dict[str, Any]:
    """Assert a problem+json answer with the status; return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    return body


def cheap(ctx: AppContext, models: tuple[str, ...] = ("seasonal_naive",), **changes: Any) -> WarningSettings:
    """Settings for fast runs: one backtest origin, the shortest training window, the given models."""
    conf = services.settings(ctx).model_copy(
        update={
            "forecast_origins": 1,
            "forecast_max_train": 504,
            "forecast_models": models,
            **changes,
        }
    )
    ctx.app_settings["warning"] = conf
    return conf


def hour_of(moment: datetime) -> datetime:
    """The start of the hour holding a moment."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def pattern(at: datetime, peak: datetime) -> float:
    """A daily cycle between 20 and 80 with its peak at the hour of `peak`."""
    return 50.0 + 30.0 * math.cos(2 * math.pi * ((at - peak) / HOUR) / 24)


def write_hours(ctx: AppContext, entity_id: str, first: datetime, hours: int, peak: datetime) -> None:
    """Store `hours` hourly pm25 readings from `first` (two a hour, their mean on the pattern)."""
    readings = []
    for i in range(hours):
        at = first + i * HOUR
        value = pattern(at, peak)
        readings.append(context.Reading(entity_id, at + timedelta(minutes=10), {"pm25": value - 1.0}))
        readings.append(context.Reading(entity_id, at + timedelta(minutes=40), {"pm25": value + 1.0}))
    result = context.ingest(ctx, SYSTEM, "", readings)
    assert not result.unknown and result.stored == 2 * hours


def declare(api: TestClient, code: str = "pm25-hourly", **changes: Any) -> dict[str, Any]:
    """Declare a series of the hourly mean pm25 of every station through the API."""
    body = {"code": code, "name_zh": "PM2.5 小时均值预测", "entity_type": TYPE, "attr": "pm25", **changes}
    response = api.post("/api/warning/forecasts/declarations", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def series_of(api: TestClient, **params: Any) -> dict[str, dict[str, Any]]:
    """The listed series by entity id."""
    response = api.get("/api/warning/forecasts/series", params=params)
    assert response.status_code == 200, response.text
    return {item["entity_id"]: item for item in response.json()["items"]}


def test_the_job_stores_forecasts_intervals_and_reports(api: TestClient, ctx: AppContext) -> None:
    """Every station of the type gets a series; enough history is forecast, too little is marked short."""
    now = datetime.now(UTC)
    end = hour_of(now)
    long_ = station(ctx, "fc-long")
    short = station(ctx, "fc-short")
    write_hours(ctx, long_, end - DAYS * 24 * HOUR, DAYS * 24, peak=end)
    write_hours(ctx, short, end - 72 * HOUR, 72, peak=end)
    created = declare(api)
    assert (created["series"], created["origin"]) == (2, "operator")
    cheap(ctx, models=("seasonal_naive", "mstl"))

    summary = forecasts.run(ctx, now)
    assert (summary.examined, summary.forecast, summary.short, summary.failed) == (2, 1, 1, 0)

    listed = series_of(api)
    assert listed[short]["status"] == "short"
    assert listed[short]["detail"] == "Not enough history: 72 of 528 points."
    assert listed[short]["model"] is None
    item = listed[long_]
    assert (item["status"], item["decision"], item["frequency"], item["horizon"]) == (
        "ok",
        "reselect",
        "hourly",
        24,
    )
    assert item["model"] in ("seasonal_naive", "mstl")
    assert datetime.fromisoformat(item["data_end"]) == end - HOUR
    assert item["points"] >= 528

    detail = api.get(f"/api/warning/forecasts/series/{item['id']}").json()
    fc = detail["forecast"]
    stamps = [datetime.fromisoformat(t) for t in fc["timestamps"]]
    assert stamps == [end + i * HOUR for i in range(24)]
    expected = [pattern(t, end) for t in stamps]
    assert max(abs(m - e) for m, e in zip(fc["mean"], expected, strict=True)) < 3.0
    (i80, i95) = sorted(fc["intervals"], key=lambda i: i["level"])
    assert (i80["level"], i95["level"]) == (0.8, 0.95)
    for k, mean in enumerate(fc["mean"]):
        assert i95["lower"][k] <= i80["lower"][k] <= mean <= i80["upper"][k] <= i95["upper"][k]
    report = detail["report"]
    assert set(report["models"]) == {"seasonal_naive", "mstl"}
    assert report["chosen"] == item["model"] == detail["choice"]["model"]
    assert report["margin_over_seasonal_naive"] == item["margin"]
    naive = report["models"]["seasonal_naive"]
    assert {"mae", "rmse", "mape"} <= set(naive) and len(naive["by_step"]) == 24
    assert naive["rmse"] >= naive["mae"] >= 0
    history = api.get(f"/api/warning/forecasts/series/{item['id']}/history").json()
    assert len(history) == 1 and history[0]["mean"] == fc["mean"]
    assert api.get(f"/api/warning/forecasts/series/{listed[short]['id']}").json()["forecast"] is None
    assert set(series_of(api, status="short")) == {short}


def test_refit_decisions_and_bounded_history(api: TestClient, ctx: AppContext) -> None:
    """First run chooses; no new data: nothing; six new hours: a refit; past the reselect age: a new choice."""
    now = datetime.now(UTC)
    end = hour_of(now)
    sid = station(ctx, "fc-refit")
    write_hours(ctx, sid, end - DAYS * 24 * HOUR, DAYS * 24, peak=end)
    declare(api, entity_id=sid)
    cheap(ctx, forecast_history=2, forecast_refit_points=6)

    assert forecasts.run(ctx, now).forecast == 1
    (first,) = series_of(api).values()
    assert first["decision"] == "reselect"

    summary = forecasts.run(ctx, now + timedelta(minutes=5))
    assert (summary.forecast, summary.skipped) == (0, 1)
    second = series_of(api)[sid]
    assert second["decision"] == "none"
    assert second["issued_at"] == first["issued_at"] and second["run_at"] != first["run_at"]

    write_hours(ctx, sid, end, 6, peak=end)
    later = now + 6 * HOUR
    assert forecasts.run(ctx, later).forecast == 1
    third = series_of(api)[sid]
    assert third["decision"] == "refit"
    assert datetime.fromisoformat(third["data_end"]) == end + 5 * HOUR
    detail = api.get(f"/api/warning/forecasts/series/{third['id']}").json()
    assert datetime.fromisoformat(detail["forecast"]["timestamps"][0]) == end + 6 * HOUR

    cheap(ctx, forecast_history=2, forecast_reselect_days=0.0001)  # about nine seconds
    assert forecasts.run(ctx, later + timedelta(minutes=1)).forecast == 1
    assert series_of(api)[sid]["decision"] == "reselect"
    history = api.get(f"/api/warning/forecasts/series/{third['id']}/history").json()
    assert len(history) == 2  # three forecasts were made; two are kept
    issued = [datetime.fromisoformat(h["issued_at"]) for h in history]
    assert issued == [later + timedelta(minutes=1), later]


def test_a_failing_series_is_recorded_and_the_others_go_on(api: TestClient, ctx: AppContext) -> None:
    """A series whose entity was deleted is marked failed with the reason; the next one is forecast."""
    now = datetime.now(UTC)
    end = hour_of(now)
    gone = station(ctx, "fc-gone")
    kept = station(ctx, "fc-kept")
    for sid in (gone, kept):
        write_hours(ctx, sid, end - DAYS * 24 * HOUR, DAYS * 24, peak=end)
    declare(api)
    context.delete_entity(ctx, SYSTEM, "", gone)
    cheap(ctx)
    summary = forecasts.run(ctx, now)
    assert (summary.forecast, summary.failed) == (1, 1)
    listed = series_of(api)
    assert (listed[gone]["status"], listed[gone]["detail"]) == ("failed", "The entity no longer exists.")
    assert listed[kept]["status"] == "ok"


def test_the_work_per_run_is_capped(api: TestClient, ctx: AppContext) -> None:
    """With a cap of one series per run, runs take the least recently examined series in turn."""
    now = datetime.now(UTC)
    ids = [station(ctx, f"fc-cap-{i}") for i in range(3)]
    declare(api)
    cheap(ctx, forecast_max_series=1)
    for i in range(3):
        assert forecasts.run(ctx, now + i * timedelta(minutes=1)).examined == 1
    listed = series_of(api)
    assert {listed[sid]["status"] for sid in ids} == {"short"}  # each was examined once
    assert len({listed[sid]["run_at"] for sid in ids}) == 3


def rule(code: str, **forecast: Any) -> dict[str, Any]:
    """A forecast rule on the stations' pm25: 蓝 above 70, 黄 above 90, within the next 3 hours."""
    return {
        "code": code,
        "name_zh": "PM2.5 预测超标",
        "kind": "forecast",
        "entity_type": TYPE,
        "forecast": {
            "attr": "pm25",
            "horizon_hours": 3,
            "levels": [{"level": "blue", "threshold": 70}, {"level": "yellow", "threshold": 90}],
            **forecast,
        },
        "hysteresis": {"hold_seconds": 0},
    }


def test_a_forecast_rule_raises_and_lifts_a_warning(api: TestClient, ctx: AppContext) -> None:
    """The forecast peaks at 80 in the next hours: 蓝; six hours on it is past the peak: lifted."""
    now = datetime.now(UTC)
    end = hour_of(now)
    sid = station(ctx, "fc-rule")
    write_hours(ctx, sid, end - DAYS * 24 * HOUR, DAYS * 24, peak=end)
    declare(api, entity_id=sid)
    created = api.post("/api/warning/rules", json=rule("pm25-forecast"))
    assert created.status_code == 201, created.text
    cheap(ctx)

    forecasts.run(ctx, now)
    (warning,) = warnings_of(api, status="active", rule="pm25-forecast")
    assert (warning["rule_code"], warning["level"], warning["entity_id"]) == ("pm25-forecast", "blue", sid)
    assert warning["values"]["pm25"] == pytest.approx(80.0)
    assert datetime.fromisoformat(warning["values"]["forecastAt"]) == end

    write_hours(ctx, sid, end, 6, peak=end)
    forecasts.run(ctx, now + 6 * HOUR)
    assert warnings_of(api, status="active", rule="pm25-forecast") == []
    (lifted,) = warnings_of(api, status="lifted", rule="pm25-forecast")
    assert lifted["id"] == warning["id"] and lifted["lifted_by"] == "rule"
    timeline = api.get(f"/api/warning/warnings/{warning['id']}").json()["timeline"]
    assert [step["kind"] for step in timeline] == ["raised", "lifted"]
    assert timeline[1]["values"]["pm25"] < 66.5  # below the threshold less the hysteresis margin
    # the dry run replays the kept forecasts through the rule
    dry = api.post(f"/api/warning/rules/{created.json()['id']}/dry-run")
    assert dry.status_code == 200, dry.text
    result = dry.json()
    assert (result["entities"], result["values"], result["fired"]) == (1, 2, 1)
    assert [(t["from_level"], t["to_level"]) for t in result["transitions"]] == [
        (None, "blue"),
        ("blue", None),
    ]


def test_forecast_rules_compare_the_mean_or_the_80_percent_bound() -> None:
    """The evaluator alone: the horizon cuts the steps; the 80 % bound is used on the unsafe side."""
    now = datetime(2026, 7, 1, 8, tzinfo=UTC)

    def evaluator(**forecast: Any) -> ev.Evaluator:
        spec = RuleSpec.model_validate(rule("unit-rule", **forecast))
        machine = ev.Evaluator()
        machine.add(ev.compile_rule(1, spec, services.expand))
        return machine

    type_iri, attr = services.expand(TYPE), services.expand("pm25")
    # (time, mean, lower 80 %, upper 80 %): the mean reaches 95 only after five hours
    points = [(now + i * HOUR, m, m - 8, m + 8) for i, m in enumerate([60, 64, 66, 68, 80, 95])]
    plain = evaluator()
    plain.forecasted("", "e1", [type_iri], attr, points, now)
    assert plain.transitions == []  # within 3 h the mean stays at or below 68
    upper = evaluator(bound="interval80")
    upper.forecasted("", "e1", [type_iri], attr, points, now)
    (raised,) = upper.transitions
    assert (raised.to_rank, raised.values["forecastAt"]) == (1, (now + 1 * HOUR).isoformat())
    assert raised.values[attr] == 72  # 64 + 8, the first step above 70
    upper.forecasted("", "e1", [type_iri], attr, [(now, 40.0, 30.0, 50.0)], now + HOUR)
    assert upper.transitions[-1].to_rank == 0  # lifted
    falling = evaluator(op="<", bound="interval80", levels=[{"level": "blue", "threshold": 55}])
    falling.forecasted("", "e1", [type_iri], attr, points, now)
    assert [t.values[attr] for t in falling.transitions] == [52]  # the lower bound, 60 - 8
    other = evaluator()
    other.forecasted("", "e1", ["https://example.org/Other"], attr, points, now)
    other.change("", "e1", [type_iri], attr, 500.0, now, now)  # live values do not feed forecast rules
    assert other.transitions == []


def test_declarations_bad_input_changes_nothing(api: TestClient, ctx: AppContext) -> None:
    """Unknown types, entities and attributes, text attributes and bad fields are 422; duplicates 409."""
    sid = station(ctx, "fc-bad")
    url = "/api/warning/forecasts/declarations"
    base = {"code": "bad-one", "entity_type": TYPE, "attr": "pm25"}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"entity_type": "NoSuchThing"}, "entity_type"),
        ({"entity_id": "urn:ngsi-ld:AirQualityObserved:none"}, "entity_id"),
        ({"attr": "nothing"}, "attr"),
        ({"attr": "quality"}, "attr"),  # holds text
        ({"entity_id": sid, "attr": "nothing"}, "attr"),
        ({"horizon": 169}, "horizon"),  # hourly: a week at most
        ({"horizon": 0}, "horizon"),
        ({"frequency": "weekly"}, "frequency"),
        ({"aggregation": "median"}, "aggregation"),
        ({"code": "Bad Code"}, "code"),
        ({"colour": "red"}, "colour"),
    ]
    for change, named in cases:
        body = problem(api.post(url, json={**base, **change}), 422)
        assert named in str(body), (change, body)
    with ctx.read() as session:
        assert session.query(SeriesDeclaration).count() == 0
    declare(api, code="bad-one")
    problem(api.post(url, json=base), 409)
    problem(api.delete(f"{url}/no-such"), 404)
    problem(api.delete(f"{url}/Bad%20Code"), 422)
    for path in ("/series/999", "/series/999/history"):
        problem(api.get(f"/api/warning/forecasts{path}"), 404)
    problem(api.get("/api/warning/forecasts/series/0"), 422)
    problem(api.get("/api/warning/forecasts/series", params={"status": "great"}), 422)
    problem(api.get("/api/warning/forecasts/series", params={"limit": 0}), 422)
    problem(api.get("/api/warning/forecasts/series/1/history", params={"limit": 0}), 422)
    assert api.delete(f"{url}/bad-one").status_code == 204
    with ctx.read() as session:
        assert session.query(SeriesDeclaration).count() == 0
        assert session.query(ForecastSeries).count() == 0


def test_forecast_rules_are_validated(api: TestClient, ctx: AppContext) -> None:
    """A forecast rule needs its forecast, a numeric or forecast attribute, and no conditions."""
    station(ctx, "fc-val")
    url = "/api/warning/rules"
    problem(api.post(url, json=rule("r1", attr="nothing")), 422)
    assert "forecast.attr" in str(problem(api.post(url, json=rule("r2", attr="quality")), 422))
    problem(
        api.post(url, json=rule("r3", levels=[{"level": "blue", "threshold": 70, "for_seconds": 60}])), 422
    )
    problem(api.post(url, json={**rule("r4"), "forecast": None}), 422)
    condition = {"attr": "pm25", "levels": [{"level": "blue", "threshold": 1}]}
    problem(api.post(url, json={**rule("r5"), "conditions": [condition]}), 422)
    problem(api.post(url, json={**rule("r6"), "kind": "threshold", "conditions": [condition]}), 422)
    assert not {r["code"] for r in api.get(url).json()} & {f"r{i}" for i in range(1, 7)}
    disorder = [{"level": "blue", "threshold": 90}, {"level": "yellow", "threshold": 70}]
    assert "out of order" in str(problem(api.post(url, json=rule("r8", levels=disorder)), 422))
    created = api.post(url, json=rule("r7"))
    assert created.status_code == 201, created.text
    rule_url = f"{url}/{created.json()['id']}"
    edited = api.patch(rule_url, json={"forecast": {**rule("r7")["forecast"], "horizon_hours": 6}})
    assert edited.status_code == 200, edited.text
    assert (edited.json()["version"], edited.json()["definition"]["forecast"]["horizon_hours"]) == (2, 6)
    problem(api.patch(rule_url, json={"forecast": {**rule("r7")["forecast"], "attr": "quality"}}), 422)
    problem(api.patch(rule_url, json={"kind": "threshold"}), 422)  # it still has its forecast
    assert api.get(rule_url).json()["version"] == 2


def test_permissions(client: TestClient, ctx: AppContext, seeded: Seeded) -> None:
    """Anonymous: 401; a reader reads series but may not declare or remove them."""
    problem(client.get("/api/warning/forecasts/series"), 401)
    token = user_token(ctx, seeded, "forecast_reader", ["warning.forecast.read"], None)
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/warning/forecasts/series", headers=headers).status_code == 200
    assert client.get("/api/warning/forecasts/declarations", headers=headers).status_code == 200
    station(ctx, "fc-perm")
    body = {"code": "perm", "entity_type": TYPE, "attr": "pm25"}
    problem(client.post("/api/warning/forecasts/declarations", json=body, headers=headers), 403)
    problem(client.delete("/api/warning/forecasts/declarations/perm", headers=headers), 403)
    token = user_token(ctx, seeded, "rule_reader", ["warning.rule.read"], None)
    problem(client.get("/api/warning/forecasts/series", headers={"Authorization": f"Bearer {token}"}), 403)
    with ctx.read() as session:
        assert session.query(SeriesDeclaration).count() == 0


@pytest.fixture
def fdeclaring(settings: Settings) -> Iterator[TestClient]:
    """The platform with one more app, which declares a forecast series."""
    specs = [*discover(), replace(FDECLARING, package="tests.apps.warning.fdeclaring")]
    only = settings.model_copy(update={"apps": (*APPS, FDECLARING.label)})
    with TestClient(create_app(only, specs), base_url="http://testserver") as test_client:
        yield test_client


def test_apps_declare_series_in_their_warnings_module(fdeclaring: TestClient) -> None:
    """A declared series is stored by the job (origin: the app), cannot be removed, and covers the gauges."""
    ctx: AppContext = fdeclaring.app.state.ctx  # type: ignore[attr-defined]
    gauge = "urn:ngsi-ld:WaterObserved:anchang-1"
    body = {"id": gauge, "type": "WaterObserved", "height": {"type": "Property", "value": 2.5}}
    assert context.upsert_entities(ctx, SYSTEM, "", [body]).success == [gauge]
    # a forecast rule may watch the declared series' attribute
    spec = RuleSpec.model_validate(
        {
            **rule("river-forecast"),
            "entity_type": "WaterObserved",
            "forecast": {**rule("unused")["forecast"], "attr": "height"},
        }
    )
    services.validate(ctx, spec)
    cheap(ctx)
    summary = forecasts.run(ctx, datetime.now(UTC))
    assert (summary.examined, summary.short) == (1, 1)
    (declared,) = forecasts.list_declarations(ctx, SYSTEM)
    assert (declared.code, declared.origin, declared.series) == ("river-height", "fdeclare", 1)
    assert forecasts.sync_declared(ctx) == 0
    with pytest.raises(Conflict, match="declared by the app"):
        forecasts.delete_declaration(ctx, SYSTEM, "river-height")


def test_the_lifespan_runs_the_job_on_schedule(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no first delay and a short period, the running app examines a new series by itself."""
    monkeypatch.setenv("CITYBRAIN_WARNING_FORECAST_FIRST_DELAY_SECONDS", "0")
    monkeypatch.setenv("CITYBRAIN_WARNING_FORECAST_SECONDS", "0.2")
    only = settings.model_copy(update={"apps": APPS})
    with TestClient(create_app(only), base_url="http://testserver") as client:
        ctx: AppContext = client.app.state.ctx  # type: ignore[attr-defined]
        assert services.settings(ctx).forecast_seconds == 0.2
        sid = station(ctx, "fc-scheduled")
        forecasts.create_declaration(
            ctx, SYSTEM, SeriesSpec(code="scheduled", entity_type=TYPE, entity_id=sid, attr="pm25")
        )

        def examined() -> str | None:
            page = forecasts.list_series(ctx, SYSTEM)
            return page.items[0].status if page.items and page.items[0].run_at else None

        assert wait_for(examined) == "short"
        problem(client.get("/api/warning/forecasts/series"), 401)  # the loop still answers
