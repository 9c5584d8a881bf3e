package cache

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/authzed/spicedb/pkg/datastore"
	"github.com/authzed/spicedb/pkg/tuple"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/scailabs/authzd/internal/authz"
	"github.com/scailabs/authzd/schema"
)

// The mirror's own tests, on SpiceDB's engine in this process (no SpiceDB
// server, no Postgres); the real-SpiceDB differential runs in internal/spicedb.

// mustManifests loads the embedded module manifests.
func mustManifests(tb testing.TB) *schema.Model {
	tb.Helper()
	m, err := schema.Embedded()
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// adminOf is tenant:<tenant>#tenant_admin@user:<user>.
func adminOf(tenant, user string) authz.Tuple {
	return authz.Tuple{ResourceType: authz.TypeTenant, ResourceID: tenant, Relation: authz.RoleTenantAdmin, SubjectType: authz.TypeUser, SubjectID: user}
}

// The rule that keeps mirror answers fresh, on the cache's bookkeeping alone: a fill may read the
// mirror only when the mirror has applied every change to its tenant that the cache has applied. The
// stream applies a revision's invalidation when it arrives and the mirror applies it at the next
// checkpoint; between the two, fills of the changed tenant (and of every tenant, after a change that
// reaches all) must read SpiceDB at a barrier, while other tenants keep the mirror.
func TestDecisionCacheMirrorCoverage(t *testing.T) {
	c := newDecisionCache(0)
	m := &mirror{}
	c.start("start", nil, m)
	need := func(tenant string) uint64 {
		f, ok := c.begin(tenant)
		if !ok {
			t.Fatal("begin on a started cache failed")
		}
		return f.need
	}
	if c.mirrorFor(need("t1")) != m {
		t.Fatal("a mirror loaded at the stream's start does not serve an unchanged tenant")
	}
	seq := c.apply(change{tenants: []string{"t1"}}) // delivered, not yet applied to the mirror
	if c.mirrorFor(need("t1")) != nil {
		t.Fatal("the mirror served a tenant whose change it has not applied")
	}
	if c.mirrorFor(need("t2")) != m {
		t.Fatal("a change to t1 took the mirror from t2")
	}
	c.mirrored(&mirror{}, seq) // another mirror (a stale feed) moves nothing
	if c.mirrorFor(need("t1")) != nil {
		t.Fatal("another mirror's progress made this one serve")
	}
	c.mirrored(m, c.apply(change{checkpoint: true}))
	if c.mirrorFor(need("t1")) != m {
		t.Fatal("the mirror does not serve t1 after applying its change")
	}
	seq = c.apply(change{global: true})
	if c.mirrorFor(need("t2")) != nil {
		t.Fatal("the mirror served a tenant after a change to every tenant it has not applied")
	}
	c.mirrored(m, seq-1) // an older checkpoint does not cover it
	if c.mirrorFor(need("t2")) != nil {
		t.Fatal("the mirror served after applying only changes before the one to every tenant")
	}
	c.mirrored(m, seq)
	if c.mirrorFor(need("t2")) != m {
		t.Fatal("the mirror does not serve after applying the change to every tenant")
	}
	c.stop()
	if c.mirrorFor(0) != nil {
		t.Fatal("a stopped cache offered its mirror")
	}
	n := &mirror{}
	c.start("restart", nil, n)
	c.swapMirror(m, &mirror{}) // a stale swap (of a mirror no longer in use) changes nothing
	if c.mirrorFor(need("t1")) != n {
		t.Fatal("a swap of an old mirror replaced the current one")
	}
}

// BenchmarkMirror measures the mirror on a world shaped like authzbench's 1,000-tenant set (a tenant
// per 50 relationships: platform and partner links, 30 built-in role members, 3 custom roles of 5
// keys and 10 members each): its memory per relationship after a load, and the CPU of a cold check
// (a question asked once: tenant, user and key drawn at random). No Postgres: the mirror alone.
//
//	go test -run '^$' -bench BenchmarkMirror -benchtime 20000x ./internal/cache
func BenchmarkMirror(b *testing.B) {
	otel.SetTracerProvider(noop.NewTracerProvider()) // as authzd does (app.Main.Open)
	const tenants = 1000
	model := mustManifests(b)
	ctx := context.Background()
	var keys []authz.Key
	for _, k := range model.Keys {
		keys = append(keys, k.Key)
	}
	var updates []authz.Tuple
	add := func(typ, id, relation, subjectType, subjectID, subjectRelation string) {
		updates = append(updates, authz.Tuple{ResourceType: typ, ResourceID: id, Relation: relation,
			SubjectType: subjectType, SubjectID: subjectID, SubjectRelation: subjectRelation})
	}
	for t := range tenants {
		tid := fmt.Sprint("t", t)
		add(authz.TypeTenant, tid, "platform", authz.TypePlatform, authz.PlatformID, "")
		add(authz.TypeTenant, tid, "partner", authz.TypePartner, fmt.Sprint("p", t%100), "")
		for u := range 30 {
			add(authz.TypeTenant, tid, authz.TenantRoles[u%3], authz.TypeUser, fmt.Sprint("u", t, "-", u), "")
		}
		for r := range 3 {
			oid := fmt.Sprint(tid, "/r", r)
			add(authz.TypeRole, oid, "tenant", authz.TypeTenant, tid, "")
			for k := range 5 {
				add(authz.TypeTenant, tid, keys[(r*5+k)%len(keys)].GrantRelation(), authz.TypeRole, oid, "member")
			}
			for u := range 10 {
				add(authz.TypeRole, oid, "member", authz.TypeUser, fmt.Sprint("u", t, "-", (r*10+u)%30), "")
			}
		}
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	m, err := newMirror(ctx, model.Schema(), 1<<30, mirrorRebuildMin)
	if err != nil {
		b.Fatal(err)
	}
	defer m.close()
	for _, u := range updates {
		m.write(tuple.Touch(relationship(u)))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perRel := float64(after.HeapAlloc-before.HeapAlloc) / float64(len(updates))
	rnd := rand.New(rand.NewPCG(1, 2))
	b.ResetTimer()
	for b.Loop() {
		t := rnd.IntN(tenants)
		q := authz.Question{ObjectType: authz.TypeTenant, ObjectID: fmt.Sprint("t", t),
			Permission: keys[rnd.IntN(len(keys))].Relation(), SubjectType: authz.TypeUser, SubjectID: fmt.Sprint("u", t, "-", rnd.IntN(30))}
		if _, err := m.check(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(perRel, "heap-B/relationship")
	b.ReportMetric(float64(len(updates)), "relationships")
}

// A checkpoint that brings no updates moves the mirror's revision without the write lock, so checks
// never queue behind it (an idle stream checkpoints every 100 ms); one that brings updates still
// waits until no check reads the mirror, and its updates are then visible at its revision.
func TestMirrorCheckpointLocking(t *testing.T) {
	ctx := context.Background()
	model := mustManifests(t)
	m, err := newMirror(ctx, model.Schema(), 1<<20, mirrorRebuildMin)
	if err != nil {
		t.Fatal(err)
	}
	defer m.close()
	var key authz.Key
	for _, k := range model.Keys {
		if slices.Contains(k.Roles, authz.RoleTenantAdmin) {
			key = k.Key
		}
	}
	if key == (authz.Key{}) {
		t.Fatal("no key granted to tenant_admin in the manifests")
	}
	it := authz.Question{ObjectType: authz.TypeTenant, ObjectID: "t1", Permission: key.Relation(), SubjectType: authz.TypeUser, SubjectID: "alice"}
	grant := authz.RelationshipChange{Operation: "touch", Tuple: adminOf("t1", "alice")}

	checkpoint := func(rev string) <-chan error {
		done := make(chan error, 1)
		go func() { done <- m.checkpoint(rev) }()
		return done
	}
	m.mu.RLock() // a walk in flight
	select {
	case err := <-checkpoint("r1"):
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		m.mu.RUnlock()
		t.Fatal("a checkpoint without updates waited for a check in flight")
	}
	if got := m.at(); got != "r1" {
		t.Errorf("after an empty checkpoint the mirror is at %q, want r1", got)
	}
	m.add([]authz.RelationshipChange{grant})
	done := checkpoint("r2")
	select {
	case <-done:
		t.Fatal("a checkpoint with updates applied them while a check was reading the mirror")
	case <-time.After(200 * time.Millisecond):
	}
	m.mu.RUnlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	d, err := m.check(ctx, it)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Allowed || d.CheckedAt != "r2" {
		t.Errorf("after the checkpoint: allowed %v at %q, want allowed at r2", d.Allowed, d.CheckedAt)
	}
}

// The memory datastore under the mirror's engine holds no relationships, so every read of relationships the
// index cannot serve exactly is refused (the check then fails and the miss goes to SpiceDB) rather than
// answered, wrongly, from an empty datastore; a read of whole object#relation sets is served from the index.
func TestMirrorRefusesUnindexedReads(t *testing.T) {
	ctx := context.Background()
	m, err := newMirror(ctx, mustManifests(t).Schema(), 1<<20, mirrorRebuildMin)
	if err != nil {
		t.Fatal(err)
	}
	defer m.close()
	m.write(tuple.Touch(relationship(adminOf("t1", "alice"))))
	rev, err := m.ds.HeadRevision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r := m.ds.SnapshotReader(rev.Revision)
	it, err := r.QueryRelationships(ctx, datastore.RelationshipsFilter{OptionalResourceType: authz.TypeTenant,
		OptionalResourceIds: []string{"t1"}, OptionalResourceRelation: authz.RoleTenantAdmin})
	if err != nil {
		t.Fatalf("a read of one object#relation set: %v", err)
	}
	n := 0
	for _, err := range it {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 1 {
		t.Errorf("the index served %d relationships of tenant:t1#%s, want 1", n, authz.RoleTenantAdmin)
	}
	if _, err := r.QueryRelationships(ctx, datastore.RelationshipsFilter{OptionalResourceType: authz.TypeTenant}); !errors.Is(err, errUnindexedRead) {
		t.Errorf("a read of a whole type: err = %v, want errUnindexedRead", err)
	}
	if _, err := r.ReverseQueryRelationships(ctx, datastore.SubjectsFilter{SubjectType: authz.TypeUser, OptionalSubjectIds: []string{"alice"}}); !errors.Is(err, errUnindexedRead) {
		t.Errorf("a reverse read: err = %v, want errUnindexedRead", err)
	}
	if _, err := r.CountRelationships(ctx, "any"); !errors.Is(err, errUnindexedRead) {
		t.Errorf("a count: err = %v, want errUnindexedRead", err)
	}
}
