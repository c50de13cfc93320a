"""The NGSI-LD temporal API: history of every attribute change, windows, lastN, values and aggregates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from citybrain.apps.context import services
from citybrain.apps.context.models import AttributeHistory
from citybrain.core.context import AppContext
from citybrain.core.permissions import SYSTEM
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
