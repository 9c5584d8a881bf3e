"""The one layer both clients share: what each call sends, how its answer is read, and when a
failed attempt is tried again.

Nothing here does I/O. An operation is a generator that yields :class:`Request` values and
receives each one's :class:`Reply`; :func:`exchange` turns one request into attempts
(:class:`Send`) and waits (:class:`Sleep`) and decides, from each :class:`Response` or
transport exception, whether to return, retry or raise. ``Client`` drives both with httpx's
blocking client and ``time.sleep``, ``AsyncClient`` with httpx's async client and
``asyncio.sleep``: the two cannot differ in what they send, retry or return.
"""

from __future__ import annotations

import enum
import json
import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Generator, Iterable, Mapping, Optional, TypeVar, Union
from urllib.parse import quote

import httpx

from .errors import AuthzdError, MalformedAnswerError, UnreachableError, error_class
from .types import (
    AuditPage, CheckItem, Decision, EffectivePermissions, Explanation, KeyInfo, MemberPage, Resource, ResourceLike,
    Role, RoleSummary, TenantPage, Token, WhatIfResult, WriteResult, _Reader,
)

T = TypeVar("T")

USER_AGENT = "authzd-client-python/1"

# Defaults of a client; they are the Go client's (client/client.go).
DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_ATTEMPTS = 4
DEFAULT_MIN_BACKOFF = 0.1
DEFAULT_MAX_BACKOFF = 2.0

# A server's Retry-After is honoured up to this many seconds, and the call's timeout still applies.
MAX_RETRY_AFTER = 30.0

# How many checks authzd answers in one check_bulk request; longer lists are split.
MAX_BULK_ITEMS = 100

# How much of an answer is read. The largest (an audit page of 1000 events) are well under it.
MAX_ANSWER_BYTES = 32 << 20

# Statuses that say "not now" rather than "no": retried when the call may be repeated.
RETRY_STATUSES = frozenset({429, 502, 503, 504})


