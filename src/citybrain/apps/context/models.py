"""Context tables: entities in their stored (expanded) form, attribute history, @context documents."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from citybrain.sdk import Base

# JSONB on PostgreSQL (indexable, binary), JSON text on SQLite (queried with JSON1).
# None is SQL NULL (not JSON null), however the row is written.
Document = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
# Strings in code point order on PostgreSQL too ("C"), as q compares them; SQLite's default already is.
IndexedText = Text().with_variant(Text(collation="C"), "postgresql")


class Entity(Base):
    """One NGSI-LD entity of a tenant: its stored form plus columns the queries index."""

    __tablename__ = "context_entity"
    __table_args__ = (
        UniqueConstraint("tenant", "entity_id", name="tenant_entity"),
        Index("ix_context_entity_tenant_type", "tenant", "type"),
        # The spatial indexes live in the migrations: an R*Tree on SQLite, a GiST box expression on PostgreSQL,
        # or with PostGIS a GiST index on the generated geometry of `location`, a column the model leaves out.
        {
            "info": {
                "unmanaged_indexes": ("ix_context_entity_geo", "ix_context_entity_location_geometry"),
                "unmanaged_columns": ("location_geometry",),
            }
        },
    )

    pk: Mapped[int] = mapped_column(primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), default="")
    entity_id: Mapped[str] = mapped_column(String(512))
    type: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[datetime]
    modified_at: Mapped[datetime]
    data: Mapped[dict[str, Any]] = mapped_column(Document)
    # The department whose staff may change the entity (its creator's); None: only city-wide writers may.
    department_id: Mapped[int | None] = mapped_column(default=None)
    # Bounding box of the `location` GeoProperty, for the spatial prefilter.
    min_lon: Mapped[float | None] = mapped_column(Float, default=None)
    min_lat: Mapped[float | None] = mapped_column(Float, default=None)
    max_lon: Mapped[float | None] = mapped_column(Float, default=None)
    max_lat: Mapped[float | None] = mapped_column(Float, default=None)


class AttributeValue(Base):
    """A number or string that a top-level attribute instance of an entity holds (the q prefilter's index)."""

    __tablename__ = "context_value"
    __table_args__ = (
        # Covering: a prefilter reads the entity keys from the index alone. A row holds a number or a
        # string, and a lookup's comparison implies its column is not null: each index has only its rows.
        Index(
            "ix_context_value_number",
            "attr",
            "number",
            "entity_pk",
            postgresql_where=text("number IS NOT NULL"),
            sqlite_where=text("number IS NOT NULL"),
        ),
        Index(
            "ix_context_value_text",
            "attr",
            "text",
            "entity_pk",
            postgresql_where=text("text IS NOT NULL"),
            sqlite_where=text("text IS NOT NULL"),
        ),
    )

    # The key leads with the entity, so it also serves the replacement and cascade of an entity's rows.
    entity_pk: Mapped[int] = mapped_column(
        ForeignKey("context_entity.pk", ondelete="CASCADE"), primary_key=True
    )
    ordinal: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    attr: Mapped[str] = mapped_column(String(512))
    dataset_id: Mapped[str] = mapped_column(String(512), default="")
    number: Mapped[float | None] = mapped_column(Float, default=None)
    # The first characters of a string (query.INDEXED_TEXT_LENGTH), ordered by code point as q compares.
    text: Mapped[str | None] = mapped_column(IndexedText, default=None)


class EntityType(Base):
    """Each further type of a multi-typed entity (the first type is on the entity row)."""

    __tablename__ = "context_entity_type"

    entity_pk: Mapped[int] = mapped_column(primary_key=True)
    type: Mapped[str] = mapped_column(String(512), primary_key=True, index=True)


class AttributeHistory(Base):
    """Every attribute instance ever written (or deleted: `instance` None), for the temporal API."""

    __tablename__ = "context_history"
    __table_args__ = (
        Index("ix_context_history_lookup", "tenant", "entity_id", "attr", "observed_at"),
        Index("ix_context_history_modified", "modified_at"),
    )

    pk: Mapped[int] = mapped_column(primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), default="")
    entity_id: Mapped[str] = mapped_column(String(512))
    attr: Mapped[str] = mapped_column(String(512))
    dataset_id: Mapped[str] = mapped_column(String(512), default="")
    observed_at: Mapped[datetime | None] = mapped_column(default=None)
    modified_at: Mapped[datetime]
    number: Mapped[float | None] = mapped_column(Float, default=None)
    instance: Mapped[dict[str, Any] | None] = mapped_column(Document, default=None)


class JsonLdContext(Base):
    """A user @context document stored by the broker and served at its own URL."""

    __tablename__ = "context_jsonld"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    url: Mapped[str] = mapped_column(String(1024), unique=True)
    kind: Mapped[str] = mapped_column(String(20), default="hosted")
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    last_usage: Mapped[datetime | None] = mapped_column(default=None)
    usage_count: Mapped[int] = mapped_column(default=0)


class Subscription(Base):
    """An NGSI-LD subscription of a tenant: its document plus the columns matching and delivery use."""

    __tablename__ = "context_subscription"
    __table_args__ = (
        UniqueConstraint("tenant", "subscription_id", name="tenant_subscription"),
        Index("ix_context_subscription_tenant_status", "tenant", "status"),
    )

    pk: Mapped[int] = mapped_column(primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), default="")
    subscription_id: Mapped[str] = mapped_column(String(512))
    # The subscription as given, names expanded, with the @context it was made with under "@context".
    data: Mapped[dict[str, Any]] = mapped_column(Document)
    is_active: Mapped[bool] = mapped_column(default=True)
    # "active" or "paused" (expiry is read from expires_at, since it changes with time alone).
    status: Mapped[str] = mapped_column(String(16), default="active")
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    throttling: Mapped[float | None] = mapped_column(Float, default=None)
    time_interval: Mapped[float | None] = mapped_column(Float, default=None)
    next_periodic_at: Mapped[datetime | None] = mapped_column(default=None)
    last_notification: Mapped[datetime | None] = mapped_column(default=None)
    last_success: Mapped[datetime | None] = mapped_column(default=None)
    last_failure: Mapped[datetime | None] = mapped_column(default=None)
    times_sent: Mapped[int] = mapped_column(default=0)
    times_failed: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]
    modified_at: Mapped[datetime]


class Notification(Base):
    """A notification waiting for (or done with) delivery: the durable queue of the deliverer."""

    __tablename__ = "context_notification"
    __table_args__ = (
        UniqueConstraint("subscription_pk", "event_key", name="subscription_event"),
        Index("ix_context_notification_due", "state", "next_attempt_at"),
    )

    pk: Mapped[int] = mapped_column(primary_key=True)
    subscription_pk: Mapped[int] = mapped_column(
        ForeignKey("context_subscription.pk", ondelete="CASCADE"), index=True
    )
    subscription_id: Mapped[str] = mapped_column(String(512))
    # The bus event (or periodic tick) this notification answers, so a redelivered event adds nothing.
    event_key: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(Document)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
