package spicedb

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/authzed/authzed-go/pkg/responsemeta"
	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/scailabs/authzd/internal/authz"
)

// TestDispatchBudget guards the schema's shape: the number of dispatches (each
// a datastore read) SpiceDB needs for a cold check. It counts operations, not
// time, so it is deterministic. Raise a budget only with a reason.
func TestDispatchBudget(t *testing.T) {
	model := mustManifests(t)
	ctx := context.Background()
	g, err := Open(ctx, Config{Schema: model.Schema(), Timeout: 5 * time.Second, Embedded: EmbeddedConfig{Datastore: "memory"}},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	must := mustWrite(t)
	must(g.PutPartner(ctx, "p1"))
	must(g.PutTenant(ctx, "t1", "p1"))
	must(g.PutRole(ctx, "t1", "ops", []authz.Key{authz.MustParseKey("scaibunker:create"), authz.MustParseKey("scaibunker:execute")}))
	must(g.PutRole(ctx, "t1", "ops2", []authz.Key{authz.MustParseKey("scaibunker:create")}))
	must(g.SetMember(ctx, "t1", "ops", user("alice"), true))
	must(g.SetMember(ctx, "t1", "ops2", user("carol"), true))
	zed, err := g.PutResource(ctx, "t1", authz.Resource{Type: "bunker", ID: "b1"}, user("alice"))
	must(zed, err)

	cases := []struct {
		name     string
		resource *v1.ObjectReference
		perm     string
		subject  string
		budget   int
	}{
		{"bunker ownership AND key", object("bunker", "t1/b1"), "scaibunker__execute", "alice", 10},
		{"tenant key, denied (every branch walked)", object("tenant", "t1"), "scaibunker__shell", "bob", 7},
		{"tenant key via custom role", object("tenant", "t1"), "scaibunker__create", "carol", 8},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var trailer metadata.MD
			// Each case checks a subject no earlier case touched, so the dispatch cache is cold.
			_, err := g.perms.CheckPermission(ctx, &v1.CheckPermissionRequest{
				Consistency: &v1.Consistency{Requirement: &v1.Consistency_AtLeastAsFresh{AtLeastAsFresh: &v1.ZedToken{Token: zed}}},
				Resource:    tc.resource, Permission: tc.perm,
				Subject: &v1.SubjectReference{Object: object("user", tc.subject)},
			}, grpc.Trailer(&trailer))
			if err != nil {
				t.Fatal(err)
			}
			vals := trailer.Get(string(responsemeta.DispatchedOperationsCount))
			if len(vals) == 0 {
				t.Fatalf("no dispatch count in trailer %v", trailer)
			}
			n, _ := strconv.Atoi(vals[0])
			t.Logf("case %d: %d dispatches", i, n)
			if n > tc.budget {
				t.Errorf("%d dispatches, budget %d", n, tc.budget)
			}
		})
	}
}
