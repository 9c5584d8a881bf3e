package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/authzed/authzed-go/v1"
	envparse "github.com/caarlos0/env/v11"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/scailabs/authzd/cmd/authzd/app"
	"github.com/scailabs/authzd/internal/authz"
	"github.com/scailabs/authzd/schema"
)

// bench holds what the phases share.
type bench struct {
	cfg  config
	log  io.Writer // progress, on stderr
	keys []authz.Key

	spice     *spicedbServer
	direct    *authzed.Client
	audited   *apiClient // authzd with durable audit
	unaudited *apiClient // authzd with DisableAudit, same SpiceDB and data
	nocache   *apiClient // authzd with durable audit and the decision cache off
	unchained *apiClient // authzd with durable audit outside the hash chain (AUTHZ_BENCH_DISABLE_AUDIT_CHAIN)
	auditDB   *pgxpool.Pool
	spiceURL  string // SpiceDB's datastore
	cpu       *cpuMeter
	appCfg    app.Config

	report report
}

// run runs every phase and writes the report to out. It returns an error
// when setup fails or when any run's audit rows differ from its answers
// (after the report is written).
func run(ctx context.Context, cfg config, out, log io.Writer) (err error) {
	b := &bench{cfg: cfg, log: log}
	b.report.started = time.Now()
	b.report.loadStart = loadAvg()
	model, err := schema.Embedded()
	if err != nil {
		return err
	}
	for _, k := range model.Keys {
		b.keys = append(b.keys, k.Key)
	}

	bin, err := spicedbBinary(ctx, log)
	if err != nil {
		return err
	}
	if b.report.spicedbVersion, err = spicedbVersion(ctx); err != nil {
		return err
	}
	dbs, err := newDatabases(ctx, cfg.PostgresURL)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, dbs.drop(context.WithoutCancel(ctx))) }()
	b.report.pgVersion = dbs.serverVersion

	// What the machine does before the benchmark adds to it.
	idle := &cpuMeter{}
	s0 := idle.sample()
	if cfg.Smoke {
		time.Sleep(200 * time.Millisecond)
	} else {
		time.Sleep(time.Second)
	}
	b.report.background = idle.use(s0, idle.sample()).cores()
	whole := idle.sample()

	if err := b.startSpiceDB(ctx, bin, dbs); err != nil {
		return err
	}
	defer b.spice.Stop()
	if b.spice.MetricsAddr != "" {
		fmt.Fprintf(log, "spicedb metrics and pprof on http://%s/\n", b.spice.MetricsAddr)
	}
	b.cpu = &cpuMeter{spicedbPid: b.spice.Pid(), pgPrefix: dbs.prefix}
	if b.direct, err = b.spice.Client(); err != nil {
		return err
	}
	defer b.direct.Close()

	closeApps, err := b.openApps(ctx, dbs)
	defer func() { err = errors.Join(err, closeApps()) }()
	if err != nil {
		return err
	}
	if b.auditDB, err = pgxpool.New(ctx, dbs.url("audit")); err != nil {
		return err
	}
	defer b.auditDB.Close()

	// A failing phase ends the run, but what was measured is still reported.
	var phaseErr error
	// Phase 4 compares with the small data set's checks, so it needs them too.
	if cfg.Phases[1] || cfg.Phases[2] || cfg.Phases[3] || cfg.Phases[4] {
		phaseErr = b.phaseChecks(ctx)
	}
	if phaseErr == nil && cfg.Phases[4] {
		phaseErr = b.phaseLarge(ctx)
	}
	if phaseErr == nil && cfg.Phases[5] {
		phaseErr = b.phaseAuditQuery(ctx)
	}
	if phaseErr == nil && cfg.Phases[7] {
		phaseErr = b.phaseBreakdown(ctx)
	}
	if phaseErr == nil && cfg.Phases[8] {
		phaseErr = b.phaseCeiling(ctx)
	}
	b.report.loadEnd = loadAvg()
	b.report.steal = idle.use(whole, idle.sample()).stealShare(runtime.NumCPU())
	b.report.finished = time.Now()
	b.report.failure = phaseErr
	b.report.write(out, b)
	return errors.Join(phaseErr, b.report.completenessError())
}

// startSpiceDB starts the benchmark's SpiceDB on its own database; the caller stops it.
func (b *bench) startSpiceDB(ctx context.Context, bin string, dbs *databases) (err error) {
	cfg, log := b.cfg, b.log
	fmt.Fprintln(log, "starting spicedb on", dbs.name("spicedb"))
	b.spiceURL = dbs.url("spicedb")
	datastoreURL := b.spiceURL
	if cfg.DatastoreQS != "" {
		datastoreURL += map[bool]string{true: "&", false: "?"}[strings.Contains(datastoreURL, "?")] + cfg.DatastoreQS
	}
	opts := spicedbOptions{Profile: cfg.ProfileDir != "", Extra: cfg.SpiceDBArgs, Env: cfg.SpiceDBEnv}
	if cfg.Smoke {
		opts.QuantizationInterval = 100 * time.Millisecond
	}
	b.spice, err = startSpiceDB(ctx, bin, datastoreURL, opts)
	return err
}

