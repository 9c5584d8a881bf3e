"""The two classes cannot drift: same methods and signatures, every /v1/ operation of
api/openapi.yaml covered, the package's pins as documented, and no FastAPI behind `import authzd`."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import authzd

HERE = Path(__file__).resolve().parent.parent
OPENAPI = HERE.parent.parent / "api" / "openapi.yaml"

# operationId -> method; operations under /v1/ that the Python client leaves out, and why.
METHODS = {
    "putPartner": "put_partner", "deletePartner": "delete_partner", "putTenant": "put_tenant",
    "deleteTenant": "delete_tenant", "putSuperAdmin": "put_super_admin", "deleteSuperAdmin": "delete_super_admin",
    "putPartnerAdmin": "put_partner_admin", "deletePartnerAdmin": "delete_partner_admin", "putRole": "put_role",
    "getRole": "get_role", "deleteRole": "delete_role", "addRoleMember": "add_role_member",
    "removeRoleMember": "remove_role_member", "putResource": "put_resource", "deleteResource": "delete_resource",
    "checkPermission": "check", "explainPermission": "explain", "checkPermissionsBulk": "check_bulk",
    "effectivePermissions": "effective_permissions", "listKeys": "keys", "listAuditEvents": "list_audit_events",
    "createToken": "create_token", "listTokens": "list_tokens", "revokeToken": "revoke_token",
    "listTenants": "list_tenants", "listRoles": "list_roles", "listMembers": "list_members", "whatIf": "what_if",
}
EXCEPTIONS = {
    "readAuditChain": "the audit chain is read by `authzd audit verify` and docs/audit.md's verifier",
    "listAuditCheckpoints": "the audit chain (as above)",
    "listAuditKeys": "the audit chain (as above)",
    "openapi": "the contract document itself",
    "importRecords": "migrations import record documents with `authzctl import` (docs/migration.md)",
    "importStatus": "`authzctl import` follows its import (as above)",
    "exportRecords": "`authzctl export` writes record documents (as above)",
    "shadowReport": "`authzctl shadow-report` reads it (as above)",
    "listAuditKeyRotations": "the audit chain (as above)",
}


def _public(cls: type) -> dict[str, object]:
    return {n: getattr(cls, n) for n in dir(cls) if not n.startswith("_")}


def test_both_classes_have_the_same_methods_and_signatures() -> None:
    sync, aio = _public(authzd.Client), _public(authzd.AsyncClient)
    assert sorted(sync) == sorted(aio)
    for name, m in sync.items():
        if isinstance(m, property):
            continue
        a = aio[name]
        s_sig, a_sig = inspect.signature(m), inspect.signature(a)  # type: ignore[arg-type]
        assert list(s_sig.parameters)[1:] == list(a_sig.parameters)[1:], name
        for (pn, sp), ap in zip(list(s_sig.parameters.items())[1:], list(a_sig.parameters.values())[1:]):
            assert (sp.kind, sp.default, str(sp.annotation)) == (ap.kind, ap.default, str(ap.annotation)), (name, pn)
        if name in METHODS.values():
            assert inspect.iscoroutinefunction(a), name
            assert not inspect.iscoroutinefunction(m), name
            assert s_sig.return_annotation == a_sig.return_annotation, name
            assert "request_id" in s_sig.parameters, name
    assert inspect.isasyncgenfunction(authzd.AsyncClient._audit_events)
    assert inspect.isgeneratorfunction(authzd.Client._audit_events)


def test_every_v1_operation_of_the_contract_has_a_method() -> None:
    ops: dict[str, str] = {}
    path = None
    for line in OPENAPI.read_text().splitlines():
        if m := re.match(r"^  (/\S*):\s*$", line):
            path = m.group(1)
        elif m := re.match(r"^\s+operationId:\s*(\w+)\s*$", line):
            assert path is not None
            ops[m.group(1)] = path
    v1 = {op for op, p in ops.items() if p.startswith("/v1/")}
    assert len(v1) == len(METHODS) + len(EXCEPTIONS)
    assert v1 == set(METHODS) | set(EXCEPTIONS), v1 ^ (set(METHODS) | set(EXCEPTIONS))
    for op, method in METHODS.items():
        assert callable(getattr(authzd.Client, method)), op
        assert callable(getattr(authzd.AsyncClient, method)), op


def test_pyproject_pins() -> None:
    doc = tomllib.loads((HERE / "pyproject.toml").read_text())
    project = doc["project"]
    assert project["name"] == "authzd"
    assert project["requires-python"] == ">=3.11"
    assert project["dependencies"] == ["httpx>=0.23"]
    assert project["optional-dependencies"] == {"fastapi": ["fastapi>=0.92"], "test": ["pytest>=7.2"]}
    assert (HERE / "authzd" / "py.typed").is_file()


def test_import_authzd_loads_no_fastapi() -> None:
    code = "import sys, authzd; print(sorted(m for m in sys.modules if m.split('.')[0] in ('fastapi', 'starlette', 'pydantic')))"
    out = subprocess.run([sys.executable, "-c", code], cwd=HERE, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
