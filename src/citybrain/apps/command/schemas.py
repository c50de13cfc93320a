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
    # 申请延期: how many working days more.
    days: int | None = Field(default=None, ge=1, le=60)


class MergeCreate(Strict):
    """并单: merge this event (a duplicate) into a main event; `force` allows a different category."""

    into: RowId
    note: str = Field(default="", max_length=1000)
    force: bool = False


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
    days: bool = False


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
    # 并单, 催办, 延期 (approved; days of a request waiting), 重办/返工 and 临期预警.
    merged_into_id: int | None = None
    urges: int = 0
    extensions: int = 0
    extension_days: int | None = None
    reworks: int = 0
    due_soon: bool = False


class LinkedEvent(BaseModel):
    """Another event as the detail page links it: a suggested duplicate or one merged into this event."""

    id: int
    number: str
    title: str
    state: str
    workflow: str
    category: str | None
    created_at: datetime
    # the reporter: their name and masked phone (as a reader who does not handle the event sees it)
    caller_name: str | None = None
    caller_phone: str | None = None
    # suggestions only: how far away (metres, None without two locations) and how alike the text is (0–1)
    distance_m: float | None = None
    similarity: float | None = None


class EventDetail(EventRead):
    """An event with its timeline, the actions the reader may take now, its duplicates and merged events."""

    timeline: list[StepRead]
    actions: list[ActionRead]
    merged_into_number: str | None = None
    merged: list[LinkedEvent] = Field(default_factory=list)
    suggested_duplicates: list[LinkedEvent] = Field(default_factory=list)
    # whether the reader may merge this event into another (并单)
    may_merge: bool = False


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
    # 催办 so far; 临期预警 flagged by the deadline scan; days of an extension request waiting (延期).
    urges: int = 0
    warned: bool = False
    extension_days: int | None = None


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
    # 临期预警: open events the deadline scan warned about (less than a share of their time left).
    warned: int = 0
    # Overdue or escalated events (total: how many; items: the most overdue first, at most `limit`).
    total: int
    limit: int
    items: list[SupervisionRow]
    # Due soon, neither overdue nor escalated yet, the nearest deadline first.
    due_soon_items: list[SupervisionRow]
    departments: list[SupervisionDepartment]


# --- emergency command (应急指挥) ---------------------------------------------------------------------

PLAN_RE = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$"
ResponseLevel = Annotated[int, Field(ge=1, le=4, description="1 = I (most severe, red) … 4 = IV (blue)")]
ResourceKind = Literal["team", "vehicle", "shelter", "supply"]
ResourceStatus = Literal["available", "dispatched", "maintenance"]
TaskStatus = Literal["todo", "doing", "done"]
Note = Annotated[str, Field(max_length=1000)]


class PlanTaskRead(BaseModel):
    """A task a plan's level activates, for one department."""

    department: str
    name_zh: str
    name_en: str


class PlanLevelRead(BaseModel):
    """A response level of a plan: its grade, colour, departments and tasks."""

    level: int
    roman: str
    color: str
    name_zh: str
    name_en: str
    departments: list[str]
    tasks: list[PlanTaskRead]


class PlanRead(BaseModel):
    """An emergency plan (应急预案): what triggers it and what each level activates."""

    code: str
    name_zh: str
    name_en: str
    rules: list[str]
    categories: list[str]
    levels: list[PlanLevelRead]


class ResponseCreate(Strict):
    """Start a response by hand: the plan, the level, where, and the event or note behind it."""

    plan: str = Field(pattern=PLAN_RE, max_length=64)
    level: ResponseLevel
    district: str | None = Field(default=None, pattern=DISTRICT_RE)
    location: Point | None = None
    address: str = Field(default="", max_length=300)
    title: str = Field(default="", max_length=200)
    event_id: RowId | None = None
    note: Note = ""


class LevelChange(Strict):
    """Raise or lower a response to a level."""

    level: ResponseLevel
    note: Note = ""


