package integration

import (
	"net/http"
	"testing"
)

// TestConsistency revokes and then checks with the zed token the revoke returned, 100 times in a row:
// a check at least as fresh as the revoke must never see the revoked access.
func TestConsistency(t *testing.T) {
	a := startApp(t)
	ops := a.as("ops-admin")
	ops.mustPartner(t, "p")
	ops.mustTenant(t, "t", "p")
	ops.mustRole(t, "t", "operators", "scaibunker:create", "scaibunker:execute")
	ops.mustResource(t, "t", "bunker", "b", "alice")

	const rounds = 100
	denied := 0
	for i := 0; i < rounds; i++ {
		// Alternate a custom role and a built-in one, so both kinds of relationship are exercised.
		role, key := "operators", "scaibunker:execute"
		if i%2 == 1 {
			role, key = "tenant_admin", "scaibunker:admin:tenant"
		}
		grant := ops.mustMember(t, "t", role, "alice")
		a.mustCheck(t, checkRequest{TenantID: "t", UserID: "alice", Permission: key, ConsistencyToken: grant}, true)

		revoke := ops.mustWrite(t, http.MethodDelete, memberPath("t", role, "alice"), nil)
		ans := a.mustCheck(t, checkRequest{TenantID: "t", UserID: "alice", Permission: key, ConsistencyToken: revoke}, false)
		if ans.CheckedAt == "" {
			t.Fatalf("round %d: no checked_at", i)
		}
		// A resource check goes through the tenant too.
		res := a.mustCheck(t, checkRequest{TenantID: "t", UserID: "alice", Permission: "scaibunker:execute",
			Resource: &resourceRef{Type: "bunker", ID: "b"}, ConsistencyToken: revoke}, false)
		if !*ans.Allowed && !*res.Allowed {
			denied++
		}
		if t.Failed() {
			t.Fatalf("round %d of %d: a check at the revoke's zed token still saw the access", i+1, rounds)
		}
	}
	if denied != rounds {
		t.Errorf("denied after revoke %d times out of %d", denied, rounds)
	}
	a.mustReconcileAudit(t)
}
