package spicedb

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

	"github.com/scailabs/authzd/internal/authz"
)

// TestWriteBatchTooLarge: a batch over the SpiceDB's per-call limit answers
// too_large (so that the import splits it), and one within it lands.
func TestWriteBatchTooLarge(t *testing.T) {
	g, err := Open(context.Background(), Config{Schema: mustManifests(t).Schema(), Timeout: 5 * time.Second,
		Embedded: EmbeddedConfig{Datastore: "memory", MaxUpdatesPerWrite: 100}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	updates := func(n int) []authz.Update {
		out := make([]authz.Update, n)
		for i := range out {
			out[i] = authz.Update{Relationship: platformRel(typePartner, fmt.Sprintf("p%d", i))}
		}
		return out
	}
	ctx := authz.WithWriteID(context.Background(), "import-test")
	if _, err := g.WriteBatch(ctx, updates(101), nil); authz.ErrorCode(err) != authz.ETOOLARGE {
		t.Fatalf("101 updates: %v, want too_large", err)
	}
	if _, err := g.WriteBatch(ctx, updates(100), nil); err != nil {
		t.Fatalf("100 updates: %v", err)
	}
	// A parent that does not exist fails the batch as a conflict, writing nothing.
	if _, err := g.WriteBatch(ctx, []authz.Update{{Relationship: relTo(typePartner, "p0", relAdmin, user("alice"))}},
		[]authz.Condition{parent(typePartner, "gone")}); authz.ErrorCode(err) != authz.ECONFLICT {
		t.Fatalf("missing parent: %v, want conflict", err)
	}
	w, err := g.ReadWorld(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	recs, unexpressed := w.Records()
	if len(recs) != 100 || unexpressed != 0 || !w.HasPartner("p99") || w.HasPartner("p100") {
		t.Fatalf("world after the writes: %d records, %d unexpressed", len(recs), unexpressed)
	}
}

// TestWorldLeavesOutWhatNoRecordExpresses: relationships written straight
// into SpiceDB that no record can say (a member of a role that does not
// exist, an owner on a resource of a tenant that does not exist) are counted, not exported, and
// a record's plan on them writes what its PUT would.
func TestWorldLeavesOutWhatNoRecordExpresses(t *testing.T) {
	g := mustOpenMemory(t)
	ctx := context.Background()
	must := mustWrite(t)
	must(g.PutPartner(ctx, "p"))
	must(g.PutTenant(ctx, "t", "p"))
	must(g.SetMember(ctx, "t", "tenant_user", user("alice"), true))
	must(g.write(ctx, []*v1.RelationshipUpdate{
		touch(rel(typeRole, "t/x", relMember, subjectRef(user("carol")))), // a member of a role that does not exist
		touch(rel("bunker", "gone/b1", relOwner, subjectRef(user("bob")))),
	}, nil, nil))
	w, err := g.ReadWorld(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	recs, unexpressed := w.Records()
	var lines []string
	for _, r := range recs {
		lines = append(lines, string(r.AppendJSON(nil)))
	}
	want := []string{`{"kind":"partner","partner_id":"p"}`, `{"kind":"tenant","tenant_id":"t","partner_id":"p"}`,
		`{"kind":"member","tenant_id":"t","role_id":"tenant_user","user_id":"alice"}`}
	if !slices.Equal(lines, want) || unexpressed != 2 {
		t.Fatalf("records %q, %d unexpressed; want %q and 2", lines, unexpressed, want)
	}
	// Creating tenant "gone" purges what is left under its id first, as PutTenant does.
	p := w.Plan(authz.Record{Kind: authz.KindTenant, TenantID: "gone", PartnerID: "p"})
	if p.Status != authz.StatusCreated || len(p.Purge) != 1 || !p.Purge[0].Delete || len(p.Updates) != 2 {
		t.Fatalf("plan of a tenant over leftovers: %+v", p)
	}
}

// TestPlanIsConditionedOnWhatItRead: a record's writes land only on the
// state the import read, as the PUT routes' read-modify-writes do: a tenant
// moved or a resource given an owner meanwhile fails the batch, leaving one
// partner and one owner.
func TestPlanIsConditionedOnWhatItRead(t *testing.T) {
	g := mustOpenMemory(t)
	ctx := authz.WithWriteID(context.Background(), "import-test")
	must := mustWrite(t)
	for _, p := range []string{"p", "q", "r"} {
		must(g.PutPartner(ctx, p))
	}
	must(g.PutTenant(ctx, "t", "p"))
	w, err := g.ReadWorld(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	move := w.Plan(authz.Record{Kind: authz.KindTenant, TenantID: "t", PartnerID: "q"})
	res := w.Plan(authz.Record{Kind: authz.KindResource, TenantID: "t", Resource: authz.Resource{Type: "bunker", ID: "b"}, Owner: user("alice")})
	if move.Status != authz.StatusUpdated || res.Status != authz.StatusCreated {
		t.Fatalf("plans: %+v %+v", move, res)
	}
	must(g.PutTenant(ctx, "t", "r"))
	must(g.PutResource(ctx, "t", authz.Resource{Type: "bunker", ID: "b"}, user("bob")))
	for name, p := range map[string]authz.RecordPlan{"move": move, "resource": res} {
		if _, err := g.WriteBatch(ctx, p.Updates, p.Conditions); authz.ErrorCode(err) != authz.ECONFLICT {
			t.Fatalf("%s over a changed state: %v, want conflict", name, err)
		}
	}
	after, err := g.ReadWorld(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	recs, _ := after.Records()
	var lines []string
	for _, r := range recs {
		lines = append(lines, string(r.AppendJSON(nil)))
	}
	want := []string{`{"kind":"partner","partner_id":"r"}`, `{"kind":"tenant","tenant_id":"t","partner_id":"r"}`,
		`{"kind":"resource","tenant_id":"t","resource":{"type":"bunker","id":"b"},"owner_id":"bob"}`}
	if !slices.Equal(lines, want) {
		t.Fatalf("after the refused batches: %q, want %q", lines, want)
	}
}
