package integration

import (
	"context"
	"testing"
)

// TestModules plays the flows of the ScaiBunker and ScaiSkills permission pages
// (../shared/reference/*.txt) with the custom roles those pages recommend.
func TestModules(t *testing.T) {
	a := startApp(t)
	ops := a.as("ops-admin")
	ops.mustPartner(t, "acme")
	ops.mustTenant(t, "ta", "acme")
	ops.mustTenant(t, "tb", "acme")

	t.Run("ScaiBunker", func(t *testing.T) { testScaiBunker(t, a) })
	t.Run("ScaiSkills", func(t *testing.T) { testScaiSkills(t, a) })

	a.mustReconcileAudit(t)
}

func testScaiBunker(t *testing.T, a *testApp) {
	ops := a.as("ops-admin")
	// "Bot operators", "Allowlisted-network agents" and "Image maintainers" from the page.
	botOperator := []string{"scaibunker:create", "scaibunker:execute", "scaibunker:files", "scaibunker:shell", "scaibunker:network:registry"}
	for _, tenant := range []string{"ta", "tb"} {
		ops.mustRole(t, tenant, "bot-operators", botOperator...)
		ops.mustRole(t, tenant, "allowlisted-agents", append([]string{"scaibunker:network:allowlisted"}, botOperator...)...)
		ops.mustRole(t, tenant, "image-maintainers", "scaibunker:images:manage")
	}
	ops.mustMember(t, "ta", "bot-operators", "op1")
	ops.mustMember(t, "ta", "bot-operators", "op3")
	ops.mustMember(t, "tb", "bot-operators", "op2")
	ops.mustMember(t, "ta", "allowlisted-agents", "sa:agent")
	ops.mustMember(t, "ta", "image-maintainers", "imgr")
	ops.mustResource(t, "ta", "bunker", "b1", "op1")
	ops.mustResource(t, "ta", "bunker", "b-agent", "sa:agent")
	tok := ops.mustResource(t, "tb", "bunker", "b2", "op2")

	bunker := func(id string) *resourceRef { return &resourceRef{Type: "bunker", ID: id} }
	cases := []struct {
		name string
		req  checkRequest
		want bool
	}{
		{"operator creates in own tenant", checkRequest{TenantID: "ta", UserID: "op1", Permission: "scaibunker:create"}, true},
		{"operator cannot create in another tenant", checkRequest{TenantID: "tb", UserID: "op1", Permission: "scaibunker:create"}, false},
		{"operator executes in own bunker", checkRequest{TenantID: "ta", UserID: "op1", Permission: "scaibunker:execute", Resource: bunker("b1"), Action: "bunker.exec"}, true},
		{"operator opens a shell in own bunker", checkRequest{TenantID: "ta", UserID: "op1", Permission: "scaibunker:shell", Resource: bunker("b1")}, true},
		{"operator uses files in own bunker", checkRequest{TenantID: "ta", UserID: "op1", Permission: "scaibunker:files", Resource: bunker("b1")}, true},
		{"operator is not root in own bunker", checkRequest{TenantID: "ta", UserID: "op1", Permission: "scaibunker:root", Resource: bunker("b1")}, false},
		{"operator cannot execute in a colleague's bunker", checkRequest{TenantID: "ta", UserID: "op3", Permission: "scaibunker:execute", Resource: bunker("b1")}, false},
		{"operator cannot execute in another tenant's bunker", checkRequest{TenantID: "tb", UserID: "op1", Permission: "scaibunker:execute", Resource: bunker("b2")}, false},
		{"another tenant's bunker is not found under one's own tenant", checkRequest{TenantID: "ta", UserID: "op1", Permission: "scaibunker:execute", Resource: bunker("b2")}, false},
		{"other tenant's operator executes in own bunker", checkRequest{TenantID: "tb", UserID: "op2", Permission: "scaibunker:execute", Resource: bunker("b2")}, true},
		{"other tenant's operator cannot execute in ta's bunker", checkRequest{TenantID: "ta", UserID: "op2", Permission: "scaibunker:execute", Resource: bunker("b1")}, false},

		{"operator: registry profile", checkRequest{TenantID: "ta", UserID: "op1", Permission: "scaibunker:network:registry"}, true},
		{"operator: no allowlisted profile", checkRequest{TenantID: "ta", UserID: "op1", Permission: "scaibunker:network:allowlisted"}, false},
		{"operator: no unrestricted profile", checkRequest{TenantID: "ta", UserID: "op1", Permission: "scaibunker:network:unrestricted"}, false},
		{"operator: no transit profile", checkRequest{TenantID: "ta", UserID: "op1", Permission: "scaibunker:network:transit"}, false},
		{"operator: no l2 transparency", checkRequest{TenantID: "ta", UserID: "op1", Permission: "scaibunker:l2_transparency"}, false},
		{"operator: no image management", checkRequest{TenantID: "ta", UserID: "op1", Permission: "scaibunker:images:manage"}, false},

		{"agent: registry profile", checkRequest{TenantID: "ta", UserID: "sa:agent", Permission: "scaibunker:network:registry"}, true},
		{"agent: allowlisted profile", checkRequest{TenantID: "ta", UserID: "sa:agent", Permission: "scaibunker:network:allowlisted"}, true},
		{"agent: no unrestricted profile", checkRequest{TenantID: "ta", UserID: "sa:agent", Permission: "scaibunker:network:unrestricted"}, false},
		{"agent executes in own bunker", checkRequest{TenantID: "ta", UserID: "sa:agent", Permission: "scaibunker:execute", Resource: bunker("b-agent")}, true},
		{"agent cannot execute in op1's bunker", checkRequest{TenantID: "ta", UserID: "sa:agent", Permission: "scaibunker:execute", Resource: bunker("b1")}, false},

		{"image maintainer manages images", checkRequest{TenantID: "ta", UserID: "imgr", Permission: "scaibunker:images:manage"}, true},
		{"image maintainer cannot create bunkers", checkRequest{TenantID: "ta", UserID: "imgr", Permission: "scaibunker:create"}, false},
		{"image maintainer cannot manage images in another tenant", checkRequest{TenantID: "tb", UserID: "imgr", Permission: "scaibunker:images:manage"}, false},
	}
	for i := range cases {
		cases[i].req.ConsistencyToken = tok
		a.mustCheck(t, cases[i].req, cases[i].want)
	}

	// check_bulk answers the same, in order.
	items := make([]checkRequest, len(cases))
	for i, c := range cases {
		items[i] = c.req
	}
	r, results, err := a.checkBulk(context.Background(), items)
	if err != nil || r.Status != 200 {
		t.Fatalf("check_bulk: %v %s", err, r)
	}
	for i, c := range cases {
		if *results[i].Allowed != c.want {
			t.Errorf("check_bulk item %d (%s): allowed = %v, want %v", i, c.name, *results[i].Allowed, c.want)
		}
	}

	// The permission list is exactly the role's keys.
	if got := a.mustPermissions(t, "ta", "op1", tok); !sameSet(got, botOperator) {
		t.Errorf("op1's permissions = %v, want %v", got, botOperator)
	}
	if got := a.mustPermissions(t, "tb", "op1", tok); len(got) != 0 {
		t.Errorf("op1's permissions in tb = %v, want none", got)
	}
}

