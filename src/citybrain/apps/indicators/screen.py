"""The IOC screen (城市运行一屏观全域): what it draws from the vital signs, and the changes pushed to it.

The screen's page and its data call (`screen_data`) answer the vital signs of the city or of one district:
the gauges, every sign's value and level, the districts ranked, the recent trends, the map's districts
and layers. Warnings and events come to the browser from the warning and command apps' own APIs (each
checks its reader's permissions); this app follows them through their bus events only.

Pushing: the lifespan subscribes to the indicators' ValuesChanged and to the warning and event subjects,
and every message goes to the hub, which hands it to each open stream of this process (server-sent
events). Each process of a deployment subscribes under the same durable names, so on a NATS bus the
processes share the messages: a screen misses the pushes its process was not given, and its own refresh
(every `screen_refresh_seconds`) catches them up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from citybrain.apps.geo import services as geo
from citybrain.apps.indicators import services
from citybrain.apps.indicators.definitions import IndicatorSpec
from citybrain.apps.indicators.events import (
    EventChangedSeen,
    ValuesChanged,
    WarningChangedSeen,
    WarningLiftedSeen,
    WarningRaisedSeen,
)
from citybrain.sdk import Actor, AppContext, utcnow

HUB = "indicators.hub"
QUEUE_SIZE = 256
# The level colours of the vital signs on the dark screen (brighter than on the light pages).
LEVEL_COLORS = {"good": "#35d07f", "warn": "#ffb020", "bad": "#ff4d4f"}
DISTRICT_SIMPLIFY = 0.002  # degrees: the screen's district outlines (a few kB, crisp at city scale)


# --- the hub --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """One pushed message: an SSE event name and its JSON data."""

    event: str
    data: dict[str, Any]


@dataclass
class Hub:
    """The open streams of this process; a message goes to each of them (a full queue drops it)."""

    listeners: set[asyncio.Queue[Message]] = field(default_factory=set)
    sent: int = 0

    def publish(self, message: Message) -> None:
        """Hand a message to every open stream (call on the event loop)."""
        self.sent += 1
        for queue in list(self.listeners):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(message)


def hub(ctx: AppContext) -> Hub:
    """The platform's hub of open screen streams."""
    found: Hub | None = ctx.extensions.get(HUB)
    if found is None:
        found = ctx.extensions.setdefault(HUB, Hub())
    return found


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def subscribe(ctx: AppContext) -> None:
    """Subscribe the hub to the changes the screen shows (called by the lifespan)."""
    the_hub = hub(ctx)

    async def on_values(event: ValuesChanged) -> None:
        the_hub.publish(Message("indicators", {"codes": event.codes, "at": _iso(event.at)}))

    async def on_raised(event: WarningRaisedSeen) -> None:
        the_hub.publish(Message("warning", _warning(event.warning_id, "raised", event.level, event)))

    async def on_changed(event: WarningChangedSeen) -> None:
        the_hub.publish(Message("warning", _warning(event.warning_id, event.change, event.level, event)))

    async def on_lifted(event: WarningLiftedSeen) -> None:
        the_hub.publish(Message("warning", _warning(event.warning_id, "lifted", None, event)))

    async def on_event(event: EventChangedSeen) -> None:
        data = {
            "id": event.case_id,
            "number": event.number,
            "action": event.action,
            "state": event.state,
            "district": event.district,
            "at": _iso(event.at),
        }
        the_hub.publish(Message("event", data))

    ctx.bus.subscribe(ValuesChanged, on_values, durable="indicators.screen.values")
    ctx.bus.subscribe(WarningRaisedSeen, on_raised, durable="indicators.screen.warning-raised")
    ctx.bus.subscribe(WarningChangedSeen, on_changed, durable="indicators.screen.warning-changed")
    ctx.bus.subscribe(WarningLiftedSeen, on_lifted, durable="indicators.screen.warning-lifted")
    ctx.bus.subscribe(EventChangedSeen, on_event, durable="indicators.screen.event-changed")


