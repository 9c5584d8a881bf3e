package cache

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/scailabs/authzd/internal/authz"
)

// cacheSeed is the random schedules' seed: printed, and replayed from
// AUTHZ_TEST_CACHE_SEED.
func cacheSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("AUTHZ_TEST_CACHE_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("AUTHZ_TEST_CACHE_SEED=%q: %v", v, err)
		}
		seed = s
	}
	t.Logf("seed %d (replay: AUTHZ_TEST_CACHE_SEED=%d)", seed, seed)
	return seed
}

// Random schedules of writes (tenant, partner and token-carrying ones),
// partial deliveries, checkpoints, stream breaks and checks, with checks
// running concurrently all along. Every answer must be what upstream held at
// the revision the answer names; a check carrying a delivered write's token
// must include that write; and once everything is delivered, every answer
// is upstream's head.
func TestRandomSchedules(t *testing.T) {
	seed := cacheSeed(t)
	rnd := rand.New(rand.NewPCG(seed, 7))
	c, f := startFake(t, Options{})
	tenants, users := []string{"t0", "t1", "t2"}, []string{"u0", "u1", "u2"}
	pick := func(l []string) string { return l[rnd.IntN(len(l))] }

	// truthful checks an answer against upstream at the revision it names.
	truthful := func(ch authz.Check, d authz.Decision) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		q := question(ch.TenantID, ch.Subject.ID)
		at := f.revOf(d.CheckedAt)
		if want := f.valueAt(q, at); d.Allowed != want {
			return fmt.Errorf("%s %s answered %v (source %s) at %s, where upstream held %v", ch.TenantID, ch.Subject.ID, d.Allowed, d.Source, d.CheckedAt, want)
		}
		if ch.ConsistencyToken == "" {
			return nil
		}
		// At least as fresh as the token: no change to the question between the answer's revision and the write.
		for _, v := range append(f.history[qkey(q)], f.history[everyTenant+"\x00"+q.SubjectID]...) {
			if tok := f.revOf(ch.ConsistencyToken); v.rev > at && v.rev <= tok {
				return fmt.Errorf("%s %s with token %s answered at %s (source %s), before a change at r%d", ch.TenantID, ch.Subject.ID, ch.ConsistencyToken, d.CheckedAt, d.Source, v.rev)
			}
		}
		return nil
	}
	var failed sync.Once
	fail := func(err error) { failed.Do(func() { t.Errorf("seed %d: %v", seed, err) }) }

	stop := make(chan struct{})
	var checkers sync.WaitGroup
	for i := range 2 {
		r := rand.New(rand.NewPCG(seed, uint64(100+i)))
		checkers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				ch := check(tenants[r.IntN(len(tenants))], users[r.IntN(len(users))])
				d, err := c.Check(context.Background(), ch)
				if err != nil {
					fail(err)
					return
				}
				if err := truthful(ch, d); err != nil {
					fail(err)
				}
			}
		})
	}
	streams, writes, hits := 1, 0, uint64(0)
	for round := range 40 {
		for range 1 + rnd.IntN(8) {
			switch op := rnd.IntN(10); {
			case op < 4:
				tenant := pick(tenants)
				if rnd.IntN(6) == 0 {
					tenant = "" // a partner change: reaches every tenant
				}
				writes++
				f.write(tenant, pick(users), rnd.IntN(2) == 0, "")
			case op < 6:
				writes++
				id := fmt.Sprintf("w%d/x", writes)
				ch := check(pick(tenants), pick(users))
				ch.ConsistencyToken = f.write(ch.TenantID, ch.Subject.ID, rnd.IntN(2) == 0, id)
				c.Wrote(id, ch.ConsistencyToken)
				if rnd.IntN(2) == 0 {
					f.deliver()
				}
				d, err := c.Check(context.Background(), ch)
				if err != nil {
					t.Fatalf("seed %d round %d: %v", seed, round, err)
				}
				if err := truthful(ch, d); err != nil {
					t.Fatalf("seed %d round %d: %v", seed, round, err)
				}
			case op < 9:
				f.mu.Lock()
				n := rnd.IntN(len(f.queued) + 1)
				f.mu.Unlock()
				f.deliverSome(n, rnd.IntN(2) == 0)
			default:
				f.breakStream()
				streams++
				f.waitStream(streams)
			}
		}
		f.deliver()
		deadline := time.Now().Add(10 * time.Second)
		for !c.Stats().Ready {
			if time.Now().After(deadline) {
				t.Fatalf("seed %d round %d: not ready after everything was delivered", seed, round)
			}
			time.Sleep(time.Millisecond)
		}
		for _, tn := range tenants {
			for _, u := range users {
				d := mustCheck(t, c, check(tn, u))
				f.mu.Lock()
				want := f.valueAt(question(tn, u), f.rev)
				f.mu.Unlock()
				if d.Allowed != want {
					t.Fatalf("seed %d round %d: %s %s answered %v (source %s at %s) with everything delivered; upstream holds %v",
						seed, round, tn, u, d.Allowed, d.Source, d.CheckedAt, want)
				}
			}
		}
	}
	close(stop)
	checkers.Wait()
	st := c.Stats()
	hits = st.Hits
	t.Logf("%d writes, %d streams; cache: %d hits, %d misses, %d invalidations, %d fills dropped, %d resumes",
		writes, streams, hits, st.Misses, st.Invalidations, st.FillsDropped, st.Resumes)
	if hits == 0 || st.Invalidations == 0 || (streams > 1 && st.Resumes == 0) {
		t.Fatalf("the schedule did not exercise the cache: %+v", st)
	}
}
