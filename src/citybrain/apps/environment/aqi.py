"""The Air Quality Index of HJ 633 (《环境空气质量指数（AQI）技术规定》), as pure functions.

Two versions apply by the time of the observation in China's time zone: HJ 633—2012 before
2026-03-01 00:00 (Asia/Shanghai), HJ 633—2026 from then on (the 2026 text replaces the 2012 one on
that date). Both share 式(1) and 式(2) and the level table; they differ in the PM IAQI=100 node, the
report items, the SO2 1-hour and O3 8-hour cases above the table and the publication of missing data.

Rules this module applies to both versions (the 2012 text is silent on them):
- inputs are rounded per HJ 633—2026 §4.2.2 (µg/m³ to integers, CO in mg/m³ to one decimal, GB/T 8170
  round-half-even) before indexing; IAQI and AQI are rounded up to integers (2026 §4.2.6);
- the missing-data rule of 2026 §5.3.1 ("NA" when the AQI of the remaining items is 100 or less; "/"
  for an item not in the monitoring plan).
In the 2012 real-time report particulate matter is indexed by its 24-hour sliding mean (2012 has no
1-hour PM breakpoints); from 2026 the 1-hour concentration is indexed on the 24-hour breakpoints.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from typing import Literal
from zoneinfo import ZoneInfo

Version = Literal["2012", "2026"]
Report = Literal["hourly", "daily"]
VERSIONS: tuple[Version, ...] = ("2012", "2026")
REPORTS: tuple[Report, ...] = ("hourly", "daily")

CHINA = ZoneInfo("Asia/Shanghai")
# HJ 633—2026 is in force from 2026-03-01 and abolishes HJ 633—2012 from that date (standards notes §1.0).
CUTOVER = datetime(2026, 3, 1, tzinfo=CHINA)

# --- indicators --------------------------------------------------------------------------------------

SO2_1H, SO2_24H = "so2_1h", "so2_24h"
NO2_1H, NO2_24H = "no2_1h", "no2_24h"
CO_1H, CO_24H = "co_1h", "co_24h"
O3_1H, O3_8H = "o3_1h", "o3_8h"
PM10_1H, PM10_24H = "pm10_1h", "pm10_24h"
PM25_1H, PM25_24H = "pm25_1h", "pm25_24h"
INDICATORS: tuple[str, ...] = (
    SO2_1H,
    SO2_24H,
    NO2_1H,
    NO2_24H,
    CO_1H,
    CO_24H,
    O3_1H,
    O3_8H,
    PM10_1H,
    PM10_24H,
    PM25_1H,
    PM25_24H,
)
# The pollutant each indicator measures, as the reports name it (daily O3 is named "O3_8h", §1.5).
POLLUTANT: dict[str, str] = {
    SO2_1H: "SO2",
    SO2_24H: "SO2",
    NO2_1H: "NO2",
    NO2_24H: "NO2",
    CO_1H: "CO",
    CO_24H: "CO",
    O3_1H: "O3",
    O3_8H: "O3_8h",
    PM10_1H: "PM10",
    PM10_24H: "PM10",
    PM25_1H: "PM2.5",
    PM25_24H: "PM2.5",
}
MG = "mg/m³"
UG = "µg/m³"
# Units accepted for each indicator: CO in mg/m³, every other pollutant in µg/m³ (表3);
# GQ and GP are the UN/CEFACT codes of µg/m³ and mg/m³ that the context entities carry.
UNIT_ALIASES: dict[str, frozenset[str]] = {
    UG: frozenset({"µg/m³", "μg/m³", "µg/m3", "μg/m3", "ug/m3", "ug/m³", "GQ"}),
    MG: frozenset({"mg/m³", "mg/m3", "GP"}),
}


def unit_of(indicator: str) -> str:
    """The unit an indicator's concentration is given in: mg/m³ for CO, µg/m³ otherwise."""
    return MG if indicator.startswith("co_") else UG


