"""Route access: every route declares the roles it allows (or that it is public and why); deny by default.

The app refuses to start when a route declares neither, so a new endpoint cannot be reachable by accident.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from fastapi import Depends, Request
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from mm_pipelines.errors import Forbidden, Unauthorized
from mm_pipelines.identity.roles import Role
from mm_pipelines.identity.tokens import Principal

_bearer = HTTPBearer(auto_error=False, description="An access token from the platform's OIDC issuer")


@dataclass(frozen=True)
class Caller:
    """The authenticated principal and the role it acts in on this route (recorded in the audit trail)."""

    principal: Principal
    role: Role

    @property
    def subject(self) -> str:
        return self.principal.subject


class Allow:
    def __init__(self, roles: Iterable[Role], second_factor: bool = False):
        self.roles = tuple(roles)
        self.second_factor = second_factor

    def __call__(self, request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Caller:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise Unauthorized("send an access token: Authorization: Bearer <token> (`mm token` makes one locally)")
        principal = request.app.state.verifier.verify(credentials.credentials)
        acting = next((r for r in self.roles if r in principal.roles), None)
        if acting is None:
            held = ", ".join(sorted(r.value for r in principal.roles)) or "none"
            raise Forbidden(f"this needs the role {' or '.join(r.value for r in self.roles)}; your token has {held}")
        if self.second_factor and not principal.second_factor:
            raise Forbidden(
                "this needs a login with a second factor (the token's amr names none): sign in again with it"
            )
        return Caller(principal, acting)


class Public:
    """A route anyone may call; `why` says what protects it instead (a signature, a signed URL, nothing to hide)."""

    def __init__(self, why: str):
        self.why = why

    def __call__(self) -> None:
        return None


def allow(*roles: Role, second_factor: bool = False):
    return Depends(Allow(roles, second_factor))


def public(why: str):
    return Depends(Public(why))


def declared_access(route: APIRoute) -> Allow | Public | None:
    for dependency in route.dependant.dependencies:
        if isinstance(dependency.call, Allow | Public):
            return dependency.call
    return None


def api_routes(routes) -> list[APIRoute]:
    """Every endpoint, including those of included routers (FastAPI 0.165 keeps an included router as one
    lazily expanded entry of `app.routes`)."""
    found = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "original_router"):
            found += api_routes(route.original_router.routes)
    return found


def check_every_route_declares_access(routes) -> None:
    undeclared = [f"{sorted(r.methods)} {r.path}" for r in api_routes(routes) if declared_access(r) is None]
    if undeclared:
        raise RuntimeError(f"routes without declared roles (deny by default): {', '.join(undeclared)}")
