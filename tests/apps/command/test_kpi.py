"""KPI reports: GB/T 30428 indicators, composite scores and grades, 12345 satisfaction, periods, exports."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from citybrain.apps.command import kpi, services
from citybrain.apps.command.schemas import ReportCreate
from citybrain.core.context import AppContext
from citybrain.core.errors import ValidationFailed
from citybrain.sdk import utcnow
from tests.apps.command.conftest import CITY_HALL, Org
from tests.apps.command.test_api import problem
from tests.apps.command.test_services import take, ticket
from tests.apps.context.conftest import token_for
from tests.conftest import Seeded


def test_rates_of_a_published_report() -> None:
    # "应结案972件，结案911件，结案率93.72%，按期结案737件，按期结案率75.82%" (standards notes §3.4)
    found = kpi.row(
        "district", "x", "x", kpi.Counts(handled=950, overdue_unhandled=22, closed=911, closed_on_time=737)
    )
    assert found.due == 972 and found.closing_rate == 93.72 and found.on_time_closing_rate == 75.82


def test_department_composite_and_grades() -> None:
    # 120 cases (立案数分值 75), 结案率 90 %, 按期处置率 80 %, 返工率 10 %:
    # 75×10 % + 90×30 % + 80×30 % + (100 − 10)×30 % = 7.5 + 27 + 24 + 27 = 85.5 → B
    c = kpi.Counts(filed=120, handled=100, handled_on_time=80, closed=90, reworked=10)
    found = kpi.row("department", "1", "x", c)
    assert (found.filed_score, found.rework_rate, found.composite, found.grade) == (75.0, 10.0, 85.5, "B")
    assert [kpi.filed_score(n) for n in (0, 50, 51, 100, 200, 500, 1000, 1001)] == [
        100, 100, 90, 90, 75, 60, 40, 0,
    ]  # fmt: skip
    assert [kpi.grade(s) for s in (100, 90, 89.99, 75, 60, 59.99, 40, 39.99, None)] == [
        "A", "A", "B", "B", "C", "D", "D", "E", None,
    ]  # fmt: skip
    nothing_due = kpi.row("department", "1", "x", kpi.Counts(filed=3))
    assert nothing_due.composite is None and nothing_due.grade is None and nothing_due.closing_rate is None


def test_periods() -> None:
    today = date(2026, 11, 26)  # a Thursday
    assert kpi.period_days("day", None, None, None, today) == (today, today)
    assert kpi.period_days("week", None, None, None, today) == (date(2026, 11, 23), date(2026, 11, 29))
    assert kpi.period_days("month", date(2024, 2, 10), None, None, today) == (
        date(2024, 2, 1),
        date(2024, 2, 29),
    )
    assert kpi.period_days("month", date(2026, 12, 31), None, None, today) == (
        date(2026, 12, 1),
        date(2026, 12, 31),
    )
    span = (date(2026, 1, 1), date(2026, 3, 31))
    assert kpi.period_days("custom", None, *span, today) == span
    for start, end in ((None, today), (today, today - timedelta(days=1)), (date(2020, 1, 1), today)):
        with pytest.raises(ValidationFailed):
            kpi.period_days("custom", None, start, end, today)


def case(ctx: AppContext, org: Org, *actions: tuple[object, str, str]) -> int:
    """An inspector's street-vending report at the city hall, moved through the actions (actor, code, note)."""
    data = ReportCreate(
        category="event.street_vending",
        description="人行道占道经营",
        location={"lon": CITY_HALL[0], "lat": CITY_HALL[1]},
    )
    event_id = services.report(ctx, org.inspector, data).id
    for actor, code, note in actions:
        take(ctx, actor, event_id, code, note=note)
    return event_id


def scenario(ctx: AppContext, org: Org) -> None:
    """Four cases of 涪城区 and three 12345 tickets of the environment bureau, all taken in today.

    B and C run past the dispatch limit (the scan flags them late); B is then handled, sent back once and
    closed late; A is closed on time; D is cancelled. T1 is rated satisfied, T2 waits, T3 is answered
    directly and rated unsatisfied.
    """
    filed = ((org.leader, "file", ""), (org.dispatcher, "dispatch", ""))
    handled = ((org.district_handler, "accept", ""), (org.district_handler, "feedback", "已清理"))
    closed = ((org.inspector, "verify", ""), (org.leader, "close", ""))
    b = case(ctx, org, *filed)
    case(ctx, org, *filed)  # C
    assert services.scan_overdue(ctx, utcnow() + timedelta(days=60)) == 2
    for actor, code, note in (*handled, (org.inspector, "rework", "仍有摊贩"), *handled, *closed):
        take(ctx, actor, b, code, note=note)
    case(ctx, org, *filed, *handled, *closed)  # A
    case(ctx, org, (org.leader, "cancel", "重复上报"))  # D
    t1, _t2, t3 = ticket(ctx, org), ticket(ctx, org), ticket(ctx, org)
    take(ctx, org.dispatcher, t1, "assign")
    take(ctx, org.handler, t1, "sign")
    take(ctx, org.handler, t1, "reply", note="已整改")
    take(ctx, org.leader, t1, "complete")
    take(ctx, org.operator, t1, "visit", note="已回访")
    take(ctx, org.operator, t1, "rate", rating="satisfied")
    take(ctx, org.operator, t3, "answer", note="已解释")
    take(ctx, org.operator, t3, "visit", note="已回访")
    take(ctx, org.operator, t3, "rate", rating="unsatisfied")