# The items each report indexes (standards notes §1.3). 2012 real-time: the 1-hour means of SO2, NO2,
# CO and O3, the O3 8-hour sliding mean and the PM10/PM2.5 24-hour sliding means; 2012 daily: the 24-hour
# means, the O3 daily maximum 1-hour and 8-hour means. 2026 real-time: the 1-hour means of the six
# pollutants; 2026 daily: the 24-hour means and the O3 daily maximum 8-hour mean.
ITEMS: dict[tuple[Version, Report], tuple[str, ...]] = {
    ("2012", "hourly"): (SO2_1H, NO2_1H, CO_1H, O3_1H, O3_8H, PM10_24H, PM25_24H),
    ("2012", "daily"): (SO2_24H, NO2_24H, CO_24H, O3_1H, O3_8H, PM10_24H, PM25_24H),
    ("2026", "hourly"): (SO2_1H, NO2_1H, CO_1H, O3_1H, PM10_1H, PM25_1H),
    ("2026", "daily"): (SO2_24H, NO2_24H, CO_24H, O3_8H, PM10_24H, PM25_24H),
}
# Indicators a report accepts beyond its items: the SO2 24-hour mean the 2012 real-time report falls
# back to when the 1-hour SO2 exceeds 800 µg/m³ (2012 表1 note).
EXTRA: dict[tuple[Version, Report], tuple[str, ...]] = {("2012", "hourly"): (SO2_24H,)}

# --- breakpoints (HJ 633—2026 表3; the 2012 table differs only in the PM IAQI=100 node) ------------------

IAQI_NODES: tuple[int, ...] = (0, 50, 100, 150, 200, 300, 400, 500)
_BP_2026: dict[str, tuple[float, ...]] = {
    SO2_24H: (0, 50, 150, 475, 800, 1600, 2100, 2620),
    SO2_1H: (0, 150, 500, 650, 800),  # 表3 note b: no node above IAQI 200
    NO2_24H: (0, 40, 80, 180, 280, 565, 750, 940),
    NO2_1H: (0, 100, 200, 700, 1200, 2340, 3090, 3840),
    CO_24H: (0, 2, 4, 14, 24, 36, 48, 60),
    CO_1H: (0, 5, 10, 35, 60, 90, 120, 150),
    O3_8H: (0, 100, 160, 215, 265, 800),  # 表3 note c: no node above IAQI 300
    O3_1H: (0, 160, 200, 300, 400, 800, 1000, 1200),
    PM10_24H: (0, 50, 120, 250, 350, 420, 500, 600),  # 2026: IAQI 100 at 120 µg/m³
    PM25_24H: (0, 35, 60, 115, 150, 250, 350, 500),  # 2026: IAQI 100 at 60 µg/m³
}
_BP_2012: dict[str, tuple[float, ...]] = {
    **_BP_2026,
    PM10_24H: (0, 50, 150, 250, 350, 420, 500, 600),  # 2012: IAQI 100 at 150 µg/m³
    PM25_24H: (0, 35, 75, 115, 150, 250, 350, 500),  # 2012: IAQI 100 at 75 µg/m³
}
# Particulate matter has no 1-hour column: its 1-hour concentration uses the 24-hour breakpoints (式(1) note).
for _table in (_BP_2026, _BP_2012):
    _table[PM10_1H] = _table[PM10_24H]
    _table[PM25_1H] = _table[PM25_24H]
BREAKPOINTS: dict[Version, Mapping[str, tuple[float, ...]]] = {"2012": _BP_2012, "2026": _BP_2026}
SO2_1H_TOP = 800  # 表3 note b
O3_8H_TOP = 800  # 表3 note c

# --- levels (表1 and 附录A, the same in 2012 and 2026) -------------------------------------------------


@dataclass(frozen=True)
class Level:
    """An AQI level: its band, names, colour and health text (zh-CN and English)."""

    level: int
    low: int
    high: int
    name_zh: str
    name_en: str
    category_zh: str
    category_en: str
    color_zh: str
    color_en: str
    hex: str
    rgb: tuple[int, int, int]
    effect_zh: str
    effect_en: str
    advice_zh: str
    advice_en: str