class Repeat(enum.Enum):
    """When a request may be sent again after a failed attempt."""

    ALWAYS = "always"  # reads and idempotent writes: network errors, 429, 502-504
    IF_UNSENT = "if_unsent"  # create_token: only when the connection could not be opened


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # escaped, from build_path
    query: tuple[tuple[str, str], ...] = ()
    body: Any = None  # sent as JSON when not None
    repeat: Repeat = Repeat.ALWAYS
    request_id: str = ""

    def content(self) -> Optional[bytes]:
        if self.body is None:
            return None
        return json.dumps(self.body, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Reply:
    """A 2xx answer."""

    status: int
    body: bytes
    request_id: str

    def json(self, what: str) -> _Reader:
        try:
            data = json.loads(self.body) if self.body.strip() else {}
        except ValueError as e:
            raise MalformedAnswerError(self.status, MalformedAnswerError.default_code,
                                       f"{what} is not JSON: {e}", self.request_id) from None
        return _Reader(data, what, self.status, self.request_id)


@dataclass(frozen=True)
class Response:
    """What one attempt got back, read by a driver."""

    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes


@dataclass(frozen=True)
class Send:
    """Make one attempt of the request, each wait bounded by ``timeout`` seconds."""

    request: Request
    timeout: Optional[float]  # None: no bound (a client made with timeout=None)


@dataclass(frozen=True)
class Sleep:
    seconds: float


# An operation yields Requests and returns its result.
Op = Generator[Request, Reply, T]
# An exchange yields Sends and Sleeps and returns the Reply.
Exchange = Generator[Union[Send, Sleep], Union[Response, Exception], Reply]


@dataclass(frozen=True)
class Policy:
    """A client's bounds: the call's timeout and its retries (full jitter, as the Go client)."""

    timeout: Optional[float] = DEFAULT_TIMEOUT
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    min_backoff: float = DEFAULT_MIN_BACKOFF
    max_backoff: float = DEFAULT_MAX_BACKOFF

    def __post_init__(self) -> None:
        if self.timeout is not None and not self.timeout > 0:
            raise ValueError(f"timeout is {self.timeout!r}; it must be more than 0 seconds (or None)")
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ValueError(f"max_attempts is {self.max_attempts!r}; it must be at least 1")
        if not 0 <= self.min_backoff <= self.max_backoff:
            raise ValueError(f"backoff bounds [{self.min_backoff!r}, {self.max_backoff!r}] are not "
                             "0 <= min_backoff <= max_backoff")

    def backoff(self, retry: int) -> float:
        """The wait before retry number ``retry`` (1-based): uniform in [0, min(max, min*2^(retry-1))]."""
        if self.min_backoff <= 0:
            return 0.0
        ceil = min(self.max_backoff, self.min_backoff * 2.0 ** min(retry - 1, 62))
        return random.uniform(0.0, ceil)

    def deadline(self) -> Optional[float]:
        return None if self.timeout is None else time.monotonic() + self.timeout


def retry_after(value: Optional[str]) -> float:
    """A Retry-After header given in seconds, capped; HTTP dates are rare from authzd's proxies and ignored."""
    if not value:
        return 0.0
    try:
        s = int(value.strip())
    except ValueError:
        return 0.0
    return float(min(max(s, 0), MAX_RETRY_AFTER))


def new_request_id() -> str:
    return str(uuid.uuid4())


def decode_error(resp: Response, request_id: str) -> AuthzdError:
    """The error of a non-2xx answer: authzd's {"error": {...}}, else one derived from the status."""
    rid = resp.headers.get("x-request-id") or request_id
    code, message = "", ""
    try:
        doc = json.loads(resp.body)
        if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
            e = doc["error"]
            if isinstance(e.get("code"), str):
                code = e["code"]
            if isinstance(e.get("message"), str):
                message = e["message"]
            if not resp.headers.get("x-request-id") and isinstance(e.get("request_id"), str) and e["request_id"]:
                rid = e["request_id"]
    except ValueError:
        pass
    cls = error_class(resp.status, code)
    if not code:
        code = cls.default_code or "invalid"
        message = httpx.codes.get_reason_phrase(resp.status) or f"HTTP status {resp.status}"
    return cls(resp.status, code, message, rid)


def unreachable(req: Request, exc: Exception, timeout: Optional[float]) -> UnreachableError:
    if isinstance(exc, (httpx.TimeoutException, TimeoutError)):
        what = f"no answer within the call's timeout ({timeout:g}s)" if timeout else "timed out"
    else:
        what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    e = UnreachableError(0, UnreachableError.default_code, f"{req.method} {req.path}: {what}", req.request_id)
    e.__cause__ = exc
    return e


def _unsent(exc: Exception) -> bool:
    """Whether the request failed before any byte of it left: the connection could not be opened."""
    return isinstance(exc, httpx.ConnectError)


def exchange(req: Request, policy: Policy, deadline: Optional[float]) -> Exchange:
    """Sends ``req`` until it succeeds, may not be retried, or the deadline leaves no room."""
    attempt = 1
    while True:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise unreachable(req, TimeoutError("deadline passed"), policy.timeout)
        outcome = yield Send(req, remaining)
        wait = 0.0
        if isinstance(outcome, Response):
            if 200 <= outcome.status < 300:
                return Reply(outcome.status, outcome.body, outcome.headers.get("x-request-id") or req.request_id)
            err: AuthzdError = decode_error(outcome, req.request_id)
            retry = outcome.status in RETRY_STATUSES and req.repeat is Repeat.ALWAYS
            wait = retry_after(outcome.headers.get("retry-after"))
        elif isinstance(outcome, AuthzdError):  # the driver's own verdict (an answer over the size limit)
            raise outcome
        else:
            err = unreachable(req, outcome, policy.timeout)
            timed_out = isinstance(outcome, (httpx.TimeoutException, TimeoutError))
            retry = not timed_out and (req.repeat is Repeat.ALWAYS or _unsent(outcome))
        if not retry or attempt >= policy.max_attempts:
            raise err
        wait = max(wait, policy.backoff(attempt))
        if deadline is not None and time.monotonic() + wait >= deadline:
            raise err
        if wait > 0:
            yield Sleep(wait)
        attempt += 1


# ---- building requests ----------------------------------------------------------------------

def segment(name: str, value: str) -> str:
    """One path segment: ``value`` percent-encoded as Go's url.PathEscape does (so ``a/b`` stays one
    segment), with dots encoded too so that no id can walk the path; empty is refused."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    if value == "":
        raise ValueError(f"{name} is required (an empty {name} would name another route)")
    return quote(value, safe=":@$&+=").replace(".", "%2E")


def build_path(template: str, **args: str) -> str:
    """Fills ``{name}`` placeholders of ``template`` with escaped segments."""
    out = template
    for name, value in args.items():
        out = out.replace("{" + name + "}", segment(name, value))
    if "{" in out:
        raise AssertionError(f"unfilled placeholder in {out}")
    return out


def _rid(request_id: Optional[str]) -> str:
    if request_id is None:
        return new_request_id()
    if not isinstance(request_id, str) or request_id == "":
        raise ValueError("request_id must be a non-empty str (or None to have one made)")
    return request_id


def _resource(resource: Optional[ResourceLike]) -> Optional[dict[str, str]]:
    if resource is None:
        return None
    if isinstance(resource, Resource):
        rtype, rid = resource.type, resource.id
    else:
        try:
            rtype, rid = resource
        except (TypeError, ValueError):
            raise TypeError("resource must be authzd.Resource(type, id) or a (type, id) tuple") from None
    for name, v in (("resource type", rtype), ("resource id", rid)):
        if not isinstance(v, str) or v == "":
            raise ValueError(f"{name} is required")
    return {"type": rtype, "id": rid}


def _check_body(tenant_id: str, user_id: str, permission: str, resource: Optional[ResourceLike],
                action: Optional[str], consistency_token: Optional[str]) -> dict[str, Any]:
    for name, v in (("tenant_id", tenant_id), ("user_id", user_id), ("permission", permission)):
        if not isinstance(v, str):
            raise TypeError(f"{name} must be a str, not {type(v).__name__}")
        if v == "":
            raise ValueError(f"{name} is required")
    body: dict[str, Any] = {"tenant_id": tenant_id, "user_id": user_id, "permission": permission}
    res = _resource(resource)
    if res is not None:
        body["resource"] = res
    if action:
        body["action"] = action
    if consistency_token:
        body["consistency_token"] = consistency_token
    return body


def _time(name: str, t: Optional[datetime]) -> Optional[str]:
    if t is None:
        return None
    if not isinstance(t, datetime):
        raise TypeError(f"{name} must be a datetime, not {type(t).__name__}")
    if t.tzinfo is None or t.tzinfo.utcoffset(t) is None:
        raise ValueError(f"{name} is a naive datetime; give it a time zone (datetime.now(timezone.utc))")
    return t.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


# ---- the operations: each written once, driven by both clients ------------------------------

def _write(method: str, template: str, body: Any, request_id: Optional[str], **ids: str) -> Op[WriteResult]:
    reply = yield Request(method, build_path(template, **ids), body=body, request_id=_rid(request_id))
    return WriteResult._from_json(reply.json(f"{method} {template} answer"))


def check(tenant_id: str, user_id: str, permission: str, *, resource: Optional[ResourceLike] = None,
          action: Optional[str] = None, consistency_token: Optional[str] = None,
          request_id: Optional[str] = None) -> Op[Decision]:
    """May ``user_id`` ("alice" or "sa:ci-bot") of ``tenant_id`` use the key ``permission``
    ("scaibunker:execute"), on ``resource`` (``Resource("bunker", "b1")``) if given?

    ``action`` ("bunker.exec") is recorded in the decision's audit event; ``consistency_token`` (the
    ``zed_token`` of a write) asks for an answer at least as fresh as that write. Any error raises:
    an error is never a yes, and ``bool(decision)`` is ``decision.allowed``.
    """
    body = _check_body(tenant_id, user_id, permission, resource, action, consistency_token)
    reply = yield Request("POST", "/v1/permissions/check", body=body, request_id=_rid(request_id))
    return Decision._from_json(reply.json("check answer"))


def check_bulk(items: Iterable[CheckItem], *, request_id: Optional[str] = None) -> Op[list[Decision]]:
    """Answers many checks, in order, sending 100 per request. An item authzd could not decide
    comes back denied with ``.error`` set; any other error raises and returns nothing."""
    bodies = []
    for i, it in enumerate(items):
        if not isinstance(it, CheckItem):
            raise TypeError(f"items[{i}] must be an authzd.CheckItem, not {type(it).__name__}")
        bodies.append(_check_body(it.tenant_id, it.user_id, it.permission, it.resource, it.action,
                                  it.consistency_token))
    rid = _rid(request_id)
    out: list[Decision] = []
    for start in range(0, len(bodies), MAX_BULK_ITEMS):
        chunk = bodies[start:start + MAX_BULK_ITEMS]
        reply = yield Request("POST", "/v1/permissions/check_bulk", body={"items": chunk}, request_id=rid)
        r = reply.json("check_bulk answer")
        results = r.list("results")
        if len(results) != len(chunk):
            raise r.bad(f"has {len(results)} results for {len(chunk)} items")
        out.extend(Decision._from_json(r.sub(d, f"check_bulk result {start + i}"), bulk_item=True)
                   for i, d in enumerate(results))
    return out


def explain(tenant_id: str, user_id: str, permission: str, *, resource: Optional[ResourceLike] = None,
            action: Optional[str] = None, consistency_token: Optional[str] = None,
            request_id: Optional[str] = None) -> Op[Explanation]:
    """Checks like ``check`` and says why: ``reasons`` and SpiceDB's ``trace``. Audited like a
    check, with action "explain"; without ``consistency_token`` the check is fully consistent."""
    body = _check_body(tenant_id, user_id, permission, resource, action, consistency_token)
    reply = yield Request("POST", "/v1/permissions/explain", body=body, request_id=_rid(request_id))
    return Explanation._from_json(reply.json("explain answer"))


def effective_permissions(tenant_id: str, user_id: str, *, consistency_token: Optional[str] = None,
                          request_id: Optional[str] = None) -> Op[EffectivePermissions]:
    """Every tenant-level key ``user_id`` holds in ``tenant_id``, sorted."""
    path = build_path("/v1/tenants/{tenant_id}/users/{user_id}/permissions", tenant_id=tenant_id, user_id=user_id)
    query = (("consistency_token", consistency_token),) if consistency_token else ()
    reply = yield Request("GET", path, query=query, request_id=_rid(request_id))
    return EffectivePermissions._from_json(reply.json("effective permissions answer"))


def keys(*, request_id: Optional[str] = None) -> Op[list[KeyInfo]]:
    """The catalogue of module-permission keys authzd knows."""
    reply = yield Request("GET", "/v1/permissions/keys", request_id=_rid(request_id))
    r = reply.json("keys answer")
    return [KeyInfo._from_json(r.sub(k, "key")) for k in r.list("keys")]


def list_tenants(*, cursor: Optional[str] = None, request_id: Optional[str] = None) -> Op[TenantPage]:
    """One page of the tenants the token reaches, by tenant id; ``cursor`` is the previous page's
    ``next_cursor``."""
    query = (("cursor", cursor),) if cursor else ()
    reply = yield Request("GET", "/v1/tenants", query=query, request_id=_rid(request_id))
    return TenantPage._from_json(reply.json("tenants answer"))


def list_roles(tenant_id: str, *, request_id: Optional[str] = None) -> Op[list[RoleSummary]]:
    """Every role of the tenant with its keys and member count: the built-in roles first, then the
    custom roles by id (``NotFoundError`` if there is no such tenant)."""
    path = build_path("/v1/tenants/{tenant_id}/roles", tenant_id=tenant_id)
    reply = yield Request("GET", path, request_id=_rid(request_id))
    r = reply.json("roles answer")
    return [RoleSummary._from_json(r.sub(x, "role")) for x in r.list("roles")]


def list_members(tenant_id: str, *, cursor: Optional[str] = None,
                 request_id: Optional[str] = None) -> Op[MemberPage]:
    """One page of the users holding roles in the tenant, by user id, each with its role ids;
    ``cursor`` is the previous page's ``next_cursor``."""
    path = build_path("/v1/tenants/{tenant_id}/members", tenant_id=tenant_id)
    query = (("cursor", cursor),) if cursor else ()
    reply = yield Request("GET", path, query=query, request_id=_rid(request_id))
    return MemberPage._from_json(reply.json("members answer"))