def test_report_by_department_and_district(ctx: AppContext, org: Org) -> None:
    scenario(ctx, org)
    found = kpi.report(ctx, org.leader, "zh_CN", dimension="department", period="day")
    rows = {r.key: r for r in found.rows}
    district = rows[str(org.district)]
    assert (district.filed, district.inspector_filed, district.handled, district.handled_on_time) == (
        3,
        3,
        2,
        1,
    )
    assert (district.overdue_unhandled, district.due, district.closed, district.closed_on_time) == (
        1,
        3,
        2,
        1,
    )
    assert (district.reworked, district.cancelled, district.tickets) == (1, 1, 0)
    assert (district.closing_rate, district.on_time_closing_rate) == (66.67, 33.33)
    assert (district.handling_rate, district.on_time_handling_rate, district.rework_rate) == (
        66.67,
        33.33,
        50.0,
    )
    # 100×10 % + 66.67×30 % + 33.33×30 % + (100 − 50)×30 % = 10 + 20.001 + 9.999 + 15 = 55.0 → D
    assert (district.composite, district.grade) == (55.0, "D")
    env = rows[str(org.sthj)]
    assert (env.tickets, env.completed, env.completed_on_time) == (3, 2, 2)
    assert (env.satisfied, env.basically_satisfied, env.unsatisfied) == (1, 0, 1)
    assert (env.completion_rate, env.satisfaction_rate, env.composite, env.grade) == (66.67, 50.0, None, None)
    assert rows[str(org.cgzf)].filed == 0 and rows[str(org.cgzf)].name == "市城市管理行政执法局"
    assert found.city.filed == 3 and found.city.tickets == 3 and found.city.key == "510700"

    by_area = kpi.report(ctx, org.leader, "en", dimension="district", period="week")
    fucheng = {r.key: r for r in by_area.rows}["510703"]
    # 区域: 100×10 % + 100×20 % + 66.67×30 % + 33.33×40 % = 10 + 20 + 20.001 + 13.332 = 63.33 → C
    assert (fucheng.report_rate, fucheng.composite, fucheng.grade, fucheng.tickets) == (100.0, 63.33, "C", 3)
    assert len(by_area.rows) == 9 and fucheng.name != "涪城区"  # English names

    # a department's staff see their own department only
    mine = kpi.report(ctx, org.handler, "zh_CN", dimension="department", period="day")
    assert [r.key for r in mine.rows] == [str(org.sthj)] and mine.city.filed == 0 and mine.city.tickets == 3
    # yesterday had nothing
    before = kpi.report(ctx, org.leader, "zh_CN", period="day", day=found.start - timedelta(days=1))
    assert before.city.filed == 0 and before.city.tickets == 0


def test_api_exports_and_bad_input(client: TestClient, ctx: AppContext, seeded: Seeded, org: Org) -> None:
    scenario(ctx, org)
    client.headers["Authorization"] = f"Bearer {token_for(ctx, seeded, ['command.event.read'])}"
    body = client.get("/api/command/kpi", params={"dimension": "district", "period": "month"}).json()
    fucheng = next(r for r in body["rows"] if r["key"] == "510703")
    assert fucheng["closing_rate"] == 66.67 and fucheng["grade"] == "C"
    exported = client.get("/api/command/kpi.csv", params={"period": "day"})
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert lines[0][:3] == ["编码", "名称", "立案数"] and lines[-1][0] == "510700"
    district_line = next(line for line in lines if line[0] == str(org.district))
    assert district_line[lines[0].index("结案率(%)")] == "66.67"
    book = client.get("/api/command/kpi.xlsx", params={"period": "week", "dimension": "district"})
    assert book.status_code == 200
    sheet = load_workbook(io.BytesIO(book.content)).active
    assert sheet is not None
    cells = [[c.value for c in r] for r in sheet.iter_rows()]
    assert cells[0][0] == "编码" and cells[-1][0] == "510700"
    problem(client.get("/api/command/kpi", params={"period": "custom"}), 422)
    problem(
        client.get(
            "/api/command/kpi", params={"period": "custom", "start": "2026-02-01", "end": "2026-01-01"}
        ),
        422,
    )
    problem(client.get("/api/command/kpi", params={"dimension": "street"}), 422)
    problem(client.get("/api/command/kpi", params={"day": "2026-13-01"}), 422)
    del client.headers["Authorization"]
    problem(client.get("/api/command/kpi"), 401)
