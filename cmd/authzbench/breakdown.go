package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scailabs/authzd/client"
	"github.com/scailabs/authzd/client/middleware"
	"github.com/scailabs/authzd/internal/latency"
)

// Phase 7 shows where one durable decision's time goes, beside the floor of
// "decided and durably audited" measured in the same run on the same
// Postgres: one one-row INSERT committed through pgx, one at a time.

// breakdownConcurrency are the loads of phase 7: one caller, two, and a few.
var breakdownConcurrency = []int{1, 2, 8}

// breakdownPool is how many distinct checks phase 7 asks, all cached before it measures.
const breakdownPool = 500

// pgTestFsyncBin is Debian's PostgreSQL 15 disk sync test, used when present.
const pgTestFsyncBin = "/usr/lib/postgresql/15/bin/pg_test_fsync"

// component is one span of a decision, from authzd's stage traces.
type component struct {
	name string
	of   func(r latency.Record) time.Duration
}

func since(from, to latency.Stage) func(latency.Record) time.Duration {
	return func(r latency.Record) time.Duration { return time.Duration(r.Stages[to] - r.Stages[from]) }
}

var components = []component{
	{"HTTP decode + auth", func(r latency.Record) time.Duration { return time.Duration(r.Stages[latency.Decoded]) }},
	{"decide", since(latency.Decoded, latency.Decided)},
	{"audit queue wait", since(latency.Decided, latency.Sent)},
	{"audit statement", since(latency.Sent, latency.Statement)},
	{"COMMIT (WAL flush)", since(latency.Statement, latency.Committed)},
	{"response write", since(latency.Committed, latency.Written)},
	{"in authzd", func(r latency.Record) time.Duration { return time.Duration(r.Stages[latency.Written]) }},
}

// breakdownRun is one load of phase 7.
type breakdownRun struct {
	c            int
	st           stats
	traces       []latency.Record
	rowsPerBatch float64 // audit rows per commit, from authzd's metrics
}

// quantiles of component i over the run's traces.
func (r breakdownRun) quantiles(i int) (p50, p99 time.Duration) {
	return traceQuantiles(r.traces, components[i].of)
}

func traceQuantiles(traces []latency.Record, of func(latency.Record) time.Duration) (p50, p99 time.Duration) {
	if len(traces) == 0 {
		return 0, 0
	}
	d := make([]time.Duration, len(traces))
	for i, t := range traces {
		d[i] = of(t)
	}
	slices.Sort(d)
	s := stats{Lat: d}
	return s.Quantile(.50), s.Quantile(.99)
}

// breakdownResult is what phase 7 measured.
type breakdownResult struct {
	floor                 []stats // before and after the decision runs
	fsync, openDatasync   time.Duration
	fsyncNote             string
	syncCommit, syncMeth  string
	runs                  []breakdownRun
	gated, gatedServer    stats // checks through the Go client's middleware at c=1, and authzd's time for them
	plain, plainServer    stats // the same load through the benchmark's own HTTP client
	floorP50              time.Duration
	floorP99              time.Duration
	floorOps, floorErrors int
}

