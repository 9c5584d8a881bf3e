"""scaibunker_fastapi: examples/scaibunker's routes as a FastAPI app gated by authzd.fastapi.

    POST /bunkers              scaibunker:create   on the tenant
    GET  /bunkers/{id}         scaibunker:create   on the bunker (owners, scaibunker:admin, tenant viewers)
    POST /bunkers/{id}/exec    scaibunker:execute  on the bunker (owner and key)

POST /bunkers registers the new bunker with authzd (owner = caller) and returns the write's zed token
in X-Authz-Token; clients echo it so that the next check sees the new bunker at once. Authentication
is a stand-in: the app trusts X-Tenant-Id and X-User-Id, where a real module reads its verified token.

Configured from AUTHZ_URL and AUTHZ_TOKEN (a token with the check and provision scopes). Serve it with
any ASGI server (`uvicorn app:app`), or run `python3 app.py demo` (README.md).
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

try:
    import authzd
except ImportError:  # run from the authzd tree without installing the client
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "clients" / "python"))
    import authzd

from fastapi import Body, Depends, FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse

from authzd import Decision
from authzd.fastapi import Gate, Identity

CONSISTENCY_HEADER = "X-Authz-Token"

log = logging.getLogger("scaibunker")


def current_identity(x_tenant_id: Optional[str] = Header(None),
                     x_user_id: Optional[str] = Header(None)) -> Optional[Identity]:
    """The caller, or None (401). A real module takes both from the caller's verified token."""
    if not x_tenant_id or not x_user_id:
        return None
    return Identity(tenant_id=x_tenant_id, user_id=x_user_id)


def create_app(client: authzd.AsyncClient) -> FastAPI:
    app = FastAPI(title="scaibunker")
    app.router.on_shutdown.append(client.close)
    bunkers: dict[str, dict[str, Any]] = {}  # by tenant_id + "/" + id; a real service runs them

    gate = Gate(client, current_identity, consistency_token=lambda r: r.headers.get(CONSISTENCY_HEADER))

    def find(identity: Identity, bunker_id: str) -> dict[str, Any]:
        b = bunkers.get(f"{identity.tenant_id}/{bunker_id}")
        if b is None:
            raise HTTPException(404, "no such bunker")
        return b

    @app.post("/bunkers", status_code=201)
    async def create_bunker(request: Request,
                            _: Decision = Depends(gate.require_permission("scaibunker:create", action="bunker.create")),
                            identity: Identity = Depends(current_identity)) -> JSONResponse:
        b = {"id": "b-" + secrets.token_hex(5), "tenant_id": identity.tenant_id, "owner": identity.user_id,
             "created_at": datetime.now(timezone.utc).isoformat()}
        try:
            w = await client.put_resource(b["tenant_id"], "bunker", b["id"], b["owner"],
                                          request_id=request.headers.get("X-Request-Id"))
        except authzd.AuthzdError as e:
            # Without its registration nobody could use the bunker; do not keep it.
            log.warning("register bunker %s: %s", b["id"], e)
            raise HTTPException(503, "the bunker could not be registered; try again", headers={"Retry-After": "1"})
        bunkers[f"{b['tenant_id']}/{b['id']}"] = b
        return JSONResponse(b, status_code=201, headers={CONSISTENCY_HEADER: w.zed_token})

    @app.get("/bunkers/{bunker_id}", dependencies=[Depends(gate.require_resource_permission(
        "scaibunker:create", "bunker", "bunker_id", action="bunker.read"))])
    async def get_bunker(bunker_id: str, identity: Identity = Depends(current_identity)) -> dict[str, Any]:
        return find(identity, bunker_id)

    @app.post("/bunkers/{bunker_id}/exec")
    async def exec_bunker(bunker_id: str, command: list[str] = Body(..., embed=True, min_items=1),
                          decision: Decision = Depends(gate.require_resource_permission(
                              "scaibunker:execute", "bunker", "bunker_id", action="bunker.exec")),
                          identity: Identity = Depends(current_identity)) -> dict[str, Any]:
        b = find(identity, bunker_id)
        return {"bunker_id": b["id"], "command": command, "exit_code": 0, "decision_id": decision.decision_id}

    return app


def demo() -> None:
    """Provisions a tenant in the authzd at AUTHZ_URL (AUTHZ_TOKEN needs every scope, e.g. the
    bootstrap token) and drives the app in-process through Starlette's TestClient, printing each
    exchange: create, exec by the owner, exec by another user, no identity."""
    from fastapi.testclient import TestClient

    url, token = os.environ["AUTHZ_URL"], os.environ["AUTHZ_TOKEN"]
    t = "demo-" + secrets.token_hex(3)
    with authzd.Client(url, token) as admin:
        admin.put_partner("demo")
        admin.put_tenant(t, "demo")
        admin.put_role(t, "bunker_users", name="Bunker users", module_permissions=["scaibunker:create", "scaibunker:execute"])
        admin.add_role_member(t, "bunker_users", "sa:ci-bot")
        granted = admin.add_role_member(t, "bunker_users", "alice").zed_token

    def show(r: Any) -> None:
        who = r.request.headers.get("X-User-Id", "(no identity)")
        extra = f"\n  {CONSISTENCY_HEADER}: {r.headers[CONSISTENCY_HEADER]}" if CONSISTENCY_HEADER in r.headers else ""
        print(f"{r.request.method} {r.request.url.path} as {who} -> {r.status_code}{extra}\n  {r.text}")

    with TestClient(create_app(authzd.AsyncClient(url, token, timeout=2.0))) as tc:
        bot = {"X-Tenant-Id": t, "X-User-Id": "sa:ci-bot"}
        r = tc.post("/bunkers", headers={**bot, CONSISTENCY_HEADER: granted})
        show(r)
        b, zed = r.json()["id"], r.headers[CONSISTENCY_HEADER]
        show(tc.post(f"/bunkers/{b}/exec", headers={**bot, CONSISTENCY_HEADER: zed}, json={"command": ["echo", "hi"]}))
        show(tc.post(f"/bunkers/{b}/exec", headers={"X-Tenant-Id": t, "X-User-Id": "alice", CONSISTENCY_HEADER: zed},
                     json={"command": ["id"]}))
        show(tc.post("/bunkers", headers={"X-Tenant-Id": t}))


if os.environ.get("AUTHZ_URL") and os.environ.get("AUTHZ_TOKEN"):
    app = create_app(authzd.AsyncClient.from_env(timeout=2.0))

if __name__ == "__main__":
    if sys.argv[1:] != ["demo"]:
        sys.exit("usage: AUTHZ_URL=... AUTHZ_TOKEN=... python3 app.py demo")
    demo()
