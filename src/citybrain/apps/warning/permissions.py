"""Permissions the warning app declares, and the role it suggests to the operations centre."""

from citybrain.sdk import Permission

PERMISSIONS = (
    Permission("warning.rule.read", "查看预警规则", "View warning rules"),
    Permission("warning.rule.write", "管理预警规则", "Manage warning rules"),
    Permission("warning.warning.read", "查看预警", "View warnings"),
    Permission("warning.warning.read_all", "查看全市预警", "View every department's warnings"),
    Permission("warning.warning.acknowledge", "确认预警", "Acknowledge warnings"),
    Permission("warning.warning.lift", "解除预警", "Lift warnings"),
    Permission("warning.subscription.read", "查看预警订阅", "View warning subscriptions"),
    Permission("warning.subscription.write", "管理预警订阅", "Manage warning subscriptions"),
    Permission("warning.forecast.read", "查看预测", "View forecasts"),
    Permission("warning.forecast.write", "管理预测序列", "Manage forecast series"),
)

# (code, name_zh, name_en, permissions): the operations centre's warning duty officer (预警值班员), who
# sees the whole city's warnings; created by demo.py, held in the operations centre's department.
DUTY_ROLE: tuple[str, str, str, tuple[str, ...]] = (
    "warning_duty_officer",
    "预警值班员",
    "Warning duty officer",
    (
        "warning.warning.read",
        "warning.warning.read_all",
        "warning.warning.acknowledge",
        "warning.rule.read",
        "warning.forecast.read",
    ),
)
