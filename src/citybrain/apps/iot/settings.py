"""The iot app's settings, read from CITYBRAIN_IOT_* (declared in the app's AppSpec)."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from citybrain.sdk import AppSettings


class IotSettings(AppSettings):
    """MQTT ingest, payload limits, key cache, device status checks and retention of rejected messages."""

    model_config = SettingsConfigDict(env_prefix="CITYBRAIN_IOT_", env_file=".env", extra="ignore")

    # The broker the ingest worker subscribes to, e.g. mqtt://127.0.0.1:1883 (mqtts:// for TLS);
    # empty: no MQTT worker (devices can still post over HTTP).
    mqtt_url: str | None = None
    # A fixed client id and a persistent session: the broker keeps QoS 1 messages while we are down.
    mqtt_client_id: str = Field(default="citybrain-ingest", min_length=1, max_length=128)
    mqtt_topic: str = Field(default="citybrain/+/+/attrs", min_length=1, max_length=256)
    mqtt_username: str | None = None
    mqtt_password: SecretStr | None = None
    # How long the broker keeps the session (and its queued messages) after we disconnect.
    mqtt_session_expiry_seconds: int = Field(default=7 * 86400, ge=0, le=2**32 - 1)
    # Messages the broker may send before we acknowledge them (MQTT 5 Receive Maximum).
    mqtt_receive_maximum: int = Field(default=10000, ge=1, le=65535)
    # A batch is stored when it has this many messages, or this many milliseconds after its first one.
    mqtt_batch_size: int = Field(default=2000, ge=1, le=100_000)
    mqtt_batch_ms: int = Field(default=100, ge=1, le=60_000)
    # Threads storing batches at the same time (each holds one database connection while it stores).
    mqtt_store_threads: int = Field(default=2, ge=1, le=32)
    # Reconnect and storage retry back-off: doubles from the minimum up to the maximum.
    mqtt_backoff_min_seconds: float = Field(default=0.5, gt=0)
    mqtt_backoff_max_seconds: float = Field(default=30.0, gt=0)
    # Whether MQTT messages must carry the device key ("k"); off where the broker authenticates devices.
    mqtt_require_key: bool = True

    # A message larger than this is refused whole (HTTP: 413).
    max_payload_bytes: int = Field(default=64 * 1024, ge=256, le=16 * 1024 * 1024)
    # A reading stamped further ahead of its arrival than this is refused (clock drift allowance).
    max_future_seconds: float = Field(default=300.0, ge=0)
    # A reading older than this is refused (0: no limit), e.g. seconds sent where milliseconds belong.
    max_age_days: float = Field(default=366.0, ge=0)
    # How long a process trusts a device record (and its key hash) it has read; changes made in the
    # same process apply at once, other processes see them within this time (0: read every batch).
    key_cache_seconds: float = Field(default=10.0, ge=0, le=300)
    # How often the status monitor marks silent devices offline.
    status_check_seconds: float = Field(default=15.0, gt=0)
    # Rejected messages are kept this long; the first bytes of each payload are kept.
    dead_letter_retention_days: float = Field(default=30.0, gt=0)
    dead_letter_payload_bytes: int = Field(default=8192, ge=64, le=1024 * 1024)
    # Per-minute ingest counters are kept this long.
    counter_retention_days: float = Field(default=14.0, gt=0)
    # The most rows one CSV import may hold.
    import_max_rows: int = Field(default=10_000, ge=1, le=1_000_000)

    @field_validator("mqtt_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        """Accept mqtt://host[:port] or mqtts://host[:port]; empty means no MQTT."""
        if value is None or not value.strip():
            return None
        from urllib.parse import urlsplit

        parts = urlsplit(value.strip())
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError("use mqtt://host:port or mqtts://host:port")
        try:
            _ = parts.port
        except ValueError as exc:
            raise ValueError(f"bad port in {value!r}") from exc
        return value.strip()
