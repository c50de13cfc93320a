"""Events the command app publishes: an event taken in or changed; an emergency response changed."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from citybrain.sdk import Event


class EventChanged(Event):
    """An event was created (action "intake"), an action was taken on it, or the deadline scan flagged it."""

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
    # 临期预警: the deadline scan found less than a share of the stage's time left (action "due_soon").
    due_soon: bool = False
    # 并单: the main event a duplicate was merged into (action "merge").
    merged_into_id: int | None = None


class ResponseChanged(Event):
    """An emergency response was started, changed level, had a task, dispatch or note logged, or ended."""

    subject: ClassVar[str] = "command.response.changed"
    response_id: int
    plan: str
    level: int
    state: str
    district: str | None
    action: str
    at: datetime
    by: str
