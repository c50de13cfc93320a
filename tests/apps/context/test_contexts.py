"""User @context documents: stored by the broker, served at their URL, used through Link headers."""

from __future__ import annotations

from fastapi.testclient import TestClient

from citybrain.core.context import AppContext
from tests.apps.context.conftest import token_for
from tests.apps.context.test_ngsild import BASE, problem, station
from tests.conftest import Seeded

SDM = "https://smartdatamodels.org/dataModel.Environment/"
DOCUMENT = {"@context": {"pm25": SDM + "pm25", "AirQualityObserved": SDM + "AirQualityObserved"}}


def link(url: str) -> dict[str, str]:
    return {"Link": f'<{url}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'}


def test_store_serve_use_and_delete_a_context(client: TestClient, ctx: AppContext, seeded: Seeded) -> None:
    scopes = ["context.entity.read", "context.entity.write", "context.jsonld.write"]
    client.headers["Authorization"] = f"Bearer {token_for(ctx, seeded, scopes)}"
    stored = client.post(f"{BASE}/jsonldContexts", json=DOCUMENT)
    assert stored.status_code == 201, stored.text
    url = stored.headers["location"]
    assert f"{BASE}/jsonldContexts/" in url
    served = client.get(url, headers={"Authorization": ""})
    assert served.status_code == 200 and served.json() == DOCUMENT
    assert served.headers["content-type"].startswith("application/ld+json")
    assert client.get(f"{BASE}/jsonldContexts").json() == [url]

    created = client.post(f"{BASE}/entities", json=station(), headers=link(url))
    assert created.status_code == 201, created.text
    with_context = client.get(f"{BASE}/entities/{station()['id']}", headers=link(url)).json()
    assert with_context["type"] == "AirQualityObserved" and with_context["pm25"]["value"] == 35.0
    core_only = client.get(f"{BASE}/entities/{station()['id']}").json()
    assert core_only["type"] == SDM + "AirQualityObserved" and SDM + "pm25" in core_only
    by_type = client.get(f"{BASE}/entities", params={"type": SDM + "AirQualityObserved"}).json()
    assert [e["id"] for e in by_type] == [station()["id"]]

    assert client.delete(url).status_code == 204
    problem(client.get(url), 404, "ResourceNotFound")
    problem(client.get(f"{BASE}/entities/{station()['id']}", headers=link(url)), 503, "LdContextNotAvailable")


def test_bad_contexts_and_missing_permission(client: TestClient, ctx: AppContext, seeded: Seeded) -> None:
    client.headers["Authorization"] = f"Bearer {token_for(ctx, seeded, ['context.entity.read'])}"
    assert client.post(f"{BASE}/jsonldContexts", json=DOCUMENT).status_code == 403
    client.headers["Authorization"] = f"Bearer {token_for(ctx, seeded, ['context.jsonld.write'])}"
    problem(client.post(f"{BASE}/jsonldContexts", json={"terms": {}}), 400, "BadRequestData")
    problem(client.post(f"{BASE}/jsonldContexts", json={"@context": 42}), 400, "BadRequestData")
    problem(
        client.post(f"{BASE}/jsonldContexts", content=b"{", headers={"Content-Type": "application/json"}),
        400,
        "InvalidRequest",
    )
    assert (
        client.post(
            f"{BASE}/jsonldContexts", content=b"x", headers={"Content-Type": "text/plain"}
        ).status_code
        == 415
    )
