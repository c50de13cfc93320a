"""Command tables: events (cases and tickets), the departments on each, and every step of their timeline."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from citybrain.sdk import AuditedMixin, Base, TimestampMixin


class CityEvent(AuditedMixin, TimestampMixin, Base):
    """A city event: a 数字城管 case or a 12345 ticket, from intake to its final state."""

    __tablename__ = "command_event"
    __table_args__ = (
        UniqueConstraint("source", "source_ref", name="uq_command_event_source_ref"),
        Index("ix_command_event_state", "state", "updated_at"),
        Index("ix_command_event_department", "department_id", "state"),
        Index("ix_command_event_deadline", "deadline"),
        Index("ix_command_event_district", "district"),
        # KPI reports (kpi.py) aggregate the events taken in during a period.
        Index("ix_command_event_created", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # 编号: the local date and a daily sequence, 2026112500001.
    number: Mapped[str] = mapped_column(String(16), unique=True)
    # hotline, inspector, department, warning, citizen.
    source: Mapped[str] = mapped_column(String(16))
    # What the source calls it (a warning id, an Open311 request id); unique per source when given.
    source_ref: Mapped[str | None] = mapped_column(String(64), default=None)
    workflow: Mapped[str] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(16))
    category: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    district: Mapped[str | None] = mapped_column(String(6), default=None)
    lon: Mapped[float | None] = mapped_column(default=None)
    lat: Mapped[float | None] = mapped_column(default=None)
    address: Mapped[str] = mapped_column(String(300), default="")
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    caller_name: Mapped[str | None] = mapped_column(String(64), default=None)
    caller_phone: Mapped[str | None] = mapped_column(String(32), default=None)
    caller_id_number: Mapped[str | None] = mapped_column(String(18), default=None)
    # What an Open311 client sends besides: the citizen's e-mail and a photo's address.
    caller_email: Mapped[str | None] = mapped_column(String(254), default=None)
    media_url: Mapped[str | None] = mapped_column(String(500), default=None)
    # The main (主办) department, an identity department id; assisting ones are in command_event_department.
    department_id: Mapped[int | None] = mapped_column(default=None)
    # When the current stage's time limit runs out (None: no clock runs in this state).
    deadline: Mapped[datetime | None] = mapped_column(default=None)
    overdue: Mapped[bool] = mapped_column(default=False)
    supervised: Mapped[bool] = mapped_column(default=False)
    rating: Mapped[str | None] = mapped_column(String(24), default=None)
    reported_by: Mapped[str] = mapped_column(String(64))
    closed_at: Mapped[datetime | None] = mapped_column(default=None)
    # What the KPI reports (GB/T 30428 evaluation; standards notes §3.4) count, kept as the event moves:
    # when it was filed (立案) and first handled (处置反馈 / 12345 回复), whether any stage ever ran past its
    # time limit (an overdue flag is cleared by the next move; this one stays), and how often it was sent
    # back (返工 / 重办).
    filed_at: Mapped[datetime | None] = mapped_column(default=None)
    handled_at: Mapped[datetime | None] = mapped_column(default=None)
    late: Mapped[bool] = mapped_column(default=False)
    reworks: Mapped[int] = mapped_column(default=0)
    # 并单: the main event a duplicate was merged into (the duplicate is then in the final state "merged").
    merged_into_id: Mapped[int | None] = mapped_column(
        ForeignKey("command_event.id", ondelete="SET NULL"), default=None, index=True
    )
    # 催办: how often a supervisor urged the handling department.
    urges: Mapped[int] = mapped_column(default=0)
    # 延期: extensions approved, and the working days of a request waiting for a supervisor (None: none).
    extensions: Mapped[int] = mapped_column(default=0)
    extension_days: Mapped[int | None] = mapped_column(default=None)
    # 临期预警: the scan flagged the current stage as running out of time (cleared by the next move).
    due_soon: Mapped[bool] = mapped_column(default=False)


class NumberDay(Base):
    """The last 编号 sequence taken on one local day; each intake takes the next one in its own transaction."""

    __tablename__ = "command_number_day"

    # The local day (Asia/Shanghai) as YYYYMMDD, the first eight digits of the day's case numbers.
    day: Mapped[str] = mapped_column(String(8), primary_key=True)
    last: Mapped[int] = mapped_column(default=0)


class KpiDay(Base):
    """The KPI counts of the events taken in on one local day, of one main department in one district."""

    # Kept exact by database triggers on command_event (migration b7c9e1f3a5d6), in the same transaction as
    # every change of an event; department 0 and district "" stand for none.

    __tablename__ = "command_kpi_day"

    day: Mapped[date] = mapped_column(primary_key=True)
    department_id: Mapped[int] = mapped_column(primary_key=True)
    district: Mapped[str] = mapped_column(String(6), primary_key=True)
    events: Mapped[int] = mapped_column(server_default="0")
    filed: Mapped[int] = mapped_column(server_default="0")
    inspector_filed: Mapped[int] = mapped_column(server_default="0")
    handled: Mapped[int] = mapped_column(server_default="0")
    handled_on_time: Mapped[int] = mapped_column(server_default="0")
    overdue_unhandled: Mapped[int] = mapped_column(server_default="0")
    closed: Mapped[int] = mapped_column(server_default="0")
    closed_on_time: Mapped[int] = mapped_column(server_default="0")
    reworked: Mapped[int] = mapped_column(server_default="0")
    cancelled: Mapped[int] = mapped_column(server_default="0")
    tickets: Mapped[int] = mapped_column(server_default="0")
    completed: Mapped[int] = mapped_column(server_default="0")
    completed_on_time: Mapped[int] = mapped_column(server_default="0")
    satisfied: Mapped[int] = mapped_column(server_default="0")
    basically_satisfied: Mapped[int] = mapped_column(server_default="0")
    unsatisfied: Mapped[int] = mapped_column(server_default="0")


class EventDepartment(AuditedMixin, Base):
    """An assisting (协办) department of an event."""

    __tablename__ = "command_event_department"
    __table_args__ = (
        UniqueConstraint("event_id", "department_id", name="uq_command_event_department_pair"),
        Index("ix_command_event_department_dept", "department_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("command_event.id", ondelete="CASCADE"))
    department_id: Mapped[int]


class EventStep(AuditedMixin, Base):
    """One step of an event's timeline: intake, each action, overdue flags; timestamped and attributed."""

    __tablename__ = "command_event_step"
    __table_args__ = (Index("ix_command_event_step_event", "event_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("command_event.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(24))
    from_state: Mapped[str | None] = mapped_column(String(16), default=None)
    to_state: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime]
    by: Mapped[str] = mapped_column(String(64))
    by_name: Mapped[str] = mapped_column(String(120), default="")
    department_id: Mapped[int | None] = mapped_column(default=None)
    note: Mapped[str] = mapped_column(String(1000), default="")