// phaseBreakdown: phase 7.
func (b *bench) phaseBreakdown(ctx context.Context) error {
	fmt.Fprintln(b.log, "phase 7: where a decision's time goes, and the commit floor")
	small := b.report.small
	if small == nil {
		small = newDataset("small", b.cfg.SmallTenants, max(1, b.cfg.SmallTenants/10), b.keys)
		b.report.small = small
		if _, err := b.provision(ctx, small, "0"); err != nil {
			return err
		}
	}
	res := &breakdownResult{}
	b.report.breakdown = res
	if err := b.auditDB.QueryRow(ctx, "SELECT current_setting('synchronous_commit'), current_setting('wal_sync_method')").Scan(&res.syncCommit, &res.syncMeth); err != nil {
		return err
	}
	res.fsync, res.openDatasync, res.fsyncNote = pgTestFsync(ctx, b.log)

	// A pool of checks of the small set, each asked once before the runs, so
	// that every decision of the phase is answered by the decision cache.
	pool := make([]checkCase, breakdownPool)
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range pool {
		pool[i] = small.draw(rng)
	}
	draw := func(rng *rand.Rand) checkCase { return pool[rng.IntN(len(pool))] }
	facade := b.audited.facadeCheck(draw)
	fmt.Fprintf(b.log, "  warming the decision cache with the phase's %d checks\n", len(pool))
	for _, cc := range pool {
		if _, err := b.audited.do(ctx, "POST", "/v1/permissions/check", b.audited.checkToken, string(checkBody(cc))); err != nil {
			return err
		}
	}

	floor := func() error {
		st, err := b.commitFloor(ctx)
		res.floor = append(res.floor, st)
		return err
	}
	if err := floor(); err != nil {
		return err
	}
	for _, c := range breakdownConcurrency {
		run := breakdownRun{c: c}
		r, err := b.measure(ctx, row{phase: "7", scenario: "check, facade, durable audit, cache warm, stage traces", load: fmt.Sprintf("c=%d", c), via: b.audited}, rowsPerAnswer, 0, func() stats {
			var st stats
			run.traces, run.rowsPerBatch, st = b.traced(ctx, c, facade)
			return st
		})
		if err != nil {
			return err
		}
		run.st = r.st
		res.runs = append(res.runs, run)
	}
	// The Go client's middleware at c=1, and the benchmark's plain client right after, for the same checks.
	gate, err := newGatedCheck(b.audited, draw)
	if err != nil {
		return err
	}
	for _, x := range []struct {
		name           string
		o              op
		client, server *stats
	}{
		{"check through the Go client's middleware (client/middleware), durable audit", gate, &res.gated, &res.gatedServer},
		{"check, facade, durable audit (the benchmark's HTTP client), beside the middleware", facade, &res.plain, &res.plainServer},
	} {
		var traces []latency.Record
		r, err := b.measure(ctx, row{phase: "7", scenario: x.name, load: "c=1", via: b.audited}, rowsPerAnswer, 0, func() stats {
			var st stats
			traces, _, st = b.traced(ctx, 1, x.o)
			return st
		})
		if err != nil {
			return err
		}
		*x.client = r.st
		x.server.Lat = make([]time.Duration, len(traces))
		for i, t := range traces {
			x.server.Lat[i] = time.Duration(t.Stages[latency.Written])
		}
		slices.Sort(x.server.Lat)
	}
	if err := floor(); err != nil {
		return err
	}
	var all stats
	for _, f := range res.floor {
		all.Lat = append(all.Lat, f.Lat...)
		res.floorOps += f.Ops
		res.floorErrors += f.Errors
	}
	slices.Sort(all.Lat)
	res.floorP50, res.floorP99 = all.Quantile(.50), all.Quantile(.99)
	return nil
}

// traced runs the closed loop at c and returns authzd's traces of the
// decisions made within its measured window, the audit rows per commit, and
// the run's own statistics.
func (b *bench) traced(ctx context.Context, c int, o op) ([]latency.Record, float64, stats) {
	// Whatever was kept before belongs to other runs.
	if _, err := b.latencyTraces(ctx); err != nil {
		fmt.Fprintln(b.log, "    stage traces:", err)
	}
	m0, _ := b.audited.scrape(ctx)
	began := time.Now()
	st := closedLoop(ctx, c, b.cfg.Warmup, b.cfg.Duration, b.cpu, o)
	m1, _ := b.audited.scrape(ctx)
	all, err := b.latencyTraces(ctx)
	if err != nil {
		fmt.Fprintln(b.log, "    stage traces:", err)
	}
	from, to := began.Add(b.cfg.Warmup).UnixNano(), began.Add(b.cfg.Warmup+b.cfg.Duration).UnixNano()
	var in []latency.Record
	for _, t := range all {
		if t.Start >= from && t.Start+t.Stages[latency.Written] <= to {
			in = append(in, t)
		}
	}
	m := m1.sub(m0)
	rows := 0.0
	if m.batches > 0 {
		rows = m.batchRows / m.batches
	}
	return in, rows, st
}

// latencyTraces takes the stage traces the audited authzd kept (and it forgets them).
func (b *bench) latencyTraces(ctx context.Context) ([]latency.Record, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+b.audited.srv.DebugAddr+"/debug/latency", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /debug/latency: %s", resp.Status)
	}
	var out []latency.Record
	return out, json.NewDecoder(resp.Body).Decode(&out)
}

// commitFloor measures one one-row INSERT committed through pgx, one at a
// time, on one connection to the audit database (synchronous_commit as the
// server has it): a loopback round trip and a WAL flush.
func (b *bench) commitFloor(ctx context.Context) (stats, error) {
	fmt.Fprintln(b.log, "  commit floor: one-row INSERT + COMMIT through pgx, c=1")
	conn, err := pgx.ConnectConfig(ctx, b.auditDB.Config().ConnConfig.Copy())
	if err != nil {
		return stats{}, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS authzbench_commit_floor (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, at timestamptz NOT NULL, note text NOT NULL)"); err != nil {
		return stats{}, err
	}
	// closedLoop at c=1 has one worker: the connection is not shared.
	return closedLoop(ctx, 1, b.cfg.Warmup, b.cfg.Duration, b.cpu, func(ctx context.Context, _ *rand.Rand) (outcome, error) {
		_, err := conn.Exec(ctx, "INSERT INTO authzbench_commit_floor (at, note) VALUES ($1, $2)", time.Now(), "floor")
		return outcome{}, err
	}), nil
}

