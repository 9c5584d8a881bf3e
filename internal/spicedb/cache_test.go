package spicedb

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

	"github.com/scailabs/authzd/internal/authz"
	"github.com/scailabs/authzd/internal/cache"
	"github.com/scailabs/authzd/internal/pgtest"
)

// The decision cache's correctness tests: every answer it gives must equal SpiceDB's fully consistent
// answer once the Watch stream has delivered the last write, over random writes of every kind; a check
// carrying a write's token reflects that write whether or not the stream is up; losing the stream
// empties the cache and a new stream resyncs it. AUTHZ_TEST_CACHE_SEED replays a run, and
// AUTHZ_TEST_CACHE_ROUNDS sets its length.

// mustOpenCached opens a Graph on SpiceDB on Postgres with the decision cache (internal/cache) in
// front of it, verifying every answer; opts.MirrorMax 0 is the default bound, negative no mirror
// (misses read SpiceDB at a barrier).
func mustOpenCached(t *testing.T, opts cache.Options) (*Graph, *cache.Cache) {
	t.Helper()
	model := mustManifests(t)
	logger := slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	g, err := Open(context.Background(), Config{Schema: model.Schema(), Timeout: 5 * time.Second,
		Embedded: EmbeddedConfig{Datastore: "postgres", DatabaseURL: pgtest.MustCreate(t)}}, logger)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = g.Close() })
	return g, mustStartCache(t, g, opts)
}

// mustStartCache starts a decision cache in front of g, as the app wires one, and waits until it is ready.
func mustStartCache(t *testing.T, g *Graph, opts cache.Options) *cache.Cache {
	t.Helper()
	opts.VerifyRate = 1
	opts.Logger = slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c := cache.New(g, opts)
	g.NotifyWrites(c.Wrote)
	t.Cleanup(c.Close)
	mustCacheReady(t, c)
	return c
}

// testLog sends authzd's warnings to the test log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) { l.t.Log(string(p)); return len(p), nil }

