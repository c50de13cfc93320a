"""The daily city operations brief (城市运行日报), generated from the recorded history of the vital signs.

For one day in China time: each vital sign's value at the day's close (its last recorded value), the
lowest and highest of the day, the change against the day before, the day's course as a small chart
(an inline SVG, so the printed brief needs no script), each district's value, and the warnings the
warning app's vital signs counted (the most in force at once, by level) with the list of the day's
warnings, kept from the warning app's events (services.seen_warning): the page is whole without a
script, so a saved or printed copy holds everything. A sign without a value says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from citybrain.apps.indicators import services
from citybrain.apps.indicators.definitions import IndicatorSpec, Level
from citybrain.apps.indicators.models import IndicatorValue
from citybrain.sdk import Actor, AppContext, BadRequest, utcnow

WARNING_CODES = (
    "warning.active_red",
    "warning.active_orange",
    "warning.active_yellow",
    "warning.active_blue",
)
CHART_W, CHART_H = 160, 36


@dataclass
class Sign:
    """One vital sign's day: close, low, high, change against the day before, its course and districts."""

    spec: IndicatorSpec
    close: float | None = None
    text: str | None = None
    low: float | None = None
    high: float | None = None
    previous: float | None = None
    level: Level | None = None
    points: list[tuple[datetime, float]] = field(default_factory=list)
    districts: dict[str, float | None] = field(default_factory=dict)
    # Whether the day recorded anything of the sign, and the reason of its last unavailable value.
    recorded: bool = False
    failure: str | None = None

    @property
    def change(self) -> float | None:
        """The change of the close against the day before's close."""
        if self.close is None or self.previous is None:
            return None
        return self.close - self.previous

    def path(self, day_start: datetime) -> str:
        """The day's course as the points of an SVG polyline (CHART_W × CHART_H)."""
        if len(self.points) < 2 or self.low is None or self.high is None:
            return ""
        span = (self.high - self.low) or 1.0
        coords = []
        for moment, value in self.points:
            x = (moment - day_start).total_seconds() / 86400 * CHART_W
            y = CHART_H - 2 - (value - self.low) / span * (CHART_H - 4)
            coords.append(f"{x:.1f},{y:.1f}")
        return " ".join(coords)


@dataclass
class Brief:
    """The brief of one day."""

    day: date
    start: datetime
    end: datetime
    signs: list[Sign]
    areas: list[services.Area]
    warnings: dict[str, int | None]
    generated_at: datetime
    # The day's warnings; None with `listing` "disabled" (no warning app) or "forbidden" (not the reader's).
    listed: list[services.DayWarning] | None = None
    listing: str = "ready"

    def why(self, ctx: AppContext, sign: Sign, locale: str) -> str | None:
        """Why a sign shows "—" for the day (None when it has a close)."""
        if (sign.spec.kind == "text" and sign.text) or (
            sign.spec.kind == "number" and sign.close is not None
        ):
            return None
        if sign.failure is not None:
            return services.reason_text(ctx, sign.failure, locale)
        if not sign.recorded:
            return ctx.i18n.gettext(locale, services.NOTHING_RECORDED)
        return sign.spec.empty(locale) or ctx.i18n.gettext(locale, services.NO_VALUE)


def parse_day(ctx: AppContext, text: str | None) -> date:
    """The day asked for (YYYY-MM-DD; default yesterday in China time); 400 for a bad or future day."""
    today = utcnow().astimezone(ZoneInfo(ctx.settings.timezone)).date()
    if text is None or text == "":
        return today - timedelta(days=1)
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise BadRequest("date must be a day as YYYY-MM-DD, not {value}.", value=text[:40]) from None
    if len(text) != 10:
        raise BadRequest("date must be a day as YYYY-MM-DD, not {value}.", value=text[:40])
    if day > today:
        raise BadRequest("There is no brief of {day} yet: it is in the future.", day=day.isoformat())
    return day


def daily_brief(ctx: AppContext, actor: Actor, day: date) -> Brief:
    """The brief of a day (China time), from the recorded history of every numeric vital sign."""
    actor.require(services.READ)
    zone = ZoneInfo(ctx.settings.timezone)
    start = datetime.combine(day, time(0), zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), zone).astimezone(UTC)
    before = datetime.combine(day - timedelta(days=1), time(0), zone).astimezone(UTC)
    known = services.areas(ctx)
    city = known[0].code
    specs = [d.spec for d in services.declared(ctx)]
    v = IndicatorValue
    stmt = (
        select(v.indicator, v.area, v.period_start, v.value, v.text, v.status, v.reason)
        .where(v.period_start >= before, v.period_start < end)
        .order_by(v.period_start)
    )
    with ctx.read() as session:
        rows = session.connection().execute(stmt).all()
    signs = {spec.code: Sign(spec) for spec in specs}
    for code, area, moment, value, text, status, reason in rows:
        sign = signs.get(code)
        if sign is None:
            continue
        moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
        today = moment >= start
        if status != services.OK:
            if today and area == city:
                sign.recorded, sign.failure = True, reason
            continue
        if today and area == city:
            sign.recorded, sign.failure = True, None
        if area != city:
            if today and sign.spec.by_district:
                sign.districts[area] = value
            continue
        if not today:
            sign.previous = value
            continue
        sign.text = text
        if value is None:
            continue
        sign.close = value
        sign.points.append((moment, value))
        sign.low = value if sign.low is None else min(sign.low, value)
        sign.high = value if sign.high is None else max(sign.high, value)
    for sign in signs.values():
        sign.level = sign.spec.level(sign.close)
    warnings: dict[str, int | None] = {}
    for code in WARNING_CODES:
        found = signs.get(code)
        warnings[code.rsplit("_", 1)[1]] = None if found is None or found.high is None else int(found.high)
    listed: list[services.DayWarning] | None = None
    if ctx.app("warning") is None:
        listing = "disabled"
    elif not actor.can(services.WARNING_READ):
        listing = "forbidden"
    else:
        listing, listed = "ready", services.day_warnings(ctx, actor, start, end)
    return Brief(day, start, end, list(signs.values()), known, warnings, utcnow(), listed, listing)
