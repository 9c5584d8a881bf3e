package explain

import (
	"slices"
	"strings"
	"testing"

	"github.com/scailabs/authzd/internal/authz"
)

func has(obj, perm, kind string, steps ...*authz.Trace) *authz.Trace {
	return &authz.Trace{Object: obj, Permission: perm, Kind: kind, Result: authz.TraceHas, Steps: steps}
}

func no(obj, perm, kind string, steps ...*authz.Trace) *authz.Trace {
	return &authz.Trace{Object: obj, Permission: perm, Kind: kind, Result: authz.TraceNo, Steps: steps}
}

// TestReasons covers what end-to-end runs cannot force: traces whose steps
// SpiceDB answered from its cache, and several roles checked in one step.
func TestReasons(t *testing.T) {
	alice := authz.Subject{Kind: authz.SubjectUser, ID: "alice"}
	execute := authz.MustParseKey("scaibunker:execute")
	b1 := &authz.Resource{Type: "bunker", ID: "b1"}
	facts := authz.Facts{PartnerID: "p1", CustomRoles: []string{"ops"}, GrantingRoles: []string{"ops", "ops2"},
		ResourceExists: true, Owners: []authz.Subject{alice}, OwnerRule: authz.OwnerRequired}
	roles := []string{authz.RoleSuperAdmin, authz.RolePartnerAdmin, authz.RoleTenantAdmin}
	cached := &authz.Trace{Object: "bunker:t1/b1", Permission: "scaibunker__execute", Kind: "permission", Result: authz.TraceHas, Cached: true}
	cases := []struct {
		name    string
		allowed bool
		trace   *authz.Trace
		want    []string
	}{
		{"FullTrace", true, has("bunker:t1/b1", "scaibunker__execute", "permission",
			has("bunker:t1/b1", "owner", "relation"),
			has("tenant:t1", "scaibunker__execute", "permission",
				no("tenant:t1", "tenant_admin", "relation"),
				has("tenant:t1", "grant_scaibunker__execute", "relation", has("role:t1/ops,t1/ops2", "member", "relation")))),
			[]string{
				"alice owns bunker b1; scaibunker:execute on a bunker needs ownership as well as the key.",
				`alice is a member of the custom role "ops" of tenant t1, which grants scaibunker:execute.`,
			}},
		{"CachedRoot", true, cached, []string{
			`alice is a member of the custom role "ops" of tenant t1, which grants scaibunker:execute.`,
			"alice owns bunker b1; scaibunker:execute on a bunker needs ownership as well as the key.",
		}},
		{"CachedTenantStep", true, has("bunker:t1/b1", "scaibunker__execute", "permission",
			has("bunker:t1/b1", "owner", "relation"),
			&authz.Trace{Object: "tenant:t1", Permission: "scaibunker__execute", Kind: "permission", Result: authz.TraceHas, Cached: true}),
			[]string{
				"alice owns bunker b1; scaibunker:execute on a bunker needs ownership as well as the key.",
				`alice is a member of the custom role "ops" of tenant t1, which grants scaibunker:execute.`,
			}},
		// As SpiceDB v1.57 reports it: the grant relation answered from the cache, as a "permission".
		{"CachedGrantStep", true, has("bunker:t1/b1", "scaibunker__execute", "permission",
			has("bunker:t1/b1", "owner", "relation"),
			has("tenant:t1", "scaibunker__execute", "permission",
				&authz.Trace{Object: "tenant:t1", Permission: "tenant_admin", Kind: "permission", Result: authz.TraceNo, Cached: true},
				&authz.Trace{Object: "tenant:t1", Permission: "grant_scaibunker__execute", Kind: "permission", Result: authz.TraceHas, Cached: true})),
			[]string{
				"alice owns bunker b1; scaibunker:execute on a bunker needs ownership as well as the key.",
				`alice is a member of the custom role "ops" of tenant t1, which grants scaibunker:execute.`,
			}},
		{"NoTrace", true, nil, []string{
			`alice is a member of the custom role "ops" of tenant t1, which grants scaibunker:execute.`,
			"alice owns bunker b1; scaibunker:execute on a bunker needs ownership as well as the key.",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Reasons(Input{
				Check:       authz.Check{TenantID: "t1", Subject: alice, Key: execute, Resource: b1},
				Explanation: authz.Explanation{Decision: authz.Decision{Allowed: tc.allowed}, Trace: tc.trace, Facts: facts},
				KeyRoles:    roles,
			})
			if !slices.Equal(got, tc.want) {
				t.Errorf("reasons:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}

	// A partner admin's reasons name the partner and the tenant's membership in it whether SpiceDB
	// walked to the partner or answered the tenant's partner_admin step from its cache.
	t.Run("PartnerAdminCachedOrNot", func(t *testing.T) {
		view := authz.MustParseKey("scaiskills:view")
		in := Input{Check: authz.Check{TenantID: "t2", Subject: authz.Subject{Kind: authz.SubjectUser, ID: "padm"}, Key: view},
			KeyRoles: roles}
		in.Explanation.Decision.Allowed = true
		in.Explanation.Facts = authz.Facts{PartnerID: "p1", PartnerAdmin: true}
		want := []string{"padm is an admin of partner p1, which tenant t2 belongs to; partner admins hold scaiskills:view."}
		for name, trace := range map[string]*authz.Trace{
			"Walked": has("tenant:t2", "scaiskills__view", "permission",
				no("tenant:t2", "super_admin", "permission"),
				has("tenant:t2", "partner_admin", "permission", has("partner:p1", "admin", "relation"))),
			"PartnerAdminStepCached": has("tenant:t2", "scaiskills__view", "permission",
				no("tenant:t2", "super_admin", "permission"),
				&authz.Trace{Object: "tenant:t2", Permission: "partner_admin", Kind: "permission", Result: authz.TraceHas, Cached: true}),
			"RootCached": {Object: "tenant:t2", Permission: "scaiskills__view", Kind: "permission", Result: authz.TraceHas, Cached: true},
		} {
			in.Explanation.Trace = trace
			if got := Reasons(in); !slices.Equal(got, want) {
				t.Errorf("%s: reasons:\n%s\nwant:\n%s", name, strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		}
	})

	t.Run("DeniedListsWhatWouldGrant", func(t *testing.T) {
		f := authz.Facts{PartnerID: "p1", BuiltinRoles: []string{authz.RoleTenantUser}, GrantingRoles: []string{"a", "b"}}
		got := Reasons(Input{
			Check:       authz.Check{TenantID: "t1", Subject: authz.Subject{Kind: authz.SubjectServiceAccount, ID: "bot"}, Key: execute},
			Explanation: authz.Explanation{Trace: no("tenant:t1", "scaibunker__execute", "permission"), Facts: f},
			KeyRoles:    roles,
		})
		want := []string{
			"No role grants scaibunker:execute to service account bot in tenant t1.",
			`scaibunker:execute is granted by platform super admins, admins of partner p1, the built-in role tenant_admin, the custom roles "a", "b".`,
			"service account bot holds the built-in role tenant_user in tenant t1; none of them grants scaibunker:execute.",
		}
		if !slices.Equal(got, want) {
			t.Errorf("reasons:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})

	t.Run("DeniedOnTheResourceSaysSoFirst", func(t *testing.T) {
		f := facts
		f.Owners = []authz.Subject{{Kind: authz.SubjectUser, ID: "bob"}}
		got := Reasons(Input{
			Check:       authz.Check{TenantID: "t1", Subject: alice, Key: execute, Resource: b1},
			Explanation: authz.Explanation{Trace: no("bunker:t1/b1", "scaibunker__execute", "permission", no("bunker:t1/b1", "owner", "relation")), Facts: f},
			KeyRoles:    roles,
		})
		want := []string{
			"alice is not the owner of bunker b1 (the owner is bob); scaibunker:execute on a bunker needs ownership as well as the key.",
			`alice is a member of the custom role "ops" of tenant t1, which grants scaibunker:execute.`,
		}
		if !slices.Equal(got, want) {
			t.Errorf("reasons:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
}
