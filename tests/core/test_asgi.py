"""create_app: independent instances, the shell's pages, assets and problem responses."""

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from citybrain.core.asgi import create_app
from citybrain.core.settings import Settings
from tests.conftest import make_settings


def test_two_instances_in_one_process_are_independent(settings: Settings, tmp_path: Path) -> None:
    from citybrain.core.apps import discover
    from citybrain.core.migrate import upgrade
    from citybrain.core.platform import build_context

    other_settings = make_settings(tmp_path / "other")
    other_ctx = build_context(other_settings)
    upgrade(other_ctx)
    other_ctx.db.dispose()
    first, second = create_app(settings), create_app(other_settings, discover())
    assert first.state.ctx is not second.state.ctx
    assert first.state.ctx.db.url != second.state.ctx.db.url
    assert first.state.ctx.bus is not second.state.ctx.bus
    with TestClient(first) as a, TestClient(second) as b:
        assert a.get("/healthz").json()["status"] == "ok"
        assert b.get("/healthz").json()["status"] == "ok"


def test_unknown_route_is_a_problem_for_api_clients_and_a_page_for_browsers(client: TestClient) -> None:
    api = client.get("/api/identity/nothing-here")
    assert api.status_code == 404
    assert api.headers["content-type"] == "application/problem+json"
    body = api.json()
    assert body["status"] == 404 and body["instance"] == "/api/identity/nothing-here" and body["detail"]
    page = client.get("/nothing-here", headers={"accept": "text/html"})
    assert page.status_code == 404 and "text/html" in page.headers["content-type"]
    assert "<html" in page.text


def test_wrong_method_and_invalid_body_are_problems(client: TestClient) -> None:
    wrong = client.put("/api/identity/me")
    assert wrong.status_code == 405 and wrong.headers["content-type"] == "application/problem+json"
    invalid = client.post("/api/identity/session", json={"username": "x"})
    assert invalid.status_code == 422
    problem = invalid.json()
    assert invalid.headers["content-type"] == "application/problem+json"
    assert any(e["loc"][-1] == "password" for e in problem["errors"])
    assert "password" in problem["detail"]


