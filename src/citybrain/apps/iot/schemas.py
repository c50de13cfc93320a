"""API shapes of the iot app (separate from the tables), and the ingest pipeline's messages and reports."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, Self, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from citybrain.sdk import utcnow

T = TypeVar("T")
MAX_INT = 2**31 - 1
RowId = Annotated[int, Field(ge=1, le=MAX_INT)]
# A device id is also an MQTT topic level: no '/', '+', '#', spaces or ':' (the HTTP credential separator).
DEVICE_ID = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"
DEVICE_ID_RE = re.compile(DEVICE_ID)
TENANT_RE = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
ATTRIBUTE_NAME = r"^[A-Za-z][A-Za-z0-9_]{0,63}$"
ENTITY_TYPE = r"^[A-Za-z][A-Za-z0-9_]{0,99}$"
# NGSI-LD members, and the attributes provisioning writes itself: a device may not measure these.
RESERVED_ATTRIBUTES = frozenset(
    {
        "id",
        "type",
        "scope",
        "value",
        "object",
        "location",
        "observationSpace",
        "operationSpace",
        "createdAt",
        "modifiedAt",
        "deletedAt",
        "observedAt",
        "unitCode",
        "datasetId",
        "objectType",
        "languageMap",
        "json",
        "vocab",
        "name",
    }
)
AttributeKind = Literal["number", "integer", "string", "boolean"]
Protocol = Literal["mqtt", "http"]
Channel = Literal["mqtt", "http", "internal"]
DeviceStatus = Literal["new", "online", "offline"]
# Reasons a message or a value is rejected (the dead-letter store and the counters use these codes).
REASONS = (
    "oversize",
    "malformed",
    "unknown_device",
    "revoked",
    "missing_key",
    "wrong_key",
    "future_timestamp",
    "stale_timestamp",
    "unknown_attribute",
    "wrong_type",
    "out_of_range",
    "unknown_entity",
    "internal_error",
)
Reason = Literal[
    "oversize",
    "malformed",
    "unknown_device",
    "revoked",
    "missing_key",
    "wrong_key",
    "future_timestamp",
    "stale_timestamp",
    "unknown_attribute",
    "wrong_type",
    "out_of_range",
    "unknown_entity",
    "internal_error",
]


def _not_reserved(name: str) -> str:
    """Refuse an attribute name that NGSI-LD or provisioning reserves."""
    if name in RESERVED_ATTRIBUTES:
        raise ValueError("this attribute name is reserved")
    return name


AttributeName = Annotated[str, Field(pattern=ATTRIBUTE_NAME), AfterValidator(_not_reserved)]


class Strict(BaseModel):
    """Input models refuse unknown fields."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Page(BaseModel, Generic[T]):
    """A page of results."""

    items: list[T]
    total: int
    limit: int
    offset: int


# --- device models --------------------------------------------------------------------------------


class AttributeSpec(Strict):
    """An attribute a device model measures: its kind, its valid range and its UN/CEFACT unit code."""

    name: AttributeName
    kind: AttributeKind = "number"
    minimum: float | None = Field(default=None, allow_inf_nan=False)
    maximum: float | None = Field(default=None, allow_inf_nan=False)
    unit_code: str | None = Field(default=None, pattern=r"^[A-Z0-9]{1,6}$")

    @model_validator(mode="after")
    def _check_range(self) -> Self:
        """A range belongs to numbers only, and its minimum is not above its maximum."""
        if self.kind not in ("number", "integer") and (self.minimum is not None or self.maximum is not None):
            raise ValueError("only numbers and integers have a minimum and a maximum")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError("the minimum is above the maximum")
        return self


def _unique_names(specs: list[AttributeSpec]) -> list[AttributeSpec]:
    """Refuse an attribute declared twice."""
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise ValueError("an attribute is declared twice")
    return specs


AttributeSpecs = Annotated[list[AttributeSpec], Field(max_length=200), AfterValidator(_unique_names)]
OfflineTimeout = Annotated[int, Field(ge=10, le=30 * 86400)]


class DeviceModelCreate(Strict):
    """A new device model."""

    code: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
    name_zh: str = Field(min_length=1, max_length=120)
    name_en: str = Field(default="", max_length=200)
    entity_type: str = Field(pattern=ENTITY_TYPE)
    offline_timeout_seconds: OfflineTimeout = 600
    attributes: AttributeSpecs = Field(min_length=1)


class DeviceModelUpdate(Strict):
    """Changes to a device model (its code and entity type stay)."""

    name_zh: str | None = Field(default=None, min_length=1, max_length=120)
    name_en: str | None = Field(default=None, max_length=200)
    offline_timeout_seconds: OfflineTimeout | None = None
    attributes: AttributeSpecs | None = Field(default=None, min_length=1)


