"""The example app against the real authzd: create, exec by the owner, by another user, without
identity, and with authzd down."""

from __future__ import annotations

import secrets
from typing import Any, Iterator

import pytest
from fastapi.testclient import TestClient

import authzd
from app import CONSISTENCY_HEADER, create_app


@pytest.fixture
def tenant(authzd_server: Any) -> Iterator[tuple[str, str]]:
    """A tenant whose role grants sa:ci-bot and alice both keys, and the zed token of that grant."""
    t = "t-" + secrets.token_hex(5)
    with authzd.Client(authzd_server.url, authzd_server.admin_token) as admin:
        admin.put_partner("example")
        admin.put_tenant(t, "example")
        admin.put_role(t, "bunker_users", name="Bunker users",
                       module_permissions=["scaibunker:create", "scaibunker:execute"])
        admin.add_role_member(t, "bunker_users", "sa:ci-bot")
        w = admin.add_role_member(t, "bunker_users", "alice")
    yield t, w.zed_token


@pytest.fixture
def module_token(authzd_server: Any) -> str:
    with authzd.Client(authzd_server.url, authzd_server.admin_token) as admin:
        return admin.create_token("scaibunker-" + secrets.token_hex(3), ["check", "provision"]).secret or ""


def _app(url: str, token: str) -> TestClient:
    return TestClient(create_app(authzd.AsyncClient(url, token, timeout=2.0, min_backoff=0.01, max_backoff=0.05)))


def test_create_then_exec_by_owner_and_by_another(authzd_server: Any, tenant: tuple[str, str],
                                                   module_token: str) -> None:
    tenant, granted = tenant
    with _app(authzd_server.url, module_token) as tc:
        bot = {"X-Tenant-Id": tenant, "X-User-Id": "sa:ci-bot"}
        r = tc.post("/bunkers", headers={**bot, CONSISTENCY_HEADER: granted})
        assert r.status_code == 201, r.text
        b, zed = r.json()["id"], r.headers[CONSISTENCY_HEADER]
        assert r.json()["owner"] == "sa:ci-bot" and zed

        r = tc.post(f"/bunkers/{b}/exec", headers={**bot, CONSISTENCY_HEADER: zed}, json={"command": ["echo", "hi"]})
        assert r.status_code == 200, r.text
        assert r.json()["command"] == ["echo", "hi"] and r.json()["decision_id"]
        assert tc.get(f"/bunkers/{b}", headers={**bot, CONSISTENCY_HEADER: zed}).json()["id"] == b

        alice = {"X-Tenant-Id": tenant, "X-User-Id": "alice", CONSISTENCY_HEADER: zed}
        r = tc.post(f"/bunkers/{b}/exec", headers=alice, json={"command": ["id"]})
        assert r.status_code == 403 and r.json()["detail"]["code"] == "forbidden"

        r = tc.post("/bunkers", headers={"X-Tenant-Id": tenant})
        assert r.status_code == 401

    with authzd.Client(authzd_server.url, authzd_server.admin_token) as admin:
        rows = [(e.actor_user_id, e.action, e.decision) for e in admin.audit_events(tenant_id=tenant, module="scaibunker")]
    assert rows == [("sa:ci-bot", "bunker.create", "allowed"), ("sa:ci-bot", "bunker.exec", "allowed"),
                    ("sa:ci-bot", "bunker.read", "allowed"), ("alice", "bunker.exec", "denied")]


def test_authzd_down_is_503(authzd_server: Any, tenant: tuple[str, str], module_token: str) -> None:
    tenant, granted = tenant
    bot = {"X-Tenant-Id": tenant, "X-User-Id": "sa:ci-bot", CONSISTENCY_HEADER: granted}
    replica = authzd_server.start_replica()
    with _app(replica.url, module_token) as tc:
        try:
            assert tc.post("/bunkers", headers=bot).status_code == 201
        finally:
            replica.stop()
        r = tc.post("/bunkers", headers=bot)
        assert r.status_code == 503 and r.headers["Retry-After"] == "1"
        assert r.json()["detail"]["code"] == "unavailable"
