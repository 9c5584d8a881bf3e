"""authzd.fastapi.Gate in a FastAPI app, against the real authzd: allow, deny, resources, no identity,
and fail closed (a stopped replica, authzd's 503, a wrong module token, an unreadable answer)."""

from __future__ import annotations

from typing import Any, Callable, Iterator, Optional

import pytest
from fastapi import Depends, FastAPI, Header
from fastapi.testclient import TestClient

import authzd
from authzd import Decision
from authzd.fastapi import Gate, Identity

from conftest import new_id
from faultproxy import FaultProxy


def header_identity(x_tenant_id: Optional[str] = Header(None), x_user_id: Optional[str] = Header(None)) -> Optional[Identity]:
    """Stands in for the app's authentication."""
    if not x_tenant_id or not x_user_id:
        return None
    return Identity(x_tenant_id, x_user_id)


class App:
    def __init__(self, client: Any) -> None:
        self.ran: list[str] = []
        app = FastAPI()
        gate = Gate(client, header_identity, consistency_token=lambda r: r.headers.get("X-Authz-Token"))
        if isinstance(client, authzd.AsyncClient):
            app.router.on_shutdown.append(client.close)

        @app.post("/things", status_code=201)
        async def create(decision: Decision = Depends(gate.require_permission("scaibunker:create",
                                                                              action="thing.create"))) -> dict[str, Any]:
            self.ran.append("create")
            return {"decision_id": decision.decision_id, "allowed": decision.allowed}

        @app.post("/bunkers/{bunker_id}/exec",
                  dependencies=[Depends(gate.require_resource_permission("scaibunker:execute", "bunker", "bunker_id",
                                                                         action="bunker.exec"))])
        async def exec_(bunker_id: str) -> dict[str, str]:
            self.ran.append("exec " + bunker_id)
            return {"bunker_id": bunker_id}

        @app.get("/by-query", dependencies=[Depends(gate.require_resource_permission(
            "scaibunker:execute", "bunker", lambda request: request.query_params.get("id")))])
        def by_query() -> dict[str, str]:
            self.ran.append("by-query")
            return {}

        self.app = app


@pytest.fixture(params=["AsyncClient", "Client"])
def make_app(request: pytest.FixtureRequest, authzd_server: Any) -> Iterator[Callable[..., TestClient]]:
    opened: list[Any] = []

    def make(url: Optional[str] = None, token: Optional[str] = None, **kw: Any) -> TestClient:
        cls = authzd.AsyncClient if request.param == "AsyncClient" else authzd.Client
        client = cls(url or authzd_server.url, token or authzd_server.admin_token, **kw)
        a = App(client)
        tc = TestClient(a.app, raise_server_exceptions=True)
        tc.__enter__()
        tc.ran = a.ran  # type: ignore[attr-defined]
        opened.append((tc, client))
        return tc

    yield make
    for tc, client in opened:
        tc.__exit__(None, None, None)
        if isinstance(client, authzd.Client):
            client.close()


def who(tenant_id: str, user_id: str, **extra: str) -> dict[str, str]:
    return {"X-Tenant-Id": tenant_id, "X-User-Id": user_id, **extra}


def test_allow_passes_the_decision_and_the_apps_request_id(make_app: Any, admin: authzd.Client, tenant: Any) -> None:
    t = tenant.tenant_id
    w = admin.add_role_member(t, "tenant_admin", "alice")
    tc = make_app()
    r = tc.post("/things", headers=who(t, "alice", **{"X-Request-Id": "app-req-allow", "X-Authz-Token": w.zed_token}))
    assert r.status_code == 201, r.text
    assert r.json()["allowed"] is True
    assert tc.ran == ["create"]
    [row] = [e for e in admin.audit_events(tenant_id=t, module="scaibunker") if e.decision_id == r.json()["decision_id"]]
    assert row.request_id == "app-req-allow" and row.decision == "allowed" and row.action == "thing.create"


def test_deny_is_403_and_the_endpoint_does_not_run(make_app: Any, admin: authzd.Client, tenant: Any) -> None:
    tc = make_app()
    r = tc.post("/things", headers=who(tenant.tenant_id, "mallory", **{"X-Request-Id": "app-req-deny"}))
    assert r.status_code == 403
    assert r.json()["detail"]["code"] == "forbidden"
    assert tc.ran == []
    rows = [e for e in admin.audit_events(tenant_id=tenant.tenant_id, module="scaibunker")]
    assert [(e.request_id, e.decision) for e in rows] == [("app-req-deny", "denied")]


