"""Every method of both clients end to end against the real authzd, each effect read at the zed token
its write returned."""

from __future__ import annotations

import random
from typing import Any

import pytest

import authzd
from authzd import CheckItem, Resource

from conftest import new_id

EXECUTE = "scaibunker:execute"
CREATE = "scaibunker:create"


def test_check_owner_allowed_and_admin_non_owner_denied(client: Any, tenant: Any) -> None:
    t = tenant.tenant_id
    client.add_role_member(t, "tenant_admin", "alice")
    client.add_role_member(t, "tenant_admin", "bob")
    w = client.put_resource(t, "bunker", "b1", "alice")

    owner = client.check(t, "alice", EXECUTE, resource=Resource("bunker", "b1"), action="bunker.exec",
                         consistency_token=w.zed_token)
    other = client.check(t, "bob", EXECUTE, resource=("bunker", "b1"), consistency_token=w.zed_token)

    assert owner.allowed is True and bool(owner)
    assert other.allowed is False
    if other:
        pytest.fail("a denied Decision is truthy")
    assert owner.decision_id and other.decision_id and owner.decision_id != other.decision_id
    assert owner.checked_at
    events = {e.decision_id: e for e in client.audit_events(tenant_id=t, module="scaibunker")}
    assert events[owner.decision_id].decision == "allowed"
    assert events[owner.decision_id].action == "bunker.exec"
    assert events[other.decision_id].decision == "denied"


def test_check_bulk_of_250_equals_250_single_checks(client: Any, tenant: Any) -> None:
    t = tenant.tenant_id
    client.add_role_member(t, "tenant_admin", "admin1")
    client.put_role(t, "runners", name="Runners", module_permissions=[CREATE, EXECUTE])
    client.add_role_member(t, "runners", "runner1")
    w = client.put_resource(t, "bunker", "b1", "runner1")
    rnd = random.Random(7)
    users = ["admin1", "runner1", "nobody", "sa:bot"]
    keys = [CREATE, EXECUTE, "scaibunker:shell", "scaiskills:view"]
    items = []
    for _ in range(250):
        res = Resource("bunker", "b1") if rnd.random() < 0.3 else None
        key = EXECUTE if res else rnd.choice(keys)
        items.append(CheckItem(t, rnd.choice(users), key, resource=res, consistency_token=w.zed_token))

    bulk = client.check_bulk(items)
    singles = [client.check(i.tenant_id, i.user_id, i.permission, resource=i.resource,
                            consistency_token=i.consistency_token) for i in items]

    assert len(bulk) == 250
    assert [d.allowed for d in bulk] == [d.allowed for d in singles]
    assert any(d.allowed for d in bulk) and not all(d.allowed for d in bulk)
    assert all(d.error is None and d.decision_id for d in bulk)
    assert len({d.decision_id for d in bulk}) == 250
    assert client.check_bulk([]) == []


def test_explain_effective_permissions_and_keys(client: Any, tenant: Any) -> None:
    t = tenant.tenant_id
    client.put_role(t, "viewers", name="Skill viewers", module_permissions=["scaiskills:view"])
    w = client.add_role_member(t, "viewers", "carol")

    x = client.explain(t, "carol", "scaiskills:view", consistency_token=w.zed_token)
    assert x.allowed and bool(x)
    assert any("viewers" in r for r in x.reasons), x.reasons
    assert x.trace is not None and x.trace.result == "has_permission"
    denied = client.explain(t, "carol", CREATE)
    assert not denied and denied.reasons

    eff = client.effective_permissions(t, "carol", consistency_token=w.zed_token)
    assert eff.permissions == ("scaiskills:view",)
    assert "scaiskills:view" in eff and CREATE not in eff
    assert eff.decision_id

    catalogue = {k.key: k for k in client.keys()}
    assert catalogue[EXECUTE].module == "scaibunker" and catalogue[EXECUTE].description
    assert "scaiskills:view" in catalogue


