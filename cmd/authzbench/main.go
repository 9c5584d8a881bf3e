// Command authzbench measures authzd against the SpiceDB behind it and
// prints the results as markdown tables; its last line is the
// facade/direct check throughput ratio.
//
// It builds and starts a SpiceDB server (the version go.mod pins) on a fresh
// Postgres database, starts authzd in-process through cmd/authzd/app in
// external mode against it with its own audit database, and then measures:
//
//  1. checks straight to SpiceDB (gRPC) against checks through
//     POST /v1/permissions/check with durable audit, at each concurrency,
//     plus a fixed-rate run at half the facade's peak;
//  2. the same facade checks with audit disabled;
//  3. effective permissions (all keys in one call) against single checks;
//  4. provisioning a large data set through the API, then checks on it;
//  5. audit queries over a seeded audit_events table;
//  6. after every run: audit rows committed = decisions answered;
//  7. where one durable decision's time goes (stage traces from authzd) at
//     c=1, 2 and 8, beside the floor of one INSERT + COMMIT on the same Postgres;
//  8. the audit chain's ceiling: the most decisions per second authzd's audit
//     writer commits to the one hash chain, with 1, 2 and 4 writer instances
//     (replicas) contending on its head.
//
// Run it with `make bench` or `go run ./cmd/authzbench -h`. It needs Postgres
// (-postgres; it creates and drops its own databases) and the go tool (to
// build the spicedb binary once into the user cache directory).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// defaultDatastoreQS gives the benchmark's SpiceDB the datastore setting
// authzd deploys it with (docker-compose.yml, embedded): prepared statements.
const defaultDatastoreQS = "default_query_exec_mode=cache_statement"

// config is the benchmark's command line.
type config struct {
	Tenants      int           // tenants of the large data set (phase 4)
	SmallTenants int           // tenants of the small data set (phases 1-3)
	Duration     time.Duration // measured time of each run
	Warmup       time.Duration // unmeasured time before each closed-loop run
	ZipfWarmup   time.Duration // unmeasured time before each run of the Zipf pool (steady state)
	FixedRun     time.Duration // least duration of a fixed-rate run
	FixedRepeat  int           // runs of phase 4's half-peak pair; its goal is judged on the median p99
	Concurrency  []int
	AuditRows    int // rows seeded for phase 5
	ProvisionC   int // concurrent tenants while provisioning
	ChainCallers int // concurrent Record calls per writer instance (phase 8)
	Smoke        bool
	PostgresURL  string   // a database on the server where the benchmark creates its own
	ProfileDir   string   // where to write CPU profiles; empty: none
	SpiceDBArgs  []string // extra `spicedb serve` flags, to try SpiceDB settings
	SpiceDBEnv   []string // extra NAME=value environment of the SpiceDB server
	AuthzdEnv    []string // extra NAME=value environment of the authzd processes
	AuthzdBinary string   // an authzd binary to run instead of building this tree's
	DatastoreQS  string   // extra query parameters of SpiceDB's datastore URI
	Phases       map[int]bool
}

func defaultConfig() config {
	return config{
		Tenants:      1000,
		SmallTenants: 10,
		Duration:     3 * time.Second,
		Warmup:       time.Second,
		ZipfWarmup:   10 * time.Second,
		FixedRun:     10 * time.Second,
		FixedRepeat:  1,
		Concurrency:  []int{1, 8, 32},
		Phases:       map[int]bool{1: true, 2: true, 3: true, 4: true, 5: true, 7: true, 8: true},
		AuditRows:    1_000_000,
		ProvisionC:   32,
		ChainCallers: 64,
		PostgresURL:  envOr("AUTHZ_BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"),
	}
}

