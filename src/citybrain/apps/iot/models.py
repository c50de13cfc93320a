"""IoT tables: device models, devices with their hashed keys and status, rejected messages, ingest counters."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from citybrain.sdk import AuditedMixin, Base, DepartmentOwnedMixin, TimestampMixin

# 64-bit keys on PostgreSQL; SQLite's rowid alias must be declared INTEGER.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class DeviceModel(AuditedMixin, TimestampMixin, Base):
    """A kind of device: the entity type it feeds, the attributes it measures and when it counts as offline."""

    __tablename__ = "iot_device_model"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name_zh: Mapped[str] = mapped_column(String(120))
    name_en: Mapped[str] = mapped_column(String(200), default="")
    entity_type: Mapped[str] = mapped_column(String(200))
    offline_timeout_seconds: Mapped[int] = mapped_column(default=600)
    # [{"name", "kind", "minimum", "maximum", "unit_code"}, ...]
    attributes: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)


class Device(AuditedMixin, TimestampMixin, DepartmentOwnedMixin, Base):
    """A registered device of a tenant, owned by a department; only the SHA-256 of its key is stored."""

    __tablename__ = "iot_device"
    __table_args__ = (
        UniqueConstraint("tenant", "device_id", name="tenant_device"),
        Index("ix_iot_device_status_model", "status", "model_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), default="")
    device_id: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(200))
    model_id: Mapped[int] = mapped_column(ForeignKey("iot_device_model.id"), index=True)
    entity_id: Mapped[str] = mapped_column(String(512))
    protocol: Mapped[str] = mapped_column(String(8), default="mqtt")
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    # Department codes never change (identity does not allow it), so the code is kept beside the id.
    department_code: Mapped[str] = mapped_column(String(64))
    # The district or county (GB/T 2260 code) the device stands in, None outside the city.
    district_code: Mapped[str | None] = mapped_column(String(12), default=None, index=True)
    static_attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    key_hash: Mapped[str] = mapped_column(String(64))
    key_issued_at: Mapped[datetime]
    revoked: Mapped[bool] = mapped_column(default=False)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    # "new" (never heard from), "online" or "offline"
    status: Mapped[str] = mapped_column(String(16), default="new")
    status_changed_at: Mapped[datetime | None] = mapped_column(default=None)
    last_seen_at: Mapped[datetime | None] = mapped_column(default=None)


class DeadLetter(Base):
    """Rejected items of one received message with one reason: the payload (its first bytes) and why."""

    __tablename__ = "iot_dead_letter"
    __table_args__ = (
        Index("ix_iot_dead_letter_received_at", "received_at"),
        Index("ix_iot_dead_letter_reason", "reason", "received_at"),
        Index("ix_iot_dead_letter_device", "device_id", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    received_at: Mapped[datetime]
    tenant: Mapped[str] = mapped_column(String(64))
    device_id: Mapped[str] = mapped_column(String(128))
    # The owner of the device when it is known (scopes who may read the row), else None.
    department_id: Mapped[int | None] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(32))
    # How many items (the message, or readings' values) were rejected for this reason.
    count: Mapped[int] = mapped_column(Integer)
    detail: Mapped[str] = mapped_column(String(1000))
    # [{"reading": index, "attribute": name, "message": text}, ...] (the first few)
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    payload: Mapped[str] = mapped_column(Text)
    payload_size: Mapped[int] = mapped_column(Integer)
    truncated: Mapped[bool]


class IngestCounter(Base):
    """How many messages, readings, values and rejections (per reason) one minute saw, across processes."""

    __tablename__ = "iot_ingest_counter"

    minute: Mapped[datetime] = mapped_column(primary_key=True)
    metric: Mapped[str] = mapped_column(String(48), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)