// openApps starts the authzd instances the phases compare (audited,
// unaudited, decision cache off, hash chain off), each as its own process of
// this tree's cmd/authzd, and their service tokens. closeAll stops what was
// started, also when err is set.
func (b *bench) openApps(ctx context.Context, dbs *databases) (closeAll func() error, err error) {
	var started []*authzdServer
	dir := ""
	closeAll = func() error {
		var errs []error
		for _, s := range slices.Backward(started) {
			errs = append(errs, s.Stop())
		}
		if dir != "" {
			errs = append(errs, os.RemoveAll(dir))
		}
		return errors.Join(errs...)
	}
	if dir, err = os.MkdirTemp("", "authzbench-"); err != nil {
		return closeAll, err
	}
	bin := b.cfg.AuthzdBinary
	if bin == "" {
		if bin, err = authzdBinary(ctx, dir, b.log); err != nil {
			return closeAll, err
		}
	}
	adminToken := "bench-admin-" + randomHex(16)
	maxConc := 256
	for _, c := range b.cfg.Concurrency {
		maxConc = max(maxConc, c)
	}
	httpClient := newHTTPClient(maxConc)
	for _, inst := range []struct {
		dst                             **apiClient
		disableAudit, cacheOff, noChain bool
	}{{&b.audited, false, false, false}, {&b.unaudited, true, false, false}, {&b.nocache, false, true, false}, {&b.unchained, false, false, true}} {
		s, err := b.openApp(ctx, bin, dbs.url("audit"), adminToken, inst.disableAudit, inst.cacheOff, inst.noChain)
		if err != nil {
			return closeAll, err
		}
		started = append(started, s)
		b.cpu.authzdPids = append(b.cpu.authzdPids, s.Pid())
		*inst.dst = &apiClient{base: s.URL, http: httpClient, adminToken: adminToken, srv: s}
	}
	// Service tokens, as modules would hold them; both instances share the token table.
	for _, t := range []struct {
		dst   *string
		scope string
	}{{&b.audited.checkToken, authz.ScopeCheck}, {&b.audited.provisionToken, authz.ScopeProvision}, {&b.audited.auditToken, authz.ScopeAuditRead}} {
		var err error
		if *t.dst, err = b.audited.createToken(ctx, "bench-"+t.scope, t.scope); err != nil {
			return closeAll, err
		}
	}
	for _, c := range []*apiClient{b.unaudited, b.nocache, b.unchained} {
		c.checkToken, c.provisionToken, c.auditToken = b.audited.checkToken, b.audited.provisionToken, b.audited.auditToken
	}
	return closeAll, nil
}

// openApp starts one authzd process in external mode against the
// benchmark's SpiceDB. Knobs not set here (pool size, audit writers and
// batch) come from the AUTHZ_* environment or their defaults, so they can be
// tried without code changes.
func (b *bench) openApp(ctx context.Context, bin, auditURL, adminToken string, disableAudit, cacheOff, noChain bool) (*authzdServer, error) {
	env := []string{
		"AUTHZ_DATABASE_URL=" + auditURL,
		"AUTHZ_ADMIN_TOKEN=" + adminToken,
		"AUTHZ_SPICEDB_ENDPOINT=" + b.spice.Addr, "AUTHZ_SPICEDB_TOKEN=" + b.spice.Key, "AUTHZ_SPICEDB_INSECURE=true",
		fmt.Sprintf("AUTHZ_BENCH_DISABLE_AUDIT=%v", disableAudit),
		fmt.Sprintf("AUTHZ_BENCH_DISABLE_AUDIT_CHAIN=%v", noChain),
		"AUTHZ_LOG_LEVEL=warn", "AUTHZ_LOG_FORMAT=text",
	}
	if cacheOff {
		env = append(env, "AUTHZ_DECISION_CACHE=off")
	}
	env = append(env, b.cfg.AuthzdEnv...)
	if !disableAudit && !cacheOff && !noChain {
		// What the report says of the knobs: the process's environment, read the way authzd reads it.
		environ := map[string]string{}
		for _, kv := range append(os.Environ(), env...) {
			k, v, _ := strings.Cut(kv, "=")
			environ[k] = v
		}
		cfg, err := envparse.ParseAsWithOptions[app.Config](envparse.Options{Environment: environ})
		if err != nil {
			return nil, err
		}
		b.appCfg = cfg
	}
	s, err := startAuthzd(ctx, bin, env, b.log)
	if err != nil {
		return nil, fmt.Errorf("start authzd (audit disabled: %v, cache off: %v, chain off: %v): %w", disableAudit, cacheOff, noChain, err)
	}
	return s, nil
}

