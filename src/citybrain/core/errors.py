"""Problem errors: every 4xx of the platform is an RFC 9457 application/problem+json body."""

from __future__ import annotations

from typing import Any

PROBLEM_TYPE_BASE = "https://citybrain.dev/problems/"


class ProblemError(Exception):
    """An error with an HTTP status, a stable type slug and a human-readable, translatable detail."""

    status = 400
    slug = "bad-request"
    title = "Bad request"

    def __init__(self, detail: str, *, extra: dict[str, Any] | None = None, **params: Any) -> None:
        """Keep the English detail (a catalogue msgid) and its parameters for translation."""
        super().__init__(detail.format(**params) if params else detail)
        self.detail = detail
        self.params = params
        self.extra = extra or {}

    @property
    def type_uri(self) -> str:
        """The problem type URI."""
        return PROBLEM_TYPE_BASE + self.slug


class BadRequest(ProblemError):
    """The request is malformed or invalid."""


class ValidationFailed(ProblemError):
    """The request body or parameters fail validation."""

    status = 422
    slug = "validation-failed"
    title = "Validation failed"


class Unauthorized(ProblemError):
    """No valid credentials were given."""

    status = 401
    slug = "unauthorized"
    title = "Unauthorized"


class Forbidden(ProblemError):
    """The actor lacks the permission for this action or this department."""

    status = 403
    slug = "forbidden"
    title = "Forbidden"


class NotFound(ProblemError):
    """The object does not exist or is not visible to the actor."""

    status = 404
    slug = "not-found"
    title = "Not found"


class Conflict(ProblemError):
    """The request conflicts with the current state (duplicate, stale)."""

    status = 409
    slug = "conflict"
    title = "Conflict"


class Locked(ProblemError):
    """The account is temporarily locked."""

    status = 423
    slug = "locked"
    title = "Locked"


class TooManyRequests(ProblemError):
    """Too many attempts in a short time."""

    status = 429
    slug = "too-many-requests"
    title = "Too many requests"
