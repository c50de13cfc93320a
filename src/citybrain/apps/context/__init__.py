"""Context: the city's live state as an ETSI NGSI-LD context broker, with history and subscriptions."""

from citybrain.apps.context.settings import ContextSettings
from citybrain.sdk import AppSpec, NavItem

APP = AppSpec(
    label="context",
    title="Context broker",
    description="Every sensor, road and facility as a live NGSI-LD entity, with its history.",
    layer="base",
    requires=("identity",),
    settings=ContextSettings,
    icon="context",
    nav=(NavItem("Entities", "/context/entities", "context.entity.read"),),
    mounts=(("/ngsi-ld/v1", "ngsild"), ("/ngsi-ld/v1", "subscriptions_api"), ("/ngsi-ld/v1", "contexts_api")),
)