func mustCacheReady(t *testing.T, c *cache.Cache) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !c.Stats().Ready {
		if time.Now().After(deadline) {
			t.Fatal("decision cache not ready after 20s (is track_commit_timestamp on?)")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// mustDelivered waits until the Watch stream has delivered the write of token.
func mustDelivered(t *testing.T, c *cache.Cache, token string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !c.Delivered(token) {
		if time.Now().After(deadline) {
			t.Fatalf("watch stream did not deliver write %s within 20s: %+v", token, c.Stats())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func cacheSeed(t *testing.T) (uint64, int) {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("AUTHZ_TEST_CACHE_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		seed = s
	}
	rounds := 25
	if v := os.Getenv("AUTHZ_TEST_CACHE_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("AUTHZ_TEST_CACHE_ROUNDS=%q", v)
		}
		rounds = n
	}
	t.Logf("seed %d, %d rounds (replay: AUTHZ_TEST_CACHE_SEED=%d)", seed, rounds, seed)
	return seed, rounds
}

// world is the small random world of the differential test.
type cacheWorld struct {
	tenants  []string
	partners []string
	subjects []authz.Subject
	keys     []authz.Key
	roles    []string
	bunkers  []string
}

func newCacheWorld(t *testing.T) cacheWorld {
	model := mustManifests(t)
	w := cacheWorld{tenants: []string{"t0", "t1", "t2"}, partners: []string{"p0", "p1"}, roles: []string{"r0", "r1"},
		bunkers: []string{"b0", "b1"}}
	for _, id := range []string{"u0", "u1", "u2", "u3"} {
		w.subjects = append(w.subjects, authz.Subject{Kind: authz.SubjectUser, ID: id})
	}
	w.subjects = append(w.subjects, authz.Subject{Kind: authz.SubjectServiceAccount, ID: "s0"})
	for _, k := range model.Keys {
		w.keys = append(w.keys, k.Key)
	}
	return w
}

// checks lists every question of the world: each tenant key for each subject, and each bunker
// permission for each subject.
func (w cacheWorld) checks(g *Graph) []authz.Check {
	var out []authz.Check
	for _, t := range w.tenants {
		for _, s := range w.subjects {
			for _, k := range w.keys {
				out = append(out, authz.Check{TenantID: t, Subject: s, Key: k})
				for _, b := range w.bunkers {
					if g.model.resources["bunker"][k.Relation()] {
						out = append(out, authz.Check{TenantID: t, Subject: s, Key: k, Resource: &authz.Resource{Type: "bunker", ID: b}})
					}
				}
			}
		}
	}
	return out
}

// randomWrite makes one random provisioning write and returns its token ("" when it was refused,
// e.g. a write into a tenant that is offboarded at the moment).
func (w cacheWorld) randomWrite(ctx context.Context, g *Graph, rnd *rand.Rand) (string, string, error) {
	t := w.tenants[rnd.IntN(len(w.tenants))]
	s := w.subjects[rnd.IntN(len(w.subjects))]
	p := w.partners[rnd.IntN(len(w.partners))]
	role := w.roles[rnd.IntN(len(w.roles))]
	var keys []authz.Key
	for _, k := range w.keys {
		if rnd.IntN(3) == 0 {
			keys = append(keys, k)
		}
	}
	builtins := []string{authz.RoleTenantAdmin, authz.RoleTenantUser, authz.RoleTenantViewer}
	var what string
	var tok string
	var err error
	switch n := rnd.IntN(12); n {
	case 0, 1:
		what = fmt.Sprintf("role %s/%s keys %v", t, role, keys)
		tok, err = g.PutRole(ctx, t, role, keys)
	case 2, 3:
		what = fmt.Sprintf("member %s of %s/%s", s, t, role)
		tok, err = g.SetMember(ctx, t, role, s, rnd.IntN(3) > 0)
	case 4:
		b := builtins[rnd.IntN(len(builtins))]
		what = fmt.Sprintf("built-in %s %s in %s", b, s, t)
		tok, err = g.SetMember(ctx, t, b, s, rnd.IntN(2) == 0)
	case 5, 6:
		b := w.bunkers[rnd.IntN(len(w.bunkers))]
		what = fmt.Sprintf("bunker %s/%s owner %s", t, b, s)
		tok, err = g.PutResource(ctx, t, authz.Resource{Type: "bunker", ID: b}, s)
	case 7:
		what = fmt.Sprintf("tenant %s to partner %s", t, p)
		tok, err = g.PutTenant(ctx, t, p)
	case 8:
		what = fmt.Sprintf("partner admin %s of %s", s, p)
		if rnd.IntN(2) == 0 {
			tok, err = g.PutPartnerAdmin(ctx, p, s)
		} else {
			tok, err = g.DeletePartnerAdmin(ctx, p, s)
		}
	case 9:
		what = fmt.Sprintf("super admin %s", s)
		if rnd.IntN(3) == 0 {
			tok, err = g.PutSuperAdmin(ctx, s)
		} else {
			tok, err = g.DeleteSuperAdmin(ctx, s)
		}
	case 10:
		what = fmt.Sprintf("offboard and re-create %s", t)
		if _, err = g.DeleteTenant(ctx, t); err == nil {
			tok, err = g.PutTenant(ctx, t, p)
		}
	case 11:
		what = fmt.Sprintf("delete role %s/%s", t, role)
		tok, err = g.DeleteRole(ctx, t, role)
	}
	if authz.ErrorCode(err) == authz.ENOTFOUND {
		return what + " (not found)", "", nil
	}
	return what, tok, err
}

// truth asks SpiceDB at full consistency.
func truth(ctx context.Context, t *testing.T, g *Graph, c authz.Check) bool {
	t.Helper()
	obj, perm, err := g.target(c)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := g.perms.CheckPermission(ctx, &v1.CheckPermissionRequest{
		Consistency: &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}},
		Resource:    obj, Permission: perm, Subject: subjectRef(c.Subject),
	})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetPermissionship() == v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION
}

// TestDecisionCacheDifferential runs twice: with the mirror answering misses (the default), and
// without it, misses reading SpiceDB at a barrier (the path a mirror over its bound falls back to).
func TestDecisionCacheDifferential(t *testing.T) {
	pgtest.Require(t)
	t.Run("Mirror", func(t *testing.T) {
		// Rebuild the mirror now and then, so that checks also read freshly rebuilt mirrors (not so
		// often that a rebuild hides a mirror that applies the stream's updates wrongly).
		g, c := mustOpenCached(t, cache.Options{MirrorRebuildMin: 80})
		differential(t, g, c, true)
	})
	t.Run("Barriers", func(t *testing.T) {
		g, c := mustOpenCached(t, cache.Options{MirrorMax: -1})
		differential(t, g, c, false)
	})
}

func differential(t *testing.T, g *Graph, c *cache.Cache, mirror bool) {
	ctx := context.Background()
	seed, rounds := cacheSeed(t)
	rnd := rand.New(rand.NewPCG(seed, 1))
	w := newCacheWorld(t)
	for _, p := range w.partners {
		if _, err := g.PutPartner(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	for i, tn := range w.tenants {
		if _, err := g.PutTenant(ctx, tn, w.partners[i%len(w.partners)]); err != nil {
			t.Fatal(err)
		}
	}
	// A tenant outside the world for barrier writes: a write that always changes a relationship, so the
	// stream delivers it, and only invalidates its own tenant. (A write that changes nothing, such as
	// deleting an absent relationship, never shows on the stream.)
	if _, err := g.PutTenant(ctx, "barrier", w.partners[0]); err != nil {
		t.Fatal(err)
	}
	barrierUser := authz.Subject{Kind: authz.SubjectUser, ID: "barrier"}
	checks := w.checks(g)
	mismatches := 0
	for round := range rounds {
		// Warm the cache first, so the round's writes must invalidate what it holds.
		for _, q := range checks {
			if _, err := c.Check(ctx, q); err != nil {
				t.Fatalf("seed %d round %d: warm %v: %v", seed, round, q, err)
			}
		}
		// The round's writes run concurrently (concurrent transactions are what make Postgres snapshot
		// revisions non-monotone on the stream), while checks keep filling the cache.
		n := 1 + rnd.IntN(5)
		seeds := make([]uint64, n)
		for i := range seeds {
			seeds[i] = rnd.Uint64()
		}
		did := make([]string, n)
		errs := make([]error, n+1)
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				did[i], _, errs[i] = w.randomWrite(ctx, g, rand.New(rand.NewPCG(seeds[i], 2)))
			})
		}
		if rnd.IntN(3) == 0 {
			// Break the stream while the writes run: the next one resumes from the last checkpoint
			// with the cache's entries kept, and must drop each of them the writes touched.
			after := time.Duration(rnd.IntN(30)) * time.Millisecond
			wg.Go(func() {
				time.Sleep(after)
				c.Reset()
			})
		}
		checker := sync.WaitGroup{}
		checker.Go(func() {
			r := rand.New(rand.NewPCG(seeds[0], 3))
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := c.Check(ctx, checks[r.IntN(len(checks))]); err != nil {
					errs[n] = err
					return
				}
			}
		})
		wg.Wait()
		close(stop)
		checker.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("seed %d round %d: op %d (%v): %v", seed, round, i, did, err)
			}
		}
		last, err := g.SetMember(ctx, "barrier", authz.RoleTenantUser, barrierUser, round%2 == 0)
		if err != nil {
			t.Fatal(err)
		}
		mustDelivered(t, c, last)
		for _, q := range checks {
			got, err := c.Check(ctx, q)
			if err != nil {
				t.Fatalf("seed %d round %d: check %v: %v", seed, round, q, err)
			}
			if want := truth(ctx, t, g, q); got.Allowed != want {
				mismatches++
				if mismatches <= 10 {
					t.Errorf("seed %d round %d after %v: %s %s %s %v: cache-path answer %v (source %s), fully consistent %v",
						seed, round, did, q.TenantID, q.Subject, q.Key, q.Resource, got.Allowed, got.Source, want)
				}
			}
		}
	}
	st := c.Stats()
	t.Logf("%d checks x %d rounds, %d mismatches; cache: %d hits, %d misses (%d answered by the mirror, %d mirror rebuilds), %d invalidations, %d barriers, %d fills dropped, %d verified, %d verify mismatches, %d resumes, %d resyncs",
		len(checks), rounds, mismatches, st.Hits, st.Misses, st.MirrorFills, st.MirrorRebuilds, st.Invalidations, st.Barriers, st.FillsDropped, st.Verified, st.Mismatches, st.Resumes, st.Resyncs)
	if st.Hits == 0 || st.Invalidations == 0 || st.Resumes == 0 {
		t.Fatalf("the cache answered %d checks, applied %d invalidations and resumed %d streams: the test did not exercise it", st.Hits, st.Invalidations, st.Resumes)
	}
	if mirror && (st.MirrorFills == 0 || st.MirrorRebuilds == 0) {
		t.Fatalf("%d misses answered by the mirror, %d rebuilds: the test did not exercise it", st.MirrorFills, st.MirrorRebuilds)
	}
	// The mirror's index serves every read a check of this model makes: a
	// refused read would be a right answer from SpiceDB, but the mirror not
	// doing its work (a SpiceDB upgrade that changes the engine's reads shows here).
	if st.MirrorErrors > 0 {
		t.Errorf("the mirror failed %d misses (they went to SpiceDB); see its debug log", st.MirrorErrors)
	}
	if !mirror && (st.Barriers == 0 || st.MirrorFills > 0) {
		t.Fatalf("%d barriers sent and %d misses answered by a mirror that is off", st.Barriers, st.MirrorFills)
	}
	if st.Mismatches > 0 {
		t.Errorf("background verification found %d mismatches", st.Mismatches)
	}
}