// auditRows counts the committed audit rows.
func (b *bench) auditRows(ctx context.Context) (int, error) {
	var n int
	err := b.auditDB.QueryRow(ctx, "SELECT count(*) FROM audit_events").Scan(&n)
	return n, err
}

// expect says how many audit rows a run must leave.
type expect int

const (
	rowsPerAnswer expect = iota // one row per decision answered
	noRows                      // audit disabled or SpiceDB direct
)

// measure runs one measurement and checks the audit rows it left.
func (b *bench) measure(ctx context.Context, r row, want expect, extraRows int, fn func() stats) (row, error) {
	fmt.Fprintf(b.log, "  %s %s (%s)\n", r.phase, r.scenario, r.load)
	before, err := b.auditRows(ctx)
	if err != nil {
		return r, err
	}
	var m0 facadeMetrics
	var w0 walStats
	if r.via != nil {
		if m0, err = r.via.scrape(ctx); err != nil {
			return r, err
		}
		w0 = readWAL(ctx, b.auditDB)
	}
	r.st = fn()
	after, err := b.auditRows(ctx)
	if err != nil {
		return r, err
	}
	if r.via != nil {
		m1, err := r.via.scrape(ctx)
		if err != nil {
			return r, err
		}
		r.internals = m1.sub(m0).String()
		if w := readWAL(ctx, b.auditDB).sub(w0).String(); w != "" {
			r.internals += "; " + w
		}
	}
	if ctx.Err() != nil {
		return r, ctx.Err()
	}
	got := after - before
	c := completeness{run: r.phase + " " + r.scenario + " " + r.load, rows: got}
	switch want {
	case rowsPerAnswer:
		c.want = r.st.Answers + extraRows
		c.ok = got == c.want
		r.audit = fmt.Sprintf("%d = %d", got, c.want)
		if !c.ok {
			r.audit = fmt.Sprintf("**%d ≠ %d**", got, c.want)
		}
	case noRows:
		c.ok = got == 0
		r.audit = "none (0 rows)"
		if !c.ok {
			r.audit = fmt.Sprintf("**%d rows**", got)
		}
	}
	b.report.completeness = append(b.report.completeness, c)
	b.report.rows = append(b.report.rows, r)
	if r.st.FirstErr != nil {
		fmt.Fprintf(b.log, "    %d errors, first: %v\n", r.st.Errors, r.st.FirstErr)
	}
	return r, nil
}

// profiled runs fn while recording CPU profiles of the authzd instance it
// goes through (via; nil for SpiceDB direct) and of SpiceDB over its measured
// window (after warmup), authzd's allocation profiles before and after and
// its heap after, when -profile-dir is set.
func (b *bench) profiled(ctx context.Context, name string, via *apiClient, warmup time.Duration, fn func() stats) func() stats {
	if b.cfg.ProfileDir == "" {
		return fn
	}
	return func() stats {
		if err := os.MkdirAll(b.cfg.ProfileDir, 0o755); err != nil {
			fmt.Fprintln(b.log, "profile:", err)
			return fn()
		}
		path := func(suffix string) string { return filepath.Join(b.cfg.ProfileDir, name+suffix) }
		var wg sync.WaitGroup
		profile := func(what string, get func(ctx context.Context, d time.Duration, path string) error) {
			wg.Go(func() {
				select {
				case <-time.After(warmup):
				case <-ctx.Done():
					return
				}
				if err := get(ctx, b.cfg.Duration, path("."+what+".pprof")); err != nil {
					fmt.Fprintf(b.log, "%s profile: %v\n", what, err)
				}
			})
		}
		profile("spicedb", b.spice.Profile)
		if via != nil {
			// Allocation profiles are cumulative: one before and one after the run
			// (go tool pprof -diff_base before after) give the run's allocations.
			if err := via.srv.Allocs(ctx, path(".allocs-before.authzd.pprof")); err != nil {
				fmt.Fprintln(b.log, "authzd allocation profile:", err)
			}
			profile("authzd", via.srv.Profile)
		}
		st := fn()
		wg.Wait()
		if via == nil {
			return st
		}
		if err := via.srv.Allocs(ctx, path(".allocs.authzd.pprof")); err != nil {
			fmt.Fprintln(b.log, "authzd allocation profile:", err)
		}
		if err := via.srv.Heap(ctx, path(".heap.authzd.pprof")); err != nil {
			fmt.Fprintln(b.log, "authzd heap profile:", err)
		}
		mirror, gc, err := shares(path(".authzd.pprof"))
		if err != nil {
			fmt.Fprintln(b.log, "profile:", err)
			return st
		}
		if ops := len(st.Lat); ops > 0 && st.CPU.OK {
			b.report.splits = append(b.report.splits, cpuSplit{name: name, ops: ops, authzdPerOp: st.CPU.authzdPerOp(ops), mirrorShare: mirror, gcShare: gc})
		}
		return st
	}
}

