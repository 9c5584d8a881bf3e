package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/scailabs/authzd/internal/auditchain"
	"github.com/scailabs/authzd/internal/authz"
	"github.com/scailabs/authzd/internal/postgres"
)

// Phase 8 measures the audit chain's ceiling: the most decisions per second
// the one hash chain commits on this machine. Every replica of authzd has
// its own audit writer and they all extend one chain on one Postgres
// primary, contending on its head row; the phase emulates replicas by
// several postgres.AuditLog instances (authzd's own writer, with the knobs
// authzd runs with, durable) on one database of their own, each fed by many
// concurrent Record calls, and verifies the chain they wrote afterwards.

// ceilingInstances are the replicas' worth of writers phase 8 compares.
var ceilingInstances = []int{1, 2, 4}

// ceilingRun is one load of phase 8.
type ceilingRun struct {
	instances, callers int // writer instances, and concurrent Record calls per instance
	st                 stats
	batches, rows      int             // committed in the measured window
	batchTime          []time.Duration // first record taken to commit, per batch in the window, sorted
	oneTrip, locked    int64           // batches after the known head in one round trip, and under the head's lock
}

func (r ceilingRun) rowsPerCommit() float64 {
	if r.batches == 0 {
		return 0
	}
	return float64(r.rows) / float64(r.batches)
}

func (r ceilingRun) batchQuantile(q float64) time.Duration {
	return stats{Lat: r.batchTime}.Quantile(q)
}

// ceilingResult is what phase 8 measured.
type ceilingResult struct {
	syncCommit string
	opts       postgres.AuditOptions
	runs       []ceilingRun
	verified   auditchain.Report
}

// phaseCeiling: phase 8.
func (b *bench) phaseCeiling(ctx context.Context) (err error) {
	fmt.Fprintln(b.log, "phase 8: the audit chain's ceiling")
	res := &ceilingResult{opts: postgres.AuditOptions{Writers: b.appCfg.AuditWriters, MaxBatch: b.appCfg.AuditMaxBatch,
		Timeout: b.appCfg.AuditTimeout, Linger: b.appCfg.AuditLinger}}
	b.report.ceiling = res
	u, err := url.Parse(b.cfg.PostgresURL)
	if err != nil {
		return err
	}
	// A database of its own (its backends count as the benchmark's Postgres
	// CPU), so the chain starts at genesis and nothing else moves its head.
	name := b.cpu.pgPrefix + "_chain"
	u.Path = "/" + name
	chainURL := u.String()
	defer func() {
		if derr := dropDatabase(context.WithoutCancel(ctx), b.cfg.PostgresURL, name); derr != nil && err == nil {
			err = derr
		}
	}()
	verifier, err := postgres.Open(ctx, chainURL, 2) // creates the database
	if err != nil {
		return err
	}
	defer verifier.Close()
	if err := postgres.Migrate(ctx, chainURL); err != nil {
		return fmt.Errorf("migrate the chain database: %w", err)
	}
	if err := verifier.Pool.QueryRow(ctx, "SELECT current_setting('synchronous_commit')").Scan(&res.syncCommit); err != nil {
		return err
	}
	callers := b.cfg.ChainCallers
	for _, n := range ceilingInstances {
		r, err := b.ceilingRun(ctx, chainURL, verifier, n, callers, res.opts)
		if err != nil {
			return err
		}
		res.runs = append(res.runs, r)
	}
	// What the writers left must be one intact chain from genesis to its head.
	rep, problem, err := auditchain.Walk(ctx, verifier, time.Time{}, nil)
	if err != nil {
		return fmt.Errorf("verify the chain phase 8 wrote: %w", err)
	}
	if problem != nil {
		return fmt.Errorf("the chain phase 8 wrote does not verify: %w", problem)
	}
	res.verified = rep
	return nil
}

