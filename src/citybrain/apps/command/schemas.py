"""API shapes of the command app: intake, events with their timeline, actions, categories."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

T = TypeVar("T")
MAX_INT = 2**31 - 1
CATEGORY_RE = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"
DISTRICT_RE = r"^\d{6}$"
# Mainland mobile or landline numbers, digits with an optional leading + and dashes.
PHONE_RE = r"^\+?[0-9][0-9-]{4,19}$"
# A resident ID number (GB 11643): 17 digits and a digit or X.
ID_NUMBER_RE = r"^\d{17}[\dXx]$"
RowId = Annotated[int, Field(ge=1, le=MAX_INT)]
Source = Literal["hotline", "inspector", "department", "warning", "citizen"]
Rating = Literal["satisfied", "basically_satisfied", "unsatisfied"]


class Strict(BaseModel):
    """Input models refuse unknown fields."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Point(Strict):
    """A WGS 84 location."""

    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)


class TicketCreate(Strict):
    """A 12345 hotline ticket an operator takes in: the caller, what they ask, where, and its category."""

    caller_name: str = Field(default="", max_length=64)
    caller_phone: str = Field(pattern=PHONE_RE)
    caller_id_number: str | None = Field(default=None, pattern=ID_NUMBER_RE)
    content: str = Field(min_length=2, max_length=5000)
    title: str = Field(default="", max_length=200)
    category: str | None = Field(default=None, pattern=CATEGORY_RE, max_length=64)
    location: Point | None = None
    address: str = Field(default="", max_length=300)
    district: str | None = Field(default=None, pattern=DISTRICT_RE)


class ReportCreate(Strict):
    """A 数字城管 report by an inspector (监督员) or a department's own report (自行上报)."""

    source: Literal["inspector", "department"] = "inspector"
    category: str = Field(pattern=CATEGORY_RE, max_length=64)
    description: str = Field(min_length=2, max_length=5000)
    title: str = Field(default="", max_length=200)
    location: Point | None = None
    address: str = Field(default="", max_length=300)
    district: str | None = Field(default=None, pattern=DISTRICT_RE)

    @model_validator(mode="after")
    def _somewhere(self) -> ReportCreate:
        if self.location is None and not self.address:
            raise ValueError("Give the location or the address.")
        return self


class ActionTake(Strict):
    """What an action carries: a note, the departments (派遣/派单/改派) and a rating (评价)."""

    note: str = Field(default="", max_length=1000)
    department_id: RowId | None = None
    assisting_department_ids: list[RowId] = Field(default_factory=list, max_length=10)
    rating: Rating | None = None


class StepRead(BaseModel):
    """One step of the timeline."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    action: str
    from_state: str | None
    to_state: str
    at: datetime
    by: str
    by_name: str
    department_id: int | None
    note: str


class ActionRead(BaseModel):
    """An action the reader may take now."""

    code: str
    name_zh: str
    name_en: str
    note_required: bool
    department: str
    rating: bool


class EventRead(BaseModel):
    """An event as listed; the caller's phone and ID number are masked unless the reader handles it."""

    id: int
    number: str
    source: str
    workflow: str
    state: str
    category: str | None
    district: str | None
    lon: float | None
    lat: float | None
    address: str
    title: str
    description: str
    caller_name: str | None
    caller_phone: str | None
    caller_id_number: str | None
    department_id: int | None
    assisting_department_ids: list[int]
    deadline: datetime | None
    overdue: bool
    supervised: bool
    rating: str | None
    reported_by: str
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None


class EventDetail(EventRead):
    """An event with its timeline and the actions the reader may take now."""

    timeline: list[StepRead]
    actions: list[ActionRead]


class Page(BaseModel, Generic[T]):
    """A page of results."""

    items: list[T]
    total: int
    limit: int
    offset: int


class CategoryRead(BaseModel):
    """A leaf category with its limits and responsible departments."""

    code: str
    name_zh: str
    name_en: str
    workflow: str
    group_zh: list[str]
    group_en: list[str]
    limits: dict[str, str]
    department: str
    districts: dict[str, str]


class KpiRow(BaseModel):
    """The KPIs of a department, a district or the city over a period (see kpi.py for the definitions)."""

    # Counts are of the events taken in during the period; rates are percentages (None without a
    # denominator); the composite score (0–100) and its grade A–E follow GB/T 30428 evaluation
    # (standards notes §3.4).

    key: str
    name: str
    # 数字城管 (GB/T 30428)
    filed: int
    inspector_filed: int
    handled: int
    handled_on_time: int
    overdue_unhandled: int
    due: int
    closed: int
    closed_on_time: int
    reworked: int
    cancelled: int
    closing_rate: float | None
    on_time_closing_rate: float | None
    handling_rate: float | None
    on_time_handling_rate: float | None
    rework_rate: float | None
    report_rate: float | None
    filed_score: float
    composite: float | None
    grade: str | None
    # 12345
    tickets: int
    completed: int
    completed_on_time: int
    satisfied: int
    basically_satisfied: int
    unsatisfied: int
    completion_rate: float | None
    on_time_completion_rate: float | None
    satisfaction_rate: float | None


class KpiReport(BaseModel):
    """A KPI report: the objects of one dimension over a period (local dates, end inclusive) and the city."""

    dimension: Literal["department", "district"]
    period: Literal["day", "week", "month", "custom"]
    start: date
    end: date
    rows: list[KpiRow]
    city: KpiRow


class SupervisionRow(BaseModel):
    """An open event on the supervision board: its deadline, how far past it, and its escalations (督办)."""

    id: int
    number: str
    title: str
    workflow: str
    state: str
    category: str | None
    district: str | None
    department_id: int | None
    department: str
    deadline: datetime | None
    overdue: bool
    supervised: bool
    # Past the deadline: clock hours, office hours of working days, and those in working days (office
    # hours over the length of an office day); None when the deadline has not passed.
    overdue_hours: float | None
    overdue_working_hours: float | None
    overdue_working_days: float | None
    # Escalations: overdue flags by the scan and 督办 actions, and the latest one's time.
    escalations: int
    escalated_at: datetime | None


class SupervisionDepartment(BaseModel):
    """How many open events of a responsible department are overdue, escalated or due soon."""

    department_id: int | None
    name: str
    overdue: int
    escalated: int
    due_soon: int


class SupervisionBoard(BaseModel):
    """The supervision board (督办看板): counts, counts by department, the overdue or escalated events."""

    now: datetime
    # 即将超期: open events whose deadline falls between now and this moment (a number of working hours on).
    due_soon_until: datetime
    due_soon_hours: int
    department_id: int | None
    district: str | None
    overdue: int
    escalated: int
    due_soon: int
    # Overdue or escalated events (total: how many; items: the most overdue first, at most `limit`).
    total: int
    limit: int
    items: list[SupervisionRow]
    # Due soon, neither overdue nor escalated yet, the nearest deadline first.
    due_soon_items: list[SupervisionRow]
    departments: list[SupervisionDepartment]