// provision writes a data set through the audited facade, then waits until
// SpiceDB answers from a revision that holds all of it.
func (b *bench) provision(ctx context.Context, d *dataset, phase string) (stats, error) {
	p := provisioner{d: d, api: b.audited}
	var total stats
	r, err := b.measure(ctx, row{phase: phase, scenario: fmt.Sprintf("provision %s data set through the API: %s writes", d.prefix, thousands(d.writes())),
		load: fmt.Sprintf("%d tenants at once", b.cfg.ProvisionC), allowed: allowedNone, via: b.audited}, rowsPerAnswer, 1, func() stats {
		start := time.Now()
		plat := p.platform(ctx, b.cfg.ProvisionC, b.cpu)
		ten := p.tenants(ctx, b.cfg.ProvisionC, b.cpu)
		total = combine(plat, ten)
		total.Elapsed = time.Since(start)
		// The wait for visibility is not part of the provisioning time.
		start = time.Now()
		if err := b.sentinel(ctx, d); err != nil {
			total.Errors++
			total.FirstErr = err
		}
		fmt.Fprintf(b.log, "    checks saw the provisioned data %s after the last write\n", time.Since(start).Round(time.Millisecond))
		return total
	})
	if err != nil {
		return r.st, err
	}
	if r.st.Errors > 0 {
		return r.st, fmt.Errorf("provisioning %s: %d of %d writes failed; first: %v", d.prefix, r.st.Errors, r.st.Ops, r.st.FirstErr)
	}
	if r.st.Ops != d.writes() {
		return r.st, fmt.Errorf("provisioning %s: %d writes, want %d", d.prefix, r.st.Ops, d.writes())
	}
	// Autovacuum would analyse relation_tuple after a bulk load like this
	// one; the server may run without it (this machine's does), so do it here.
	return r.st, analyze(ctx, b.spiceURL)
}

