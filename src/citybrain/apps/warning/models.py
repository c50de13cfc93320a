"""Warning tables: rules (with versions), warnings and every transition of their life-cycle."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from citybrain.sdk import AuditedMixin, Base, TimestampMixin, utcnow


class Rule(AuditedMixin, TimestampMixin, Base):
    """A warning rule: its definition (a RuleSpec), whether it runs, and its last run-time failure."""

    __tablename__ = "warning_rule"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name_zh: Mapped[str] = mapped_column(String(120))
    name_en: Mapped[str] = mapped_column(String(200), default="")
    kind: Mapped[str] = mapped_column(String(16))
    entity_type: Mapped[str] = mapped_column(String(300))
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(default=True)
    version: Mapped[int] = mapped_column(default=1)
    # "operator" or the label of the app whose warnings.py declares it.
    origin: Mapped[str] = mapped_column(String(32), default="operator")
    failure: Mapped[str | None] = mapped_column(Text, default=None)
    failed_at: Mapped[datetime | None] = mapped_column(default=None)
    # The identity department owning the rule and its warnings (None: the scope's district decides).
    department_id: Mapped[int | None] = mapped_column(default=None)


class RuleVersion(AuditedMixin, Base):
    """Each saved definition of a rule."""

    __tablename__ = "warning_rule_version"
    __table_args__ = (Index("ix_warning_rule_version_rule", "rule_id", "version", unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("warning_rule.id", ondelete="CASCADE"))
    version: Mapped[int]
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    changed_by: Mapped[str] = mapped_column(String(64))
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)


class IssuedWarning(AuditedMixin, Base):
    """A graded warning of one rule for one scope (an entity or a district); one active per rule and scope."""

    __tablename__ = "warning_warning"
    __table_args__ = (
        Index("ix_warning_warning_status", "status", "level"),
        Index("ix_warning_warning_rule", "rule_id", "raised_at"),
        Index("ix_warning_warning_district", "district"),
        Index("ix_warning_warning_kind", "kind", "status"),
        Index("ix_warning_warning_department", "department_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("warning_rule.id", ondelete="CASCADE"))
    rule_code: Mapped[str] = mapped_column(String(64))
    # The rule's kind when the warning was raised ("health": a device-health warning).
    kind: Mapped[str] = mapped_column(String(16), default="", server_default="")
    title: Mapped[str] = mapped_column(String(200))
    scope_key: Mapped[str] = mapped_column(String(256))
    # "<rule id>:<scope key>" while active, NULL once lifted: one active warning per rule and scope.
    active_key: Mapped[str | None] = mapped_column(String(300), unique=True, default=None)
    entity_id: Mapped[str] = mapped_column(String(256))
    district: Mapped[str | None] = mapped_column(String(6), default=None)
    # The identity department the warning belongs to (its readers); None: city-wide readers only.
    department_id: Mapped[int | None] = mapped_column(default=None)
    level: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(8), default="active")
    raised_at: Mapped[datetime]
    changed_at: Mapped[datetime]
    values: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    acknowledged_at: Mapped[datetime | None] = mapped_column(default=None)
    acknowledged_by: Mapped[str | None] = mapped_column(String(64), default=None)
    lifted_at: Mapped[datetime | None] = mapped_column(default=None)
    lifted_by: Mapped[str | None] = mapped_column(String(64), default=None)


class WarningStep(AuditedMixin, Base):
    """One step of a warning's life: raised, upgraded, downgraded, acknowledged, lifted."""

    __tablename__ = "warning_transition"
    __table_args__ = (Index("ix_warning_transition_warning", "warning_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    warning_id: Mapped[int] = mapped_column(ForeignKey("warning_warning.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime]
    by: Mapped[str] = mapped_column(String(64))
    from_level: Mapped[str | None] = mapped_column(String(8), default=None)
    to_level: Mapped[str | None] = mapped_column(String(8), default=None)
    values: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    note: Mapped[str] = mapped_column(String(500), default="")


class Clock(Base):
    """Since when a level of a rule's condition has held for an entity: a duration clock that outlives a restart."""

    __tablename__ = "warning_clock"
    __table_args__ = (
        Index("ix_warning_clock_key", "rule_id", "entity_id", "condition", "rank", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("warning_rule.id", ondelete="CASCADE"))
    entity_id: Mapped[str] = mapped_column(String(256))
    # The condition's position in the rule and the level's rank (1 blue … 4 red).
    condition: Mapped[int]
    rank: Mapped[int]
    since: Mapped[datetime]


class Subscription(AuditedMixin, TimestampMixin, Base):
    """Who is told about warnings and how: a user in-app, a webhook endpoint or a phone (SMS), with filters."""

    __tablename__ = "warning_subscription"
    __table_args__ = (Index("ix_warning_subscription_user", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # "inapp", "webhook" or "sms".
    channel: Mapped[str] = mapped_column(String(8))
    name: Mapped[str] = mapped_column(String(120), default="")
    user_id: Mapped[int | None] = mapped_column(default=None)
    url: Mapped[str | None] = mapped_column(String(2000), default=None)
    # The webhook's signing key (HMAC-SHA256), sealed (sealing.py); shown once, when created or rotated.
    secret_sealed: Mapped[str | None] = mapped_column(Text, default=None)
    # The key it replaced, still signing (beside the new one) until previous_secret_until.
    previous_secret_sealed: Mapped[str | None] = mapped_column(Text, default=None)
    previous_secret_until: Mapped[datetime | None] = mapped_column(default=None)
    phone: Mapped[str | None] = mapped_column(String(32), default=None)
    # Filters: a department id of the identity app, a district code, the lowest level, the transitions.
    department_id: Mapped[int | None] = mapped_column(default=None)
    district: Mapped[str | None] = mapped_column(String(6), default=None)
    min_level: Mapped[str] = mapped_column(String(8), default="blue")
    transitions: Mapped[list[str]] = mapped_column(JSON, default=list)
    enabled: Mapped[bool] = mapped_column(default=True)
    created_by: Mapped[str] = mapped_column(String(64))


class Delivery(Base):
    """One warning event for one subscriber: the durable queue the delivery worker drains."""

    __tablename__ = "warning_delivery"
    __table_args__ = (
        Index("ix_warning_delivery_event", "subscription_id", "event_id", unique=True),
        Index("ix_warning_delivery_due", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("warning_subscription.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(36))
    warning_id: Mapped[int]
    # "raised", "upgraded", "downgraded" or "lifted".
    transition: Mapped[str] = mapped_column(String(16))
    level: Mapped[str] = mapped_column(String(8))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    # "pending", "delivered" or "failed" (given up after the last attempt).
    state: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    # What the receiver answered: the HTTP status, the SMS message id or the notification id.
    receipt: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)


class Notification(Base):
    """An in-app notification of a warning for one user, unread until the user reads it."""

    __tablename__ = "warning_notification"
    __table_args__ = (Index("ix_warning_notification_user", "user_id", "read_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int]
    delivery_id: Mapped[int | None] = mapped_column(
        ForeignKey("warning_delivery.id", ondelete="SET NULL"), default=None, unique=True
    )
    warning_id: Mapped[int]
    transition: Mapped[str] = mapped_column(String(16))
    level: Mapped[str] = mapped_column(String(8))
    # What the text is made of (rule names, place, time), translated when it is read.
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(default=None)


class SeriesDeclaration(AuditedMixin, TimestampMixin, Base):
    """What to forecast (a SeriesSpec), declared by an app's warnings.py or added by an operator."""

    __tablename__ = "warning_forecast_declaration"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    tenant: Mapped[str] = mapped_column(String(64), default="")
    # Expanded IRIs of the entity type and the attribute.
    entity_type: Mapped[str] = mapped_column(String(300))
    attr: Mapped[str] = mapped_column(String(300))
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    # "operator" or the label of the app whose warnings.py declares it.
    origin: Mapped[str] = mapped_column(String(32), default="operator")


class ForecastSeries(AuditedMixin, Base):
    """One forecast series (a declaration's entity): its model choice, backtest report and latest forecast."""

    __tablename__ = "warning_forecast_series"
    __table_args__ = (
        Index("ix_warning_forecast_series_entity", "declaration_id", "entity_id", unique=True),
        Index("ix_warning_forecast_series_run", "run_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    declaration_id: Mapped[int] = mapped_column(
        ForeignKey("warning_forecast_declaration.id", ondelete="CASCADE")
    )
    entity_id: Mapped[str] = mapped_column(String(256))
    # pending, ok, short (not enough history yet) or failed
    status: Mapped[str] = mapped_column(String(8), default="pending")
    detail: Mapped[str | None] = mapped_column(Text, default=None)
    choice: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    report: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    forecast: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # The refit decision of the last run: none, refit or reselect.
    decision: Mapped[str | None] = mapped_column(String(8), default=None)
    points: Mapped[int | None] = mapped_column(default=None)
    data_end: Mapped[datetime | None] = mapped_column(default=None)
    issued_at: Mapped[datetime | None] = mapped_column(default=None)
    run_at: Mapped[datetime | None] = mapped_column(default=None)


class ForecastIssue(AuditedMixin, Base):
    """A past forecast of a series, kept (a bounded number per series) to be compared with what came."""

    __tablename__ = "warning_forecast_issue"
    __table_args__ = (Index("ix_warning_forecast_issue_series", "series_id", "issued_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("warning_forecast_series.id", ondelete="CASCADE"))
    issued_at: Mapped[datetime]
    data_end: Mapped[datetime]
    model: Mapped[str] = mapped_column(String(32))
    forecast: Mapped[dict[str, Any]] = mapped_column(JSON)


class QualityFlag(Base):
    """A reading the anomaly detectors found implausible (a spike): a data-quality flag, kept for a while."""

    __tablename__ = "warning_quality_flag"
    __table_args__ = (
        Index("ix_warning_quality_flag_series", "tenant", "entity_id", "attr", "observed_at"),
        Index("ix_warning_quality_flag_observed", "observed_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), default="")
    entity_id: Mapped[str] = mapped_column(String(256))
    # The attribute's compact name (its IRI where the core @context has no term for it).
    attr: Mapped[str] = mapped_column(String(300))
    observed_at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(16))
    score: Mapped[float] = mapped_column(Float)
    value: Mapped[float] = mapped_column(Float)
    expected: Mapped[float] = mapped_column(Float)
    # The English template (anomaly.MESSAGES) and its parameters, translated where it is shown.
    message: Mapped[str] = mapped_column(String(300))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
