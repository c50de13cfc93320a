"""Warning API shapes: the four levels, the rule definition apps declare and operators edit, and reads.

Apps declare rules in their own `warnings.py` as `WARNING_RULES = [RuleSpec(...), ...]` (an app that
does lists "warning" in its `requires`); operators create and edit rules through `/api/warning/rules`.
Both are stored in the database, versioned, and evaluated the same way.

A rule watches one entity type (NGSI-LD type, a core @context term or an IRI). Its kind says how:

- `threshold`: the value of an attribute crosses a per-level threshold, optionally for a duration;
- `rate`: the change of an attribute per period (Δ value per `period_seconds`) crosses a threshold;
- `absence`: an attribute has not been updated for a per-level number of minutes;
- `composite`: several threshold conditions (on the watched entity or on named entities) combined
  with `all` (AND: the lowest level every condition reaches) or `any` (OR: the highest level);
- `forecast`: the stored forecast of a series (forecasts.py) crosses a per-level threshold within the
  next `horizon_hours`; evaluated whenever a forecast of an entity's attribute is stored;
- `health` (设备健康): the anomaly detectors (anomaly.py, health.py) watch attributes of the type; a stuck
  sensor, a drop, a jump or a drift from the neighbours raises a device-health warning, lifted when the
  anomaly ends; a spike is recorded as a data-quality flag.

Apps may also declare forecast series in `warnings.py` as `FORECASTS = [SeriesSpec(...), ...]`, and the
series the anomaly detectors watch as `HEALTH_WATCHES = [HealthWatch(...), ...]` (each stored as a rule
of the kind `health`). An app that does not require this app (iot) declares its watches as plain data,
`HEALTH_WATCHES = [{"entity_type": ..., "attrs": [...], ...}, ...]`, checked as HealthWatch at start.
"""

from __future__ import annotations

import itertools
import re
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

T = TypeVar("T")

# Emergency Response Law (突发事件应对法) warning levels, standards README §8.1: 一级(红) is the
# highest, then 二级(橙), 三级(黄), 四级(蓝). Rank 4 is the highest; 0 means no warning.
LEVELS: tuple[str, ...] = ("blue", "yellow", "orange", "red")
RANK: dict[str, int] = {name: i + 1 for i, name in enumerate(LEVELS)}
LEVEL_OF_RANK: dict[int, str] = {i + 1: name for i, name in enumerate(LEVELS)}
LEVEL_NAMES_ZH = {
    "red": "红色预警（I级）",
    "orange": "橙色预警（II级）",
    "yellow": "黄色预警（III级）",
    "blue": "蓝色预警（IV级）",
}
LEVEL_COLORS = {"red": "#d32f2f", "orange": "#f57c00", "yellow": "#fbc02d", "blue": "#1976d2"}
LEVEL_ROMAN = {"red": "I", "orange": "II", "yellow": "III", "blue": "IV"}

CODE_RE = r"^[a-z][a-z0-9_.-]{1,63}$"
# An identity department's code (the identity app's DepartmentCreate.code).
DEPARTMENT_RE = r"^[A-Za-z0-9_\-]{2,64}$"
TERM_RE = r"^[A-Za-z_][A-Za-z0-9_.:/#@-]{0,299}$"
# The longest duration or period a rule may name: 31 days.
MAX_SECONDS = 31 * 86400
Level = Literal["blue", "yellow", "orange", "red"]
Op = Literal[">", ">=", "<", "<="]
RuleKind = Literal["threshold", "rate", "absence", "composite", "forecast", "health"]
# The CAP 1.2 category a rule's warnings carry when exported (cap.py).
Category = Literal[
    "Geo",
    "Met",
    "Safety",
    "Security",
    "Rescue",
    "Fire",
    "Health",
    "Env",
    "Transport",
    "Infra",
    "CBRNE",
    "Other",
]
Term = Annotated[str, Field(min_length=1, max_length=300, pattern=TERM_RE)]
Seconds = Annotated[int, Field(ge=0, le=MAX_SECONDS)]


