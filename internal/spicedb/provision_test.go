package spicedb

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

	"github.com/scailabs/authzd/internal/authz"
)

func mustOpenMemory(t *testing.T) *Graph {
	t.Helper()
	model := mustManifests(t)
	g, err := Open(context.Background(), Config{Schema: model.Schema(), Timeout: 5 * time.Second,
		Embedded: EmbeddedConfig{Datastore: "memory"}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = g.Close() })
	return g
}

// TestRecreatedTenantInheritsNothing: an offboarding interrupted after its first step (the tenant's
// own relationships gone, its roles and resources not yet) must not hand those to a tenant re-created
// under the same id: PutTenant purges them before it creates.
func TestRecreatedTenantInheritsNothing(t *testing.T) {
	g := mustOpenMemory(t)
	ctx := context.Background()
	alice := authz.Subject{Kind: authz.SubjectUser, ID: "alice"}
	key, err := authz.ParseKey("scaibunker:execute")
	if err != nil {
		t.Fatal(err)
	}
	mustToken := mustWrite(t)
	mustToken(g.PutPartner(ctx, "p"))
	mustToken(g.PutTenant(ctx, "t", "p"))
	mustToken(g.PutRole(ctx, "t", "ops", []authz.Key{key}))
	mustToken(g.SetMember(ctx, "t", "ops", alice, true))
	mustToken(g.PutResource(ctx, "t", authz.Resource{Type: "bunker", ID: "b"}, alice))

	// The first step of DeleteTenant only, as if authzd died right after it.
	mustToken(g.deleteWhere(ctx, &v1.RelationshipFilter{ResourceType: typeTenant, OptionalResourceId: "t"}, nil, nil))
	left, err := g.read(ctx, &v1.RelationshipFilter{ResourceType: typeRole, OptionalResourceIdPrefix: "t/"})
	if err != nil || len(left) == 0 {
		t.Fatalf("setup: want the old role left behind, got %d relationships (%v)", len(left), err)
	}

	mustToken(g.PutTenant(ctx, "t", "p"))
	for _, typ := range []string{typeRole, "bunker"} {
		got, err := g.read(ctx, &v1.RelationshipFilter{ResourceType: typ, OptionalResourceIdPrefix: "t/"})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 0 {
			t.Errorf("re-created tenant inherited %d %s relationships, first %v", len(got), typ, got[0])
		}
	}
	if _, err := g.GetRole(ctx, "t", "ops"); authz.ErrorCode(err) != authz.ENOTFOUND {
		t.Errorf("GetRole of the old role: err = %v, want not found", err)
	}
}

// TestPutRoleReplacesLeftoverGrants: grants left by an interrupted DeleteRole (role and members gone)
// are replaced by the next PutRole of the same id, which writes the whole catalogue.
func TestPutRoleReplacesLeftoverGrants(t *testing.T) {
	g := mustOpenMemory(t)
	ctx := context.Background()
	k1, _ := authz.ParseKey("scaibunker:execute")
	k2, _ := authz.ParseKey("scaibunker:create")
	must := mustWrite(t)
	must(g.PutPartner(ctx, "p"))
	must(g.PutTenant(ctx, "t", "p"))
	must(g.PutRole(ctx, "t", "ops", []authz.Key{k1}))
	// DeleteRole's first step only.
	must(g.deleteWhere(ctx, &v1.RelationshipFilter{ResourceType: typeRole, OptionalResourceId: "t/ops"}, nil, nil))
	must(g.PutRole(ctx, "t", "ops", []authz.Key{k2}))
	got, err := g.GetRole(ctx, "t", "ops")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != k2 {
		t.Errorf("role keys = %v, want exactly [%v]", got, k2)
	}
}
