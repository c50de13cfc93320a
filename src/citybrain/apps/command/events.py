"""Events the command app publishes: an event was taken in or changed state, department or flags."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from citybrain.sdk import Event


class EventChanged(Event):
    """An event was created (action "intake") or an action was taken on it."""

    subject: ClassVar[str] = "command.event.changed"
    case_id: int
    number: str
    workflow: str
    action: str
    from_state: str | None
    state: str
    category: str | None
    district: str | None
    department_id: int | None
    overdue: bool
    supervised: bool
    at: datetime
    by: str