class Strict(BaseModel):
    """Input shapes refuse unknown fields."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class LevelThreshold(Strict):
    """One level of a condition: the threshold reaching it and, optionally, its own duration."""

    level: Level
    # threshold/composite: the attribute's value; rate: the change per period; absence: minutes of silence.
    threshold: float = Field(allow_inf_nan=False)
    # How long the threshold must hold before the level is reached (None: the condition's `for_seconds`).
    for_seconds: Seconds | None = None


class Condition(Strict):
    """A comparison of one attribute of the watched entity (or of a named entity) with per-level thresholds."""

    attr: Term
    op: Op = ">"
    levels: list[LevelThreshold] = Field(min_length=1, max_length=4)
    # How long a level's threshold must hold before the level is reached ("pm25 > 115 for 2 h").
    for_seconds: Seconds = 0
    # rate rules: the period the change is measured over (Δ value per period).
    period_seconds: Seconds | None = None
    # composite rules: a condition on another, fixed entity (e.g. the river gauge upstream).
    entity_id: str | None = Field(default=None, min_length=1, max_length=256)
    entity_type: Term | None = None

    @model_validator(mode="after")
    def _check_levels(self) -> Self:
        """Levels are distinct and their thresholds rise (or, for < and <=, fall) with the level."""
        names = [item.level for item in self.levels]
        if len(set(names)) != len(names):
            raise ValueError("a level appears twice in the condition")
        ordered = sorted(self.levels, key=lambda item: RANK[item.level])
        rising = self.op in (">", ">=")
        for lower, higher in itertools.pairwise(ordered):
            if (higher.threshold < lower.threshold) if rising else (higher.threshold > lower.threshold):
                raise ValueError("levels out of order: a higher level needs a stricter threshold")
        self.levels = ordered
        return self


class Scope(Strict):
    """Where a rule applies: one entity, every entity of the type, or the entities in a district."""

    kind: Literal["entity", "type", "district"] = "type"
    entity_id: str | None = Field(default=None, min_length=1, max_length=256)
    # A six-digit administrative division code of Mianyang (GB/T 2260), e.g. 510703 for 涪城区.
    district: str | None = Field(default=None, pattern=r"^\d{6}$")

    @model_validator(mode="after")
    def _check_target(self) -> Self:
        """An entity scope names the entity; a district scope names the district; a type scope neither."""
        if self.kind == "entity" and not self.entity_id:
            raise ValueError("an entity scope needs entity_id")
        if self.kind == "district" and not self.district:
            raise ValueError("a district scope needs district")
        if self.kind != "entity" and self.entity_id:
            raise ValueError("entity_id belongs to an entity scope only")
        if self.kind != "district" and self.district:
            raise ValueError("district belongs to a district scope only")
        return self


class Hysteresis(Strict):
    """How a warning avoids flapping: a margin to fall past before a level is left, and a hold time."""

    # An active level stays while the value is within this margin of its threshold (None: margin_ratio).
    margin: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    # The margin as a share of each threshold's size when `margin` is not given.
    margin_ratio: float = Field(default=0.05, ge=0, le=1)
    # A lower level (or none) must persist this long before the warning is downgraded or lifted.
    hold_seconds: Seconds = 300


class Forecast(Strict):
    """A forecast rule's condition: a forecast value within the next hours crossing per-level thresholds."""

    attr: Term
    horizon_hours: float = Field(gt=0, le=240)
    op: Op = ">"
    levels: list[LevelThreshold] = Field(min_length=1, max_length=4)
    # Which forecast value is compared: the mean, or the bound of the 80 % interval on the unsafe side.
    bound: Literal["mean", "interval80"] = "mean"

    @model_validator(mode="after")
    def _check_levels(self) -> Self:
        """Levels are distinct, ordered like a condition's, and have no duration of their own."""
        if any(item.for_seconds for item in self.levels):
            raise ValueError("a forecast condition has no duration")
        checked = Condition(attr=self.attr, op=self.op, levels=self.levels)
        self.levels = checked.levels
        return self


