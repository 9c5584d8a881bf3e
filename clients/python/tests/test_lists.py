"""The listing reads and the what-if prediction end to end against the real authzd, through both
clients: each read after the writes it should show, at the writes' zed tokens."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

import authzd

from conftest import new_id
from faultproxy import FaultProxy

CREATE = "scaibunker:create"
SHELL = "scaibunker:shell"


def test_list_roles_shows_builtin_and_custom_roles_with_keys_and_member_counts(client: Any, tenant: Any) -> None:
    t = tenant.tenant_id
    client.put_role(t, "ops", name="Operators", module_permissions=[SHELL, CREATE])
    client.add_role_member(t, "ops", "dave")
    client.add_role_member(t, "ops", "erin")
    client.add_role_member(t, "tenant_viewer", "vic")

    roles = client.list_roles(t)
    by_id = {r.role_id: r for r in roles}
    assert [r.role_id for r in roles][:3] == ["tenant_admin", "tenant_user", "tenant_viewer"]
    ops = by_id["ops"]
    assert isinstance(ops, authzd.RoleSummary)
    assert ops.name == "Operators" and ops.builtin is False
    assert sorted(ops.module_permissions) == sorted([SHELL, CREATE])
    assert ops.member_count == 2
    assert by_id["tenant_viewer"].builtin is True and by_id["tenant_viewer"].member_count == 1
    assert by_id["tenant_admin"].member_count == 0 and by_id["tenant_admin"].module_permissions

    client.remove_role_member(t, "ops", "erin")
    assert {r.role_id: r for r in client.list_roles(t)}["ops"].member_count == 1
    with pytest.raises(authzd.NotFoundError):
        client.list_roles(new_id("t"))


def test_list_members_after_add_role_member(client: Any, tenant: Any) -> None:
    t = tenant.tenant_id
    assert client.list_members(t) == authzd.MemberPage((), "")
    client.put_role(t, "ops", name="Operators", module_permissions=[CREATE])
    client.add_role_member(t, "ops", "dave")
    client.add_role_member(t, "tenant_user", "dave")
    client.add_role_member(t, "tenant_admin", "alice")

    page = client.list_members(t)
    assert [m.user_id for m in page.members] == ["alice", "dave"]
    got = {m.user_id: sorted(m.roles) for m in page.members}
    assert got == {"alice": ["tenant_admin"], "dave": ["ops", "tenant_user"]}
    assert page.next_cursor == ""

    client.remove_role_member(t, "tenant_admin", "alice")
    assert [m.user_id for m in client.list_members(t).members] == ["dave"]


def test_list_tenants_pages_to_a_created_tenant(client: Any, tenant: Any) -> None:
    seen: list[authzd.Tenant] = []
    cursor = None
    for _ in range(1000):
        page = client.list_tenants(cursor=cursor)
        seen.extend(page.tenants)
        if not page.next_cursor:
            break
        assert page.next_cursor != cursor
        cursor = page.next_cursor
    ids = [x.tenant_id for x in seen]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert authzd.Tenant(tenant.tenant_id, tenant.partner_id) in seen


def test_what_if_removing_a_key_flips_the_decided_question(client: Any, tenant: Any) -> None:
    t = tenant.tenant_id
    since = datetime.now(timezone.utc) - timedelta(seconds=5)
    client.put_role(t, "ops", name="Operators", module_permissions=[CREATE, SHELL])
    w = client.add_role_member(t, "ops", "dave")
    assert client.check(t, "dave", CREATE, consistency_token=w.zed_token)
    assert client.check(t, "dave", CREATE, consistency_token=w.zed_token)
    assert client.check(t, "dave", SHELL, consistency_token=w.zed_token)
    assert not client.check(t, "nobody", CREATE, consistency_token=w.zed_token)

    change = {"op": "put", "kind": "role", "tenant_id": t, "role_id": "ops", "name": "Operators",
              "module_permissions": [SHELL]}
    res = client.what_if(t, since=since, changes=[change], consistency_token=w.zed_token)
    assert isinstance(res, authzd.WhatIfResult)
    assert res.questions == 3 and res.skipped == 0 and res.zed_token
    [flip] = res.flips
    assert (flip.user_id, flip.permission, flip.resource) == ("dave", CREATE, None)
    assert (flip.from_, flip.to, flip.decisions) == ("allowed", "denied", 2)
    assert flip.last_decided_at.tzinfo is not None and flip.last_decided_at >= since

    # nothing was written: dave still holds the key at the revision the prediction was made at and after
    # (a check without a token may be answered at a revision from before the grant, so it proves nothing)
    assert client.check(t, "dave", CREATE, consistency_token=res.zed_token)
    # a window ending before the decisions has no questions
    assert client.what_if(t, since=since, until=since + timedelta(seconds=1), changes=[change]).questions == 0


def test_what_if_refuses_a_bad_change_naming_its_index_and_naive_times(make_client: Any, authzd_server: Any,
                                                                      tenant: Any) -> None:
    t = tenant.tenant_id
    since = datetime.now(timezone.utc) - timedelta(minutes=1)
    with FaultProxy(authzd_server.url) as proxy:
        c = make_client(url=proxy.url)
        with pytest.raises(authzd.InvalidError) as e:
            c.what_if(t, since=since, changes=[{"op": "put", "kind": "nonsense", "tenant_id": t}])
        assert e.value.status == 400 and "changes[0]" in e.value.message
        assert len(proxy.requests("/v1/whatif")) == 1  # a 400 is not retried

        n = len(proxy.requests())
        for call, err in ((lambda: c.what_if(t, since=datetime(2026, 1, 1), changes=[]), ValueError),
                          (lambda: c.what_if(t, since=since, until=datetime(2026, 1, 1), changes=[]), ValueError),
                          (lambda: c.what_if("", since=since, changes=[]), ValueError),
                          (lambda: c.what_if(t, since=since, changes=[["op", "put"]]), TypeError),
                          (lambda: c.list_roles(""), ValueError), (lambda: c.list_members(""), ValueError)):
            with pytest.raises(err):
                call()
        assert len(proxy.requests()) == n

        # ids are one segment; what_if is retried like check
        with pytest.raises(authzd.InvalidError) as e:
            c.list_roles("no/such")
        assert "tenant_id" in e.value.message
        assert proxy.requests()[-1].path == "/v1/tenants/no%2Fsuch/roles"
        proxy.fail(1, 503, path="/v1/whatif")
        assert c.what_if(t, since=since, changes=[]).flips == ()
        assert [s.faulted for s in proxy.requests("/v1/whatif")][-2:] == [True, False]


def test_list_answers_ignore_unknown_fields(make_client: Any, authzd_server: Any) -> None:
    with FaultProxy(authzd_server.url) as proxy:
        c = make_client(url=proxy.url)
        proxy.fail(1, 200, body=b'{"roles":[{"role_id":"r","name":"R","builtin":false,"module_permissions":[],'
                                b'"member_count":3,"later":1}],"later":{}}')
        assert c.list_roles("t1") == [authzd.RoleSummary("r", "R", False, (), 3)]
        proxy.fail(1, 200, body=b'{"roles":[{"role_id":"r","name":"R","builtin":false,"module_permissions":[],'
                                b'"member_count":"3"}]}')
        with pytest.raises(authzd.MalformedAnswerError, match="member_count"):
            c.list_roles("t1")
