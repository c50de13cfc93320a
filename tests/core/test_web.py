"""The shell's navigation: which entry a page belongs to, and the badges apps declare."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from citybrain.core.web import active_entry


def test_a_page_belongs_to_the_longest_entry_it_lies_under() -> None:
    entries = ["/indicators", "/indicators/brief", "/command", "/geo/map"]
    assert active_entry("/indicators/brief", entries) == "/indicators/brief"
    assert active_entry("/indicators/brief/2026-11-24", entries) == "/indicators/brief"
    assert active_entry("/indicators", entries) == "/indicators"
    assert active_entry("/indicators/screen", entries) == "/indicators"
    assert active_entry("/command/events/12", entries) == "/command"


def test_an_entry_covers_whole_path_segments_only() -> None:
    assert active_entry("/commander", ["/command"]) is None
    assert active_entry("/geo/maps", ["/geo/map"]) is None
    assert active_entry("/geo/map/", ["/geo/map"]) == "/geo/map"
    assert active_entry("/", ["/command"]) is None


def test_one_entry_is_highlighted_on_a_page_under_two(admin_client: TestClient) -> None:
    page = admin_client.get("/indicators/brief", headers={"Accept": "text/html"})
    assert page.status_code == 200, page.text
    active = re.findall(r'class="side-link active" aria-current="page" href="([^"]+)"', page.text)
    assert active == ["/indicators/brief"]
