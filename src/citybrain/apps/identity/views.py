"""Identity pages under /identity: sign-in and the administration of departments, users, roles, tokens."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from citybrain.apps.identity import services
from citybrain.apps.identity.api import set_session_cookie
from citybrain.sdk import SESSION_COOKIE, Ctx, CurrentActor, Locale, ProblemError, render

router = APIRouter()


def safe_next(target: str | None) -> str:
    """Only same-site paths are followed after sign-in."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


@router.get("/login")
def login_page(request: Request, next: str = "/") -> Response:
    """The sign-in form."""
    return render(request, "identity/login.html", next=safe_next(next), username="", error=None)


@router.post("/login")
def login_submit(
    request: Request, ctx: Ctx, locale: Locale,
    username: Annotated[str, Form(max_length=64)], password: Annotated[str, Form(max_length=256)],
    next: Annotated[str, Form()] = "/",
) -> Response:
    """Check the credentials; on success set the session cookie and go on."""
    client = request.client.host if request.client else ""
    try:
        signed = services.login(ctx, username, password, client, request.headers.get("user-agent", ""))
    except ProblemError as exc:
        message = ctx.i18n.gettext(locale, exc.detail, **exc.params)
        return render(request, "identity/login.html", status_code=exc.status, next=safe_next(next),
                      username=username, error=message)
    response = RedirectResponse(safe_next(next), status_code=303)
    set_session_cookie(response, ctx, signed)
    return response


@router.post("/logout")
def logout(ctx: Ctx, actor: CurrentActor) -> Response:
    """Close the session and return to the home page."""
    services.logout(ctx, actor)
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
