package main

import (
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"time"
)

// row is one line of the results table.
type row struct {
	phase, scenario, load string
	st                    stats
	audit                 string
	allowed               allowedAs
	via                   *apiClient // the authzd instance the run went through, if any
	internals             string     // what that instance's /metrics says about the run
}

// allowedAs says how the allowed column reads for a row.
type allowedAs int

const (
	allowedShare allowedAs = iota // share of decisions allowed
	allowedPerOp                  // keys held per operation (several decisions per request)
	allowedNone                   // not a decision
)

// completeness is the audit check of one run.
type completeness struct {
	run        string
	rows, want int
	ok         bool
}

// concResult pairs the check runs at one concurrency.
type concResult struct {
	c                       int
	direct, facade, noAudit stats
	// chainOn, chainOff: durable audit with and without the hash chain, measured back to back (phase 2).
	chainOn, chainOff stats
}

// zipfResult pairs the Zipf-pool runs of one phase.
type zipfResult struct {
	phase          string
	direct, facade stats
	// halfPeak is the facade at a fixed rate of half its Zipf peak (phase 4
	// only), halfPeakNoAudit the same rate with the audit disabled; one of each
	// per -fixed-repeat, in the order they ran.
	halfPeak, halfPeakNoAudit []stats
	rate                      float64
}

type report struct {
	started, finished         time.Time
	loadStart, loadEnd        string
	background                float64
	steal                     float64 // share of the CPUs' time the hypervisor took during the run
	spicedbVersion, pgVersion string
	small, large              *dataset

	rows         []row
	completeness []completeness

	byConc                     []concResult
	topConc                    int
	peak                       float64
	halfPeak                   stats
	single, effective, singles stats
	provision                  stats
	large4                     []concResult
	zipf                       []zipfResult
	visibility                 []time.Duration // write to tokenless check reflecting it
	visibilityCacheOff         []time.Duration
	seed                       auditSeed
	seedTime, vacuumTime       time.Duration
	totalAuditRows             int
	audit, auditTenant         stats
	splits                     []cpuSplit // profiled runs (-profile-dir): CPU of the load generator vs authzd
	breakdown                  *breakdownResult
	ceiling                    *ceilingResult
	failure                    error
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d.Microseconds())/1000) }

func thousands(n int) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func (r *report) ratio() float64 {
	for _, c := range r.byConc {
		if c.c == r.topConc && c.direct.Throughput() > 0 {
			return c.facade.Throughput() / c.direct.Throughput()
		}
	}
	return 0
}

func (r *report) completenessError() error {
	var bad []string
	for _, c := range r.completeness {
		if !c.ok {
			bad = append(bad, fmt.Sprintf("%s: %d audit rows, want %d", c.run, c.rows, c.want))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("audit completeness failed:\n  %s", strings.Join(bad, "\n  "))
	}
	return nil
}

// printer writes one line of the report.
type printer func(format string, a ...any)

// table prints a section heading and the head of its Markdown table: the
// column names and their alignment row.
func (p printer) table(heading, columns, align string) {
	p(heading)
	p("")
	p(columns)
	p(align)
}

// write writes the report in Markdown: how the run was made, its tables, the
// goals, and last the ratio line that scripts read.
func (r *report) write(w io.Writer, b *bench) {
	p := printer(func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) })
	r.writeSetup(p, b)
	r.writeResults(p)
	r.writeComparisons(p)
	r.writeBreakdown(p)
	r.writeCeiling(p)
	ratio := r.writeGoals(p, b)
	if r.failure != nil {
		p("**The run stopped early: %s**", strings.ReplaceAll(r.failure.Error(), "\n", " "))
		p("")
	}
	// The last line, which scripts read.
	if ratio == 0 {
		p("facade/direct check throughput ratio: n/a (phase 1 did not run)")
		return
	}
	p("facade/direct check throughput ratio: %.2f", ratio)
}

