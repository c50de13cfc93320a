"""Command tables: events (cases and tickets), the departments on each, and every step of their timeline."""

from __future__ import annotations

from datetime import datetime

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
