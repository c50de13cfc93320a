"""CAP 1.2 export of warnings and the Atom feed of active ones: structure, level → severity, life-cycle."""

from __future__ import annotations

from datetime import timedelta
from xml.etree import ElementTree as ET

from fastapi.testclient import TestClient

from citybrain.core.context import AppContext
from tests.apps.warning.conftest import FULESHAN, T0, observe, rule_body, settle, station, warnings_of
from tests.apps.warning.test_lifecycle import create_rule

CAP = "{urn:oasis:names:tc:emergency:cap:1.2}"
ATOM = "{http://www.w3.org/2005/Atom}"
REQUIRED = ("identifier", "sender", "sent", "status", "msgType", "scope")
INFO_REQUIRED = ("category", "event", "urgency", "severity", "certainty")


def fetch_cap(api: TestClient, warning_id: int) -> ET.Element:
    """The CAP message of a warning, parsed and checked against CAP 1.2's required structure."""
    response = api.get(f"/api/warning/warnings/{warning_id}.cap")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/cap+xml")
    root = ET.fromstring(response.content)
    assert root.tag == f"{CAP}alert"
    for name in REQUIRED:
        element = root.find(f"{CAP}{name}")
        assert element is not None and element.text, name
    sent = root.findtext(f"{CAP}sent") or ""
    assert sent.endswith("+08:00") and "." not in sent  # CAP date-time: offset, no fractions, no Z
    assert root.findtext(f"{CAP}status") == "Actual" and root.findtext(f"{CAP}scope") == "Public"
    info = root.find(f"{CAP}info")
    assert info is not None
    for name in INFO_REQUIRED:
        assert info.findtext(f"{CAP}{name}"), name
    area = info.find(f"{CAP}area")
    assert area is not None and area.findtext(f"{CAP}areaDesc")
    return root


def test_cap_alert_update_cancel_and_severity(api: TestClient, ctx: AppContext) -> None:
    """Alert when raised (蓝 → Minor), Update after an upgrade (红 → Extreme), Cancel when lifted."""
    sid = station(ctx, "cap-01")
    create_rule(api, rule_body(category="Env"))
    observe(ctx, sid, T0, pm25=80.0)
    settle(ctx)
    (warning,) = warnings_of(api)
    first = fetch_cap(api, warning["id"])
    info = first.find(f"{CAP}info")
    assert info is not None
    assert (first.findtext(f"{CAP}msgType"), info.findtext(f"{CAP}severity")) == ("Alert", "Minor")
    assert (info.findtext(f"{CAP}category"), info.findtext(f"{CAP}urgency")) == ("Env", "Immediate")
    assert info.findtext(f"{CAP}event") == "PM2.5 超标"
    geocode = info.find(f"{CAP}area/{CAP}geocode")
    assert geocode is not None and geocode.findtext(f"{CAP}value") == "510703"
    assert "涪城区" in (info.findtext(f"{CAP}area/{CAP}areaDesc") or "")
    observe(ctx, sid, T0 + timedelta(minutes=1), pm25=300.0)
    settle(ctx)
    update = fetch_cap(api, warning["id"])
    assert update.findtext(f"{CAP}msgType") == "Update"
    assert update.findtext(f"{CAP}info/{CAP}severity") == "Extreme"
    assert update.findtext(f"{CAP}identifier") != first.findtext(f"{CAP}identifier")
    references = update.findtext(f"{CAP}references") or ""
    assert references.split(",")[1] == first.findtext(f"{CAP}identifier")
    observe(ctx, sid, T0 + timedelta(minutes=2), pm25=10.0)
    settle(ctx)
    cancel = fetch_cap(api, warning["id"])
    assert cancel.findtext(f"{CAP}msgType") == "Cancel"
    assert cancel.findtext(f"{CAP}info/{CAP}urgency") == "Past"


def test_severity_of_each_level_and_the_feed(api: TestClient, ctx: AppContext) -> None:
    """Each level's severity; the Atom feed lists the active warnings with links to their CAP messages."""
    expected = {"blue": "Minor", "yellow": "Moderate", "orange": "Severe", "red": "Extreme"}
    values = {"blue": 80.0, "yellow": 120.0, "orange": 160.0, "red": 260.0}
    ids = {level: station(ctx, f"cap-{level}", where=FULESHAN) for level in values}
    create_rule(api, rule_body())
    for level, value in values.items():
        observe(ctx, ids[level], T0, pm25=value)
    settle(ctx)
    by_entity = {w["entity_id"]: w for w in warnings_of(api)}
    for level, sid in ids.items():
        root = fetch_cap(api, by_entity[sid]["id"])
        assert root.findtext(f"{CAP}info/{CAP}severity") == expected[level]
    response = api.get("/api/warning/warnings/feed.atom")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/atom+xml")
    feed = ET.fromstring(response.content)
    entries = feed.findall(f"{ATOM}entry")
    assert len(entries) == 4 and feed.findtext(f"{ATOM}updated")
    links = {e.find(f"{ATOM}link").get("href") for e in entries}  # type: ignore[union-attr]
    assert {f"http://testserver/api/warning/warnings/{w['id']}.cap" for w in by_entity.values()} == links


def test_cap_bad_input(api: TestClient, client: TestClient) -> None:
    """Unknown or malformed ids, and no access without signing in."""
    assert api.get("/api/warning/warnings/999.cap").status_code == 404
    assert api.get("/api/warning/warnings/abc.cap").status_code == 422
    assert api.post("/api/warning/rules", json=rule_body(category="Weather")).status_code == 422
    api.cookies.clear()
    assert client.get("/api/warning/warnings/feed.atom").status_code == 401
    assert client.get("/api/warning/warnings/1.cap").status_code == 401


def test_warning_centre_page(api: TestClient, client: TestClient, ctx: AppContext) -> None:
    """The warning centre lists active warnings with their level colour and counts by level."""
    sid = station(ctx, "page-01")
    create_rule(api, rule_body())
    observe(ctx, sid, T0, pm25=160.0)
    settle(ctx)
    page = api.get("/warning/warnings")
    assert page.status_code == 200
    html = page.text
    assert "预警中心" in html and "橙色预警（II级）" in html and "#f57c00" in html and sid in html
    assert 'data-level="orange"' in html
    lifted = api.get("/warning/warnings", params={"status": "lifted"}).text
    assert sid not in lifted
    assert api.get("/warning/warnings", params={"level": "purple"}).status_code == 422
    api.cookies.clear()
    assert client.get("/warning/warnings", follow_redirects=False).status_code in (303, 401)
