"""The traffic performance indicators of GB/T 33171-2016 as pure functions (no database, no I/O).

Clauses cited are those of GB/T 33171-2016《城市交通运行状况评价规范》:

* §5.2–5.5 segmenting: an expressway segment is re-split when 3 km or longer, any other road's when
  1.5 km or longer;
* §7.2.1.2 free-flow speed learned from at least 30 days of history, capped by the speed limit;
* §7.2.1.3 a segment's mean travel speed is the space mean V = ΣL / Σt;
* §7.2.2.1 TTI = t̄ / t_f and §7.2.2.2 DTP = (t̄ − t_f) / t̄, with TTI = 1 and DTP = 0 when t̄ < t_f;
* §7.2.2.3 the grade mileage ratio DP_i = Σ m_i / Σ L;
* §8.1 表2 the segment grade from the ratio of the travel speed to the free-flow speed;
* §8.2 表3 the network grade from the TPI; 附录C the conversion of the network DTP to the TPI (0–10).

Two choices the standard leaves open are the platform's own and are named where they are made: the
network weights (GB/T 29107—2012 附录A, which the standard refers to, was not at hand: segments are
weighted by vehicle kilometres travelled, §3.13, else by length) and the linear interpolation of the
TPI inside each 附录C bin.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

Weighting = Literal["vkt", "length"]
FreeFlowSource = Literal["history", "speed_limit"]

# §5.2–5.5: a segment of this length or longer is split again (metres), by road class.
EXPRESSWAY_MAX_M = 3000.0
OTHER_MAX_M = 1500.0
# §7.2.1.2: the free-flow speed needs the intervals of 06:00–24:00, averaged over at least 30 days.
FREE_FLOW_MIN_DAYS = 30
FREE_FLOW_DAY_START_HOUR = 6
FREE_FLOW_TOP_SHARE = 9  # the mean of the top 1/9 of the interval means
# §7.2.1.2 and §7.2.2: intervals of at most 15 minutes.
MAX_INTERVAL = timedelta(minutes=15)


class InvalidInput(ValueError):
    """An input the standard's formulas cannot take: a negative, zero or non-finite speed or length."""


@dataclass(frozen=True)
class Grade:
    """A traffic grade (1 畅通 … 5 严重拥堵), its names and the colour it is drawn in."""

    level: int
    name_zh: str
    name_en: str
    color: str

    def name(self, locale: str) -> str:
        """The grade's name in a locale ("zh_CN" or "en")."""
        return self.name_en if locale == "en" else self.name_zh


# The five grades of §8.1 (segments) and §8.2 (network), green to dark red. The colours of 附录D were
# not at hand; these follow the usual green–yellow–red scale of traffic maps.
GRADES = (
    Grade(1, "畅通", "Free flow", "#2e9d5b"),
    Grade(2, "基本畅通", "Basically free flow", "#9ccc3d"),
    Grade(3, "轻度拥堵", "Mild congestion", "#f2c12e"),
    Grade(4, "中度拥堵", "Moderate congestion", "#e8590c"),
    Grade(5, "严重拥堵", "Severe congestion", "#8e1b1b"),
)

# §8.1 表2: the lower bounds (exclusive) of V / Vf for grades 1–4; V ≤ 30 % Vf is grade 5.
# The table is the same for every road class (快速路, 主干路, 次干路, 支路).
SPEED_RATIO_BOUNDS = (0.7, 0.5, 0.4, 0.3)
# 附录C: network DTP bins [low, high) → TPI [low, high); the last bin [0.7, 1.0] is closed.
DTP_TPI_BINS = (
    (0.0, 0.3, 0.0, 2.0),
    (0.3, 0.5, 2.0, 4.0),
    (0.5, 0.6, 4.0, 6.0),
    (0.6, 0.7, 6.0, 8.0),
    (0.7, 1.0, 8.0, 10.0),
)
# §8.2 表3: the TPI lower bounds (inclusive) of grades 2–5: [0,2) 畅通 … [8,10] 严重拥堵.
TPI_GRADE_BOUNDS = (2.0, 4.0, 6.0, 8.0)


def _positive(value: float, what: str) -> float:
    """The value as a float when it is finite and above zero; InvalidInput otherwise."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise InvalidInput(f"{what} must be a finite number above zero, not {value!r}")
    return float(value)


def _fraction(value: float, what: str) -> float:
    """The value as a float when it lies in [0, 1]; InvalidInput otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise InvalidInput(f"{what} must be a number from 0 to 1, not {value!r}")
    return float(value)


# --- segments (§5) ---------------------------------------------------------------------------------


def max_segment_m(road_class: str) -> float:
    """The length at which a segment of a road class is split again (§5.2–5.5)."""
    return EXPRESSWAY_MAX_M if road_class == "expressway" else OTHER_MAX_M


