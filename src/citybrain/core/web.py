"""The web layer's shared parts: locale, actor, CSRF, problem responses and the Jinja2 shell."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape
from sqlalchemy.exc import DataError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from citybrain.core.context import AppContext
from citybrain.core.errors import Forbidden, ProblemError
from citybrain.core.i18n import LOCALE_NAMES, negotiate
from citybrain.core.permissions import ANONYMOUS, Actor

CSRF_COOKIE = "cb_csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
LANG_COOKIE = "cb_lang"
SESSION_COOKIE = "cb_session"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data", "text/plain")
UI_DIR = Path(__file__).parent / "ui"


def get_ctx(request: Request) -> AppContext:
    """The platform context of the app serving this request."""
    ctx: AppContext = request.app.state.ctx
    return ctx


def request_locale(request: Request) -> str:
    """The request's locale: `?lang=`, then the language cookie, then the platform default."""
    ctx = get_ctx(request)
    return negotiate(
        request.query_params.get("lang") or request.cookies.get(LANG_COOKIE), ctx.settings.default_locale
    )


def _kept(request: Request, name: str) -> Any:
    """A value kept on `request.state`, or None (looked up without raising for a missing one)."""
    return request.scope.get("state", {}).get(name)


def current_actor(request: Request) -> Actor:
    """Who is making the request, as the enabled authenticators say; nobody otherwise."""
    cached = _kept(request, "actor")
    if isinstance(cached, Actor):
        return cached
    ctx = get_ctx(request)
    actor = ANONYMOUS
    for authenticate in ctx.authenticators:
        found = authenticate(ctx, request)
        if found is not None:
            actor = found
            break
    request.state.actor = actor
    return actor


def recalled_actor(request: Request) -> Actor | None:
    """The caller's actor if known without I/O (found before, or recalled from memory); None otherwise."""
    cached = _kept(request, "actor")
    if isinstance(cached, Actor):
        return cached
    ctx = get_ctx(request)
    # An authenticator may offer `recall(ctx, request)`, answering from memory only. Authenticators run
    # in order, so only the first one's recalled actor is certain to be the answer.
    recall = getattr(ctx.authenticators[0], "recall", None) if ctx.authenticators else None
    actor = recall(ctx, request) if recall is not None else None
    if not isinstance(actor, Actor):
        return None
    request.state.actor = actor
    return actor


def csrf_token(request: Request) -> str:
    """The browser's CSRF token (set as a cookie by the middleware on first visit)."""
    token = _kept(request, "csrf") or request.cookies.get(CSRF_COOKIE)
    if not token:
        token = secrets.token_urlsafe(32)
        request.state.csrf = token
    return str(token)


async def csrf_protect(request: Request) -> None:
    """Refuse a browser write whose CSRF token does not match its cookie (double submit)."""
    if request.method not in UNSAFE_METHODS or request.headers.get("authorization"):
        return
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if SESSION_COOKIE not in request.cookies and content_type not in FORM_TYPES:
        return
    expected = request.cookies.get(CSRF_COOKIE, "")
    given = request.headers.get(CSRF_HEADER, "")
    if not given and content_type in FORM_TYPES[:2]:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        given = value if isinstance(value, str) else ""
    if not expected or not hmac.compare_digest(expected, given):
        raise Forbidden("The form expired or came from another site; reload the page and try again.")


Ctx = Annotated[AppContext, Depends(get_ctx)]
CurrentActor = Annotated[Actor, Depends(current_actor)]
Locale = Annotated[str, Depends(request_locale)]


class Templates:
    """The Jinja2 environment over the kernel's and every app's `templates/` folders."""

    def __init__(self, ctx: AppContext) -> None:
        """Build the loader chain: kernel shell first, then each app's templates."""
        loaders = [FileSystemLoader(str(UI_DIR / "templates"))]
        loaders += [
            FileSystemLoader(str(spec.path / "templates"))
            for spec in ctx.apps
            if (spec.path / "templates").is_dir()
        ]
        self.env = Environment(
            loader=ChoiceLoader(loaders), autoescape=select_autoescape(), auto_reload=False
        )
        self.ctx = ctx

    def render(self, request: Request, name: str, /, status_code: int = 200, **values: Any) -> HTMLResponse:
        """Render a page with the shell's context: translation, actor, navigation, CSRF token."""
        locale = request_locale(request)
        translations = self.ctx.i18n.get(locale)
        actor = current_actor(request)
        nav = self.nav(actor)

        def gettext(message: str, **params: Any) -> str:
            text = translations.gettext(message)
            return text.format(**params) if params else text

        context = {
            "request": request,
            "_": gettext,
            "locale": locale,
            "html_lang": "zh-CN" if locale == "zh_CN" else "en",
            "locales": LOCALE_NAMES,
            "actor": actor,
            "nav": nav,
            "active_nav": active_entry(request.url.path, [item["path"] for item in nav]),
            "apps": self.ctx.apps,
            "csrf_token": csrf_token(request),
            "path": request.url.path,
            **values,
        }
        html = self.env.get_template(name).render(context)
        return HTMLResponse(html, status_code=status_code)

    def nav(self, actor: Actor) -> list[dict[str, str]]:
        """Navigation entries of the enabled apps that the actor may open."""
        items = []
        for spec in self.ctx.apps:
            for item in spec.nav:
                if item.permission is None or actor.can(item.permission):
                    items.append(
                        {
                            "title": item.title,
                            "path": item.path,
                            "icon": item.icon,
                            "app": spec.label,
                            "badge": item.badge,
                        }
                    )
        return items


