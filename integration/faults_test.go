package integration

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scailabs/authzd/cmd/authzd/app"
)

// outcome is what one request under load got back.
type outcome struct {
	sent, at time.Time
	desc     string
	status   int // 0: no HTTP answer
	code     string
	err      error
	wrong    bool // a 200 whose answer contradicts the known truth
	allowed  bool // a 200 check that said allowed
	check    bool // a decision call (check), as opposed to a provisioning write
}

// runLoad calls op from workers goroutines until ctx ends and returns every outcome.
func runLoad(ctx context.Context, workers int, op func(worker int, rnd *rand.Rand) outcome) []outcome {
	var (
		mu  sync.Mutex
		all []outcome
		wg  sync.WaitGroup
	)
	seed := uint64(time.Now().UnixNano())
	for w := 0; w < workers; w++ {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(w), seed))
			var mine []outcome
			for ctx.Err() == nil {
				mine = append(mine, op(w, rnd))
			}
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	sort.Slice(all, func(i, j int) bool { return all[i].at.Before(all[j].at) })
	return all
}

// knownCheckOp returns a load operation that asks one of checks at random and marks wrong answers.
func knownCheckOp(a *api, checks []knownCheck) func(int, *rand.Rand) outcome {
	return func(_ int, rnd *rand.Rand) outcome {
		k := checks[rnd.IntN(len(checks))]
		o := outcome{sent: time.Now(), desc: "check " + k.req.String(), check: true}
		r, ans, err := a.check(context.Background(), k.req)
		o.at, o.status, o.code, o.err = time.Now(), r.Status, r.ErrorCode(), err
		if err == nil && r.Status == http.StatusOK {
			o.allowed = *ans.Allowed
			o.wrong = *ans.Allowed != k.want
		} else {
			time.Sleep(5 * time.Millisecond) // failures come fast; do not spin on them
		}
		return o
	}
}

// freshWhereAllowed gives every check that must be allowed the zed token of the last setup write:
// without one a check may read a snapshot from before the grant (minimize_latency). Checks that must be
// denied were never granted at any revision, so they keep whatever they have and exercise both paths.
func freshWhereAllowed(checks []knownCheck, token string) []knownCheck {
	out := slices.Clone(checks)
	for i := range out {
		if out[i].want && out[i].req.ConsistencyToken == "" {
			out[i].req.ConsistencyToken = token
		}
	}
	return out
}

// faultReport checks outcomes around an outage [cutAt, restoreAt): never a wrong answer; only 200 or
// 503 "unavailable"; inside the outage (after grace) every answer is 503; after it, 200s come back
// within recoverWithin. It returns when the first 200 after the restore came.
func faultReport(t *testing.T, outs []outcome, cutAt, restoreAt time.Time, grace, recoverWithin time.Duration) {
	t.Helper()
	var ok, unavailable, during, duringOK int
	var firstOK time.Time
	errs := 0
	report := func(format string, args ...any) {
		if errs++; errs <= 15 {
			t.Errorf(format, args...)
		}
	}
	for _, o := range outs {
		inOutage := o.sent.After(cutAt.Add(grace)) && o.at.Before(restoreAt)
		if inOutage {
			during++
		}
		switch {
		case o.wrong:
			report("WRONG ANSWER at %s: %s said allowed=%v", o.at.Format(time.StampMilli), o.desc, o.allowed)
		case o.status == http.StatusOK:
			ok++
			if inOutage {
				duringOK++
				report("%s answered 200 during the outage (sent %s, answered %s); gated calls must answer 503",
					o.desc, o.sent.Format(time.StampMilli), o.at.Format(time.StampMilli))
			}
			if o.sent.After(restoreAt) && firstOK.IsZero() {
				firstOK = o.at
			}
		case o.status == http.StatusServiceUnavailable && o.code == "unavailable":
			unavailable++
		default:
			report("%s at %s: status %d code %q err %v; want 200 or 503 unavailable", o.desc, o.at.Format(time.StampMilli), o.status, o.code, o.err)
		}
		if d := o.at.Sub(o.sent); d > 15*time.Second {
			report("%s took %s", o.desc, d)
		}
	}
	t.Logf("%d calls: %d answered 200, %d answered 503; %d sent inside the outage; first 200 after restore %s after it",
		len(outs), ok, unavailable, during, firstOK.Sub(restoreAt).Round(time.Millisecond))
	if during == 0 {
		t.Errorf("no call ran inside the outage; the fault was not exercised")
	}
	if firstOK.IsZero() || firstOK.Sub(restoreAt) > recoverWithin {
		t.Errorf("no 200 within %s after the restore: authzd did not recover by itself", recoverWithin)
	}
}