def what_if(tenant_id: str, *, since: datetime, changes: Iterable[Mapping[str, Any]],
            until: Optional[datetime] = None, consistency_token: Optional[str] = None,
            request_id: Optional[str] = None) -> Op[WhatIfResult]:
    """Which of the tenant's decisions in [``since``, ``until``) would ``changes`` turn around?
    ``changes`` are records of the import format, each with ``op`` ("put" or "delete"), applied in
    order to a private copy: nothing is written but one audit row. ``since`` and ``until`` are aware
    datetimes (a naive one is a ValueError); a bad change is an ``InvalidError`` naming its index
    (``changes[0]: ...``). Needs the scopes check and audit:read. A read, retried as ``check``."""
    if not isinstance(tenant_id, str):
        raise TypeError(f"tenant_id must be a str, not {type(tenant_id).__name__}")
    if tenant_id == "":
        raise ValueError("tenant_id is required")
    if since is None:
        raise ValueError("since is required")
    if isinstance(changes, (str, bytes)) or isinstance(changes, Mapping):
        raise TypeError("changes must be a list of change records, not one")
    records = []
    for i, c in enumerate(changes):
        if not isinstance(c, Mapping):
            raise TypeError(f"changes[{i}] must be a mapping, not {type(c).__name__}")
        records.append(dict(c))
    body: dict[str, Any] = {"tenant_id": tenant_id, "since": _time("since", since), "changes": records}
    if until is not None:
        body["until"] = _time("until", until)
    if consistency_token:
        body["consistency_token"] = consistency_token
    reply = yield Request("POST", "/v1/whatif", body=body, request_id=_rid(request_id))
    return WhatIfResult._from_json(reply.json("what-if answer"))