def test_browser_is_sent_to_sign_in_for_a_protected_page(client: TestClient) -> None:
    response = client.get("/identity/users", headers={"accept": "text/html"}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/identity/login?next=/identity/users")


def test_vendor_assets_are_served_from_the_package(client: TestClient) -> None:
    for path in (
        "/static/core/vendor/htmx/htmx.min.js",
        "/static/core/vendor/echarts/echarts.min.js",
        "/static/core/vendor/leaflet/leaflet.js",
        "/static/core/css/citybrain.css",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        assert len(response.content) > 1000


def test_language_switch_sets_a_cookie_and_returns(client: TestClient) -> None:
    zh = client.get("/")
    assert '<html lang="zh-CN">' in zh.text
    response = client.get("/lang/en?next=/", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/"
    assert '<html lang="en">' in client.get("/").text
    evil = client.get("/lang/en?next=//evil.example", follow_redirects=False)
    assert evil.headers["location"] == "/"


def test_security_headers_and_csrf_cookie(client: TestClient) -> None:
    response = client.get("/")
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert client.cookies.get("cb_csrf")


def test_selected_subset_of_apps(settings: Settings) -> None:
    only = settings.model_copy(update={"apps": ("identity",)})
    app = create_app(only)
    assert [s.label for s in app.state.ctx.apps] == ["identity"]


def test_database_errors_become_problems_not_crashes(settings: Settings) -> None:
    from sqlalchemy.exc import DataError, IntegrityError

    app = create_app(settings)

    def duplicate() -> None:
        raise IntegrityError("INSERT ...", {}, Exception("UNIQUE constraint failed"))

    def overflow() -> None:
        raise DataError("INSERT ...", {}, Exception("integer out of range"))

    app.add_api_route("/api/test/duplicate", duplicate, methods=["GET"])
    app.add_api_route("/api/test/overflow", overflow, methods=["GET"])
    with TestClient(app) as client:
        conflict = client.get("/api/test/duplicate")
        assert conflict.status_code == 409
        assert conflict.headers["content-type"] == "application/problem+json"
        assert "UNIQUE" not in conflict.text  # no database internals leak
        invalid = client.get("/api/test/overflow")
        assert invalid.status_code == 422 and invalid.json()["detail"]


def test_app_lifespans_run_around_the_bus(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    import contextlib
    import types
    from collections.abc import AsyncIterator

    from citybrain.core.apps import AppSpec

    seen: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(ctx: object) -> AsyncIterator[None]:
        seen.append("start")
        yield
        seen.append("stop")

    original = AppSpec.module

    def module(self: AppSpec, feature: str) -> object:
        if self.label == "identity" and feature == "lifespan":
            return types.SimpleNamespace(lifespan=lifespan)
        return original(self, feature)

    monkeypatch.setattr(AppSpec, "module", module)
    with TestClient(create_app(settings)):
        assert seen == ["start"]
    assert seen == ["start", "stop"]


def test_csrf_cookie_is_set_once_and_matches_the_pages_token(client: TestClient) -> None:
    first = client.get("/")
    cookie = first.headers["set-cookie"]
    token = client.cookies.get("cb_csrf")
    assert token and len(token) >= 43
    assert cookie == f"cb_csrf={token}; Path=/; SameSite=strict"  # readable by the page's script
    assert token in first.text  # the page sends it back in the X-CSRF-Token header
    again = client.get("/")
    assert "set-cookie" not in again.headers
    assert token in again.text
    client.cookies.clear()
    renewed = client.get("/", headers={"Cookie": "cb_csrf=; cb_lang=en"})  # an empty token is renewed
    fresh = renewed.headers["set-cookie"].removeprefix("cb_csrf=").split(";")[0]
    assert fresh and fresh != token and fresh in renewed.text


def test_each_browser_gets_its_own_csrf_token(client: TestClient) -> None:
    tokens = set()
    for _ in range(200):
        client.cookies.clear()
        client.get("/healthz")
        tokens.add(client.cookies.get("cb_csrf"))
    assert len(tokens) == 200 and None not in tokens


def test_secure_cookie_setting_marks_the_csrf_cookie_secure(settings: Settings) -> None:
    with TestClient(create_app(settings.model_copy(update={"secure_cookies": True}))) as client:
        cookie = client.get("/healthz").headers["set-cookie"]
    assert cookie.startswith("cb_csrf=") and cookie.endswith("; Path=/; SameSite=strict; Secure")


def test_security_headers_on_every_response_unless_the_route_sets_its_own(settings: Settings) -> None:
    from fastapi.responses import PlainTextResponse

    app = create_app(settings)

    def framed() -> PlainTextResponse:
        return PlainTextResponse("ok", headers={"X-Frame-Options": "SAMEORIGIN"})

    app.add_api_route("/api/test/framed", framed, methods=["GET"])
    with TestClient(app) as client:
        for path in ("/healthz", "/api/identity/nothing-here", "/static/core/css/citybrain.css"):
            response = client.get(path)
            assert response.headers["x-content-type-options"] == "nosniff", path
            assert response.headers["x-frame-options"] == "DENY", path
            assert response.headers["referrer-policy"] == "same-origin", path
        own = client.get("/api/test/framed")
        assert own.headers.get_list("x-frame-options") == ["SAMEORIGIN"]
        assert own.headers["referrer-policy"] == "same-origin"


def test_no_middleware_runs_the_app_in_a_separate_task(app: object) -> None:
    from starlette.middleware.base import BaseHTTPMiddleware

    assert not [m for m in app.user_middleware if issubclass(m.cls, BaseHTTPMiddleware)]  # type: ignore[attr-defined]


def test_demo_runners_run_while_serving_the_demo_and_stop_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from citybrain.core.apps import AppSpec, discover
    from citybrain.core.migrate import upgrade
    from citybrain.core.platform import build_context

    package = tmp_path / "pkgs" / "demoapp"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "demo.py").write_text(
        "import asyncio\n"
        "STATE = []\n"
        "async def run(ctx):\n"
        "    STATE.append('started')\n"
        "    try:\n"
        "        await asyncio.sleep(3600)\n"
        "    finally:\n"
        "        STATE.append('stopped')\n"
    )
    broken = tmp_path / "pkgs" / "brokendemo"
    broken.mkdir()
    (broken / "__init__.py").write_text("")
    (broken / "demo.py").write_text("async def run(ctx):\n    raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    specs = [
        *discover(),
        AppSpec(label="demoapp", title="d", description="", layer="application", package="demoapp"),
        AppSpec(label="brokendemo", title="b", description="", layer="application", package="brokendemo"),
    ]
    for demo, expected in ((False, []), (True, ["started", "stopped"])):
        settings = make_settings(tmp_path / f"demo-{demo}", demo=demo)
        ctx = build_context(settings, specs)
        upgrade(ctx)
        ctx.db.dispose()
        import demoapp.demo  # type: ignore[import-not-found]

        demoapp.demo.STATE.clear()
        with TestClient(create_app(settings, specs)) as client:
            assert client.get("/healthz").json()["status"] == "ok"  # a crashing runner takes nothing down
        runs: list[str] = demoapp.demo.STATE
        assert runs == expected
