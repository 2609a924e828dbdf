"""Errors of the domains the API serves, by what the caller must do about them (the API maps each to a status)."""

from __future__ import annotations


class DomainError(ValueError):
    """A request the domain refuses; the message says what to fix."""

    status = 400
    title = "Bad request"


class Invalid(DomainError):
    status, title = 422, "Invalid input"


class NotFound(DomainError):
    status, title = 404, "Not found"


class Conflict(DomainError):
    """Not possible in the object's current state (an illegal transition, a duplicate)."""

    status, title = 409, "Conflict with the current state"


class TooLarge(DomainError):
    status, title = 413, "Too large"


class Forbidden(DomainError):
    status, title = 403, "Forbidden"


class Unauthorized(DomainError):
    status, title = 401, "Not authenticated"


class Unavailable(DomainError):
    """A service the request depends on (the PII vault) cannot be used now; the message says what to check."""

    status, title = 503, "Service unavailable"