class NoteCreate(Strict):
    """A note an operator types into the command log."""

    note: str = Field(min_length=1, max_length=1000)


class ResponseEnd(Strict):
    """End (终止) a response."""

    note: Note = ""


class TaskUpdate(Strict):
    """Move a task to 待办, 进行中 or 完成."""

    status: TaskStatus
    note: Note = ""


class DispatchCreate(Strict):
    """Dispatch a resource to a response."""

    resource_id: RowId
    note: Note = ""


class ReleaseCreate(Strict):
    """Release a dispatched resource."""

    note: Note = ""


class TaskRead(BaseModel):
    """A task of a response with its status and who moved it last, when."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    response_id: int
    level: int
    department: str
    department_id: int | None
    name_zh: str
    name_en: str
    status: str
    updated_at: datetime
    updated_by: str
    updated_by_name: str


class LogRead(BaseModel):
    """An entry of the command log (指挥日志)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    response_id: int
    action: str
    at: datetime
    by: str
    by_name: str
    level: int | None
    task_id: int | None
    resource_id: int | None
    warning_id: int | None
    note: str


class ResponseRead(BaseModel):
    """An emergency response as listed."""

    id: int
    plan: str
    plan_name_zh: str
    plan_name_en: str
    level: int
    level_roman: str
    color: str
    state: str
    district: str | None
    lon: float | None
    lat: float | None
    address: str
    title: str
    source: str
    warning_id: int | None
    rule_code: str | None
    event_id: int | None
    end_suggested: bool
    started_by: str
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None
    tasks_total: int
    tasks_done: int


class ResourceCreate(Strict):
    """A new emergency resource: a team, vehicle, shelter or supply, where it is and how much it holds."""

    name: str = Field(min_length=1, max_length=120)
    kind: ResourceKind
    department_id: RowId | None = None
    location: Point
    address: str = Field(default="", max_length=300)
    status: Literal["available", "maintenance"] = "available"
    capacity: int = Field(default=0, ge=0, le=10_000_000)
    unit: str = Field(default="", max_length=16)
    contact_name: str = Field(default="", max_length=64)
    contact_phone: str | None = Field(default=None, pattern=PHONE_RE)


class ResourceUpdate(Strict):
    """Changes to a resource; a dispatched one is released, not set available here."""

    name: str | None = Field(default=None, min_length=1, max_length=120)
    kind: ResourceKind | None = None
    department_id: RowId | None = None
    location: Point | None = None
    address: str | None = Field(default=None, max_length=300)
    status: Literal["available", "maintenance"] | None = None
    capacity: int | None = Field(default=None, ge=0, le=10_000_000)
    unit: str | None = Field(default=None, max_length=16)
    contact_name: str | None = Field(default=None, max_length=64)
    contact_phone: str | None = Field(default=None, pattern=PHONE_RE)


class ResourceRead(BaseModel):
    """A resource; the contact's phone is masked unless the reader manages resources or commands."""

    id: int
    name: str
    kind: str
    department_id: int | None
    lon: float
    lat: float
    district: str | None
    address: str
    status: str
    capacity: int
    unit: str
    contact_name: str
    contact_phone: str | None
    response_id: int | None
    dispatched_at: datetime | None
    created_at: datetime
    updated_at: datetime


class ResponseDetail(ResponseRead):
    """A response with its tasks, the resources dispatched to it and its command log."""

    tasks: list[TaskRead]
    resources: list[ResourceRead]
    log: list[LogRead]


class NearestItem(BaseModel):
    """A resource and how quickly it reaches the point: over the road graph, or by straight line when no route."""

    resource: ResourceRead
    by_road: bool
    seconds: float | None
    meters: float | None
    straight_m: float
    roads: list[str]


class NearestResult(BaseModel):
    """The nearest available resources to a point, quickest first (those without a route last)."""

    lon: float
    lat: float
    items: list[NearestItem]
