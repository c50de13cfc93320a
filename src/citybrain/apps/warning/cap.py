"""OASIS Common Alerting Protocol 1.2 messages of warnings, and an Atom feed of the active ones.

A warning's state maps onto CAP as follows: active and never changed → msgType Alert; upgraded,
downgraded or acknowledged → Update; lifted → Cancel (urgency Past). The four levels of the Emergency
Response Law (standards README §8.1) map onto CAP severities: 红 I → Extreme, 橙 II → Severe,
黄 III → Moderate, 蓝 IV → Minor. Times are Asia/Shanghai with their offset, as CAP writes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from xml.etree import ElementTree as ET
from zoneinfo import ZoneInfo

from citybrain.apps.warning.schemas import LEVEL_NAMES_ZH, LEVEL_ROMAN, WarningDetail, WarningRead

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
ATOM_NS = "http://www.w3.org/2005/Atom"
LOCAL = ZoneInfo("Asia/Shanghai")
SEVERITY = {"red": "Extreme", "orange": "Severe", "yellow": "Moderate", "blue": "Minor"}
# CAP 1.2 info/category values.
CATEGORIES = (
    "Geo",
    "Met",
    "Safety",
    "Security",
    "Rescue",
    "Fire",
    "Health",
    "Env",
    "Transport",
    "Infra",
    "CBRNE",
    "Other",
)


def cap_time(moment: datetime) -> str:
    """A CAP date-time: local time with its offset, no fractions, never 'Z'."""
    return moment.astimezone(LOCAL).replace(microsecond=0).isoformat()


def identifier(sender: str, warning_id: int, version: int) -> str:
    """A message identifier unique per sender: the warning and how many steps its timeline had."""
    return f"{sender}.warning.{warning_id}.{version}"


def _document(root: ET.Element) -> bytes:
    """The UTF-8 XML document of an element tree."""
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=False)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    element = ET.SubElement(parent, f"{{{CAP_NS}}}{tag}")
    if text is not None:
        element.text = text
    return element


def alert(warning: WarningDetail, *, sender: str, category: str, area: str) -> bytes:
    """The CAP 1.2 alert message of a warning's current state."""
    ET.register_namespace("", CAP_NS)
    steps = [s for s in warning.timeline if s.kind != "acknowledged"] or warning.timeline
    root = ET.Element(f"{{{CAP_NS}}}alert")
    _sub(root, "identifier", identifier(sender, warning.id, len(warning.timeline)))
    _sub(root, "sender", sender)
    _sub(root, "sent", cap_time(warning.timeline[-1].at if warning.timeline else warning.changed_at))
    _sub(root, "status", "Actual")
    if warning.status == "lifted":
        msg_type = "Cancel"
    elif len(warning.timeline) > 1:
        msg_type = "Update"
    else:
        msg_type = "Alert"
    _sub(root, "msgType", msg_type)
    _sub(root, "scope", "Public")
    if msg_type != "Alert":
        first = identifier(sender, warning.id, 1)
        _sub(root, "references", f"{sender},{first},{cap_time(steps[0].at if steps else warning.raised_at)}")
    info = _sub(root, "info")
    _sub(info, "language", "zh-CN")
    _sub(info, "category", category if category in CATEGORIES else "Other")
    _sub(info, "event", warning.title)
    _sub(info, "urgency", "Past" if warning.status == "lifted" else "Immediate")
    _sub(info, "severity", SEVERITY[warning.level])
    _sub(info, "certainty", "Observed")
    _sub(info, "effective", cap_time(warning.raised_at))
    _sub(info, "senderName", "CityBrain")
    _sub(info, "headline", f"{LEVEL_NAMES_ZH[warning.level]} {warning.title}")
    values = "；".join(f"{k} = {v}" for k, v in warning.values.items())
    _sub(
        info,
        "description",
        f"{warning.title}（{area}）：{values}" if values else f"{warning.title}（{area}）",
    )
    for name, value in (
        ("level", warning.level),
        ("levelRoman", LEVEL_ROMAN[warning.level]),
        ("rule", warning.rule_code),
    ):
        parameter = _sub(info, "parameter")
        _sub(parameter, "valueName", name)
        _sub(parameter, "value", value)
    area_element = _sub(info, "area")
    _sub(area_element, "areaDesc", area)
    if warning.district:
        geocode = _sub(area_element, "geocode")
        _sub(geocode, "valueName", "GB/T 2260")  # administrative division code
        _sub(geocode, "value", warning.district)
    return _document(root)


def feed(warnings: Sequence[WarningRead], *, sender: str, title: str, self_url: str, cap_url: str) -> bytes:
    """An Atom feed of warnings, each entry linking to its CAP message (`cap_url` has an {id} field)."""
    ET.register_namespace("", ATOM_NS)

    def sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
        element = ET.SubElement(parent, f"{{{ATOM_NS}}}{tag}")
        if text is not None:
            element.text = text
        return element

    root = ET.Element(f"{{{ATOM_NS}}}feed")
    sub(root, "id", f"urn:{sender}:warning:feed")
    sub(root, "title", title)
    updated = max((w.changed_at for w in warnings), default=None)
    sub(root, "updated", cap_time(updated) if updated else "1970-01-01T08:00:00+08:00")
    sub(root, "link").attrib.update({"rel": "self", "href": self_url})
    author = sub(root, "author")
    sub(author, "name", sender)
    for warning in warnings:
        entry = sub(root, "entry")
        sub(entry, "id", f"urn:{sender}:warning:{warning.id}")
        sub(entry, "title", f"{LEVEL_NAMES_ZH[warning.level]} {warning.title}")
        sub(entry, "updated", cap_time(warning.changed_at))
        sub(entry, "link").attrib.update(
            {"rel": "alternate", "type": "application/cap+xml", "href": cap_url.format(id=warning.id)}
        )
        sub(entry, "summary", f"{warning.title} {warning.entity_id}")
    return _document(root)
