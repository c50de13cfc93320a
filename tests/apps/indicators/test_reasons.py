"""A vital sign without a value shows "—" alone, with the reason (not computed yet, failed, timed out,
nothing to compute from) as its tooltip, on the catalogue, the indicator's page, the screen and the brief;
a compute function that takes too long is abandoned for its round; the navigation marks one entry."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from citybrain.apps.indicators import services
from citybrain.core.asgi import create_app
from citybrain.core.context import AppContext
from citybrain.core.permissions import SYSTEM
from citybrain.core.settings import Settings
from tests.apps.indicators import declaring, slow
from tests.apps.indicators.conftest import specs
from tests.apps.indicators.declaring import indicators as declared
from tests.apps.indicators.slow import indicators as slowed

CITY = "510700"


def cell(html: str, code: str) -> str:
    """The catalogue's value cell of an indicator."""
    row = re.search(rf'<tr data-indicator="{re.escape(code)}">(.*?)</tr>', html, re.S)
    assert row is not None, code
    found = re.search(r'<td class="ind-value">(.*?)</td>', row.group(1), re.S)
    assert found is not None, code
    return found.group(1).strip()


def test_a_missing_value_shows_a_dash_and_why(ctx: AppContext, admin_client: TestClient) -> None:
    """Not computed yet, no value (the declared reason, never "—%"), failed: "—" with the reason."""
    html = admin_client.get("/indicators/signs").text
    assert (
        cell(html, "ideclare.level")
        == '<span class="ind-none" title="尚未计算。" data-reason="尚未计算。">—</span>'
    )
    declared.VALUES.update({CITY: None})
    services.compute_round(ctx, force=True)
    html = admin_client.get("/indicators/signs").text
    assert 'title="暂无已结案事件"' in cell(html, "ideclare.level") and "%" not in cell(
        html, "ideclare.level"
    )
    assert "计算失败：RuntimeError: the gauge feed is down" in cell(html, "ideclare.broken")
    assert "—%" not in html
    page = admin_client.get("/indicators/signs/ideclare.level").text
    assert '<p class="ind-reason">暂无已结案事件</p>' in page and "—%" not in page
    # the screen: the sign says "—" without its unit, the reason as its tooltip; the data carries it
    screen = admin_client.get("/indicators/screen").text
    sign = re.search(r'<li class="ioc-sign" data-code="ideclare.level"(.*?)</li>', screen, re.S)
    assert sign is not None and 'title="暂无已结案事件"' in sign.group(1)
    assert "<b>—</b><small></small>" in sign.group(1)
    data = admin_client.get("/api/indicators/screen").json()
    reasons = {s["code"]: s["reason"] for s in data["signs"]}
    assert reasons["ideclare.level"] == "暂无已结案事件" and reasons["ideclare.text"] is None
    assert reasons["ideclare.broken"].startswith("计算失败")
    # in English
    admin_client.cookies.set("cb_lang", "en")
    html = admin_client.get("/indicators/signs").text
    assert 'title="no closed events yet"' in cell(html, "ideclare.level")
    # with a value, no reason
    declared.VALUES.update({CITY: 42.0})
    services.compute_round(ctx, force=True)
    assert cell(admin_client.get("/indicators/signs").text, "ideclare.level") == "42.0%"


