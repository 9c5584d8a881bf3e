package integration

import (
	"bytes"
	"context"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scailabs/authzd/cmd/authzd/app"
)

// testApp is authzd running in-process, built by the app's own constructor, in a fresh audit database.
type testApp struct {
	*api // the bootstrap token's client

	Main       *app.Main
	URL        string
	AdminToken string
	Config     app.Config
	AuditURL   string        // the audit database, reached directly (never through a test proxy)
	Audit      *pgxpool.Pool // a small pool on AuditURL for the test's own queries
}

type appSettings struct {
	spicedb    string // "" (the world's default), "memory" or "external"
	external   spicedbServer
	auditProxy string // host:port authzd reaches the audit database through
	tune       []func(*app.Config)
}

type appOption func(*appSettings)

// withMemorySpiceDB runs the embedded SpiceDB on its memory datastore, for scenarios that do not need
// SpiceDB to persist.
func withMemorySpiceDB() appOption { return func(s *appSettings) { s.spicedb = "memory" } }

// withExternalSpiceDB points authzd at a SpiceDB it does not own.
func withExternalSpiceDB(srv spicedbServer) appOption {
	return func(s *appSettings) { s.spicedb, s.external = "external", srv }
}

// withAuditProxy makes authzd reach its audit database through the proxy at hostport.
func withAuditProxy(hostport string) appOption {
	return func(s *appSettings) { s.auditProxy = hostport }
}

// withConfig adjusts authzd's configuration before it opens.
func withConfig(f func(*app.Config)) appOption {
	return func(s *appSettings) { s.tune = append(s.tune, f) }
}

// startApp opens authzd with a fresh audit database and closes it when tb ends. By default SpiceDB is
// the embedded one on its own fresh Postgres database (local world) or a SpiceDB container (Docker world).
func startApp(tb testing.TB, opts ...appOption) *testApp {
	tb.Helper()
	w := mustWorld(tb)
	var s appSettings
	for _, o := range opts {
		o(&s)
	}

	auditURL, _ := w.newDatabase(tb, "audit")
	cfg := mustDefaultConfig(tb)
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.DatabaseURL = auditURL
	cfg.AdminToken = "it-admin-" + randomHex(16)
	if v := os.Getenv(envDecisionCache); v != "" {
		cfg.DecisionCache = v // to tell a decision-cache failure from another; the default is the app's
	}
	if s.auditProxy != "" {
		cfg.DatabaseURL = withHost(auditURL, s.auditProxy)
	}
	switch {
	case s.spicedb == "external":
		cfg.SpiceDBEndpoint, cfg.SpiceDBToken, cfg.SpiceDBInsecure = s.external.Endpoint, s.external.Token, true
	case s.spicedb == "memory":
		cfg.SpiceDBDatastore = "memory"
	case w.docker != nil:
		srv := w.startSpiceDB(tb)
		cfg.SpiceDBEndpoint, cfg.SpiceDBToken, cfg.SpiceDBInsecure = srv.Endpoint, srv.Token, true
	case os.Getenv(envDatastore) == "memory":
		cfg.SpiceDBDatastore = "memory"
	default:
		cfg.SpiceDBDatastore = "postgres"
		cfg.SpiceDBDatabaseURL, _ = w.newDatabase(tb, "spicedb")
	}
	for _, f := range s.tune {
		f(&cfg)
	}
	logs := newTestLogWriter(tb)
	tb.Cleanup(logs.stop) // registered before Close, so it runs after it

	m := app.New(cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: testLogLevel()})))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	if err := m.Open(ctx); err != nil { // Open closes what it opened when it fails
		tb.Fatalf("app.Open: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := m.Close(ctx); err != nil {
			tb.Errorf("app.Close: %v", err)
		}
	})
	tb.Logf("authzd open at %s in %s (spicedb: %s)", m.URL(), time.Since(start).Round(time.Millisecond), describeSpiceDB(cfg))

	pool, err := pgxpool.New(ctx, auditURL+querySep(auditURL)+"pool_max_conns=4")
	if err != nil {
		tb.Fatalf("audit pool: %v", err)
	}
	tb.Cleanup(pool.Close)

	return &testApp{
		api:        newAPI(m.URL(), cfg.AdminToken),
		Main:       m,
		URL:        m.URL(),
		AdminToken: cfg.AdminToken,
		Config:     cfg,
		AuditURL:   auditURL,
		Audit:      pool,
	}
}

// mustDefaultConfig is the app's Config with the defaults its environment tags declare, read from an
// empty environment so that the developer's own AUTHZ_* variables cannot leak into a test.
func mustDefaultConfig(tb testing.TB) app.Config {
	tb.Helper()
	cfg, err := env.ParseAsWithOptions[app.Config](env.Options{Environment: map[string]string{}})
	if err != nil {
		tb.Fatalf("default config: %v", err)
	}
	return cfg
}

func describeSpiceDB(cfg app.Config) string {
	if cfg.SpiceDBEndpoint != "" {
		return "external " + cfg.SpiceDBEndpoint
	}
	return "embedded, " + cfg.SpiceDBDatastore + " datastore"
}

func querySep(u string) string {
	if strings.Contains(u, "?") {
		return "&"
	}
	return "?"
}

// hostPort returns the host:port of a database URL.
func hostPort(tb testing.TB, dbURL string) string {
	tb.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		tb.Fatalf("parse %s: %v", redactURL(dbURL), err)
	}
	if u.Port() == "" {
		return u.Hostname() + ":5432"
	}
	return u.Host
}

func testLogLevel() slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(os.Getenv(envLogLevel))); err != nil {
		return slog.LevelWarn
	}
	return l
}

// testLogWriter sends authzd's log lines to the test log while the test runs and drops them
// afterwards, when goroutines still shutting down must not call t.Log. Fault scenarios make authzd warn
// on every request, so unless AUTHZ_TEST_LOG_LEVEL asks for logs the first lines are kept and the
// rest only counted.
type testLogWriter struct {
	tb      testing.TB
	limit   int // 0: no limit
	mu      sync.Mutex
	lines   int
	stopped bool
}

func newTestLogWriter(tb testing.TB) *testLogWriter {
	w := &testLogWriter{tb: tb, limit: 30}
	if os.Getenv(envLogLevel) != "" {
		w.limit = 0
	}
	return w
}

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lines++
	if !w.stopped && (w.limit == 0 || w.lines <= w.limit) {
		w.tb.Log("authzd: " + string(bytes.TrimRight(p, "\n")))
	}
	return len(p), nil
}

func (w *testLogWriter) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.limit > 0 && w.lines > w.limit {
		w.tb.Logf("authzd: %d more log lines not shown (set %s=warn to see them all)", w.lines-w.limit, envLogLevel)
	}
	w.stopped = true
}