def put_partner(partner_id: str, *, request_id: Optional[str] = None) -> Op[WriteResult]:
    """Creates a partner; creating one that exists is not an error."""
    return (yield from _write("PUT", "/v1/partners/{partner_id}", {}, request_id, partner_id=partner_id))


def delete_partner(partner_id: str, *, request_id: Optional[str] = None) -> Op[WriteResult]:
    """Deletes a partner; ``ConflictError`` while tenants remain under it."""
    return (yield from _write("DELETE", "/v1/partners/{partner_id}", None, request_id, partner_id=partner_id))


def put_tenant(tenant_id: str, partner_id: str, *, request_id: Optional[str] = None) -> Op[WriteResult]:
    """Creates a tenant under a partner, which must exist (``NotFoundError``)."""
    segment("partner_id", partner_id)
    return (yield from _write("PUT", "/v1/tenants/{tenant_id}", {"partner_id": partner_id}, request_id,
                              tenant_id=tenant_id))


def delete_tenant(tenant_id: str, *, request_id: Optional[str] = None) -> Op[WriteResult]:
    """Offboards a tenant: its role members, custom roles and resources are deleted."""
    return (yield from _write("DELETE", "/v1/tenants/{tenant_id}", None, request_id, tenant_id=tenant_id))


def put_super_admin(user_id: str, *, request_id: Optional[str] = None) -> Op[WriteResult]:
    """Makes ``user_id`` a platform super admin."""
    return (yield from _write("PUT", "/v1/platform/super_admins/{user_id}", None, request_id, user_id=user_id))