// TestFaultAuditDatabaseCut cuts authzd off its audit database for a few seconds under load. Gated
// calls must answer 503 while it is cut, never a wrong decision, recover on their own when it is back,
// and every decision a caller received must have its audit row.
func TestFaultAuditDatabaseCut(t *testing.T) {
	w := mustWorld(t)
	proxy := newTCPProxy(t, hostPort(t, w.adminURL))
	a := startApp(t, withMemorySpiceDB(), withAuditProxy(proxy.Addr()))
	ops := a.as("ops-admin")
	ops.mustPartner(t, "p")
	ops.mustTenant(t, "t", "p")
	ops.mustRole(t, "t", "ops", "scaibunker:execute")
	ops.mustMember(t, "t", "ops", "alice")
	tok := ops.mustResource(t, "t", "bunker", "b", "alice")
	checks := []knownCheck{
		{checkRequest{TenantID: "t", UserID: "alice", Permission: "scaibunker:execute"}, true},
		{checkRequest{TenantID: "t", UserID: "bob", Permission: "scaibunker:execute", ConsistencyToken: tok}, false},
		{checkRequest{TenantID: "t", UserID: "alice", Permission: "scaibunker:execute", Resource: &resourceRef{Type: "bunker", ID: "b"}, ConsistencyToken: tok}, true},
		{checkRequest{TenantID: "t", UserID: "alice", Permission: "scaibunker:root"}, false},
	}
	checks = freshWhereAllowed(checks, tok)

	var (
		mu      sync.Mutex
		written []string // users whose PUT answered 200
		n       int
	)
	checkOp := knownCheckOp(a.api, checks)
	op := func(worker int, rnd *rand.Rand) outcome {
		if worker != 0 {
			return checkOp(worker, rnd)
		}
		// Worker 0 provisions new members, so writes meet the outage too.
		mu.Lock()
		n++
		user := fmt.Sprintf("new-%d", n)
		mu.Unlock()
		o := outcome{sent: time.Now(), desc: "PUT member " + user}
		r, _, err := ops.request(context.Background(), http.MethodPut, memberPath("t", "ops", user), nil)
		o.at, o.status, o.code, o.err = time.Now(), r.Status, r.ErrorCode(), err
		if err == nil && r.Status == http.StatusOK {
			mu.Lock()
			written = append(written, user)
			mu.Unlock()
		}
		time.Sleep(20 * time.Millisecond)
		return o
	}

	cut, outs := cutUnderLoad(a, proxy, 3*time.Second, checks[0].req, func(ctx context.Context) []outcome { return runLoad(ctx, 8, op) })
	t.Logf("audit database cut %s..%s; /readyz during the cut: %d, after: %d",
		cut.at.Format(time.StampMilli), cut.restoreAt.Format(time.StampMilli), cut.readyDuring, cut.readyAfter)
	faultReport(t, outs, cut.at, cut.restoreAt, time.Second, 10*time.Second)
	if cut.readyDuring != http.StatusServiceUnavailable || cut.readyAfter != http.StatusOK {
		t.Errorf("/readyz answered %d during the cut and %d after; want 503 and 200", cut.readyDuring, cut.readyAfter)
	}

	// Every write answered 200 took effect.
	tok = ops.mustPartner(t, "p")
	for _, user := range written {
		a.mustCheck(t, checkRequest{TenantID: "t", UserID: user, Permission: "scaibunker:execute", ConsistencyToken: tok}, true)
	}
	a.mustReconcileAudit(t)
}