// pgTestFsync runs pg_test_fsync, when installed, for its single 8 kB write
// figures (fdatasync, Linux's default wal_sync_method, and open_datasync),
// and stops it once it has printed them.
func pgTestFsync(ctx context.Context, log io.Writer) (fdatasync, openDatasync time.Duration, note string) {
	if _, err := os.Stat(pgTestFsyncBin); err != nil {
		return 0, 0, pgTestFsyncBin + " not installed"
	}
	fmt.Fprintln(log, "  pg_test_fsync (8 kB writes, 1 s per method)")
	dir := os.TempDir()
	file := filepath.Join(dir, "authzbench-fsync-"+randomHex(4))
	defer os.Remove(file)
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, pgTestFsyncBin, "-s", "1", "-f", file)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, 0, err.Error()
	}
	if err := cmd.Start(); err != nil {
		return 0, 0, err.Error()
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// "        fdatasync      519.895 ops/sec    1923 usecs/op"
		if len(f) != 5 || f[4] != "usecs/op" {
			continue
		}
		us, err := strconv.ParseFloat(f[3], 64)
		if err != nil {
			continue
		}
		d := time.Duration(us * float64(time.Microsecond))
		switch f[0] {
		case "open_datasync":
			openDatasync = d
		case "fdatasync":
			return d, openDatasync, "file in " + dir
		}
	}
	return 0, 0, "pg_test_fsync printed no fdatasync figure"
}

// newGatedCheck is one check through the Go client and its middleware, as a
// module gates a route: a handler behind middleware.RequireModulePermission,
// called in this process, whose tenant and user come from headers. 204 means
// allowed, 403 denied.
func newGatedCheck(c *apiClient, draw func(*rand.Rand) checkCase) (op, error) {
	cl, err := client.New(c.base, c.checkToken)
	if err != nil {
		return nil, err
	}
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	var mu sync.Mutex
	gated := map[string]http.Handler{}
	handler := func(key string) http.Handler {
		mu.Lock()
		defer mu.Unlock()
		h, found := gated[key]
		if !found {
			h = middleware.RequireModulePermission(cl, key, middleware.WithTenant(middleware.Header("X-Tenant")),
				middleware.WithUser(middleware.Header("X-User")))(ok)
			gated[key] = h
		}
		return h
	}
	return func(ctx context.Context, rng *rand.Rand) (outcome, error) {
		cc := draw(rng)
		h := handler(cc.key.String())
		req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/gated", nil)
		req.Header.Set("X-Tenant", cc.tenant)
		req.Header.Set("X-User", cc.user)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		switch w.Code {
		case http.StatusNoContent:
			return judge(cc, true), nil
		case http.StatusForbidden:
			return judge(cc, false), nil
		default:
			return outcome{}, fmt.Errorf("gated handler answered %d: %s", w.Code, truncate(w.Body.String(), 200))
		}
	}, nil
}

func times(d, floor time.Duration) string {
	if floor <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f×", float64(d)/float64(floor))
}