def delete_super_admin(user_id: str, *, request_id: Optional[str] = None) -> Op[WriteResult]:
    """Removes ``user_id`` from the platform super admins."""
    return (yield from _write("DELETE", "/v1/platform/super_admins/{user_id}", None, request_id, user_id=user_id))


def put_partner_admin(partner_id: str, user_id: str, *, request_id: Optional[str] = None) -> Op[WriteResult]:
    """Makes ``user_id`` an admin of the partner, and so of all its tenants."""
    return (yield from _write("PUT", "/v1/partners/{partner_id}/admins/{user_id}", None, request_id,
                              partner_id=partner_id, user_id=user_id))


def delete_partner_admin(partner_id: str, user_id: str, *, request_id: Optional[str] = None) -> Op[WriteResult]:
    """Removes ``user_id`` from the partner's admins."""
    return (yield from _write("DELETE", "/v1/partners/{partner_id}/admins/{user_id}", None, request_id,
                              partner_id=partner_id, user_id=user_id))


def put_role(tenant_id: str, role_id: str, *, name: str, module_permissions: Iterable[str],
             request_id: Optional[str] = None) -> Op[WriteResult]:
    """Creates a custom role or replaces its keys (its members stay). Built-in role ids are refused."""
    if isinstance(module_permissions, str):
        raise TypeError("module_permissions must be a list of keys, not one str")
    body = {"name": name, "module_permissions": list(module_permissions)}
    return (yield from _write("PUT", "/v1/tenants/{tenant_id}/roles/{role_id}", body, request_id,
                              tenant_id=tenant_id, role_id=role_id))


