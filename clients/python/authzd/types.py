"""The results of the client's calls: frozen dataclasses made from authzd's JSON.

Each ``_from_json`` reads the fields it needs with the type the contract
(api/openapi.yaml) gives them and raises :class:`~authzd.errors.MalformedAnswerError`
when one is missing or of another type; fields it does not know are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterator, Mapping, Optional, Union

from .errors import AuthzdError, MalformedAnswerError, error_class

__all__ = [
    "AuditEvent",
    "AuditPage",
    "CheckItem",
    "Decision",
    "EffectivePermissions",
    "Explanation",
    "KeyInfo",
    "Member",
    "MemberPage",
    "Resource",
    "Role",
    "RoleSummary",
    "Tenant",
    "TenantPage",
    "Token",
    "Trace",
    "WhatIfFlip",
    "WhatIfResult",
    "WriteResult",
]


class _Required:
    def __repr__(self) -> str:
        return "required"


_REQUIRED: Any = _Required()


class _Reader:
    """Reads typed fields of one JSON object, naming the answer in its errors."""

    def __init__(self, obj: Any, what: str, status: int, request_id: Optional[str]) -> None:
        self.what, self.status, self.request_id = what, status, request_id
        if not isinstance(obj, dict):
            raise self.bad(f"is {type(obj).__name__}, not a JSON object")
        self.obj: dict[str, Any] = obj

    def bad(self, msg: str) -> MalformedAnswerError:
        return MalformedAnswerError(self.status, MalformedAnswerError.default_code, f"{self.what} {msg}",
                                    self.request_id)

    def _get(self, name: str, kinds: tuple[type, ...], kind_name: str, default: Any) -> Any:
        if name not in self.obj or self.obj[name] is None:
            if default is _REQUIRED:
                raise self.bad(f"has no {name!r}")
            return default
        v = self.obj[name]
        # bool is an int in Python; a number is never a boolean and a boolean never a number here.
        if not isinstance(v, kinds) or (bool not in kinds and isinstance(v, bool)):
            raise self.bad(f"field {name!r} is {json_type(v)}, not {kind_name}")
        return v

    def bool(self, name: str, default: Any = _REQUIRED) -> bool:
        return self._get(name, (bool,), "a boolean", default)

    def str(self, name: str, default: Any = "") -> str:
        return self._get(name, (str,), "a string", default)

    def int(self, name: str, default: Any = _REQUIRED) -> int:
        return self._get(name, (int,), "an integer", default)

    def list(self, name: str, default: Any = _REQUIRED) -> list[Any]:
        return self._get(name, (list,), "an array", default)

    def strs(self, name: str, default: Any = _REQUIRED) -> tuple[str, ...]:
        items = self.list(name, default)
        for v in items:
            if not isinstance(v, str):
                raise self.bad(f"field {name!r} holds {json_type(v)}, not only strings")
        return tuple(items)

    def obj_or_none(self, name: str) -> Optional[dict[str, Any]]:
        return self._get(name, (dict,), "an object", None)

    def time(self, name: str, required: bool = True) -> Optional[datetime]:
        raw = self.str(name, _REQUIRED if required else None)
        if raw is None:
            return None
        try:
            return parse_time(raw)
        except ValueError:
            raise self.bad(f"field {name!r} is not an RFC 3339 time: {raw!r}") from None

    def sub(self, obj: Any, what: str) -> "_Reader":
        return _Reader(obj, what, self.status, self.request_id)


def json_type(v: Any) -> str:
    """The JSON name of a decoded value's type, for messages."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "an array"
    return "an object"


def parse_time(raw: str) -> datetime:
    """Reads an RFC 3339 time as Go writes it (``Z``, up to nanoseconds) into an aware datetime."""
    s = raw.strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    date, sep, rest = s.partition("T")
    if "." in rest:  # Python keeps microseconds; Go may write nanoseconds
        head, _, tail = rest.partition(".")
        digits = len(tail) - len(tail.lstrip("0123456789"))
        frac, zone = tail[:digits], tail[digits:]
        rest = f"{head}.{(frac + '000000')[:6]}{zone}"
    t = datetime.fromisoformat(date + sep + rest)
    if t.tzinfo is None:
        raise ValueError("no time zone")
    return t


@dataclass(frozen=True)
class Resource:
    """One resource of a tenant, such as a bunker: ``Resource("bunker", "b1")``."""

    type: str
    id: str


ResourceLike = Union[Resource, "tuple[str, str]"]