// outage is what cutUnderLoad saw of one cut.
type outage struct {
	at, restoreAt           time.Time
	readyDuring, readyAfter int // /readyz halfway through the cut, and a second after recovery
}

// cutUnderLoad runs load while the connection through proxy is cut for d:
// a second of load before the cut, and after the restore, load until req
// answers 200 again (gRPC and pgx reconnect with backoff) and two seconds more.
func cutUnderLoad(a *testApp, proxy *tcpProxy, d time.Duration, req checkRequest, load func(context.Context) []outcome) (outage, []outcome) {
	ctx, cancel := context.WithCancel(context.Background())
	var o outage
	go func() {
		defer cancel()
		time.Sleep(time.Second)
		o.at = time.Now()
		proxy.Cut()
		time.Sleep(d / 2)
		o.readyDuring = readyzStatus(a.URL)
		time.Sleep(d / 2)
		o.restoreAt = time.Now()
		proxy.Restore()
		waitRecovered(a.api, req, 15*time.Second)
		time.Sleep(time.Second)
		o.readyAfter = readyzStatus(a.URL)
		time.Sleep(time.Second)
	}()
	outs := load(ctx)
	return o, outs
}

// waitRecovered returns once req answers 200, or after max.
func waitRecovered(a *api, req checkRequest, max time.Duration) {
	deadline := time.Now().Add(max)
	for time.Now().Before(deadline) {
		if r, _, err := a.check(context.Background(), req); err == nil && r.Status == http.StatusOK {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// metricValue reads one unlabelled sample from authzd's /metrics (-1 when absent).
func metricValue(t *testing.T, base, name string) float64 {
	t.Helper()
	hc := &http.Client{Timeout: 10 * time.Second}
	resp, err := hc.Get(base + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read /metrics: %v", err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", name, err)
			}
			return f
		}
	}
	return -1
}

