"""Events the context broker publishes for every change of the city's live state."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel

from citybrain.sdk import Event


class EntityCreated(Event):
    """An entity was created."""

    subject: ClassVar[str] = "context.entity.created"
    tenant: str
    entity_id: str
    types: list[str]


class AttributeChange(BaseModel):
    """One attribute instance before and after a change (None: absent)."""

    attr: str
    dataset_id: str | None = None
    old: dict[str, Any] | None = None
    new: dict[str, Any] | None = None


class AttributesChanged(Event):
    """Attributes of an entity were added, changed or removed (expanded names, stored form)."""

    subject: ClassVar[str] = "context.entity.changed"
    tenant: str
    entity_id: str
    types: list[str]
    changes: list[AttributeChange]


class EntityDeleted(Event):
    """An entity was deleted; `entity` is its stored form at deletion (None from older writers)."""

    subject: ClassVar[str] = "context.entity.deleted"
    tenant: str
    entity_id: str
    types: list[str]
    entity: dict[str, Any] | None = None


class SubscriptionChanged(Event):
    """A subscription was created, updated or deleted (subscription engines refresh their index)."""

    subject: ClassVar[str] = "context.subscription.changed"
    tenant: str
    subscription_id: str