class Health(Strict):
    """What the anomaly detectors watch on a health rule's entity type, and how sensitive they are."""

    attrs: list[Term] = Field(min_length=1, max_length=16)
    # Drift is judged against the nearest entities of the type within this distance (None: no drift).
    peers_within_m: float | None = Field(default=5000.0, gt=0, le=100_000)
    max_peers: int = Field(default=8, ge=1, le=32)
    min_peers: int = Field(default=3, ge=1, le=32)
    # The smallest deviation worth reporting, per attribute (the sensor's resolution or noise floor).
    min_change: dict[Term, Annotated[float, Field(ge=0, le=1e9, allow_inf_nan=False)]] = Field(
        default_factory=dict
    )
    # A repeated value is a stuck sensor after this many readings (where the series normally changes).
    stuck_readings: int = Field(default=12, ge=3, le=10_000)
    # A drop or jump ends when the series is back, or after this many hours without another step.
    quiet_hours: float = Field(default=6.0, gt=0, le=744)

    @model_validator(mode="after")
    def _check_attrs(self) -> Self:
        """Attributes are distinct, min_change names watched ones, min_peers is at most max_peers."""
        if len(set(self.attrs)) != len(self.attrs):
            raise ValueError("an attribute appears twice in attrs")
        if unknown := sorted(set(self.min_change) - set(self.attrs)):
            raise ValueError(f"min_change names attributes that are not watched: {', '.join(unknown)}")
        if self.min_peers > self.max_peers:
            raise ValueError("min_peers is more than max_peers")
        return self


class RuleSpec(Strict):
    """A warning rule as declared by an app or written by an operator."""

    code: str = Field(pattern=CODE_RE)
    name_zh: str = Field(min_length=1, max_length=120)
    name_en: str = Field(default="", max_length=200)
    kind: RuleKind = "threshold"
    entity_type: Term
    tenant: str = Field(default="", pattern=r"^[A-Za-z0-9_\-]{0,64}$")
    scope: Scope = Field(default_factory=Scope)
    conditions: list[Condition] = Field(default_factory=list, max_length=8)
    combine: Literal["all", "any"] = "all"
    hysteresis: Hysteresis = Field(default_factory=Hysteresis)
    forecast: Forecast | None = None
    health: Health | None = None
    description: str = Field(default="", max_length=2000)
    category: Category = "Other"
    # The identity department (its code) owning the rule and its warnings; None: an operator's rule
    # belongs to the operator's department, a declared one to the department of each warning's district.
    department: str | None = Field(default=None, pattern=DEPARTMENT_RE)
    # Whether its warnings are published to the public (the public CAP feed).
    public: bool = False

    @model_validator(mode="after")
    def _check_kind(self) -> Self:
        """Each kind has the conditions it needs and nothing it cannot use."""
        n = len(self.conditions)
        if self.kind == "health":
            if self.health is None or n:
                raise ValueError("a health rule has health and no conditions")
        elif self.health is not None:
            raise ValueError("health belongs to health rules only")
        if self.kind == "forecast":
            if self.forecast is None or n:
                raise ValueError("a forecast rule has a forecast and no conditions")
        elif self.forecast is not None:
            raise ValueError("forecast belongs to forecast rules only")
        if self.kind in ("threshold", "rate", "absence") and n != 1:
            raise ValueError("this kind of rule has exactly one condition")
        if self.kind == "composite" and n < 2:
            raise ValueError("a composite rule has at least two conditions")
        for cond in self.conditions:
            if self.kind == "rate" and not cond.period_seconds:
                raise ValueError("a rate condition needs period_seconds above 0")
            if self.kind != "rate" and cond.period_seconds is not None:
                raise ValueError("period_seconds belongs to rate rules only")
            if self.kind != "composite" and (cond.entity_id or cond.entity_type):
                raise ValueError("entity_id and entity_type belong to composite conditions only")
            if self.kind == "absence":
                if cond.for_seconds or any(item.for_seconds for item in cond.levels):
                    raise ValueError("an absence condition has no duration: its thresholds are minutes")
                if cond.op not in (">", ">="):
                    raise ValueError("an absence condition counts minutes of silence: use > or >=")
                if any(item.threshold <= 0 or item.threshold * 60 > MAX_SECONDS for item in cond.levels):
                    raise ValueError("minutes of silence must be above 0 and at most 31 days")
        return self


