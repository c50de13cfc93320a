"""The pure parts: the state machines, the category declarations and working-time arithmetic."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from citybrain.apps.command import categories, deadlines, taxonomy
from citybrain.apps.command import workflows as wf
from citybrain.apps.command.permissions import PERMISSIONS, ROLES
from citybrain.apps.warning.permissions import PERMISSIONS as WARNING_PERMISSIONS

ZONE = ZoneInfo("Asia/Shanghai")
OFFICE = (time(9), time(17))
LEAVES = {
    "part.manhole_cover", "part.street_lamp", "part.litter_bin", "part.public_toilet", "part.road_surface",
    "part.guardrail", "part.traffic_sign", "part.green_space", "event.exposed_garbage", "event.illegal_ads",
    "event.construction", "event.waterlogging", "event.street_vending", "event.bike_parking",
    "hotline.noise", "hotline.water_supply", "hotline.power_supply", "hotline.gas", "hotline.public_transport",
    "hotline.social_insurance", "hotline.education", "hotline.property_management", "hotline.wage_arrears",
    "hotline.consumer_rights", "hotline.food_safety", "hotline.pollution", "hotline.policy_enquiry",
}  # fmt: skip


@pytest.mark.parametrize("flow", wf.WORKFLOWS.values(), ids=list(wf.WORKFLOWS))
def test_every_action_leads_between_known_states_with_declared_permissions(flow: wf.Workflow) -> None:
    states = {s.code for s in flow.states}
    declared = {p.code for p in PERMISSIONS}
    assert wf.INITIAL[flow.code] in states and wf.FILED[flow.code] in states
    for action in flow.actions:
        assert action.sources <= states, action.code
        assert action.target is None or action.target in states
        assert action.permission in declared
        # only 重办 takes a finished (rated 不满意) ticket back
        assert action.reopens or not any(flow.state(s).final for s in action.sources), action.code
    # 并单 (services.merge) leads to "merged"
    reached = {wf.INITIAL[flow.code], wf.MERGED} | {a.target for a in flow.actions if a.target}
    assert reached == states  # no state is unreachable


def test_the_roles_use_declared_permissions() -> None:
    # the shift leader also sees every department's warnings (a permission of the warning app)
    declared = {p.code for p in (*PERMISSIONS, *WARNING_PERMISSIONS)}
    for _code, _zh, _en, permissions in ROLES:
        assert set(permissions) <= declared


def test_the_declared_tree_has_every_leaf_with_limits() -> None:
    found = {taxonomy.check("command", c).code: c for c in categories.CATEGORIES}
    assert set(found) == LEAVES
    assert found["part.manhole_cover"].group_zh == ("部件", "公用设施类")
    assert found["event.street_vending"].department_for("510703") == "510703"
    assert found["event.street_vending"].department_for(None) == "cgzf"
    assert found["hotline.gas"].workflow == "hotline"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"code": "Bad Code"}, "dot-separated"),
        ({"limits": {"handle": "2w"}}, "working hours"),
        ({"limits": {"file": "1h"}}, "'handle' time limit"),
        ({"workflow": "other"}, "workflow"),
        ({"districts": {"5107": "x"}}, "6-digit"),
        ({"department": ""}, "responsible department"),
    ],
)
def test_a_bad_declaration_is_refused_with_a_clear_message(change: dict[str, object], message: str) -> None:
    base = categories.CATEGORIES[0]
    fields = {**base.__dict__, **change}
    with pytest.raises(taxonomy.CategoryError, match=message):
        taxonomy.check("demo", taxonomy.Category(**fields))  # type: ignore[arg-type]
    with pytest.raises(taxonomy.CategoryError, match="not a Category"):
        taxonomy.check("demo", object())


def test_working_days_skip_holidays_and_count_adjusted_days() -> None:
    assert not deadlines.is_workday(date(2026, 10, 1))  # 国庆节
    assert deadlines.is_workday(date(2026, 10, 10))  # a Saturday made a working day (调休)
    start = datetime(2026, 9, 30, 10, tzinfo=ZONE)
    assert deadlines.add_working_days(start, 1, ZONE) == datetime(2026, 10, 8, 23, 59, 59, tzinfo=ZONE)
    assert deadlines.add_working_days(start, 3, ZONE) == datetime(2026, 10, 10, 23, 59, 59, tzinfo=ZONE)
    # beyond the calendar's data, weekends are the rest days
    assert deadlines.add_working_days(datetime(2031, 1, 3, tzinfo=ZONE), 1, ZONE).date() == date(2031, 1, 6)


def test_working_hours_count_office_hours_only() -> None:
    add = deadlines.add_working_hours
    assert add(datetime(2026, 9, 29, 10, tzinfo=ZONE), 2, ZONE, OFFICE) == datetime(
        2026, 9, 29, 12, tzinfo=ZONE
    )
    assert add(datetime(2026, 9, 29, 20, tzinfo=ZONE), 1, ZONE, OFFICE) == datetime(
        2026, 9, 30, 10, tzinfo=ZONE
    )
    # 16:00 on the eve of National Day: one hour that day, the next after the holiday
    assert add(datetime(2026, 9, 30, 16, tzinfo=ZONE), 2, ZONE, OFFICE) == datetime(
        2026, 10, 8, 10, tzinfo=ZONE
    )
    assert deadlines.deadline(
        datetime(2026, 9, 29, 10, tzinfo=ZONE), taxonomy.Limit.parse("4h"), ZONE, OFFICE
    ) == datetime(2026, 9, 29, 14, tzinfo=ZONE)