// ceilingRun runs n writer instances, each fed by callers concurrent Record
// calls of one decision each, for a warm-up and the measured window.
func (b *bench) ceilingRun(ctx context.Context, chainURL string, verifier *postgres.DB, n, callers int, opts postgres.AuditOptions) (ceilingRun, error) {
	run := ceilingRun{instances: n, callers: callers}
	load := fmt.Sprintf("%d × c=%d", n, callers)
	fmt.Fprintf(b.log, "  8 chained audit writers (%s)\n", load)
	type batch struct {
		at   time.Time
		rows int
		d    time.Duration
	}
	var mu sync.Mutex
	var seen []batch
	var failed error
	o := opts
	o.Observe = func(rows int, d time.Duration, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			if failed == nil {
				failed = err
			}
			return
		}
		seen = append(seen, batch{time.Now(), rows, d})
	}
	logs := make([]*postgres.AuditLog, n)
	for i := range logs {
		db, err := postgres.Open(ctx, chainURL, 4)
		if err != nil {
			for _, l := range logs[:i] {
				l.Close()
			}
			return run, err
		}
		defer db.Close()
		logs[i] = postgres.NewAuditLog(db, o)
	}
	before, err := chainRows(ctx, verifier)
	if err != nil {
		return run, err
	}
	// The calls go to the instances in turn, so each carries callers' worth of load.
	var turn atomic.Uint64
	record := func(ctx context.Context, rng *rand.Rand) (outcome, error) {
		ev, err := ceilingEvent(rng)
		if err != nil {
			return outcome{}, err
		}
		if err := logs[turn.Add(1)%uint64(n)].Record(ctx, ev); err != nil {
			return outcome{}, err
		}
		return outcome{answers: 1}, nil
	}
	began := time.Now()
	run.st = closedLoop(ctx, n*callers, b.cfg.Warmup, b.cfg.Duration, b.cpu, record)
	for _, l := range logs {
		l.Close()
		one, locked := l.Batches()
		run.oneTrip += one
		run.locked += locked
	}
	from, to := began.Add(b.cfg.Warmup), began.Add(b.cfg.Warmup+b.cfg.Duration)
	mu.Lock()
	for _, x := range seen {
		if !x.at.Before(from) && !x.at.After(to) {
			run.batches++
			run.rows += x.rows
			run.batchTime = append(run.batchTime, x.d)
		}
	}
	firstErr := failed
	mu.Unlock()
	slices.Sort(run.batchTime)
	after, err := chainRows(ctx, verifier)
	if err != nil {
		return run, err
	}
	got := after - before
	c := completeness{run: "8 chained audit writers " + load, rows: got, want: run.st.Answers, ok: got == run.st.Answers}
	b.report.completeness = append(b.report.completeness, c)
	if run.st.FirstErr != nil {
		fmt.Fprintf(b.log, "    %d errors, first: %v\n", run.st.Errors, run.st.FirstErr)
	} else if firstErr != nil {
		fmt.Fprintf(b.log, "    a batch failed: %v\n", firstErr)
	}
	return run, ctx.Err()
}

func chainRows(ctx context.Context, db *postgres.DB) (int, error) {
	var n int
	err := db.Pool.QueryRow(ctx, "SELECT count(*) FROM audit_events").Scan(&n)
	return n, err
}

// ceilingEvent is one check decision as the facade records it: a version-7
// decision id, a user of one of a thousand tenants, the source in details.
func ceilingEvent(rng *rand.Rand) (authz.Event, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return authz.Event{}, err
	}
	tenant := fmt.Sprintf("t%04d", rng.IntN(1000))
	decision := authz.DecisionAllowed
	if rng.IntN(2) == 0 {
		decision = authz.DecisionDenied
	}
	return authz.Event{OccurredAt: time.Now(), Module: "scaibunker", Action: "check", ActorUserID: fmt.Sprintf("%s-u%02d", tenant, rng.IntN(30)),
		TenantID: tenant, Permission: "scaibunker:bunker.read", Decision: decision, ZedToken: "GhUKEzE3NjQ4NjQwMDAwMDAwMDAwMDA",
		DecisionID: id.String(), Client: "token:bench-check", RequestID: fmt.Sprintf("%016x%016x", rng.Uint64(), rng.Uint64()),
		Details: map[string]any{"source": authz.SourceCache}}, nil
}