class RuleUpdate(Strict):
    """A new definition of a rule (its code stays), or just enabling/disabling it."""

    name_zh: str | None = Field(default=None, min_length=1, max_length=120)
    name_en: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    category: Category | None = None
    kind: RuleKind | None = None
    entity_type: Term | None = None
    scope: Scope | None = None
    conditions: list[Condition] | None = Field(default=None, max_length=8)
    combine: Literal["all", "any"] | None = None
    hysteresis: Hysteresis | None = None
    forecast: Forecast | None = None
    health: Health | None = None
    department: str | None = Field(default=None, pattern=DEPARTMENT_RE)
    public: bool | None = None


class RuleRead(BaseModel):
    """A stored rule with its state."""

    id: int
    code: str
    name_zh: str
    name_en: str
    kind: str
    entity_type: str
    enabled: bool
    version: int
    origin: str
    failure: str | None
    failed_at: datetime | None
    department_id: int | None
    definition: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class RuleVersionRead(BaseModel):
    """One saved definition of a rule."""

    version: int
    definition: dict[str, Any]
    changed_by: str
    changed_at: datetime


class StepRead(BaseModel):
    """One step of a warning's timeline."""

    kind: str
    at: datetime
    by: str
    from_level: str | None
    to_level: str | None
    values: dict[str, Any]
    note: str


class WarningRead(BaseModel):
    """A warning."""

    id: int
    rule_id: int
    rule_code: str
    # The rule's kind when the warning was raised ("health": a device-health warning, 设备健康).
    kind: str
    title: str
    scope_key: str
    entity_id: str
    district: str | None
    # The identity department the warning belongs to (None: city-wide readers only).
    department_id: int | None
    level: str
    level_name: str
    color: str
    status: str
    raised_at: datetime
    changed_at: datetime
    values: dict[str, Any]
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    lifted_at: datetime | None
    lifted_by: str | None


class WarningDetail(WarningRead):
    """A warning with its timeline."""

    timeline: list[StepRead]


class TriggerSeriesRead(BaseModel):
    """One watched attribute of one entity around a warning's time; `access` false: the reader may not see it."""

    entity_id: str
    attr: str
    op: str
    access: bool
    points: list[tuple[datetime, float]]
    thresholds: list[tuple[str, float]]


class TriggerRead(BaseModel):
    """The data that triggered a warning, as far as the reader may read the entities' history."""

    kind: str
    since: datetime
    until: datetime
    version: int | None
    series: list[TriggerSeriesRead]


class Page(BaseModel, Generic[T]):
    """A page of results."""

    items: list[T]
    total: int
    limit: int
    offset: int


class Note(Strict):
    """An operator's note on acknowledging or lifting a warning."""

    note: str = Field(default="", max_length=500)


class DryRunFiring(BaseModel):
    """A transition the rule would have made."""

    at: datetime
    scope_key: str
    entity_id: str
    from_level: str | None
    to_level: str | None


class DryRunResult(BaseModel):
    """What a rule would have done over the recent history."""

    since: datetime
    until: datetime
    entities: int
    values: int
    fired: int
    firings: list[DryRunFiring]
    transitions: list[DryRunFiring]


def level_rank(level: str | None) -> int:
    """The rank of a level name (4: red, the highest; 0: none)."""
    return RANK.get(level or "", 0)


def is_code(value: str) -> bool:
    """Whether a string is a valid rule code."""
    return re.match(CODE_RE, value) is not None


# --- forecast series ------------------------------------------------------------------------------

# The longest horizon in steps per frequency (one week below daily, 60 days of daily data): the limits
# of the forecasting library (forecasting/series.py, Frequency.max_horizon).
MAX_HORIZON = {"15min": 672, "30min": 336, "hourly": 168, "daily": 60}
SeriesFrequency = Literal["15min", "30min", "hourly", "daily"]


