"""create_app(settings): the ASGI application, with every enabled app's routes, pages and assets."""

from __future__ import annotations

import asyncio
import base64
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Coroutine, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import citybrain
from citybrain.core.apps import AppError, AppSpec
from citybrain.core.context import AppContext, OutboxRelay
from citybrain.core.i18n import negotiate
from citybrain.core.ids import random_bytes
from citybrain.core.platform import build_context
from citybrain.core.settings import Settings
from citybrain.core.web import (
    CSRF_COOKIE,
    LANG_COOKIE,
    UI_DIR,
    Templates,
    csrf_protect,
    install_error_handlers,
)

LAYERS = ("base", "brain", "application", "entrance")
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
)
log = logging.getLogger(__name__)


class ShellHeaders:
    """Every HTTP response gets the security headers, and the CSRF cookie when the browser lacks it."""

    def __init__(self, app: ASGIApp, secure_cookies: bool) -> None:
        """Wrap the app; the cookie is marked `Secure` when the settings say so."""
        self.app = app
        self.cookie_attributes = "; Path=/; SameSite=strict" + ("; Secure" if secure_cookies else "")

    def new_token(self) -> str:
        """A fresh random CSRF token (32 bytes, URL-safe base64, like `secrets.token_urlsafe(32)`)."""
        return base64.urlsafe_b64encode(random_bytes(32)).rstrip(b"=").decode("ascii")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Hand the request on; add the headers the response does not set itself to its start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cookie = None
        if not _request_cookie(scope, CSRF_COOKIE):
            # the same token that `csrf_token(request)` gives the pages of this request
            token = self.new_token()
            scope.setdefault("state", {})["csrf"] = token
            cookie = f"{CSRF_COOKIE}={token}{self.cookie_attributes}".encode("latin-1")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                if cookie is not None:
                    headers.append((b"set-cookie", cookie))
                headers += [header for header in SECURITY_HEADERS if header[0] not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _request_cookie(scope: Scope, name: str) -> str | None:
    """One cookie of the request (from its first Cookie header, as Starlette reads it)."""
    for key, value in scope["headers"]:
        if key == b"cookie":
            return cookie_parser(value.decode("latin-1")).get(name)
    return None


def _start_demos(ctx: AppContext) -> list[asyncio.Task[None]]:
    """Start each app's demo runner (`demo.run(ctx)`, a coroutine) as a background task."""
    tasks = []
    for spec in ctx.apps:
        module = spec.module("demo")
        run = getattr(module, "run", None) if module is not None else None
        if run is not None:
            tasks.append(
                asyncio.create_task(_demo_runner(spec.label, run(ctx)), name=f"citybrain-demo-{spec.label}")
            )
    return tasks


async def _demo_runner(label: str, runner: Awaitable[None]) -> None:
    """Run one app's demo runner; a crash is logged and leaves the server running."""
    try:
        await runner
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("the %s demo runner stopped", label)


def create_app(settings: Settings, specs: Sequence[AppSpec] | None = None) -> FastAPI:
    """Build one independent platform instance: nothing is shared with another create_app call."""
    ctx = build_context(settings, specs)
    relay = ctx.relay = OutboxRelay(ctx.db, ctx.bus)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            # Apps' lifespans (bus subscriptions, background workers) start before the bus and stop after it.
            for spec in ctx.apps:
                module = spec.module("lifespan")
                if module is not None:
                    await stack.enter_async_context(module.lifespan(ctx))
            await ctx.bus.start()
            await relay.start()
            demos = _start_demos(ctx) if settings.demo else []
            # What startup built (modules, caches, boundaries) lives as long as the process: the
            # collector need not scan it again on every full collection.
            gc.freeze()
            try:
                yield
            finally:
                for task in demos:
                    task.cancel()
                await asyncio.gather(*demos, return_exceptions=True)
                await _bounded(relay.stop(), "publishing the outbox", settings.shutdown_seconds)
                await _bounded(ctx.bus.stop(), "draining the bus", settings.shutdown_seconds)
        ctx.db.dispose()

    app = FastAPI(
        title="CityBrain 城市智脑",
        version=citybrain.__version__,
        lifespan=lifespan,
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        redoc_url=None,
    )
    app.state.ctx = ctx
    app.state.templates = templates = Templates(ctx)
    install_error_handlers(app)
    protect = [Depends(csrf_protect)]

    # Routes are tried in order: the machine APIs at fixed prefixes (e.g. /ngsi-ld/v1) take the most
    # requests, so they come first; no other prefix overlaps theirs.
    for spec in ctx.apps:
        for prefix, feature in spec.mounts:
            module = spec.module(feature)
            if module is None:
                raise AppError(f"app {spec.label!r} mounts {feature}.py, which does not exist")
            # A machine API whose clients authenticate by a key in each request, never by the browser's
            # session, has no cross-site request to forge (e.g. Open311's form-encoded POST with api_key).
            keyed = getattr(module, "KEY_AUTHENTICATED", False) is True
            app.include_router(
                module.router, prefix=prefix, tags=[spec.label], dependencies=[] if keyed else protect
            )
    app.mount("/static/core", StaticFiles(directory=UI_DIR / "static"), name="static-core")
    for spec in ctx.apps:
        api = spec.module("api")
        if api is not None:
            app.include_router(
                api.router, prefix=f"/api/{spec.label}", tags=[spec.label], dependencies=protect
            )
        views = spec.module("views")
        if views is not None:
            app.include_router(
                views.router, prefix=f"/{spec.label}", include_in_schema=False, dependencies=protect
            )
        if (spec.path / "static").is_dir():
            app.mount(
                f"/static/{spec.label}",
                StaticFiles(directory=spec.path / "static"),
                name=f"static-{spec.label}",
            )

    shell = APIRouter()

    @shell.get("/", response_class=HTMLResponse, include_in_schema=False)
    def home(request: Request) -> Response:
        """The home page: the enabled apps, grouped by the plan's layers."""
        groups = {layer: [s for s in ctx.apps if s.layer == layer] for layer in LAYERS}
        return templates.render(request, "home.html", groups=groups)

    @shell.get("/lang/{code}", include_in_schema=False)
    def switch_language(code: str, request: Request, next: str = "/") -> Response:
        """Switch the interface language and go back."""
        target = next if next.startswith("/") and not next.startswith("//") else "/"
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            LANG_COOKIE,
            negotiate(code, settings.default_locale),
            max_age=365 * 86400,
            samesite="lax",
            secure=settings.secure_cookies,
        )
        return response

    @shell.get("/healthz", include_in_schema=False)
    def healthz() -> JSONResponse:
        """Liveness: the process answers and the database can be read."""
        from sqlalchemy import text

        with ctx.read() as session:
            session.execute(text("SELECT 1"))
        return JSONResponse({"status": "ok", "apps": [s.label for s in ctx.apps]})

    app.include_router(shell)
    app.add_middleware(ShellHeaders, secure_cookies=settings.secure_cookies)
    return app


async def _bounded(step: Coroutine[Any, Any, None], what: str, seconds: float) -> None:
    """Run a shutdown step, giving up (with a warning) after `seconds` so a stop never hangs."""
    try:
        await asyncio.wait_for(step, timeout=seconds)
    except TimeoutError:
        log.warning("shutdown: %s did not finish within %g s; carrying on", what, seconds)


def app_from_env() -> FastAPI:
    """The app for multi-worker serving, built from the environment in each worker."""
    from citybrain.core.settings import load_settings

    return create_app(load_settings())
