package whatif

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/authzed/spicedb/pkg/tuple"

	"github.com/scailabs/authzd/internal/authz"
	"github.com/scailabs/authzd/internal/spicedb"
	"github.com/scailabs/authzd/schema"
)

func openGraph(t *testing.T) *spicedb.Graph {
	t.Helper()
	m, err := schema.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	g, err := spicedb.Open(context.Background(), spicedb.Config{Schema: m.Schema(), Timeout: 5 * time.Second,
		Embedded: spicedb.EmbeddedConfig{Datastore: "memory"}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	return g
}

func must(t *testing.T) func(string, error) string {
	return func(tok string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
}

// TestRunPredictsTheWrite: the what-if's flips on a small world are the
// answers that change when the same changes are written for real, and a
// change the write refuses names its index and the write's message.
func TestRunPredictsTheWrite(t *testing.T) {
	ctx := context.Background()
	g := openGraph(t)
	w := must(t)
	alice, bob := authz.Subject{Kind: authz.SubjectUser, ID: "alice"}, authz.Subject{Kind: authz.SubjectUser, ID: "bob"}
	create, view := authz.MustParseKey("scaibunker:create"), authz.MustParseKey("scaiskills:view")
	w(g.PutPartner(ctx, "p"))
	w(g.PutTenant(ctx, "t", "p"))
	w(g.PutRole(ctx, "t", "ops", []authz.Key{create, view}))
	w(g.SetMember(ctx, "t", "ops", alice, true))
	tok := w(g.SetMember(ctx, "t", "tenant_viewer", bob, true))
	questions := []Question{
		{Subject: alice, Key: create, Decisions: 3}, {Subject: alice, Key: view, Decisions: 5},
		{Subject: bob, Key: create, Decisions: 1}, {Subject: bob, Key: view, Decisions: 1},
	}
	changes := []authz.Record{
		{Op: authz.OpPut, Kind: authz.KindRole, TenantID: "t", RoleID: "ops", Name: "ops", Keys: []authz.Key{view}},
		{Op: authz.OpDelete, Kind: authz.KindMember, TenantID: "t", RoleID: "tenant_viewer", User: bob},
	}
	e := New(g, 2)
	res, err := e.Run(ctx, "t", tok, changes, questions)
	if err != nil {
		t.Fatal(err)
	}
	before := map[int]bool{}
	for i, q := range questions {
		d, err := g.Check(ctx, authz.Check{TenantID: "t", Subject: q.Subject, Key: q.Key, ConsistencyToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		before[i] = d.Allowed
	}
	w(g.PutRole(ctx, "t", "ops", []authz.Key{view}))
	tok = w(g.SetMember(ctx, "t", "tenant_viewer", bob, false))
	want := map[string]bool{}
	for i, q := range questions {
		d, err := g.Check(ctx, authz.Check{TenantID: "t", Subject: q.Subject, Key: q.Key, ConsistencyToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		if d.Allowed != before[i] {
			want[q.Subject.ID+" "+q.Key.String()] = before[i]
		}
	}
	got := map[string]bool{}
	for _, f := range res.Flips {
		got[f.Subject.ID+" "+f.Key.String()] = f.From
	}
	if len(want) == 0 || len(got) != len(want) {
		t.Fatalf("flips %v, want %v", got, want)
	}
	for k, from := range want {
		if g, ok := got[k]; !ok || g != from {
			t.Fatalf("flips %v, want %v", got, want)
		}
	}
	if res.Questions != 4 || res.ZedToken == "" {
		t.Fatalf("questions %d token %q", res.Questions, res.ZedToken)
	}

	_, err = e.Run(ctx, "t", "", []authz.Record{
		{Op: authz.OpPut, Kind: authz.KindMember, TenantID: "t", RoleID: "nope", User: alice},
	}, questions)
	if authz.ErrorCode(err) != authz.EINVALID || authz.ErrorMessage(err) != `changes[0]: role "nope" does not exist in tenant "t"` {
		t.Fatalf("refused change: %v", err)
	}
}

// BenchmarkRun is one what-if of 2,000 questions on a tenant of 200 users
// and 50 bunkers, in process (memory SpiceDB):
//
//	go test -run '^$' -bench Run -benchtime 1x -cpuprofile cpu.out ./internal/whatif
func BenchmarkRun(b *testing.B) {
	ctx := context.Background()
	m, err := schema.Embedded()
	if err != nil {
		b.Fatal(err)
	}
	g, err := spicedb.Open(ctx, spicedb.Config{Schema: m.Schema(), Timeout: 5 * time.Second,
		Embedded: spicedb.EmbeddedConfig{Datastore: "memory"}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	w := func(tok string, err error) string {
		if err != nil {
			b.Fatal(err)
		}
		return tok
	}
	create, execute, view := authz.MustParseKey("scaibunker:create"), authz.MustParseKey("scaibunker:execute"), authz.MustParseKey("scaiskills:view")
	w(g.PutPartner(ctx, "p"))
	w(g.PutTenant(ctx, "t", "p"))
	w(g.PutRole(ctx, "t", "ops", []authz.Key{create, execute, view}))
	var tok string
	for i := range 200 {
		tok = w(g.SetMember(ctx, "t", "ops", authz.Subject{Kind: authz.SubjectUser, ID: fmt.Sprint("u", i)}, true))
	}
	for i := range 50 {
		tok = w(g.PutResource(ctx, "t", authz.Resource{Type: "bunker", ID: fmt.Sprint("b", i)}, authz.Subject{Kind: authz.SubjectUser, ID: fmt.Sprint("u", i)}))
	}
	var qs []Question
	for i := range 2000 {
		q := Question{Subject: authz.Subject{Kind: authz.SubjectUser, ID: fmt.Sprint("u", i%200)}, Key: []authz.Key{create, execute, view}[i%3], Decisions: 1}
		if i%2 == 0 && i%3 != 2 {
			q.Resource = &authz.Resource{Type: "bunker", ID: fmt.Sprint("b", i%50)}
		}
		qs = append(qs, q)
	}
	changes := []authz.Record{{Op: authz.OpPut, Kind: authz.KindRole, TenantID: "t", RoleID: "ops", Name: "ops", Keys: []authz.Key{view}}}
	e := New(g, 2)
	b.ResetTimer()
	for range b.N {
		res, err := e.Run(ctx, "t", tok, changes, qs)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(res.Copy.Seconds(), "copy-s")
		b.ReportMetric(res.Before.Seconds(), "before-s")
		b.ReportMetric(res.After.Seconds(), "after-s")
	}
}

// TestCopyNeverReadsMissingAsEmpty: a walk that reaches an object the copy
// does not hold fails with ErrIncomplete, through SpiceDB's engine, instead
// of reading it as empty.
func TestCopyNeverReadsMissingAsEmpty(t *testing.T) {
	ctx := context.Background()
	m, err := schema.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	rep, err := newReplica(ctx, m.Schema())
	if err != nil {
		t.Fatal(err)
	}
	defer rep.close()
	// tenant t grants a key to the members of another tenant's role, whose
	// objects the copy was not given.
	rep.s.tenants["t"] = true
	rep.s.touch(tuple.MustParse("tenant:t#platform@platform:scaigrid"))
	rep.s.touch(tuple.MustParse("tenant:t#grant_scaibunker__create@role:u/ops#member"))
	alice := authz.Subject{Kind: authz.SubjectUser, ID: "alice"}
	_, err = rep.check(ctx, target{typ: "tenant", id: "t", perm: "scaibunker__create", subject: alice})
	if !errors.Is(err, ErrIncomplete) {
		t.Fatalf("check through a missing tenant: %v, want ErrIncomplete", err)
	}
	rep.s.tenants["u"] = true
	if ok, err := rep.check(ctx, target{typ: "tenant", id: "t", perm: "scaibunker__create", subject: alice}); err != nil || ok {
		t.Fatalf("with the tenant held (and empty): %v %v", ok, err)
	}
}
