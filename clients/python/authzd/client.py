"""``Client`` and ``AsyncClient``: the same operations (authzd/_protocol.py), driven by httpx's
blocking and asyncio clients."""

from __future__ import annotations

import asyncio
import inspect
import os
import time
import typing
from typing import Any, AsyncIterator, Awaitable, Callable, Concatenate, Iterator, Optional, ParamSpec, TypeVar
from urllib.parse import urlsplit

import httpx

from . import _protocol as p
from .errors import AuthzdError, MalformedAnswerError
from .types import AuditEvent, AuditPage

P = ParamSpec("P")
T = TypeVar("T")

__all__ = ["AsyncClient", "Client"]

# How long after the call's timeout AsyncClient cancels a call that its per-wait bounds let run on.
_GRACE = 0.2


class _Settings:
    """What both clients keep: where authzd is, how to authenticate, and the policy."""

    def __init__(self, base_url: str, token: str, policy: p.Policy, actor: Optional[str]) -> None:
        u = urlsplit(base_url) if isinstance(base_url, str) else None
        if u is None or u.scheme not in ("http", "https") or not u.netloc:
            raise ValueError(f"base_url {base_url!r} must be http(s)://host[:port]")
        if u.query or u.fragment:
            raise ValueError(f"base_url {base_url!r} may not have a query or fragment")
        if not isinstance(token, str) or not token:
            raise ValueError("token is required")
        if actor is not None and (not isinstance(actor, str) or not actor):
            raise ValueError("actor must be a non-empty user id or None")
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.policy = policy
        self.actor = actor

    def http_request(self, send: p.Send) -> tuple[str, str, dict[str, str], Optional[bytes], httpx.Timeout]:
        req = send.request
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Accept": "application/json",
            "User-Agent": p.USER_AGENT,
            "X-Request-Id": req.request_id,
        }
        content = req.content()
        if content is not None:
            headers["Content-Type"] = "application/json"
        if self.actor:
            headers["X-Actor-User-Id"] = self.actor
        url = self.base_url + req.path
        if req.query:
            url += "?" + str(httpx.QueryParams(list(req.query)))
        return req.method, url, headers, content, httpx.Timeout(send.timeout)


def _limits() -> httpx.Limits:
    # Enough idle connections per host for a busy module talking to one authzd.
    return httpx.Limits(max_connections=256, max_keepalive_connections=64, keepalive_expiry=90.0)


class _Body:
    """Collects an answer's bytes up to the size limit and the deadline."""

    def __init__(self, send: p.Send) -> None:
        self.send = send
        self.chunks: list[bytes] = []
        self.size = 0
        self.deadline = None if send.timeout is None else time.monotonic() + send.timeout

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > p.MAX_ANSWER_BYTES:
            raise MalformedAnswerError(0, MalformedAnswerError.default_code,
                                       f"answer is over {p.MAX_ANSWER_BYTES} bytes", self.send.request.request_id)
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise httpx.ReadTimeout("the call's timeout ran out while reading the answer")
        self.chunks.append(chunk)

    def response(self, r: httpx.Response) -> p.Response:
        headers = {k: r.headers[k] for k in ("x-request-id", "retry-after") if k in r.headers}
        return p.Response(r.status_code, headers, b"".join(self.chunks))


def _return_type(op: Callable[..., Any]) -> Any:
    ret = typing.get_type_hints(op, vars(p)).get("return")
    args = typing.get_args(ret)
    return args[2] if len(args) == 3 else inspect.Signature.empty


def _signature(op: Callable[..., Any], owner: str) -> inspect.Signature:
    sig = inspect.signature(op)
    self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=owner)
    return sig.replace(parameters=[self_param, *sig.parameters.values()], return_annotation=_return_type(op))


