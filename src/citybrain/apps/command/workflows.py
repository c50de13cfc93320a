"""The two workflows as explicit state machines: states, actions, who may take each, and where it leads.

数字城管 (GB/T 30428; standards notes §3.2): 信息收集 → 立案 (or 作废) → 派遣 → 处置 → 处置反馈 → 核查 → 结案
(or 返工), with 挂账 for long-term cases. 12345 (国办发〔2020〕53号, §4.1): 受理 → 派单 → 办理 → 回复 → (督办) →
办结 → 回访 → 评价, with 退单/改派 and 主办/协办 joint handling. This module is pure data and lookups.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from citybrain.apps.command.taxonomy import Stage

# Permissions the actions need (declared in permissions.py).
READ = "command.event.read"
REPORT = "command.event.report"
TICKET = "command.ticket.create"
VISIT = "command.ticket.visit"
FILE = "command.event.file"
DISPATCH = "command.event.dispatch"
HANDLE = "command.event.handle"
VERIFY = "command.event.verify"
CLOSE = "command.event.close"
SUPERVISE = "command.event.supervise"
CALLER = "command.caller.read"
MERGE = "command.event.merge"

# Where events come from (issue intake channels), with their names.
SOURCES = {
    "hotline": ("12345热线", "12345 hotline"),
    "inspector": ("监督员上报", "Grid inspector"),
    "department": ("部门自报", "Department report"),
    "warning": ("预警转入", "From a warning"),
    "citizen": ("市民上报", "Citizen report"),
}

# Who must hold the permission: anywhere ("city"), in the main department, or in the main or an assisting one.
Where = Literal["city", "main", "any"]
# What the event itself must show besides its state: room for another extension (延期) request, a request
# waiting, the 督办 flag, or an unresolved ticket (rated 不满意, or 回访 done) for 重办.
Guard = Literal["", "extension_open", "extension_pending", "supervised", "unresolved"]


@dataclass(frozen=True)
class State:
    """A workflow state; `stage` names the time limit running while an event is in it."""

    code: str
    name_zh: str
    name_en: str
    stage: Stage | None = None
    final: bool = False


@dataclass(frozen=True)
class Action:
    """A transition: the states it leaves, the state it reaches (None: stays), who may take it, what it needs."""

    code: str
    name_zh: str
    name_en: str
    sources: frozenset[str]
    target: str | None
    permission: str
    where: Where = "city"
    department: Literal["no", "optional", "required"] = "no"
    note_required: bool = False
    rating: bool = False
    supervise: bool = False
    guard: Guard = ""
    # The action carries a number of working days (延期申请).
    days: bool = False
    # The action takes a finished event back into the workflow (重办 after 不满意).
    reopens: bool = False


@dataclass(frozen=True)
class Workflow:
    """A workflow: its states (the first is where intake puts events) and actions."""

    code: str
    name_zh: str
    name_en: str
    states: tuple[State, ...]
    actions: tuple[Action, ...]

    def state(self, code: str) -> State:
        """A state by code (KeyError for an unknown one)."""
        for item in self.states:
            if item.code == code:
                return item
        raise KeyError(code)

    def action(self, code: str) -> Action | None:
        """An action by code, None if the workflow has no such action."""
        return next((item for item in self.actions if item.code == code), None)

    @property
    def open_states(self) -> tuple[str, ...]:
        """States of events still being worked on."""
        return tuple(s.code for s in self.states if not s.final)


def _a(
    code: str, zh: str, en: str, sources: str, target: str | None, permission: str, **kw: object
) -> Action:
    return Action(code, zh, en, frozenset(sources.split()), target, permission, **kw)  # type: ignore[arg-type]


def _supervision(handling: str, open_states: str) -> tuple[Action, ...]:
    """催办, 延期 (request, approve, reject) and lifting 督办: the same in both workflows."""
    return (
        _a("urge", "催办", "Urge the department", handling, None, SUPERVISE),
        _a(
            "request_extension",
            "申请延期",
            "Request an extension",
            handling,
            None,
            HANDLE,
            where="main",
            note_required=True,
            guard="extension_open",
            days=True,
        ),
        _a(
            "approve_extension",
            "同意延期",
            "Approve the extension",
            handling,
            None,
            SUPERVISE,
            guard="extension_pending",
        ),
        _a(
            "reject_extension",
            "驳回延期",
            "Reject the extension",
            handling,
            None,
            SUPERVISE,
            note_required=True,
            guard="extension_pending",
        ),
        _a(
            "lift_supervision",
            "解除督办",
            "Lift supervision",
            open_states,
            None,
            SUPERVISE,
            guard="supervised",
        ),
    )


CITY = Workflow(
    code="city",
    name_zh="数字城管",
    name_en="Digital city management",
    states=(
        State("reported", "信息收集", "Reported", stage="file"),
        State("filed", "已立案", "Filed", stage="dispatch"),
        State("dispatched", "已派遣", "Dispatched", stage="handle"),
        State("handling", "处置中", "Being handled", stage="handle"),
        State("handled", "已反馈", "Handled, to verify"),
        State("verified", "已核查", "Verified, to close"),
        State("deferral", "挂账申请中", "Deferral requested", stage="handle"),
        State("deferred", "已挂账", "Deferred (long-term)"),
        State("closed", "已结案", "Closed", final=True),
        State("cancelled", "已作废", "Cancelled", final=True),
        State("merged", "已并单", "Merged into another event", final=True),
    ),
    actions=(
        _a("file", "立案", "File the case", "reported", "filed", FILE),
        _a("cancel", "作废", "Cancel the report", "reported", "cancelled", FILE, note_required=True),
        _a("dispatch", "派遣", "Dispatch", "filed", "dispatched", DISPATCH, department="optional"),
        _a("accept", "签收", "Accept", "dispatched", "handling", HANDLE, where="main"),
        _a(
            "feedback",
            "处置反馈",
            "Report the result",
            "handling",
            "handled",
            HANDLE,
            where="main",
            note_required=True,
        ),
        _a(
            "assist",
            "协办反馈",
            "Report assistance",
            "dispatched handling",
            None,
            HANDLE,
            where="any",
            note_required=True,
        ),
        _a("verify", "核查通过", "Verified on site", "handled", "verified", VERIFY),
        _a(
            "rework",
            "返工",
            "Send back for rework",
            "handled verified",
            "dispatched",
            VERIFY,
            note_required=True,
        ),
        _a("close", "结案", "Close the case", "verified", "closed", CLOSE),
        _a(
            "request_deferral",
            "申请挂账",
            "Request deferral",
            "handling",
            "deferral",
            HANDLE,
            where="main",
            note_required=True,
        ),
        _a("approve_deferral", "同意挂账", "Approve deferral", "deferral", "deferred", CLOSE),
        _a(
            "reject_deferral",
            "驳回挂账",
            "Reject deferral",
            "deferral",
            "handling",
            CLOSE,
            note_required=True,
        ),
        _a("resume", "恢复处置", "Resume handling", "deferred", "dispatched", DISPATCH),
        _a(
            "supervise",
            "督办",
            "Supervise (督办)",
            "filed dispatched handling",
            None,
            SUPERVISE,
            supervise=True,
        ),
        *_supervision(
            "dispatched handling", "reported filed dispatched handling handled verified deferral deferred"
        ),
    ),
)

HOTLINE = Workflow(
    code="hotline",
    name_zh="12345热线",
    name_en="12345 hotline",
    states=(
        State("accepted", "已受理", "Accepted", stage="dispatch"),
        State("assigned", "已派单", "Assigned", stage="handle"),
        State("handling", "办理中", "Being handled", stage="handle"),
        State("replied", "已回复", "Replied, to review"),
        State("completed", "已办结", "Completed, to visit"),
        State("visited", "已回访", "Visited, to rate"),
        State("rated", "已评价", "Rated", final=True),
        State("merged", "已并单", "Merged into another event", final=True),
    ),
    actions=(
        _a("assign", "派单", "Assign", "accepted", "assigned", DISPATCH, department="optional"),
        _a("answer", "直接答复", "Answer directly", "accepted", "completed", TICKET, note_required=True),
        _a("sign", "签收", "Sign for", "assigned", "handling", HANDLE, where="main"),
        _a(
            "return",
            "退单",
            "Return the ticket",
            "assigned handling",
            "accepted",
            HANDLE,
            where="main",
            note_required=True,
        ),
        _a("reassign", "改派", "Reassign", "assigned handling", "assigned", DISPATCH, department="required"),
        _a(
            "assist",
            "协办反馈",
            "Report assistance",
            "assigned handling",
            None,
            HANDLE,
            where="any",
            note_required=True,
        ),
        _a("reply", "回复", "Reply", "handling", "replied", HANDLE, where="main", note_required=True),
        _a("redo", "重办", "Send back to redo", "replied", "handling", DISPATCH, note_required=True),
        _a("complete", "办结", "Complete", "replied", "completed", CLOSE),
        _a(
            "supervise",
            "督办",
            "Supervise (督办)",
            "assigned handling replied",
            None,
            SUPERVISE,
            supervise=True,
        ),
        _a("visit", "回访", "Return visit", "completed", "visited", VISIT, note_required=True),
        _a("rate", "评价", "Rate", "visited", "rated", VISIT, rating=True),
        _a(
            "rehandle",
            "重新办理",
            "Re-handle (重办)",
            "visited rated",
            "handling",
            SUPERVISE,
            note_required=True,
            guard="unresolved",
            reopens=True,
        ),
        *_supervision("assigned handling", "accepted assigned handling replied completed visited"),
    ),
)

WORKFLOWS = {CITY.code: CITY, HOTLINE.code: HOTLINE}
# Where intake puts an event: reported by people (信息收集) or filed at once by the system.
INITIAL = {"city": "reported", "hotline": "accepted"}
FILED = {"city": "filed", "hotline": "accepted"}
# What the KPI reports count (kpi.py): the state a case is filed (立案) in, the states a first handling
# (处置反馈, 12345 回复) reaches, the actions sending work back (返工, 重办), and a 12345 ticket's 办结 states.
FILED_STATE = "filed"
HANDLED_STATES = frozenset({"handled", "replied"})
REWORK_ACTIONS = frozenset({"rework", "redo", "rehandle"})
# 并单: the final state of a duplicate merged into a main event (in both workflows).
MERGED = "merged"
COMPLETED_STATES = ("completed", "visited", "rated")
# Ratings of a 12345 ticket (满意度测评).
RATINGS = {
    "satisfied": ("满意", "Satisfied"),
    "basically_satisfied": ("基本满意", "Basically satisfied"),
    "unsatisfied": ("不满意", "Unsatisfied"),
}


def workflow(code: str) -> Workflow:
    """A workflow by code."""
    return WORKFLOWS[code]
