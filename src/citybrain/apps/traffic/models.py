"""Traffic tables: learned free-flow speeds per segment and the recorded index per area and interval."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from citybrain.sdk import Base, UTCDateTime

# 64-bit keys on PostgreSQL; SQLite's rowid alias must be declared INTEGER.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class FreeFlowSpeed(Base):
    """A road segment's free-flow speed (GB/T 33171 §7.2.1.2), learned from history or its speed limit."""

    __tablename__ = "traffic_free_flow"

    segment_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    speed_kmh: Mapped[float] = mapped_column(Float)
    # "history" (learned) or "speed_limit" (fewer than the days the standard asks for)
    source: Mapped[str] = mapped_column(String(16))
    days: Mapped[int] = mapped_column(Integer)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime(timezone=True))


class IndexRecord(Base):
    """The traffic performance index of an area (the city or a district) in one interval."""

    __tablename__ = "traffic_index"
    __table_args__ = (
        UniqueConstraint("area_code", "at", name="traffic_index_area_at"),
        Index("ix_traffic_index_at", "at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # GB/T 2260 code: 510700 for the city, a district's code otherwise.
    area_code: Mapped[str] = mapped_column(String(12))
    # The start of the interval (UTC).
    at: Mapped[datetime] = mapped_column(UTCDateTime(timezone=True))
    tpi: Mapped[float] = mapped_column(Float)
    grade: Mapped[int] = mapped_column(Integer)
    dtp: Mapped[float] = mapped_column(Float)
    tti: Mapped[float] = mapped_column(Float)
    segments: Mapped[int] = mapped_column(Integer)
    length_m: Mapped[float] = mapped_column(Float)
    weighting: Mapped[str] = mapped_column(String(8))