class DeviceModelRead(BaseModel):
    """A device model as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    code: str
    name_zh: str
    name_en: str
    entity_type: str
    offline_timeout_seconds: int
    attributes: list[AttributeSpec]
    devices: int = 0


# --- devices --------------------------------------------------------------------------------------

Longitude = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]
Latitude = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]


def _static_attributes(values: dict[str, Any]) -> dict[str, Any]:
    """Extra entity attributes in keyValues form: valid names, JSON values, not too many."""
    for name, value in values.items():
        if not re.match(ATTRIBUTE_NAME, name) or name in RESERVED_ATTRIBUTES:
            raise ValueError(f"{name!r} cannot be an attribute name")
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            raise ValueError(f"the attribute {name!r} needs a value")
    return values


StaticAttributes = Annotated[dict[str, Any], Field(max_length=50), AfterValidator(_static_attributes)]


class DeviceCreate(Strict):
    """A device to register; its entity id defaults to urn:ngsi-ld:<entity type>:<device id>."""

    device_id: str = Field(pattern=DEVICE_ID)
    name: str = Field(min_length=1, max_length=200)
    model_code: str = Field(min_length=1, max_length=64)
    entity_id: str | None = Field(
        default=None, min_length=1, max_length=512, pattern=r"^[A-Za-z][A-Za-z0-9+.\-]*:\S+$"
    )
    protocol: Protocol = "mqtt"
    lon: Longitude
    lat: Latitude
    department_code: str = Field(min_length=1, max_length=64)
    static_attributes: StaticAttributes = Field(default_factory=dict)


class DeviceUpdate(Strict):
    """Changes to a device (null or absent: no change)."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    protocol: Protocol | None = None
    lon: Longitude | None = None
    lat: Latitude | None = None
    department_code: str | None = Field(default=None, min_length=1, max_length=64)
    static_attributes: StaticAttributes | None = None

    @model_validator(mode="after")
    def _both_coordinates(self) -> Self:
        """A move gives both coordinates."""
        if (self.lon is None) != (self.lat is None):
            raise ValueError("give both lon and lat")
        return self


class DeviceRead(BaseModel):
    """A device as the API shows it (never its key)."""

    id: int
    tenant: str
    device_id: str
    name: str
    model_code: str
    entity_type: str
    entity_id: str
    protocol: str
    lon: float
    lat: float
    department_id: int
    department_code: str
    district_code: str | None
    static_attributes: dict[str, Any]
    status: DeviceStatus
    status_changed_at: datetime | None
    last_seen_at: datetime | None
    revoked: bool
    revoked_at: datetime | None
    key_issued_at: datetime
    created_at: datetime
    updated_at: datetime


class ProvisionedDevice(DeviceRead):
    """A device with its key: shown this once (only a hash is stored)."""

    key: str


class ImportProblem(BaseModel):
    """Why one row of a CSV import was not imported (`msgid` and `params` let the pages translate it)."""

    row: int
    column: str
    message: str
    msgid: str = Field(default="", exclude=True)
    params: dict[str, Any] = Field(default_factory=dict, exclude=True)


class ImportReport(BaseModel):
    """The outcome of a CSV import: the devices created (with their keys, shown once) and the rows refused."""

    rows: int
    created: list[ProvisionedDevice]
    errors: list[ImportProblem]


# --- ingest ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Message:
    """A device payload as it arrived; `channel` "internal" (in-process producers) skips the key check."""

    tenant: str
    device_id: str
    payload: bytes
    channel: Channel = "mqtt"
    key: str | None = None
    received_at: datetime = field(default_factory=utcnow)


@dataclass(slots=True)
class Rejection:
    """One rejected item: the whole message (reading None), a reading, or one value of a reading."""

    reason: Reason
    # an English catalogue message; with `params` it reads as `message` (the pages translate it)
    template: str
    reading: int | None = None
    attribute: str | None = None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def message(self) -> str:
        """The English text of the rejection."""
        return self.template.format(**self.params) if self.params else self.template


@dataclass(slots=True)
class MessageReport:
    """What became of one message: readings found, readings with a value stored, values passed on, rejections."""

    device_id: str
    readings: int = 0
    accepted: int = 0
    values: int = 0
    rejections: list[Rejection] = field(default_factory=list)

    @property
    def refused(self) -> Reason | None:
        """The reason the whole message was refused, if it was."""
        return next((r.reason for r in self.rejections if r.reading is None), None)


@dataclass(slots=True)
class IngestReport:
    """What a batch became: a report per message, values stored and skipped as duplicates, rejections by reason."""

    messages: list[MessageReport] = field(default_factory=list)
    stored: int = 0
    duplicates: int = 0
    rejected: dict[str, int] = field(default_factory=dict)

    @property
    def accepted(self) -> int:
        """Readings with at least one value passed on to the context broker."""
        return sum(m.accepted for m in self.messages)


class RejectionRead(BaseModel):
    """A rejected item in an HTTP ingest answer."""

    reason: str
    message: str
    reading: int | None = None
    attribute: str | None = None


class IngestAnswer(BaseModel):
    """The answer to an HTTP ingest: readings received and accepted, values stored, and every rejection."""

    device_id: str
    readings: int
    accepted: int
    stored: int
    duplicates: int
    rejections: list[RejectionRead]


# --- dead letters and counters ----------------------------------------------------------------------


class DeadLetterRead(BaseModel):
    """A rejected message (or the values of one rejected for one reason)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    received_at: datetime
    tenant: str
    device_id: str
    channel: str
    reason: str
    count: int
    detail: str
    errors: list[dict[str, Any]]
    payload_size: int
    truncated: bool


class DeadLetterDetail(DeadLetterRead):
    """A rejected message with its payload (its first bytes when it was large)."""

    payload: str


class RateSeries(BaseModel):
    """Per-minute counts of the last minutes: messages, readings, stored values, rejections per reason."""

    minutes: list[datetime]
    messages: list[int]
    readings: list[int]
    stored: list[int]
    duplicates: list[int]
    rejected: dict[str, list[int]]