@dataclass(frozen=True)
class Decision:
    """authzd's answer to one check. ``bool(decision)`` is ``decision.allowed``.

    ``checked_at`` is the zed token of the revision the answer was computed at and
    ``decision_id`` the id of its audit event. ``error`` is set only on a
    ``check_bulk`` result authzd could not decide; ``allowed`` is then False and no
    audit event was written.
    """

    allowed: bool
    checked_at: str
    decision_id: str
    error: Optional[AuthzdError] = None

    def __bool__(self) -> bool:
        return self.allowed is True

    @classmethod
    def _from_json(cls, r: _Reader, bulk_item: bool = False) -> "Decision":
        e = r.obj_or_none("error")
        if e is not None:
            er = r.sub(e, f"{r.what} error")
            code, message = er.str("code"), er.str("message")
            err = error_class(0, code)(0, code, message, r.request_id)
            if not bulk_item:
                raise err
            return cls(allowed=False, checked_at="", decision_id="", error=err)
        return cls(allowed=r.bool("allowed"), checked_at=r.str("checked_at"), decision_id=r.str("decision_id"))


@dataclass(frozen=True)
class CheckItem:
    """One question of ``check_bulk``: the arguments of ``check``."""

    tenant_id: str
    user_id: str
    permission: str
    resource: Optional[ResourceLike] = None
    action: Optional[str] = None
    consistency_token: Optional[str] = None


@dataclass(frozen=True)
class Trace:
    """One step of SpiceDB's evaluation of a check."""

    object: str
    permission: str
    kind: str
    subject: str
    result: str
    cached: bool = False
    steps: tuple["Trace", ...] = ()

    @classmethod
    def _from_json(cls, r: _Reader) -> "Trace":
        steps = tuple(cls._from_json(r.sub(s, "trace step")) for s in r.list("steps", []))
        return cls(object=r.str("object"), permission=r.str("permission"), kind=r.str("kind"),
                   subject=r.str("subject"), result=r.str("result"), cached=r.bool("cached", False), steps=steps)


@dataclass(frozen=True)
class Explanation:
    """A decision and why: ``reasons`` a tenant admin understands and SpiceDB's ``trace``.
    ``bool(explanation)`` is ``explanation.allowed``."""

    allowed: bool
    checked_at: str
    decision_id: str
    reasons: tuple[str, ...]
    trace: Optional[Trace]

    def __bool__(self) -> bool:
        return self.allowed is True

    @classmethod
    def _from_json(cls, r: _Reader) -> "Explanation":
        t = r.obj_or_none("trace")
        return cls(allowed=r.bool("allowed"), checked_at=r.str("checked_at"), decision_id=r.str("decision_id"),
                   reasons=r.strs("reasons", []), trace=None if t is None else Trace._from_json(r.sub(t, "trace")))


@dataclass(frozen=True)
class EffectivePermissions:
    """Every tenant-level key a user holds in a tenant, sorted; ``key in result`` works."""

    permissions: tuple[str, ...]
    checked_at: str
    decision_id: str

    def __contains__(self, key: object) -> bool:
        return key in self.permissions

    def __iter__(self) -> Iterator[str]:
        return iter(self.permissions)

    def __len__(self) -> int:
        return len(self.permissions)

    @classmethod
    def _from_json(cls, r: _Reader) -> "EffectivePermissions":
        return cls(permissions=r.strs("permissions"), checked_at=r.str("checked_at"),
                   decision_id=r.str("decision_id"))


@dataclass(frozen=True)
class KeyInfo:
    """One module-permission key of authzd's catalogue."""

    key: str
    module: str
    description: str

    @classmethod
    def _from_json(cls, r: _Reader) -> "KeyInfo":
        return cls(key=r.str("key", _REQUIRED), module=r.str("module"), description=r.str("description"))


@dataclass(frozen=True)
class WriteResult:
    """A provisioning write. Pass ``zed_token`` as ``consistency_token`` so that a check made
    right after sees the write."""

    zed_token: str

    @classmethod
    def _from_json(cls, r: _Reader) -> "WriteResult":
        return cls(zed_token=r.str("zed_token", _REQUIRED))


@dataclass(frozen=True)
class Role:
    """A custom role of a tenant and its keys (authzd does not keep the role's name)."""

    tenant_id: str
    role_id: str
    module_permissions: tuple[str, ...]

    @classmethod
    def _from_json(cls, r: _Reader) -> "Role":
        return cls(tenant_id=r.str("tenant_id", _REQUIRED), role_id=r.str("role_id", _REQUIRED),
                   module_permissions=r.strs("module_permissions"))


@dataclass(frozen=True)
class Token:
    """An API token. ``secret`` (the bearer token) is set only by ``create_token``: keep it,
    it is shown once."""

    id: str
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: Optional[datetime] = None
    secret: Optional[str] = field(default=None, repr=False)

    @classmethod
    def _from_json(cls, r: _Reader) -> "Token":
        return cls(id=r.str("id", _REQUIRED), name=r.str("name"), scopes=r.strs("scopes", []),
                   created_at=r.time("created_at"), revoked_at=r.time("revoked_at", required=False),
                   secret=r.str("token", None))


