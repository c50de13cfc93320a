"""The context app's settings, read from CITYBRAIN_CONTEXT_* (declared in the app's AppSpec)."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from citybrain.sdk import AppSettings

# An allow-list entry that is not an IP address or network: a host name, '*' and '?' as wildcards.
_HOST_PATTERN = re.compile(r"^[a-z0-9*?]([a-z0-9*?._-]*[a-z0-9*?])?$")


class ContextSettings(AppSettings):
    """History retention, subscription delivery tuning and the notification endpoint policy."""

    model_config = SettingsConfigDict(env_prefix="CITYBRAIN_CONTEXT_", env_file=".env", extra="ignore")

    # Attribute history older than this is deleted for good (0 keeps it forever); checked this often.
    history_retention_days: float = Field(default=400.0, ge=0)
    history_purge_seconds: float = Field(default=3600.0, gt=0)

    # Attempt n (1-based) that fails is retried after min(retry_base * 2**(n-1), retry_max) seconds.
    subscription_retry_base_seconds: float = Field(default=1.0, gt=0)
    subscription_retry_max_seconds: float = Field(default=300.0, gt=0)
    subscription_max_attempts: int = Field(default=10, ge=1)
    # The deliverer and scheduler look at the tables at least this often (new work also wakes them).
    subscription_poll_seconds: float = Field(default=1.0, gt=0)
    subscription_timeout_seconds: float = Field(default=5.0, gt=0)
    # A row being delivered is hidden this long; after a crash it becomes due again.
    subscription_lease_seconds: float = Field(default=60.0, gt=0)
    # Delivered and abandoned notifications are kept this long (they also de-duplicate redelivered events).
    subscription_retention_hours: float = Field(default=24.0, gt=0)
    subscription_batch_size: int = Field(default=100, ge=1)
    subscription_max_parallel: int = Field(default=32, ge=1)
    # How often the in-memory subscription index looks for changes made by other processes.
    subscription_index_refresh_seconds: float = Field(default=1.0, gt=0)
    # Notification endpoints permitted even where they resolve to loopback, private, link-local, multicast
    # or other non-public addresses: host names (wildcards '*', '?'), IP addresses or networks (CIDR).
    subscription_endpoint_allowlist: Annotated[tuple[str, ...], NoDecode] = ()
    # Whether endpoints on public addresses are permitted without being listed.
    subscription_endpoint_allow_public: bool = True

    @field_validator("subscription_endpoint_allowlist", mode="before")
    @classmethod
    def _split_allowlist(cls, value: Any) -> Any:
        """Accept the allow-list as a comma-separated string too."""
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("subscription_endpoint_allowlist")
    @classmethod
    def _check_allowlist(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        """Each entry is an IP address, a network or a host name pattern (stored lowercase)."""
        entries: list[str] = []
        for entry in value:
            entry = entry.strip().lower()
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                if not _HOST_PATTERN.match(entry):
                    raise ValueError(
                        f"{entry!r} is neither an IP address or network nor a host name"
                    ) from None
            entries.append(entry)
        return tuple(entries)