func testScaiSkills(t *testing.T, a *testApp) {
	ops := a.as("ops-admin")
	// "Skill operators" and the smaller supply-chain role from the page.
	ops.mustRole(t, "ta", "skill-operators", "scaiskills:view", "scaiskills:publish", "scaiskills:bind")
	ops.mustRole(t, "ta", "supply-chain", "scaiskills:grant", "scaiskills:manage")
	ops.mustMember(t, "ta", "skill-operators", "eng")
	ops.mustMember(t, "ta", "supply-chain", "sec")
	// rogue holds both roles: bind and grant.
	ops.mustMember(t, "ta", "skill-operators", "rogue")
	ops.mustMember(t, "ta", "supply-chain", "rogue")
	ops.mustMember(t, "ta", "tenant_admin", "admin1")
	ops.mustMember(t, "ta", "tenant_admin", "admin2")
	ops.mustMember(t, "ta", "tenant_viewer", "viewer")
	ops.mustRole(t, "tb", "supply-chain", "scaiskills:grant", "scaiskills:manage")
	tok := ops.mustMember(t, "tb", "supply-chain", "sec-b")

	check := func(user, key string, res *resourceRef, want bool) {
		t.Helper()
		a.mustCheck(t, checkRequest{TenantID: "ta", UserID: user, Permission: key, Resource: res, ConsistencyToken: tok}, want)
	}

	// eng may bind and does so; binding bd1 is owned by its binder.
	check("eng", "scaiskills:bind", nil, true)
	check("eng", "scaiskills:grant", nil, false) // bind does not grant approval
	tok = ops.mustResource(t, "ta", "binding", "bd1", "eng")
	bd1 := &resourceRef{Type: "binding", ID: "bd1"}
	check("eng", "scaiskills:view", bd1, true)
	check("eng", "scaiskills:grant", bd1, false)
	check("sec", "scaiskills:grant", bd1, true) // a separate approver approves
	check("sec", "scaiskills:bind", nil, false)

	// rogue holds scaiskills:grant but may not approve its own binding.
	check("rogue", "scaiskills:grant", nil, true)
	tok = ops.mustResource(t, "ta", "binding", "bd2", "rogue")
	bd2 := &resourceRef{Type: "binding", ID: "bd2"}
	check("rogue", "scaiskills:grant", bd2, false)
	check("sec", "scaiskills:grant", bd2, true)
	check("rogue", "scaiskills:grant", bd1, true) // others' bindings it may approve

	// A tenant_admin holds every key, and still not the approval of its own binding.
	tok = ops.mustResource(t, "ta", "binding", "bd3", "admin1")
	bd3 := &resourceRef{Type: "binding", ID: "bd3"}
	check("admin1", "scaiskills:grant", nil, true)
	check("admin1", "scaiskills:grant", bd3, false)
	check("admin2", "scaiskills:grant", bd3, true)

	// A service account that binds is no exception.
	ops.mustMember(t, "ta", "supply-chain", "sa:release-bot")
	tok = ops.mustResource(t, "ta", "binding", "bd4", "sa:release-bot")
	check("sa:release-bot", "scaiskills:grant", &resourceRef{Type: "binding", ID: "bd4"}, false)
	check("sa:release-bot", "scaiskills:grant", bd1, true)

	// tenant_viewer sees, nothing more; another tenant's approver approves nothing here.
	check("viewer", "scaiskills:view", nil, true)
	check("viewer", "scaiskills:view", bd1, true)
	check("viewer", "scaiskills:bind", nil, false)
	check("viewer", "scaiskills:grant", bd1, false)
	check("sec-b", "scaiskills:grant", bd1, false)
	a.mustCheck(t, checkRequest{TenantID: "tb", UserID: "sec-b", Permission: "scaiskills:grant", ConsistencyToken: tok}, true)
}