// TestDecisionCacheTokens: a check carrying a write's token reflects that write at once, while the
// stream has not delivered it yet, and while the stream is cut.
func TestDecisionCacheTokens(t *testing.T) {
	pgtest.Require(t)
	g, c := mustOpenCached(t, cache.Options{})
	ctx := context.Background()
	k, err := authz.ParseKey("scaibunker:execute")
	if err != nil {
		t.Fatal(err)
	}
	alice := authz.Subject{Kind: authz.SubjectUser, ID: "alice"}
	must := mustWrite(t)
	must(g.PutPartner(ctx, "p"))
	must(g.PutTenant(ctx, "t", "p"))
	must(g.PutRole(ctx, "t", "ops", []authz.Key{k}))
	run := func(t *testing.T, n int) (fromCache int) {
		for i := range n {
			add := i%2 == 0
			tok, err := g.SetMember(ctx, "t", "ops", alice, add)
			if err != nil {
				t.Fatal(err)
			}
			d, err := c.Check(ctx, authz.Check{TenantID: "t", Subject: alice, Key: k, ConsistencyToken: tok})
			if err != nil {
				t.Fatal(err)
			}
			if d.Allowed != add {
				t.Fatalf("write %d (member=%v): check with its token says allowed=%v (source %s)", i, add, d.Allowed, d.Source)
			}
			if d.Source == authz.SourceCache {
				fromCache++
			}
			// Once delivered, the same token may be answered from the cache (the first check after
			// the write's invalidation fills it), and still right.
			if c.Stats().Ready {
				mustDelivered(t, c, tok)
				for range 2 {
					d, err = c.Check(ctx, authz.Check{TenantID: "t", Subject: alice, Key: k, ConsistencyToken: tok})
					if err != nil || d.Allowed != add {
						t.Fatalf("write %d after delivery: allowed=%v err=%v", i, d.Allowed, err)
					}
					if d.Source == authz.SourceCache {
						fromCache++
					}
				}
			}
		}
		return fromCache
	}
	t.Run("StreamUp", func(t *testing.T) {
		if n := run(t, 20); n == 0 {
			t.Error("no token-carrying check was answered from the cache after its write was delivered")
		}
	})
	t.Run("StreamCut", func(t *testing.T) {
		c.Close() // the stream ends and the cache empties
		if c.Stats().Ready {
			t.Fatal("cache still ready without its stream")
		}
		if n := run(t, 20); n != 0 {
			t.Errorf("%d answers came from a cache whose stream is cut", n)
		}
		// A tokenless check still answers (from SpiceDB).
		if d, err := c.Check(ctx, authz.Check{TenantID: "t", Subject: alice, Key: k}); err != nil || d.Source != authz.SourceSpiceDB {
			t.Fatalf("tokenless check with the stream cut: %+v, %v", d, err)
		}
		// A new cache's stream resyncs from empty and answers again.
		c = mustStartCache(t, g, cache.Options{})
		tok, err := g.SetMember(ctx, "t", "ops", alice, true)
		if err != nil {
			t.Fatal(err)
		}
		mustDelivered(t, c, tok)
		for i := range 2 {
			d, err := c.Check(ctx, authz.Check{TenantID: "t", Subject: alice, Key: k})
			if err != nil || !d.Allowed {
				t.Fatalf("after resync: %+v, %v", d, err)
			}
			if i == 1 && d.Source != authz.SourceCache {
				t.Errorf("after resync the second check came from %s, want the cache", d.Source)
			}
		}
		if st := c.Stats(); st.Resyncs < 1 {
			t.Errorf("resyncs = %d, want at least 1", st.Resyncs)
		}
	})
}

