package integration

import (
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// drainDelay is AUTHZ_SHUTDOWN_DRAIN_DELAY in these tests: long enough for a
// balancer polling /readyz every 100 ms to take a replica out.
const drainDelay = 2 * time.Second

// sharedReplicaEnv is the environment of replicas sharing one audit database
// and one SpiceDB datastore.
func sharedReplicaEnv(t *testing.T, w *world, adminToken string) (env map[string]string, auditURL string) {
	t.Helper()
	auditURL, _ = w.newDatabase(t, "audit")
	env = map[string]string{
		"AUTHZ_DATABASE_URL": auditURL, "AUTHZ_ADMIN_TOKEN": adminToken,
		"AUTHZ_SHUTDOWN_DRAIN_DELAY": drainDelay.String(),
	}
	if w.docker != nil {
		srv := w.startSpiceDB(t)
		env["AUTHZ_SPICEDB_ENDPOINT"], env["AUTHZ_SPICEDB_TOKEN"], env["AUTHZ_SPICEDB_INSECURE"] = srv.Endpoint, srv.Token, "true"
	} else {
		env["AUTHZ_SPICEDB_DATASTORE"] = "postgres"
		env["AUTHZ_SPICEDB_DATABASE_URL"], _ = w.newDatabase(t, "spicedb")
	}
	return env, auditURL
}

// balancer round-robins calls over the replicas whose /readyz answered 200
// at its last poll, every 100 ms, as a Kubernetes Service does with its
// endpoints. It never retries.
type balancer struct {
	slots []atomic.Pointer[api]
	ready []atomic.Bool
	next  atomic.Uint64
}

func newBalancer(ctx context.Context, apis ...*api) *balancer {
	b := &balancer{slots: make([]atomic.Pointer[api], len(apis)), ready: make([]atomic.Bool, len(apis))}
	for i, a := range apis {
		b.slots[i].Store(a)
		go func() {
			hc := &http.Client{Timeout: time.Second}
			t := time.NewTicker(100 * time.Millisecond)
			defer t.Stop()
			for ctx.Err() == nil {
				resp, err := hc.Get(b.slots[i].Load().base + "/readyz")
				ok := err == nil && resp.StatusCode == http.StatusOK
				if err == nil {
					resp.Body.Close()
				}
				b.ready[i].Store(ok)
				select {
				case <-ctx.Done():
				case <-t.C:
				}
			}
		}()
	}
	return b
}

// pick is the next ready replica, nil when none is.
func (b *balancer) pick() *api {
	for range len(b.slots) {
		i := int(b.next.Add(1) % uint64(len(b.slots)))
		if b.ready[i].Load() {
			return b.slots[i].Load()
		}
	}
	return nil
}

// TestRollingRestartDrain: two replicas behind a balancer polling /readyz;
// each in turn gets SIGTERM, drains, exits and is replaced, under a steady
// check load without retries: not one call fails, and every answered
// decision has its audit row.
func TestRollingRestartDrain(t *testing.T) {
	t.Run("Current", func(t *testing.T) { testRollingRestartDrain(t, false) })
	// The replacements start on an audit database a newer release migrated
	// further (a rollback, or the previous release restarting mid-roll).
	t.Run("DatabaseAhead", func(t *testing.T) { testRollingRestartDrain(t, true) })
}

func testRollingRestartDrain(t *testing.T, ahead bool) {
	w := mustWorld(t)
	adminToken := "it-admin-" + randomHex(16)
	env, auditURL := sharedReplicaEnv(t, w, adminToken)
	procs := []*authzdProcess{startAuthzdProcess(t, env), startAuthzdProcess(t, env)}
	first := newAPI(procs[0].URL, adminToken)
	second := *first // the same call log, for the reconciliation
	second.base = procs[1].URL

	ops := first.as("ops-admin")
	ops.mustPartner(t, "p")
	ops.mustTenant(t, "t", "p")
	ops.mustRole(t, "t", "ops", "scaibunker:execute", "scaibunker:create")
	tok := ops.mustMember(t, "t", "ops", "alice")
	checks := freshWhereAllowed([]knownCheck{
		{checkRequest{TenantID: "t", UserID: "alice", Permission: "scaibunker:execute"}, true},
		{checkRequest{TenantID: "t", UserID: "bob", Permission: "scaibunker:execute"}, false},
		{checkRequest{TenantID: "t", UserID: "alice", Permission: "scaiskills:view"}, false},
	}, tok)
	mustSettleSchema(t, first, checks[1].req)
	mustSettleSchema(t, &second, checks[1].req)

	db, err := pgxpool.New(context.Background(), auditURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if ahead {
		if _, err := db.Exec(context.Background(), "UPDATE authzd_schema_version SET version = version + 1"); err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b := newBalancer(ctx, first, &second)
	time.Sleep(300 * time.Millisecond) // the first polls

	var drained sync.WaitGroup
	drained.Add(1)
	go func() {
		defer drained.Done()
		defer cancel()
		for i, p := range procs {
			time.Sleep(1500 * time.Millisecond)
			mustDrainVisible(t, p)
			select {
			case <-p.exited:
			case <-time.After(drainDelay + 20*time.Second):
				t.Errorf("replica %d did not exit after SIGTERM", i)
				return
			}
			np := startAuthzdProcess(t, env)
			if log, err := os.ReadFile(np.logPath); ahead && (err != nil || !strings.Contains(string(log), "serving without migrating")) {
				t.Errorf("replacement %d on a database ahead did not log it (%v)", i, err)
			}
			na := *b.slots[i].Load()
			na.base = np.URL
			b.slots[i].Store(&na)
		}
		time.Sleep(1500 * time.Millisecond)
	}()

	var mu sync.Mutex
	var outs []outcome
	var skipped atomic.Int64
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			for ctx.Err() == nil {
				a := b.pick()
				if a == nil {
					skipped.Add(1)
					time.Sleep(10 * time.Millisecond)
					continue
				}
				o := knownCheckOp(a, checks)(w, rnd)
				mu.Lock()
				outs = append(outs, o)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	drained.Wait()

	var answered int
	for _, o := range outs {
		switch {
		case o.wrong:
			t.Errorf("WRONG ANSWER: %s said allowed=%v", o.desc, o.allowed)
		case o.status == http.StatusOK:
			answered++
		default:
			t.Errorf("failed call: %s: status %d %s err %v", o.desc, o.status, o.code, o.err)
		}
	}
	t.Logf("rolling restart with drain: %d calls, %d answered 200, %d picks found no ready replica", len(outs), answered, skipped.Load())
	if answered == 0 {
		t.Fatal("no call was answered")
	}
	mustReconcileReceived(t, db, first.calls.snapshot())
}

// mustDrainVisible sends p SIGTERM and sees it drain: /readyz answers 503
// {"status":"draining"} while a check is still answered, with Connection: close.
func mustDrainVisible(t *testing.T, p *authzdProcess) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("SIGTERM: %v", err)
		return
	}
	deadline := time.Now().Add(drainDelay / 2)
	for {
		resp, err := http.Get(p.URL + "/readyz")
		if err == nil {
			var body struct{ Status string }
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			_ = json.Unmarshal(b, &body)
			if resp.StatusCode == http.StatusServiceUnavailable && body.Status == "draining" {
				if !resp.Close {
					t.Errorf("a draining /readyz answer lacks Connection: close")
				}
				return
			}
		}
		if time.Now().After(deadline) {
			t.Errorf("/readyz did not say draining within %s of SIGTERM (last: %v)", drainDelay/2, err)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSIGINTSkipsDrain: SIGINT stops authzd without the drain delay.
func TestSIGINTSkipsDrain(t *testing.T) {
	w := mustWorld(t)
	env, _ := sharedReplicaEnv(t, w, "it-admin-"+randomHex(16))
	env["AUTHZ_SHUTDOWN_DRAIN_DELAY"] = "60s"
	p := startAuthzdProcess(t, env)
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
		t.Logf("exited %v after SIGINT: %v", time.Since(start).Round(time.Millisecond), p.waitErr)
		if p.waitErr != nil {
			t.Errorf("exit: %v", p.waitErr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("authzd still running 30 s after SIGINT with a 60 s drain delay")
	}
}
