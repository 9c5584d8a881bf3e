"""Concurrency on one client: every decision audited once; concurrent role writes leave one whole
key set, never a mix."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import authzd


def _decisions_audited(admin: authzd.Client, tenant_id: str) -> list[str]:
    return [e.decision_id for e in admin.audit_events(tenant_id=tenant_id, module="scaibunker", limit=1000)]


def test_200_concurrent_checks_on_one_async_client(authzd_server: Any, admin: authzd.Client, tenant: Any) -> None:
    t = tenant.tenant_id
    w = admin.add_role_member(t, "tenant_admin", "amy")

    async def run() -> list[authzd.Decision]:
        async with authzd.AsyncClient(authzd_server.url, authzd_server.admin_token) as c:
            return await asyncio.gather(*(
                c.check(t, "amy" if i % 2 == 0 else "ben", "scaibunker:create", consistency_token=w.zed_token)
                for i in range(200)))

    decisions = asyncio.run(run())
    assert [d.allowed for d in decisions] == [i % 2 == 0 for i in range(200)]
    audited = _decisions_audited(admin, t)
    assert sorted(audited) == sorted(d.decision_id for d in decisions)


def test_8_threads_by_25_checks_on_one_client(authzd_server: Any, admin: authzd.Client, tenant: Any) -> None:
    t = tenant.tenant_id
    w = admin.add_role_member(t, "tenant_admin", "cat")
    start = threading.Barrier(8)
    with authzd.Client(authzd_server.url, authzd_server.admin_token) as c:
        def worker(n: int) -> list[authzd.Decision]:
            start.wait()
            user = "cat" if n % 2 == 0 else "dan"
            return [c.check(t, user, "scaibunker:create", consistency_token=w.zed_token) for _ in range(25)]

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(worker, range(8)))
    for n, ds in enumerate(results):
        assert len(ds) == 25 and all(d.allowed is (n % 2 == 0) for d in ds)
    decisions = [d.decision_id for ds in results for d in ds]
    assert len(set(decisions)) == 200
    assert sorted(_decisions_audited(admin, t)) == sorted(decisions)


def test_two_clients_racing_put_role_leave_exactly_one_key_set(authzd_server: Any, tenant: Any) -> None:
    t = tenant.tenant_id
    a_keys = ["scaibunker:create", "scaibunker:execute"]
    b_keys = ["scaiskills:view", "scaiskills:bind", "scaibunker:shell"]
    seen = []

    async def run() -> None:
        async with authzd.AsyncClient(authzd_server.url, authzd_server.admin_token) as a:
            with authzd.Client(authzd_server.url, authzd_server.admin_token) as b:
                for i in range(20):
                    role = f"race{i}"
                    await asyncio.gather(
                        a.put_role(t, role, name="A", module_permissions=a_keys),
                        asyncio.to_thread(b.put_role, t, role, name="B", module_permissions=b_keys))
                    got = (await a.get_role(t, role)).module_permissions
                    seen.append(got)
                    assert sorted(got) in (sorted(a_keys), sorted(b_keys)), got

    asyncio.run(run())
    assert len(seen) == 20
