package spicedb

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/authzed/spicedb/pkg/datastore"
	"github.com/authzed/spicedb/pkg/tuple"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/scailabs/authzd/internal/authz"
	"github.com/scailabs/authzd/internal/pgtest"
)

// The mirror's own tests; the differential and token tests (cache_test.go) run with it on.

// A SpiceDB that outgrows AUTHZ_CACHE_MIRROR_MAX turns the mirror off for the life of the process:
// the cache resyncs without it and its misses read SpiceDB at a barrier, answering right.
func TestMirrorOverItsBound(t *testing.T) {
	pgtest.Require(t)
	ctx := context.Background()
	g := mustOpenCached(t, 12)
	resyncs := g.CacheStats().Resyncs
	key := newCacheWorld(t).keys[0]
	alice := user("alice")
	must := mustWrite(t)
	must(g.PutPartner(ctx, "p"))
	must(g.PutTenant(ctx, "t", "p"))
	must(g.PutRole(ctx, "t", "r", []authz.Key{key}))
	check := authz.Check{TenantID: "t", Subject: alice, Key: key}
	if d, err := g.Check(ctx, check); err != nil || d.Allowed {
		t.Fatalf("before the grant: %+v, %v", d, err)
	}
	for i := range 20 { // more relationships than the bound
		must(g.SetMember(ctx, "t", "r", user(fmt.Sprint("u", i)), true))
	}
	last := must(g.SetMember(ctx, "t", "r", alice, true))
	deadline := time.Now().Add(20 * time.Second)
	for st := g.CacheStats(); st.Resyncs == resyncs || !st.Ready || st.MirrorRelationships != 0 || !g.cache.hasDelivered(last); st = g.CacheStats() {
		if time.Now().After(deadline) {
			t.Fatalf("the mirror did not turn off, or the cache did not resync without it: %+v", g.CacheStats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The resynced stream may still be delivering the last writes (each drops
	// the tenant, and a fill that began before one is not stored), so ask until
	// the cache answers; every answer must be right and none from the mirror.
	before := g.CacheStats()
	deadline = time.Now().Add(20 * time.Second)
	for i := 0; ; i++ {
		d, err := g.Check(ctx, check)
		if err != nil || !d.Allowed {
			t.Fatalf("check %d without the mirror: %+v, %v", i, d, err)
		}
		if d.Source == authz.SourceMirror {
			t.Fatalf("check %d answered by a mirror that is off", i)
		}
		if d.Source == authz.SourceCache {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no check was answered by the cache after %d tries: %+v", i+1, g.CacheStats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	st := g.CacheStats()
	if st.MirrorRelationships != 0 || st.MirrorFills != before.MirrorFills || st.Hits == before.Hits {
		t.Fatalf("after the mirror turned off: %+v (before the checks: %+v)", st, before)
	}
}

// A schema change made in SpiceDB ends the stream: the next one loads a mirror with the new schema,
// and the cache answers again.
func TestMirrorSchemaChange(t *testing.T) {
	pgtest.Require(t)
	ctx := context.Background()
	g := mustOpenCached(t, 0)
	model := mustManifests(t)
	resyncs := g.CacheStats().Resyncs
	changed := model.Schema() + "\ndefinition mirrortest/extra {}\n"
	if _, err := g.schema.WriteSchema(ctx, &v1.WriteSchemaRequest{Schema: changed}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := g.CacheStats()
		g.cache.mu.RLock()
		m := g.cache.mirror
		g.cache.mu.RUnlock()
		if st.Ready && st.Resyncs > resyncs && m != nil && strings.Contains(m.schema, "mirrortest/extra") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no resync with a mirror of the new schema: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	key := newCacheWorld(t).keys[0]
	must := mustWrite(t)
	must(g.PutPartner(ctx, "p"))
	must(g.PutTenant(ctx, "t", "p"))
	must(g.PutRole(ctx, "t", "r", []authz.Key{key}))
	mustDelivered(t, g, must(g.SetMember(ctx, "t", "r", user("alice"), true)))
	mustMirrored(t, g)
	if d, err := g.Check(ctx, authz.Check{TenantID: "t", Subject: user("alice"), Key: key}); err != nil || !d.Allowed || d.Source != authz.SourceMirror {
		t.Fatalf("after the schema change: %+v, %v; want allowed by the mirror", d, err)
	}
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

// A revocation reaches the mirror's answers: the same question answered by the mirror before and
// after a member leaves the role that grants the key (the mirror serves each object's relations
// from its own index, which must apply deletes as SpiceDB does).
func TestMirrorRevocation(t *testing.T) {
	pgtest.Require(t)
	ctx := context.Background()
	g := mustOpenCached(t, 0)
	key := newCacheWorld(t).keys[0]
	must := mustWrite(t)
	must(g.PutPartner(ctx, "p"))
	must(g.PutTenant(ctx, "t", "p"))
	must(g.PutRole(ctx, "t", "r", []authz.Key{key}))
	check := authz.Check{TenantID: "t", Subject: user("alice"), Key: key}
	for i, grant := range []bool{true, false, true, false} {
		mustDelivered(t, g, must(g.SetMember(ctx, "t", "r", user("alice"), grant)))
		mustMirrored(t, g)
		d, err := g.Check(ctx, check)
		if err != nil || d.Allowed != grant || d.Source != authz.SourceMirror {
			t.Fatalf("step %d (member %v): %+v, %v; want allowed=%v from the mirror", i, grant, d, err, grant)
		}
	}
}

// mustMirrored waits until the mirror has applied every change the cache has (the mirror is fed in
// a goroutine of its own, so it can trail the stream by a moment).
func mustMirrored(t *testing.T, g *Graph) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		g.cache.mu.RLock()
		ok := g.cache.mirror != nil && g.cache.mirrorSeq >= g.cache.seq
		g.cache.mu.RUnlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the mirror did not catch up with the stream within 20s: %+v", g.CacheStats())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// BenchmarkMirror measures the mirror on a world shaped like authzbench's 1,000-tenant set (a tenant
// per 50 relationships: platform and partner links, 30 built-in role members, 3 custom roles of 5
// keys and 10 members each): its memory per relationship after a load, and the CPU of a cold check
// (a question asked once: tenant, user and key drawn at random). No Postgres: the mirror alone.
//
//	go test -run '^$' -bench BenchmarkMirror -benchtime 20000x ./internal/spicedb
func BenchmarkMirror(b *testing.B) {
	otel.SetTracerProvider(noop.NewTracerProvider()) // as authzd does (app.Main.Open)
	const tenants = 1000
	model := mustManifests(b)
	ctx := context.Background()
	var keys []authz.Key
	for _, k := range model.Keys {
		keys = append(keys, k.Key)
	}
	var updates []*v1.RelationshipUpdate
	add := func(r *v1.Relationship) { updates = append(updates, touch(r)) }
	for t := range tenants {
		tid := fmt.Sprint("t", t)
		add(rel(typeTenant, tid, relPlatform, platformSubject()))
		add(rel(typeTenant, tid, relPartner, &v1.SubjectReference{Object: object(typePartner, fmt.Sprint("p", t%100))}))
		for u := range 30 {
			add(rel(typeTenant, tid, []string{authz.RoleTenantAdmin, authz.RoleTenantUser, authz.RoleTenantViewer}[u%3], subjectRef(user(fmt.Sprint("u", t, "-", u)))))
		}
		for r := range 3 {
			oid := fmt.Sprint(tid, "/r", r)
			add(rel(typeRole, oid, relTenant, &v1.SubjectReference{Object: object(typeTenant, tid)}))
			for k := range 5 {
				add(rel(typeTenant, tid, keys[(r*5+k)%len(keys)].GrantRelation(), roleMembers(oid)))
			}
			for u := range 10 {
				add(rel(typeRole, oid, relMember, subjectRef(user(fmt.Sprint("u", t, "-", (r*10+u)%30)))))
			}
		}
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	m, err := newMirror(ctx, model.Schema(), 1<<30)
	if err != nil {
		b.Fatal(err)
	}
	defer m.close()
	for _, u := range updates {
		m.write(mutation(u))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perRel := float64(after.HeapAlloc-before.HeapAlloc) / float64(len(updates))
	rnd := rand.New(rand.NewPCG(1, 2))
	b.ResetTimer()
	for b.Loop() {
		t := rnd.IntN(tenants)
		it := &v1.CheckBulkPermissionsRequestItem{Resource: object(typeTenant, fmt.Sprint("t", t)),
			Permission: keys[rnd.IntN(len(keys))].Relation(), Subject: subjectRef(user(fmt.Sprint("u", t, "-", rnd.IntN(30))))}
		if _, err := m.check(ctx, it); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(perRel, "heap-B/relationship")
	b.ReportMetric(float64(len(updates)), "relationships")
}

// A broken stream resumes from its last checkpoint with the cache's entries and the mirror kept, and
// the cache answers again only once the resumed stream has delivered everything committed during the
// break: here a revocation written straight to SpiceDB (untagged, so no token would wait for it) while
// the break is held open. Entries the break did not touch are still answered from the cache afterwards.
func TestDecisionCacheResume(t *testing.T) {
	pgtest.Require(t)
	for _, tc := range []struct {
		name      string
		mirrorMax int
	}{{"Mirror", 0}, {"Barriers", -1}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			g := mustOpenCached(t, tc.mirrorMax)
			key := newCacheWorld(t).keys[0]
			must := mustWrite(t)
			must(g.PutPartner(ctx, "p"))
			var last string
			for _, tn := range []string{"t1", "t2"} {
				must(g.PutTenant(ctx, tn, "p"))
				must(g.PutRole(ctx, tn, "r", []authz.Key{key}))
				last = must(g.SetMember(ctx, tn, "r", user("alice"), true))
			}
			mustDelivered(t, g, last)
			check := func(tn string) authz.Decision {
				t.Helper()
				d, err := g.Check(ctx, authz.Check{TenantID: tn, Subject: user("alice"), Key: key})
				if err != nil {
					t.Fatal(err)
				}
				return d
			}
			for _, tn := range []string{"t1", "t2"} {
				check(tn)
				if d := check(tn); !d.Allowed || d.Source != authz.SourceCache {
					t.Fatalf("%s before the break: %+v, want allowed from the cache", tn, d)
				}
			}
			before := g.CacheStats()

			from, err := g.HeadRevision(ctx)
			if err != nil {
				t.Fatal(err)
			}
			hold := make(chan struct{})
			g.watcher.mu.Lock()
			g.watcher.beforeResume = func() { <-hold }
			g.watcher.mu.Unlock()
			g.watcher.reset()
			deadline := time.Now().Add(20 * time.Second)
			for g.CacheStats().Ready {
				if time.Now().After(deadline) {
					t.Fatal("the cache stayed ready after its stream broke")
				}
				time.Sleep(5 * time.Millisecond)
			}
			// During the break: revoke alice in t1 behind authzd's back; checks go to SpiceDB.
			if _, err := g.perms.WriteRelationships(ctx, &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{{
				Operation:    v1.RelationshipUpdate_OPERATION_DELETE,
				Relationship: tuple.ToV1Relationship(tuple.MustParse("role:t1/r#member@user:alice")),
			}}}); err != nil {
				t.Fatal(err)
			}
			if d := check("t2"); d.Source != authz.SourceSpiceDB { // at SpiceDB's own (quantized) snapshot
				t.Fatalf("t2 during the break: %+v, want an answer from SpiceDB", d)
			}
			g.watcher.mu.Lock()
			g.watcher.beforeResume = nil
			g.watcher.mu.Unlock()
			close(hold)
			deadline = time.Now().Add(20 * time.Second)
			for !g.CacheStats().Ready {
				if time.Now().After(deadline) {
					t.Fatalf("the cache did not answer again: %+v", g.CacheStats())
				}
				time.Sleep(time.Millisecond)
			}
			// At once: the revocation made during the break is applied.
			if d := check("t1"); d.Allowed {
				t.Fatalf("t1 right after the resume: %+v; the revocation made during the break was missed", d)
			}
			if d := check("t2"); !d.Allowed || d.Source != authz.SourceCache {
				t.Errorf("t2 after the resume: %+v, want allowed from the entry kept across the break", d)
			}
			st := g.CacheStats()
			if st.Resumes != before.Resumes+1 || st.Resyncs != before.Resyncs {
				t.Errorf("resumes %d -> %d, resyncs %d -> %d: want one resume and no resync", before.Resumes, st.Resumes, before.Resyncs, st.Resyncs)
			}

			// The out-of-band change stream reports the revocation, and not the resume's marks or the
			// barriers that delete them (authzd's bookkeeping on the barrier object).
			fctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			var revoked bool
			_ = g.FollowChanges(fctx, from, func(b authz.ChangeBatch) error {
				for _, id := range b.WriteIDs {
					if strings.HasPrefix(id, resumeMarkPrefix) {
						t.Errorf("FollowChanges reported a resume mark's write id %s", id)
					}
				}
				for _, c := range b.Changes {
					if c.ResourceID == barrierObject {
						t.Errorf("FollowChanges reported a change on the barrier object: %s", c.Relationship)
					}
					revoked = revoked || (c.Relationship == "role:t1/r#member@user:alice" && c.Operation == "delete")
				}
				return nil
			})
			if !revoked {
				t.Error("FollowChanges did not report the revocation made during the break")
			}
		})
	}
}

// A checkpoint that brings no updates moves the mirror's revision without the write lock, so checks
// never queue behind it (an idle stream checkpoints every 100 ms); one that brings updates still
// waits until no check reads the mirror, and its updates are then visible at its revision.
func TestMirrorCheckpointLocking(t *testing.T) {
	ctx := context.Background()
	model := mustManifests(t)
	m, err := newMirror(ctx, model.Schema(), 1<<20)
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
	it := &v1.CheckBulkPermissionsRequestItem{Resource: object(typeTenant, "t1"), Permission: key.Relation(), Subject: subjectRef(user("alice"))}
	grant := touch(rel(typeTenant, "t1", authz.RoleTenantAdmin, subjectRef(user("alice"))))

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
	m.add([]*v1.RelationshipUpdate{grant})
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
	m, err := newMirror(ctx, mustManifests(t).Schema(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer m.close()
	m.write(mutation(touch(rel(typeTenant, "t1", authz.RoleTenantAdmin, subjectRef(user("alice"))))))
	rev, err := m.ds.HeadRevision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r := m.ds.SnapshotReader(rev.Revision)
	it, err := r.QueryRelationships(ctx, datastore.RelationshipsFilter{OptionalResourceType: typeTenant,
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
	if _, err := r.QueryRelationships(ctx, datastore.RelationshipsFilter{OptionalResourceType: typeTenant}); !errors.Is(err, errUnindexedRead) {
		t.Errorf("a read of a whole type: err = %v, want errUnindexedRead", err)
	}
	if _, err := r.ReverseQueryRelationships(ctx, datastore.SubjectsFilter{SubjectType: typeUser, OptionalSubjectIds: []string{"alice"}}); !errors.Is(err, errUnindexedRead) {
		t.Errorf("a reverse read: err = %v, want errUnindexedRead", err)
	}
	if _, err := r.CountRelationships(ctx, "any"); !errors.Is(err, errUnindexedRead) {
		t.Errorf("a count: err = %v, want errUnindexedRead", err)
	}
}