def active_entry(path: str, entries: Sequence[str]) -> str | None:
    """The navigation entry a page belongs to: the longest entry path that is the page's path or a parent of it."""
    found = None
    for entry in entries:
        base = entry.rstrip("/")
        if (path in (entry, base) or path.startswith(base + "/")) and (
            found is None or len(entry) > len(found)
        ):
            found = entry
    return found


def problem_response(
    request: Request, status: int, title: str, detail: str, type_uri: str, extra: dict[str, Any] | None = None
) -> Response:
    """An application/problem+json response; a browser page gets the error page or the login redirect."""
    if _wants_html(request):
        if status == 401:
            target = quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
            return RedirectResponse(f"/identity/login?next={target}", status_code=303)
        templates: Templates = request.app.state.templates
        return templates.render(
            request, "error.html", status_code=status, status=status, title=title, detail=detail
        )
    body = {
        "type": type_uri,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        **(extra or {}),
    }
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def _wants_html(request: Request) -> bool:
    path = request.url.path
    if path.startswith(("/api/", "/static/")) or request.headers.get("hx-request"):
        return False
    return "text/html" in request.headers.get("accept", "")


def install_error_handlers(app: Any) -> None:
    """Turn every error into a problem response with a translated, human-readable detail."""

    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ProblemError)
        ctx = get_ctx(request)
        locale = request_locale(request)
        detail = ctx.i18n.gettext(locale, exc.detail, **exc.params)
        title = ctx.i18n.gettext(locale, exc.title)
        return problem_response(request, exc.status, title, detail, exc.problem_type(), exc.extra)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        ctx = get_ctx(request)
        locale = request_locale(request)
        errors = [
            {
                "loc": [str(p) for p in e.get("loc", ())],
                "msg": str(e.get("msg", "")),
                "type": str(e.get("type", "")),
            }
            for e in exc.errors()
        ]
        where = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors)
        detail = ctx.i18n.gettext(locale, "The request is invalid: {where}", where=where)
        return problem_response(
            request,
            422,
            ctx.i18n.gettext(locale, "Validation failed"),
            detail,
            "https://citybrain.dev/problems/validation-failed",
            {"errors": errors},
        )

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        ctx = get_ctx(request)
        locale = request_locale(request)
        titles = {404: "Not found", 405: "Method not allowed", 401: "Unauthorized", 403: "Forbidden"}
        title = ctx.i18n.gettext(locale, titles.get(exc.status_code, "Error"))
        detail = str(exc.detail) if exc.detail else title
        if exc.status_code == 404:
            detail = ctx.i18n.gettext(locale, "Nothing is found at {path}.", path=request.url.path)
        response = problem_response(
            request, exc.status_code, title, detail, f"https://citybrain.dev/problems/http-{exc.status_code}"
        )
        for key, value in (exc.headers or {}).items():
            response.headers[key] = value
        return response

    async def on_database(request: Request, exc: Exception) -> Response:
        ctx = get_ctx(request)
        locale = request_locale(request)
        if isinstance(exc, IntegrityError):
            title = ctx.i18n.gettext(locale, "Conflict")
            detail = ctx.i18n.gettext(locale, "The change conflicts with existing data.")
            return problem_response(request, 409, title, detail, "https://citybrain.dev/problems/conflict")
        title = ctx.i18n.gettext(locale, "Validation failed")
        detail = ctx.i18n.gettext(locale, "A value is out of the range the database accepts.")
        return problem_response(
            request, 422, title, detail, "https://citybrain.dev/problems/validation-failed"
        )

    app.add_exception_handler(IntegrityError, on_database)
    app.add_exception_handler(DataError, on_database)
    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