// A grant written straight to SpiceDB (out of band) that names another
// tenant's role: removing the member from that role, a change to the other
// tenant's objects only, must still change the cached answer of the first
// tenant (the cache's dependents). Against real SpiceDB, tokenless checks
// through the cache after the stream has delivered each write.
func TestDecisionCacheCrossTenantGrant(t *testing.T) {
	ctx := context.Background()
	g, c := mustOpenCached(t, cache.Options{})
	key := newCacheWorld(t).keys[0]
	alice := authz.Subject{Kind: authz.SubjectUser, ID: "alice"}
	mustWrite := func(tok string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		mustDelivered(t, c, tok)
		return tok
	}
	mustWrite(g.PutPartner(ctx, "p"))
	mustWrite(g.PutTenant(ctx, "ta", "p"))
	mustWrite(g.PutTenant(ctx, "ub", "p"))
	mustWrite(g.PutRole(ctx, "ub", "r", []authz.Key{key}))
	mustWrite(g.SetMember(ctx, "ub", "r", alice, true))
	// Out of band: tenant ta grants the key to tenant ub's role.
	oob, err := g.perms.WriteRelationships(ctx, &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{
		touch(rel(typeTenant, "ta", key.GrantRelation(), roleMembers("ub/r")))}})
	if err != nil {
		t.Fatal(err)
	}
	// The stream delivers in commit order: once a later write of authzd's
	// (to a third tenant) is delivered, so is the out-of-band one.
	mustWrite(g.PutTenant(ctx, "vc", "p"))
	check := authz.Check{TenantID: "ta", Subject: alice, Key: key}
	waitFor(t, func() bool {
		d, err := c.Check(ctx, check)
		return err == nil && d.Allowed
	})
	// Asked twice: the second answer comes from the cache.
	if d, err := c.Check(ctx, check); err != nil || !d.Allowed || d.Source != authz.SourceCache {
		t.Fatalf("after the out-of-band grant (token %s): %+v, %v; want allowed from the cache", oob.GetWrittenAt().GetToken(), d, err)
	}
	// Alice leaves ub's role: a change to ub's objects only.
	mustWrite(g.SetMember(ctx, "ub", "r", alice, false))
	if truth(ctx, t, g, check) {
		t.Fatal("spicedb still allows alice after she left the role")
	}
	if d, err := c.Check(ctx, check); err != nil || d.Allowed {
		t.Fatalf("tenant ta's cached answer outlived the change to tenant ub's role: %+v, %v", d, err)
	}
}

