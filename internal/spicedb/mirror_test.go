package spicedb

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/authzed/spicedb/pkg/tuple"

	"github.com/scailabs/authzd/internal/authz"
	"github.com/scailabs/authzd/internal/cache"
	"github.com/scailabs/authzd/internal/pgtest"
)

// The decision cache's mirror against SpiceDB (its own tests are in internal/cache); the differential
// and token tests (cache_test.go) run with it on.

// A SpiceDB that outgrows AUTHZ_CACHE_MIRROR_MAX turns the mirror off for the life of the process:
// the cache resyncs without it and its misses read SpiceDB at a barrier, answering right.
func TestMirrorOverItsBound(t *testing.T) {
	pgtest.Require(t)
	ctx := context.Background()
	g, c := mustOpenCached(t, cache.Options{MirrorMax: 12})
	resyncs := c.Stats().Resyncs
	key := newCacheWorld(t).keys[0]
	alice := user("alice")
	must := mustWrite(t)
	must(g.PutPartner(ctx, "p"))
	must(g.PutTenant(ctx, "t", "p"))
	must(g.PutRole(ctx, "t", "r", []authz.Key{key}))
	check := authz.Check{TenantID: "t", Subject: alice, Key: key}
	if d, err := c.Check(ctx, check); err != nil || d.Allowed {
		t.Fatalf("before the grant: %+v, %v", d, err)
	}
	for i := range 20 { // more relationships than the bound
		must(g.SetMember(ctx, "t", "r", user(fmt.Sprint("u", i)), true))
	}
	last := must(g.SetMember(ctx, "t", "r", alice, true))
	deadline := time.Now().Add(20 * time.Second)
	for st := c.Stats(); st.Resyncs == resyncs || !st.Ready || st.MirrorRelationships != 0 || !c.Delivered(last); st = c.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("the mirror did not turn off, or the cache did not resync without it: %+v", c.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The resynced stream may still be delivering the last writes (each drops
	// the tenant, and a fill that began before one is not stored), so ask until
	// the cache answers; every answer must be right and none from the mirror.
	before := c.Stats()
	deadline = time.Now().Add(20 * time.Second)
	for i := 0; ; i++ {
		d, err := c.Check(ctx, check)
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
			t.Fatalf("no check was answered by the cache after %d tries: %+v", i+1, c.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	st := c.Stats()
	if st.MirrorRelationships != 0 || st.MirrorFills != before.MirrorFills || st.Hits == before.Hits {
		t.Fatalf("after the mirror turned off: %+v (before the checks: %+v)", st, before)
	}
}

// A schema change made in SpiceDB ends the stream: the next one loads a mirror with the new schema,
// and the cache answers again.
func TestMirrorSchemaChange(t *testing.T) {
	pgtest.Require(t)
	ctx := context.Background()
	g, c := mustOpenCached(t, cache.Options{})
	model := mustManifests(t)
	resyncs := c.Stats().Resyncs
	changed := model.Schema() + "\ndefinition mirrortest/extra {}\n"
	if _, err := g.schema.WriteSchema(ctx, &v1.WriteSchemaRequest{Schema: changed}); err != nil {
		t.Fatal(err)
	}
	// The stream ends on the schema change; the next one loads a mirror of SpiceDB's schema then.
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := c.Stats()
		if st.Ready && st.Resyncs > resyncs {
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
	mustDelivered(t, c, must(g.SetMember(ctx, "t", "r", user("alice"), true)))
	mustMirrored(t, c)
	if d, err := c.Check(ctx, authz.Check{TenantID: "t", Subject: user("alice"), Key: key}); err != nil || !d.Allowed || d.Source != authz.SourceMirror {
		t.Fatalf("after the schema change: %+v, %v; want allowed by the mirror", d, err)
	}
}

// A revocation reaches the mirror's answers: the same question answered by the mirror before and
// after a member leaves the role that grants the key (the mirror serves each object's relations
// from its own index, which must apply deletes as SpiceDB does).
func TestMirrorRevocation(t *testing.T) {
	pgtest.Require(t)
	ctx := context.Background()
	g, c := mustOpenCached(t, cache.Options{})
	key := newCacheWorld(t).keys[0]
	must := mustWrite(t)
	must(g.PutPartner(ctx, "p"))
	must(g.PutTenant(ctx, "t", "p"))
	must(g.PutRole(ctx, "t", "r", []authz.Key{key}))
	check := authz.Check{TenantID: "t", Subject: user("alice"), Key: key}
	for i, grant := range []bool{true, false, true, false} {
		mustDelivered(t, c, must(g.SetMember(ctx, "t", "r", user("alice"), grant)))
		mustMirrored(t, c)
		d, err := c.Check(ctx, check)
		if err != nil || d.Allowed != grant || d.Source != authz.SourceMirror {
			t.Fatalf("step %d (member %v): %+v, %v; want allowed=%v from the mirror", i, grant, d, err, grant)
		}
	}
}

// mustMirrored waits until the mirror has applied every change the cache has (the mirror is fed in
// a goroutine of its own, so it can trail the stream by a moment).
func mustMirrored(t *testing.T, c *cache.Cache) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c.MirrorCurrent() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the mirror did not catch up with the stream within 20s: %+v", c.Stats())
		}
		time.Sleep(2 * time.Millisecond)
	}
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
			var hold atomic.Pointer[chan struct{}] // set: a resume waits for it to close
			g, c := mustOpenCached(t, cache.Options{MirrorMax: tc.mirrorMax, BeforeResume: func() {
				if h := hold.Load(); h != nil {
					<-*h
				}
			}})
			key := newCacheWorld(t).keys[0]
			must := mustWrite(t)
			must(g.PutPartner(ctx, "p"))
			var last string
			for _, tn := range []string{"t1", "t2"} {
				must(g.PutTenant(ctx, tn, "p"))
				must(g.PutRole(ctx, tn, "r", []authz.Key{key}))
				last = must(g.SetMember(ctx, tn, "r", user("alice"), true))
			}
			mustDelivered(t, c, last)
			check := func(tn string) authz.Decision {
				t.Helper()
				d, err := c.Check(ctx, authz.Check{TenantID: tn, Subject: user("alice"), Key: key})
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
			before := c.Stats()

			from, err := g.HeadRevision(ctx)
			if err != nil {
				t.Fatal(err)
			}
			held := make(chan struct{})
			hold.Store(&held)
			c.Reset()
			deadline := time.Now().Add(20 * time.Second)
			for c.Stats().Ready {
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
			hold.Store(nil)
			close(held)
			deadline = time.Now().Add(20 * time.Second)
			for !c.Stats().Ready {
				if time.Now().After(deadline) {
					t.Fatalf("the cache did not answer again: %+v", c.Stats())
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
			st := c.Stats()
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
					if strings.HasPrefix(id, authz.ResumeMarkPrefix) {
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
