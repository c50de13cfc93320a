from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from citybrain.apps.warning.forecasting import DayKind, LocalCalendar, china_day_kind, weekend_day_kind


def test_china_kinds_of_day() -> None:
    assert china_day_kind(date(2026, 10, 1)) is DayKind.HOLIDAY  # National Day
    assert china_day_kind(date(2026, 10, 7)) is DayKind.HOLIDAY  # rest day taken in lieu
    assert china_day_kind(date(2026, 2, 14)) is DayKind.ADJUSTED_WORKDAY  # a Saturday worked (调休)
    assert china_day_kind(date(2026, 3, 7)) is DayKind.WEEKEND
    assert china_day_kind(date(2026, 3, 9)) is DayKind.WORKDAY


def test_years_without_data_fall_back_to_the_weekend_rule() -> None:
    assert china_day_kind(date(2099, 1, 3)) is DayKind.WEEKEND  # a Saturday
    assert china_day_kind(date(2099, 1, 5)) is DayKind.WORKDAY


def test_features_are_in_shanghai_local_time() -> None:
    # 16:00 UTC on 30 September 2026 is 00:00 on 1 October in Mianyang: National Day, a holiday.
    stamps = [datetime(2026, 9, 30, 15, tzinfo=UTC) + timedelta(hours=i) for i in range(2)]
    rows = LocalCalendar().features(stamps, 24)
    assert rows[0].tolist() == [23, 2, DayKind.WORKDAY, DayKind.HOLIDAY]  # Wednesday 23:00, tomorrow off
    assert rows[1].tolist() == [0, 3, DayKind.HOLIDAY, DayKind.HOLIDAY]


def test_another_city_can_bring_its_own_calendar() -> None:
    calendar = LocalCalendar(tz="UTC", day_kind=weekend_day_kind)
    rows = calendar.features([datetime(2026, 10, 1, 6, tzinfo=UTC)], 24)
    assert rows[0].tolist() == [6, 3, DayKind.WORKDAY, DayKind.WORKDAY]