// sentinel adds one more member after all other writes and waits until
// checks see it, through the facade and straight to SpiceDB: both use
// minimize_latency, which may answer from a revision up to the quantization
// interval old, and every write before the sentinel is in any revision that
// holds it. The facade's decision cache sees the write within the Watch lag,
// sooner than SpiceDB's own snapshots, so the facade alone says too little
// about the direct rows that follow (they showed wrong answers in their first
// seconds when only the facade was asked). SpiceDB may still hand out the
// previous revision for a moment (its max staleness, 10% of the interval), so
// the sentinel must stay visible for a second.
func (b *bench) sentinel(ctx context.Context, d *dataset) error {
	user := d.prefix + "-sentinel"
	if _, err := b.audited.do(ctx, "PUT", "/v1/tenants/"+d.tenant(0)+"/roles/"+d.role(0)+"/members/"+user, b.audited.provisionToken, ""); err != nil {
		return err
	}
	key := d.keys[d.roleKeys(0, 0)[0]]
	body := fmt.Sprintf(`{"tenant_id":%q,"user_id":%q,"permission":%q}`, d.tenant(0), user, key.String())
	deadline := time.Now().Add(60 * time.Second)
	var seen time.Time
	for {
		// The unaudited instance, so that waiting leaves no audit rows.
		ans, err := b.unaudited.do(ctx, "POST", "/v1/permissions/check", b.unaudited.checkToken, body)
		if err != nil {
			return err
		}
		direct, err := b.direct.CheckPermission(ctx, directRequest(checkCase{tenant: d.tenant(0), user: user, key: key}))
		// Right after authzd wrote the schema to the fresh SpiceDB, a
		// minimize_latency check may read a quantized revision that predates
		// it (FAILED_PRECONDITION "object definition not found", for up to the
		// 5 s quantization interval; docs/integration.md): not visible yet.
		if err != nil && status.Code(err) != codes.FailedPrecondition {
			return err
		}
		switch {
		case err != nil:
			seen = time.Time{}
			if time.Now().After(deadline) {
				return fmt.Errorf("SpiceDB direct still fails after 60s: %w", err)
			}
		case !strings.Contains(string(ans), `"allowed":true`) || direct.GetPermissionship() != v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION:
			seen = time.Time{}
		case seen.IsZero():
			seen = time.Now()
		case time.Since(seen) >= time.Second:
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("provisioned data not steadily visible to checks after 60s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func combine(a, b stats) stats {
	s := stats{Ops: a.Ops + b.Ops, Errors: a.Errors + b.Errors, Answers: a.Answers + b.Answers, Retries: a.Retries + b.Retries,
		Lat: append(append([]time.Duration{}, a.Lat...), b.Lat...), FirstErr: a.FirstErr, CPU: a.CPU}
	if s.FirstErr == nil {
		s.FirstErr = b.FirstErr
	}
	s.CPU.Wall += b.CPU.Wall
	s.CPU.Authzd += b.CPU.Authzd
	s.CPU.Self += b.CPU.Self
	s.CPU.SpiceDB += b.CPU.SpiceDB
	s.CPU.PG += b.CPU.PG
	s.CPU.Other += b.CPU.Other
	s.CPU.Steal += b.CPU.Steal
	s.CPU.OK = a.CPU.OK && b.CPU.OK
	slices.Sort(s.Lat)
	return s
}

// phaseChecks: phases 1-3 on the small data set.
func (b *bench) phaseChecks(ctx context.Context) error {
	fmt.Fprintln(b.log, "phase 1-3: small data set")
	small := newDataset("small", b.cfg.SmallTenants, max(1, b.cfg.SmallTenants/10), b.keys)
	b.report.small = small
	if _, err := b.provision(ctx, small, "0"); err != nil {
		return err
	}
	direct, facade, bare := directCheck(b.direct, small.draw), b.audited.facadeCheck(small.draw), b.unaudited.facadeCheck(small.draw)
	uncached, unchained := b.nocache.facadeCheck(small.draw), b.unchained.facadeCheck(small.draw)
	top := b.cfg.Concurrency[len(b.cfg.Concurrency)-1]
	b.report.topConc = top
	for _, c := range b.cfg.Concurrency {
		load := fmt.Sprintf("c=%d", c)
		closed := func(o op) func() stats {
			return func() stats { return closedLoop(ctx, c, b.cfg.Warmup, b.cfg.Duration, b.cpu, o) }
		}
		prof := func(name string, via *apiClient, fn func() stats) func() stats {
			if c != top {
				return fn
			}
			return b.profiled(ctx, fmt.Sprintf("%s-c%d", name, c), via, b.cfg.Warmup, fn)
		}
		var res concResult
		res.c = c
		var d, f, n row
		var err error
		// Phase 4 compares against the facade at each concurrency, so it runs for phase 4 as well.
		if b.cfg.Phases[1] || b.cfg.Phases[2] || b.cfg.Phases[4] {
			if d, err = b.measure(ctx, row{phase: "1", scenario: "check, SpiceDB direct (gRPC CheckPermission)", load: load}, noRows, 0, prof("direct", nil, closed(direct))); err != nil {
				return err
			}
			if f, err = b.measure(ctx, row{phase: "1", scenario: "check, facade POST /v1/permissions/check, durable audit", load: load, via: b.audited}, rowsPerAnswer, 0, prof("facade", b.audited, closed(facade))); err != nil {
				return err
			}
			res.direct, res.facade = d.st, f.st
			if _, err = b.measure(ctx, row{phase: "1", scenario: "check, facade, durable audit, decision cache off", load: load, via: b.nocache}, rowsPerAnswer, 0, closed(uncached)); err != nil {
				return err
			}
		}
		if b.cfg.Phases[2] {
			if n, err = b.measure(ctx, row{phase: "2", scenario: "check, facade, audit disabled", load: load, via: b.unaudited}, noRows, 0, prof("facade-noaudit", b.unaudited, closed(bare))); err != nil {
				return err
			}
			res.noAudit = n.st
			// The chain's cost: the same durable audit with and without the hash chain, back to back.
			// Both instances must have answered the same load first, or the decision cache's warmth,
			// not the chain, makes the difference: the chained one has just run phase 1's facade row
			// at this concurrency, so the unchained one runs the same load unmeasured.
			closedLoop(ctx, c, b.cfg.Warmup, b.cfg.Duration, b.cpu, unchained)
			var on, off row
			if on, err = b.measure(ctx, row{phase: "2", scenario: "check, facade, durable audit, hash chain on", load: load, via: b.audited}, rowsPerAnswer, 0, closed(facade)); err != nil {
				return err
			}
			if off, err = b.measure(ctx, row{phase: "2", scenario: "check, facade, durable audit, hash chain off (AUTHZ_BENCH_DISABLE_AUDIT_CHAIN)", load: load, via: b.unchained}, rowsPerAnswer, 0, closed(unchained)); err != nil {
				return err
			}
			res.chainOn, res.chainOff = on.st, off.st
		}
		b.report.byConc = append(b.report.byConc, res)
	}
	if b.cfg.Phases[1] {
		if err := b.zipfRows(ctx, "1", small, ""); err != nil {
			return err
		}
		if err := b.writeVisibility(ctx, small); err != nil {
			return err
		}
	}
	if !b.cfg.Phases[1] {
		return b.phaseEffective(ctx, small, facade)
	}

	if err := b.fixedRateRows(ctx, direct, facade, bare); err != nil {
		return err
	}
	return b.phaseEffective(ctx, small, facade)
}

// fixedRateRows runs the facade at half its measured peak rate, and the same
// rate without audit (phase 2) and straight to SpiceDB, to tell where the tail
// latency comes from.
func (b *bench) fixedRateRows(ctx context.Context, direct, facade, bare op) error {
	// Half the facade's peak, at a fixed rate.
	peak := 0.0
	for _, r := range b.report.byConc {
		peak = max(peak, r.facade.Throughput())
	}
	rate := max(1, peak/2)
	// SpiceDB's answers come from its cache until the quantized revision moves
	// on (every 5s by default) and the cache starts empty again; a fixed-rate
	// run should cover at least two such steps so its p99 does not depend on luck.
	fixed := max(b.cfg.Duration, b.cfg.FixedRun)
	h, err := b.measure(ctx, row{phase: "1", scenario: "check, facade, durable audit, fixed rate = half its peak", load: fmt.Sprintf("%.0f/s", rate), via: b.audited},
		rowsPerAnswer, 0, func() stats { return openLoop(ctx, rate, fixed, b.cpu, facade) })
	if err != nil {
		return err
	}
	b.report.halfPeak, b.report.peak = h.st, peak
	// The same rate without audit and straight to SpiceDB, to tell where the tail comes from.
	if b.cfg.Phases[2] {
		if _, err := b.measure(ctx, row{phase: "2", scenario: "check, facade, audit disabled, same fixed rate", load: fmt.Sprintf("%.0f/s", rate), via: b.unaudited},
			noRows, 0, func() stats { return openLoop(ctx, rate, fixed, b.cpu, bare) }); err != nil {
			return err
		}
	}
	if _, err := b.measure(ctx, row{phase: "1", scenario: "check, SpiceDB direct, same fixed rate", load: fmt.Sprintf("%.0f/s", rate)},
		noRows, 0, func() stats { return openLoop(ctx, rate, fixed, b.cpu, direct) }); err != nil {
		return err
	}
	return nil
}

// phaseEffective: phase 3, effective permissions against single checks, one request at a time.
func (b *bench) phaseEffective(ctx context.Context, small *dataset, facade op) error {
	if !b.cfg.Phases[3] {
		return nil
	}
	users := small.users(4096, 3)
	c1 := func(o op) func() stats {
		return func() stats { return closedLoop(ctx, 1, b.cfg.Warmup, b.cfg.Duration, b.cpu, o) }
	}
	one, err := b.measure(ctx, row{phase: "3", scenario: "one single check (facade, audit)", load: "c=1", via: b.audited}, rowsPerAnswer, 0, c1(facade))
	if err != nil {
		return err
	}
	eff, err := b.measure(ctx, row{phase: "3", scenario: fmt.Sprintf("effective permissions, all %d keys in one call", len(b.keys)), load: "c=1", allowed: allowedPerOp, via: b.audited}, rowsPerAnswer, 0, c1(b.audited.effective(users)))
	if err != nil {
		return err
	}
	many, err := b.measure(ctx, row{phase: "3", scenario: fmt.Sprintf("%d single checks one after another (same question)", len(b.keys)), load: "c=1", allowed: allowedPerOp, via: b.audited}, rowsPerAnswer, 0, c1(b.audited.singles(users, small.allChecks)))
	if err != nil {
		return err
	}
	b.report.single, b.report.effective, b.report.singles = one.st, eff.st, many.st
	return nil
}

// phaseLarge: phase 4, provisioning the large data set and checking on it.
func (b *bench) phaseLarge(ctx context.Context) error {
	fmt.Fprintln(b.log, "phase 4: large data set")
	large := newDataset("large", b.cfg.Tenants, max(1, b.cfg.Tenants/10), b.keys)
	b.report.large = large
	st, err := b.provision(ctx, large, "4")
	if err != nil {
		return err
	}
	b.report.provision = st
	direct, facade := directCheck(b.direct, large.draw), b.audited.facadeCheck(large.draw)
	top := b.cfg.Concurrency[len(b.cfg.Concurrency)-1]
	for _, c := range b.cfg.Concurrency {
		load := fmt.Sprintf("c=%d", c)
		closed := func(o op) func() stats {
			return func() stats { return closedLoop(ctx, c, b.cfg.Warmup, b.cfg.Duration, b.cpu, o) }
		}
		fn := closed(facade)
		if c == top {
			fn = b.profiled(ctx, fmt.Sprintf("large-facade-c%d", c), b.audited, b.cfg.Warmup, fn)
		}
		f, err := b.measure(ctx, row{phase: "4", scenario: "check on large data, facade, durable audit", load: load, via: b.audited}, rowsPerAnswer, 0, fn)
		if err != nil {
			return err
		}
		d, err := b.measure(ctx, row{phase: "4", scenario: "check on large data, SpiceDB direct", load: load}, noRows, 0, closed(direct))
		if err != nil {
			return err
		}
		b.report.large4 = append(b.report.large4, concResult{c: c, direct: d.st, facade: f.st})
	}
	return b.zipfRows(ctx, "4", large, " on large data")
}

// zipfRows measures the realistic pool (users drawn Zipf-like) at the top
// concurrency: SpiceDB direct, the facade, and the facade with the decision
// cache off, side by side.
func (b *bench) zipfRows(ctx context.Context, phase string, d *dataset, what string) error {
	top := b.cfg.Concurrency[len(b.cfg.Concurrency)-1]
	load := fmt.Sprintf("c=%d", top)
	closed := func(o op) func() stats {
		return func() stats { return closedLoop(ctx, top, b.cfg.ZipfWarmup, b.cfg.Duration, b.cpu, o) }
	}
	dr, err := b.measure(ctx, row{phase: phase, scenario: "check" + what + ", Zipf users (s=1.1), SpiceDB direct", load: load}, noRows, 0, closed(directCheck(b.direct, d.drawZipf)))
	if err != nil {
		return err
	}
	fr, err := b.measure(ctx, row{phase: phase, scenario: "check" + what + ", Zipf users (s=1.1), facade, durable audit", load: load, via: b.audited}, rowsPerAnswer, 0,
		b.profiled(ctx, fmt.Sprintf("zipf-%s-facade-c%d", d.prefix, top), b.audited, b.cfg.ZipfWarmup, closed(b.audited.facadeCheck(d.drawZipf))))
	if err != nil {
		return err
	}
	if _, err := b.measure(ctx, row{phase: phase, scenario: "check" + what + ", Zipf users (s=1.1), facade, durable audit, decision cache off", load: load, via: b.nocache}, rowsPerAnswer, 0, closed(b.nocache.facadeCheck(d.drawZipf))); err != nil {
		return err
	}
	z := zipfResult{phase: phase, direct: dr.st, facade: fr.st}
	if phase == "4" {
		// The p99 goal is stated on the 1,000-tenant set: half the
		// facade's Zipf peak, at a fixed rate, right after the closed-loop runs
		// (the cache stays as they left it).
		z.rate = max(1, fr.st.Throughput()/2)
		fixed := func(scenario string, via *apiClient, want expect) (stats, error) {
			r, err := b.measure(ctx, row{phase: phase, scenario: "check" + what + ", Zipf users (s=1.1), facade, " + scenario, load: fmt.Sprintf("%.0f/s", z.rate), via: via},
				want, 0, func() stats {
					return openLoop(ctx, z.rate, max(b.cfg.Duration, b.cfg.FixedRun), b.cpu, via.facadeCheck(d.drawZipf))
				})
			return r.st, err
		}
		// One run's tail rests on a handful of WAL flush stalls, so the pair
		// can run several times (-fixed-repeat), interleaved.
		n := max(1, b.cfg.FixedRepeat)
		for k := range n {
			nth := ""
			if n > 1 {
				nth = fmt.Sprintf(", run %d of %d", k+1, n)
			}
			st, err := fixed("durable audit, fixed rate = half its peak"+nth, b.audited, rowsPerAnswer)
			if err != nil {
				return err
			}
			z.halfPeak = append(z.halfPeak, st)
			// The same rate without the audit: what the durable audit adds to
			// the tail, beside the row above.
			if st, err = fixed("audit disabled, same fixed rate"+nth, b.unaudited, noRows); err != nil {
				return err
			}
			z.halfPeakNoAudit = append(z.halfPeakNoAudit, st)
		}
	}
	b.report.zipf = append(b.report.zipf, z)
	return nil
}

// phaseAuditQuery: phase 5, audit queries over a seeded audit_events.
func (b *bench) phaseAuditQuery(ctx context.Context) error {
	fmt.Fprintf(b.log, "phase 5: seeding %d audit rows\n", b.cfg.AuditRows)
	seed := newAuditSeed(b.cfg.AuditRows, max(b.cfg.Tenants, 10), b.keys, time.Now())
	b.report.seed = seed
	start := time.Now()
	before, err := b.auditRows(ctx)
	if err != nil {
		return err
	}
	if err := seedAudit(ctx, b.auditDB, seed); err != nil {
		return err
	}
	b.report.seedTime = time.Since(start)
	// An append-only table is vacuumed and analysed by autovacuum as it
	// grows; do it now rather than measure a table no planner has seen.
	start = time.Now()
	if _, err := b.auditDB.Exec(ctx, "VACUUM (ANALYZE) audit_events"); err != nil {
		return err
	}
	b.report.vacuumTime = time.Since(start)
	after, err := b.auditRows(ctx)
	if err != nil {
		return err
	}
	b.report.completeness = append(b.report.completeness, completeness{run: "5 seed", rows: after - before, want: seed.rows, ok: after-before == seed.rows})
	b.report.totalAuditRows = after
	for _, withTenant := range []bool{false, true} {
		name := "audit query module+since, limit 100"
		if withTenant {
			name = "audit query module+tenant+since, limit 100"
		}
		r, err := b.measure(ctx, row{phase: "5", scenario: name, load: "c=1", allowed: allowedNone}, noRows, 0, func() stats {
			return closedLoop(ctx, 1, b.cfg.Warmup, b.cfg.Duration, b.cpu, b.audited.auditQuery(seed, withTenant))
		})
		if err != nil {
			return err
		}
		if withTenant {
			b.report.auditTenant = r.st
		} else {
			b.report.audit = r.st
		}
	}
	return nil
}

// analyze updates the planner statistics of every table in the database at url.
func analyze(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "ANALYZE")
	return err
}

// databases are the benchmark's own databases on the Postgres server.
type databases struct {
	server        *url.URL
	prefix        string
	created       []string
	serverVersion string
}

func newDatabases(ctx context.Context, serverURL string) (*databases, error) {
	u, err := url.Parse(serverURL)
	if err != nil {
		return nil, fmt.Errorf("-postgres: %w", err)
	}
	d := &databases{server: u, prefix: "authzbench_" + randomHex(4)}
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return nil, fmt.Errorf("authzbench needs Postgres (-postgres %s): %w", redact(u), err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version') || '; autovacuum ' || current_setting('autovacuum')").Scan(&d.serverVersion); err != nil {
		return nil, err
	}
	for _, n := range []string{"spicedb", "audit"} {
		name := d.prefix + "_" + n
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
			_ = d.drop(ctx)
			return nil, fmt.Errorf("create database %s: %w", name, err)
		}
		d.created = append(d.created, name)
	}
	return d, nil
}

func (d *databases) name(n string) string { return d.prefix + "_" + n }

func (d *databases) url(n string) string {
	u := *d.server
	u.Path = "/" + d.name(n)
	return u.String()
}

// drop removes the databases, disconnecting whatever still holds them.
func (d *databases) drop(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, d.server.String())
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var errs []error
	for _, n := range d.created {
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{n}.Sanitize()+" WITH (FORCE)"); err != nil {
			errs = append(errs, fmt.Errorf("drop database %s: %w", n, err))
		}
	}
	return errors.Join(errs...)
}