def get_role(tenant_id: str, role_id: str, *, request_id: Optional[str] = None) -> Op[Role]:
    """Reads a custom role (``NotFoundError`` if there is none)."""
    path = build_path("/v1/tenants/{tenant_id}/roles/{role_id}", tenant_id=tenant_id, role_id=role_id)
    reply = yield Request("GET", path, request_id=_rid(request_id))
    return Role._from_json(reply.json("role answer"))


def delete_role(tenant_id: str, role_id: str, *, request_id: Optional[str] = None) -> Op[WriteResult]:
    """Deletes a custom role with its members and grants (``NotFoundError`` if there is none)."""
    return (yield from _write("DELETE", "/v1/tenants/{tenant_id}/roles/{role_id}", None, request_id,
                              tenant_id=tenant_id, role_id=role_id))


def add_role_member(tenant_id: str, role_id: str, user_id: str, *,
                    request_id: Optional[str] = None) -> Op[WriteResult]:
    """Adds ``user_id`` to a built-in (tenant_admin, tenant_user, tenant_viewer) or custom role."""
    return (yield from _write("PUT", "/v1/tenants/{tenant_id}/roles/{role_id}/members/{user_id}", None, request_id,
                              tenant_id=tenant_id, role_id=role_id, user_id=user_id))


def remove_role_member(tenant_id: str, role_id: str, user_id: str, *,
                       request_id: Optional[str] = None) -> Op[WriteResult]:
    """Removes ``user_id`` from a role of the tenant."""
    return (yield from _write("DELETE", "/v1/tenants/{tenant_id}/roles/{role_id}/members/{user_id}", None,
                              request_id, tenant_id=tenant_id, role_id=role_id, user_id=user_id))


def put_resource(tenant_id: str, type: str, resource_id: str, owner_id: str, *,
                 request_id: Optional[str] = None) -> Op[WriteResult]:
    """Registers a resource of the tenant ("bunker", "binding") and its owner."""
    segment("owner_id", owner_id)
    return (yield from _write("PUT", "/v1/tenants/{tenant_id}/resources/{type}/{resource_id}",
                              {"owner_id": owner_id}, request_id,
                              tenant_id=tenant_id, type=type, resource_id=resource_id))


def delete_resource(tenant_id: str, type: str, resource_id: str, *,
                    request_id: Optional[str] = None) -> Op[WriteResult]:
    """Deletes a resource of the tenant."""
    return (yield from _write("DELETE", "/v1/tenants/{tenant_id}/resources/{type}/{resource_id}", None,
                              request_id, tenant_id=tenant_id, type=type, resource_id=resource_id))


