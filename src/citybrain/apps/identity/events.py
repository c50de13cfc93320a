"""Events the identity app publishes."""

from __future__ import annotations

from typing import ClassVar

from citybrain.sdk import Event


class UserCreated(Event):
    """A user account was created."""

    subject: ClassVar[str] = "identity.user.created"
    user_id: int
    username: str
    department_id: int


class AccountLocked(Event):
    """An account was locked after repeated failed sign-ins."""

    subject: ClassVar[str] = "identity.user.locked"
    user_id: int
    username: str
    locked_until: str
