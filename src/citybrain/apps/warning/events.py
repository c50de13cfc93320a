"""Events the warning app publishes: a warning raised, changed (level or acknowledgement) or lifted.

Fields added after the first release have defaults, so events stored before them still decode.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from citybrain.sdk import Event


class WarningRaised(Event):
    """A rule raised a warning for a scope (an entity or a district)."""

    subject: ClassVar[str] = "warning.raised"
    warning_id: int
    rule_code: str
    level: str
    entity_id: str
    district: str | None
    scope_key: str
    at: datetime
    values: dict[str, Any]
    # The rule's Chinese name, and its English name when it has one.
    title: str = ""
    title_en: str = ""


class WarningChanged(Event):
    """An active warning was upgraded, downgraded or acknowledged."""

    subject: ClassVar[str] = "warning.changed"
    warning_id: int
    rule_code: str
    change: str
    level: str
    previous_level: str
    district: str | None
    at: datetime
    by: str
    values: dict[str, Any]
    # The rule's Chinese name, and its English name when it has one.
    title: str = ""
    title_en: str = ""


class WarningLifted(Event):
    """A warning was lifted (解除), by its rule or by an operator."""

    subject: ClassVar[str] = "warning.lifted"
    warning_id: int
    rule_code: str
    previous_level: str
    district: str | None
    at: datetime
    by: str
    # The entity the warning concerned (empty in events stored before it was added), and the rule's names.
    entity_id: str = ""
    title: str = ""
    title_en: str = ""