class SeriesSpec(Strict):
    """What to forecast: an attribute of one entity or of every entity of a type, aggregated per step."""

    code: str = Field(pattern=CODE_RE)
    name_zh: str = Field(default="", max_length=120)
    name_en: str = Field(default="", max_length=200)
    tenant: str = Field(default="", pattern=r"^[A-Za-z0-9_\-]{0,64}$")
    entity_type: Term
    # One entity; None: every entity of the type that holds numbers in the attribute.
    entity_id: str | None = Field(default=None, min_length=1, max_length=256)
    attr: Term
    frequency: SeriesFrequency = "hourly"
    # Forecast steps of the frequency (24: the next day of hourly means).
    horizon: int = Field(default=24, ge=1, le=672)
    # How the values of one step are aggregated (an hourly mean by default).
    aggregation: Literal["avg", "min", "max"] = "avg"

    @model_validator(mode="after")
    def _check_horizon(self) -> Self:
        """The horizon is within the frequency's limit."""
        if self.horizon > MAX_HORIZON[self.frequency]:
            raise ValueError(
                f"the horizon of {self.frequency} series is at most {MAX_HORIZON[self.frequency]}"
            )
        return self


class SeriesDeclarationRead(BaseModel):
    """A stored series declaration and how many series it has."""

    id: int
    code: str
    origin: str
    definition: dict[str, Any]
    series: int
    created_at: datetime


class SeriesRead(BaseModel):
    """One forecast series: its state, its model and how it compares with seasonal-naive."""

    id: int
    declaration: str
    tenant: str
    entity_id: str
    attr: str
    frequency: str
    horizon: int
    aggregation: str
    # pending, ok, short (not enough history) or failed
    status: str
    detail: str | None
    model: str | None
    margin: float | None
    decision: str | None
    points: int | None
    data_end: datetime | None
    issued_at: datetime | None
    run_at: datetime | None


class IntervalRead(BaseModel):
    """Bounds at one level (0.8, 0.95) for every forecast step."""

    level: float
    lower: list[float]
    upper: list[float]


class ForecastRead(BaseModel):
    """A forecast: its model, when it was made, on what data, its steps' means and intervals."""

    model: str
    issued_at: datetime
    data_end: datetime
    timestamps: list[datetime]
    mean: list[float]
    intervals: list[IntervalRead]


class SeriesDetail(SeriesRead):
    """A series with its latest forecast and the backtest report its model was chosen by."""

    choice: dict[str, Any] | None
    forecast: ForecastRead | None
    report: dict[str, Any] | None


class RunSummary(BaseModel):
    """What one run of the forecasting job did."""

    examined: int
    forecast: int
    skipped: int
    short: int
    failed: int
    seconds: float


# --- device health --------------------------------------------------------------------------------


def _watch_code(entity_type: str) -> str:
    """A rule code for an entity type's health watch ("health.airqualityobserved")."""
    name = re.sub(r"[^a-z0-9_.-]+", "-", entity_type.rsplit("/", 1)[-1].rsplit("#", 1)[-1].lower())
    return f"health.{name.strip('-.') or 'entity'}"[:64]


class HealthWatch(Health):
    """A watch an app declares in its warnings.py (HEALTH_WATCHES), stored as a rule of the kind health."""

    entity_type: Term
    tenant: str = Field(default="", pattern=r"^[A-Za-z0-9_\-]{0,64}$")
    # The rule's code and names (by default "health.<type>" and 设备健康 with the type's name).
    code: str | None = Field(default=None, pattern=CODE_RE)
    name_zh: str = Field(default="", max_length=120)
    name_en: str = Field(default="", max_length=200)
    description: str = Field(default="", max_length=2000)
    category: Category = "Infra"

    def rule(self) -> RuleSpec:
        """The rule this watch is stored as."""
        health = Health.model_validate(self.model_dump(include=set(Health.model_fields)))
        return RuleSpec(
            code=self.code or _watch_code(self.entity_type),
            name_zh=self.name_zh or f"设备健康：{self.entity_type}",
            name_en=self.name_en or f"Device health: {self.entity_type}",
            kind="health",
            entity_type=self.entity_type,
            tenant=self.tenant,
            health=health,
            description=self.description,
            category=self.category,
        )


class QualityFlagRead(BaseModel):
    """A data-quality flag: a reading the anomaly detectors found implausible (a spike)."""

    id: int
    tenant: str
    entity_id: str
    attr: str
    observed_at: datetime
    kind: str
    score: float
    value: float
    expected: float
    # The English text, and its template and parameters (translated where it is shown).
    message: str
    template: str
    params: dict[str, Any]
    created_at: datetime
