"""Warning pages under /warning: the warning centre (counts, map, live list), a warning's page with its
timeline, triggering data, acknowledgement and lifting; the rules with their editor, versions and dry run.

Views stay thin: parse the form, call one service, render. Services check every permission; the kernel
answers a missing one with the error page (403) or the sign-in redirect (401). A rule form that fails
re-renders with each message next to the field it names and a 4xx status.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from citybrain.apps.geo import services as geo
from citybrain.apps.identity.views import VALIDATION_MESSAGES
from citybrain.apps.warning import pages, publishing, services
from citybrain.apps.warning.anomaly import MESSAGES
from citybrain.apps.warning.schemas import (
    LEVEL_COLORS,
    LEVEL_ROMAN,
    LEVELS,
    Level,
    RuleKind,
    RuleRead,
    RuleSpec,
    RuleUpdate,
)
from citybrain.apps.warning.services import N_
from citybrain.sdk import (
    Actor,
    AppContext,
    BadRequest,
    Ctx,
    CurrentActor,
    Locale,
    ProblemError,
    render,
    utcnow,
)

router = APIRouter()
PAGE_SIZE = 50
REFRESH_SECONDS = 5  # the warning centre's list and map reload this often
QUALITY_FLAGS = 10  # the latest data-quality flags the warning centre lists
MAX_INT = 2**31 - 1
Id = Annotated[int, Path(ge=1, le=MAX_INT)]
FormText = Annotated[str, Form(max_length=20_000)]
# Highest level first, as the pages list them.
LEVELS_DOWN = tuple(reversed(LEVELS))
# Level names shown on the page (msgids; the catalogue gives 红色预警 and so on).
LEVEL_TITLES = {
    "red": N_("Red warning (level I)"),
    "orange": N_("Orange warning (level II)"),
    "yellow": N_("Yellow warning (level III)"),
    "blue": N_("Blue warning (level IV)"),
}
LEVEL_SHORT = {"red": N_("Red"), "orange": N_("Orange"), "yellow": N_("Yellow"), "blue": N_("Blue")}
STATUS_TITLES = {"active": N_("In force"), "lifted": N_("Lifted")}
STEP_TITLES = {
    "raised": N_("Warning raised"),
    "upgraded": N_("Level raised"),
    "downgraded": N_("Level lowered"),
    "acknowledged": N_("Warning acknowledged"),
    "lifted": N_("Warning lifted"),
}
KIND_TITLES = {
    "threshold": N_("Threshold (with duration)"),
    "rate": N_("Rate of change"),
    "absence": N_("No data (absence)"),
    "composite": N_("Composite (several conditions)"),
    "forecast": N_("Forecast"),
    "health": N_("Device health"),
}
# What a device-health warning found (anomaly.py's kinds).
ANOMALY_TITLES = {
    "stuck": N_("Stuck sensor"),
    "drop": N_("Sudden drop"),
    "jump": N_("Sudden jump"),
    "drift": N_("Drift from neighbours"),
    "spike": N_("Spike"),
}
SCOPE_TITLES = {
    "type": N_("Every entity of the type"),
    "entity": N_("One entity"),
    "district": N_("The entities in a district"),
}
OP_CHOICES = (">", ">=", "<", "<=")
EDITOR_KINDS = ("threshold", "rate", "absence", "composite")  # other kinds are edited through the API
CATEGORIES = (
    "Env", "Met", "Geo", "Safety", "Security", "Rescue", "Fire", "Health", "Transport", "Infra", "CBRNE", "Other",
)  # fmt: skip
FIELD_TITLES = {
    "code": N_("Code"),
    "name_zh": N_("Chinese name"),
    "name_en": N_("English name"),
    "kind": N_("Kind"),
    "entity_type": N_("Entity type"),
    "category": N_("CAP category"),
    "description": N_("Description"),
    "scope_kind": N_("Scope"),
    "scope_entity": N_("Entity id"),
    "scope_district": N_("District"),
    "attr": N_("Attribute"),
    "op": N_("Comparison"),
    "for_seconds": N_("Holds for (seconds)"),
    "period_seconds": N_("Period (seconds)"),
    "levels": N_("Levels and thresholds"),
    "conditions_json": N_("Conditions (JSON)"),
    "combine": N_("Combine"),
    "margin": N_("Margin"),
    "hold_seconds": N_("Hold before downgrade (seconds)"),
}
COMPOSITE_EXAMPLE = [
    {
        "attr": "waterLevel",
        "op": ">",
        "levels": [{"level": "yellow", "threshold": 3.5}, {"level": "red", "threshold": 4.2}],
    },
    {
        "attr": "precipitation",
        "op": ">",
        "entity_id": "urn:ngsi-ld:WeatherObserved:mianyang-fucheng",
        "entity_type": "WeatherObserved",
        "levels": [{"level": "yellow", "threshold": 30}, {"level": "red", "threshold": 50}],
    },
]


# --- helpers -----------------------------------------------------------------------------------


def _page(
    request: Request, ctx: AppContext, locale: str, template: str, status_code: int = 200, **values: Any
) -> HTMLResponse:
    """Render a warning page with its helpers (China time, level names and colours)."""
    zone = ZoneInfo(ctx.settings.timezone)

    def when(moment: datetime | None, seconds: bool = True) -> str:
        """A timestamp in China Standard Time."""
        if moment is None:
            return ""
        aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
        return aware.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")

    def name_of(zh: str, en: str) -> str:
        """A name in the reader's language (Chinese when there is no English one)."""
        return (en or zh) if locale == "en" else (zh or en)

    def number(value: Any) -> str:
        """A value as people read it (60.800000000000004 → 60.8)."""
        if isinstance(value, float) and math.isfinite(value):
            return f"{value:.10g}"
        return str(value)

    response = render(
        request,
        template,
        status_code=status_code,
        when=when,
        name_of=name_of,
        number=number,
        colors=LEVEL_COLORS,
        roman=LEVEL_ROMAN,
        levels_down=LEVELS_DOWN,
        level_labels=LEVEL_TITLES,
        level_short=LEVEL_SHORT,
        status_labels=STATUS_TITLES,
        step_labels=STEP_TITLES,
        kind_labels=KIND_TITLES,
        anomaly_labels=ANOMALY_TITLES,
        scope_labels=SCOPE_TITLES,
        now=utcnow(),
        **values,
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def _chart_time(moment: datetime, zone: ZoneInfo) -> int:
    """Milliseconds of the wall-clock time in the zone, read as UTC (the charts draw in UTC mode)."""
    return int(moment.astimezone(zone).replace(tzinfo=UTC).timestamp() * 1000)


def _see_other(path: str, ok: str) -> RedirectResponse:
    return RedirectResponse(f"{path}?ok={ok}", status_code=303)


def _districts(ctx: AppContext) -> list[tuple[str, str, str]]:
    """(code, Chinese name, English name) of every district."""
    return [(d.code, d.name_zh, d.name_en) for d in geo.districts(ctx)]


def _problem_text(ctx: AppContext, locale: str, exc: ProblemError) -> str:
    """A problem's detail in the reader's language."""
    return ctx.i18n.gettext(locale, exc.detail, **exc.params)


# --- the warning centre -------------------------------------------------------------------------


@router.get("")
def warning_home() -> Response:
    """The app's entry: the warning centre."""
    return RedirectResponse("/warning/warnings", status_code=303)


@router.get("/warnings")
def warning_centre(
    request: Request,
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    level: Annotated[Level | Literal[""], Query()] = "",
    state: Annotated[Literal["active", "lifted", "all"], Query(alias="status")] = "active",
    district: Annotated[str, Query(pattern=r"^(\d{6})?$")] = "",
    rule: Annotated[str, Query(max_length=64)] = "",
    kind: Annotated[RuleKind | Literal[""], Query()] = "",
    page_no: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1,
) -> Response:
    """The warning centre: counts by level, the map and the warnings, newest change first (refreshed live)."""
    counts = services.active_counts(ctx, actor)
    result = services.list_warnings(
        ctx,
        actor,
        level=level or None,
        status=None if state == "all" else state,
        district=district or None,
        rule=rule.strip() or None,
        kind=kind or None,
        limit=PAGE_SIZE,
        offset=(page_no - 1) * PAGE_SIZE,
    )
    rules = pages.rule_names(ctx, actor)
    filters = {
        k: v
        for k, v in (
            ("level", level),
            ("status", state),
            ("district", district),
            ("rule", rule.strip()),
            ("kind", kind),
        )
        if v
    }

    def page_url(number: int) -> str:
        """The list's URL at another page, filters kept."""
        return "/warning/warnings?" + urlencode({**filters, "page": number})

    return _page(
        request,
        ctx,
        locale,
        "warning/warnings.html",
        counts=counts,
        result=result,
        filters=filters,
        rules=rules,
        rule_titles={r.id: (r.name_zh, r.name_en) for r in rules},
        districts=_districts(ctx),
        district_names={code: (zh, en) for code, zh, en in _districts(ctx)},
        markers=pages.warning_places(ctx, actor, result.items, rules),
        # a live refresh swaps the results only: the map's districts are drawn once
        map_config=None
        if request.headers.get("hx-request")
        else pages.district_map(ctx) | {"locale": locale},
        page_no=page_no,
        pages=max(1, -(-result.total // PAGE_SIZE)),
        page_url=page_url,
        self_url=page_url(page_no),
        refresh_seconds=REFRESH_SECONDS,
        flags=services.list_quality_flags(ctx, actor, limit=QUALITY_FLAGS),
        messages=MESSAGES,
    )


# --- one warning ---------------------------------------------------------------------------------


def _charts(
    trigger: pages.Trigger, zone: ZoneInfo, raised_at: datetime, lifted_at: datetime | None
) -> list[Any]:
    """The chart of each watched attribute: points, threshold lines and the raising (and lifting) time."""
    charts = []
    for i, series in enumerate(trigger.series):
        charts.append(
            {
                "id": f"trigger-{i}",
                "name": series.attr,
                "entity_id": series.entity_id,
                "access": series.access,
                "points": [[_chart_time(at, zone), value] for at, value in series.points],
                "thresholds": [
                    {"level": level, "value": value, "color": LEVEL_COLORS[level]}
                    for level, value in series.thresholds
                ],
                "raised": _chart_time(raised_at, zone),
                "lifted": _chart_time(lifted_at, zone) if lifted_at else None,
            }
        )
    return charts


def _warning_page(
    request: Request,
    ctx: AppContext,
    actor: Actor,
    locale: str,
    warning_id: int,
    status_code: int = 200,
    error: str | None = None,
) -> HTMLResponse:
    """A warning: its facts, timeline, triggering data and the operator's actions."""
    warning = services.get_warning(ctx, actor, warning_id)
    trigger = pages.trigger(ctx, actor, warning)
    zone = ZoneInfo(ctx.settings.timezone)
    rules = {r.id: r for r in pages.rule_names(ctx, actor)}
    rule = rules.get(warning.rule_id)
    found = geo.district(ctx, warning.district) if warning.district else None
    return _page(
        request,
        ctx,
        locale,
        "warning/warning.html",
        status_code,
        warning=warning,
        rule=rule,
        title=((rule.name_en or rule.name_zh) if locale == "en" else rule.name_zh) if rule else warning.title,
        district_name=(found.name_zh, found.name_en) if found else None,
        trigger=trigger,
        charts=_charts(trigger, zone, warning.raised_at, warning.lifted_at),
        can_ack=actor.can(services.WARNING_ACK),
        can_lift=actor.can(services.WARNING_LIFT),
        can_rules=actor.can(services.RULE_READ),
        finding=_finding(warning.kind, warning.values, warning.entity_id),
        error=error,
        ok=request.query_params.get("ok", ""),
    )


def _finding(kind: str, values: Mapping[str, Any], entity_id: str) -> dict[str, Any] | None:
    """What a device-health warning found: the anomaly, its message template and parameters."""
    anomaly = str(values.get("anomaly", ""))
    if kind != "health" or anomaly not in MESSAGES:
        return None
    params = {k: v for k, v in values.items() if isinstance(v, str | int | float) and k != "message"}
    params |= {"entity": entity_id, "attribute": str(values.get("attr", ""))}
    since = values.get("since")
    try:
        began = datetime.fromisoformat(since) if isinstance(since, str) else None
    except ValueError:
        began = None
    score = values.get("score")
    return {
        "anomaly": anomaly,
        "template": MESSAGES[anomaly],
        "params": params,
        "since": began,
        "score": score if isinstance(score, int | float) else None,
    }


@router.get("/warnings/{warning_id}")
def warning_detail(
    warning_id: Id, request: Request, ctx: Ctx, actor: CurrentActor, locale: Locale
) -> Response:
    """A warning's page."""
    return _warning_page(request, ctx, actor, locale, warning_id)


@router.post("/warnings/{warning_id}/acknowledge")
def warning_acknowledge(
    warning_id: Id,
    request: Request,
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    note: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """Acknowledge an active warning, with an optional note."""
    return _act(
        request,
        ctx,
        actor,
        locale,
        warning_id,
        lambda: services.acknowledge(ctx, actor, warning_id, note.strip()),
        "acknowledged",
    )


@router.post("/warnings/{warning_id}/lift")
def warning_lift(
    warning_id: Id,
    request: Request,
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    note: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """Lift (解除) an active warning, with an optional note."""
    return _act(
        request,
        ctx,
        actor,
        locale,
        warning_id,
        lambda: services.lift(ctx, actor, warning_id, note.strip()),
        "lifted",
    )


def _act(
    request: Request,
    ctx: AppContext,
    actor: Actor,
    locale: str,
    warning_id: int,
    call: Callable[[], object],
    done: str,
) -> Response:
    """Run an operator's action on a warning: back to its page with the outcome, or the page with the error."""
    try:
        call()
    except ProblemError as exc:
        if exc.status in (401, 403, 404):
            raise
        return _warning_page(
            request, ctx, actor, locale, warning_id, exc.status, _problem_text(ctx, locale, exc)
        )
    return _see_other(f"/warning/warnings/{warning_id}", done)


# --- my notifications ----------------------------------------------------------------------------

NOTIFICATIONS_PAGE_SIZE = 20
UnreadOnly = Annotated[Literal["", "1"], Form()]


def _notifications_url(unread: str, page_no: int = 1, ok: str = "") -> str:
    """The notifications page with its filter, page and outcome."""
    query = {k: v for k, v in (("unread", unread), ("page", page_no if page_no > 1 else ""), ("ok", ok)) if v}
    return "/warning/notifications" + (f"?{urlencode(query)}" if query else "")


@router.get("/notifications")
def notification_list(
    request: Request,
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    unread: Annotated[Literal["", "1"], Query()] = "",
    page_no: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1,
) -> Response:
    """My notifications (我的通知): newest first, unread ones marked, only the unread ones if asked."""
    result = publishing.list_notifications(
        ctx,
        actor,
        locale,
        unread=bool(unread),
        limit=NOTIFICATIONS_PAGE_SIZE,
        offset=(page_no - 1) * NOTIFICATIONS_PAGE_SIZE,
    )
    return _page(
        request,
        ctx,
        locale,
        "warning/notifications.html",
        result=result,
        unread=unread,
        unread_total=publishing.unread_count(ctx, actor),
        page_no=page_no,
        pages=max(1, -(-result.total // NOTIFICATIONS_PAGE_SIZE)),
        page_url=lambda number: _notifications_url(unread, number),
        ok=request.query_params.get("ok", ""),
    )


@router.post("/notifications/{notification_id}/open")
def notification_open(notification_id: Id, ctx: Ctx, actor: CurrentActor, locale: Locale) -> Response:
    """Open a notification's warning, marking the notification read."""
    note = publishing.mark_read(ctx, actor, locale, notification_id)
    return RedirectResponse(f"/warning/warnings/{note.warning_id}", status_code=303)


@router.post("/notifications/{notification_id}/read")
def notification_read(
    notification_id: Id,
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    unread: UnreadOnly = "",
    page_no: Annotated[int, Form(alias="page", ge=1, le=100_000)] = 1,
) -> Response:
    """Mark one notification read; back to the list where it was."""
    publishing.mark_read(ctx, actor, locale, notification_id)
    return RedirectResponse(_notifications_url(unread, page_no, "read"), status_code=303)


@router.post("/notifications/read-all")
def notification_read_all(ctx: Ctx, actor: CurrentActor, unread: UnreadOnly = "") -> Response:
    """Mark all my notifications read; back to the list's first page."""
    publishing.mark_all_read(ctx, actor)
    return RedirectResponse(_notifications_url(unread, 1, "read-all"), status_code=303)


# --- rules ---------------------------------------------------------------------------------------


@router.get("/rules")
def rule_list(request: Request, ctx: Ctx, actor: CurrentActor, locale: Locale) -> Response:
    """Every rule with its kind, state and version."""
    rules = services.list_rules(ctx, actor)
    return _page(
        request,
        ctx,
        locale,
        "warning/rules.html",
        rules=rules,
        can_write=actor.can(services.RULE_WRITE),
        ok=request.query_params.get("ok", ""),
    )


def _float(form: Mapping[str, str], name: str, errors: dict[str, str], label: str) -> float | None:
    """A number field (empty: None); an unreadable one notes an error."""
    text = form.get(name, "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        errors.setdefault(label, N_("Enter a number."))
        return None
    if not math.isfinite(value):
        errors.setdefault(label, N_("Enter a number."))
        return None
    return value


def _int(form: Mapping[str, str], name: str, errors: dict[str, str], label: str) -> int | None:
    """A whole-number field (empty: None); an unreadable one notes an error."""
    value = _float(form, name, errors, label)
    if value is None:
        return None
    if value != int(value):
        errors.setdefault(label, N_("Enter a whole number."))
        return None
    return int(value)


def rule_body(form: Mapping[str, str], errors: dict[str, str]) -> dict[str, Any]:
    """The rule definition a submitted rule form describes; fields it cannot read go into `errors`."""
    kind = form.get("kind", "threshold")
    body: dict[str, Any] = {
        "code": form.get("code", "").strip(),
        "name_zh": form.get("name_zh", "").strip(),
        "name_en": form.get("name_en", "").strip(),
        "kind": kind,
        "entity_type": form.get("entity_type", "").strip(),
        "category": form.get("category", "Other") or "Other",
        "description": form.get("description", "").strip(),
    }
    scope: dict[str, Any] = {"kind": form.get("scope_kind", "type") or "type"}
    if scope["kind"] == "entity":
        scope["entity_id"] = form.get("scope_entity", "").strip() or None
    if scope["kind"] == "district":
        scope["district"] = form.get("scope_district", "").strip() or None
    body["scope"] = scope
    if kind == "composite":
        body["combine"] = form.get("combine", "all") or "all"
        text = form.get("conditions_json", "").strip()
        try:
            conditions = json.loads(text) if text else []
        except json.JSONDecodeError:
            errors["conditions_json"] = N_("The conditions are not valid JSON.")
            conditions = []
        if not isinstance(conditions, list):
            errors["conditions_json"] = N_("The conditions must be a JSON list of conditions.")
            conditions = []
        body["conditions"] = conditions
    else:
        condition: dict[str, Any] = {"attr": form.get("attr", "").strip(), "op": form.get("op", ">") or ">"}
        if kind != "absence":
            condition["for_seconds"] = _int(form, "for_seconds", errors, "for_seconds") or 0
        if kind == "rate":
            condition["period_seconds"] = _int(form, "period_seconds", errors, "period_seconds")
        levels = []
        for level in LEVELS_DOWN:
            threshold = _float(form, f"threshold_{level}", errors, "levels")
            if threshold is None:
                continue
            item: dict[str, Any] = {"level": level, "threshold": threshold}
            hold = _int(form, f"for_{level}", errors, "levels")
            if hold is not None and kind != "absence":
                item["for_seconds"] = hold
            levels.append(item)
        if not levels:
            errors.setdefault("levels", N_("Give a threshold for at least one level."))
        condition["levels"] = levels
        body["conditions"] = [condition]
    hysteresis: dict[str, Any] = {}
    margin = _float(form, "margin", errors, "margin")
    if margin is not None:
        hysteresis["margin"] = margin
    hold_seconds = _int(form, "hold_seconds", errors, "hold_seconds")
    if hold_seconds is not None:
        hysteresis["hold_seconds"] = hold_seconds
    body["hysteresis"] = hysteresis
    return body


def field_of(loc: Sequence[Any], kind: str) -> str:
    """The form field a validation error's location names ("" for the rule as a whole)."""
    parts = [str(p) for p in loc if p != "body"]
    if not parts:
        return ""
    head = parts[0]
    if head == "scope":
        return {"entity_id": "scope_entity", "district": "scope_district"}.get(
            parts[1] if len(parts) > 1 else "", "scope_kind"
        )
    if head == "conditions":
        if kind == "composite":
            return "conditions_json"
        tail = parts[2] if len(parts) > 2 else "levels"
        return tail if tail in ("attr", "op", "for_seconds", "period_seconds") else "levels"
    if head == "hysteresis":
        return {"margin": "margin", "margin_ratio": "margin"}.get(
            parts[1] if len(parts) > 1 else "", "hold_seconds"
        )
    return head if head in FIELD_TITLES else ""


# Whole-rule and whole-scope checks name their field in the message (schemas.py's validators).
MESSAGE_FIELDS = (
    ("period_seconds", "period_seconds"),
    ("entity scope", "scope_entity"),
    ("district scope", "scope_district"),
    ("entity_id belongs", "scope_entity"),
    ("district belongs", "scope_district"),
    ("use > or >=", "op"),
    ("entity_id and entity_type", "kind"),
    ("forecast", "kind"),
    ("condition", "levels"),
)


def _message_field(message: str, kind: str) -> str:
    """The field a whole-rule or whole-scope message is about ("" when none)."""
    for words, name in MESSAGE_FIELDS:
        if words in message:
            return "conditions_json" if kind == "composite" and name == "levels" else name
    return ""


def validation_errors(ctx: AppContext, locale: str, exc: ValidationError, kind: str) -> dict[str, str]:
    """A form's pydantic errors, translated, by the field each names."""
    found: dict[str, str] = {}
    for error in exc.errors():
        name = field_of(error["loc"], kind)
        if error["type"] == "value_error" and name in ("", "scope_kind"):
            name = _message_field(str((error.get("ctx") or {}).get("error") or error["msg"]), kind) or name
        label = ctx.i18n.gettext(locale, FIELD_TITLES.get(name, "Value")) if name else ""
        details = dict(error.get("ctx") or {})
        if error["type"] == "value_error":
            text = ctx.i18n.gettext(locale, str(details.get("error") or error["msg"]))
        else:
            template = VALIDATION_MESSAGES.get(str(error["type"]), N_("{field} is invalid."))
            params = {k: v for k, v in details.items() if k not in ("pattern", "error")}
            text = ctx.i18n.gettext(locale, template, **params, field=label or name)
        found.setdefault(name, text)
    return found


def problem_errors(ctx: AppContext, locale: str, exc: ProblemError, kind: str) -> dict[str, str]:
    """A service's refusal, translated, under the field it names (or the rule as a whole)."""
    text = _problem_text(ctx, locale, exc)
    listed = exc.extra.get("errors") or []
    name = field_of(listed[0].get("loc", ()), kind) if listed else ""
    if not name and "code" in exc.params:
        name = "code"
    return {name: text}


def form_of(rule: RuleRead) -> dict[str, str]:
    """A stored rule as the editor's fields."""
    definition = rule.definition
    scope = definition.get("scope") or {}
    conditions = definition.get("conditions") or []
    hysteresis = definition.get("hysteresis") or {}
    form = {
        "code": rule.code,
        "name_zh": str(definition.get("name_zh", "")),
        "name_en": str(definition.get("name_en", "")),
        "kind": str(definition.get("kind", "threshold")),
        "entity_type": str(definition.get("entity_type", "")),
        "category": str(definition.get("category", "Other")),
        "description": str(definition.get("description", "")),
        "scope_kind": str(scope.get("kind", "type")),
        "scope_entity": str(scope.get("entity_id") or ""),
        "scope_district": str(scope.get("district") or ""),
        "combine": str(definition.get("combine", "all")),
        "margin": "" if hysteresis.get("margin") is None else f"{hysteresis['margin']:g}",
        "hold_seconds": str(hysteresis.get("hold_seconds", 300)),
        "conditions_json": json.dumps(conditions, ensure_ascii=False, indent=2),
    }
    if conditions and form["kind"] != "composite":
        cond = conditions[0]
        form |= {
            "attr": str(cond.get("attr", "")),
            "op": str(cond.get("op", ">")),
            "for_seconds": str(cond.get("for_seconds") or 0),
            "period_seconds": str(cond.get("period_seconds") or ""),
        }
        for item in cond.get("levels", ()):
            form[f"threshold_{item['level']}"] = f"{item['threshold']:g}"
            if item.get("for_seconds") is not None:
                form[f"for_{item['level']}"] = str(item["for_seconds"])
    return form


BLANK_FORM = {
    "kind": "threshold",
    "scope_kind": "type",
    "op": ">",
    "for_seconds": "0",
    "category": "Other",
    "combine": "all",
    "hold_seconds": "300",
    "conditions_json": json.dumps(COMPOSITE_EXAMPLE, ensure_ascii=False, indent=2),
}


def _rule_page(
    request: Request,
    ctx: AppContext,
    actor: Actor,
    locale: str,
    rule_id: int | None,
    status_code: int = 200,
    form: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
    dry_run: Any = None,
) -> HTMLResponse:
    """The rule editor: a new rule's form, or a stored rule with its versions and dry run."""
    rule = services.get_rule(ctx, actor, rule_id) if rule_id is not None else None
    if rule is None:
        actor.require(services.RULE_WRITE)
    versions = services.rule_versions(ctx, actor, rule_id) if rule_id is not None else []
    return _page(
        request,
        ctx,
        locale,
        "warning/rule.html",
        status_code,
        rule=rule,
        versions=versions,
        form={**BLANK_FORM, **(form_of(rule) if rule else {}), **(form or {})},
        errors=dict(errors or {}),
        field_titles=FIELD_TITLES,
        districts=_districts(ctx),
        ops=OP_CHOICES,
        categories=CATEGORIES,
        composite_example=json.dumps(COMPOSITE_EXAMPLE, ensure_ascii=False, indent=2),
        can_write=actor.can(services.RULE_WRITE),
        editable=(form or {}).get("kind", rule.kind if rule else "threshold") in EDITOR_KINDS,
        dry_run=dry_run,
        dry_run_days=services.settings(ctx).dry_run_days,
        ok=request.query_params.get("ok", ""),
    )


async def _form(request: Request) -> dict[str, str]:
    """The submitted form's text fields."""
    data = await request.form()
    return {k: v for k, v in data.items() if isinstance(v, str) and k != "csrf_token"}


@router.get("/rules/new")
def rule_new(request: Request, ctx: Ctx, actor: CurrentActor, locale: Locale) -> Response:
    """The form that creates a rule."""
    return _rule_page(request, ctx, actor, locale, None)


def _save(
    request: Request, ctx: AppContext, actor: Actor, locale: str, rule_id: int | None, form: dict[str, str]
) -> Response:
    """Create or update a rule from the form; on failure, show the form with its errors."""
    actor.require(services.RULE_WRITE)
    kind = form.get("kind", "threshold")
    if kind not in EDITOR_KINDS:
        raise BadRequest("Rules of the kind {kind} are edited through the API.", kind=kind)
    errors: dict[str, str] = {}
    body = rule_body(form, errors)
    if rule_id is not None:
        body["code"] = services.get_rule(ctx, actor, rule_id).code
    translated = {k: ctx.i18n.gettext(locale, v) for k, v in errors.items()}
    try:
        spec = RuleSpec.model_validate(body)
    except ValidationError as exc:
        translated = validation_errors(ctx, locale, exc, kind) | translated
    if translated:
        return _rule_page(request, ctx, actor, locale, rule_id, 422, form, translated)
    try:
        if rule_id is None:
            saved = services.create_rule(ctx, actor, spec)
        else:
            # the editor has no field for the department or publicness: they stay as the API set them
            changes = spec.model_dump(
                exclude={"code", "tenant", "forecast", "department", "public"}, mode="json"
            )
            saved = services.update_rule(ctx, actor, rule_id, RuleUpdate.model_validate(changes))
    except ProblemError as exc:
        if exc.status in (401, 403, 404):
            raise
        errors = problem_errors(ctx, locale, exc, kind)
        return _rule_page(request, ctx, actor, locale, rule_id, exc.status, form, errors)
    return _see_other(f"/warning/rules/{saved.id}", "created" if rule_id is None else "updated")


@router.post("/rules")
async def rule_create(request: Request, ctx: Ctx, actor: CurrentActor, locale: Locale) -> Response:
    """Create a rule from the editor's form."""
    form = await _form(request)
    return await asyncio.to_thread(_save, request, ctx, actor, locale, None, form)


@router.get("/rules/{rule_id}")
def rule_detail(rule_id: Id, request: Request, ctx: Ctx, actor: CurrentActor, locale: Locale) -> Response:
    """A rule in the editor, with its versions and the dry run."""
    return _rule_page(request, ctx, actor, locale, rule_id)


@router.post("/rules/{rule_id}")
async def rule_update(
    rule_id: Id, request: Request, ctx: Ctx, actor: CurrentActor, locale: Locale
) -> Response:
    """Save a new version of a rule from the editor's form."""
    form = await _form(request)
    return await asyncio.to_thread(_save, request, ctx, actor, locale, rule_id, form)


@router.post("/rules/{rule_id}/enable")
def rule_enable(rule_id: Id, ctx: Ctx, actor: CurrentActor) -> Response:
    """Enable a rule (also after a run-time failure)."""
    services.set_enabled(ctx, actor, rule_id, True)
    return _see_other(f"/warning/rules/{rule_id}", "enabled")


@router.post("/rules/{rule_id}/disable")
def rule_disable(rule_id: Id, ctx: Ctx, actor: CurrentActor) -> Response:
    """Disable a rule."""
    services.set_enabled(ctx, actor, rule_id, False)
    return _see_other(f"/warning/rules/{rule_id}", "disabled")


@router.post("/rules/{rule_id}/dry-run")
def rule_dry_run(rule_id: Id, request: Request, ctx: Ctx, actor: CurrentActor, locale: Locale) -> Response:
    """Replay the last days of history through the rule: the result alone for htmx, else the whole page."""
    result = services.dry_run(ctx, actor, rule_id)
    if request.headers.get("hx-request"):
        return _page(
            request,
            ctx,
            locale,
            "warning/_dry_run.html",
            dry_run=result,
            dry_run_days=services.settings(ctx).dry_run_days,
        )
    return _rule_page(request, ctx, actor, locale, rule_id, dry_run=result)
