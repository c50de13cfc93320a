"""Problem errors: every 4xx of the platform is an RFC 9457 application/problem+json body."""

from __future__ import annotations

from typing import Any, ClassVar

PROBLEM_TYPE_BASE = "https://citybrain.dev/problems/"


class ProblemError(Exception):
    """An error with an HTTP status, a stable type slug and a human-readable, translatable detail."""

    status: ClassVar[int] = 400
    slug: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"
    # A standard's own problem type URI (e.g. ETSI NGSI-LD's); default: ours, from the slug.
    type_uri: ClassVar[str] = ""

    def __init__(self, detail: str, *, extra: dict[str, Any] | None = None, **params: Any) -> None:
        """Keep the English detail (a catalogue msgid) and its parameters for translation."""
        super().__init__(detail.format(**params) if params else detail)
        self.detail = detail
        self.params = params
        self.extra = extra or {}

    @classmethod
    def problem_type(cls) -> str:
        """The problem type URI."""
        return cls.type_uri or PROBLEM_TYPE_BASE + cls.slug


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
