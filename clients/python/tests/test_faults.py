"""Faults injected by a proxy between the client and the real authzd: what is retried, what is sent
once, how long a call may take, and that an answer without a decision is never one."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest

import authzd

from conftest import new_id
from faultproxy import FaultProxy

CHECK = "/v1/permissions/check"


@pytest.fixture
def proxy(authzd_server: Any) -> Any:
    with FaultProxy(authzd_server.url) as p:
        yield p


def test_two_503s_then_success(make_client: Any, proxy: FaultProxy, tenant: Any) -> None:
    c = make_client(url=proxy.url, min_backoff=0.01, max_backoff=0.05)
    proxy.fail(2, 503)
    d = c.check(tenant.tenant_id, "alice", "scaibunker:create", request_id="req-retried")
    assert d.allowed is False and d.decision_id
    seen = proxy.requests(CHECK)
    assert [s.faulted for s in seen] == [True, True, False]
    assert {s.headers["x-request-id"] for s in seen} == {"req-retried"}

    proxy.fail(4, 502)
    with pytest.raises(authzd.UnavailableError) as e:
        c.keys()
    assert e.value.status == 502 and len(proxy.requests("/v1/permissions/keys")) == 4


def test_retry_after_is_honoured(make_client: Any, proxy: FaultProxy, tenant: Any) -> None:
    c = make_client(url=proxy.url, min_backoff=0.001, max_backoff=0.002)
    proxy.fail(1, 429, headers={"Retry-After": "1"})
    start = time.monotonic()
    c.check(tenant.tenant_id, "alice", "scaibunker:create")
    took = time.monotonic() - start
    assert 1.0 <= took < 3.0, took
    assert len(proxy.requests(CHECK)) == 2

    # A Retry-After beyond what the call's timeout leaves is not waited for: the error comes at once.
    short = make_client(url=proxy.url, timeout=2.0)
    proxy.fail(1, 503, headers={"Retry-After": "20"})
    start = time.monotonic()
    with pytest.raises(authzd.UnavailableError):
        short.check(tenant.tenant_id, "alice", "scaibunker:create")
    assert time.monotonic() - start < 1.0


def test_create_token_after_a_503_is_sent_once_and_makes_no_token(make_client: Any, proxy: FaultProxy,
                                                                   admin: authzd.Client) -> None:
    c = make_client(url=proxy.url, min_backoff=0.01)
    name = new_id("once")
    proxy.fail(1, 503, path="/v1/tokens")
    with pytest.raises(authzd.UnavailableError) as e:
        c.create_token(name, ["check"])
    assert e.value.status == 503
    assert len(proxy.requests("/v1/tokens")) == 1
    assert name not in {t.name for t in admin.list_tokens()}


def test_a_400_is_sent_once(make_client: Any, proxy: FaultProxy, tenant: Any) -> None:
    c = make_client(url=proxy.url, min_backoff=0.01)
    with pytest.raises(authzd.InvalidError):
        c.check(tenant.tenant_id, "alice", "nope:nope")
    assert len(proxy.requests(CHECK)) == 1


def test_the_timeout_bounds_the_call_retries_included(make_client: Any, proxy: FaultProxy) -> None:
    c = make_client(url=proxy.url, timeout=1.0, max_attempts=1000, min_backoff=0.05, max_backoff=0.1)
    proxy.fail(1000, 503)
    start = time.monotonic()
    with pytest.raises(authzd.UnavailableError) as e:
        c.keys()
    took = time.monotonic() - start
    assert took < 1.5, took
    assert e.value.status in (0, 503)
    assert 3 <= len(proxy.requests("/v1/permissions/keys")) < 1000


def test_a_silent_listener_is_unreachable_within_the_timeout(make_client: Any) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts connections, never answers
        port = silent.getsockname()[1]
        c = make_client(url=f"http://127.0.0.1:{port}", timeout=1.0)
        start = time.monotonic()
        with pytest.raises(authzd.UnreachableError) as e:
            c.check("t1", "alice", "scaibunker:create")
        took = time.monotonic() - start
    assert took < 1.5, took
    assert isinstance(e.value, authzd.UnavailableError)
    assert e.value.__cause__ is not None
    assert str(e.value).endswith(f"(request id {e.value.request_id})")


def test_a_refused_connection_is_unreachable_and_retried(make_client: Any) -> None:
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]
    c = make_client(url=f"http://127.0.0.1:{port}", min_backoff=0.01, max_backoff=0.02)
    with pytest.raises(authzd.UnreachableError) as e:
        c.create_token("x", ["check"])  # unsent, so even create_token is tried again
    assert "ConnectError" in e.value.message


@pytest.mark.parametrize("body", [
    b'{"checked_at":"x","decision_id":"y"}',
    b'{"allowed":"true","checked_at":"x","decision_id":"y"}',
    b'{"allowed":1,"checked_at":"x","decision_id":"y"}',
    b'{"allowed":null}',
    b'not json',
])
def test_a_200_without_a_boolean_allowed_raises(make_client: Any, proxy: FaultProxy, body: bytes) -> None:
    c = make_client(url=proxy.url)
    proxy.fail(1, 200, body=body)
    with pytest.raises(authzd.MalformedAnswerError) as e:
        c.check("t1", "alice", "scaibunker:create")
    assert isinstance(e.value, authzd.UnavailableError)
    assert len(proxy.requests(CHECK)) == 1
    proxy.fail(1, 200, body=b'{"results":[{"allowed":true}]}')
    with pytest.raises(authzd.MalformedAnswerError):
        c.check_bulk([authzd.CheckItem("t1", "a", "scaibunker:create"), authzd.CheckItem("t1", "b", "scaibunker:create")])


def test_unknown_fields_are_ignored_and_undecided_bulk_items_are_denied(make_client: Any, proxy: FaultProxy) -> None:
    c = make_client(url=proxy.url)
    proxy.fail(1, 200, body=b'{"allowed":true,"checked_at":"z","decision_id":"d","later_field":{"x":1}}')
    assert c.check("t1", "alice", "scaibunker:create").allowed is True
    proxy.fail(1, 200, body=b'{"results":[{"allowed":true,"checked_at":"z","decision_id":"d"},'
                              b'{"allowed":false,"error":{"code":"unavailable","message":"spicedb"}}]}')
    ok, undecided = c.check_bulk([authzd.CheckItem("t1", "a", "scaibunker:create"),
                                  authzd.CheckItem("t1", "b", "scaibunker:create")])
    assert ok.allowed and not undecided and not undecided.allowed
    assert isinstance(undecided.error, authzd.UnavailableError) and undecided.error.message == "spicedb"
