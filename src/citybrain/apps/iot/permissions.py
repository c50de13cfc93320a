"""Permissions the iot app declares."""

from citybrain.sdk import Permission

PERMISSIONS = (
    Permission("iot.model.read", "查看设备型号", "View device models"),
    Permission("iot.model.write", "管理设备型号", "Manage device models"),
    Permission("iot.device.read", "查看设备", "View devices"),
    Permission("iot.device.create", "登记设备、批量导入", "Register and import devices"),
    Permission("iot.device.update", "修改设备", "Edit devices"),
    Permission("iot.device.delete", "删除设备", "Delete devices"),
    Permission("iot.device.credentials", "更换和吊销设备密钥", "Rotate and revoke device keys"),
    Permission("iot.ingest.read", "查看接入速率和被拒消息", "View ingest rates and rejected messages"),
)
