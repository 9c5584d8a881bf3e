package cache

import (
	"context"
	"testing"
	"time"

	"github.com/scailabs/authzd/internal/authz"
)

// The cache against a fake SpiceDB (fake_test.go): the test decides when each
// write reaches the cache's stream, so each rule is tested at the moment it
// matters, without Postgres or SpiceDB. The differential against real SpiceDB
// runs in internal/spicedb.

// A change to the tenant delivered at each step boundary of a fill (before it
// begins, while its barrier is sent, while SpiceDB answers it, and between
// the answer and its store) never leaves an answer older than the change: the
// next check sees it.
func TestFillStepBoundaries(t *testing.T) {
	for _, step := range []string{"begin", "barrier", "checkAt", "checkedAt"} {
		t.Run(step, func(t *testing.T) {
			c, f := startFake(t, Options{})
			f.write("t", "alice", true, "")
			f.deliver() // the tenant changed since the stream's start: its next fill needs a new barrier
			change := func() {
				f.write("t", "alice", false, "")
				f.deliver()
			}
			if step == "begin" {
				change()
			} else {
				f.hook(step, change)
			}
			d := mustCheck(t, c, check("t", "alice"))
			if step == "begin" && d.Allowed {
				t.Fatalf("a fill begun after the change answered %+v", d)
			}
			if step != "begin" && f.count(step) == 0 {
				t.Fatalf("the fill never reached the step %s", step)
			}
			for i := range 2 {
				if d := mustCheck(t, c, check("t", "alice")); d.Allowed {
					t.Fatalf("check %d after the change delivered at %s: %+v, an answer older than the change", i, step, d)
				}
			}
			if st := c.Stats(); step != "begin" && st.FillsDropped == 0 {
				t.Errorf("a fill overtaken at %s was stored: %+v", step, st)
			}
		})
	}
}

// A write's token answers from the cache only once the stream has delivered
// the write and a checkpoint followed; until then the check goes upstream.
func TestUndeliveredTokenNeverFromCache(t *testing.T) {
	c, f := startFake(t, Options{})
	f.write("t", "alice", true, "")
	f.deliver()
	mustCheck(t, c, check("t", "alice"))
	if d := mustCheck(t, c, check("t", "alice")); d.Source != authz.SourceCache || !d.Allowed {
		t.Fatalf("warm: %+v, want allowed from the cache", d)
	}
	tok := f.write("t", "alice", false, "w1/a")
	c.Wrote("w1/a", tok)
	withToken := check("t", "alice")
	withToken.ConsistencyToken = tok
	for _, when := range []string{"undelivered", "delivered without a checkpoint"} {
		if when != "undelivered" {
			f.deliverSome(-1, false)
		}
		if c.Delivered(tok) {
			t.Fatalf("%s: the token counts as delivered", when)
		}
		d := mustCheck(t, c, withToken)
		if d.Source == authz.SourceCache || d.Allowed {
			t.Fatalf("%s: the check carrying the write's token got %+v, want a denial from upstream", when, d)
		}
	}
	f.deliverSome(0, true)
	if !c.Delivered(tok) {
		t.Fatal("the token is not delivered after the checkpoint")
	}
	mustCheck(t, c, withToken)
	if d := mustCheck(t, c, withToken); d.Source != authz.SourceCache || d.Allowed {
		t.Fatalf("after delivery: %+v, want a denial from the cache", d)
	}
	// The stream can be faster than the write's own answer.
	tok = f.write("t", "alice", true, "w2/a")
	f.deliver()
	c.Wrote("w2/a", tok)
	if !c.Delivered(tok) {
		t.Fatal("a write delivered before its answer was reported is not delivered")
	}
}

