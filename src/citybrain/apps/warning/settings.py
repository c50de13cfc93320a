"""The warning app's settings, read from CITYBRAIN_WARNING_* (declared in the app's AppSpec)."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from citybrain.apps.warning.sealing import decode_key
from citybrain.sdk import AppSettings


class WarningSettings(AppSettings):
    """How often absence rules and pending downgrades are checked; the dry run's window."""

    model_config = SettingsConfigDict(env_prefix="CITYBRAIN_WARNING_", env_file=".env", extra="ignore")

    # Absence rules, downgrades waiting out their hold time and rule edits of other processes: every N s.
    tick_seconds: float = Field(default=15.0, gt=0, le=3600)
    # A dry run replays this many days of attribute history.
    dry_run_days: int = Field(default=7, ge=1, le=31)
    # The most history values a dry run reads per entity, and the most entities it replays.
    dry_run_values: int = Field(default=20_000, ge=10, le=1_000_000)
    dry_run_entities: int = Field(default=500, ge=1, le=100_000)
    # The sender of CAP messages: unique to this platform, without spaces, commas or '<' and '&'.
    cap_sender: str = Field(default="citybrain.warning", pattern=r"^[^\s,<&]{1,100}$")
    # Publishing: a failed attempt n (1-based) is retried after min(base * 2**(n-1), max) seconds.
    delivery_retry_base_seconds: float = Field(default=2.0, gt=0, le=3600)
    delivery_retry_max_seconds: float = Field(default=600.0, gt=0, le=86400)
    # After this many failed attempts a delivery is given up (state "failed").
    delivery_max_attempts: int = Field(default=10, ge=1, le=100)
    # The delivery worker looks for due deliveries at least this often; it takes this many at a time.
    delivery_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    delivery_batch: int = Field(default=50, ge=1, le=1000)
    # A delivery being sent is leased this long (a crash mid-send only delays it).
    delivery_lease_seconds: float = Field(default=60.0, gt=0, le=3600)
    # Delivered and given-up deliveries are kept this many days (they show what was sent, and when).
    delivery_retention_days: int = Field(default=30, ge=1, le=3650)
    # How long a webhook receiver may take to answer.
    webhook_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    # Webhook hosts (names, '*' wildcards, IP addresses or networks, comma-separated) permitted even
    # where they resolve to a loopback, private or link-local address; others must be public.
    webhook_allowlist: str = Field(default="", max_length=2000)
    # The address warnings link to (CAP messages) in webhooks; empty: http://<host>:<port> of the platform.
    public_url: str = Field(default="", pattern=r"^(https?://[^\s]+)?$")
    # The key webhook secrets are sealed with at rest (32 bytes, URL-safe base64); empty: one derived from
    # the platform's CITYBRAIN_SECRET_KEY (sealing.py).
    webhook_secret_key: SecretStr = SecretStr("")
    # After a webhook secret is rotated, deliveries are signed with the old one too for this long.
    webhook_secret_grace_hours: float = Field(default=24.0, ge=0, le=24 * 30)
    # Rule codes whose warnings the public CAP feed carries (besides rules marked public): by default the
    # heavy-pollution warning (重污染天气预警), which is issued to the public.
    public_rules: tuple[str, ...] = ("heavy-pollution",)
    # The signature (签名) an SMS starts with.
    sms_signature: str = Field(default="【绵阳城市智脑】", min_length=1, max_length=20)
    # Forecasting (forecasts.py): the job runs every N s, the first time this long after start.
    forecast_seconds: float = Field(default=3600.0, gt=0, le=86400)
    forecast_first_delay_seconds: float = Field(default=60.0, ge=0, le=86400)
    # The most series one run examines (the least recently examined first): the cap on its work.
    forecast_max_series: int = Field(default=40, ge=1, le=10_000)
    # Past forecasts kept per series (older ones are deleted), to compare with what came.
    forecast_history: int = Field(default=48, ge=1, le=10_000)
    # Backtest origins; the candidate models (empty: the library's defaults for the frequency).
    forecast_origins: int = Field(default=5, ge=1, le=20)
    forecast_models: tuple[str, ...] = ()
    # The most points a model is fitted on (None: the library's window, twelve weeks of hourly data).
    forecast_max_train: int | None = Field(default=None, ge=1, le=100_000)
    # Refit after this many hours or new points; choose among every model again after this many days.
    forecast_refit_hours: float = Field(default=24.0, gt=0, le=24 * 90)
    forecast_refit_points: int = Field(default=6, ge=1, le=10_000)
    forecast_reselect_days: float = Field(default=7.0, gt=0, le=365)
    # The most entities a type-wide series declaration covers.
    forecast_max_entities: int = Field(default=500, ge=1, le=100_000)
    # Device health (health.py): the most series the anomaly detectors of one health rule follow.
    health_max_series: int = Field(default=100_000, ge=10, le=10_000_000)
    # Where the watched entities stand (for drift's peers) is read again this often.
    health_peer_refresh_seconds: float = Field(default=3600.0, ge=10, le=86400 * 7)
    # Data-quality flags (spikes) are kept this many days.
    quality_flag_retention_days: int = Field(default=30, ge=1, le=3650)
    # A drift warning whose comparison with its neighbours cannot be made this long (its peers went
    # silent, or its series was forgotten) is lifted: nothing any longer says the drift goes on.
    drift_stale_hours: float = Field(default=6.0, gt=0, le=24 * 30)

    @field_validator("webhook_secret_key")
    @classmethod
    def _check_key(cls, value: SecretStr) -> SecretStr:
        """Empty, or 32 bytes of URL-safe base64."""
        text = value.get_secret_value()
        if text:
            decode_key(text)
        return value