// smokeConfig shrinks everything to a seconds-long run that exercises every
// phase; its numbers mean nothing.
func smokeConfig(c config) config {
	c.Smoke = true
	c.Tenants, c.SmallTenants = 12, 3
	c.Duration, c.Warmup, c.ZipfWarmup = 300*time.Millisecond, 100*time.Millisecond, 100*time.Millisecond
	c.Concurrency = []int{1, 4}
	c.AuditRows = 5000
	c.ProvisionC = 4
	c.ChainCallers = 4
	return c
}

// applySmoke sets the smoke run's sizes, except those given explicitly as
// flags; conc is the -concurrency flag's value.
func applySmoke(c *config, fs *flag.FlagSet, conc *string) {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	s := smokeConfig(*c)
	// Flags given explicitly win over the smoke sizes.
	if !set["tenants"] {
		c.Tenants = s.Tenants
	}
	if !set["small-tenants"] {
		c.SmallTenants = s.SmallTenants
	}
	if !set["duration"] {
		c.Duration = s.Duration
	}
	if !set["warmup"] {
		c.Warmup = s.Warmup
	}
	if !set["zipf-warmup"] {
		c.ZipfWarmup = s.ZipfWarmup
	}
	if !set["concurrency"] {
		*conc = joinInts(s.Concurrency)
	}
	if !set["audit-rows"] {
		c.AuditRows = s.AuditRows
	}
	if !set["provision-concurrency"] {
		c.ProvisionC = s.ProvisionC
	}
	if !set["chain-callers"] {
		c.ChainCallers = s.ChainCallers
	}
	if !set["fixed-duration"] {
		c.FixedRun = 0
	}
	c.Smoke = true
}

