"""Python client of authzd's HTTP API v1.

``authzd.Client`` (blocking) and ``authzd.AsyncClient`` (asyncio) have the same methods with the
same signatures; both are built on one layer (``authzd._protocol``) that says what each call
sends, how its answer is read and when it is retried. ``authzd.fastapi`` gates FastAPI routes;
``authzd.testing`` is a pytest plugin that runs a real authzd. See docs/python.md.

Importing ``authzd`` never imports FastAPI.
"""

from ._protocol import MAX_BULK_ITEMS
from .client import AsyncClient, Client
from .errors import (
    AuthzdError, ConflictError, ForbiddenError, InternalError, InvalidError, MalformedAnswerError, NotFoundError,
    TooLargeError, UnauthorizedError, UnavailableError, UnreachableError,
)
from .keys import validate_key
from .types import (
    AuditEvent, AuditPage, CheckItem, Decision, EffectivePermissions, Explanation, KeyInfo, Member, MemberPage,
    Resource, Role, RoleSummary, Tenant, TenantPage, Token, Trace, WhatIfFlip, WhatIfResult, WriteResult,
)

__all__ = [
    "MAX_BULK_ITEMS",
    "AsyncClient",
    "AuditEvent",
    "AuditPage",
    "AuthzdError",
    "CheckItem",
    "Client",
    "ConflictError",
    "Decision",
    "EffectivePermissions",
    "Explanation",
    "ForbiddenError",
    "InternalError",
    "InvalidError",
    "KeyInfo",
    "MalformedAnswerError",
    "Member",
    "MemberPage",
    "NotFoundError",
    "Resource",
    "Role",
    "RoleSummary",
    "Tenant",
    "TenantPage",
    "Token",
    "TooLargeError",
    "Trace",
    "UnauthorizedError",
    "UnavailableError",
    "UnreachableError",
    "WhatIfFlip",
    "WhatIfResult",
    "WriteResult",
    "validate_key",
]