// writeSetup says how the run was made: machine, versions, settings, data.
func (r *report) writeSetup(p printer, b *bench) {
	cfg := b.cfg
	p("# authzbench")
	p("")
	if cfg.Smoke {
		p("**SMOKE MODE: tiny data, sub-second runs, SpiceDB quantization 100ms. The numbers mean nothing.**")
		p("")
	}
	p("- %s, %s; %d CPUs (GOMAXPROCS %d), %s %s/%s", r.started.UTC().Format(time.RFC3339), "run took "+r.finished.Sub(r.started).Round(time.Second).String(),
		runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	p("- machine load: load average %s at start, %s at end; %.2f cores busy before the benchmark started (other work on the machine); the hypervisor took %.1f%% of the CPUs' time during the run (steal)", r.loadStart, r.loadEnd, r.background, 100*r.steal)
	p("- SpiceDB %s as a separate process on 127.0.0.1 with its datastore on Postgres %s; authzd (this tree's cmd/authzd, external mode) as four processes of its own on 127.0.0.1: durable audit, audit disabled, decision cache off, hash chain off, with audit in one database of their own; the load generator in this process", r.spicedbVersion, r.pgVersion)
	if len(cfg.SpiceDBArgs)+len(cfg.SpiceDBEnv) > 0 || cfg.DatastoreQS != defaultDatastoreQS {
		p("- SpiceDB settings changed for this run: %s %s", strings.Join(append(append([]string{}, cfg.SpiceDBEnv...), cfg.SpiceDBArgs...), " "), cfg.DatastoreQS)
	} else {
		p("- SpiceDB settings: defaults (revision quantization 5s, dispatch cache on) and, as docker-compose.yml and the embedded SpiceDB run it, prepared statements (%s)", defaultDatastoreQS)
	}
	if len(cfg.AuthzdEnv) > 0 {
		p("- authzd environment added for this run: %s", strings.Join(cfg.AuthzdEnv, " "))
	}
	p("- authzd knobs: DB max conns %d, audit writers %d, audit max batch %d, audit linger %s, SpiceDB check slots %d (coalescing %s), revision memo %s (AUTHZ_* environment or defaults)",
		b.appCfg.DBMaxConns, b.appCfg.AuditWriters, b.appCfg.AuditMaxBatch, b.appCfg.AuditLinger, b.appCfg.SpiceDBCheckSlots,
		map[bool]string{true: "on", false: "off"}[b.appCfg.SpiceDBCheckSlots > 0], memoState(b.appCfg.CheckMemoWindow))
	p("- small data set: %s; large data set: %s; the SpiceDB datastore is ANALYZEd after provisioning each, as autovacuum would", describe(r.small), describe(r.large))
	p("- each run: %s measured after %s warm-up (closed loop: each worker sends its next request when the last is answered; fixed-rate runs last at least %s); check mix: random user of a random tenant asks for a key its role grants or one it does not, half and half", cfg.Duration, cfg.Warmup, max(cfg.Duration, cfg.FixedRun))
	if cfg.Phases[5] {
		p("- audit table: %s rows seeded with COPY (%s, then VACUUM ANALYZE %s), %s rows in total%s", thousands(r.seed.rows), r.seedTime.Round(100*time.Millisecond), r.vacuumTime.Round(100*time.Millisecond),
			thousands(r.totalAuditRows), map[bool]string{true: "", false: "; the goal is stated for 5,000,000: run with -audit-rows 5000000"}[r.seed.rows >= 5_000_000])
	}
	p("- columns: latency in ms; *wrong* = answers that differ from what the data set implies; *audit* = rows committed in audit_events during the run vs decisions answered with 200; *CPU µs/op* = CPU time per operation of the authzd processes (the one under load and the idle ones) / this process (the load generator) / the spicedb process / the Postgres backends of the benchmark's databases / everything else on the machine (other work, kernel, Postgres background writers) / stolen by the hypervisor (this VM's CPUs were not ours for that long: the higher, the less the run's numbers say about this code)")
	p("")
}

// writeResults writes the table of every run and what authzd saw inside it.
func (r *report) writeResults(p printer) {
	p.table("## Results",
		"| # | scenario | load | ops | ops/s | p50 | p95 | p99 | errors | allowed | wrong | audit rows = answers | CPU µs/op |",
		"|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
	for _, x := range r.rows {
		allowed := fmt.Sprintf("%.0f%%", 100*x.st.AllowedShare())
		switch x.allowed {
		case allowedNone:
			allowed = "—"
		case allowedPerOp:
			allowed = fmt.Sprintf("%.1f keys", float64(x.st.Allowed)/float64(max(1, len(x.st.Lat))))
		}
		errs := fmt.Sprint(x.st.Errors)
		if x.st.Retries > 0 {
			errs += fmt.Sprintf(" (%d retried 503s)", x.st.Retries)
		}
		p("| %s | %s | %s | %s | %.0f | %s | %s | %s | %s | %s | %d | %s | %s |", x.phase, x.scenario, x.load, thousands(x.st.Ops), x.st.Throughput(),
			ms(x.st.Quantile(.50)), ms(x.st.Quantile(.95)), ms(x.st.Quantile(.99)), errs, allowed, x.st.Wrong, x.audit, x.st.CPU.perOp(len(x.st.Lat)))
	}
	p("")
	p.table("## Inside authzd during each run (from its /metrics)",
		"| # | scenario | load | audit group commit and SpiceDB calls as authzd saw them |",
		"|---|---|---|---|")
	for _, x := range r.rows {
		if x.internals != "" {
			p("| %s | %s | %s | %s |", x.phase, x.scenario, x.load, x.internals)
		}
	}
	p("")
}

// writeComparisons writes the facade against SpiceDB direct, and the large data set against the small.
func (r *report) writeComparisons(p printer) {
	p.table("## Facade against SpiceDB direct, and what the audit costs (small data set)",
		"| concurrency | direct ops/s | facade ops/s | facade/direct | facade without audit ops/s | no-audit/direct | p50 direct / facade / no audit | p99 direct / facade / no audit | CPU µs per check direct / facade / no audit |",
		"|---:|---:|---:|---:|---:|---:|---|---|---|")
	for _, c := range r.byConc {
		d, f, n := c.direct, c.facade, c.noAudit
		p("| %d | %.0f | %.0f | %.2f | %.0f | %.2f | %s / %s / %s | %s / %s / %s | %s / %s / %s |", c.c, d.Throughput(), f.Throughput(), f.Throughput()/nonzero(d.Throughput()),
			n.Throughput(), n.Throughput()/nonzero(d.Throughput()), ms(d.Quantile(.5)), ms(f.Quantile(.5)), ms(n.Quantile(.5)), ms(d.Quantile(.99)), ms(f.Quantile(.99)), ms(n.Quantile(.99)),
			d.CPU.total(len(d.Lat)), f.CPU.total(len(f.Lat)), n.CPU.total(len(n.Lat)))
	}
	p("")
	p("When the machine's CPUs are the limit (they are at high concurrency on 2 cores), throughput is inversely proportional to the CPU each check costs across all processes, so the last column bounds the ratio.")
	p("")
	if len(r.byConc) > 0 && len(r.byConc[0].chainOn.Lat) > 0 { // phase 2 ran
		p.table("## What the audit hash chain costs (phase 2, same data, back to back)",
			"| concurrency | chain on ops/s | chain off ops/s | on/off | p50 on / off | p99 on / off | CPU µs per check on / off |",
			"|---:|---:|---:|---:|---|---|---|")
		for _, c := range r.byConc {
			on, off := c.chainOn, c.chainOff
			p("| %d | %.0f | %.0f | %.2f | %s / %s | %s / %s | %s / %s |", c.c, on.Throughput(), off.Throughput(), on.Throughput()/nonzero(off.Throughput()),
				ms(on.Quantile(.5)), ms(off.Quantile(.5)), ms(on.Quantile(.99)), ms(off.Quantile(.99)), on.CPU.total(len(on.Lat)), off.CPU.total(len(off.Lat)))
		}
		p("")
		p("Chain on: each audit batch hashes its rows after the chain head, inserts them and moves the head in one transaction (docs/audit.md); off: the same insert without sequence numbers and hashes.")
		p("")
	}
	p.table("## Large data set against small (facade, durable audit)",
		"| concurrency | small ops/s | large ops/s | small p50 / p99 | large p50 / p99 | large/small p50 | large direct ops/s |",
		"|---:|---:|---:|---|---|---:|---:|")
	for i, l := range r.large4 {
		if i >= len(r.byConc) {
			break
		}
		s := r.byConc[i].facade
		p("| %d | %.0f | %.0f | %s / %s | %s / %s | %.2f | %.0f |", l.c, s.Throughput(), l.facade.Throughput(), ms(s.Quantile(.5)), ms(s.Quantile(.99)),
			ms(l.facade.Quantile(.5)), ms(l.facade.Quantile(.99)), float64(l.facade.Quantile(.5))/nonzero(float64(s.Quantile(.5))), l.direct.Throughput())
	}
	p("")
	if len(r.splits) > 0 {
		p.table("## Where authzd's CPU went (profiled runs, -profile-dir)",
			"| run | ops | authzd µs/op | of which the mirror's walks µs/op | of which GC background marking µs/op |",
			"|---|---:|---:|---:|---:|")
		for _, s := range r.splits {
			p("| %s | %d | %.0f | %.0f (%.0f%%) | %.0f (%.0f%%) |", s.name, s.ops, s.authzdPerOp, s.mirrorPerOp(), 100*s.mirrorShare, s.gcPerOp(), 100*s.gcShare)
		}
		p("")
		p("authzd's CPU per operation is its processes' time from /proc over the measured window; the shares are of the samples of a CPU profile of the instance under load over the same window (AUTHZ_DEBUG_ADDR). The decision cache mirror's walks (SpiceDB's engine answering misses inside authzd) carry a profiler label of their own.")
		p("")
	}
}

// split returns the CPU split of the profiled run called name.
func (r *report) split(name string) (cpuSplit, bool) {
	for _, s := range r.splits {
		if s.name == name {
			return s, true
		}
	}
	return cpuSplit{}, false
}

// writeGoals writes each goal, measured and met or not, and returns the
// facade/direct throughput ratio (0 when phase 1 did not run).
func (r *report) writeGoals(p printer, b *bench) float64 {
	cfg := b.cfg
	p.table("## Goals",
		"| goal | target | measured | met |",
		"|---|---|---|---|")
	goal := func(name, target, measured string, ok bool) {
		p("| %s | %s | %s | %s |", name, target, measured, map[bool]string{true: "yes", false: "**no**"}[ok])
	}
	ratio := r.ratio()
	ph := cfg.Phases
	if ph[1] {
		goal("facade/direct check throughput", "≥ 0.90", fmt.Sprintf("%.2f at c=%d", ratio, r.topConc), ratio >= 0.9)
		hp := r.halfPeak.Quantile(.99)
		goal("facade p99 at half its peak rate (small set, uniform)", "≤ 10 ms", fmt.Sprintf("%s ms at %.0f/s (peak %.0f/s)", ms(hp), r.peak/2, r.peak), hp > 0 && hp <= 10*time.Millisecond && r.halfPeak.Errors == 0)
	}
	for _, z := range r.zipf {
		q := z.facade.Throughput() / nonzero(z.direct.Throughput())
		goal(fmt.Sprintf("phase %s: facade vs SpiceDB direct, Zipf users, c=%d, after %s warm-up each (decision cache)", z.phase, r.topConc, cfg.ZipfWarmup), "≥ 1.5x", fmt.Sprintf("%.2fx (%.0f vs %.0f checks/s; facade p99 %s ms)",
			q, z.facade.Throughput(), z.direct.Throughput(), ms(z.facade.Quantile(.99))), q >= 1.5)
		if z.rate > 0 && len(z.halfPeak) > 0 {
			hp, each, errs := medianP99(z.halfPeak)
			noAudit, _, _ := medianP99(z.halfPeakNoAudit)
			what := fmt.Sprintf("%s ms at %.0f/s (p50 %s ms; audit disabled at that rate: p99 %s ms)", ms(hp), z.rate, ms(z.halfPeak[0].Quantile(.5)), ms(noAudit))
			if len(z.halfPeak) > 1 {
				what = fmt.Sprintf("median %s ms of %d runs at %.0f/s (each: %s ms; audit disabled at that rate: median p99 %s ms)", ms(hp), len(z.halfPeak), z.rate, each, ms(noAudit))
			}
			goal(fmt.Sprintf("phase %s: facade p99 at half its Zipf peak rate (the goals' set)", z.phase), "≤ 10 ms", what,
				hp > 0 && hp <= 10*time.Millisecond && errs == 0)
		}
	}
	// The goals are stated on the 1,000-tenant set: judged on its Zipf
	// pool when phase 4 ran, else on the small set's uniform pool.
	judgedName, judged := fmt.Sprintf("facade-c%d", r.topConc), stats{}
	for _, c := range r.byConc {
		if c.c == r.topConc {
			judged = c.facade
		}
	}
	for _, z := range r.zipf {
		if z.phase == "4" {
			judgedName, judged = fmt.Sprintf("zipf-large-facade-c%d", r.topConc), z.facade
		}
	}
	if ops := len(judged.Lat); ops > 0 && judged.CPU.OK {
		own := judged.CPU.authzdPerOp(ops)
		detail := ""
		if s, ok := r.split(judgedName); ok {
			detail = fmt.Sprintf(", of which the mirror's walks %.0f µs and GC background marking %.0f µs", s.mirrorPerOp(), s.gcPerOp())
		}
		var others []string
		for _, o := range r.splits {
			if o.name != judgedName {
				others = append(others, fmt.Sprintf("%s %.0f µs", o.name, o.authzdPerOp))
			}
		}
		if len(others) > 0 {
			detail += "; " + strings.Join(others, ", ")
		}
		goal(fmt.Sprintf("authzd's own CPU per check at c=%d (its processes, /proc; %s)", r.topConc, judgedName), "≤ 100 µs", fmt.Sprintf("%.0f µs%s", own, detail), own <= 100)
	}
	if n := len(r.visibility); n > 0 {
		p99 := pick(r.visibility, .99)
		goal("a tokenless check reflects a write (decision cache on), p99", "≤ 500 ms", fmt.Sprintf("p50 %s ms, p99 %s ms over %d writes; cache off: p50 %s ms, max %s ms over %d writes",
			ms(pick(r.visibility, .5)), ms(p99), n, ms(pick(r.visibilityCacheOff, 0.5)), ms(pick(r.visibilityCacheOff, 1)), len(r.visibilityCacheOff)), p99 <= 500*time.Millisecond)
	}
	if ph[3] {
		e, s := r.effective.Quantile(.5), r.single.Quantile(.5)
		e99, s99 := r.effective.Quantile(.99), r.single.Quantile(.99)
		goal(fmt.Sprintf("effective permissions (%d keys, one call) vs one check, p50", len(b.keys)), "≤ 2x", fmt.Sprintf("%.2fx (p50 %s vs %s ms; at p99 %.2fx, %s vs %s ms; %d checks in a row: p50 %s ms)",
			float64(e)/nonzero(float64(s)), ms(e), ms(s), float64(e99)/nonzero(float64(s99)), ms(e99), ms(s99), len(b.keys), ms(r.singles.Quantile(.5))), e > 0 && float64(e) <= 2*float64(s))
	}
	if ph[4] && r.large != nil {
		goal(fmt.Sprintf("provisioning %s tenants through the API", thousands(r.large.tenants)), "time taken", fmt.Sprintf("%s for %s writes (%.0f writes/s, %s relationships)",
			r.provision.Elapsed.Round(100*time.Millisecond), thousands(r.provision.Ops), float64(r.provision.Ops)/nonzero(r.provision.Elapsed.Seconds()), thousands(r.large.relationships())), r.provision.Errors == 0 && r.provision.Ops > 0)
		bestLarge, worst, worstC := 0.0, 0.0, 0
		for i, l := range r.large4 {
			bestLarge = max(bestLarge, l.facade.Throughput())
			if i < len(r.byConc) {
				if q := float64(l.facade.Quantile(.5)) / nonzero(float64(r.byConc[i].facade.Quantile(.5))); q > worst {
					worst, worstC = q, l.c
				}
			}
		}
		goal("checks/s on the large data set, durable audit", "≥ 1,800/s", fmt.Sprintf("%.0f/s (best of c=%s)", bestLarge, joinInts(cfg.Concurrency)), bestLarge >= 1800)
		goal("check latency on large data vs small", "within 20%", fmt.Sprintf("p50 %+.0f%% at c=%d (worst)", 100*(worst-1), worstC), worst > 0 && worst <= 1.2)
	}
	if ph[5] {
		a := r.audit.Quantile(.95)
		goal("audit query p95 (module+since, limit 100)", "≤ 20 ms", fmt.Sprintf("%s ms over %s rows (with tenant_id too: %s ms)", ms(a), thousands(r.totalAuditRows), ms(r.auditTenant.Quantile(.95))), a > 0 && a <= 20*time.Millisecond && r.audit.Errors == 0)
	}
	bad := 0
	for _, c := range r.completeness {
		if !c.ok {
			bad++
		}
	}
	goal("audit completeness after every run", "rows = answers", fmt.Sprintf("%d of %d runs", len(r.completeness)-bad, len(r.completeness)), bad == 0)
	p("")
	return ratio
}

// pick returns the q-quantile of sorted durations (0 when empty).
func pick(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

func describe(d *dataset) string {
	if d == nil {
		return "—"
	}
	return fmt.Sprintf("%s tenants under %s partners, %d custom roles per tenant of %d keys and %d members each (%s API writes, %s relationships)",
		thousands(d.tenants), thousands(d.partners), d.rolesPerTenant, d.keysPerRole, d.usersPerRole, thousands(d.writes()), thousands(d.relationships()))
}

func nonzero(f float64) float64 {
	if f == 0 {
		return 1e-12
	}
	return f
}

func memoState(window time.Duration) string {
	if window <= 0 {
		return "off"
	}
	return "on, window " + window.String()
}

// medianP99 is the median of the runs' p99s (the mean of the middle two for an
// even count), the p99s in the order the runs ran, and the runs' errors.
func medianP99(runs []stats) (time.Duration, string, int) {
	var p99s []time.Duration
	var each []string
	errs := 0
	for _, r := range runs {
		p99s = append(p99s, r.Quantile(.99))
		each = append(each, ms(r.Quantile(.99)))
		errs += r.Errors
	}
	if len(p99s) == 0 {
		return 0, "", 0
	}
	slices.Sort(p99s)
	m := p99s[len(p99s)/2]
	if len(p99s)%2 == 0 {
		m = (p99s[len(p99s)/2-1] + m) / 2
	}
	return m, strings.Join(each, ", "), errs
}
