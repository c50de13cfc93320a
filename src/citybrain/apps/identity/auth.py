"""How the kernel learns who is calling: an API token in `Authorization`, or a session cookie."""

from __future__ import annotations

from fastapi import Request

from citybrain.apps.identity import services
from citybrain.sdk import SESSION_COOKIE, Actor, AppContext, Unauthorized


def authenticate(ctx: AppContext, request: Request) -> Actor | None:
    """The caller's actor; a bad bearer token is refused outright rather than treated as anonymous."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized("Use `Authorization: Bearer <token>`.")
        actor = services.authenticate_bearer(ctx, value.strip())
        if actor is None:
            raise Unauthorized("The API token is invalid, expired or revoked.")
        return actor
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return services.authenticate_cookie(ctx, cookie)
    return None
