"""Typed API errors carrying the API's own message."""

from __future__ import annotations


class ExoApiError(Exception):
    """Any failure talking to the Exoscale API."""

    def __init__(self, message: str, *, status: int | None = None, operation: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.operation = operation

    def __str__(self) -> str:
        where = f"{self.operation}: " if self.operation else ""
        code = f" (HTTP {self.status})" if self.status else ""
        return f"{where}{self.message}{code}"


class AuthError(ExoApiError):
    """Credentials rejected (401/403): wrong key, secret or IAM role."""


class NotFoundError(ExoApiError):
    """The resource does not exist in this zone (404, or no pool of that name)."""


class ConflictError(ExoApiError):
    """The resource is busy or in a state that forbids the call (409, or a failed operation)."""


class QuotaExceededError(ConflictError):
    """The organisation's quota forbids the call: waiting will not help, unlike a busy pool.

    Exoscale documents no wording for this answer (DESIGN.md §3, "undocumented"); a refusal
    whose message names the quota (the `quota` word, as the API's `get-quota` resource is
    called) is told apart from a plain 409. A ConflictError still, so older callers that only
    know "conflict" keep working.
    """


class BadRequestError(ExoApiError):
    """The API refused the request as malformed (400/422)."""


class UnavailableError(ExoApiError):
    """The API could not be reached or kept failing (429/5xx/connection) after retries."""


class OperationTimeoutError(ExoApiError):
    """An async operation or a pool state did not settle within the caller's deadline."""