def _sync(op: Callable[P, p.Op[T]]) -> Callable[Concatenate["Client", P], T]:
    def method(self: Client, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._call(op(*args, **kwargs))

    method.__name__ = method.__qualname__ = op.__name__
    method.__doc__ = op.__doc__
    method.__signature__ = _signature(op, "Client")  # type: ignore[attr-defined]
    return method


def _async(op: Callable[P, p.Op[T]]) -> Callable[Concatenate["AsyncClient", P], Awaitable[T]]:
    async def method(self: AsyncClient, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._call(op(*args, **kwargs))

    method.__name__ = method.__qualname__ = op.__name__
    method.__doc__ = op.__doc__
    method.__signature__ = _signature(op, "AsyncClient")  # type: ignore[attr-defined]
    return method


class Client:
    """A blocking client of one authzd. Make one per process and share it (threads included): it
    pools connections. ``with Client(...) as c:`` closes it.

    ``timeout`` bounds each call, retries included. Reads, idempotent writes and checks are tried
    up to ``max_attempts`` times on network errors and 429/502/503/504, waiting a random time in
    [0, min(max_backoff, min_backoff * 2^(n-1))] or the answer's ``Retry-After`` (up to 30 s);
    4xx answers are never retried; ``create_token`` only when its connection could not be opened.
    """

    def __init__(self, base_url: str, token: str, *, timeout: Optional[float] = p.DEFAULT_TIMEOUT,
                 max_attempts: int = p.DEFAULT_MAX_ATTEMPTS, min_backoff: float = p.DEFAULT_MIN_BACKOFF,
                 max_backoff: float = p.DEFAULT_MAX_BACKOFF, actor: Optional[str] = None) -> None:
        policy = p.Policy(timeout, max_attempts, min_backoff, max_backoff)
        self._settings = _Settings(base_url, token, policy, actor)
        self._http = httpx.Client(limits=_limits(), follow_redirects=False)
        self._owner = True

    @classmethod
    def from_env(cls, **kwargs: Any) -> "Client":
        """A client of ``AUTHZ_URL`` with ``AUTHZ_TOKEN``, acting for ``AUTHZ_ACTOR`` if set;
        ``kwargs`` as the constructor's."""
        return cls(*_from_env(kwargs), **kwargs)

    def with_actor(self, user_id: str) -> "Client":
        """A copy that sends ``X-Actor-User-Id: user_id`` (recorded with provisioning writes in the
        audit trail). It shares this client's connections; close the original, not the copy."""
        c = object.__new__(type(self))
        s = self._settings
        c._settings = _Settings(s.base_url, s.token, s.policy, user_id)
        c._http, c._owner = self._http, False
        return c

    @property
    def base_url(self) -> str:
        return self._settings.base_url

    def close(self) -> None:
        if self._owner:
            self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"authzd.Client({self._settings.base_url!r})"

    def _call(self, op: p.Op[T]) -> T:
        deadline = self._settings.policy.deadline()
        try:
            req = next(op)
            while True:
                reply = self._exchange(p.exchange(req, self._settings.policy, deadline))
                req = op.send(reply)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        finally:
            op.close()

    def _exchange(self, ex: p.Exchange) -> p.Reply:
        try:
            action = next(ex)
            while True:
                if isinstance(action, p.Sleep):
                    time.sleep(action.seconds)
                    action = ex.send(None)  # type: ignore[arg-type]
                else:
                    action = ex.send(self._send(action))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    def _send(self, send: p.Send) -> p.Response | Exception:
        method, url, headers, content, timeout = self._settings.http_request(send)
        body = _Body(send)
        try:
            with self._http.stream(method, url, headers=headers, content=content, timeout=timeout) as r:
                for chunk in r.iter_bytes():
                    body.add(chunk)
                return body.response(r)
        except AuthzdError as e:
            return e
        except httpx.TransportError as e:
            return e

    # The operations, each from _protocol, with the same signature as AsyncClient's.
    check = _sync(p.check)
    check_bulk = _sync(p.check_bulk)
    explain = _sync(p.explain)
    effective_permissions = _sync(p.effective_permissions)
    keys = _sync(p.keys)
    list_tenants = _sync(p.list_tenants)
    list_roles = _sync(p.list_roles)
    list_members = _sync(p.list_members)
    what_if = _sync(p.what_if)
    put_partner = _sync(p.put_partner)
    delete_partner = _sync(p.delete_partner)
    put_tenant = _sync(p.put_tenant)
    delete_tenant = _sync(p.delete_tenant)
    put_super_admin = _sync(p.put_super_admin)
    delete_super_admin = _sync(p.delete_super_admin)
    put_partner_admin = _sync(p.put_partner_admin)
    delete_partner_admin = _sync(p.delete_partner_admin)
    put_role = _sync(p.put_role)
    get_role = _sync(p.get_role)
    delete_role = _sync(p.delete_role)
    add_role_member = _sync(p.add_role_member)
    remove_role_member = _sync(p.remove_role_member)
    put_resource = _sync(p.put_resource)
    delete_resource = _sync(p.delete_resource)
    create_token = _sync(p.create_token)
    list_tokens = _sync(p.list_tokens)
    revoke_token = _sync(p.revoke_token)
    list_audit_events = _sync(p.list_audit_events)

    def audit_events(self, *, module: Optional[str] = None, tenant_id: Optional[str] = None,
                     actor_user_id: Optional[str] = None, decision: Optional[str] = None,
                     since: Optional[p.datetime] = None, until: Optional[p.datetime] = None,
                     limit: Optional[int] = None, cursor: Optional[str] = None,
                     request_id: Optional[str] = None) -> Iterator[AuditEvent]:
        """Iterates over the audit trail, oldest first, following ``next_cursor`` from ``cursor``
        to the last page (each page one call of ``list_audit_events`` with these filters)."""
        p.audit_query(module, tenant_id, actor_user_id, decision, since, until, limit, cursor)  # fail early
        return self._audit_events(dict(module=module, tenant_id=tenant_id, actor_user_id=actor_user_id,
                                       decision=decision, since=since, until=until, limit=limit,
                                       request_id=request_id), cursor)

    def _audit_events(self, q: dict[str, Any], cursor: Optional[str]) -> Iterator[AuditEvent]:
        while True:
            page: AuditPage = self.list_audit_events(cursor=cursor, **q)
            yield from page.events
            cursor = p.next_cursor(page, cursor)
            if cursor is None:
                return


class AsyncClient:
    """The asyncio twin of :class:`Client`: the same methods with the same signatures, awaited.
    Make one per process and event loop; ``async with AsyncClient(...) as c:`` closes it."""

    def __init__(self, base_url: str, token: str, *, timeout: Optional[float] = p.DEFAULT_TIMEOUT,
                 max_attempts: int = p.DEFAULT_MAX_ATTEMPTS, min_backoff: float = p.DEFAULT_MIN_BACKOFF,
                 max_backoff: float = p.DEFAULT_MAX_BACKOFF, actor: Optional[str] = None) -> None:
        policy = p.Policy(timeout, max_attempts, min_backoff, max_backoff)
        self._settings = _Settings(base_url, token, policy, actor)
        self._http = httpx.AsyncClient(limits=_limits(), follow_redirects=False)
        self._owner = True

    @classmethod
    def from_env(cls, **kwargs: Any) -> "AsyncClient":
        """A client of ``AUTHZ_URL`` with ``AUTHZ_TOKEN``, acting for ``AUTHZ_ACTOR`` if set;
        ``kwargs`` as the constructor's."""
        return cls(*_from_env(kwargs), **kwargs)

    def with_actor(self, user_id: str) -> "AsyncClient":
        """A copy that sends ``X-Actor-User-Id: user_id`` (recorded with provisioning writes in the
        audit trail). It shares this client's connections; close the original, not the copy."""
        c = object.__new__(type(self))
        s = self._settings
        c._settings = _Settings(s.base_url, s.token, s.policy, user_id)
        c._http, c._owner = self._http, False
        return c

    @property
    def base_url(self) -> str:
        return self._settings.base_url

    async def close(self) -> None:
        if self._owner:
            await self._http.aclose()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"authzd.AsyncClient({self._settings.base_url!r})"

    async def _call(self, op: p.Op[T]) -> T:
        policy = self._settings.policy
        deadline = policy.deadline()
        req: Optional[p.Request] = None
        try:
            req = next(op)
            # Each wait of the shared exchange is bounded by the time the call has left; asyncio's
            # bound on the whole call, a little later, stops an answer that trickles in past it
            # (at the same instant, it would race httpx's own timeout).
            async with asyncio.timeout(None if policy.timeout is None else policy.timeout + _GRACE):
                while True:
                    reply = await self._exchange(p.exchange(req, policy, deadline))
                    req = op.send(reply)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        except TimeoutError as e:
            assert req is not None
            raise p.unreachable(req, e, policy.timeout) from e
        finally:
            op.close()

    async def _exchange(self, ex: p.Exchange) -> p.Reply:
        try:
            action = next(ex)
            while True:
                if isinstance(action, p.Sleep):
                    await asyncio.sleep(action.seconds)
                    action = ex.send(None)  # type: ignore[arg-type]
                else:
                    action = ex.send(await self._send(action))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    async def _send(self, send: p.Send) -> p.Response | Exception:
        method, url, headers, content, timeout = self._settings.http_request(send)
        body = _Body(send)
        try:
            req = self._http.build_request(method, url, headers=headers, content=content, timeout=timeout)
            r = await self._http.send(req, stream=True)
            try:
                async for chunk in r.aiter_bytes():
                    body.add(chunk)
            finally:
                await r.aclose()
            return body.response(r)
        except AuthzdError as e:
            return e
        except httpx.TransportError as e:
            return e

    check = _async(p.check)
    check_bulk = _async(p.check_bulk)
    explain = _async(p.explain)
    effective_permissions = _async(p.effective_permissions)
    keys = _async(p.keys)
    list_tenants = _async(p.list_tenants)
    list_roles = _async(p.list_roles)
    list_members = _async(p.list_members)
    what_if = _async(p.what_if)
    put_partner = _async(p.put_partner)
    delete_partner = _async(p.delete_partner)
    put_tenant = _async(p.put_tenant)
    delete_tenant = _async(p.delete_tenant)
    put_super_admin = _async(p.put_super_admin)
    delete_super_admin = _async(p.delete_super_admin)
    put_partner_admin = _async(p.put_partner_admin)
    delete_partner_admin = _async(p.delete_partner_admin)
    put_role = _async(p.put_role)
    get_role = _async(p.get_role)
    delete_role = _async(p.delete_role)
    add_role_member = _async(p.add_role_member)
    remove_role_member = _async(p.remove_role_member)
    put_resource = _async(p.put_resource)
    delete_resource = _async(p.delete_resource)
    create_token = _async(p.create_token)
    list_tokens = _async(p.list_tokens)
    revoke_token = _async(p.revoke_token)
    list_audit_events = _async(p.list_audit_events)

    def audit_events(self, *, module: Optional[str] = None, tenant_id: Optional[str] = None,
                     actor_user_id: Optional[str] = None, decision: Optional[str] = None,
                     since: Optional[p.datetime] = None, until: Optional[p.datetime] = None,
                     limit: Optional[int] = None, cursor: Optional[str] = None,
                     request_id: Optional[str] = None) -> AsyncIterator[AuditEvent]:
        """Iterates (``async for``) over the audit trail, oldest first, following ``next_cursor``
        from ``cursor`` to the last page (each page one call of ``list_audit_events``)."""
        p.audit_query(module, tenant_id, actor_user_id, decision, since, until, limit, cursor)  # fail early
        return self._audit_events(dict(module=module, tenant_id=tenant_id, actor_user_id=actor_user_id,
                                       decision=decision, since=since, until=until, limit=limit,
                                       request_id=request_id), cursor)

    async def _audit_events(self, q: dict[str, Any], cursor: Optional[str]) -> AsyncIterator[AuditEvent]:
        while True:
            page: AuditPage = await self.list_audit_events(cursor=cursor, **q)
            for ev in page.events:
                yield ev
            cursor = p.next_cursor(page, cursor)
            if cursor is None:
                return


def _from_env(kwargs: dict[str, Any]) -> tuple[str, str]:
    missing = [k for k in ("AUTHZ_URL", "AUTHZ_TOKEN") if not os.environ.get(k)]
    if missing:
        raise ValueError(f"set {' and '.join(missing)} (authzd's base URL and an API token)")
    if "actor" not in kwargs and os.environ.get("AUTHZ_ACTOR"):
        kwargs["actor"] = os.environ["AUTHZ_ACTOR"]
    return os.environ["AUTHZ_URL"], os.environ["AUTHZ_TOKEN"]
