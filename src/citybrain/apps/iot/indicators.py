"""Vital signs the iot app declares: the share of devices online, and the rivers against their warning levels.

River levels come from the water-level gauges (WaterObserved entities: `height`, the stage now, and
`warningLevel`, the gauge's warning stage, both in metres on the gauge's own staff).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from citybrain.apps.context import entities as ent
from citybrain.apps.context import services as context
from citybrain.apps.context.jsonld import Context
from citybrain.apps.geo import services as geo
from citybrain.apps.iot.models import Device
from citybrain.sdk import SYSTEM, AppContext

GAUGE_TYPE = "WaterObserved"
MAX_GAUGES = 2000


def devices_online(ctx: AppContext, start: datetime, end: datetime) -> Mapping[str, float | None]:
    """Online devices as a share (%) of the devices heard from at least once, not revoked, by district."""
    stmt = (
        select(Device.district_code, Device.status, func.count())
        .where(Device.revoked.is_(False), Device.status != "new")
        .group_by(Device.district_code, Device.status)
    )
    online: dict[str | None, int] = {}
    total: dict[str | None, int] = {}
    with ctx.read() as session:
        for area, status, n in session.execute(stmt):
            total[area] = total.get(area, 0) + int(n)
            if status == "online":
                online[area] = online.get(area, 0) + int(n)

    def share(up: int, of: int) -> float | None:
        return None if of == 0 else round(100.0 * up / of, 2)

    found = {geo.city(ctx).code: share(sum(online.values()), sum(total.values()))}
    for district in geo.districts(ctx):
        found[district.code] = share(online.get(district.code, 0), total.get(district.code, 0))
    return found


def _number(stored: Mapping[str, Any], term: str, jctx: Context) -> float | None:
    """The value of an attribute's default instance, when it is a number."""
    for instance in stored.get("attrs", {}).get(jctx.expand(term), []):
        if "datasetId" not in instance:
            value = instance.get("value")
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
    return None


def _gauges(ctx: AppContext) -> list[tuple[str | None, float, float]]:
    """Each gauge with a stage and a warning stage: (district code, stage, warning stage)."""
    jctx = Context()
    query = context.EntityQuery(types=[jctx.expand_type(GAUGE_TYPE)], limit=MAX_GAUGES)
    found: list[tuple[str | None, float, float]] = []
    for stored in context.query_entities(ctx, SYSTEM, "", query).entities:
        height, warning = _number(stored, "height", jctx), _number(stored, "warningLevel", jctx)
        geometry = ent.geometry_of(stored, ent.LOCATION)
        if height is None or warning is None or warning <= 0 or not isinstance(geometry, dict):
            continue
        if geometry.get("type") != "Point":
            continue
        lon, lat = (float(c) for c in geometry["coordinates"][:2])
        district = geo.district_at(ctx, lon, lat)
        found.append((district.code if district else None, height, warning))
    return found


def _by_area(
    ctx: AppContext, gauges: list[tuple[str | None, float, float]], fold: Any
) -> Mapping[str, float | None]:
    """A value of the city's gauges and of each district's (None where a district has none)."""
    found: dict[str, float | None] = {geo.city(ctx).code: fold(gauges) if gauges else None}
    for district in geo.districts(ctx):
        mine = [g for g in gauges if g[0] == district.code]
        found[district.code] = fold(mine) if mine else None
    return found


def gauges_over_warning(ctx: AppContext, start: datetime, end: datetime) -> Mapping[str, float | None]:
    """The share (%) of gauges at or above their warning stage."""
    return _by_area(
        ctx, _gauges(ctx), lambda gs: round(100.0 * sum(1 for g in gs if g[1] >= g[2]) / len(gs), 2)
    )


def highest_level_ratio(ctx: AppContext, start: datetime, end: datetime) -> Mapping[str, float | None]:
    """The highest stage as a share (%) of its gauge's warning stage (100: at the warning stage)."""
    return _by_area(ctx, _gauges(ctx), lambda gs: round(max(100.0 * g[1] / g[2] for g in gs), 1))


INDICATORS = [
    {
        "code": "iot.devices_online",
        "name_zh": "设备在线率",
        "name_en": "Devices online",
        "unit": "%",
        "decimals": 1,
        "period": "realtime",
        "by_district": True,
        "source": "entity_state",
        # the platform's own service target (no national standard sets one)
        "thresholds": {"direction": "lower_is_worse", "warn": 95.0, "bad": 90.0},
        "department": "dsj",
        "description_zh": "在线设备占已接入（至少上报过一次、未吊销）设备的比例。",
        "description_en": "Online devices as a share of the devices that have reported at least once and "
        "are not revoked.",
        "compute": devices_online,
    },
    {
        "code": "iot.river_over_warning",
        "name_zh": "超警戒水位站占比",
        "name_en": "Gauges above warning level",
        "unit": "%",
        "decimals": 0,
        "period": "realtime",
        "by_district": True,
        "source": "entity_state",
        "thresholds": {"direction": "higher_is_worse", "warn": 0.01, "bad": 30.0},
        "department": "slj",
        "description_zh": "当前水位达到或超过警戒水位的河道水位站占全部水位站的比例。",
        "description_en": "The share of river gauges whose stage is at or above their warning level.",
        "compute": gauges_over_warning,
    },
    {
        "code": "iot.river_level_ratio",
        "name_zh": "最高水位与警戒水位比",
        "name_en": "Highest stage against warning level",
        "unit": "%",
        "decimals": 0,
        "period": "realtime",
        "by_district": True,
        "source": "entity_state",
        "thresholds": {"direction": "higher_is_worse", "warn": 90.0, "bad": 100.0},
        "department": "slj",
        "description_zh": "各水位站当前水位占其警戒水位的百分比中的最高值（100% 即达到警戒水位）。",
        "description_en": "The highest of the gauges' stages as a percentage of their warning levels "
        "(100% is at the warning level).",
        "compute": highest_level_ratio,
    },
]