// The same, with the out-of-band grant written before the decision cache
// started: the cache is replaced by a new one with its own watcher, as a new
// authzd process would start (nothing else runs at that moment). Its stream
// never carries the edge, so the watcher must find it at start
// (from the mirror's load, or crossTenantEdges without a mirror).
func TestDecisionCacheCrossTenantGrantBeforeStart(t *testing.T) {
	t.Run("Mirror", func(t *testing.T) { crossTenantGrantBeforeStart(t, 0) })
	t.Run("Scan", func(t *testing.T) { crossTenantGrantBeforeStart(t, -1) })
}

func crossTenantGrantBeforeStart(t *testing.T, mirrorMax int) {
	ctx := context.Background()
	g, c := mustOpenCached(t, cache.Options{MirrorMax: mirrorMax})
	key := newCacheWorld(t).keys[0]
	alice := authz.Subject{Kind: authz.SubjectUser, ID: "alice"}
	for _, w := range []func() (string, error){
		func() (string, error) { return g.PutPartner(ctx, "p") },
		func() (string, error) { return g.PutTenant(ctx, "ta", "p") },
		func() (string, error) { return g.PutTenant(ctx, "ub", "p") },
		func() (string, error) { return g.PutRole(ctx, "ub", "r", []authz.Key{key}) },
		func() (string, error) { return g.SetMember(ctx, "ub", "r", alice, true) },
	} {
		if _, err := w(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := g.perms.WriteRelationships(ctx, &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{
		touch(rel(typeTenant, "ta", key.GrantRelation(), roleMembers("ub/r")))}}); err != nil {
		t.Fatal(err)
	}
	c.Close()
	c = mustStartCache(t, g, cache.Options{MirrorMax: mirrorMax})

	check := authz.Check{TenantID: "ta", Subject: alice, Key: key}
	for range 2 { // the second answer comes from the cache
		if d, err := c.Check(ctx, check); err != nil || !d.Allowed {
			t.Fatalf("a cache started after the out-of-band grant: %+v, %v; want allowed", d, err)
		}
	}
	if st := c.Stats(); st.Hits == 0 {
		t.Fatalf("the answer was not cached: %+v", st)
	}
	tok, err := g.SetMember(ctx, "ub", "r", alice, false)
	if err != nil {
		t.Fatal(err)
	}
	mustDelivered(t, c, tok)
	if d, err := c.Check(ctx, check); err != nil || d.Allowed {
		t.Fatalf("tenant ta's cached answer outlived the change to tenant ub's role in a cache started after the edge: %+v, %v", d, err)
	}
}