def test_before_the_first_round_the_reason_names_it(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the scheduler on: computing since the first round began, then the next round's time."""
    monkeypatch.setenv("CITYBRAIN_INDICATORS_COMPUTE_SECONDS", "60")
    app = create_app(settings, specs(("tests.apps.indicators.declaring", declaring.APP)))
    ctx: AppContext = app.state.ctx
    spec = next(d.spec for d in services.declared(ctx) if d.spec.code == "ideclare.level")
    began = datetime(2026, 11, 25, 1, 2, tzinfo=UTC)  # 09:02 in China
    ctx.extensions[services.FIRST_ROUND] = {"began": began, "finished": None}
    assert services.explain(ctx, spec, None, "zh_CN") == "计算中：首轮计算于 09:02 开始。"
    assert services.explain(ctx, spec, None, "en") == "Computing: the first round began at 09:02."
    ctx.extensions[services.FIRST_ROUND]["finished"] = began + timedelta(seconds=3)
    assert (services.explain(ctx, spec, None, "en") or "").startswith(
        "Not computed yet: the next round is at"
    )
    ctx.db.dispose()


@pytest.fixture
def slow_app(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[FastAPI]:
    """The small platform with the slow app, computing under a 0.3 s time limit."""
    monkeypatch.setenv("CITYBRAIN_INDICATORS_COMPUTE_SECONDS", "0")
    monkeypatch.setenv("CITYBRAIN_INDICATORS_COMPUTE_TIMEOUT_SECONDS", "0.3")
    slowed.RELEASE.clear()
    slowed.CALLS.clear()
    yield create_app(settings, specs(("tests.apps.indicators.slow", slow.APP)))
    slowed.RELEASE.set()


def test_a_compute_that_hangs_is_abandoned(slow_app: FastAPI) -> None:
    """The slow indicator is unavailable, "timed out"; the others compute; it is not started twice."""
    with TestClient(slow_app):
        ctx: AppContext = slow_app.state.ctx
        began = time.monotonic()
        report = services.compute_round(ctx, force=True)
        assert time.monotonic() - began < 5
        assert report.unavailable == ("islow.stuck",)
        found = {i.item.spec.code: i for i in services.current(ctx, SYSTEM).indicators}
        stuck, quick = found["islow.stuck"].city, found["islow.quick"].city
        assert quick is not None and quick.value == 2.0
        assert stuck is not None and stuck.status == "unavailable" and stuck.reason == "timed out after 0.3 s"
        spec = found["islow.stuck"].item.spec
        assert services.explain(ctx, spec, stuck, "zh_CN") == "计算超时（超过 0.3 秒），本轮已放弃。"
        # the next round does not start it again while it still runs
        services.compute_round(ctx, force=True)
        again = services.current(ctx, SYSTEM, codes=["islow.stuck"]).indicators[0].city
        assert again is not None and (again.reason or "").endswith("is still running")
        assert "仍未结束" in (services.explain(ctx, spec, again, "zh_CN") or "")
        assert len(slowed.CALLS) == 1
        # once it has finished, it computes again
        slowed.RELEASE.set()
        deadline = time.monotonic() + 5
        while any(t.name == "citybrain-indicator-islow.stuck" and t.is_alive() for t in _threads()):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert services.compute_round(ctx, force=True).unavailable == ()
        done = services.current(ctx, SYSTEM, codes=["islow.stuck"]).indicators[0].city
        assert done is not None and done.value == 1.0 and done.status == "ok"


def _threads() -> list[object]:
    import threading

    return list(threading.enumerate())


def test_the_history_is_backfilled_where_the_compute_reads_the_past(slow_app: FastAPI) -> None:
    """A day of hourly values of the indicator declared with backfill; the others skipped with the reason."""
    slowed.RELEASE.set()
    with TestClient(slow_app):
        ctx: AppContext = slow_app.state.ctx
        now = datetime(2026, 11, 25, 12, 30, tzinfo=UTC)
        report = services.backfill(ctx, 24, now)
        assert report.filled == ("islow.past",) and report.rows == 24
        assert set(report.skipped) == {"islow.stuck", "islow.quick"}
        assert "backfill" in report.skipped["islow.quick"]
        found = services.history(ctx, SYSTEM, "islow.past", None, now - timedelta(days=1), now)
        assert [p.value for p in found.points][:3] == [12.0, 13.0, 14.0]
        assert found.points[-1].period_start == datetime(2026, 11, 25, 11, 30, tzinfo=UTC)
        assert services.backfill(ctx, 24, now).rows == 0  # what is recorded is kept


def test_the_navigation_marks_the_page_open(admin_client: TestClient) -> None:
    """On the brief only 城市运行日报 is current; the catalogue has its own address; old ones redirect."""
    html = admin_client.get("/indicators/brief").text
    active = re.findall(r'<a class="side-link active" aria-current="page" href="([^"]+)"', html)
    assert active == ["/indicators/brief"], html[-2000:]
    html = admin_client.get("/indicators/signs/ideclare.level").text
    assert re.findall(r'<a class="side-link active" aria-current="page" href="([^"]+)"', html) == [
        "/indicators/signs"
    ]
    moved = admin_client.get("/indicators", follow_redirects=False)
    assert moved.status_code == 307 and moved.headers["location"] == "/indicators/signs"
    moved = admin_client.get("/indicators/ideclare.level?span=7d", follow_redirects=False)
    assert moved.headers["location"] == "/indicators/signs/ideclare.level?span=7d"
    assert admin_client.get("/indicators/nothing.here").status_code == 404
