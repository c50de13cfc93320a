"""NGSI-LD errors (ETSI GS CIM 009 clauses 5.5.2, 5.5.3 and 6.3.2) as exceptions carrying ProblemDetails."""

from __future__ import annotations

from typing import Any, ClassVar

from citybrain.sdk import ProblemError

ERRORS_BASE = "https://uri.etsi.org/ngsi-ld/errors/"


class NgsiError(ProblemError):
    """An NGSI-LD error: HTTP status, ETSI error type URI, short title and a human-readable detail."""

    status: ClassVar[int] = 500
    type_uri: ClassVar[str] = ERRORS_BASE + "InternalError"
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str) -> None:
        """Keep the detail that names the offending field or resource."""
        super().__init__(detail)
        self.detail = detail

    def problem(self) -> dict[str, Any]:
        """The RFC 7807 ProblemDetails body (sent as application/json, per clause 6.3.3)."""
        return {"type": self.type_uri, "title": self.title, "status": self.status, "detail": self.detail}


class InternalError(NgsiError):
    """An unexpected error prevented the operation from completing."""


class InvalidRequest(NgsiError):
    """The request is syntactically invalid (for example the body is not JSON)."""

    status = 400
    type_uri = ERRORS_BASE + "InvalidRequest"
    title = "Invalid request"


class BadRequestData(NgsiError):
    """The request data does not meet the requirements of the operation."""

    status = 400
    type_uri = ERRORS_BASE + "BadRequestData"
    title = "Bad request data"


class AlreadyExists(NgsiError):
    """The referred element already exists."""

    status = 409
    type_uri = ERRORS_BASE + "AlreadyExists"
    title = "Already exists"


class Conflict(NgsiError):
    """The operation conflicts with the current state of the system."""

    status = 409
    type_uri = ERRORS_BASE + "Conflict"
    title = "Conflict"


class OperationNotSupported(NgsiError):
    """The operation is not supported."""

    status = 422
    type_uri = ERRORS_BASE + "OperationNotSupported"
    title = "Operation not supported"


class ResourceNotFound(NgsiError):
    """The referred resource has not been found."""

    status = 404
    type_uri = ERRORS_BASE + "ResourceNotFound"
    title = "Resource not found"


class LdContextNotAvailable(NgsiError):
    """A JSON-LD @context referenced by the request cannot be retrieved."""

    status = 503
    type_uri = ERRORS_BASE + "LdContextNotAvailable"
    title = "JSON-LD @context not available"


class TooComplexQuery(NgsiError):
    """The query is too complex to be resolved."""

    status = 403
    type_uri = ERRORS_BASE + "TooComplexQuery"
    title = "Too complex query"


class TooManyResults(NgsiError):
    """The query would produce too many results."""

    status = 403
    type_uri = ERRORS_BASE + "TooManyResults"
    title = "Too many results"


class NoMultiTenantSupport(NgsiError):
    """A tenant was given but multi-tenancy is not supported."""

    status = 501
    type_uri = ERRORS_BASE + "NoMultiTenantSupport"
    title = "No multi-tenant support"


class NonexistentTenant(NgsiError):
    """The addressed tenant does not exist."""

    status = 404
    type_uri = ERRORS_BASE + "NonexistentTenant"
    title = "Nonexistent tenant"


class NotAcceptable(NgsiError):
    """No acceptable response media type (clause 6.3.4); the spec defines no ETSI error type for it."""

    status = 406
    type_uri = "about:blank"
    title = "Not Acceptable"


class UnsupportedMediaType(NgsiError):
    """The request Content-Type is not supported (clause 6.3.4); the spec defines no ETSI type for it."""

    status = 415
    type_uri = "about:blank"
    title = "Unsupported Media Type"