LEVELS: tuple[Level, ...] = (
    Level(
        1, 0, 50, "一级", "Level I", "优", "Excellent", "绿色", "Green", "#00E400", (0, 228, 0),
        "空气质量令人满意，基本无空气污染",
        "Air quality is satisfactory and there is hardly any air pollution.",
        "各类人群可正常活动",
        "Everyone can carry on with normal activities.",
    ),
    Level(
        2, 51, 100, "二级", "Level II", "良", "Good", "黄色", "Yellow", "#FFFF00", (255, 255, 0),
        "空气质量可接受，但某些污染物可能对极少数异常敏感人群健康有较弱影响",
        "Air quality is acceptable, but some pollutants may slightly affect a very few unusually sensitive people.",
        "极少数异常敏感人群应减少户外活动",
        "The very few unusually sensitive people should reduce outdoor activities.",
    ),
    Level(
        3, 101, 150, "三级", "Level III", "轻度污染", "Lightly polluted", "橙色", "Orange", "#FF7E00",
        (255, 126, 0),
        "易感人群症状有轻度加剧，健康人群出现刺激症状",
        "Symptoms of susceptible people worsen slightly; healthy people show signs of irritation.",
        "儿童、老年人及心脏病、呼吸系统疾病患者应减少长时间、高强度的户外锻炼",
        "Children, the elderly and people with heart or respiratory disease should reduce long or "
        "strenuous outdoor exercise.",
    ),
    Level(
        4, 151, 200, "四级", "Level IV", "中度污染", "Moderately polluted", "红色", "Red", "#FF0000",
        (255, 0, 0),
        "进一步加剧易感人群症状，可能对健康人群心脏、呼吸系统有影响",
        "Symptoms of susceptible people worsen further; the heart and respiratory system of healthy "
        "people may be affected.",
        "儿童、老年人及心脏病、呼吸系统疾病患者避免长时间、高强度的户外锻炼，一般人群适量减少户外运动",
        "Children, the elderly and people with heart or respiratory disease should avoid long or strenuous "
        "outdoor exercise; everyone else should cut down outdoor exercise.",
    ),
    Level(
        5, 201, 300, "五级", "Level V", "重度污染", "Heavily polluted", "紫色", "Purple", "#99004C",
        (153, 0, 76),
        "心脏病和肺病患者症状显著加剧，运动耐受力降低，健康人群普遍出现症状",
        "Symptoms of people with heart or lung disease worsen markedly and their exercise tolerance falls; "
        "healthy people commonly show symptoms.",
        "儿童、老年人和心脏病、肺病患者应停留在室内，停止户外运动，一般人群减少户外运动",
        "Children, the elderly and people with heart or lung disease should stay indoors and stop outdoor "
        "exercise; everyone else should reduce outdoor exercise.",
    ),
    Level(
        6, 301, 500, "六级", "Level VI", "严重污染", "Severely polluted", "褐红色", "Maroon", "#7E0023",
        (126, 0, 35),
        "健康人群运动耐受力降低，有明显强烈症状，提前出现某些疾病",
        "Healthy people's exercise tolerance falls, with marked, strong symptoms; some diseases set in early.",
        "儿童、老年人和病人应当留在室内，避免体力消耗，一般人群应避免户外活动",
        "Children, the elderly and the sick should stay indoors and avoid physical exertion; everyone else "
        "should avoid outdoor activities.",
    ),
)  # fmt: skip

# HJ 633—2026 表2: who is sensitive to a pollutant whose IAQI exceeds 100.
SENSITIVE_GROUPS: dict[str, tuple[str, str]] = {
    "SO2": ("哮喘患者、儿童（含青少年）、老年人", "People with asthma, children (teenagers included), the elderly"),
    "NO2": ("呼吸系统疾病（如哮喘）患者、儿童、老年人", "People with respiratory disease (such as asthma), children, the elderly"),
    "CO": ("心血管系统疾病患者", "People with cardiovascular disease"),
    "O3": (
        "呼吸系统疾病患者、儿童、户外活动频繁的人、老年人",
        "People with respiratory disease, children, people often active outdoors, the elderly",
    ),
    "PM": (
        "心血管或呼吸系统疾病患者、儿童、户外活动频繁的人、老年人",
        "People with cardiovascular or respiratory disease, children, people often active outdoors, the elderly",
    ),
}  # fmt: skip

NA = "NA"  # 2026 §5.3.1: AQI not published (missing data, AQI of the rest ≤ 100)
NOT_MONITORED = "/"  # 2026 §5.3.1: an item not in the monitoring plan
MISSING = "—"  # an item without valid data (its IAQI is not published)


def N_(message: str) -> str:  # noqa: N802 - the name the extraction looks for
    """Mark a message for the translation catalogue (it is translated where it is shown)."""
    return message


# --- errors --------------------------------------------------------------------------------------------


