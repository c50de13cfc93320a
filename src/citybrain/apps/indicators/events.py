"""Events on the bus the indicators app publishes, and the ones it listens to for the IOC screen.

The screen follows the warning and command apps through their events alone (the apps are not among this
app's requirements): the classes below name the same subjects and read only the fields the screen shows;
the rest of each event is ignored. The subjects are those apps' public contract.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from citybrain.sdk import Event


class ValuesChanged(Event):
    """A compute round changed current values: the indicators whose city or district values changed."""

    subject: ClassVar[str] = "indicators.values.changed"
    codes: list[str]
    at: datetime


class WarningRaisedSeen(Event):
    """The warning app raised a warning (subject warning.raised)."""

    subject: ClassVar[str] = "warning.raised"
    warning_id: int
    level: str
    district: str | None = None
    at: datetime
    rule_code: str = ""
    entity_id: str = ""
    # The warning's title, when the event carries it (the brief shows the rule's code otherwise).
    title: str = ""


class WarningChangedSeen(Event):
    """The warning app upgraded, downgraded or acknowledged a warning (subject warning.changed)."""

    subject: ClassVar[str] = "warning.changed"
    warning_id: int
    change: str = ""
    level: str
    district: str | None = None
    at: datetime
    rule_code: str = ""


class WarningLiftedSeen(Event):
    """The warning app lifted a warning (subject warning.lifted)."""

    subject: ClassVar[str] = "warning.lifted"
    warning_id: int
    district: str | None = None
    at: datetime
    rule_code: str = ""
    previous_level: str = ""


class EventChangedSeen(Event):
    """The command app took in an event or took an action on one (subject command.event.changed)."""

    subject: ClassVar[str] = "command.event.changed"
    case_id: int
    number: str = ""
    action: str = ""
    state: str = ""
    district: str | None = None
    at: datetime
