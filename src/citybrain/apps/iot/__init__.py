"""IoT: the device registry and MQTT/HTTP ingest into the context broker."""

from citybrain.apps.iot.settings import IotSettings
from citybrain.sdk import AppSpec, NavItem

APP = AppSpec(
    label="iot",
    title="Devices",
    description="Sensors and their credentials, MQTT and HTTP ingest, device status and rejected messages.",
    layer="base",
    requires=("identity", "context", "geo"),
    icon="device",
    settings=IotSettings,
    nav=(
        NavItem("Devices", "/iot/devices", "iot.device.read"),
        NavItem("Device models", "/iot/models", "iot.model.read"),
        NavItem("Ingest rates", "/iot/ingest", "iot.ingest.read"),
        NavItem("Rejected messages", "/iot/dead-letters", "iot.ingest.read"),
    ),
)