def _warning(
    warning_id: int,
    change: str,
    level: str | None,
    event: WarningRaisedSeen | WarningChangedSeen | WarningLiftedSeen,
) -> dict[str, Any]:
    return {
        "id": warning_id,
        "change": change,
        "level": level,
        "district": event.district,
        "at": _iso(event.at),
    }


def check_stream(ctx: AppContext, actor: Actor, district: str | None) -> str | None:
    """Check that the actor may follow the screen (of the city or a district); the district code or None."""
    actor.require(services.READ)
    if district is not None and district != geo.city(ctx).code:
        services.check_area(ctx, district)
        return district
    return None


def _frame(message: Message) -> bytes:
    data = json.dumps(message.data, ensure_ascii=False, separators=(",", ":"))
    return f"event: {message.event}\ndata: {data}\n\n".encode()


async def stream(ctx: AppContext, district: str | None) -> AsyncIterator[bytes]:
    """The server-sent events of one screen: hello, then every change, keep-alive comments between."""
    config = services.settings(ctx)
    the_hub = hub(ctx)
    queue: asyncio.Queue[Message] = asyncio.Queue(maxsize=QUEUE_SIZE)
    the_hub.listeners.add(queue)
    ends = time.monotonic() + config.stream_max_seconds
    try:
        # the browser reconnects 2 s after a dropped stream (EventSource's retry)
        yield b"retry: 2000\n\n"
        stamp = await asyncio.to_thread(services.version, ctx)
        yield _frame(Message("hello", {"version": stamp, "district": district, "at": _iso(utcnow())}))
        while (left := ends - time.monotonic()) > 0:
            try:
                async with asyncio.timeout(min(config.stream_keepalive_seconds, left)):
                    message = await queue.get()
            except TimeoutError:
                yield b": keep-alive\n\n"
                continue
            yield _frame(message)
    finally:
        the_hub.listeners.discard(queue)


# --- what the screen draws --------------------------------------------------------------------------


def _chart_time(moment: datetime, zone: ZoneInfo) -> int:
    """Milliseconds of the wall-clock time in the zone, read as UTC (the charts draw in UTC mode)."""
    return int(moment.astimezone(zone).replace(tzinfo=UTC).timestamp() * 1000)


def _gauge_max(ctx: AppContext, spec: IndicatorSpec, value: float | None) -> float:
    """The top of a gauge's scale: configured, 100 for a percentage, else beyond the bad threshold."""
    top = services.settings(ctx).screen_gauge_max.get(spec.code)
    if top is None:
        if spec.unit == "%":
            top = 100.0
        elif spec.thresholds is not None:
            top = max(spec.thresholds.bad, spec.thresholds.warn) * 1.5
        else:
            top = 100.0
    if value is not None and value > top:
        top = float(int(value * 1.2) + 1)
    return top


def _sign(ctx: AppContext, spec: IndicatorSpec, value: services.Value | None, locale: str) -> dict[str, Any]:
    ok = value is not None and value.status == services.OK
    return {
        "reason": services.explain(ctx, spec, value, locale),
        "code": spec.code,
        "name": spec.name(locale),
        "unit": spec.unit,
        "kind": spec.kind,
        "decimals": spec.decimals,
        "value": value.value if ok and value is not None else None,
        "text": value.text if ok and value is not None else None,
        "level": value.level if value is not None else None,
        "status": value.status if value is not None else "missing",
        "period": spec.period,
    }


