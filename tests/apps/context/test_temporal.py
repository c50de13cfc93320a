"""The NGSI-LD temporal API: history of every attribute change, windows, lastN, values and aggregates."""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, insert, select

from citybrain.apps.context import services, temporal
from citybrain.apps.context.entities import format_datetime
from citybrain.apps.context.models import AttributeHistory
from citybrain.core.asgi import create_app
from citybrain.core.context import AppContext
from citybrain.core.permissions import SYSTEM
from citybrain.core.settings import Settings
from tests.apps.context.test_ngsild import BASE, problem, station

ENTITY = station()["id"]
START = datetime(2026, 11, 24, 0, 0, tzinfo=UTC)


def at(minutes: int) -> str:
    return (START + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def history(ngsi: TestClient) -> list[float]:
    """One station whose pm25 was reported every 15 minutes for 3 hours (12 readings)."""
    values = [float(10 + i * 5) for i in range(12)]
    first = station(pm25=values[0])
    first["pm25"]["observedAt"] = "2026-11-23T23:00:00Z"  # the installation reading, before the window
    assert ngsi.post(f"{BASE}/entities", json=first).status_code == 201
    for i, value in enumerate(values):
        response = ngsi.patch(
            f"{BASE}/entities/{ENTITY}/attrs/pm25", json={"value": value, "observedAt": at(15 * i)}
        )
        assert response.status_code == 204, response.text
    return values


def test_every_change_is_kept_and_returned_in_order(ngsi: TestClient, history: list[float]) -> None:
    body = ngsi.get(f"{BASE}/temporal/entities/{ENTITY}", params={"attrs": "pm25"}).json()
    series = body["pm25"]
    # the installation reading (the day before) and then the 12 reported values, ordered by observedAt
    assert [i["value"] for i in series] == [history[0], *history]
    assert series[0]["observedAt"] == "2026-11-23T23:00:00.000000Z"
    assert all(i["instanceId"].startswith("urn:ngsi-ld:attribute:instance:") for i in series)


def test_window_and_last_n(ngsi: TestClient, history: list[float]) -> None:
    between = ngsi.get(
        f"{BASE}/temporal/entities/{ENTITY}",
        params={"attrs": "pm25", "timerel": "between", "timeAt": at(30), "endTimeAt": at(90)},
    ).json()
    assert [i["value"] for i in between["pm25"]] == history[2:6]
    before = ngsi.get(
        f"{BASE}/temporal/entities/{ENTITY}", params={"attrs": "pm25", "timerel": "before", "timeAt": at(15)}
    ).json()
    assert [i["observedAt"] for i in before["pm25"]] == [
        "2026-11-23T23:00:00.000000Z",
        "2026-11-24T00:00:00.000000Z",
    ]
    last = ngsi.get(
        f"{BASE}/temporal/entities/{ENTITY}",
        params={"attrs": "pm25", "timerel": "after", "timeAt": at(0), "lastN": 3},
    ).json()
    assert [i["value"] for i in last["pm25"]] == history[-3:]


def test_temporal_values(ngsi: TestClient, history: list[float]) -> None:
    body = ngsi.get(
        f"{BASE}/temporal/entities/{ENTITY}",
        params={"attrs": "pm25", "timerel": "after", "timeAt": at(0), "options": "temporalValues"},
    ).json()
    assert body["pm25"]["type"] == "Property"
    assert body["pm25"]["values"][0] == [history[0], "2026-11-24T00:00:00.000000Z"]
    assert len(body["pm25"]["values"]) == 12


def test_aggregated_values_per_hour(ngsi: TestClient, history: list[float]) -> None:
    body = ngsi.get(
        f"{BASE}/temporal/entities/{ENTITY}",
        params={
            "attrs": "pm25",
            "timerel": "between",
            "timeAt": at(0),
            "endTimeAt": at(180),
            "options": "aggregatedValues",
            "aggrMethods": "avg,max,totalCount,sum,stddev",
            "aggrPeriodDuration": "PT1H",
        },
    ).json()
    avg = body["pm25"]["avg"]
    hours = [history[0:4], history[4:8], history[8:12]]
    assert [round(v[0], 6) for v in avg] == [sum(h) / 4 for h in hours]
    assert avg[0][1:] == ["2026-11-24T00:00:00.000000Z", "2026-11-24T01:00:00.000000Z"]
    assert [v[0] for v in body["pm25"]["max"]] == [max(h) for h in hours]
    assert [v[0] for v in body["pm25"]["totalCount"]] == [4, 4, 4]
    expected_sd = (sum((x - 17.5) ** 2 for x in hours[0]) / 4) ** 0.5
    assert body["pm25"]["stddev"][0][0] == pytest.approx(expected_sd)


def test_temporal_query_over_several_entities(ngsi: TestClient, history: list[float]) -> None:
    assert ngsi.post(f"{BASE}/entities", json=station(2, pm25=5.0)).status_code == 201
    body = ngsi.get(
        f"{BASE}/temporal/entities",
        params={
            "type": "AirQualityObserved",
            "attrs": "pm25",
            "timerel": "after",
            "timeAt": "2026-01-01T00:00:00Z",
        },
    ).json()
    assert sorted(e["id"] for e in body) == [station(1)["id"], station(2)["id"]]
    posted = ngsi.post(
        f"{BASE}/temporal/entityOperations/query",
        json={
            "type": "Query",
            "entities": [{"type": "AirQualityObserved"}],
            "attrs": ["pm25"],
            "temporalQ": {"timerel": "after", "timeAt": at(150)},
        },
    )
    assert posted.status_code == 200, posted.text
    by_id = {e["id"]: e for e in posted.json()}
    assert [i["value"] for i in by_id[ENTITY]["pm25"]] == history[-2:]


def test_bad_temporal_parameters(ngsi: TestClient, history: list[float]) -> None:
    url = f"{BASE}/temporal/entities/{ENTITY}"
    problem(ngsi.get(url, params={"timerel": "between", "timeAt": at(0)}), 400, "BadRequestData")
    problem(ngsi.get(url, params={"timerel": "whenever", "timeAt": at(0)}), 400, "BadRequestData")
    problem(ngsi.get(url, params={"timerel": "after", "timeAt": "yesterday"}), 400, "BadRequestData")
    problem(
        ngsi.get(url, params={"options": "aggregatedValues", "aggrMethods": "median"}), 400, "BadRequestData"
    )
    problem(
        ngsi.get(
            url, params={"options": "aggregatedValues", "aggrMethods": "avg", "aggrPeriodDuration": "1 hour"}
        ),
        400,
        "BadRequestData",
    )
    problem(ngsi.get(f"{BASE}/temporal/entities/urn:ngsi-ld:X:missing"), 404, "ResourceNotFound")


def test_retention_really_deletes_old_history(
    ngsi: TestClient, ctx: AppContext, history: list[float]
) -> None:
    with ctx.read() as session:
        before = session.scalar(select(func.count()).select_from(AttributeHistory))
    removed = services.purge_history(ctx, SYSTEM, datetime.now(UTC) + timedelta(seconds=1))
    with ctx.read() as session:
        after = session.scalar(select(func.count()).select_from(AttributeHistory))
    assert removed == before and after == 0


def test_the_retention_setting_purges_old_history_while_the_app_runs(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CITYBRAIN_CONTEXT_HISTORY_RETENTION_DAYS", "30")
    monkeypatch.setenv("CITYBRAIN_CONTEXT_HISTORY_PURGE_SECONDS", "0.1")
    app = create_app(settings)
    ctx: AppContext = app.state.ctx
    now = datetime.now(UTC)

    def row(days_ago: float) -> dict[str, Any]:
        moment = now - timedelta(days=days_ago)
        instance = {"type": "Property", "value": days_ago}
        return {"tenant": "", "entity_id": ENTITY, "attr": "urn:x:pm25", "dataset_id": "", "observed_at": moment,
                "modified_at": moment, "number": days_ago, "instance": instance}  # fmt: skip

    with ctx.uow(SYSTEM, "test.history") as uow:
        uow.session.execute(insert(AttributeHistory), [row(45), row(31), row(29), row(1)])

    def kept() -> list[float]:
        with ctx.read() as session:
            return sorted(n for n in session.scalars(select(AttributeHistory.number)) if n is not None)

    with TestClient(app):
        deadline = time.monotonic() + 5
        while kept() != [1, 29] and time.monotonic() < deadline:
            time.sleep(0.05)
    assert kept() == [1, 29]


def test_short_histories_are_complete(ngsi: TestClient, history: list[float]) -> None:
    cases: list[dict[str, Any]] = [
        {"attrs": "pm25"},
        {"attrs": "pm25", "lastN": 3},
        {"options": "temporalValues"},
    ]
    for params in cases:
        response = ngsi.get(f"{BASE}/temporal/entities/{ENTITY}", params=params)
        assert response.status_code == 200, response.text
        assert "content-range" not in response.headers


# --- pagination of long histories ----------------------------------------------------------------

LONG, SHORT = "urn:ngsi-ld:AirQualityObserved:long-001", "urn:ngsi-ld:AirQualityObserved:long-002"
VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"
PM25_READINGS, NO2_READINGS = 2500, 1200
RANGE = re.compile(r"^date-time (\S+Z)-(\S+Z)/(\*|\d+)$")


def minute(n: int) -> datetime:
    return START + timedelta(minutes=n)


def stamp(n: int) -> str:
    return format_datetime(minute(n))


def add_history(ctx: AppContext, entity_id: str, attr: str, readings: list[tuple[datetime, float]]) -> None:
    """Write attribute instances straight into the history, as the broker stores them."""
    rows = [
        {
            "tenant": "",
            "entity_id": entity_id,
            "attr": VOCAB + attr,
            "dataset_id": "",
            "observed_at": at,
            "modified_at": at,
            "number": value,
            "instance": {"type": "Property", "value": value, "observedAt": format_datetime(at)},
        }
        for at, value in readings
    ]
    with ctx.db.write_sessions.begin() as session:
        session.execute(insert(AttributeHistory), rows)


@pytest.fixture
def long_history(ngsi: TestClient, ctx: AppContext) -> None:
    """LONG: pm25 every minute (readings 999-1001 at one instant), no2 every 2 minutes; SHORT: 3 pm25."""
    for entity_id in (LONG, SHORT):
        plain = {"id": entity_id, "type": "AirQualityObserved"}
        created = ngsi.post(f"{BASE}/entities", json={**plain, "pm25": {"type": "Property", "value": 0}})
        assert created.status_code == 201, created.text
    pm25 = [(minute(min(i, 999) if 999 <= i <= 1001 else i), float(i)) for i in range(PM25_READINGS)]
    add_history(ctx, LONG, "pm25", pm25)
    add_history(ctx, LONG, "no2", [(minute(2 * j), 10000.0 + j) for j in range(NO2_READINGS)])
    add_history(ctx, SHORT, "pm25", [(minute(n), -float(n)) for n in (10, 1500, 2450)])


def _values(item: dict[str, Any]) -> dict[str, list[Any]]:
    """Per attribute, the values of one temporal entity, temporalValues or normalized."""
    out: dict[str, list[Any]] = {}
    for name, member in item.items():
        if name in ("id", "type"):
            continue
        out[name] = (
            [v for v, _ in member["values"]] if isinstance(member, dict) else [i["value"] for i in member]
        )
    return out


Fetch = Callable[[TestClient, dict[str, Any]], Any]
FETCHES: dict[str, tuple[Fetch, str | None]] = {
    "one entity, temporalValues": (
        lambda c, t: c.get(f"{BASE}/temporal/entities/{LONG}", params={**t, "options": "temporalValues"}),
        None,
    ),
    "one entity, normalized": (lambda c, t: c.get(f"{BASE}/temporal/entities/{LONG}", params=t), None),
    "query, normalized": (
        lambda c, t: c.get(f"{BASE}/temporal/entities", params={**t, "type": "AirQualityObserved"}),
        SHORT,
    ),
    "POST query, temporalValues": (
        lambda c, t: c.post(
            f"{BASE}/temporal/entityOperations/query",
            params={"options": "temporalValues"},
            json={"type": "Query", "entities": [{"type": "AirQualityObserved"}], "temporalQ": t},
        ),
        SHORT,
    ),
}


def _walk(
    ngsi: TestClient, fetch: Fetch, first: dict[str, Any]
) -> tuple[dict[str, dict[str, list[Any]]], list[str]]:
    """Follow Content-Range forwards from `first` to the end: all values per entity, and each range seen."""
    seen: dict[str, dict[str, list[Any]]] = {}
    ranges: list[str] = []
    window = first
    while True:
        response = fetch(ngsi, window)
        body = response.json()
        for item in body if isinstance(body, list) else [body]:
            assert item["id"] != LONG or all(len(v) <= temporal.MAX_INSTANCES for v in _values(item).values())
            for name, values in _values(item).items():
                seen.setdefault(item["id"], {}).setdefault(name, []).extend(values)
        if response.status_code == 200:
            assert "content-range" not in response.headers
            return seen, ranges
        assert response.status_code == 206, response.text
        ranges.append(response.headers["content-range"])
        found = RANGE.match(response.headers["content-range"])
        assert found is not None and found[3] == "*", ranges
        window = {**window, "timerel": "after", "timeAt": found[2]}


@pytest.mark.parametrize("how", list(FETCHES))
def test_following_the_range_walks_the_whole_history(ngsi: TestClient, long_history: None, how: str) -> None:
    fetch, other = FETCHES[how]
    seen, ranges = _walk(ngsi, fetch, {"attrs": "pm25,no2", "timerel": "after", "timeAt": stamp(0)})
    # Every page stops before the first instant it leaves out: the three readings of minute 999 share a
    # page, and no2 (which alone would fit in two pages) is cut at the same instants.
    assert ranges == [
        f"date-time {stamp(0)}-{stamp(999)}/*",
        f"date-time {stamp(999)}-{stamp(1999)}/*",
    ]
    assert seen[LONG]["pm25"] == [float(i) for i in range(PM25_READINGS)]
    assert seen[LONG]["no2"] == [10000.0 + j for j in range(NO2_READINGS)]
    if other is not None:
        assert seen[other] == {"pm25": [-10.0, -1500.0, -2450.0]}


def test_first_page_without_time_window_starts_at_the_oldest_instance(
    ngsi: TestClient, long_history: None
) -> None:
    response = ngsi.get(
        f"{BASE}/temporal/entities/{LONG}", params={"attrs": "pm25", "options": "temporalValues"}
    )
    assert response.status_code == 206
    assert response.headers["content-range"] == f"date-time {stamp(0)}-{stamp(999)}/*"
    values = response.json()["pm25"]["values"]
    # minute 999 holds readings 999-1001: the page stops before it, and the next one starts there
    assert len(values) == 999 and values[-1] == [998.0, stamp(998)]


def test_a_page_holds_every_instance_of_an_instant(
    ngsi: TestClient, ctx: AppContext, long_history: None
) -> None:
    """More instances of one attribute at one instant than fit a page: that instant comes whole."""
    crowded = [(minute(5000), float(i)) for i in range(temporal.MAX_INSTANCES + 5)] + [(minute(5001), -1.0)]
    add_history(ctx, SHORT, "no2", crowded)
    first = ngsi.get(
        f"{BASE}/temporal/entities/{SHORT}",
        params={"attrs": "no2", "timerel": "after", "timeAt": stamp(4000), "options": "temporalValues"},
    )
    assert first.status_code == 206
    assert first.headers["content-range"] == f"date-time {stamp(4000)}-{stamp(5001)}/*"
    assert len(first.json()["no2"]["values"]) == temporal.MAX_INSTANCES + 5
    rest = ngsi.get(
        f"{BASE}/temporal/entities/{SHORT}",
        params={"attrs": "no2", "timerel": "after", "timeAt": stamp(5001), "options": "temporalValues"},
    )
    assert rest.status_code == 200
    assert rest.json()["no2"]["values"] == [[-1.0, stamp(5001)]]


def test_last_n_pages_backwards(ngsi: TestClient, long_history: None) -> None:
    url = f"{BASE}/temporal/entities/{LONG}"
    params: dict[str, Any] = {"attrs": "pm25", "options": "temporalValues", "lastN": 1500}
    first = ngsi.get(url, params=params)
    assert first.status_code == 206
    assert first.headers["content-range"] == f"date-time {stamp(2499)}-{stamp(1500)}/1500"
    newest = [v for v, _ in first.json()["pm25"]["values"]]
    assert newest == [float(i) for i in range(1500, PM25_READINGS)]  # the most recent 1000, oldest first
    # The next page ends before the least recent instant returned; lastN counts what is still wanted.
    rest = ngsi.get(url, params={**params, "timerel": "before", "timeAt": stamp(1500), "lastN": 500})
    assert rest.status_code == 200 and "content-range" not in rest.headers
    assert [v for v, _ in rest.json()["pm25"]["values"]] == [float(i) for i in range(1000, 1500)]
    # With a window, range-start is its edge: timeAt for before, endTimeAt for between.
    before = ngsi.get(url, params={**params, "timerel": "before", "timeAt": stamp(2400), "lastN": 1200})
    assert before.headers["content-range"] == f"date-time {stamp(2400)}-{stamp(1400)}/1200"
    between: dict[str, Any] = {
        "timerel": "between",
        "timeAt": stamp(0),
        "endTimeAt": stamp(2300),
        "lastN": 1001,
    }
    assert ngsi.get(url, params={**params, **between}).headers["content-range"] == (
        f"date-time {stamp(2300)}-{stamp(1300)}/1001"
    )


def test_last_n_within_the_limit_is_one_page(ngsi: TestClient, long_history: None) -> None:
    response = ngsi.post(
        f"{BASE}/temporal/entityOperations/query",
        json={
            "type": "Query",
            "entities": [{"type": "AirQualityObserved"}],
            "attrs": ["pm25"],
            "temporalQ": {"lastN": temporal.MAX_INSTANCES},
        },
    )
    assert response.status_code == 200 and "content-range" not in response.headers
    by_id = {e["id"]: e for e in response.json()}
    assert [i["value"] for i in by_id[LONG]["pm25"]] == [float(i) for i in range(1500, PM25_READINGS)]
    assert [i["value"] for i in by_id[SHORT]["pm25"]] == [-10.0, -1500.0, -2450.0]


def test_entities_are_paged_with_limit_offset_and_count(ngsi: TestClient, long_history: None) -> None:
    params: dict[str, Any] = {
        "type": "AirQualityObserved",
        "attrs": "pm25",
        "lastN": 1,
        "count": "true",
        "limit": 1,
    }
    first = ngsi.get(f"{BASE}/temporal/entities", params=params)
    second = ngsi.get(f"{BASE}/temporal/entities", params={**params, "offset": 1})
    for response in (first, second):
        assert response.status_code == 200 and response.headers["ngsild-results-count"] == "2"
    assert [e["id"] for e in first.json() + second.json()] == [LONG, SHORT]
    only_count = ngsi.get(f"{BASE}/temporal/entities", params={**params, "limit": 0})
    assert only_count.json() == [] and only_count.headers["ngsild-results-count"] == "2"
    posted = ngsi.post(
        f"{BASE}/temporal/entityOperations/query",
        params={"count": "true", "limit": 1, "offset": 1},
        json={"type": "Query", "entities": [{"type": "AirQualityObserved"}], "temporalQ": {"lastN": 1}},
    )
    assert [e["id"] for e in posted.json()] == [SHORT] and posted.headers["ngsild-results-count"] == "2"


def test_bad_paging_values(ngsi: TestClient, long_history: None) -> None:
    url = f"{BASE}/temporal/entities/{LONG}"
    for last_n in ("-1", "0", "1.5", "many", "9" * 20):
        problem(ngsi.get(url, params={"lastN": last_n}), 400, "BadRequestData")
    query = f"{BASE}/temporal/entityOperations/query"
    selector = {"type": "Query", "entities": [{"type": "AirQualityObserved"}]}
    for temporal_q in ({"lastN": -2}, {"lastN": True}, {"lastN": "x"}, "lastN=3"):
        problem(ngsi.post(query, json={**selector, "temporalQ": temporal_q}), 400, "BadRequestData")
    problem(ngsi.post(query, json={**selector, "attrs": "pm25"}), 400, "BadRequestData")
    too_long = {"options": "aggregatedValues", "aggrMethods": "avg", "aggrPeriodDuration": "P99999999D"}
    problem(ngsi.get(url, params=too_long), 400, "BadRequestData")
    problem(
        ngsi.get(f"{BASE}/temporal/entities", params={"type": "AirQualityObserved", "limit": -1}),
        400,
        "BadRequestData",
    )


def test_aggregates_over_a_long_history(ngsi: TestClient, long_history: None) -> None:
    """Every method per hour, as a plain computation over the readings gives them (population stddev)."""
    response = ngsi.get(
        f"{BASE}/temporal/entities/{LONG}",
        params={
            "attrs": "pm25",
            "timerel": "between",
            "timeAt": stamp(30),
            "endTimeAt": stamp(330),
            "options": "aggregatedValues",
            "aggrMethods": ",".join(temporal.AGGREGATES),
            "aggrPeriodDuration": "PT1H",
        },
    )
    assert response.status_code == 200 and "content-range" not in response.headers
    body = response.json()["pm25"]
    hours = [[float(i) for i in range(30 + 60 * h, min(90 + 60 * h, 330))] for h in range(5)]
    mean = [sum(h) / len(h) for h in hours]
    expected = {
        "totalCount": [len(h) for h in hours],
        "distinctCount": [len(set(h)) for h in hours],
        "sum": [sum(h) for h in hours],
        "avg": mean,
        "min": [min(h) for h in hours],
        "max": [max(h) for h in hours],
        "sumsq": [sum(x * x for x in h) for h in hours],
        "stddev": [
            math.sqrt(sum((x - m) ** 2 for x in h) / len(h)) for h, m in zip(hours, mean, strict=True)
        ],
    }
    for method, values in expected.items():
        assert [v[0] for v in body[method]] == pytest.approx(values), method
        assert [v[1:] for v in body[method]] == [[stamp(30 + 60 * h), stamp(90 + 60 * h)] for h in range(5)]


def test_aggregates_start_at_the_oldest_instance_and_zero_means_whole_range(
    ngsi: TestClient, long_history: None
) -> None:
    url = f"{BASE}/temporal/entities/{SHORT}"
    params = {"attrs": "pm25", "options": "aggregatedValues", "aggrMethods": "totalCount,min"}
    daily = ngsi.get(url, params={**params, "aggrPeriodDuration": "P1D"}).json()["pm25"]
    assert daily["totalCount"] == [[1, stamp(10), stamp(1450)], [2, stamp(1450), stamp(2890)]]
    for whole in ({}, {"aggrPeriodDuration": "PT0S"}):
        assert ngsi.get(url, params={**params, **whole}).json()["pm25"]["min"][0][:2] == [-2450.0, stamp(10)]


def test_history_of_every_attribute_even_a_deleted_one(ngsi: TestClient, history: list[float]) -> None:
    assert ngsi.delete(f"{BASE}/entities/{ENTITY}/attrs/pm25").status_code == 204
    body = ngsi.get(f"{BASE}/temporal/entities/{ENTITY}", params={"options": "temporalValues"}).json()
    # name, location and refDevice carry no observedAt, so only pm25 has a history on that time axis
    assert set(body) == {"id", "type", "pm25"}
    assert [v for v, _ in body["pm25"]["values"]] == [history[0], *history]
    modified = ngsi.get(f"{BASE}/temporal/entities/{ENTITY}", params={"timeproperty": "modifiedAt"}).json()
    assert {"pm25", "name", "location", "refDevice"} <= set(modified)


# --- many entities at once: the same answers as one entity at a time, in a bounded number of statements ---

AQ_TYPE = VOCAB + "AirQualityObserved"
MANY = 24
MANY_ATTRS = ("no2", "o3", "pm25")
Readings = dict[tuple[str, str], list[tuple[datetime, float]]]


def many_id(k: int) -> str:
    return f"urn:ngsi-ld:AirQualityObserved:many-{k:03d}"


@pytest.fixture
def many(ngsi: TestClient, ctx: AppContext) -> Readings:
    """MANY stations, each attribute on its own irregular schedule from before the window to after it."""
    created = ngsi.post(
        f"{BASE}/entityOperations/create",
        json=[
            {
                "id": many_id(k),
                "type": "AirQualityObserved",
                # the current values (no observedAt, so off the observedAt axis of the history)
                **{a: {"type": "Property", "value": 0} for a in MANY_ATTRS if a != "o3" or k % 5},
            }
            for k in range(MANY)
        ],
    )
    assert created.status_code == 201, created.text
    readings: Readings = {}
    for k in range(MANY):
        for j, attr in enumerate(MANY_ATTRS):
            if attr == "o3" and k % 5 == 0:
                continue  # these stations have no ozone sensor
            step, offset = 5 + (k + j) % 4, (3 * k + j) % 5 - 40
            series = [
                (minute(offset + step * i), float((31 * k + 17 * j + 13 * i) % 53))
                for i in range((200 - offset) // step)
            ]
            add_history(ctx, many_id(k), attr, series)
            readings[(many_id(k), VOCAB + attr)] = series
    return readings


def _expected_aggregates(
    series: list[tuple[datetime, float]], origin: datetime
) -> dict[str, list[list[Any]]]:
    """Every method per hour from `origin`, by a plain computation over the readings."""
    hours: dict[int, list[float]] = {}
    for moment, value in series:
        hours.setdefault(int((moment - origin) / timedelta(hours=1)), []).append(value)
    out: dict[str, list[list[Any]]] = {method: [] for method in temporal.AGGREGATES}
    for hour, values in sorted(hours.items()):
        mean = sum(values) / len(values)
        computed = {
            "totalCount": len(values),
            "distinctCount": len(set(values)),
            "sum": sum(values),
            "avg": mean,
            "min": min(values),
            "max": max(values),
            "stddev": math.sqrt(sum((x - mean) ** 2 for x in values) / len(values)),
            "sumsq": sum(x * x for x in values),
        }
        begin = origin + timedelta(hours=hour)
        bounds = [format_datetime(begin), format_datetime(begin + timedelta(hours=1))]
        for method in temporal.AGGREGATES:
            out[method].append([computed[method], *bounds])
    return out


def _assert_aggregates(body: dict[str, Any], expected: dict[str, list[list[Any]]]) -> None:
    for method, triples in expected.items():
        assert [v[1:] for v in body[method]] == [t[1:] for t in triples], method
        assert [v[0] for v in body[method]] == pytest.approx([t[0] for t in triples]), method


def test_aggregates_of_many_entities_match_a_plain_computation(ngsi: TestClient, many: Readings) -> None:
    response = ngsi.get(
        f"{BASE}/temporal/entities",
        params={
            "type": "AirQualityObserved",
            "attrs": ",".join(MANY_ATTRS),
            "timerel": "between",
            "timeAt": stamp(0),
            "endTimeAt": stamp(180),
            "options": "aggregatedValues",
            "aggrMethods": ",".join(temporal.AGGREGATES),
            "aggrPeriodDuration": "PT1H",
            "limit": 100,
        },
    )
    assert response.status_code == 200 and "content-range" not in response.headers
    body = {item["id"]: item for item in response.json()}
    assert sorted(body) == [many_id(k) for k in range(MANY)]
    for k in range(MANY):
        item = body[many_id(k)]
        for attr in MANY_ATTRS:
            series = many.get((many_id(k), VOCAB + attr))
            if series is None:
                assert attr not in item
                continue
            inside = [(t, v) for t, v in series if minute(0) <= t < minute(180)]
            _assert_aggregates(item[attr], _expected_aggregates(inside, minute(0)))


def test_aggregates_without_a_window_start_at_each_entity_s_oldest_instance(
    ngsi: TestClient, many: Readings
) -> None:
    response = ngsi.post(
        f"{BASE}/temporal/entityOperations/query",
        params={"options": "aggregatedValues", "limit": 100},
        json={
            "type": "Query",
            "entities": [{"type": "AirQualityObserved"}],
            "temporalQ": {"aggrMethods": list(temporal.AGGREGATES), "aggrPeriodDuration": "PT1H"},
        },
    )
    assert response.status_code == 200, response.text
    body = {item["id"]: item for item in response.json()}
    # each station's periods start at its own oldest reading (whichever attribute that was), and they differ
    assert len({s[0][0] for s in many.values()}) > 1
    for k in range(MANY):
        mine = {attr: s for (entity_id, attr), s in many.items() if entity_id == many_id(k)}
        origin = min(t for series in mine.values() for t, _ in series)
        item = body[many_id(k)]
        assert {f"{VOCAB}{name}" for name in item if name not in ("id", "type")} == set(mine)
        for attr, series in mine.items():
            _assert_aggregates(item[attr.removeprefix(VOCAB)], _expected_aggregates(series, origin))


def test_pages_of_many_entities_walk_every_instance_once(ctx: AppContext, many: Readings) -> None:
    """Small pages over many entities: each series cut at one instant, together they hold every reading."""
    seen: dict[tuple[str, str], list[tuple[datetime, float]]] = {}
    window_start, pages = minute(-100), 0
    while True:
        query = temporal.TemporalQuery(
            entities=services.EntityQuery(types=[AQ_TYPE], limit=100),
            timerel="after",
            time_at=window_start,
            instance_limit=10,
        )
        result = temporal.temporal_entities(ctx, SYSTEM, "", query)
        pages += 1
        for item in result.entities:
            for attr, instances in item["attrs"].items():
                assert len(instances) <= 25
                seen.setdefault((item["id"], attr), []).extend(
                    (datetime.fromisoformat(i["observedAt"]), i["value"]) for i in instances
                )
        if result.content_range is None:
            break
        found = RANGE.match(result.content_range)
        assert found is not None and found[3] == "*"
        window_start = datetime.fromisoformat(found[2])
    assert pages > 2
    assert seen == many


def test_last_n_of_many_entities_equals_each_entity_s_own(ngsi: TestClient, many: Readings) -> None:
    params = {"attrs": "pm25,o3", "lastN": 4, "options": "temporalValues"}
    response = ngsi.get(
        f"{BASE}/temporal/entities", params={**params, "type": "AirQualityObserved", "limit": 100}
    )
    assert response.status_code == 200 and "content-range" not in response.headers
    body = {item["id"]: item for item in response.json()}
    for k in range(MANY):
        single = ngsi.get(f"{BASE}/temporal/entities/{many_id(k)}", params=params).json()
        assert body[many_id(k)] == single
        for attr in ("pm25", "o3"):
            series = many.get((many_id(k), VOCAB + attr))
            expected = [[v, format_datetime(t)] for t, v in series[-4:]] if series else None
            assert (single[attr]["values"] if attr in single else None) == expected


def _statements(ctx: AppContext, query: temporal.TemporalQuery) -> int:
    """How many SQL statements one temporal query runs (the app's background tasks run on other threads)."""
    count, caller = 0, threading.get_ident()

    def counted(*_: Any) -> None:
        nonlocal count
        count += threading.get_ident() == caller

    event.listen(ctx.db.engine, "before_cursor_execute", counted)
    try:
        temporal.temporal_entities(ctx, SYSTEM, "", query)
    finally:
        event.remove(ctx.db.engine, "before_cursor_execute", counted)
    return count


def test_the_statement_count_does_not_grow_with_the_entities(ctx: AppContext, many: Readings) -> None:
    window: dict[str, Any] = {"timerel": "between", "time_at": minute(0), "end_time_at": minute(180)}
    hourly: dict[str, Any] = {"aggr_methods": ["avg", "stddev"], "aggr_period": timedelta(hours=1)}
    attrs = {VOCAB + a for a in MANY_ATTRS}
    cases: dict[str, dict[str, Any]] = {
        "aggregates in a window": {**window, **hourly, "attrs": attrs},
        "aggregates from each entity's oldest instance": {**hourly},
        "instances, every attribute": {**window},
        "instances, paged": {"attrs": attrs, "instance_limit": 10},
        "lastN": {"attrs": attrs, "last_n": 3},
    }
    for name, options in cases.items():
        counts = []
        for entities in (2, MANY):
            query = temporal.TemporalQuery(services.EntityQuery(types=[AQ_TYPE], limit=entities), **options)
            counts.append(_statements(ctx, query))
        assert counts[0] == counts[1] <= 4, name
