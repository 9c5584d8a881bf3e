"""Errors of the authzd client.

Every failure of a call is an :class:`AuthzdError`. authzd answers errors as
``{"error": {"code", "message", "request_id"}}``; the class is chosen by the code
and, for an answer without one (a proxy's page), by the HTTP status, as the Go
client does (client/error.go).

``except authzd.UnavailableError`` is the one branch that must fail closed: it
catches authzd's 503 (and a proxy's 429, 502, 504), a refused connection, a
timeout (:class:`UnreachableError`) and an answer the client cannot read
(:class:`MalformedAnswerError`). None of them is ever a decision.
"""

from __future__ import annotations

from typing import Optional

__all__ = [
    "AuthzdError",
    "ConflictError",
    "ForbiddenError",
    "InternalError",
    "InvalidError",
    "MalformedAnswerError",
    "NotFoundError",
    "TooLargeError",
    "UnauthorizedError",
    "UnavailableError",
    "UnreachableError",
]


class AuthzdError(Exception):
    """An answer from authzd (or a proxy in front of it) that is not a success.

    ``status`` is the HTTP status (0 when there was no answer, or for a
    ``check_bulk`` item), ``code`` authzd's error code, ``message`` its message
    (safe to show) and ``request_id`` the X-Request-Id of the call, which finds it
    in authzd's log and audit trail.
    """

    default_status = 0
    default_code = ""

    def __init__(self, status: int, code: str, message: str, request_id: Optional[str] = None) -> None:
        super().__init__(status, code, message, request_id)
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id

    def __str__(self) -> str:
        s = f"authzd: {self.status} {self.code}: {self.message}"
        if self.request_id:
            s += f" (request id {self.request_id})"
        return s

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, "
                f"message={self.message!r}, request_id={self.request_id!r})")


class InvalidError(AuthzdError):
    """400 ``invalid``: the request is malformed or names an unknown key, type or field."""

    default_status, default_code = 400, "invalid"


class UnauthorizedError(AuthzdError):
    """401 ``unauthorized``: no token, an unknown one or a revoked one."""

    default_status, default_code = 401, "unauthorized"


class ForbiddenError(AuthzdError):
    """403 ``forbidden``: the token lacks the scope the call needs."""

    default_status, default_code = 403, "forbidden"


class NotFoundError(AuthzdError):
    """404 ``not_found``: the named partner, tenant, role, resource or token does not exist."""

    default_status, default_code = 404, "not_found"


class ConflictError(AuthzdError):
    """409 ``conflict``: the request contradicts current state (a partner that still has tenants)."""

    default_status, default_code = 409, "conflict"


class TooLargeError(AuthzdError):
    """413 ``too_large``: the request body is over authzd's limit."""

    default_status, default_code = 413, "too_large"


class InternalError(AuthzdError):
    """500 ``internal``: authzd's fault; its log has the details under the request id."""

    default_status, default_code = 500, "internal"


class UnavailableError(AuthzdError):
    """authzd cannot answer now: its 503 ``unavailable``, or a proxy's 429, 502 or 504.

    Never a decision: deny, and try again later.
    """

    default_status, default_code = 503, "unavailable"


class UnreachableError(UnavailableError):
    """No answer at all: the connection was refused or broke, or the call's timeout ran out.

    The httpx exception is the ``__cause__``.
    """

    default_status, default_code = 0, "unreachable"


class MalformedAnswerError(UnavailableError):
    """An answer the client cannot read: not JSON, a missing or mistyped field (``allowed``
    that is not a JSON boolean), or the wrong number of ``check_bulk`` results."""

    default_code = "malformed_answer"


_BY_CODE: dict[str, type[AuthzdError]] = {
    cls.default_code: cls
    for cls in (InvalidError, UnauthorizedError, ForbiddenError, NotFoundError, ConflictError,
                TooLargeError, InternalError, UnavailableError)
}

_BY_STATUS: dict[int, type[AuthzdError]] = {
    400: InvalidError,
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    413: TooLargeError,
    429: UnavailableError,
    502: UnavailableError,
    503: UnavailableError,
    504: UnavailableError,
}


def error_class(status: int, code: str) -> type[AuthzdError]:
    """The class of an error answer: by authzd's code, else by the HTTP status."""
    if code in _BY_CODE:
        return _BY_CODE[code]
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return InternalError
    return InvalidError