// parseFlags reads the flags over the defaults (or the smoke sizes).
func parseFlags(args []string, stderr io.Writer) (config, error) {
	c := defaultConfig()
	fs := flag.NewFlagSet("authzbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: go run ./cmd/authzbench [flags]   (or: make bench BENCHFLAGS='...')\n\n"+
			"Benchmarks authzd against a SpiceDB it starts, prints markdown tables, and ends with\n"+
			"'facade/direct check throughput ratio: X.XX'. See docs/performance.md.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	conc := fs.String("concurrency", joinInts(c.Concurrency), "comma-separated concurrency levels of the check runs")
	fs.IntVar(&c.Tenants, "tenants", c.Tenants, "tenants of the large data set (phase 4), under tenants/10 partners; 10000 for the full-size run")
	fs.IntVar(&c.SmallTenants, "small-tenants", c.SmallTenants, "tenants of the small data set used by phases 1-3")
	fs.DurationVar(&c.Duration, "duration", c.Duration, "measured duration of each run")
	fs.DurationVar(&c.Warmup, "warmup", c.Warmup, "unmeasured warm-up before each closed-loop run")
	fs.DurationVar(&c.ZipfWarmup, "zipf-warmup", c.ZipfWarmup, "unmeasured warm-up before each run of the Zipf pool (direct, facade, cache off alike): the realistic pool is measured in steady state, as a server that has run for a while sees it")
	fs.DurationVar(&c.FixedRun, "fixed-duration", c.FixedRun, "least duration of the fixed-rate runs; keep it at two SpiceDB quantization intervals or more, since each interval starts its cache afresh")
	fs.IntVar(&c.FixedRepeat, "fixed-repeat", c.FixedRepeat, "how many times phase 4 runs its half-peak pair (durable audit, then audit disabled, at the same fixed rate); the p99 goal is judged on the median of the durable runs, since one run's tail depends on a few WAL flush stalls")
	fs.IntVar(&c.AuditRows, "audit-rows", c.AuditRows, "audit rows to seed for the audit query run (the goal is stated for 5000000)")
	fs.IntVar(&c.ProvisionC, "provision-concurrency", c.ProvisionC, "tenants provisioned concurrently")
	fs.IntVar(&c.ChainCallers, "chain-callers", c.ChainCallers, "concurrent audit Record calls per writer instance in phase 8 (the audit chain's ceiling)")
	fs.StringVar(&c.PostgresURL, "postgres", c.PostgresURL, "URL of a database on the Postgres server to use; the benchmark creates and drops its own databases there (env AUTHZ_BENCH_POSTGRES_URL)")
	fs.StringVar(&c.ProfileDir, "profile-dir", "", "write CPU profiles (this process and SpiceDB) of the top-concurrency runs to this directory")
	spiceArgs := fs.String("spicedb-args", "", "extra space-separated flags for spicedb serve, to try its settings (e.g. \"--datastore-conn-pool-write-max-open 20\")")
	spiceEnv := fs.String("spicedb-env", "", "extra space-separated NAME=value environment for the SpiceDB server (e.g. GOGC=400)")
	authzdEnv := fs.String("authzd-env", "", "extra space-separated NAME=value environment for the authzd processes (e.g. GOGC=400, or AUTHZ_* knobs)")
	fs.StringVar(&c.DatastoreQS, "spicedb-datastore-params", defaultDatastoreQS, "query parameters for SpiceDB's datastore URI; the default is what docker-compose.yml and the embedded SpiceDB use (pass \"\" for SpiceDB's own default, exec mode)")
	slots := fs.String("check-slots", "", "authzd's AUTHZ_SPICEDB_CHECK_SLOTS for this run (-1: no coalescing)")
	memoWindow := fs.String("memo-window", "", "authzd's AUTHZ_CHECK_MEMO_WINDOW for this run (e.g. 500ms; 0: off)")
	phases := fs.String("phases", "1,2,3,4,5,7,8", "phases to run, to iterate on one of them; the report covers them all only when all run (7: where a decision's time goes, beside the commit floor; 8: the audit chain's ceiling)")
	fs.StringVar(&c.AuthzdBinary, "authzd-binary", "", "run this authzd binary instead of building this tree's cmd/authzd (to compare two builds on the same machine)")
	smoke := fs.Bool("smoke", false, "seconds-long run on tiny data, to check that everything works; its numbers mean nothing")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	// authzd reads its knobs from the environment; the flags are shorthands.
	for name, v := range map[string]string{"AUTHZ_SPICEDB_CHECK_SLOTS": *slots, "AUTHZ_CHECK_MEMO_WINDOW": *memoWindow} {
		if v != "" {
			if err := os.Setenv(name, v); err != nil {
				return c, err
			}
		}
	}
	if *smoke {
		applySmoke(&c, fs, conc)
	}
	c.SpiceDBArgs = strings.Fields(*spiceArgs)
	c.SpiceDBEnv = strings.Fields(*spiceEnv)
	c.AuthzdEnv = strings.Fields(*authzdEnv)
	ph, err := parseInts(*phases)
	if err != nil {
		return c, fmt.Errorf("-phases: %w", err)
	}
	c.Phases = map[int]bool{}
	for _, p := range ph {
		if p > 8 || p == 6 {
			return c, fmt.Errorf("-phases: there is no phase %d", p)
		}
		c.Phases[p] = true
	}
	if c.Concurrency, err = parseInts(*conc); err != nil {
		return c, fmt.Errorf("-concurrency: %w", err)
	}
	return c, c.validate()
}

// validate refuses sizes the benchmark cannot run with.
func (c config) validate() error {
	switch {
	case c.Tenants < 1 || c.SmallTenants < 1:
		return fmt.Errorf("-tenants and -small-tenants must be at least 1")
	case c.Duration <= 0:
		return fmt.Errorf("-duration must be positive")
	case c.AuditRows < 1:
		return fmt.Errorf("-audit-rows must be at least 1")
	case c.ProvisionC < 1:
		return fmt.Errorf("-provision-concurrency must be at least 1")
	case c.ChainCallers < 1:
		return fmt.Errorf("-chain-callers must be at least 1")
	}
	return nil
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a list of positive numbers", s)
		}
		out = append(out, n)
	}
	return out, nil
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if err == flag.ErrHelp {
		return
	}
	if err != nil {
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "authzbench:", err)
		os.Exit(1)
	}
}
