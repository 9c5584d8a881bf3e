package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestConcurrency runs 25 provisioning writers and 25 checkers against one authzd for
// -authzd.duration (default 10s). Each writer owns its users, so the final state is exactly what its
// writes say; writers read their own writes back with the zed token; checkers ask questions whose answer
// never changes. No request may fail, no answer may be wrong, and the audit log must hold every call.
func TestConcurrency(t *testing.T) {
	a := startApp(t)
	ops := a.as("ops-admin")

	const (
		writers, checkers = 25, 25
		tenants           = 5
		usersPerWriter    = 8
	)
	opsKeys := []string{"scaibunker:create", "scaibunker:execute"}
	ops.mustPartner(t, "pc")
	for i := 0; i < tenants; i++ {
		tenant := fmt.Sprintf("tc%d", i)
		ops.mustTenant(t, tenant, "pc")
		ops.mustRole(t, tenant, "ops", opsKeys...)
		ops.mustMember(t, tenant, "ops", "stable-op")
	}
	ops.mustMember(t, "tc0", "tenant_admin", "stable-admin")
	setup := ops.mustMember(t, "tc1", "tenant_viewer", "sa:stable-viewer")

	// Questions whose answers never change during the run.
	stable := []knownCheck{
		{checkRequest{TenantID: "tc0", UserID: "stable-admin", Permission: "scaibunker:execute"}, true},
		{checkRequest{TenantID: "tc0", UserID: "stable-admin", Permission: "scaibunker:admin:platform"}, false},
		{checkRequest{TenantID: "tc1", UserID: "stable-admin", Permission: "scaibunker:execute"}, false},
		{checkRequest{TenantID: "tc2", UserID: "stable-op", Permission: "scaibunker:execute"}, true},
		{checkRequest{TenantID: "tc3", UserID: "stable-op", Permission: "scaiskills:grant"}, false},
		{checkRequest{TenantID: "tc1", UserID: "sa:stable-viewer", Permission: "scaiskills:view"}, true},
		{checkRequest{TenantID: "tc1", UserID: "sa:stable-viewer", Permission: "scaiskills:bind"}, false},
		{checkRequest{TenantID: "tc4", UserID: "nobody", Permission: "scaibunker:create"}, false},
	}
	stable = freshWhereAllowed(stable, setup)
	for _, s := range stable {
		a.mustCheck(t, s.req, s.want)
	}

	type membership struct{ ops, viewer bool }
	state := make([][]membership, writers) // state[w][u]: only writer w touches it
	for w := range state {
		state[w] = make([]membership, usersPerWriter)
	}
	userOf := func(w, u int) string { return fmt.Sprintf("w%d-u%d", w, u) }
	tenantOf := func(w int) string { return fmt.Sprintf("tc%d", w%tenants) }

	var (
		latMu                      sync.Mutex
		writeLatency, checkLatency []time.Duration
	)
	observe := func(into *[]time.Duration, d time.Duration) {
		latMu.Lock()
		*into = append(*into, d)
		latMu.Unlock()
	}
	var (
		writes, checks, failures atomic.Int64
		errMu                    sync.Mutex
		errCount                 int
	)
	fail := func(format string, args ...any) {
		failures.Add(1)
		errMu.Lock()
		defer errMu.Unlock()
		if errCount++; errCount <= 20 {
			t.Errorf(format, args...)
		}
	}

	duration := *concurrencyDuration
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup

	for w := 0; w < writers; w++ {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(w), uint64(start.UnixNano())))
			for ctx.Err() == nil {
				u := rnd.IntN(usersPerWriter)
				m := &state[w][u]
				role, member, key := "ops", &m.ops, "scaibunker:execute"
				if rnd.IntN(2) == 1 {
					role, member, key = "tenant_viewer", &m.viewer, "scaiskills:view"
				}
				method := http.MethodPut
				if *member {
					method = http.MethodDelete
				}
				// A write in flight when the run ends still counts: use a context that outlives the run.
				path := memberPath(tenantOf(w), role, userOf(w, u))
				sent := time.Now()
				r, token, err := ops.request(context.Background(), method, path, nil)
				observe(&writeLatency, time.Since(sent))
				if err != nil || r.Status != http.StatusOK {
					fail("writer %d: %s %s: %v %s", w, method, path, err, r)
					// A failed write may or may not have been applied. Retry it, as a caller would (writes
					// are idempotent), so that the expected final state stays known.
					for attempt := 0; attempt < 5 && (err != nil || r.Status != http.StatusOK); attempt++ {
						time.Sleep(100 * time.Millisecond)
						r, token, err = ops.request(context.Background(), method, path, nil)
					}
					if err != nil || r.Status != http.StatusOK {
						fail("writer %d: %s %s still failing after retries; stopping this writer: %v %s", w, method, path, err, r)
						return
					}
				}
				writes.Add(1)
				*member = method == http.MethodPut
				if rnd.IntN(3) == 0 {
					req := checkRequest{TenantID: tenantOf(w), UserID: userOf(w, u), Permission: key, ConsistencyToken: token}
					r, ans, err := a.check(context.Background(), req)
					switch {
					case err != nil || r.Status != http.StatusOK:
						fail("writer %d: read-your-write check %s: %v %s", w, req, err, r)
					case *ans.Allowed != *member:
						fail("writer %d: read-your-write check %s = %v after %s, want %v", w, req, *ans.Allowed, method, *member)
					default:
						checks.Add(1)
					}
				}
			}
		})
	}
	for c := 0; c < checkers; c++ {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(1000+c), uint64(start.UnixNano())))
			for ctx.Err() == nil {
				switch n := rnd.IntN(10); {
				case n == 0: // a bulk of stable questions
					picks := make([]knownCheck, 5)
					items := make([]checkRequest, len(picks))
					for i := range picks {
						picks[i] = stable[rnd.IntN(len(stable))]
						items[i] = picks[i].req
					}
					r, results, err := a.checkBulk(context.Background(), items)
					if err != nil || r.Status != http.StatusOK {
						fail("checker %d: check_bulk: %v %s", c, err, r)
						continue
					}
					for i, res := range results {
						if *res.Allowed != picks[i].want {
							fail("checker %d: check_bulk %s = %v, want %v", c, items[i], *res.Allowed, picks[i].want)
						}
					}
					checks.Add(int64(len(items)))
				case n < 6: // a stable question
					s := stable[rnd.IntN(len(stable))]
					sent := time.Now()
					r, ans, err := a.check(context.Background(), s.req)
					observe(&checkLatency, time.Since(sent))
					if err != nil || r.Status != http.StatusOK {
						fail("checker %d: check %s: %v %s", c, s.req, err, r)
						continue
					}
					if *ans.Allowed != s.want {
						fail("checker %d: check %s = %v, want %v", c, s.req, *ans.Allowed, s.want)
					}
					checks.Add(1)
				default: // a question about a user some writer is changing: any answer, but an answer
					w, u := rnd.IntN(writers), rnd.IntN(usersPerWriter)
					req := checkRequest{TenantID: tenantOf(w), UserID: userOf(w, u), Permission: "scaibunker:execute"}
					r, _, err := a.check(context.Background(), req)
					if err != nil || r.Status != http.StatusOK {
						fail("checker %d: check %s: %v %s", c, req, err, r)
						continue
					}
					checks.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	t.Logf("%s with %d writers and %d checkers: %d writes, %d decisions, %d failures (%.0f requests/s)",
		elapsed.Round(time.Millisecond), writers, checkers, writes.Load(), checks.Load(), failures.Load(),
		float64(writes.Load()+checks.Load())/elapsed.Seconds())
	t.Logf("write latency %s; check latency %s", latencySummary(writeLatency), latencySummary(checkLatency))
	if writes.Load() == 0 || checks.Load() == 0 {
		t.Fatalf("the run did nothing: %d writes, %d checks", writes.Load(), checks.Load())
	}
	// The decision cache (on by default) must have answered, and misses of tenants that changed must
	// have read at barriers, or this run says nothing about the cache's read-your-writes.
	for _, m := range []string{"authzd_cache_hits_total", "authzd_cache_barriers_total"} {
		if v := metricValue(t, a.URL, m); v <= 0 {
			t.Errorf("%s = %v: the decision cache did not take part in the run", m, v)
		}
	}

	// The final state is exactly what the writes say. A write after all others gives a token that
	// covers them all.
	final := ops.mustPartner(t, "pc")
	for w := 0; w < writers; w++ {
		for u := 0; u < usersPerWriter; u++ {
			m := state[w][u]
			items := []checkRequest{
				{TenantID: tenantOf(w), UserID: userOf(w, u), Permission: "scaibunker:execute", ConsistencyToken: final},
				{TenantID: tenantOf(w), UserID: userOf(w, u), Permission: "scaiskills:view", ConsistencyToken: final},
			}
			r, results, err := a.checkBulk(context.Background(), items)
			if err != nil || r.Status != http.StatusOK {
				t.Fatalf("final check_bulk: %v %s", err, r)
			}
			if *results[0].Allowed != m.ops || *results[1].Allowed != m.viewer {
				t.Errorf("final state of %s in %s: execute=%v view=%v, want ops member=%v viewer=%v",
					userOf(w, u), tenantOf(w), *results[0].Allowed, *results[1].Allowed, m.ops, m.viewer)
			}
			var want []string
			if m.ops {
				want = append(want, opsKeys...)
			}
			if m.viewer {
				want = append(want, "scaiskills:view")
			}
			if got := a.mustPermissions(t, tenantOf(w), userOf(w, u), final); !sameSet(got, want) {
				t.Errorf("final permissions of %s in %s = %v, want %v", userOf(w, u), tenantOf(w), got, want)
			}
		}
	}

	a.mustReconcileAudit(t)
}

// knownCheck is a check and the answer it must get.
type knownCheck struct {
	req  checkRequest
	want bool
}

// latencySummary is "p50 … p99 … max … (n)" of ds.
func latencySummary(ds []time.Duration) string {
	if len(ds) == 0 {
		return "(none)"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	q := func(p float64) time.Duration { return s[int(p*float64(len(s)-1))].Round(time.Millisecond) }
	return fmt.Sprintf("p50 %s p99 %s max %s (n=%d)", q(0.5), q(0.99), s[len(s)-1].Round(time.Millisecond), len(s))
}
