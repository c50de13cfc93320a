"""The daily brief (日报): a day's vital signs from the recorded history, printable; bad dates refused."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient

from citybrain.apps.indicators import services
from citybrain.core.context import AppContext
from citybrain.sdk import utcnow
from tests.apps.indicators.declaring import indicators as declared

CITY, FUCHENG, YOUXIAN = "510700", "510703", "510704"
ZONE = ZoneInfo("Asia/Shanghai")
DAY = datetime(2026, 11, 20, tzinfo=ZONE)  # a Friday in China time


def at(hours: float, days: int = 0) -> datetime:
    """A moment of DAY (or a day around it) in China time, as UTC."""
    return (DAY + timedelta(days=days, hours=hours)).astimezone(UTC)


def test_the_brief_of_a_day(ctx: AppContext, admin_client: TestClient) -> None:
    """Close, change on the day before, low – high, level, the day's chart, the districts; printable."""
    for moment, city, fucheng in ((at(20, -1), 80.0, 70.0), (at(1), 85.0, 75.0), (at(23.5), 96.0, 101.0)):
        declared.VALUES.clear()
        declared.VALUES.update({CITY: city, FUCHENG: fucheng})
        services.compute_round(ctx, moment, codes=["ideclare.level", "ideclare.text"])
    declared.VALUES.update({CITY: 1.0})
    services.compute_round(ctx, at(0.5, 1), codes=["ideclare.level"])  # the next day: not in the brief
    page = admin_client.get("/indicators/brief?date=2026-11-20")
    assert page.status_code == 200
    html = page.text
    assert "城市运行日报" in html and 'data-day="2026-11-20"' in html
    row = re.search(r'<tr data-indicator="ideclare.level">(.*?)</tr>', html, re.S)
    assert row is not None
    cells = [
        re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)
    ]
    assert cells[0].startswith("水位比") and cells[1] == "96.0" and cells[2] == "+16.0"
    assert cells[3] == "85.0 – 96.0" and cells[4] == "关注"
    assert "<polyline" in row.group(1)
    assert re.search(r'<tr data-indicator="ideclare.text">.*?<td class="num">PM2.5</td>', html, re.S)
    district = re.search(rf'<tr data-area="{FUCHENG}">(.*?)</tr>', html, re.S)
    assert district is not None and 'data-level="bad"' in district.group(1) and "101.0" in district.group(1)
    assert "@media print" in admin_client.get("/static/indicators/indicators/brief.css").text
    # the day's warnings are in the page itself (no script): here there is no warning app to list them
    assert 'id="brief-warning-list" data-state="disabled"' in html and "预警应用未启用" in html
    assert "<script" not in html.split('id="brief"', 1)[1].split("</article>", 1)[0]
    assert "brief.js" not in html
    # printing: an A4 page, and the way to a PDF said on the page
    css = admin_client.get("/static/indicators/indicators/brief.css").text
    assert "@media print" in css and "size: A4" in css
    assert "另存为 PDF" in html and 'onclick="window.print()"' in html
    # English
    admin_client.cookies.set("cb_lang", "en")
    assert "Daily city operations brief" in admin_client.get("/indicators/brief?date=2026-11-20").text


def test_the_default_is_yesterday(admin_client: TestClient) -> None:
    """Without a date: yesterday in China time; an empty history gives a brief of dashes."""
    yesterday = (utcnow().astimezone(ZONE) - timedelta(days=1)).date().isoformat()
    page = admin_client.get("/indicators/brief")
    assert page.status_code == 200 and f'data-day="{yesterday}"' in page.text


def test_bad_dates_get_a_problem(admin_client: TestClient) -> None:
    """Not a date, not YYYY-MM-DD, or a future day: 400 problem+json to an API caller, nothing else."""
    tomorrow = (utcnow().astimezone(ZONE) + timedelta(days=1)).date().isoformat()
    for bad in ("2026-13-01", "yesterday", "20261120", "2026-11-20T00:00", tomorrow):
        answer = admin_client.get(
            "/indicators/brief", params={"date": bad}, headers={"Accept": "application/json"}
        )
        assert answer.status_code == 400, bad
        assert answer.headers["content-type"].startswith("application/problem+json"), bad
        assert "date" in answer.json()["detail"] or "尚无" in answer.json()["detail"], bad
    assert admin_client.get("/indicators/brief", params={"date": "x" * 41}).status_code == 422


def test_the_brief_is_denied_unless_granted(client: TestClient) -> None:
    """Anonymous callers are refused."""
    answer = client.get("/indicators/brief", headers={"Accept": "application/json"})
    assert answer.status_code == 401
