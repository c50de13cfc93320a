"""Intake: case numbers under concurrent callers, the day's counter, routing and the detail intake returns."""

from __future__ import annotations

import threading

from sqlalchemy import select

from citybrain.apps.command import services
from citybrain.apps.command.models import NumberDay
from citybrain.apps.command.schemas import TicketCreate
from citybrain.apps.identity import schemas as identity_schemas
from citybrain.apps.identity import services as identity
from citybrain.core.context import AppContext
from citybrain.core.permissions import SYSTEM
from citybrain.sdk import utcnow
from tests.apps.command.conftest import CITY_HALL, Org

CALLERS = 8
EACH = 5


def noise(n: int) -> TicketCreate:
    """A noise ticket at the city hall."""
    return TicketCreate(
        caller_name="李女士", caller_phone=f"1390000{n:04d}", content=f"第{n}号来电：楼下KTV深夜噪声扰民",
        category="hotline.noise", location={"lon": CITY_HALL[0], "lat": CITY_HALL[1]},
    )  # fmt: skip


def test_concurrent_callers_all_get_distinct_consecutive_numbers(ctx: AppContext, org: Org) -> None:
    services.take_ticket(ctx, org.operator, noise(0))  # warm: classifier, categories, routing
    barrier = threading.Barrier(CALLERS)
    numbers: list[str] = []
    errors: list[BaseException] = []

    def caller(k: int) -> None:
        try:
            barrier.wait()
            for i in range(EACH):
                numbers.append(services.take_ticket(ctx, org.operator, noise(k * EACH + i + 1)).number)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(CALLERS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    today = utcnow().astimezone(services._zone(ctx)).strftime("%Y%m%d")
    assert sorted(numbers) == [f"{today}{n:05d}" for n in range(2, CALLERS * EACH + 2)]
    with ctx.read() as session:
        assert session.scalar(select(NumberDay.last).where(NumberDay.day == today)) == CALLERS * EACH + 1


def test_the_counter_is_per_day_and_goes_on_from_the_stored_last(ctx: AppContext, org: Org) -> None:
    today = utcnow().astimezone(services._zone(ctx)).strftime("%Y%m%d")
    with ctx.uow(SYSTEM, "test.counter") as uow:
        uow.session.add_all([NumberDay(day="20200101", last=99), NumberDay(day=today, last=41)])
    assert services.take_ticket(ctx, org.operator, noise(1)).number == f"{today}00042"
    with ctx.read() as session:
        assert session.get(NumberDay, "20200101").last == 99  # type: ignore[union-attr]


def test_intake_returns_the_detail_a_read_gives_without_suggestions(ctx: AppContext, org: Org) -> None:
    first = services.take_ticket(ctx, org.operator, noise(1))
    created = services.take_ticket(ctx, org.operator, noise(2))
    read = services.get_event(ctx, org.operator, created.id)
    assert created.suggested_duplicates == [] and [d.id for d in read.suggested_duplicates] == [first.id]
    assert created.model_dump(exclude={"suggested_duplicates"}) == read.model_dump(
        exclude={"suggested_duplicates"}
    )
    assert created.caller_phone == "13900000002" and created.department_id == org.sthj


def test_routing_finds_a_department_created_after_a_miss(ctx: AppContext, org: Org) -> None:
    assert services.department_id(ctx, "gdgs") is None  # not there yet: a miss is not remembered
    created = identity.create_department(
        ctx, SYSTEM, identity_schemas.DepartmentCreate(code="gdgs", name_zh="国网绵阳供电公司")
    )
    assert services.department_id(ctx, "gdgs") == created.id
    assert services.route(ctx, "hotline.power_supply", "510703") == created.id
    assert services.route(ctx, "hotline.noise", "510703") == org.sthj
    assert services.route(ctx, None, "510703") is None