func redact(u *url.URL) string {
	c := *u
	if c.User != nil {
		c.User = url.User(c.User.Username())
	}
	return c.String()
}

// writeVisibility measures how long a tokenless check takes to reflect a
// write: grant or revoke a role membership through the API, then ask the same
// question without a token every 2 ms until the answer follows. With the
// decision cache this is the Watch lag; without it, SpiceDB's quantization.
func (b *bench) writeVisibility(ctx context.Context, d *dataset) error {
	fmt.Fprintln(b.log, "  1 write, then tokenless checks until they reflect it")
	key := d.keys[d.roleKeys(0, 0)[0]]
	member := "/v1/tenants/" + d.tenant(0) + "/roles/" + d.role(0) + "/members/"
	measure := func(c *apiClient, user string, n int, limit time.Duration) ([]time.Duration, error) {
		body := checkBody(checkCase{tenant: d.tenant(0), user: user, key: key})
		var out []time.Duration
		for i := range n {
			add := i%2 == 0
			method := map[bool]string{true: "PUT", false: "DELETE"}[add]
			if _, err := c.do(ctx, method, member+user, c.provisionToken, ""); err != nil {
				return nil, err
			}
			written := time.Now()
			for {
				got, err := c.do(ctx, "POST", "/v1/permissions/check", c.checkToken, string(body))
				if err != nil {
					return nil, err
				}
				if bytes.Contains(got, allowedTrue) == add {
					out = append(out, time.Since(written))
					break
				}
				if time.Since(written) > limit {
					out = append(out, limit)
					break
				}
				time.Sleep(2 * time.Millisecond)
			}
		}
		slices.Sort(out)
		return out, nil
	}
	var err error
	if b.report.visibility, err = measure(b.audited, "visibility-probe", 60, 10*time.Second); err != nil {
		return err
	}
	b.report.visibilityCacheOff, err = measure(b.nocache, "visibility-probe-nocache", 8, 10*time.Second)
	return err
}
