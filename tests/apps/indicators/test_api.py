"""The indicators API: rounds, current values with a version stamp, history, export, pages, bad input."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from citybrain.apps.indicators import services
from citybrain.core.context import AppContext
from tests.apps.indicators.declaring import indicators as declared

CITY, FUCHENG, YOUXIAN = "510700", "510703", "510704"
T0 = datetime(2026, 11, 20, 2, 3, tzinfo=UTC)


def by_code(body: dict, code: str) -> dict:  # type: ignore[type-arg]
    """One indicator of a /current answer."""
    return next(i for i in body["indicators"] if i["indicator"]["code"] == code)


def test_a_round_stores_values_levels_and_failures(ctx: AppContext, admin_client: TestClient) -> None:
    """Values by district get levels; a failing indicator is unavailable with its reason; the rest go on."""
    declared.VALUES.update({CITY: 95.0, FUCHENG: 101.5, YOUXIAN: None})
    report = services.compute_round(ctx, T0)
    assert set(report.computed) == {"ideclare.level", "ideclare.broken", "ideclare.text", "ideclare.city"}
    assert report.unavailable == ("ideclare.broken",)
    body = admin_client.get("/api/indicators/current").json()
    level = by_code(body, "ideclare.level")
    assert (level["city"]["value"], level["city"]["level"]) == (95.0, "warn")
    assert [(d["area"], d["value"], d["level"]) for d in level["districts"]] == [
        (FUCHENG, 101.5, "bad"),
        (YOUXIAN, None, None),
    ]
    assert level["city"]["period_start"].startswith("2026-11-20T02:00:00")  # 5-minute intervals
    broken = by_code(body, "ideclare.broken")["city"]
    assert broken["status"] == "unavailable" and "the gauge feed is down" in broken["reason"]
    assert by_code(body, "ideclare.text")["districts"][0]["text"] == "O3_8h"
    city_only = by_code(body, "ideclare.city")
    assert city_only["city"]["level"] == "warn" and city_only["districts"] == []
    assert city_only["city"]["period_start"].startswith("2026-11-19T16:00:00")  # China's day


def test_a_bad_answer_makes_the_indicator_unavailable(ctx: AppContext, admin_client: TestClient) -> None:
    """An unknown area or a value that is not a finite number is refused, with the reason."""
    for values, reason in (({"999999": 1.0}, "not an area"), ({CITY: float("nan")}, "finite number")):
        declared.VALUES.clear()
        declared.VALUES.update(values)
        services.compute_round(ctx, T0, codes=["ideclare.level"])
        city = admin_client.get("/api/indicators/indicators/ideclare.level").json()["city"]
        assert city["status"] == "unavailable" and reason in city["reason"]


def test_the_version_stamp_changes_only_with_the_values(ctx: AppContext, admin_client: TestClient) -> None:
    """The screen polls with If-None-Match: 304 while nothing changed, 200 with a new ETag after."""
    declared.VALUES.update({CITY: 50.0})
    services.compute_round(ctx, T0)
    first = admin_client.get("/api/indicators/current")
    etag = first.headers["ETag"]
    assert first.json()["version"] in etag
    services.compute_round(ctx, T0 + timedelta(minutes=1), force=True)  # same values
    assert admin_client.get("/api/indicators/current", headers={"If-None-Match": etag}).status_code == 304
    declared.VALUES[CITY] = 60.0
    services.compute_round(ctx, T0 + timedelta(minutes=2), force=True)
    again = admin_client.get("/api/indicators/current", headers={"If-None-Match": etag})
    assert again.status_code == 200 and again.headers["ETag"] != etag


def test_only_due_indicators_are_computed(ctx: AppContext) -> None:
    """Real-time ones every round; a daily one again only after its refresh time or in a new day."""
    assert "ideclare.city" in services.compute_round(ctx, T0).computed
    again = services.compute_round(ctx, T0 + timedelta(minutes=1))
    assert "ideclare.level" in again.computed and "ideclare.city" not in again.computed
    assert "ideclare.city" in services.compute_round(ctx, T0 + timedelta(days=1)).computed


def test_drill_down_to_a_district(ctx: AppContext, admin_client: TestClient) -> None:
    """?district= keeps the city value and that district's alone; ?codes= names indicators."""
    declared.VALUES.update({CITY: 1.0, FUCHENG: 2.0, YOUXIAN: 3.0})
    services.compute_round(ctx, T0)
    body = admin_client.get(f"/api/indicators/current?district={YOUXIAN}&codes=ideclare.level").json()
    (level,) = body["indicators"]
    assert level["city"]["value"] == 1.0 and [d["value"] for d in level["districts"]] == [3.0]


def seed(ctx: AppContext, hours: int, area: str = CITY) -> None:
    """Hourly values of ideclare.level, value = hour number."""
    services.bulk_history(
        ctx,
        [
            {
                "indicator": "ideclare.level",
                "area": area,
                "period_start": T0 - timedelta(hours=hours - n),
                "value": float(n),
                "text": None,
                "status": "ok",
                "reason": None,
                "computed_at": T0,
            }
            for n in range(hours)
        ],
    )


