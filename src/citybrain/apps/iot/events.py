"""Events the iot app publishes."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from citybrain.sdk import Event


class DeviceProvisioned(Event):
    """A device was registered (its context entity exists from now on)."""

    subject: ClassVar[str] = "iot.device.provisioned"
    tenant: str
    device_id: str
    entity_id: str
    model_code: str
    department_id: int


class DeviceOnline(Event):
    """A device that was new or offline sent a reading."""

    subject: ClassVar[str] = "iot.device.online"
    tenant: str
    device_id: str
    entity_id: str
    department_id: int
    last_seen_at: datetime


class DeviceOffline(Event):
    """A device sent nothing for longer than its model's offline timeout."""

    subject: ClassVar[str] = "iot.device.offline"
    tenant: str
    device_id: str
    entity_id: str
    department_id: int
    last_seen_at: datetime | None