def split_count(length_m: float, road_class: str) -> int:
    """Into how many equal parts a road is cut so that each is shorter than its class allows (§5.2–5.5)."""
    length = _positive(length_m, "the road length")
    return math.floor(length / max_segment_m(road_class)) + 1


# --- speeds and times (§7.2.1) ---------------------------------------------------------------------


def travel_time_s(length_m: float, speed_kmh: float) -> float:
    """The travel time in seconds over a segment at a mean travel speed, t = L / V (§7.2.2.1)."""
    return _positive(length_m, "the segment length") / (_positive(speed_kmh, "the speed") / 3.6)


def space_mean_speed(speeds_kmh: Sequence[float]) -> float:
    """The space-mean speed of equal parts of a segment, V = ΣL / Σt (§7.2.1.3): their harmonic mean."""
    if not speeds_kmh:
        raise InvalidInput("a space-mean speed needs at least one speed")
    return len(speeds_kmh) / sum(1.0 / _positive(v, "a speed") for v in speeds_kmh)


@dataclass(frozen=True)
class FreeFlow:
    """A free-flow speed, where it comes from, and how many days of history it was learned from."""

    speed_kmh: float
    source: FreeFlowSource
    days: int


def free_flow_speed(
    samples: Iterable[tuple[datetime, float]],
    speed_limit_kmh: float,
    *,
    zone: ZoneInfo,
    interval: timedelta = MAX_INTERVAL,
    min_days: int = FREE_FLOW_MIN_DAYS,
) -> FreeFlow:
    """The free-flow speed of a segment from its interval mean speeds (§7.2.1.2), or its speed limit."""
    # `samples` are (interval start, mean travel speed of the interval) with aware start times. The
    # intervals starting from 06:00 to 24:00 local time are grouped by their time of day; each group is
    # averaged over the days; the group means are sorted from fastest; the free-flow speed is the mean
    # of the top 1/9 of them (at least one: ceil(n / 9)), capped by the speed limit. With fewer than
    # `min_days` days of history the speed limit stands in: it is the cap the standard puts on the
    # learned value, and the speed the road is designed to carry when nothing slows it.
    limit = _positive(speed_limit_kmh, "the speed limit")
    if not timedelta(0) < interval <= MAX_INTERVAL:
        raise InvalidInput("the interval must be longer than zero and at most 15 minutes (§7.2.1.2)")
    step = interval.total_seconds()
    by_slot: dict[int, list[float]] = {}
    days: set[object] = set()
    for start, speed in samples:
        if start.tzinfo is None:
            raise InvalidInput("interval start times must carry a time zone")
        value = _positive(speed, "an interval mean speed")
        local = start.astimezone(zone)
        seconds = local.hour * 3600 + local.minute * 60 + local.second
        if local.hour < FREE_FLOW_DAY_START_HOUR:
            continue
        days.add(local.date())
        by_slot.setdefault(int(seconds // step), []).append(value)
    if len(days) < min_days or not by_slot:
        return FreeFlow(limit, "speed_limit", len(days))
    means = sorted((sum(v) / len(v) for v in by_slot.values()), reverse=True)
    top = means[: max(1, math.ceil(len(means) / FREE_FLOW_TOP_SHARE))]
    return FreeFlow(min(sum(top) / len(top), limit), "history", len(days))


# --- segment indicators (§7.2.2, §8.1) -------------------------------------------------------------


def tti(travel_s: float, free_flow_s: float) -> float:
    """The travel time index TTI = t̄ / t_f, 1 when t̄ < t_f (§7.2.2.1)."""
    t, tf = _positive(travel_s, "the travel time"), _positive(free_flow_s, "the free-flow travel time")
    return 1.0 if t < tf else t / tf


def dtp(travel_s: float, free_flow_s: float) -> float:
    """The delay time proportion DTP = (t̄ − t_f) / t̄, 0 when t̄ < t_f (§7.2.2.2)."""
    t, tf = _positive(travel_s, "the travel time"), _positive(free_flow_s, "the free-flow travel time")
    return 0.0 if t < tf else (t - tf) / t


def segment_grade(speed_kmh: float, free_flow_kmh: float) -> Grade:
    """The grade of a segment from its travel speed relative to its free-flow speed (§8.1 表2)."""
    ratio = _positive(speed_kmh, "the speed") / _positive(free_flow_kmh, "the free-flow speed")
    for grade, bound in zip(GRADES, SPEED_RATIO_BOUNDS, strict=False):
        if ratio > bound:
            return grade
    return GRADES[-1]


@dataclass(frozen=True)
class SegmentIndex:
    """A segment's indicators in one interval: times, TTI, DTP, grade, and its weight in the network."""

    length_m: float
    speed_kmh: float
    free_flow_kmh: float
    travel_s: float
    free_flow_s: float
    tti: float
    dtp: float
    grade: Grade
    flow_vph: float | None = None

    @property
    def vkt(self) -> float | None:
        """Vehicle kilometres travelled per hour, flow × length (§3.13); None without a flow."""
        return None if self.flow_vph is None else self.flow_vph * self.length_m / 1000.0


def evaluate_segment(
    length_m: float, speed_kmh: float, free_flow_kmh: float, flow_vph: float | None = None
) -> SegmentIndex:
    """A segment's travel and free-flow times, TTI, DTP and grade at a mean travel speed."""
    if flow_vph is not None and (not math.isfinite(flow_vph) or flow_vph < 0):
        raise InvalidInput(f"the flow must be a finite number of zero or more, not {flow_vph!r}")
    travel = travel_time_s(length_m, speed_kmh)
    free = travel_time_s(length_m, free_flow_kmh)
    return SegmentIndex(
        length_m=float(length_m),
        speed_kmh=float(speed_kmh),
        free_flow_kmh=float(free_flow_kmh),
        travel_s=travel,
        free_flow_s=free,
        tti=tti(travel, free),
        dtp=dtp(travel, free),
        grade=segment_grade(speed_kmh, free_flow_kmh),
        flow_vph=flow_vph,
    )


# --- the network (§7.2.2.3, §7.2.3, §8.2, 附录C) -----------------------------------------------------


def tpi_from_dtp(network_dtp: float) -> float:
    """The TPI (0–10) of a network DTP by 附录C; linear inside each bin (the platform's convention)."""
    value = _fraction(network_dtp, "the network DTP")
    for low, high, tpi_low, tpi_high in DTP_TPI_BINS:
        if value < high or high == 1.0:
            return tpi_low + (tpi_high - tpi_low) * (value - low) / (high - low)
    raise AssertionError("unreachable: the last bin is closed")  # pragma: no cover


def network_grade(tpi: float) -> Grade:
    """The grade of a network from its TPI (§8.2 表3)."""
    if isinstance(tpi, bool) or not isinstance(tpi, int | float) or not 0.0 <= tpi <= 10.0:
        raise InvalidInput(f"a TPI is a number from 0 to 10, not {tpi!r}")
    level = sum(1 for bound in TPI_GRADE_BOUNDS if tpi >= bound)
    return GRADES[level]


@dataclass(frozen=True)
class NetworkIndex:
    """A network's indicators in one interval: TPI, grade, weighted DTP and TTI, and what it covers."""

    tpi: float
    grade: Grade
    dtp: float
    tti: float
    weighting: Weighting
    segments: int
    length_m: float
    # §7.2.2.3: the share of the covered length in each grade, by grade level (1–5).
    mileage_ratios: dict[int, float]


def mileage_ratios(segments: Sequence[SegmentIndex]) -> dict[int, float]:
    """The share of the length in each grade, DP_i = Σ m_i / Σ L (§7.2.2.3), by grade level."""
    total = sum(s.length_m for s in segments)
    if total <= 0:
        raise InvalidInput("the grade mileage ratios need at least one segment")
    return {g.level: sum(s.length_m for s in segments if s.grade.level == g.level) / total for g in GRADES}


def weights_of(segments: Sequence[SegmentIndex], weighting: Weighting) -> tuple[list[float], Weighting]:
    """Each segment's weight: its VKT when every segment has a flow and some traffic moves, else its length."""
    if weighting == "vkt":
        vkts = [s.vkt for s in segments]
        if all(v is not None for v in vkts) and sum(v or 0.0 for v in vkts) > 0:
            return [v or 0.0 for v in vkts], "vkt"
    return [s.length_m for s in segments], "length"


def aggregate(segments: Sequence[SegmentIndex], weighting: Weighting = "vkt") -> NetworkIndex:
    """The network's weighted DTP and TTI, its TPI by 附录C and its grade by §8.2 (§7.2.2.4)."""
    if not segments:
        raise InvalidInput("a network index needs at least one segment with a speed")
    weights, used = weights_of(segments, weighting)
    total = sum(weights)
    network_dtp = min(1.0, max(0.0, sum(w * s.dtp for w, s in zip(weights, segments, strict=True)) / total))
    network_tti = sum(w * s.tti for w, s in zip(weights, segments, strict=True)) / total
    index = tpi_from_dtp(network_dtp)
    return NetworkIndex(
        tpi=index,
        grade=network_grade(index),
        dtp=network_dtp,
        tti=network_tti,
        weighting=used,
        segments=len(segments),
        length_m=sum(s.length_m for s in segments),
        mileage_ratios=mileage_ratios(segments),
    )
