"""Identity's settings, read from the environment with the prefix CITYBRAIN_IDENTITY_."""

from __future__ import annotations

from pydantic import Field

from citybrain.sdk import AppSettings


class IdentitySettings(AppSettings):
    """Tuning of sign-in and API tokens."""

    token_cache_seconds: float = Field(
        default=10.0,
        ge=0,
        le=300,
        description=(
            "CITYBRAIN_IDENTITY_TOKEN_CACHE_SECONDS: how long a worker process reuses the actor of an API "
            "token it has checked, without asking the database (0 asks every time). Never beyond the "
            "token's expiry. Revoking a token or changing users, roles, grants or departments clears the "
            "cache of the process that made the change at once; other worker processes see the change "
            "within this many seconds."
        ),
    )