@dataclass(frozen=True)
class AuditEvent:
    """One row of the audit trail: a decision or a provisioning write."""

    id: str
    occurred_at: datetime
    module: str
    action: str
    actor_user_id: str
    tenant_id: str
    resource_type: str
    resource_id: str
    permission: str
    decision: str
    zed_token: str
    decision_id: str
    client: str
    request_id: str
    details: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def _from_json(cls, r: _Reader) -> "AuditEvent":
        return cls(id=r.str("id", _REQUIRED), occurred_at=r.time("occurred_at"), module=r.str("module"),
                   action=r.str("action"), actor_user_id=r.str("actor_user_id"), tenant_id=r.str("tenant_id"),
                   resource_type=r.str("resource_type"), resource_id=r.str("resource_id"),
                   permission=r.str("permission"), decision=r.str("decision"), zed_token=r.str("zed_token"),
                   decision_id=r.str("decision_id"), client=r.str("client"), request_id=r.str("request_id"),
                   details=r.obj_or_none("details") or {})


@dataclass(frozen=True)
class AuditPage:
    """One page of the audit trail, oldest first; ``next_cursor`` is empty on the last page."""

    events: tuple[AuditEvent, ...]
    next_cursor: str

    @classmethod
    def _from_json(cls, r: _Reader) -> "AuditPage":
        events = tuple(AuditEvent._from_json(r.sub(e, "audit event")) for e in r.list("events"))
        return cls(events=events, next_cursor=r.str("next_cursor"))


@dataclass(frozen=True)
class Tenant:
    """A tenant and the partner it belongs to."""

    tenant_id: str
    partner_id: str

    @classmethod
    def _from_json(cls, r: _Reader) -> "Tenant":
        return cls(tenant_id=r.str("tenant_id", _REQUIRED), partner_id=r.str("partner_id", _REQUIRED))


@dataclass(frozen=True)
class TenantPage:
    """One page of tenants, by tenant id; ``next_cursor`` is empty on the last page."""

    tenants: tuple[Tenant, ...]
    next_cursor: str

    @classmethod
    def _from_json(cls, r: _Reader) -> "TenantPage":
        tenants = tuple(Tenant._from_json(r.sub(t, "tenant")) for t in r.list("tenants"))
        return cls(tenants=tenants, next_cursor=r.str("next_cursor"))


@dataclass(frozen=True)
class RoleSummary:
    """A role of a tenant as ``list_roles`` shows it: built-in or custom, its keys and how many
    users hold it."""

    role_id: str
    name: str
    builtin: bool
    module_permissions: tuple[str, ...]
    member_count: int

    @classmethod
    def _from_json(cls, r: _Reader) -> "RoleSummary":
        return cls(role_id=r.str("role_id", _REQUIRED), name=r.str("name"), builtin=r.bool("builtin"),
                   module_permissions=r.strs("module_permissions"), member_count=r.int("member_count"))


@dataclass(frozen=True)
class Member:
    """A user holding roles in a tenant, and the ids of those roles."""

    user_id: str
    roles: tuple[str, ...]

    @classmethod
    def _from_json(cls, r: _Reader) -> "Member":
        return cls(user_id=r.str("user_id", _REQUIRED), roles=r.strs("roles"))


@dataclass(frozen=True)
class MemberPage:
    """One page of a tenant's members, by user id; ``next_cursor`` is empty on the last page."""

    members: tuple[Member, ...]
    next_cursor: str

    @classmethod
    def _from_json(cls, r: _Reader) -> "MemberPage":
        members = tuple(Member._from_json(r.sub(m, "member")) for m in r.list("members"))
        return cls(members=members, next_cursor=r.str("next_cursor"))


@dataclass(frozen=True)
class WhatIfFlip:
    """A past question whose answer the proposed changes would turn around (``from_`` and ``to``
    are "allowed" or "denied"), with how often it was decided in the window."""

    user_id: str
    permission: str
    resource: Optional[Resource]
    from_: str
    to: str
    decisions: int
    last_decided_at: datetime

    @classmethod
    def _from_json(cls, r: _Reader) -> "WhatIfFlip":
        res = r.obj_or_none("resource")
        resource = None
        if res is not None:
            rr = r.sub(res, f"{r.what} resource")
            resource = Resource(rr.str("type", _REQUIRED), rr.str("id", _REQUIRED))
        return cls(user_id=r.str("user_id", _REQUIRED), permission=r.str("permission", _REQUIRED),
                   resource=resource, from_=r.str("from", _REQUIRED), to=r.str("to", _REQUIRED),
                   decisions=r.int("decisions"), last_decided_at=r.time("last_decided_at"))


@dataclass(frozen=True)
class WhatIfResult:
    """A what-if prediction: ``questions`` answered before and after the changes, the ``flips``
    (allowed-to-denied first), ``skipped`` questions and the revision (``zed_token``) it was made at."""

    questions: int
    flips: tuple[WhatIfFlip, ...]
    skipped: int
    zed_token: str

    @classmethod
    def _from_json(cls, r: _Reader) -> "WhatIfResult":
        flips = tuple(WhatIfFlip._from_json(r.sub(f, "what-if flip")) for f in r.list("flips", []))
        return cls(questions=r.int("questions"), flips=flips, skipped=r.int("skipped"),
                   zed_token=r.str("zed_token", _REQUIRED))