// dropDatabase drops the named database on the server of serverURL.
func dropDatabase(ctx context.Context, serverURL, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// facadePeak is the highest durable-audit facade checks/s measured in this
// run (phases 1 and 4, closed loop), and the row it came from.
func (r *report) facadePeak() (float64, string) {
	best, where := 0.0, ""
	for _, x := range r.rows {
		if x.via == nil || x.st.Errors > 0 || !isDurableFacadeCheck(x.scenario) {
			continue
		}
		if t := x.st.Throughput(); t > best {
			best, where = t, "phase "+x.phase+", "+x.scenario+", "+x.load
		}
	}
	return best, where
}

func isDurableFacadeCheck(s string) bool {
	switch s {
	case "check, facade POST /v1/permissions/check, durable audit",
		"check on large data, facade, durable audit",
		"check on large data, Zipf users (s=1.1), facade, durable audit",
		"check, Zipf users (s=1.1), facade, durable audit":
		return true
	}
	return false
}

// writeCeiling writes phase 8's table.
func (r *report) writeCeiling(p printer) {
	x := r.ceiling
	if x == nil {
		return
	}
	p("## The audit chain's ceiling (phase 8)")
	p("")
	p("- every replica's decisions extend one hash chain on one Postgres primary; here %s instances of authzd's audit writer (internal/postgres AuditLog: writers %d, max batch %d, linger %s, timeout %s, as authzd runs it), each on its own connection pool, stand for that many replicas on one database of their own (synchronous_commit %s), each fed by the given number of concurrent Record calls of one decision each, in this process; Postgres, the writers and the callers share this machine's CPUs",
		joinInts(ceilingInstances), x.opts.Writers, x.opts.MaxBatch, x.opts.Linger, x.opts.Timeout, x.syncCommit)
	p("- *decisions/s*: Record calls committed per second; *Record*: one call's time, queue to commit; *batch*: one batch's time, first record taken to commit; *one trip*: share of batches committed after the head the instance knew, the rest took the head's lock after another instance moved it")
	if x.verified.Rows > 0 {
		p("- afterwards the chain verifies from genesis: %s", x.verified)
	}
	p("")
	p.table("### Chain commits", "| writers (replicas) × callers | decisions/s | rows per commit | commits/s | Record p50 / p99 | batch p50 / p99 | one trip | errors | CPU µs/op |",
		"|---|---:|---:|---:|---|---|---:|---:|---|")
	best := 0.0
	for _, run := range x.runs {
		share := "n/a"
		if t := run.oneTrip + run.locked; t > 0 {
			share = fmt.Sprintf("%.0f%%", 100*float64(run.oneTrip)/float64(t))
		}
		p("| %d × c=%d | %.0f | %.1f | %.0f | %s / %s | %s / %s | %s | %d | %s |", run.instances, run.callers, run.st.Throughput(), run.rowsPerCommit(),
			float64(run.batches)/nonzero(run.st.Elapsed.Seconds()), ms(run.st.Quantile(.5)), ms(run.st.Quantile(.99)),
			ms(run.batchQuantile(.5)), ms(run.batchQuantile(.99)), share, run.st.Errors, run.st.CPU.perOp(len(run.st.Lat)))
		best = max(best, run.st.Throughput())
	}
	p("")
	if peak, where := r.facadePeak(); peak > 0 {
		p("- **ceiling %.0f decisions/s** on this machine; authzd's own peak in this run: %.0f checks/s (%s), so the chain takes %.1f× one replica's peak", best, peak, where, best/peak)
	} else {
		p("- **ceiling %.0f decisions/s** on this machine; authzd's own peak is measured by phases 1 and 4 (not run)", best)
	}
	p("")
}