func readyzStatus(base string) int {
	hc := &http.Client{Timeout: 10 * time.Second}
	resp, err := hc.Get(base + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestFaultSpiceDBUnreachable runs authzd in external mode with its SpiceDB behind a proxy and cuts the
// proxy under load: checks must answer 503, never allowed:true, and recover when SpiceDB is back.
func TestFaultSpiceDBUnreachable(t *testing.T) {
	w := mustWorld(t)
	srv := w.startSpiceDB(t)
	proxy := newTCPProxy(t, srv.Endpoint)
	// The revision memo is on here (it is off by default): remembered answers
	// must not outlive an unreachable SpiceDB either.
	a := startApp(t, withExternalSpiceDB(spicedbServer{Endpoint: proxy.Addr(), Token: srv.Token}),
		withConfig(func(c *app.Config) { c.CheckMemoWindow = 500 * time.Millisecond }))
	ops := a.as("ops-admin")
	ops.mustPartner(t, "p")
	ops.mustTenant(t, "t", "p")
	ops.mustRole(t, "t", "ops", "scaibunker:execute")
	ops.mustMember(t, "t", "ops", "alice")
	tok := ops.mustResource(t, "t", "bunker", "b", "alice")
	bunker := &resourceRef{Type: "bunker", ID: "b"}
	checks := []knownCheck{
		{checkRequest{TenantID: "t", UserID: "alice", Permission: "scaibunker:execute"}, true},
		{checkRequest{TenantID: "t", UserID: "alice", Permission: "scaibunker:execute", Resource: bunker}, true},
		{checkRequest{TenantID: "t", UserID: "alice", Permission: "scaibunker:execute", ConsistencyToken: tok}, true},
		{checkRequest{TenantID: "t", UserID: "bob", Permission: "scaibunker:execute"}, false},
		{checkRequest{TenantID: "t", UserID: "bob", Permission: "scaibunker:execute", Resource: bunker}, false},
		{checkRequest{TenantID: "t", UserID: "bob", Permission: "scaibunker:execute", ConsistencyToken: tok}, false},
	}
	checks = freshWhereAllowed(checks, tok)
	for _, k := range checks {
		a.mustCheck(t, k.req, k.want)
	}

	cut, outs := cutUnderLoad(a, proxy, 4*time.Second, checks[0].req, func(ctx context.Context) []outcome {
		return runLoad(ctx, 6, knownCheckOp(a.api, checks))
	})
	cutAt, restoreAt := cut.at, cut.restoreAt
	t.Logf("SpiceDB cut %s..%s; /readyz during the cut: %d, after: %d",
		cutAt.Format(time.StampMilli), restoreAt.Format(time.StampMilli), cut.readyDuring, cut.readyAfter)
	for _, o := range outs {
		if o.allowed && o.sent.After(cutAt.Add(time.Second)) && o.at.Before(restoreAt) {
			t.Errorf("allowed:true while SpiceDB was unreachable: %s at %s", o.desc, o.at.Format(time.StampMilli))
			break
		}
	}
	faultReport(t, outs, cutAt, restoreAt, time.Second, 10*time.Second)
	// The decision cache (on by default) must have been answering, or this run says nothing about it:
	// its answers must not outlive an unreachable SpiceDB (the stream ends, or the watcher's probe or a
	// failed miss resyncs it).
	if hits := metricValue(t, a.URL, "authzd_cache_hits_total"); hits <= 0 {
		t.Errorf("the decision cache answered no check during the run (authzd_cache_hits_total = %v)", hits)
	}
	// The memo must have been answering, or this run says nothing about it.
	if hits := metricValue(t, a.URL, "authzd_check_memo_hits_total"); hits <= 0 {
		t.Errorf("the revision memo answered no check during the run (authzd_check_memo_hits_total = %v)", hits)
	}
	if cut.readyDuring != http.StatusServiceUnavailable {
		t.Errorf("/readyz answered %d while SpiceDB was unreachable, want 503", cut.readyDuring)
	}

	// Writes work again too.
	tok = ops.mustMember(t, "t", "ops", "carol")
	a.mustCheck(t, checkRequest{TenantID: "t", UserID: "carol", Permission: "scaibunker:execute", ConsistencyToken: tok}, true)
	a.mustReconcileAudit(t)
}

// TestFaultSIGKILL kills an authzd process with SIGKILL under load, then checks that every decision a
// caller received has its audit row, and that authzd restarts on the same databases with its state.
func TestFaultSIGKILL(t *testing.T) {
	w := mustWorld(t)
	auditURL, _ := w.newDatabase(t, "audit")
	adminToken := "it-admin-" + randomHex(16)
	env := map[string]string{
		"AUTHZ_DATABASE_URL": auditURL,
		"AUTHZ_ADMIN_TOKEN":  adminToken,
	}
	if w.docker != nil {
		srv := w.startSpiceDB(t)
		env["AUTHZ_SPICEDB_ENDPOINT"], env["AUTHZ_SPICEDB_TOKEN"], env["AUTHZ_SPICEDB_INSECURE"] = srv.Endpoint, srv.Token, "true"
	} else {
		env["AUTHZ_SPICEDB_DATASTORE"] = "postgres"
		env["AUTHZ_SPICEDB_DATABASE_URL"], _ = w.newDatabase(t, "spicedb")
	}

	p := startAuthzdProcess(t, env)
	c := newAPI(p.URL, adminToken)
	ops := c.as("ops-admin")
	ops.mustPartner(t, "p")
	ops.mustTenant(t, "t", "p")
	ops.mustRole(t, "t", "ops", "scaibunker:execute", "scaibunker:create")
	tok := ops.mustMember(t, "t", "ops", "alice")
	checks := []knownCheck{
		{checkRequest{TenantID: "t", UserID: "alice", Permission: "scaibunker:execute"}, true},
		{checkRequest{TenantID: "t", UserID: "alice", Permission: "scaibunker:create", ConsistencyToken: tok}, true},
		{checkRequest{TenantID: "t", UserID: "bob", Permission: "scaibunker:execute"}, false},
		{checkRequest{TenantID: "t", UserID: "alice", Permission: "scaiskills:view"}, false},
	}
	checks = freshWhereAllowed(checks, tok)
	mustSettleSchema(t, c, checks[len(checks)-1].req)

	ctx, cancel := context.WithCancel(context.Background())
	var killedAt time.Time
	go func() {
		defer cancel()
		time.Sleep(2 * time.Second)
		killedAt = time.Now()
		p.kill()
		time.Sleep(500 * time.Millisecond) // let every in-flight call fail
	}()
	outs := runLoad(ctx, 16, knownCheckOp(c, checks))

	// Outcomes are classified here and in the cluster test's rolling restart by each fault's own rule
	// of what may go unanswered, so the two loops stay apart.
	var answered, lost int
	for _, o := range outs {
		switch {
		case o.wrong:
			t.Errorf("WRONG ANSWER before the kill: %s said allowed=%v", o.desc, o.allowed)
		case o.status == http.StatusOK:
			answered++
		case o.err != nil && !o.at.Before(killedAt):
			lost++ // no answer: the process died under it
		default:
			t.Errorf("%s: status %d err %v before the kill", o.desc, o.status, o.err)
		}
	}
	t.Logf("SIGKILL at %s: %d decisions answered before it, %d calls got no answer", killedAt.Format(time.StampMilli), answered, lost)
	if answered == 0 {
		t.Fatal("no decision was answered before the kill")
	}

	// Every decision a caller received has its row, though the process never flushed or closed anything.
	db, err := pgxpool.New(context.Background(), auditURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mustReconcileReceived(t, db, c.calls.snapshot())

	// authzd comes back on the same databases with its state intact.
	p2 := startAuthzdProcess(t, env)
	c2 := newAPI(p2.URL, adminToken)
	c2.mustCheck(t, checkRequest{TenantID: "t", UserID: "alice", Permission: "scaibunker:execute", ConsistencyToken: tok}, true)
	c2.mustCheck(t, checkRequest{TenantID: "t", UserID: "bob", Permission: "scaibunker:execute"}, false)
	mustReconcileReceived(t, db, append(c.calls.snapshot(), c2.calls.snapshot()...))
	p2.kill()
}

// mustReconcileReceived is mustReconcileAudit for a process that died: rows may exist for calls whose
// answers were lost with it, but every answer received must have its row.
func mustReconcileReceived(tb testing.TB, db *pgxpool.Pool, calls []callRecord) {
	tb.Helper()
	rows := mustAuditRows(tb, db)
	known := map[string]bool{}
	for _, c := range calls {
		known[c.RequestID] = true
	}
	var answered []auditRow
	for _, r := range rows {
		if known[r.RequestID] {
			answered = append(answered, r)
		}
	}
	reportProblems(tb, reconcile(calls, answered))
	tb.Logf("audit after SIGKILL: %d calls answered, %d rows (%d for calls whose answer was lost)", len(calls), len(rows), len(rows)-len(answered))
}

// mustSettleSchema waits until checks without a consistency token have answered 200 for 6 s in a row.
// authzd writes the schema to a fresh SpiceDB at start, and a separate SpiceDB (the Docker world's
// container) answers such checks at a quantized revision up to its quantization interval (5 s) old, which
// may predate the schema: the check then fails (FAILED_PRECONDITION "object definition not found", a 500
// here; inside a bulk check a 503) now and then for a few seconds. Scenarios that count every non-200 as
// a failure wait that window out first; how long it took is logged.
func mustSettleSchema(tb testing.TB, a *api, req checkRequest) {
	tb.Helper()
	const quiet = 6 * time.Second
	start, okSince := time.Now(), time.Time{}
	failures := 0
	for {
		r, _, err := a.check(context.Background(), req)
		switch {
		case err == nil && r.Status == http.StatusOK:
			if okSince.IsZero() {
				okSince = time.Now()
			}
			if time.Since(okSince) >= quiet {
				tb.Logf("checks without a token answered 200 for %s, %s after start (%d failures before)", quiet, time.Since(start).Round(time.Millisecond), failures)
				return
			}
		default:
			okSince = time.Time{}
			failures++
		}
		if time.Since(start) > 30*time.Second {
			tb.Fatalf("check %s without a token still fails 30 s after start: %v %s", req, err, r)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
