"""Indicator tables: the recorded history (one row per indicator, area and period) and the current values."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from citybrain.sdk import Base, UTCDateTime

# 64-bit keys on PostgreSQL; SQLite's rowid alias must be declared INTEGER.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class IndicatorValue(Base):
    """An indicator's value for an area (the city or a district) in one period (its start, UTC)."""

    __tablename__ = "indicators_value"
    # The unique key is also the index every history query walks (indicator, area, period range).
    __table_args__ = (
        UniqueConstraint("indicator", "area", "period_start", name="indicators_value_key"),
        Index("ix_indicators_value_period_start", "period_start"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    indicator: Mapped[str] = mapped_column(String(64))
    # GB/T 2260 code: the city's (510700) or a district's.
    area: Mapped[str] = mapped_column(String(12))
    period_start: Mapped[datetime] = mapped_column(UTCDateTime(timezone=True))
    value: Mapped[float | None] = mapped_column(Float, default=None)
    # The value of a text indicator (e.g. the primary pollutant).
    text: Mapped[str | None] = mapped_column(String(64), default=None)
    # "ok" or "unavailable" (then `reason` says why).
    status: Mapped[str] = mapped_column(String(12), default="ok")
    reason: Mapped[str | None] = mapped_column(String(500), default=None)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime(timezone=True))


class CurrentValue(Base):
    """The latest value of an indicator for an area, and when it last changed (the screen's version stamp)."""

    __tablename__ = "indicators_current"

    indicator: Mapped[str] = mapped_column(String(64), primary_key=True)
    area: Mapped[str] = mapped_column(String(12), primary_key=True)
    period_start: Mapped[datetime] = mapped_column(UTCDateTime(timezone=True))
    value: Mapped[float | None] = mapped_column(Float, default=None)
    text: Mapped[str | None] = mapped_column(String(64), default=None)
    status: Mapped[str] = mapped_column(String(12), default="ok")
    reason: Mapped[str | None] = mapped_column(String(500), default=None)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime(timezone=True))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime(timezone=True))


class SeenWarning(Base):
    """A warning the warning app raised, as its bus events told it (for the daily brief's list)."""

    # The indicators app does not depend on the warning app: it keeps what its events say (warning.raised,
    # warning.changed, warning.lifted), keyed by the warning's id. A time not known (an event missed before
    # this table existed) is NULL.

    __tablename__ = "indicators_warning"
    __table_args__ = (Index("ix_indicators_warning_raised_at", "raised_at"),)

    warning_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    level: Mapped[str] = mapped_column(String(8))
    title: Mapped[str] = mapped_column(String(200), default="")
    rule_code: Mapped[str] = mapped_column(String(64), default="")
    entity_id: Mapped[str] = mapped_column(String(256), default="")
    district: Mapped[str | None] = mapped_column(String(12), default=None)
    raised_at: Mapped[datetime | None] = mapped_column(UTCDateTime(timezone=True), default=None)
    lifted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(timezone=True), default=None)
    # When the level last changed (events may arrive out of order: an older one never overwrites it).
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime(timezone=True))