class AqiInputError(ValueError):
    """A concentration the index cannot take: negative, not a finite number, a wrong unit, an unknown item."""

    def __init__(
        self, field: str, message: str, *, section: str = "concentrations", **params: object
    ) -> None:
        """Name the input at fault (`section`: concentrations or units) and say why (English, with parameters)."""
        super().__init__(message.format(**params) if params else message)
        self.field = field
        self.section = section
        self.message = message
        self.params = params

    @property
    def location(self) -> tuple[str, ...]:
        """Where the refused value sits in a request: ("concentrations", "pm25_1h"), ("units", ...), ("time",)."""
        if self.field in ("time", "version", "report", "aqi"):
            return (self.field,)
        return (self.section, self.field)


# --- functions -----------------------------------------------------------------------------------------


def version_for(at: datetime) -> Version:
    """The HJ 633 version in force at an instant (timezone-aware), judged in China's time zone."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise AqiInputError("time", N_("The time must carry a time zone offset."))
    return "2026" if at.astimezone(CHINA) >= CUTOVER else "2012"


def round_input(indicator: str, value: float) -> Decimal:
    """A concentration rounded per HJ 633—2026 §4.2.2 (GB/T 8170 half-even): µg/m³ to 1, CO mg/m³ to 0.1."""
    check_value(indicator, value)
    step = Decimal("0.1") if unit_of(indicator) == MG else Decimal("1")
    # repr gives the shortest decimal that reads back as the float: 0.35 rounds as 0.35, not 0.34999…
    return Decimal(repr(float(value))).quantize(step, rounding=ROUND_HALF_EVEN)


def check_value(field: str, value: object) -> float:
    """The value as a float, refusing booleans, non-numbers, NaN, infinities and negative numbers."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AqiInputError(field, N_("The concentration must be a number."))
    number = float(value)
    if math.isnan(number) or math.isinf(number):
        raise AqiInputError(field, N_("The concentration must be a finite number."))
    if number < 0:
        raise AqiInputError(field, N_("The concentration cannot be negative."))
    return number


def check_unit(indicator: str, unit: str) -> None:
    """Refuse a unit other than the one the standard gives the indicator in (CO mg/m³, others µg/m³)."""
    wanted = unit_of(indicator)
    if unit.strip() not in UNIT_ALIASES[wanted]:
        raise AqiInputError(
            indicator,
            N_("{indicator} must be given in {unit}."),
            section="units",
            indicator=indicator,
            unit=wanted,
        )


def _ceil(value: Fraction) -> int:
    """Round up to an integer (HJ 633—2026 §4.2.6); exact arithmetic needs no float snapping."""
    return math.ceil(value)


def raw_iaqi(version: Version, indicator: str, concentration: Decimal) -> Fraction | None:
    """式(1) on the indicator's column before rounding; None above the column's top node."""
    nodes = BREAKPOINTS[version][indicator]
    c = Fraction(concentration)
    for i in range(1, len(nodes)):
        lo, hi = Fraction(nodes[i - 1]), Fraction(nodes[i])
        if c <= hi:
            i_lo, i_hi = IAQI_NODES[i - 1], IAQI_NODES[i]
            return Fraction(i_hi - i_lo) / (hi - lo) * (c - lo) + i_lo
    return None


def iaqi(version: Version, indicator: str, value: float) -> int | None:
    """The IAQI of one concentration (input rounded per §4.2.2, result rounded up); None: not indexed here."""
    # Above the top node: 500; SO2 1-hour above 800 µg/m³: 200 in 2026, None in 2012 (the 2012 report then
    # uses the SO2 24-hour IAQI); O3 8-hour above 800 µg/m³: 300 in 2026, None in 2012 (the O3 1-hour IAQI
    # is reported instead).
    if indicator not in BREAKPOINTS[version]:
        raise AqiInputError(indicator, N_("Unknown indicator {indicator}."), indicator=indicator)
    concentration = round_input(indicator, value)
    found = raw_iaqi(version, indicator, concentration)
    if found is not None:
        return _ceil(found)
    if indicator == SO2_1H:
        return 200 if version == "2026" else None  # 表3 note b
    if indicator == O3_8H:
        return 300 if version == "2026" else None  # 表3 note c
    return 500  # above the highest node of 表3


def level_of(aqi: int) -> Level:
    """The level of an AQI value (表1; AQI 0 reads as 优, §4.1.1 starts at 1)."""
    if aqi < 0:
        raise AqiInputError("aqi", N_("The AQI cannot be negative."))
    for level in LEVELS:
        if aqi <= level.high:
            return level
    return LEVELS[-1]