# --- emergency command (应急指挥) ---------------------------------------------------------------------


class EmergencyResponse(AuditedMixin, TimestampMixin, Base):
    """An emergency response: a plan activated at a level (1 = I … 4 = IV) for a district or the city."""

    __tablename__ = "command_response"
    __table_args__ = (
        # One active response per plan and district: the key is set while active, NULL once ended.
        UniqueConstraint("active_key", name="uq_command_response_active_key"),
        Index("ix_command_response_state", "state", "updated_at"),
        Index("ix_command_response_warning", "warning_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    plan: Mapped[str] = mapped_column(String(64))
    level: Mapped[int]
    # active, ended
    state: Mapped[str] = mapped_column(String(8))
    active_key: Mapped[str | None] = mapped_column(String(80), default=None)
    district: Mapped[str | None] = mapped_column(String(6), default=None)
    lon: Mapped[float | None] = mapped_column(default=None)
    lat: Mapped[float | None] = mapped_column(default=None)
    address: Mapped[str] = mapped_column(String(300), default="")
    title: Mapped[str] = mapped_column(String(200))
    # manual, warning
    source: Mapped[str] = mapped_column(String(8))
    # The warning that started it (warning app id and rule) and the city event it answers, if any.
    warning_id: Mapped[int | None] = mapped_column(default=None)
    rule_code: Mapped[str | None] = mapped_column(String(64), default=None)
    event_id: Mapped[int | None] = mapped_column(
        ForeignKey("command_event.id", ondelete="SET NULL"), default=None
    )
    # The warning behind it was lifted: ending is suggested to the commander (never done by itself).
    end_suggested: Mapped[bool] = mapped_column(default=False)
    started_by: Mapped[str] = mapped_column(String(64))
    ended_at: Mapped[datetime | None] = mapped_column(default=None)


class ResponseTask(AuditedMixin, Base):
    """A task of a response: one department's task of the plan at a level, with its status."""

    __tablename__ = "command_response_task"
    __table_args__ = (
        UniqueConstraint("response_id", "department", "name_zh", name="uq_command_response_task_name"),
        Index("ix_command_response_task_response", "response_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    response_id: Mapped[int] = mapped_column(ForeignKey("command_response.id", ondelete="CASCADE"))
    # The level whose activation added it.
    level: Mapped[int]
    # The identity department's code (as the plan names it) and its id when the org tree has it.
    department: Mapped[str] = mapped_column(String(32))
    department_id: Mapped[int | None] = mapped_column(default=None)
    name_zh: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(300))
    # todo (待办), doing (进行中), done (完成)
    status: Mapped[str] = mapped_column(String(8))
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(64))
    updated_by_name: Mapped[str] = mapped_column(String(120), default="")


class EmergencyResource(AuditedMixin, TimestampMixin, Base):
    """A resource for emergencies: a team, vehicle, shelter or supply, where it is and whether it is free."""

    __tablename__ = "command_resource"
    __table_args__ = (
        Index("ix_command_resource_status", "status", "kind"),
        Index("ix_command_resource_response", "response_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    # team, vehicle, shelter, supply
    kind: Mapped[str] = mapped_column(String(8))
    department_id: Mapped[int | None] = mapped_column(default=None)
    lon: Mapped[float]
    lat: Mapped[float]
    district: Mapped[str | None] = mapped_column(String(6), default=None)
    address: Mapped[str] = mapped_column(String(300), default="")
    # available, dispatched, maintenance
    status: Mapped[str] = mapped_column(String(12))
    # People a team or shelter holds, seats of a vehicle, units of a supply.
    capacity: Mapped[int] = mapped_column(default=0)
    unit: Mapped[str] = mapped_column(String(16), default="")
    contact_name: Mapped[str] = mapped_column(String(64), default="")
    contact_phone: Mapped[str | None] = mapped_column(String(32), default=None)
    # The response it is dispatched to, and since when.
    response_id: Mapped[int | None] = mapped_column(
        ForeignKey("command_response.id", ondelete="SET NULL"), default=None
    )
    dispatched_at: Mapped[datetime | None] = mapped_column(default=None)


class CommandLogEntry(AuditedMixin, Base):
    """One entry of a response's command log (指挥日志): timestamped and attributed."""

    __tablename__ = "command_response_log"
    __table_args__ = (
        Index("ix_command_response_log_response", "response_id", "id"),
        Index("ix_command_response_log_warning", "warning_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    response_id: Mapped[int] = mapped_column(ForeignKey("command_response.id", ondelete="CASCADE"))
    # activate, raise, lower, task, dispatch, release, note, warning, end_suggested, end
    action: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime]
    by: Mapped[str] = mapped_column(String(64))
    by_name: Mapped[str] = mapped_column(String(120), default="")
    level: Mapped[int | None] = mapped_column(default=None)
    task_id: Mapped[int | None] = mapped_column(default=None)
    resource_id: Mapped[int | None] = mapped_column(default=None)
    warning_id: Mapped[int | None] = mapped_column(default=None)
    note: Mapped[str] = mapped_column(String(1000), default="")
