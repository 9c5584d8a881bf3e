"""FastAPI dependencies that gate routes on authzd.

    gate = Gate(client, current_identity)

    @app.post("/bunkers", dependencies=[Depends(gate.require_permission("scaibunker:create"))])
    async def create(): ...

    @app.post("/bunkers/{bunker_id}/exec")
    async def exec_(bunker_id: str,
                    decision: Decision = Depends(gate.require_resource_permission(
                        "scaibunker:execute", "bunker", "bunker_id", action="bunker.exec"))): ...

What a gated route answers when it does not run the endpoint:

- 401 ``{"detail": {"code": "unauthorized", ...}}``: ``identity`` returned None (no audit row);
- 400 ``invalid``: the resource id is missing or empty;
- 403 ``forbidden``: authzd answered denied;
- 503 ``unavailable`` with ``Retry-After: 1``: any failure of the client (authzd unreachable, a
  timeout, any error answer, the module's own token refused, an answer it cannot read). It is
  logged with the request id. Never a yes.
"""

import inspect
import logging
import uuid
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Optional, Union

from fastapi import Depends, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from .client import AsyncClient, Client
from .keys import validate_key
from .types import Decision, Resource

__all__ = ["Gate", "Identity"]

_log = logging.getLogger("authzd.fastapi")

# The header whose value is sent to authzd as the request id, kept on the decision's audit row.
REQUEST_ID_HEADER = "X-Request-Id"


@dataclass(frozen=True)
class Identity:
    """The authenticated caller: which tenant, which user ("alice" or "sa:ci-bot")."""

    tenant_id: str
    user_id: str


ResourceID = Union[str, Callable[[Request], Union[Optional[str], Awaitable[Optional[str]]]]]


def _detail(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"code": code, "message": message, **extra}


class Gate:
    """Gates routes on authzd checks.

    ``client`` is an :class:`~authzd.AsyncClient` (or a :class:`~authzd.Client`, whose calls run in
    the thread pool). ``identity`` is the app's own dependency that returns an :class:`Identity`, or
    None for an unauthenticated caller. ``consistency_token(request)`` may return a zed token the
    caller sent back (the check is then at least as fresh as that write).
    """

    def __init__(self, client: Union[AsyncClient, Client], identity: Callable[..., Any], *,
                 consistency_token: Optional[Callable[[Request], Optional[str]]] = None,
                 logger: Optional[logging.Logger] = None) -> None:
        if not isinstance(client, (AsyncClient, Client)):
            raise TypeError(f"client must be an authzd.AsyncClient or authzd.Client, not {type(client).__name__}")
        if not callable(identity):
            raise TypeError("identity must be a FastAPI dependency returning Identity or None")
        self._client = client
        self._identity = identity
        self._consistency_token = consistency_token
        self._log = logger or _log

    def require_permission(self, permission: str, *, action: Optional[str] = None) -> Callable[..., Awaitable[Decision]]:
        """A dependency that lets the request through only if the caller holds ``permission`` in
        their tenant; it returns the :class:`~authzd.Decision`. A malformed key raises here."""
        validate_key(permission)
        return self._dependency(permission, None, None, action)

    def require_resource_permission(self, permission: str, resource_type: str, resource_id: ResourceID, *,
                                    action: Optional[str] = None) -> Callable[..., Awaitable[Decision]]:
        """As :meth:`require_permission`, on one resource: ``resource_id`` names the path parameter
        that holds its id, or is a callable ``(request) -> id``."""
        validate_key(permission)
        if not isinstance(resource_type, str) or not resource_type:
            raise ValueError("resource_type is required (e.g. \"bunker\")")
        if not (callable(resource_id) or (isinstance(resource_id, str) and resource_id)):
            raise ValueError("resource_id must name a path parameter or be a callable (request) -> id")
        return self._dependency(permission, resource_type, resource_id, action)

    def _dependency(self, permission: str, resource_type: Optional[str], resource_id: Optional[ResourceID],
                    action: Optional[str]) -> Callable[..., Awaitable[Decision]]:
        gate = self

        async def authorize(request: Request, identity: Any = Depends(self._identity)) -> Decision:
            if identity is None or not getattr(identity, "tenant_id", "") or not getattr(identity, "user_id", ""):
                raise HTTPException(401, _detail("unauthorized", "authentication required"))
            resource = None
            if resource_type is not None:
                rid = await gate._resource_id(request, resource_id)
                if not rid:
                    raise HTTPException(400, _detail("invalid", f"the {resource_type} id is missing"))
                resource = Resource(resource_type, rid)
            request_id = request.headers.get(REQUEST_ID_HEADER) or str(uuid.uuid4())
            token = gate._consistency_token(request) if gate._consistency_token else None
            try:
                decision = await gate._check(identity.tenant_id, identity.user_id, permission, resource=resource,
                                             action=action, consistency_token=token or None, request_id=request_id)
            except Exception as e:  # any failure is a 503, never a yes
                gate._log.warning("authzd could not answer %s (request id %s); refused with 503: %r",
                                  permission, request_id, e, extra={"request_id": request_id})
                raise HTTPException(503, _detail("unavailable", "authorization is unavailable; try again",
                                                 request_id=request_id),
                                    headers={"Retry-After": "1"}) from e
            if not isinstance(decision, Decision) or decision.allowed is not True:
                raise HTTPException(403, _detail("forbidden", "permission denied",
                                                 decision_id=getattr(decision, "decision_id", "")))
            return decision

        authorize.__name__ = f"require_{permission.replace(':', '_')}"
        return authorize

    @staticmethod
    async def _resource_id(request: Request, resource_id: Optional[ResourceID]) -> Optional[str]:
        if isinstance(resource_id, str):
            v = request.path_params.get(resource_id)
            return v if isinstance(v, str) else None
        assert resource_id is not None
        v = resource_id(request)
        if inspect.isawaitable(v):
            v = await v
        return v if isinstance(v, str) else None

    async def _check(self, *args: Any, **kwargs: Any) -> Decision:
        if isinstance(self._client, AsyncClient):
            return await self._client.check(*args, **kwargs)
        return await run_in_threadpool(self._client.check, *args, **kwargs)