def create_token(name: str, scopes: Iterable[str], *, request_id: Optional[str] = None) -> Op[Token]:
    """Creates an API token with ``scopes`` ("check", "provision", "audit:read", "admin").
    Keep ``token.secret``: it is shown once. Not idempotent, so it is sent again only when the
    connection could not be opened; after any other failure the token may or may not exist
    (see ``list_tokens``)."""
    if isinstance(scopes, str):
        raise TypeError("scopes must be a list of scopes, not one str")
    reply = yield Request("POST", "/v1/tokens", body={"name": name, "scopes": list(scopes)},
                          repeat=Repeat.IF_UNSENT, request_id=_rid(request_id))
    return Token._from_json(reply.json("token answer"))


def list_tokens(*, request_id: Optional[str] = None) -> Op[list[Token]]:
    """Every API token, revoked ones included, without secrets."""
    reply = yield Request("GET", "/v1/tokens", request_id=_rid(request_id))
    r = reply.json("tokens answer")
    return [Token._from_json(r.sub(t, "token")) for t in r.list("tokens")]


def revoke_token(token_id: str, *, request_id: Optional[str] = None) -> Op[None]:
    """Revokes an API token; requests bearing it are refused from then on."""
    yield Request("DELETE", build_path("/v1/tokens/{token_id}", token_id=token_id), request_id=_rid(request_id))
    return None


def list_audit_events(*, module: Optional[str] = None, tenant_id: Optional[str] = None,
                      actor_user_id: Optional[str] = None, decision: Optional[str] = None,
                      since: Optional[datetime] = None, until: Optional[datetime] = None,
                      limit: Optional[int] = None, cursor: Optional[str] = None,
                      request_id: Optional[str] = None) -> Op[AuditPage]:
    """One page of the audit trail, oldest first. ``since`` and ``until`` are aware datetimes
    (a naive one is a ValueError); ``limit`` is 1 to 1000 (authzd's default: 100); ``cursor`` is
    the previous page's ``next_cursor``."""
    query = audit_query(module, tenant_id, actor_user_id, decision, since, until, limit, cursor)
    reply = yield Request("GET", "/v1/audit/events", query=query, request_id=_rid(request_id))
    return AuditPage._from_json(reply.json("audit page"))


def audit_query(module: Optional[str], tenant_id: Optional[str], actor_user_id: Optional[str],
                decision: Optional[str], since: Optional[datetime], until: Optional[datetime],
                limit: Optional[int], cursor: Optional[str]) -> tuple[tuple[str, str], ...]:
    q: list[tuple[str, str]] = []
    for name, v in (("module", module), ("tenant_id", tenant_id), ("actor_user_id", actor_user_id),
                    ("decision", decision), ("since", _time("since", since)), ("until", _time("until", until))):
        if v:
            q.append((name, v))
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise TypeError(f"limit must be an int, not {type(limit).__name__}")
        q.append(("limit", str(limit)))
    if cursor:
        q.append(("cursor", cursor))
    return tuple(q)


def next_cursor(page: AuditPage, cursor: Optional[str]) -> Optional[str]:
    """The cursor of the page after ``page`` (read with ``cursor``), or None at the end."""
    if not page.next_cursor:
        return None
    if page.next_cursor == cursor:
        raise MalformedAnswerError(200, MalformedAnswerError.default_code, "audit cursor did not advance", None)
    return page.next_cursor


# The public operations, in the order the clients list them; both classes take each from here.
OPERATIONS = (
    check, check_bulk, explain, effective_permissions, keys, list_tenants, list_roles, list_members, what_if,
    put_partner, delete_partner, put_tenant, delete_tenant, put_super_admin, delete_super_admin,
    put_partner_admin, delete_partner_admin, put_role, get_role, delete_role, add_role_member,
    remove_role_member, put_resource, delete_resource, create_token, list_tokens, revoke_token,
    list_audit_events,
)
