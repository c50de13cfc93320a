"""Permissions the command app declares, and the roles it suggests (created by `services.ensure_roles`)."""

from citybrain.sdk import Permission

PERMISSIONS = (
    Permission("command.event.read", "查看城市事件", "View city events"),
    Permission("command.event.report", "上报事件", "Report events (inspectors, departments)"),
    Permission("command.ticket.create", "受理12345工单", "Take in 12345 tickets"),
    Permission("command.ticket.visit", "回访评价", "Return visits and ratings"),
    Permission("command.event.file", "立案与作废", "File or cancel cases"),
    Permission("command.event.dispatch", "派遣派单", "Dispatch and assign"),
    Permission("command.event.handle", "处置办理", "Handle events"),
    Permission("command.event.verify", "核查", "Verify on site"),
    Permission("command.event.close", "结案办结", "Close cases and tickets"),
    Permission("command.event.supervise", "督办", "Supervise (督办), urge (催办), approve extensions (延期)"),
    Permission("command.event.merge", "并单", "Merge duplicate events into a main event (并单)"),
    Permission("command.caller.read", "查看来电人信息", "See callers' personal data"),
    Permission("command.open311.submit", "经Open311提交诉求", "Submit citizen requests through Open311"),
    Permission(
        "command.emergency.read", "查看应急指挥", "View emergency responses, resources and the command log"
    ),
    Permission(
        "command.emergency.command", "应急指挥", "Start, raise, lower and end emergency responses; dispatch"
    ),
    Permission("command.emergency.task", "办理应急任务", "Update the emergency tasks of one's department"),
    Permission(
        "command.resource.manage",
        "管理应急资源",
        "Manage emergency resources (teams, vehicles, shelters, supplies)",
    ),
)

# (code, name_zh, name_en, permissions): the posts of a command centre (standards notes §3.2).
ROLES: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    (
        "command_operator",
        "受理员",
        "Operator",
        (
            "command.event.read",
            "command.ticket.create",
            "command.ticket.visit",
            "command.caller.read",
            "command.event.report",
            "command.event.merge",
        ),
    ),
    (
        "command_shift_leader",
        "值班长",
        "Shift leader",
        (
            "command.event.read",
            "command.event.file",
            "command.event.close",
            "command.event.supervise",
            "command.event.merge",
            "command.caller.read",
            "command.ticket.create",
            # the warning app's permission: the shift leader sees every department's warnings
            "warning.warning.read_all",
        ),
    ),
    (
        "command_dispatcher",
        "派遣员",
        "Dispatcher",
        ("command.event.read", "command.event.dispatch", "command.event.supervise"),
    ),
    (
        "command_handler",
        "专业部门处置人员",
        "Department handler",
        ("command.event.read", "command.event.handle", "command.event.report"),
    ),
    (
        "command_inspector",
        "监督员",
        "Inspector",
        ("command.event.read", "command.event.report", "command.event.verify"),
    ),
    (
        "command_emergency_commander",
        "应急指挥长",
        "Emergency commander",
        (
            "command.emergency.read",
            "command.emergency.command",
            "command.emergency.task",
            "command.resource.manage",
            "command.event.read",
        ),
    ),
    (
        "command_emergency_responder",
        "应急联动单位人员",
        "Emergency responder (department)",
        ("command.emergency.read", "command.emergency.task"),
    ),
)
