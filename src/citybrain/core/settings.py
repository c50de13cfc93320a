"""Typed settings read from the environment (prefix CITYBRAIN_) and an optional .env file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PLACEHOLDER_SECRET = "change-me-in-production"  # noqa: S105 - the placeholder production refuses
ENV_PREFIX = "CITYBRAIN_"
T = TypeVar("T", bound=BaseSettings)


class SettingsError(Exception):
    """A setting is missing or malformed; the message names the environment variable."""


class Settings(BaseSettings):
    """Every kernel setting; apps read theirs through `AppSettings` subclasses."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    mode: Literal["development", "production"] = "development"
    # Set by `citybrain demo`: while serving, each app's `demo.run(ctx)` keeps the demo city alive.
    demo: bool = False
    data_dir: Path = Path("var")
    database_url: str | None = None
    bus_url: str = "memory://"
    bus_stream: str = Field(default="CITYBRAIN", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    bus_namespace: str = Field(default="citybrain", pattern=r"^[a-z0-9_]{1,64}$")
    secret_key: SecretStr = SecretStr(PLACEHOLDER_SECRET)
    apps: Annotated[tuple[str, ...] | None, NoDecode] = None
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    default_locale: Literal["zh_CN", "en"] = "zh_CN"
    timezone: str = "Asia/Shanghai"
    session_hours: float = Field(default=12.0, gt=0)
    login_max_failures: int = Field(default=5, ge=1)
    login_lockout_minutes: float = Field(default=15.0, gt=0)
    secure_cookies: bool = False
    shutdown_seconds: float = Field(default=15.0, gt=0)
    sql_echo: bool = False
    # PostgreSQL connections kept open (and how many more under load); a server restart costs the
    # requests then in flight one error each, after which the pool reconnects.
    db_pool_size: int = Field(default=20, ge=1)
    db_max_overflow: int = Field(default=20, ge=0)

    @field_validator("apps", mode="before")
    @classmethod
    def _split_apps(cls, value: Any) -> Any:
        """Accept CITYBRAIN_APPS as a comma-separated list."""
        if isinstance(value, str):
            labels = tuple(part.strip() for part in value.split(",") if part.strip())
            return labels or None
        return value

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        """Refuse an unknown IANA time zone."""
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _refuse_placeholders(self) -> Settings:
        """Outside development, placeholder or weak secrets stop startup."""
        if self.mode != "development":
            secret = self.secret_key.get_secret_value()
            if secret == PLACEHOLDER_SECRET or len(secret) < 32:
                raise ValueError(
                    f"{ENV_PREFIX}SECRET_KEY must be set to a random value of at least 32 characters "
                    f"in {self.mode} mode"
                )
        return self

    @property
    def db_url(self) -> str:
        """The SQLAlchemy URL: the configured one, or an SQLite file in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'citybrain.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        """Whether storage is the embedded SQLite database."""
        return self.db_url.startswith("sqlite")


def _describe(exc: ValidationError, prefix: str) -> str:
    """Turn a pydantic error into lines naming each environment variable."""
    lines = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        name = f"{prefix}{field.upper()}" if field else "settings"
        message = str(error["msg"]).removeprefix("Value error, ")
        lines.append(f"{name}: {message}")
    return "invalid settings:\n  " + "\n  ".join(lines)


def load_settings(**overrides: Any) -> Settings:
    """Build Settings from the environment plus overrides, or raise SettingsError naming the variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(_describe(exc, ENV_PREFIX)) from exc


def load_app_settings(cls: type[T], label: str, **overrides: Any) -> T:
    """Build an app's settings class with the prefix CITYBRAIN_<LABEL>_."""
    prefix = f"{ENV_PREFIX}{label.upper()}_"
    try:
        return cls(_env_prefix=prefix, **overrides)
    except ValidationError as exc:
        raise SettingsError(_describe(exc, prefix)) from exc