def test_every_write_and_delete_reads_back_at_its_token(client: Any, admin: authzd.Client) -> None:
    p, t, other = new_id("p"), new_id("t"), new_id("t")
    assert client.put_partner(p).zed_token
    w = client.put_tenant(t, p)
    assert w.zed_token
    client.put_tenant(other, p)

    # super admin: every key in every tenant
    w = client.put_super_admin("root-" + t)
    assert client.check(other, "root-" + t, "scaibunker:admin:platform", consistency_token=w.zed_token)
    w = client.delete_super_admin("root-" + t)
    assert not client.check(other, "root-" + t, "scaibunker:admin:platform", consistency_token=w.zed_token)

    # partner admin: the partner's tenants
    w = client.put_partner_admin(p, "pa")
    assert client.check(t, "pa", CREATE, consistency_token=w.zed_token)
    w = client.delete_partner_admin(p, "pa")
    assert not client.check(t, "pa", CREATE, consistency_token=w.zed_token)

    # custom role, its members, its keys
    w = client.put_role(t, "ops", name="Operators", module_permissions=[CREATE])
    assert client.get_role(t, "ops") == authzd.Role(t, "ops", (CREATE,))
    w = client.add_role_member(t, "ops", "dave")
    assert client.check(t, "dave", CREATE, consistency_token=w.zed_token)
    assert not client.check(t, "dave", "scaibunker:shell", consistency_token=w.zed_token)
    w = client.put_role(t, "ops", name="Operators", module_permissions=["scaibunker:shell"])
    assert client.check(t, "dave", "scaibunker:shell", consistency_token=w.zed_token)
    assert not client.check(t, "dave", CREATE, consistency_token=w.zed_token)
    w = client.remove_role_member(t, "ops", "dave")
    assert not client.check(t, "dave", "scaibunker:shell", consistency_token=w.zed_token)
    w = client.delete_role(t, "ops")
    with pytest.raises(authzd.NotFoundError):
        client.get_role(t, "ops")

    # resources and ownership
    client.add_role_member(t, "tenant_admin", "erin")
    w = client.put_resource(t, "bunker", "bx", "erin")
    assert client.check(t, "erin", EXECUTE, resource=("bunker", "bx"), consistency_token=w.zed_token)
    w = client.delete_resource(t, "bunker", "bx")
    assert not client.check(t, "erin", EXECUTE, resource=("bunker", "bx"), consistency_token=w.zed_token)

    # offboarding the tenant removes its members; then the partner can go
    assert client.check(t, "erin", CREATE, consistency_token=w.zed_token)
    w = client.delete_tenant(t)
    assert not client.check(t, "erin", CREATE, consistency_token=w.zed_token)
    client.delete_tenant(other)
    assert client.delete_partner(p).zed_token
    with pytest.raises(authzd.NotFoundError):
        client.put_tenant(new_id("t"), p)

    # the actor is recorded with writes
    acting = client.with_actor("ops-lead")
    w = acting.put_partner(p)
    rows = [e for e in admin.audit_events(module="authzd", actor_user_id="ops-lead") if e.resource_id == p]
    assert rows and rows[-1].action == "partner.put"


def test_tokens_scopes_and_revocation(client: Any, make_client: Any, tenant: Any) -> None:
    name = new_id("checker")
    tok = client.create_token(name, ["check"])
    assert tok.secret and tok.scopes == ("check",) and tok.created_at.tzinfo is not None
    assert tok.secret not in repr(tok)
    listed = {t.id: t for t in client.list_tokens()}
    assert listed[tok.id].name == name and listed[tok.id].secret is None and listed[tok.id].revoked_at is None

    checker = make_client(token=tok.secret)
    assert not checker.check(tenant.tenant_id, "nobody", CREATE)
    with pytest.raises(authzd.ForbiddenError) as forbidden:
        checker.put_partner(new_id("p"))
    assert forbidden.value.status == 403 and forbidden.value.code == "forbidden"
    assert str(forbidden.value).endswith(f"(request id {forbidden.value.request_id})")

    client.revoke_token(tok.id)
    assert {t.id: t for t in client.list_tokens()}[tok.id].revoked_at is not None
    with pytest.raises(authzd.UnauthorizedError) as unauthorized:
        checker.check(tenant.tenant_id, "nobody", CREATE)
    assert unauthorized.value.status == 401 and unauthorized.value.request_id


def test_read_your_writes_30_rounds(client: Any, tenant: Any) -> None:
    t = tenant.tenant_id
    client.put_role(t, "flip", name="Flip", module_permissions=[CREATE, EXECUTE])
    stale = []
    for i in range(30):
        w = client.add_role_member(t, "flip", "frank")
        if not client.check(t, "frank", CREATE, consistency_token=w.zed_token):
            stale.append((i, "add"))
        w = client.put_resource(t, "bunker", f"b{i}", "frank")
        if not client.check(t, "frank", EXECUTE, resource=("bunker", f"b{i}"), consistency_token=w.zed_token):
            stale.append((i, "put_resource"))
        w = client.delete_resource(t, "bunker", f"b{i}")
        if client.check(t, "frank", EXECUTE, resource=("bunker", f"b{i}"), consistency_token=w.zed_token):
            stale.append((i, "delete_resource"))
        w = client.remove_role_member(t, "flip", "frank")
        if client.check(t, "frank", CREATE, consistency_token=w.zed_token):
            stale.append((i, "remove"))
    assert stale == []


def test_audit_paging_250_decisions_over_3_pages(client: Any, tenant: Any) -> None:
    t = tenant.tenant_id
    want = []
    for i in range(0, 250, 50):
        rid = new_id("bulk")
        ds = client.check_bulk([CheckItem(t, f"u{j}", CREATE) for j in range(i, i + 50)], request_id=rid)
        want += [(d.decision_id, rid) for d in ds]

    pages = []
    cursor = None
    while True:
        page = client.list_audit_events(tenant_id=t, module="scaibunker", limit=100, cursor=cursor)
        pages.append(page)
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    assert [len(pg.events) for pg in pages] in ([100, 100, 50], [100, 100, 50, 0])

    events = list(client.audit_events(tenant_id=t, module="scaibunker", limit=100))
    got = [(e.decision_id, e.request_id) for e in events]
    assert sorted(got) == sorted(want) and len(set(got)) == 250
    assert [e.decision_id for pg in pages for e in pg.events] == [e.decision_id for e in events]
    ids = [int(e.id) for e in events]
    times = [e.occurred_at for e in events]
    assert times == sorted(times) and len(set(ids)) == 250
    assert {e.actor_user_id for e in events} == {f"u{j}" for j in range(250)}
