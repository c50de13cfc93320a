"""How the kernel learns who is calling: an API token in `Authorization`, or a session cookie."""

from __future__ import annotations

from fastapi import Request

from citybrain.apps.identity import services
from citybrain.sdk import SESSION_COOKIE, Actor, AppContext, Unauthorized


class Authenticate:
    """The identity app's authenticator; `recall` answers from memory for API tokens checked recently."""

    def __call__(self, ctx: AppContext, request: Request) -> Actor | None:
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

    def recall(self, ctx: AppContext, request: Request) -> Actor | None:
        """The actor of a bearer token in the token cache, without I/O; None when the database must tell."""
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        return services.recall_bearer(ctx, value.strip())


authenticate = Authenticate()