@dataclass(frozen=True)
class Item:
    """One report item: its concentration as rounded, its IAQI, or why it has none ("/" or "—")."""

    indicator: str
    pollutant: str
    concentration: Decimal | None
    iaqi: int | None
    status: Literal["ok", "not_monitored", "missing"]
    note: str = ""


@dataclass(frozen=True)
class Result:
    """An AQI report: version, kind, items, the AQI or "NA", level and primary pollutants."""

    version: Version
    report: Report
    items: tuple[Item, ...]
    aqi: int | None
    published: str  # the AQI as published: "57", or "NA"
    level: Level | None
    primary: tuple[str, ...]
    sensitive: tuple[tuple[str, str, str], ...] = field(default=())  # (pollutant, zh, en), 2026 表2


def compute(
    concentrations: Mapping[str, float | None],
    *,
    version: Version,
    report: Report,
    units: Mapping[str, str] | None = None,
) -> Result:
    """The AQI report of one station or city from its concentrations by indicator."""
    # An item absent from `concentrations` is not in the monitoring plan ("/"); an item given as None has
    # no valid data. Indicators the report does not use are refused, as are bad values and wrong units.
    if version not in VERSIONS:
        raise AqiInputError("version", N_("The version must be 2012 or 2026."))
    if report not in REPORTS:
        raise AqiInputError("report", N_("The report must be hourly or daily."))
    accepted = ITEMS[version, report] + EXTRA.get((version, report), ())
    for name, value in concentrations.items():
        if name not in accepted:
            raise AqiInputError(
                name,
                N_("The {report} report of HJ 633—{version} does not use {indicator}."),
                report=report,
                version=version,
                indicator=name,
            )
        if value is not None:
            check_value(name, value)
    for name, unit in (units or {}).items():
        if name not in accepted:
            raise AqiInputError(name, N_("Unknown indicator {indicator}."), section="units", indicator=name)
        check_unit(name, unit)

    def indexed(indicator: str) -> tuple[Decimal | None, int | None]:
        value = concentrations.get(indicator)
        if value is None:
            return None, None
        return round_input(indicator, value), iaqi(version, indicator, value)

    items: list[Item] = []
    for indicator in ITEMS[version, report]:
        pollutant = POLLUTANT[indicator]
        if indicator not in concentrations:
            items.append(Item(indicator, pollutant, None, None, "not_monitored"))
            continue
        concentration, value = indexed(indicator)
        if concentration is None:
            items.append(Item(indicator, pollutant, None, None, "missing"))
            continue
        note = ""
        if value is None and indicator == SO2_1H:  # 2012 表1 note: SO2 1 h > 800 → report the 24 h IAQI
            note = "so2_24h_fallback"
            value = indexed(SO2_24H)[1]
        elif value is None and indicator == O3_8H:  # 2012 表1 note: O3 8 h > 800 → report the 1 h IAQI
            note = "o3_1h_fallback"
            value = indexed(O3_1H)[1]
        items.append(
            Item(indicator, pollutant, concentration, value, "ok" if value is not None else "missing", note)
        )

    values = [item.iaqi for item in items if item.iaqi is not None]
    incomplete = any(item.status == "missing" for item in items)
    aqi = max(values) if values else None  # 式(2)
    if aqi is None or (incomplete and aqi <= 100):  # 2026 §5.3.1
        return Result(version, report, tuple(items), None, NA, None, ())
    # §4.3.1: above 50, every item with the highest IAQI is a primary pollutant.
    primary = tuple(dict.fromkeys(i.pollutant for i in items if i.iaqi == aqi)) if aqi > 50 else ()
    sensitive: list[tuple[str, str, str]] = []
    if version == "2026":
        for item in items:
            if item.iaqi is not None and item.iaqi > 100:
                group = "PM" if item.pollutant.startswith("PM") else item.pollutant.split("_")[0]
                zh, en = SENSITIVE_GROUPS[group]
                if all(s[0] != item.pollutant for s in sensitive):
                    sensitive.append((item.pollutant, zh, en))
    return Result(version, report, tuple(items), aqi, str(aqi), level_of(aqi), primary, tuple(sensitive))


def compute_at(
    concentrations: Mapping[str, float | None],
    at: datetime,
    *,
    report: Report,
    units: Mapping[str, str] | None = None,
) -> Result:
    """`compute` with the version in force at the observation time (China's time zone decides)."""
    return compute(concentrations, version=version_for(at), report=report, units=units)
