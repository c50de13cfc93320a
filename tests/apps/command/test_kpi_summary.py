"""The daily KPI summary (command_kpi_day) equals the live aggregate over the events, whatever changes them."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select, update

from citybrain.apps.command import kpi, services
from citybrain.apps.command import workflows as wf
from citybrain.apps.command.models import CityEvent, KpiDay
from citybrain.core.context import AppContext
from citybrain.core.permissions import SYSTEM
from tests.apps.command.conftest import Org
from tests.apps.command.test_kpi import scenario

STATES = {
    "city": [s.code for s in wf.CITY.states],
    "hotline": [s.code for s in wf.workflow("hotline").states],
}
DISTRICTS = (None, "510703", "510704", "510722")
RATINGS = (None, "satisfied", "basically_satisfied", "unsatisfied")
SOURCES = ("inspector", "hotline", "department", "warning")
FIRST_DAY = date(2026, 3, 1)


def _when(rng: random.Random) -> datetime:
    """A time in the ten local days from FIRST_DAY, often right at a local midnight (16:00 UTC)."""
    day = datetime(2026, 2, 28, 16, tzinfo=UTC) + timedelta(days=rng.randrange(10))
    return day + rng.choice(
        (timedelta(0), -timedelta(microseconds=1), timedelta(seconds=rng.randrange(86400)))
    )


def _random_event(rng: random.Random, n: int, departments: list[int | None]) -> CityEvent:
    workflow = rng.choice(("city", "hotline"))
    at = _when(rng)
    return CityEvent(
        number=f"R{n:012d}",
        source=rng.choice(SOURCES),
        workflow=workflow,
        state=rng.choice(STATES[workflow]),
        title="随机",
        reported_by="test",
        district=rng.choice(DISTRICTS),
        department_id=rng.choice(departments),
        filed_at=rng.choice((None, at)),
        handled_at=rng.choice((None, at)),
        late=rng.random() < 0.3,
        reworks=rng.choice((0, 0, 1, 2)),
        rating=rng.choice(RATINGS),
        created_at=at,
        updated_at=at,
    )


def _compare(ctx: AppContext, departments: list[int | None]) -> None:
    """Every period, dimension and scope gives the same counts from the summary and from the events."""
    zone = ZoneInfo(ctx.settings.timezone)
    scopes = [kpi.AllDepartments(), frozenset(d for d in departments[:2] if d is not None)]
    for first_offset, days in ((0, 1), (3, 1), (0, 10), (2, 5), (9, 1), (-1, 12)):
        first = FIRST_DAY + timedelta(days=first_offset)
        last = first + timedelta(days=days - 1)
        lower, upper = kpi.bounds(first, last, zone)
        for dimension in ("department", "district"):
            for scope in scopes:
                live = kpi.count_rows(ctx, lower, upper, dimension, scope)  # type: ignore[arg-type]
                summary = kpi.summary_rows(ctx, first, last, dimension, scope)  # type: ignore[arg-type]
                assert summary == live, (first, last, dimension, scope)


def test_summary_equals_the_live_aggregate_on_random_events(ctx: AppContext, org: Org) -> None:
    rng = random.Random(30428)
    departments: list[int | None] = [org.sthj, org.cgzf, org.district, None, 987654]
    with ctx.uow(SYSTEM, "test.kpi") as uow:
        uow.session.add_all(_random_event(rng, n, departments) for n in range(400))
    _compare(ctx, departments)
    # row by row through the ORM: new states, departments, districts, days, flags
    with ctx.uow(SYSTEM, "test.kpi") as uow:
        rows = list(uow.session.scalars(select(CityEvent).order_by(CityEvent.id)))
        for row in rng.sample(rows, 150):
            row.state = rng.choice(STATES[row.workflow])
            row.department_id = rng.choice(departments)
            row.district = rng.choice(DISTRICTS)
            row.late = not row.late
            row.reworks += rng.choice((0, 1))
            row.rating = rng.choice(RATINGS)
            row.handled_at = rng.choice((None, row.created_at))
            if rng.random() < 0.2:
                row.created_at = _when(rng)
        for row in rng.sample(rows, 40):
            uow.session.delete(row)
    _compare(ctx, departments)
    # set-based, as the deadline scans write
    with ctx.uow(SYSTEM, "test.kpi") as uow:
        uow.session.execute(update(CityEvent).where(CityEvent.id % 3 == 0).values(late=True))
        uow.session.execute(
            update(CityEvent).where(CityEvent.id % 5 == 0).values(state=wf.MERGED, department_id=None)
        )
        uow.session.execute(delete(CityEvent).where(CityEvent.id % 7 == 0))
    _compare(ctx, departments)


def test_summary_follows_the_workflows(ctx: AppContext, org: Org) -> None:
    scenario(ctx, org)
    today = datetime.now(ZoneInfo(ctx.settings.timezone)).date()
    departments: list[int | None] = [org.sthj, org.cgzf, org.district, None]
    zone = ZoneInfo(ctx.settings.timezone)
    lower, upper = kpi.bounds(today, today, zone)
    for dimension in ("department", "district"):
        live = kpi.count_rows(ctx, lower, upper, dimension, kpi.AllDepartments())  # type: ignore[arg-type]
        assert kpi.summary_rows(ctx, today, today, dimension, kpi.AllDepartments()) == live  # type: ignore[arg-type]
    assert live and departments


def test_a_rolled_back_change_leaves_the_summary_as_it_was(ctx: AppContext, org: Org) -> None:
    scenario(ctx, org)
    with ctx.read() as session:
        before = sorted(tuple(r) for r in session.execute(select(KpiDay.__table__)))
    event_id = services.list_events(ctx, SYSTEM, workflow="city", limit=1).items[0].id
    try:
        with ctx.uow(SYSTEM, "test.kpi") as uow:
            uow.session.execute(update(CityEvent).where(CityEvent.id == event_id).values(state="cancelled"))
            raise RuntimeError("stop")
    except RuntimeError:
        pass
    with ctx.read() as session:
        assert sorted(tuple(r) for r in session.execute(select(KpiDay.__table__))) == before