def screen_data(ctx: AppContext, actor: Actor, district: str | None, locale: str) -> dict[str, Any]:
    """Everything the screen draws from the vital signs, for the city or one district."""
    district = check_stream(ctx, actor, district)
    config = services.settings(ctx)
    zone = ZoneInfo(ctx.settings.timezone)
    known = services.areas(ctx)
    names = {a.code: a.name(locale) for a in known}
    city = known[0]
    place = city if district is None else next(a for a in known if a.code == district)
    snapshot = services.current(ctx, actor)
    by_code = {i.item.spec.code: i for i in snapshot.indicators}

    def value_of(now: services.IndicatorNow) -> services.Value | None:
        if district is None or not now.item.spec.by_district:
            return now.city
        return next((v for v in now.districts if v.area == district), None)

    signs = [_sign(ctx, i.item.spec, value_of(i), locale) for i in snapshot.indicators]
    for sign, now in zip(signs, snapshot.indicators, strict=True):
        sign["scope"] = "district" if district is not None and now.item.spec.by_district else "city"
    gauges = []
    for code in config.screen_gauges:
        if code in by_code:
            spec = by_code[code].item.spec
            sign = _sign(ctx, spec, value_of(by_code[code]), locale)
            sign["max"] = _gauge_max(ctx, spec, sign["value"])
            sign["thresholds"] = None if spec.thresholds is None else spec.thresholds.model_dump()
            gauges.append(sign)
    rankings = []
    for code in config.screen_rankings:
        ranked = by_code.get(code)
        if ranked is None or not ranked.item.spec.by_district:
            continue
        spec = ranked.item.spec
        worse_high = spec.thresholds is None or spec.thresholds.direction == "higher_is_worse"
        rows = [v for v in ranked.districts if v.status == services.OK and v.value is not None]
        rows.sort(key=lambda v: (-(v.value or 0.0) if worse_high else (v.value or 0.0), v.area))
        rankings.append(
            {
                "code": code,
                "name": spec.name(locale),
                "unit": spec.unit,
                "decimals": spec.decimals,
                "items": [
                    {"area": v.area, "name": names.get(v.area, v.area), "value": v.value, "level": v.level}
                    for v in rows
                ],
            }
        )
    # The trends span the last `screen_trend_hours` up to now: the chart's axis is this window, whatever
    # values it holds (a value recorded for a later moment is never drawn ahead of the clock).
    end = utcnow()
    start = end - timedelta(hours=config.screen_trend_hours)
    window = {"start": _chart_time(start, zone), "end": _chart_time(end, zone)}
    trends = []
    for code in config.screen_trends:
        traced = by_code.get(code)
        if traced is None:
            continue
        spec = traced.item.spec
        area = place.code if spec.by_district else city.code
        found = services.history(ctx, actor, code, area, start, end)
        trends.append(
            {
                "code": code,
                "name": spec.name(locale),
                "unit": spec.unit,
                "decimals": spec.decimals,
                "thresholds": None if spec.thresholds is None else spec.thresholds.model_dump(),
                **window,
                "points": [
                    [_chart_time(p.period_start, zone), p.value]
                    for p in found.points
                    if p.status == services.OK and p.value is not None
                ],
            }
        )
    return {
        "version": snapshot.version,
        "computed_at": None if snapshot.computed_at is None else _iso(snapshot.computed_at),
        "city": {"code": city.code, "name": city.name(locale)},
        "area": {"code": place.code, "name": place.name(locale)},
        "district": district,
        "districts": [{"code": a.code, "name": a.name(locale)} for a in known[1:]],
        "signs": signs,
        "gauges": gauges,
        "rankings": rankings,
        "trends": trends,
        "trend_hours": config.screen_trend_hours,
        "colors": LEVEL_COLORS,
    }


def map_config(ctx: AppContext, actor: Actor, locale: str) -> dict[str, Any]:
    """The screen map's districts (simplified outlines), the city's bounds and the live layers shown."""
    wanted = services.settings(ctx).screen_layers
    visible = {item.id: item for item in geo.layers(ctx, actor)} if actor.can(geo.MAP_READ) else {}
    outline = geo.city(ctx)
    west, south, east, north = outline.geometry.bounds
    return {
        "districts": geo.district_collection(ctx, DISTRICT_SIMPLIFY),
        "bounds": [west, south, east, north],
        "layers": [visible[code].as_json(locale) for code in wanted if code in visible],
    }
