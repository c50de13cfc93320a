"""create_app(settings): the ASGI application, with every enabled app's routes, pages and assets."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

import citybrain
from citybrain.core.apps import AppError, AppSpec
from citybrain.core.context import OutboxRelay
from citybrain.core.i18n import negotiate
from citybrain.core.platform import build_context
from citybrain.core.settings import Settings
from citybrain.core.web import (
    CSRF_COOKIE,
    LANG_COOKIE,
    UI_DIR,
    Templates,
    csrf_protect,
    csrf_token,
    install_error_handlers,
)

LAYERS = ("base", "brain", "application", "entrance")
log = logging.getLogger(__name__)


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
            try:
                yield
            finally:
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
        for prefix, feature in spec.mounts:
            module = spec.module(feature)
            if module is None:
                raise AppError(f"app {spec.label!r} mounts {feature}.py, which does not exist")
            app.include_router(module.router, prefix=prefix, tags=[spec.label], dependencies=protect)
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

    @app.middleware("http")
    async def shell_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        token = csrf_token(request)
        response = await call_next(request)
        if request.cookies.get(CSRF_COOKIE) != token:
            response.set_cookie(
                CSRF_COOKIE, token, samesite="strict", secure=settings.secure_cookies, httponly=False
            )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

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
