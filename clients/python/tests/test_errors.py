"""Error answers of the real authzd become the exception of their code, each with the answer's
request id, and a bad argument is refused before anything is sent."""

from __future__ import annotations

from typing import Any

import pytest

import authzd

from conftest import new_id
from faultproxy import FaultProxy


def _audit_count(admin: authzd.Client, tenant_id: str) -> int:
    return sum(1 for _ in admin.audit_events(tenant_id=tenant_id))


def test_400_names_the_bad_key_and_changes_nothing(client: Any, admin: authzd.Client, tenant: Any) -> None:
    before = _audit_count(admin, tenant.tenant_id)
    with pytest.raises(authzd.InvalidError) as e:
        client.check(tenant.tenant_id, "alice", "scaibunker:no_such_key", request_id="req-bad-key")
    assert e.value.status == 400 and e.value.code == "invalid"
    assert "scaibunker:no_such_key" in e.value.message
    assert e.value.request_id == "req-bad-key"
    assert str(e.value).endswith("(request id req-bad-key)")
    with pytest.raises(authzd.InvalidError) as e:
        client.put_role(tenant.tenant_id, "r1", name="R", module_permissions=["Not-A-Key"])
    assert "module_permissions[0]" in e.value.message and e.value.request_id
    with pytest.raises(authzd.NotFoundError):
        client.get_role(tenant.tenant_id, "r1")
    assert _audit_count(admin, tenant.tenant_id) == before


def test_401_403_404_409_with_request_ids(client: Any, make_client: Any, tenant: Any) -> None:
    wrong = make_client(token="not-a-token")
    with pytest.raises(authzd.UnauthorizedError) as e401:
        wrong.keys(request_id="req-401")
    assert (e401.value.status, e401.value.code, e401.value.request_id) == (401, "unauthorized", "req-401")

    tok = client.create_token(new_id("auditor"), ["audit:read"])
    auditor = make_client(token=tok.secret)
    with pytest.raises(authzd.ForbiddenError) as e403:
        auditor.check(tenant.tenant_id, "alice", "scaibunker:create")
    assert e403.value.status == 403 and "check" in e403.value.message and e403.value.request_id

    with pytest.raises(authzd.NotFoundError) as e404:
        client.put_tenant(new_id("t"), new_id("no-such-partner"))
    assert e404.value.status == 404 and e404.value.code == "not_found" and e404.value.request_id
    with pytest.raises(authzd.NotFoundError) as e404r:
        client.get_role(tenant.tenant_id, "no-such-role", request_id="req-404")
    assert e404r.value.request_id == "req-404"

    with pytest.raises(authzd.ConflictError) as e409:
        client.delete_partner(tenant.partner_id)
    assert e409.value.status == 409 and e409.value.code == "conflict" and e409.value.request_id
    for e in (e401.value, e403.value, e404.value, e409.value):
        assert str(e).endswith(f"(request id {e.request_id})")


def test_ids_are_one_segment_and_empty_ones_are_refused_before_sending(make_client: Any, authzd_server: Any,
                                                                        tenant: Any) -> None:
    with FaultProxy(authzd_server.url) as proxy:
        c = make_client(url=proxy.url)
        with pytest.raises(authzd.InvalidError) as e:
            c.effective_permissions(tenant.tenant_id, "a/b")
        assert "user_id" in e.value.message
        [seen] = proxy.requests()
        assert seen.path == f"/v1/tenants/{tenant.tenant_id}/users/a%2Fb/permissions"
        with pytest.raises(authzd.InvalidError) as e:
            c.add_role_member(tenant.tenant_id, "tenant_user", "..")
        assert "user_id" in e.value.message

        assert c.effective_permissions(tenant.tenant_id, "sa:ci-bot").permissions == ()
        assert proxy.requests()[-1].path.endswith("/users/sa:ci-bot/permissions")

        n = len(proxy.requests())
        for call in (lambda: c.put_partner(""), lambda: c.check(tenant.tenant_id, "", "scaibunker:create"),
                     lambda: c.put_resource(tenant.tenant_id, "bunker", "", "alice"),
                     lambda: c.get_role("", "r"), lambda: c.revoke_token("")):
            with pytest.raises(ValueError):
                call()
        assert len(proxy.requests()) == n


def test_naive_datetime_is_a_value_error(client: Any) -> None:
    from datetime import datetime
    with pytest.raises(ValueError, match="naive"):
        client.list_audit_events(since=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="naive"):
        client.audit_events(until=datetime(2026, 1, 1))


def test_constructor_refuses_bad_settings() -> None:
    for kw in ({"max_attempts": 0}, {"min_backoff": 3.0, "max_backoff": 1.0}, {"timeout": 0}):
        with pytest.raises(ValueError):
            authzd.Client("http://127.0.0.1:1", "t", **kw)
    with pytest.raises(ValueError):
        authzd.Client("ftp://x", "t")
    with pytest.raises(ValueError):
        authzd.Client("http://127.0.0.1:1", "")
