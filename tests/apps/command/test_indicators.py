"""The vital signs the command app declares: valid declarations and their values by district."""

from __future__ import annotations

from citybrain.apps.command import indicators
from citybrain.apps.indicators.definitions import check
from citybrain.core.context import AppContext
from citybrain.sdk import utcnow
from tests.apps.command.conftest import Org
from tests.apps.command.test_kpi import scenario


def test_declarations_are_valid() -> None:
    codes = [spec.code for spec in check("command", indicators.INDICATORS)]
    assert codes == [
        "command.events_today", "command.events_open", "command.events_overdue",
        "command.on_time_closing_rate", "command.satisfaction_rate",
    ]  # fmt: skip


def test_values_by_district(ctx: AppContext, org: Org) -> None:
    scenario(ctx, org)  # 4 cases and 3 tickets in 涪城区 (510703), see test_kpi
    now = utcnow()
    values = {spec["code"]: spec["compute"](ctx, now, now) for spec in indicators.INDICATORS}  # type: ignore[operator]
    assert values["command.events_today"]["510700"] == 7 and values["command.events_today"]["510703"] == 7
    assert values["command.events_today"]["510704"] == 0
    # open: C (dispatched, overdue) and T2 (accepted); B, A closed, D cancelled, T1 and T3 rated
    assert values["command.events_open"]["510703"] == 2 and values["command.events_overdue"]["510703"] == 1
    # 按期结案 1 of 3 due; 满意 1 of 2 rated
    assert values["command.on_time_closing_rate"]["510703"] == 33.33
    assert values["command.on_time_closing_rate"]["510700"] == 33.33
    assert values["command.on_time_closing_rate"]["510704"] is None
    assert values["command.satisfaction_rate"]["510703"] == 50.0
