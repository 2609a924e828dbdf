"""The admin UI's session: the access token from an OIDC login, in a signed cookie (Secure, HttpOnly, SameSite=Lax)
with a CSRF token every form must echo. Pages declare their roles like API routes and require a second factor."""

from __future__ import annotations

import secrets

from fastapi import Request
from fastapi.security import HTTPAuthorizationCredentials

from mm_pipelines.api.auth import Allow, Caller
from mm_pipelines.errors import Forbidden
from mm_pipelines.identity import signed
from mm_pipelines.identity.tokens import TokenError

SESSION_COOKIE = "mm_session"
LOGIN_COOKIE = "mm_login"
COOKIE_PATH = "/ui"


class LoginRequired(Exception):
    """No valid session: the browser is sent to log in, and back here afterwards."""

    def __init__(self, after: str):
        self.after = after


def session_cookie(secret: bytes, token: str, expires_at: int) -> str:
    return signed.sign(secret, "session", {"token": token, "csrf": secrets.token_urlsafe(24)}, expires_at)


def cookie_options(max_age: int) -> dict:
    return {"max_age": max_age, "path": COOKIE_PATH, "secure": True, "httponly": True, "samesite": "lax"}


class UiAllow(Allow):
    """Allow for pages: the token comes from the session cookie; forms must carry the session's CSRF token."""

    async def __call__(self, request: Request) -> Caller:  # type: ignore[override]
        svc = request.app.state.service
        session = signed.unsign(svc.secret("upload"), "session", request.cookies.get(SESSION_COOKIE, ""))
        if session is None:
            raise LoginRequired(request.url.path)
        try:
            caller = super().__call__(
                request, HTTPAuthorizationCredentials(scheme="Bearer", credentials=session["token"])
            )
        except TokenError:
            raise LoginRequired(request.url.path) from None
        if request.method == "POST":
            form = await request.form()
            if not secrets.compare_digest(str(form.get("csrf", "")), session["csrf"]):
                raise Forbidden("the form's CSRF token does not match your session: reload the page and try again")
        request.state.csrf = session["csrf"]
        return caller


def page(*roles):
    from fastapi import Depends

    return Depends(UiAllow(roles, second_factor=True))
