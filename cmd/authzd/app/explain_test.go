package app_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// TestExplain: POST /v1/permissions/explain answers what a check answers, says
// why in sentences naming the role, partner, ownership or exclusion, and is
// audited like a check with action "explain". Each case runs twice: the
// second run finds SpiceDB's cache warm at the same revision, and must still
// explain.
func TestExplain(t *testing.T) {
	w := mustAZWorld(t)
	cases := []struct {
		name, body string
		allowed    bool
		mention    []string
	}{
		{"CustomRoleAndOwnership", checkBody("t1", "alice", "scaibunker:execute", "TOK", "bunker", "b1"), true,
			[]string{`alice is a member of the custom role "Bot operators" (id ops) of tenant t1, which grants scaibunker:execute.`,
				"alice owns bunker b1; scaibunker:execute on a bunker needs ownership as well as the key."}},
		{"NotTheOwner", checkBody("t1", "alice", "scaibunker:execute", "TOK", "bunker", "b2"), false,
			[]string{"alice is not the owner of bunker b2 (the owner is bob); scaibunker:execute on a bunker needs ownership as well as the key."}},
		{"NoRole", checkBody("t1", "mallory", "scaibunker:create", "TOK"), false,
			[]string{"No role grants scaibunker:create to mallory in tenant t1.",
				`scaibunker:create is granted by platform super admins, admins of partner p1, the built-in role tenant_admin, the custom role "Bot operators" (id ops).`,
				"mallory holds no role in tenant t1."}},
		{"RolesThatDoNotGrant", checkBody("t1", "vera", "scaibunker:execute", "TOK"), false,
			[]string{"vera holds the built-in role tenant_viewer in tenant t1; none of them grants scaibunker:execute."}},
		{"BinderExclusion", checkBody("t1", "alice", "scaiskills:grant", "TOK", "binding", "x1"), false,
			[]string{`alice is a member of the custom role "Approvers" (id approvers) of tenant t1, which grants scaiskills:grant.`,
				"alice bound binding x1, and the binder of a binding can never hold scaiskills:grant on it, whatever roles they hold."}},
		// After the binding check, SpiceDB has the tenant's grant step in its cache.
		{"TenantKeyAfterResourceCheck", checkBody("t1", "alice", "scaiskills:grant", "TOK"), true,
			[]string{`alice is a member of the custom role "Approvers" (id approvers) of tenant t1, which grants scaiskills:grant.`}},
		{"ApproverNotBinder", checkBody("t1", "gina", "scaiskills:grant", "TOK", "binding", "x1"), true,
			[]string{`gina is a member of the custom role "Approvers" (id approvers) of tenant t1, which grants scaiskills:grant.`,
				"gina did not bind binding x1, so the binder exclusion does not apply."}},
		{"PartnerAdmin", checkBody("t1", "pat", "scaibunker:admin:platform", "TOK"), true,
			[]string{"pat is an admin of partner p1, which tenant t1 belongs to; partner admins hold scaibunker:admin:platform."}},
		{"PartnerAdminOfAnotherTenant", checkBody("t2", "pat", "scaiskills:grant", "TOK"), true,
			[]string{"pat is an admin of partner p1, which tenant t2 belongs to; partner admins hold scaiskills:grant."}},
		{"SuperAdmin", checkBody("t2", "root", "scaiskills:manage", "TOK"), true,
			[]string{"root is a platform super admin; super admins hold every key in every tenant."}},
		{"BuiltinRole", checkBody("t1", "tara", "scaibunker:admin", "TOK"), true,
			[]string{"tara holds the built-in role tenant_admin in tenant t1, which grants scaibunker:admin."}},
		{"ServiceAccount", checkBody("t1", "sa:ci-bot", "scaibunker:create", "TOK"), true,
			[]string{`service account ci-bot is a member of the custom role "Bot operators" (id ops) of tenant t1, which grants scaibunker:create.`}},
		{"UnknownTenant", checkBody("t9", "alice", "scaibunker:create", "TOK"), false,
			[]string{"Tenant t9 does not exist, so nobody holds any key in it."}},
		{"UnknownBunker", checkBody("t1", "alice", "scaibunker:execute", "TOK", "bunker", "b9"), false,
			[]string{"bunker b9 is not registered in tenant t1."}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w.t = t
			for run := range 2 {
				r, rid := w.post("/v1/permissions/explain", tc.body)
				if r.status != 200 {
					t.Fatalf("run %d: %d %s", run, r.status, r.raw)
				}
				var x struct {
					Allowed    *bool           `json:"allowed"`
					CheckedAt  string          `json:"checked_at"`
					DecisionID string          `json:"decision_id"`
					Reasons    []string        `json:"reasons"`
					Trace      json.RawMessage `json:"trace"`
				}
				if err := json.Unmarshal([]byte(r.raw), &x); err != nil || x.Allowed == nil || x.CheckedAt == "" || x.DecisionID == "" {
					t.Fatalf("run %d: malformed answer %s", run, r.raw)
				}
				if *x.Allowed != tc.allowed {
					t.Errorf("run %d: allowed = %v, want %v", run, *x.Allowed, tc.allowed)
				}
				for _, m := range tc.mention {
					if !strings.Contains(strings.Join(x.Reasons, "\n"), m) {
						t.Errorf("run %d: reasons lack %q:\n%s", run, m, strings.Join(x.Reasons, "\n"))
					}
				}
				if !strings.Contains(string(x.Trace), `"object"`) {
					t.Errorf("run %d: no trace: %s", run, x.Trace)
				}
				rows := w.auditRows(rid)
				if len(rows) != 1 || rows[0].Action != "explain" || rows[0].DecisionID != x.DecisionID ||
					(rows[0].Decision == "allowed") != tc.allowed {
					t.Errorf("run %d: audit rows %+v", run, rows)
				}
			}
			// The same question as a check.
			c, _ := w.post("/v1/permissions/check", tc.body)
			if c.body["allowed"] != tc.allowed {
				t.Errorf("check answers %s", c.raw)
			}
		})
	}
	w.t = t

	// A partner admin's reasons name the partner and the tenant's membership in
	// it, and are the same whether SpiceDB's dispatch cache answered part of the
	// trace or not. Without a token the explanation reads a new revision (a
	// barrier), where nothing is cached; with the write's token it reads the
	// revision the earlier cases read, where PartnerAdminOfAnotherTenant left
	// the tenant's partner_admin step in SpiceDB's cache.
	t.Run("PartnerAdminCacheWarmAndCold", func(t *testing.T) {
		w.t = t
		want := []string{"pat is an admin of partner p1, which tenant t2 belongs to; partner admins hold scaiskills:view."}
		warm, cold := false, false
		for run := 0; run < 10 && !(warm && cold); run++ {
			token := "TOK"
			if run == 0 {
				token = ""
			}
			r, _ := w.post("/v1/permissions/explain", checkBody("t2", "pat", "scaiskills:view", token))
			var x struct {
				Allowed bool            `json:"allowed"`
				Reasons []string        `json:"reasons"`
				Trace   json.RawMessage `json:"trace"`
			}
			if err := json.Unmarshal([]byte(r.raw), &x); err != nil || r.status != 200 || !x.Allowed {
				t.Fatalf("run %d: %d %s", run, r.status, r.raw)
			}
			cached := strings.Contains(string(x.Trace), `"cached":true`)
			warm, cold = warm || cached, cold || !cached
			if strings.Join(x.Reasons, "\n") != strings.Join(want, "\n") {
				t.Errorf("run %d (SpiceDB's cache warm: %v): reasons %q, want %q; trace %s", run, cached, x.Reasons, want, x.Trace)
			}
		}
		if !warm || !cold {
			t.Errorf("in 10 asks SpiceDB's cache was warm: %v, cold: %v; the case needs both", warm, cold)
		}
	})

	t.Run("BadInput", func(t *testing.T) {
		w.t = t
		for _, body := range []string{`{}`, `{"tenant_id":"t1","user_id":"alice","permission":"scaibunker:fly"}`,
			`{"tenant_id":"t1","user_id":"alice","permission":"scaibunker:create","extra":1}`,
			checkBody("t1", "alice", "scaiskills:view", "", "bunker", "b1")} {
			r, rid := w.post("/v1/permissions/explain", body)
			if r.status != 400 {
				t.Errorf("%s: %d %s", body, r.status, r.raw)
			}
			if rows := w.auditRows(rid); len(rows) != 0 {
				t.Errorf("%s: audit rows %v", body, rows)
			}
		}
	})

	t.Run("Scope", func(t *testing.T) {
		w.t = t
		created := w.admin("POST", "/v1/tokens", `{"name":"prov","scopes":["provision"]}`, 201)
		secret := fmt.Sprint(created.body["token"])
		if r := w.do("POST", "/v1/permissions/explain", secret, checkBody("t1", "alice", "scaibunker:create", "")); r.status != 403 {
			t.Errorf("without the check scope: %d %s", r.status, r.raw)
		}
	})
}