// After a break nothing answers from the cache until the resumed stream has
// delivered the marker written after the break; then entries the break did
// not touch answer again and a change made during the break is applied.
func TestNothingAnswersBeforePostBreakMarker(t *testing.T) {
	c, f := startFake(t, Options{})
	f.write("t1", "alice", true, "")
	f.write("t2", "alice", true, "")
	f.deliver()
	for _, tn := range []string{"t1", "t2"} {
		mustCheck(t, c, check(tn, "alice"))
	}
	f.hook("beforeResume", func() { f.write("t1", "alice", false, "") }) // during the break, before the marker
	f.breakStream()
	f.waitStream(2)
	if f.count("mark") != 1 {
		t.Fatalf("%d resume marks written, want 1", f.count("mark"))
	}
	notCached := func(when string) {
		t.Helper()
		for _, tn := range []string{"t1", "t2"} {
			d := mustCheck(t, c, check(tn, "alice"))
			if d.Source == authz.SourceCache {
				t.Fatalf("%s: %s answered from the cache: %+v", when, tn, d)
			}
			if tn == "t1" && d.Allowed {
				t.Fatalf("%s: t1 allowed, but the break revoked it", when)
			}
		}
	}
	notCached("resumed, nothing delivered")
	f.deliverSome(1, true) // the break's change and a checkpoint, not the marker
	notCached("resumed, the marker not delivered")
	f.deliver()
	if !c.Stats().Ready {
		t.Fatal("not ready after the marker and a checkpoint")
	}
	if d := mustCheck(t, c, check("t1", "alice")); d.Allowed {
		t.Fatalf("t1 after the resume: %+v", d)
	}
	if d := mustCheck(t, c, check("t2", "alice")); d.Source != authz.SourceCache || !d.Allowed {
		t.Fatalf("t2 after the resume: %+v, want the entry kept across the break", d)
	}
	if st := c.Stats(); st.Resumes != 1 || st.Resyncs != 1 {
		t.Errorf("resumes %d, resyncs %d: want one of each (the start and the resume)", st.Resumes, st.Resyncs)
	}
}

// Partner, platform and schema changes can reach any tenant: each drops every entry.
func TestGlobalChangesDropAll(t *testing.T) {
	for _, tc := range []struct {
		name  string
		batch authz.ChangeBatch
	}{
		{"Partner", authz.ChangeBatch{Changes: []authz.RelationshipChange{{Operation: "touch",
			Tuple: authz.Tuple{ResourceType: authz.TypePartner, ResourceID: "p", Relation: "admin", SubjectType: authz.TypeUser, SubjectID: "pat"}}}}},
		{"Platform", authz.ChangeBatch{Changes: []authz.RelationshipChange{{Operation: "delete",
			Tuple: authz.Tuple{ResourceType: authz.TypePlatform, ResourceID: authz.PlatformID, Relation: authz.RoleSuperAdmin, SubjectType: authz.TypeUser, SubjectID: "root"}}}}},
		{"Schema", authz.ChangeBatch{SchemaChanged: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, f := startFake(t, Options{})
			for _, tn := range []string{"t1", "t2"} {
				mustCheck(t, c, check(tn, "alice"))
			}
			if n := c.Stats().Entries; n != 2 {
				t.Fatalf("%d entries after two misses, want 2", n)
			}
			f.queue(tc.batch)
			f.deliver()
			if n := c.Stats().Entries; n != 0 {
				t.Fatalf("%d entries after a %s change, want 0", n, tc.name)
			}
			for _, tn := range []string{"t1", "t2"} {
				if d := mustCheck(t, c, check(tn, "alice")); d.Source == authz.SourceCache {
					t.Fatalf("%s answered from the cache after a %s change", tn, tc.name)
				}
			}
		})
	}
}

