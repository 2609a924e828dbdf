"""Every error is an RFC 9457 problem document saying what to fix: no stack trace, no 5xx for bad input."""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.exceptions import HTTPException

from mm_pipelines.api.ui_session import LoginRequired
from mm_pipelines.config import ConfigError
from mm_pipelines.errors import DomainError
from mm_pipelines.identity.tokens import TokenError

MEDIA_TYPE = "application/problem+json"
log = logging.getLogger("mm.api")


def problem(status: int, title: str, detail: str, request: Request, **extra) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, "instance": request.url.path}
    headers = extra.pop("headers", None)
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _field(loc: tuple) -> str:
    return ".".join(str(p) for p in loc)


def install(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, e: LoginRequired):
        return RedirectResponse(f"/ui/login?{urlencode({'after': e.after})}", status_code=303)

    @app.exception_handler(DomainError)
    async def domain_error(request: Request, e: DomainError):
        headers = {"WWW-Authenticate": "Bearer"} if e.status == 401 else None
        return problem(e.status, e.title, str(e), request, headers=headers)

    @app.exception_handler(TokenError)
    async def token_error(request: Request, e: TokenError):
        return problem(
            401,
            "Not authenticated",
            str(e),
            request,
            headers={"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{e}"'},
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, e: RequestValidationError):
        errors = [
            {"field": _field(err["loc"]), "problem": err["msg"].removeprefix("Value error, ")} for err in e.errors()
        ]
        first = errors[0] if errors else {"field": "request", "problem": "is invalid"}
        detail = f"{first['field']}: {first['problem']}" + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")
        return problem(422, "Invalid input", detail, request, errors=errors)

    @app.exception_handler(ConfigError)
    async def misconfigured(request: Request, e: ConfigError):
        log.error("configuration: %s", e)
        return problem(503, "Service unavailable", f"the service is misconfigured: {e}", request)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, e: HTTPException):
        detail = e.detail if isinstance(e.detail, str) else "the request cannot be served"
        if e.status_code == 404 and detail == "Not Found":
            detail = f"no such endpoint: {request.method} {request.url.path} (see /docs)"
        elif e.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path} (see /docs)"
        return problem(e.status_code, _titles.get(e.status_code, "Error"), detail, request, headers=e.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, e: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return problem(500, "Internal error", "the service failed to handle this request; it was logged", request)


_titles = {400: "Bad request", 401: "Not authenticated", 403: "Forbidden", 404: "Not found", 405: "Method not allowed"}
