package postgres_test

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/scailabs/authzd/internal/authz"
	"github.com/scailabs/authzd/internal/postgres"
)

// TestRoleNames: a role's name is the one of its latest role.put row, in its own tenant.
func TestRoleNames(t *testing.T) {
	db := mustOpen(t)
	log := postgres.NewAuditLog(db, postgres.AuditOptions{})
	defer log.Close()
	t0 := time.Now()
	put := func(tenant, role, name string, at time.Duration) authz.Event {
		return authz.Event{OccurredAt: t0.Add(at), Module: authz.AuditModule, Action: "role.put", TenantID: tenant,
			ResourceType: "role", ResourceID: role, Decision: authz.DecisionAllowed, DecisionID: uuid.NewString(),
			Details: map[string]any{"name": name}}
	}
	check := authz.Event{OccurredAt: t0, Module: "scaibunker", Action: "scaibunker:create", TenantID: "t1",
		ResourceID: "ops", Decision: authz.DecisionAllowed, DecisionID: uuid.NewString()}
	if err := log.Record(context.Background(),
		put("t1", "ops", "Operators", 0), put("t1", "ops", "Bot operators", time.Second), put("t2", "ops", "Other tenant", 2*time.Second),
		put("t1", "viewers", "Viewers", 0), check); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		tenant string
		ids    []string
		want   map[string]string
	}{
		{"LatestPutWins", "t1", []string{"ops", "viewers", "nope"}, map[string]string{"ops": "Bot operators", "viewers": "Viewers"}},
		{"OwnTenant", "t2", []string{"ops", "viewers"}, map[string]string{"ops": "Other tenant"}},
		{"None", "t1", nil, map[string]string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := db.RoleNames(context.Background(), tc.tenant, tc.ids)
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}