// A relationship on T's object naming U's role (written straight to SpiceDB)
// makes T depend on U: a change to U drops both, and leaves others alone.
func TestCrossTenantEdgeDropsBoth(t *testing.T) {
	c, f := startFake(t, Options{})
	f.queue(authz.ChangeBatch{Changes: []authz.RelationshipChange{{Operation: "touch", TenantID: "T", Tuple: authz.Tuple{
		ResourceType: authz.TypeTenant, ResourceID: "T", Relation: testKey.GrantRelation(), SubjectType: authz.TypeRole, SubjectID: "U/r", SubjectRelation: "member"}}}})
	f.deliver()
	for _, tn := range []string{"T", "U", "V"} {
		mustCheck(t, c, check(tn, "alice"))
	}
	f.write("U", "bob", true, "")
	f.deliver()
	for tn, cached := range map[string]bool{"T": false, "U": false, "V": true} {
		if d := mustCheck(t, c, check(tn, "alice")); (d.Source == authz.SourceCache) != cached {
			t.Errorf("tenant %s after a change to U answered from %s; from the cache: want %v", tn, d.Source, cached)
		}
	}
}

// An upstream error on a miss fails the check (never a yes) and stops the
// cache answering until its stream has resumed or resynced.
func TestUpstreamErrorFailsClosed(t *testing.T) {
	t.Run("Check", func(t *testing.T) { failClosed(t, false) })
	t.Run("CheckBulk", func(t *testing.T) { failClosed(t, true) })
}

func failClosed(t *testing.T, bulk bool) {
	c, f := startFake(t, Options{})
	f.write("t", "alice", true, "")
	f.write("t", "bob", true, "")
	f.deliver()
	mustCheck(t, c, check("t", "bob")) // a warm entry, for after the failure
	f.mu.Lock()
	f.failAt = authz.Errorf(authz.EUNAVAILABLE, "the fake spicedb is down")
	f.mu.Unlock()
	if bulk {
		if ds, err := c.CheckBulk(context.Background(), []authz.Check{check("t", "bob"), check("t", "alice")}); err == nil {
			t.Fatalf("a bulk miss upstream could not answer: %+v, want an error", ds)
		}
	} else if d, err := c.Check(context.Background(), check("t", "alice")); err == nil || d.Allowed {
		t.Fatalf("a miss upstream could not answer: %+v, %v; want an error", d, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.Stats().Ready {
		if time.Now().After(deadline) {
			t.Fatal("the cache still answers after upstream failed one of its misses")
		}
		time.Sleep(time.Millisecond)
	}
	before := f.count("check")
	if d := mustCheck(t, c, check("t", "bob")); d.Source == authz.SourceCache || f.count("check") != before+1 {
		t.Fatalf("with the cache stopped a check was answered %+v, not upstream", d)
	}
}

// A mirror over its bound is turned off: misses go upstream at a barrier.
func TestMirrorOverBound(t *testing.T) {
	tuples := func(f *fakeUpstream) {
		for _, u := range []string{"u1", "u2", "u3", "u4", "alice"} {
			f.tuples = append(f.tuples, adminOf("t", u))
		}
	}
	t.Run("Over", func(t *testing.T) {
		c, f := startFake(t, Options{MirrorMax: 3}, tuples)
		d := mustCheck(t, c, check("t", "alice"))
		if d.Source == authz.SourceMirror || f.count("checkAt") == 0 {
			t.Fatalf("a miss with the mirror over its bound: %+v, %d upstream calls; want upstream", d, f.count("checkAt"))
		}
		if st := c.Stats(); st.MirrorRelationships != 0 || st.MirrorFills != 0 {
			t.Fatalf("the mirror over its bound holds %d relationships and answered %d misses", st.MirrorRelationships, st.MirrorFills)
		}
	})
	t.Run("Within", func(t *testing.T) { // the control: the same world within the bound is mirrored
		c, f := startFake(t, Options{MirrorMax: 10}, tuples)
		d := mustCheck(t, c, check("t", "alice"))
		if d.Source != authz.SourceMirror || f.count("checkAt") != 0 {
			t.Fatalf("a miss with the mirror loaded: %+v, %d upstream calls; want the mirror", d, f.count("checkAt"))
		}
		if st := c.Stats(); st.MirrorRelationships != 5 {
			t.Fatalf("the mirror holds %d relationships, want 5", st.MirrorRelationships)
		}
	})
}
