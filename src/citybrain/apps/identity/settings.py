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
    # Argon2id costs: the defaults are RFC 9106 §4's second recommended option (t=3, 64 MiB, p=4), the
    # profile argon2-cffi recommends. Hashes keep their own costs; a sign-in rehashes one made with others.
    argon2_time_cost: int = Field(
        default=3, ge=1, le=10, description="CITYBRAIN_IDENTITY_ARGON2_TIME_COST: Argon2id passes."
    )
    argon2_memory_kib: int = Field(
        default=65536,
        ge=8,
        le=1048576,
        description="CITYBRAIN_IDENTITY_ARGON2_MEMORY_KIB: Argon2id memory per hash, in KiB.",
    )
    argon2_parallelism: int = Field(
        default=4, ge=1, le=16, description="CITYBRAIN_IDENTITY_ARGON2_PARALLELISM: Argon2id lanes."
    )
