"""Fixtures of the client's tests: every test runs against the session's real authzd
(authzd.testing) in tenants of its own, through the blocking client and the asyncio one."""

from __future__ import annotations

import asyncio
import inspect
import secrets
from typing import Any, Callable, Iterator

import pytest

import authzd


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(5)}"


class AsyncAsSync:
    """Calls an AsyncClient from a sync test on one event loop (asyncio.Runner), so that a test
    written once runs against both classes. Every call still goes through AsyncClient's own code."""

    def __init__(self, runner: asyncio.Runner, client: authzd.AsyncClient) -> None:
        self._runner, self._client = runner, client

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name == "audit_events":
            async def collect(**kw: Any) -> list[authzd.AuditEvent]:
                return [e async for e in attr(**kw)]
            return lambda **kw: iter(self._runner.run(collect(**kw)))
        if name == "with_actor":
            return lambda user_id: AsyncAsSync(self._runner, attr(user_id))
        if inspect.iscoroutinefunction(attr):
            return lambda *a, **kw: self._runner.run(attr(*a, **kw))
        return attr


@pytest.fixture(scope="session")
def admin(authzd_server: Any) -> Iterator[authzd.Client]:
    """A blocking client with the bootstrap token, for setting up and reading back."""
    with authzd.Client(authzd_server.url, authzd_server.admin_token) as c:
        yield c


@pytest.fixture(params=["Client", "AsyncClient"])
def make_client(request: pytest.FixtureRequest, authzd_server: Any) -> Iterator[Callable[..., Any]]:
    """Makes clients of the class the test is parametrized with: make_client(url=..., token=..., **kw)."""
    made: list[Any] = []
    runner = asyncio.Runner()

    def make(url: str | None = None, token: str | None = None, **kw: Any) -> Any:
        url = url or authzd_server.url
        token = token or authzd_server.admin_token
        if request.param == "Client":
            c = authzd.Client(url, token, **kw)
            made.append(c.close)
            return c
        ac = runner.run(_new_async(url, token, kw))
        made.append(lambda: runner.run(ac.close()))
        return AsyncAsSync(runner, ac)

    yield make
    for close in made:
        close()
    runner.close()


async def _new_async(url: str, token: str, kw: dict[str, Any]) -> authzd.AsyncClient:
    return authzd.AsyncClient(url, token, **kw)


@pytest.fixture
def client(make_client: Callable[..., Any]) -> Any:
    """A client with the bootstrap token, of the class the test is parametrized with."""
    return make_client()


class Tenant:
    def __init__(self, partner_id: str, tenant_id: str, token: str) -> None:
        self.partner_id, self.tenant_id, self.token = partner_id, tenant_id, token


@pytest.fixture
def tenant(admin: authzd.Client) -> Tenant:
    """A fresh partner and tenant of the test's own."""
    partner, tenant_id = new_id("p"), new_id("t")
    admin.put_partner(partner)
    w = admin.put_tenant(tenant_id, partner)
    return Tenant(partner, tenant_id, w.zed_token)
