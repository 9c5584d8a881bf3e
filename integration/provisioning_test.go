package integration

import (
	"net/http"
	"slices"
	"testing"
)

// TestProvisioning provisions partners, tenants, platform and partner admins, built-in and custom
// roles, members and service accounts, then revokes, replaces a role's keys, deletes a custom role and
// offboards a tenant, checking after each step who holds what, through the API only.
func TestProvisioning(t *testing.T) {
	a := startApp(t)
	ops := a.as("ops-admin")

	// Two partners; t1 and t2 under p1, t3 under p2.
	ops.mustPartner(t, "p1")
	ops.mustPartner(t, "p2")
	ops.mustTenant(t, "t1", "p1")
	ops.mustTenant(t, "t2", "p1")
	tok := ops.mustTenant(t, "t3", "p2")

	check := func(t *testing.T, tenant, user, key string, want bool) {
		t.Helper()
		a.mustCheck(t, checkRequest{TenantID: tenant, UserID: user, Permission: key, ConsistencyToken: tok}, want)
	}

	t.Run("UnknownPartner", func(t *testing.T) {
		ops.mustStatus(t, http.MethodPut, tenantPath("t-orphan"), map[string]string{"partner_id": "nope"}, http.StatusNotFound, "not_found")
	})

	t.Run("InvalidInput", func(t *testing.T) {
		ops.mustStatus(t, http.MethodPut, tenantPath("bad:id"), map[string]string{"partner_id": "p1"}, http.StatusBadRequest, "invalid")
		ops.mustStatus(t, http.MethodPut, rolePath("t1", "tenant_admin"), roleBody{Name: "x", ModulePermissions: []string{"scaibunker:create"}}, http.StatusBadRequest, "invalid")
		ops.mustStatus(t, http.MethodPut, rolePath("t1", "r"), roleBody{Name: "x", ModulePermissions: []string{"scaibunker:no_such_key"}}, http.StatusBadRequest, "invalid")
		ops.mustStatus(t, http.MethodPut, rolePath("t1", "r"), roleBody{Name: "x", ModulePermissions: []string{"Not A Key"}}, http.StatusBadRequest, "invalid")
		a.mustStatus(t, http.MethodPost, "/v1/permissions/check",
			checkRequest{TenantID: "t1", UserID: "alice", Permission: "scaibunker:no_such_key"}, http.StatusBadRequest, "invalid")
		a.mustStatus(t, http.MethodPost, "/v1/permissions/check",
			checkRequest{TenantID: "t1", UserID: "al ice", Permission: "scaibunker:create"}, http.StatusBadRequest, "invalid")
	})

	t.Run("Auth", func(t *testing.T) {
		a.withToken("").mustStatus(t, http.MethodPut, partnerPath("p9"), map[string]any{}, http.StatusUnauthorized, "unauthorized")
		checker := a.withToken(mustCreateToken(t, a.api, "checker", "check"))
		checker.mustStatus(t, http.MethodPut, partnerPath("p9"), map[string]any{}, http.StatusForbidden, "forbidden")
		checker.mustCheck(t, checkRequest{TenantID: "t1", UserID: "nobody", Permission: "scaibunker:create"}, false)
	})

	t.Run("SuperAdmin", func(t *testing.T) {
		tok = ops.mustWrite(t, http.MethodPut, superAdminPath("root"), nil)
		for _, tenant := range []string{"t1", "t2", "t3"} {
			check(t, tenant, "root", "scaibunker:admin:platform", true)
			check(t, tenant, "root", "scaiskills:manage", true)
		}
	})

	t.Run("PartnerAdmin", func(t *testing.T) {
		tok = ops.mustWrite(t, http.MethodPut, partnerAdminPath("p1", "padmin"), nil)
		check(t, "t1", "padmin", "scaibunker:admin:platform", true)
		check(t, "t2", "padmin", "scaiskills:grant", true)
		check(t, "t3", "padmin", "scaibunker:create", false) // t3 is under p2
		tok = ops.mustWrite(t, http.MethodPut, partnerAdminPath("p2", "sa:partner-bot"), nil)
		check(t, "t3", "sa:partner-bot", "scaibunker:create", true)
		check(t, "t1", "sa:partner-bot", "scaibunker:create", false)
	})

	t.Run("BuiltInRoles", func(t *testing.T) {
		ops.mustMember(t, "t1", "tenant_admin", "alice")
		ops.mustMember(t, "t1", "tenant_user", "bob")
		tok = ops.mustMember(t, "t1", "tenant_viewer", "carol")

		check(t, "t1", "alice", "scaibunker:execute", true)
		check(t, "t1", "alice", "scaibunker:admin:tenant", true)
		check(t, "t1", "alice", "scaibunker:admin:platform", false) // tenant_admin: all but admin:platform
		check(t, "t1", "alice", "scaiskills:grant", true)
		check(t, "t2", "alice", "scaibunker:execute", false) // another tenant

		for _, key := range []string{"scaibunker:create", "scaibunker:execute", "scaiskills:view", "scaiskills:bind"} {
			check(t, "t1", "bob", key, false) // tenant_user: nothing by default
		}
		check(t, "t1", "carol", "scaiskills:view", true)
		check(t, "t1", "carol", "scaiskills:bind", false)
		check(t, "t1", "carol", "scaibunker:execute", false)

		if got := a.mustPermissions(t, "t1", "carol", tok); !slices.Contains(got, "scaiskills:view") || slices.Contains(got, "scaiskills:bind") {
			t.Errorf("carol's permissions = %v, want scaiskills:view and no scaiskills:bind", got)
		}
		if got := a.mustPermissions(t, "t1", "bob", tok); len(got) != 0 {
			t.Errorf("bob (tenant_user) permissions = %v, want none", got)
		}
	})

	operatorKeys := []string{"scaibunker:create", "scaibunker:execute", "scaibunker:files", "scaibunker:shell", "scaibunker:network:registry"}

	t.Run("CustomRoleAndServiceAccount", func(t *testing.T) {
		ops.mustRole(t, "t1", "operators", operatorKeys...)
		ops.mustMember(t, "t1", "operators", "dave")
		tok = ops.mustMember(t, "t1", "operators", "sa:ci-bot")

		var role struct {
			RoleID            string   `json:"role_id"`
			TenantID          string   `json:"tenant_id"`
			ModulePermissions []string `json:"module_permissions"`
		}
		a.mustGet(t, rolePath("t1", "operators"), &role)
		if role.RoleID != "operators" || role.TenantID != "t1" || !sameSet(role.ModulePermissions, operatorKeys) {
			t.Errorf("GET role = %+v, want operators in t1 with %v", role, operatorKeys)
		}

		for _, user := range []string{"dave", "sa:ci-bot"} {
			check(t, "t1", user, "scaibunker:execute", true)
			check(t, "t1", user, "scaibunker:network:registry", true)
			check(t, "t1", user, "scaibunker:network:unrestricted", false)
			check(t, "t1", user, "scaibunker:root", false)
			check(t, "t2", user, "scaibunker:execute", false) // a role is its tenant's only
			if got := a.mustPermissions(t, "t1", user, tok); !sameSet(got, operatorKeys) {
				t.Errorf("permissions of %s = %v, want %v", user, got, operatorKeys)
			}
		}
		// The service account sa:ci-bot and a user named ci-bot are different subjects.
		check(t, "t1", "ci-bot", "scaibunker:execute", false)

		// The same role id in another tenant is another role.
		ops.mustRole(t, "t2", "operators", "scaiskills:view")
		tok = ops.mustMember(t, "t2", "operators", "erin")
		check(t, "t2", "erin", "scaiskills:view", true)
		check(t, "t2", "erin", "scaibunker:execute", false)
		check(t, "t1", "erin", "scaiskills:view", false)
		check(t, "t2", "dave", "scaiskills:view", false)
	})

	t.Run("Revoke", func(t *testing.T) {
		tok = ops.mustWrite(t, http.MethodDelete, memberPath("t1", "operators", "dave"), nil)
		check(t, "t1", "dave", "scaibunker:execute", false)
		check(t, "t1", "sa:ci-bot", "scaibunker:execute", true)

		tok = ops.mustWrite(t, http.MethodDelete, memberPath("t1", "tenant_viewer", "carol"), nil)
		check(t, "t1", "carol", "scaiskills:view", false)

		tok = ops.mustWrite(t, http.MethodDelete, partnerAdminPath("p2", "sa:partner-bot"), nil)
		check(t, "t3", "sa:partner-bot", "scaibunker:create", false)
	})

	t.Run("ReplaceRoleKeys", func(t *testing.T) {
		tok = ops.mustRole(t, "t1", "operators", "scaibunker:create", "scaibunker:network:allowlisted")
		check(t, "t1", "sa:ci-bot", "scaibunker:create", true)
		check(t, "t1", "sa:ci-bot", "scaibunker:network:allowlisted", true)
		check(t, "t1", "sa:ci-bot", "scaibunker:execute", false)
		check(t, "t1", "sa:ci-bot", "scaibunker:network:registry", false)
		var role struct {
			ModulePermissions []string `json:"module_permissions"`
		}
		a.mustGet(t, rolePath("t1", "operators"), &role)
		if want := []string{"scaibunker:create", "scaibunker:network:allowlisted"}; !sameSet(role.ModulePermissions, want) {
			t.Errorf("role keys after replace = %v, want %v", role.ModulePermissions, want)
		}
	})

	t.Run("DeleteCustomRole", func(t *testing.T) {
		tok = ops.mustWrite(t, http.MethodDelete, rolePath("t1", "operators"), nil)
		check(t, "t1", "sa:ci-bot", "scaibunker:create", false)
		ops.mustStatus(t, http.MethodGet, rolePath("t1", "operators"), nil, http.StatusNotFound, "not_found")
		ops.mustStatus(t, http.MethodDelete, rolePath("t1", "operators"), nil, http.StatusNotFound, "not_found")
		// Re-creating the role id starts empty: the old members are gone with the old role.
		tok = ops.mustRole(t, "t1", "operators", operatorKeys...)
		check(t, "t1", "sa:ci-bot", "scaibunker:create", false)
		// The other tenant's role of the same id is untouched.
		check(t, "t2", "erin", "scaiskills:view", true)
	})

	t.Run("Offboard", func(t *testing.T) {
		// Give t1 one of everything, and t2 the same, then offboard t1.
		ops.mustMember(t, "t1", "tenant_admin", "frank")
		ops.mustMember(t, "t1", "operators", "gina")
		ops.mustResource(t, "t1", "bunker", "bk1", "gina")
		ops.mustResource(t, "t1", "binding", "bd1", "frank")
		ops.mustMember(t, "t2", "tenant_admin", "frank")
		ops.mustRole(t, "t2", "operators", append([]string{"scaiskills:view"}, operatorKeys...)...)
		ops.mustMember(t, "t2", "operators", "gina")
		tok = ops.mustResource(t, "t2", "bunker", "bk1", "gina")

		type probe struct {
			user, key string
			res       *resourceRef
		}
		probes := []probe{
			{"alice", "scaibunker:execute", nil},
			{"frank", "scaiskills:grant", nil},
			{"frank", "scaibunker:admin:tenant", nil},
			{"gina", "scaibunker:create", nil},
			{"gina", "scaibunker:execute", &resourceRef{Type: "bunker", ID: "bk1"}},
			{"frank", "scaiskills:view", &resourceRef{Type: "binding", ID: "bd1"}},
		}
		for _, p := range probes {
			a.mustCheck(t, checkRequest{TenantID: "t1", UserID: p.user, Permission: p.key, Resource: p.res, ConsistencyToken: tok}, true)
		}

		tok = ops.mustWrite(t, http.MethodDelete, tenantPath("t1"), nil)

		for _, p := range probes {
			a.mustCheck(t, checkRequest{TenantID: "t1", UserID: p.user, Permission: p.key, Resource: p.res, ConsistencyToken: tok}, false)
		}
		// Even the platform and partner admins: the tenant no longer hangs under them.
		check(t, "t1", "root", "scaibunker:create", false)
		check(t, "t1", "padmin", "scaibunker:create", false)
		for _, user := range []string{"alice", "frank", "gina", "sa:ci-bot"} {
			if got := a.mustPermissions(t, "t1", user, tok); len(got) != 0 {
				t.Errorf("after offboarding, %s holds %v in t1", user, got)
			}
		}
		ops.mustStatus(t, http.MethodGet, rolePath("t1", "operators"), nil, http.StatusNotFound, "not_found")

		// Every relationship is gone, not only hidden: a new tenant with the same id starts empty.
		tok = ops.mustTenant(t, "t1", "p1")
		for _, p := range probes {
			a.mustCheck(t, checkRequest{TenantID: "t1", UserID: p.user, Permission: p.key, Resource: p.res, ConsistencyToken: tok}, false)
		}
		check(t, "t1", "padmin", "scaibunker:create", true) // the new tenant is under p1 again
		ops.mustStatus(t, http.MethodGet, rolePath("t1", "operators"), nil, http.StatusNotFound, "not_found")

		// The other tenants are untouched.
		for _, p := range probes[1:] {
			res := p.res
			if res != nil && res.Type == "binding" {
				continue // t2 has no binding
			}
			a.mustCheck(t, checkRequest{TenantID: "t2", UserID: p.user, Permission: p.key, Resource: res, ConsistencyToken: tok}, true)
		}
		check(t, "t2", "erin", "scaiskills:view", true)
		check(t, "t3", "root", "scaibunker:create", true)
	})

	t.Run("DeletePartner", func(t *testing.T) {
		ops.mustStatus(t, http.MethodDelete, partnerPath("p2"), nil, http.StatusConflict, "conflict")
		ops.mustWrite(t, http.MethodDelete, tenantPath("t3"), nil)
		tok = ops.mustWrite(t, http.MethodDelete, partnerPath("p2"), nil)
		ops.mustStatus(t, http.MethodPut, tenantPath("t4"), map[string]string{"partner_id": "p2"}, http.StatusNotFound, "not_found")
	})

	a.mustReconcileAudit(t)
}

func sameSet(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}
