"""The platform starts, serves its home page and answers API errors as problem+json."""

from fastapi.testclient import TestClient

from tests.conftest import Seeded


def test_home_page_lists_enabled_apps(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert 'data-app="identity"' in response.text


def test_me_requires_sign_in(client: TestClient) -> None:
    response = client.get("/api/identity/me")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"]


def test_admin_signs_in(admin_client: TestClient, seeded: Seeded) -> None:
    me = admin_client.get("/api/identity/me").json()
    assert me["user"]["id"] == seeded.admin_id
    assert me["permissions"]["identity.user.create"] == "ALL"
