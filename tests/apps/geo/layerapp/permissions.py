"""The test app's permission."""

from citybrain.sdk import Permission

PERMISSIONS = (Permission("geolayers.camera.read", "查看视频监控", "View cameras"),)