def test_history_is_paged_in_time_order(ctx: AppContext, admin_client: TestClient) -> None:
    """Oldest first, limit and offset, next_offset while more remain; a district's own values."""
    seed(ctx, 30)
    seed(ctx, 3, FUCHENG)
    query = f"start={(T0 - timedelta(days=2)).isoformat()}&end={T0.isoformat()}".replace("+", "%2B")
    page = admin_client.get(f"/api/indicators/indicators/ideclare.level/history?{query}&limit=20").json()
    assert [p["value"] for p in page["points"]] == [float(n) for n in range(20)]
    assert page["next_offset"] == 20 and page["points"][0]["level"] == "good"
    rest = admin_client.get(f"/api/indicators/indicators/ideclare.level/history?{query}&offset=20").json()
    assert len(rest["points"]) == 10 and rest["next_offset"] is None
    mine = admin_client.get(
        f"/api/indicators/indicators/ideclare.level/history?{query}&area={FUCHENG}"
    ).json()
    assert (mine["area_name"], len(mine["points"])) == ("涪城区", 3)


def test_export_csv_and_xlsx(ctx: AppContext, admin_client: TestClient) -> None:
    """CSV (with BOM) and an Excel workbook hold the same rows, in China time."""
    from openpyxl import load_workbook

    seed(ctx, 5)
    query = f"start={(T0 - timedelta(days=1)).isoformat()}&end={T0.isoformat()}".replace("+", "%2B")
    answer = admin_client.get(f"/api/indicators/indicators/ideclare.level/history.csv?{query}")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    assert "ideclare.level-510700.csv" in answer.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert rows[0][:5] == ["indicator", "area", "area_name", "period_start", "value"]
    assert rows[1][2:5] == ["绵阳市", "2026-11-20 05:03:00", "0.0"]  # 21:03 UTC + 8 h
    assert len(rows) == 6
    answer = admin_client.get(f"/api/indicators/indicators/ideclare.level/history.xlsx?{query}")
    assert answer.status_code == 200
    sheet = load_workbook(io.BytesIO(answer.content)).active
    assert sheet is not None
    cells = [[c.value for c in row] for row in sheet.iter_rows()]
    assert cells[1][3] == datetime(2026, 11, 20, 5, 3) and cells[1][4] == 0.0 and len(cells) == 6


def test_pages_show_the_catalogue_and_an_indicator(ctx: AppContext, admin_client: TestClient) -> None:
    """The catalogue lists every indicator; an indicator's page has the districts, charts and exports."""
    declared.VALUES.update({CITY: 95.0, FUCHENG: 101.5})
    services.compute_round(ctx, T0)
    seed(ctx, 3)
    page = admin_client.get("/indicators")
    assert page.status_code == 200
    assert 'data-indicator="ideclare.level"' in page.text and "95.0%" in page.text
    assert "市大数据中心" in page.text  # the owner department by name
    detail = admin_client.get("/indicators/ideclare.level?span=1y")
    assert detail.status_code == 200
    assert 'data-district="510703"' in detail.text and "history.xlsx" in detail.text
    assert admin_client.get("/indicators/nothing.here").status_code == 404
    assert admin_client.get("/indicators/ideclare.level?span=2y").status_code == 422


BAD_INPUT = (
    ("/api/indicators/indicators/nothing.here", 404),
    ("/api/indicators/indicators/nothing.here/history", 404),
    ("/api/indicators/indicators/ideclare.level/history?area=999999", 404),
    ("/api/indicators/indicators/ideclare.city/history?area=510703", 404),
    ("/api/indicators/indicators/ideclare.level/history?limit=0", 422),
    ("/api/indicators/indicators/ideclare.level/history?limit=100001", 422),
    ("/api/indicators/indicators/ideclare.level/history?limit=20000", 422),
    ("/api/indicators/indicators/ideclare.level/history?offset=-1", 422),
    ("/api/indicators/indicators/ideclare.level/history?start=yesterday", 422),
    ("/api/indicators/indicators/ideclare.level/history?start=2026-11-20T00:00:00", 400),
    (
        "/api/indicators/indicators/ideclare.level/history?start=2026-11-20T00:00:00Z&end=2026-11-19T00:00:00Z",
        400,
    ),
    (
        "/api/indicators/indicators/ideclare.level/history.csv?end=2026-01-01T00:00:00Z&start=2026-02-01T00:00:00Z",
        400,
    ),
    ("/api/indicators/indicators/nothing.here/history.xlsx", 404),
    ("/api/indicators/current?district=999999", 404),
    ("/api/indicators/current?codes=ideclare.level,nothing.here", 404),
    ("/api/indicators/current?district=" + "1" * 13, 422),
)


def test_bad_input_gets_a_problem(admin_client: TestClient) -> None:
    """Unknown indicators and areas, bad windows and pages: a 4xx problem body (one platform for all)."""
    for url, status in BAD_INPUT:
        answer = admin_client.get(url)
        assert answer.status_code == status, (url, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json"), url
        assert answer.json()["status"] == status


def test_anonymous_callers_are_refused(client: TestClient) -> None:
    """Without credentials: 401 problem on every endpoint."""
    for url in (
        "/api/indicators/indicators",
        "/api/indicators/current",
        "/api/indicators/indicators/ideclare.level",
        "/api/indicators/indicators/ideclare.level/history",
        "/api/indicators/indicators/ideclare.level/history.csv",
        "/api/indicators/indicators/ideclare.level/history.xlsx",
    ):
        answer = client.get(url)
        assert answer.status_code == 401, url
        assert answer.headers["content-type"].startswith("application/problem+json")


def test_the_catalogue_lists_the_definitions(admin_client: TestClient) -> None:
    """Every declared indicator with its definition, in the asked language."""
    items = admin_client.get("/api/indicators/indicators", headers={"Accept-Language": "en"}).json()
    level = next(i for i in items if i["code"] == "ideclare.level")
    assert level["app"] == "ideclare" and level["unit"] == "%"
    assert level["thresholds"] == {"direction": "higher_is_worse", "warn": 90.0, "bad": 100.0}