def test_resource_permission_owner_other_and_empty_id(make_app: Any, admin: authzd.Client, tenant: Any) -> None:
    t = tenant.tenant_id
    admin.add_role_member(t, "tenant_admin", "owner")
    admin.add_role_member(t, "tenant_admin", "other")
    w = admin.put_resource(t, "bunker", "bk1", "owner")
    tc = make_app()
    tok = {"X-Authz-Token": w.zed_token}
    assert tc.post("/bunkers/bk1/exec", headers=who(t, "owner", **tok)).status_code == 200
    r = tc.post("/bunkers/bk1/exec", headers=who(t, "other", **tok))
    assert r.status_code == 403 and r.json()["detail"]["code"] == "forbidden"
    assert tc.get("/by-query", params={"id": "bk1"}, headers=who(t, "owner", **tok)).status_code == 200
    r = tc.get("/by-query", params={"id": ""}, headers=who(t, "owner", **tok))
    assert r.status_code == 400 and r.json()["detail"]["code"] == "invalid"
    assert tc.ran == ["exec bk1", "by-query"]


def test_no_identity_is_401_without_an_audit_row(make_app: Any, admin: authzd.Client, tenant: Any) -> None:
    tc = make_app()
    before = sum(1 for _ in admin.audit_events(tenant_id=tenant.tenant_id))
    r = tc.post("/things", headers={"X-Tenant-Id": tenant.tenant_id})
    assert r.status_code == 401 and r.json()["detail"]["code"] == "unauthorized"
    assert tc.ran == []
    assert sum(1 for _ in admin.audit_events(tenant_id=tenant.tenant_id)) == before


def test_a_stopped_replica_fails_closed(make_app: Any, authzd_server: Any, admin: authzd.Client, tenant: Any,
                                        caplog: pytest.LogCaptureFixture) -> None:
    t = tenant.tenant_id
    w = admin.add_role_member(t, "tenant_admin", "alice")
    replica = authzd_server.start_replica()
    try:
        tc = make_app(url=replica.url, timeout=3.0, min_backoff=0.01, max_backoff=0.05)
        headers = who(t, "alice", **{"X-Authz-Token": w.zed_token})
        assert tc.post("/things", headers=headers).status_code == 201
    finally:
        replica.stop()
    with caplog.at_level("WARNING", logger="authzd.fastapi"):
        r = tc.post("/things", headers={**headers, "X-Request-Id": "app-req-down"})
    assert r.status_code == 503
    assert r.headers["Retry-After"] == "1"
    assert r.json()["detail"]["code"] == "unavailable"
    assert tc.ran == ["create"]
    assert any("app-req-down" in rec.getMessage() and "Unreachable" in rec.getMessage() for rec in caplog.records)


def test_authzd_503_wrong_token_and_bad_answers_fail_closed(make_app: Any, authzd_server: Any, admin: authzd.Client,
                                                             tenant: Any) -> None:
    t = tenant.tenant_id
    w = admin.add_role_member(t, "tenant_admin", "alice")
    headers = who(t, "alice", **{"X-Authz-Token": w.zed_token})
    with FaultProxy(authzd_server.url) as proxy:
        tc = make_app(url=proxy.url, max_attempts=2, min_backoff=0.01)
        proxy.fail(2, 503)
        r = tc.post("/things", headers=headers)
        assert r.status_code == 503 and r.headers["Retry-After"] == "1"
        proxy.fail(1, 200, body=b'{"allowed":"yes"}')
        assert tc.post("/things", headers=headers).status_code == 503
        assert tc.post("/things", headers=headers).status_code == 201  # the faults are used up
        assert len(proxy.requests("/v1/permissions/check")) == 4
    wrong = make_app(token="not-the-module-token")
    r = wrong.post("/things", headers=headers)
    assert r.status_code == 503 and r.json()["detail"]["code"] == "unavailable"
    scoped = admin.create_token(new_id("audit-only"), ["audit:read"])
    forbidden = make_app(token=scoped.secret)
    assert forbidden.post("/things", headers=headers).status_code == 503
    assert tc.ran == ["create"] and wrong.ran == [] and forbidden.ran == []


def test_a_malformed_key_raises_when_the_route_is_declared(admin: authzd.Client) -> None:
    gate = Gate(admin, header_identity)
    for bad in ("Scaibunker:create", "scaibunker", "scaibunker:_x", "scaibunker::x", "1abc:x", ""):
        with pytest.raises(ValueError):
            gate.require_permission(bad)
        with pytest.raises(ValueError):
            gate.require_resource_permission(bad, "bunker", "bunker_id")
    gate.require_permission("scaibunker:create:session")
    with pytest.raises(ValueError):
        gate.require_resource_permission("scaibunker:execute", "", "bunker_id")
    with pytest.raises(TypeError):
        Gate(object(), header_identity)  # type: ignore[arg-type]