// writeBreakdown writes phase 7's tables and its goals.
func (r *report) writeBreakdown(p printer) {
	x := r.breakdown
	if x == nil {
		return
	}
	p("## Where a decision's time goes (phase 7)")
	p("")
	var floors []string
	for _, f := range x.floor {
		floors = append(floors, fmt.Sprintf("p50 %s / p99 %s ms over %s commits", ms(f.Quantile(.5)), ms(f.Quantile(.99)), thousands(len(f.Lat))))
	}
	p("- **floor**: one-row INSERT + COMMIT through pgx, one at a time on one connection to the audit database's server (synchronous_commit %s, wal_sync_method %s): **p50 %s ms, p99 %s ms** (measured before and after the decision runs: %s; %d errors)",
		x.syncCommit, x.syncMeth, ms(x.floorP50), ms(x.floorP99), strings.Join(floors, "; "), x.floorErrors)
	if x.fsync > 0 {
		p("- the disk: pg_test_fsync, one 8 kB write: fdatasync %d µs/op, open_datasync %d µs/op (%s)", x.fsync.Microseconds(), x.openDatasync.Microseconds(), x.fsyncNote)
	} else {
		p("- the disk: no pg_test_fsync figure (%s)", x.fsyncNote)
	}
	p("- each decision is traced inside authzd (GET /debug/latency on its profiler's listener): *HTTP decode + auth* from the request entering authzd's handler to the check decoded, authenticated and validated; *decide* the decision cache, mirror or SpiceDB; *audit queue wait* from the decision to its batch sent to Postgres (handing the row to the writer, waiting for a batch in flight, hashing, encoding); *audit statement* from sending to the statement's answer (a loopback round trip and the insert, and for a batch sent while the one before it was committing, the rest of that commit); *COMMIT* from there to the commit's answer (the WAL flush); *response write* from the commit to the answer handed to Go's HTTP server; *in authzd* the whole. *client* is what the load generator saw. Cells: p50 / p99 in ms, each quantile of its own column")
	p("")
	p.table("### Components", "| load | checks/s | client | in authzd | "+componentNames(len(components)-1)+" | rows per commit |",
		"|---|---:|---|---|"+strings.Repeat("---|", len(components)-1)+"---:|")
	for _, run := range x.runs {
		cells := make([]string, 0, len(components)-1)
		for i := range len(components) - 1 {
			p50, p99 := run.quantiles(i)
			cells = append(cells, ms(p50)+" / "+ms(p99))
		}
		a50, a99 := run.quantiles(len(components) - 1)
		p("| c=%d | %.0f | %s / %s | %s / %s | %s | %.2f |", run.c, run.st.Throughput(), ms(run.st.Quantile(.5)), ms(run.st.Quantile(.99)),
			ms(a50), ms(a99), strings.Join(cells, " | "), run.rowsPerBatch)
	}
	p("")
	p.table("### p50 as a multiple of the floor's p50", "| load | client | in authzd | "+componentNames(len(components)-1)+" |",
		"|---|---:|---:|"+strings.Repeat("---:|", len(components)-1))
	for _, run := range x.runs {
		cells := make([]string, 0, len(components)-1)
		for i := range len(components) - 1 {
			p50, _ := run.quantiles(i)
			cells = append(cells, times(p50, x.floorP50))
		}
		a50, _ := run.quantiles(len(components) - 1)
		p("| c=%d | %s | %s | %s |", run.c, times(run.st.Quantile(.5), x.floorP50), times(a50, x.floorP50), strings.Join(cells, " | "))
	}
	p("")
	if len(x.gated.Lat) > 0 && len(x.gatedServer.Lat) > 0 {
		p("- **Go client middleware at c=1** (a handler behind client/middleware.RequireModulePermission, called in the load generator): client p50 %s ms, p99 %s ms; authzd's own time for those checks p50 %s ms; client minus authzd at p50: %s ms. The benchmark's plain HTTP client right after: client p50 %s ms, authzd p50 %s ms, difference %s ms. So the middleware and Go client add %s ms at p50 over a bare HTTP call.",
			ms(x.gated.Quantile(.5)), ms(x.gated.Quantile(.99)), ms(x.gatedServer.Quantile(.5)), ms(x.gated.Quantile(.5)-x.gatedServer.Quantile(.5)),
			ms(x.plain.Quantile(.5)), ms(x.plainServer.Quantile(.5)), ms(x.plain.Quantile(.5)-x.plainServer.Quantile(.5)),
			ms((x.gated.Quantile(.5)-x.gatedServer.Quantile(.5))-(x.plain.Quantile(.5)-x.plainServer.Quantile(.5))))
		p("")
	}
	p.table("### Goals of phase 7", "| goal | target | measured | met |", "|---|---|---|---|")
	goal := func(name, target, measured string, ok bool) {
		p("| %s | %s | %s | %s |", name, target, measured, map[bool]string{true: "yes", false: "**no**"}[ok])
	}
	for _, run := range x.runs {
		switch run.c {
		case 1:
			p50, p99 := run.st.Quantile(.5), run.st.Quantile(.99)
			goal("c=1 decision p50, cache warm, durable audit", "≤ 1.25× floor p50 = "+ms(x.floorP50*5/4)+" ms", ms(p50)+" ms ("+times(p50, x.floorP50)+")", x.floorP50 > 0 && p50*4 <= x.floorP50*5)
			goal("c=1 decision p99", "≤ 3× floor p50 = "+ms(3*x.floorP50)+" ms", ms(p99)+" ms ("+times(p99, x.floorP50)+")", x.floorP50 > 0 && p99 <= 3*x.floorP50)
		case 8:
			target := 0.0
			if x.floorP50 > 0 {
				target = 0.6 * 8 / x.floorP50.Seconds()
			}
			goal("c=8 checks/s", fmt.Sprintf("≥ 0.6 × 8 / floor p50 = %.0f/s", target), fmt.Sprintf("%.0f/s (%.2f rows per commit)", run.st.Throughput(), run.rowsPerBatch), target > 0 && run.st.Throughput() >= target)
		}
	}
	p("")
}

func componentNames(n int) string {
	names := make([]string, n)
	for i := range n {
		names[i] = components[i].name
	}
	return strings.Join(names, " | ")
}
