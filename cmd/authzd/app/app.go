// Package app wires authzd together: it is the constructor that cmd/authzd,
// the integration suite and the benchmark all use.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/scailabs/authzd/api"
	"github.com/scailabs/authzd/client/tlsfiles"
	"github.com/scailabs/authzd/internal/auditchain"
	"github.com/scailabs/authzd/internal/cache"
	"github.com/scailabs/authzd/internal/console"
	authzhttp "github.com/scailabs/authzd/internal/http"
	"github.com/scailabs/authzd/internal/latency"
	"github.com/scailabs/authzd/internal/metrics"
	"github.com/scailabs/authzd/internal/outofband"
	"github.com/scailabs/authzd/internal/postgres"
	"github.com/scailabs/authzd/internal/spicedb"
	"github.com/scailabs/authzd/internal/whatif"
	"github.com/scailabs/authzd/schema"
)

// Main is a running authzd.
type Main struct {
	cfg    Config
	logger *slog.Logger

	db    *postgres.DB
	audit *postgres.AuditLog
	// latency keeps decisions' stage traces when AUTHZ_DEBUG_ADDR is set.
	latency *latency.Recorder
	signer  *auditchain.Signer
	// checkpoints signs the chain head; background runs it and the partition maintainer.
	checkpoints *postgres.Checkpointer
	background  context.CancelFunc
	bgDone      sync.WaitGroup
	graph       *spicedb.Graph
	cache       *cache.Cache // nil when AUTHZ_DECISION_CACHE is off
	server      *http.Server
	// recorder records out-of-band changes; stopRecorder ends it and waits.
	recorder     *outofband.Recorder
	closeOnce    sync.Once
	closeErr     error
	stopRecorder func()
	listener     net.Listener
	served       chan error
	// debug serves the profiler on AUTHZ_DEBUG_ADDR, when set.
	debug         *http.Server
	debugListener net.Listener
	// stopConsole ends the console's chain verifier and waits for it.
	stopConsole func()
	consoleDone sync.WaitGroup
	// tls holds the server's certificate files when AUTHZ_TLS_CERT_FILE is set.
	tls *tlsfiles.Store
	// drainer turns /readyz to draining on SIGTERM; probe serves the probe routes on AUTHZ_PROBE_ADDR.
	drainer       *authzhttp.Drainer
	probe         *http.Server
	probeListener net.Listener
}

// New returns an unopened Main.
func New(cfg Config, logger *slog.Logger) *Main {
	if logger == nil {
		logger = slog.Default()
	}
	return &Main{cfg: cfg, logger: logger}
}

// postgresHelp tells an operator how to get a Postgres when none answers.
const postgresHelp = "authzd needs Postgres for its audit log. Start one (e.g. `pg_ctlcluster 15 main start`, or " +
	"`docker compose up -d postgres`) or point AUTHZ_DATABASE_URL at one"

// Open migrates the audit database, starts or dials SpiceDB, writes the
// schema when it differs, and starts serving HTTP. It closes what it opened
// when a step fails.
func (m *Main) Open(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			_ = m.Close(context.Background())
		}
	}()
	// authzd exports no traces. SpiceDB's engine (embedded, and the decision
	// cache's mirror) starts a span at every step of a walk; under OpenTelemetry's
	// default global provider each is a heap object, under the no-op provider it
	// is not (BenchmarkMirror: 562 -> 519 allocations and 33 -> 29 KB per cold
	// check). An embedder that installs a real provider afterwards replaces it.
	otel.SetTracerProvider(noop.NewTracerProvider())
	model, err := schema.Embedded()
	if err != nil {
		return fmt.Errorf("load permission model: %w", err)
	}
	met := metrics.New()
	if err := m.loadTLS(met); err != nil {
		return err
	}
	if m.db, err = postgres.Open(ctx, m.cfg.DatabaseURL, m.cfg.DBMaxConns); err != nil {
		return fmt.Errorf("%w\n%s", err, postgresHelp)
	}
	for _, n := range m.db.Notices {
		m.logger.Warn(n)
	}
	if err := m.migrate(ctx); err != nil {
		return err
	}
	if m.signer, err = auditSigner(m.cfg, m.logger); err != nil {
		return err
	}
	if err := m.refuseRetiredKey(ctx); err != nil {
		return err
	}
	if m.checkpoints, err = postgres.NewCheckpointer(ctx, m.db, m.signer, m.logger); err != nil {
		return err
	}
	met.SigningKeyRetired(m.checkpoints.Retired)
	met.CheckpointAge(m.checkpoints.Age)
	maintainer := postgres.NewMaintainer(m.db, m.signer, time.Duration(m.cfg.AuditRetention), m.logger)
	if _, err := maintainer.Maintain(ctx, time.Now()); err != nil {
		// Not fatal: the writer creates a missing partition on demand.
		m.logger.Error("audit partition maintenance failed at start", "err", err)
	}

	sc := m.spiceDBConfig(model, met)
	if sc.TLS, err = m.spiceDBTLS(met); err != nil {
		return err
	}
	if sc.Endpoint == "" && m.cfg.SpiceDBDatastore == "postgres" {
		if sc.Embedded.DatabaseURL, err = m.cfg.spiceDBDatabaseURL(); err != nil {
			return err
		}
		if err := postgres.EnsureDatabase(ctx, sc.Embedded.DatabaseURL); err != nil {
			return fmt.Errorf("spicedb datastore: %w", err)
		}
	}
	if m.graph, err = spicedb.Open(ctx, sc, m.logger); err != nil {
		return err
	}
	met.CheckMemo(m.graph.MemoStats)
	met.DependencyUp(map[string]func(context.Context) error{"postgres": m.db.Ping, "spicedb": m.graph.Ready})
	if m.cfg.DecisionCache == "on" {
		m.cache = cache.New(m.graph, cache.Options{Entries: m.cfg.DecisionCacheEntries, MirrorMax: m.mirrorMax(),
			VerifyRate: m.cfg.CacheVerifyRate, ObserveWatchLag: met.WatchLag, Logger: m.logger})
		m.graph.NotifyWrites(m.cache.Wrote)
		met.DecisionCache(m.cache.Stats)
	}

	m.audit = postgres.NewAuditLog(m.db, postgres.AuditOptions{
		Writers: m.cfg.AuditWriters, MaxBatch: m.cfg.AuditMaxBatch, Timeout: m.cfg.AuditTimeout, Linger: m.cfg.AuditLinger, Observe: met.AuditBatch,
		DisableChain: m.cfg.DisableAuditChain,
	})
	m.startRecorder()
	if m.cfg.DisableAudit {
		m.logger.Warn("AUTHZ_BENCH_DISABLE_AUDIT is set: decisions are NOT audited. Use this only to benchmark.")
	}
	if m.cfg.DisableAuditChain {
		m.logger.Warn("AUTHZ_BENCH_DISABLE_AUDIT_CHAIN is set: audit rows are written outside the hash chain and verification will fail. Use this only to benchmark.")
	}
	bg, cancel := context.WithCancel(context.Background())
	m.background = cancel
	m.bgDone.Add(2)
	go func() { defer m.bgDone.Done(); m.checkpoints.Run(bg, m.cfg.AuditCheckpointInterval) }()
	go func() { defer m.bgDone.Done(); maintainer.Run(bg, maintenanceInterval) }()
	if m.tls != nil {
		m.bgDone.Add(1)
		go func() { defer m.bgDone.Done(); m.tls.Run(bg) }()
	}
	if m.cfg.AdminToken == "" {
		m.logger.Warn("AUTHZ_ADMIN_TOKEN is empty: only service tokens made with `authzd token create` can call the API")
	}
	if m.cfg.DebugAddr != "" {
		// Decisions' stage traces, served beside the profiler (GET /debug/latency).
		m.latency = latency.NewRecorder(1 << 16)
	}
	handler, err := m.handler(model, met)
	if err != nil {
		return err
	}
	m.drainer = authzhttp.NewDrainer(handler)

	if m.listener, err = net.Listen("tcp", m.cfg.HTTPAddr); err != nil {
		return fmt.Errorf("listen on %s: %w", m.cfg.HTTPAddr, err)
	}
	if m.tls != nil {
		m.listener = tls.NewListener(m.listener, m.tls.ServerConfig())
	}
	m.server = &http.Server{
		Handler:           m.drainer,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(m.logger.Handler(), slog.LevelWarn),
	}
	m.served = make(chan error, 1)
	go func() { m.served <- m.server.Serve(m.listener) }()
	if err := m.serveDebug(); err != nil {
		return err
	}
	if err := m.serveProbe(); err != nil {
		return err
	}
	m.logger.Info("authzd serving", "addr", m.listener.Addr().String(), "tls", m.tlsMode(), "spicedb", spiceDBMode(m.cfg),
		"modules", len(model.Modules), "keys", len(model.Keys))
	return nil
}

// serveDebug serves Go's profiler on AUTHZ_DEBUG_ADDR, apart from the API:
// it has no authentication, so it never shares the API's listener. A
// listener that is not loopback is logged as a warning.
func (m *Main) serveDebug() error {
	if m.cfg.DebugAddr == "" {
		return nil
	}
	var err error
	if m.debugListener, err = net.Listen("tcp", m.cfg.DebugAddr); err != nil {
		return fmt.Errorf("listen on AUTHZ_DEBUG_ADDR %s: %w", m.cfg.DebugAddr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("/debug/latency", m.latency)
	// A CPU profile or trace runs for as long as it is asked to (?seconds=N).
	m.debug = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(m.logger.Handler(), slog.LevelWarn)}
	go func() { _ = m.debug.Serve(m.debugListener) }()
	addr := m.debugListener.Addr().(*net.TCPAddr)
	if !addr.IP.IsLoopback() {
		m.logger.Warn("AUTHZ_DEBUG_ADDR is not a loopback address: the profiler has no authentication", "addr", addr.String())
	}
	m.logger.Info("profiler serving", "addr", addr.String())
	return nil
}

// DebugURL is the base URL of the profiler's listener, or "" when AUTHZ_DEBUG_ADDR is unset.
func (m *Main) DebugURL() string {
	if m.debugListener == nil {
		return ""
	}
	return "http://" + m.debugListener.Addr().String()
}

// maintenanceInterval is how often partitions are created ahead and retention applied.
const maintenanceInterval = time.Hour

// auditSigner loads the checkpoint signing key, or makes one for this process.
func auditSigner(cfg Config, logger *slog.Logger) (*auditchain.Signer, error) {
	if cfg.AuditSigningKey != "" {
		s, err := auditchain.LoadSigner(cfg.AuditSigningKey)
		if err != nil {
			return nil, fmt.Errorf("AUTHZ_AUDIT_SIGNING_KEY: %w", err)
		}
		logger.Info("audit checkpoints are signed", "key_id", s.KeyID())
		return s, nil
	}
	s, err := auditchain.GenerateSigner()
	if err != nil {
		return nil, err
	}
	logger.Warn("AUTHZ_AUDIT_SIGNING_KEY is unset: audit checkpoints are signed with a key made for this process only. "+
		"They prove the chain only to someone who kept its public key (GET /v1/audit/keys) outside the database; "+
		"in production set AUTHZ_AUDIT_SIGNING_KEY (make one with `authzd audit keygen`)", "key_id", s.KeyID())
	return s, nil
}

// startRecorder starts recording relationship changes made outside authzd
// (internal/outofband) when configured.
func (m *Main) startRecorder() {
	if m.cfg.ExternalChanges != "on" || m.cfg.DisableAudit {
		return
	}
	rec := outofband.New(m.graph, leaseStore{m.db}, m.audit, m.logger, outofband.Options{
		Grace:          m.cfg.ExternalChangesGrace,
		CursorUnusable: func(err error) bool { return errors.Is(err, spicedb.ErrCursorUnusable) },
	})
	m.recorder = rec
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		rec.Run(ctx)
	}()
	m.stopRecorder = func() {
		cancel()
		<-done
	}
}

// RecordsExternalChanges reports whether this replica is the one recording
// relationship changes made outside authzd.
func (m *Main) RecordsExternalChanges() bool { return m.recorder != nil && m.recorder.Leading() }

// leaseStore gives the recorder Postgres's lease as its own interface.
type leaseStore struct{ *postgres.DB }

func (s leaseStore) TryLease(ctx context.Context, key int64) (outofband.Lease, error) {
	l, err := s.DB.TryLease(ctx, key)
	if l == nil || err != nil {
		return nil, err // a nil *Lease must not become a non-nil interface
	}
	return l, nil
}

// spiceDBConfig is the SpiceDB adapter's part of the configuration.
func (m *Main) spiceDBConfig(model *schema.Model, met *metrics.Metrics) spicedb.Config {
	return spicedb.Config{
		Endpoint: m.cfg.SpiceDBEndpoint, Token: m.cfg.SpiceDBToken, Insecure: m.cfg.SpiceDBInsecure,
		Timeout: m.cfg.SpiceDBTimeout, StartTimeout: m.cfg.SpiceDBStartTimeout,
		WriteTimeout: m.cfg.SpiceDBWriteTimeout, Schema: model.Schema(), Observe: met.SpiceDB,
		CheckSlots: m.cfg.SpiceDBCheckSlots, ObserveCheckBatch: met.CheckBatch, MemoWindow: m.cfg.CheckMemoWindow,
		Embedded: spicedb.EmbeddedConfig{Datastore: m.cfg.SpiceDBDatastore},
	}
}

// mirrorMax is the decision cache mirror's bound, negative when it is off.
func (m *Main) mirrorMax() int {
	if m.cfg.CacheMirror == "off" {
		return -1
	}
	return m.cfg.CacheMirrorMax
}

// handler builds the HTTP API over what Open opened, with the console in
// front of it when AUTHZ_CONSOLE is on (its verifier runs in the background).
func (m *Main) handler(model *schema.Model, met *metrics.Metrics) (http.Handler, error) {
	keys := make([]authzhttp.KeyInfo, len(model.Keys))
	for i, k := range model.Keys {
		keys[i] = authzhttp.KeyInfo{Key: k.Key, Description: k.Description, Roles: k.Roles}
	}
	api := authzhttp.NewServer(authzhttp.Options{
		Checker: m.checker(), Explainer: m.graph, Searcher: m.graph, Provisioner: m.graph, Lister: m.graph, Model: m.graph,
		Readiness: m.graph, TokenVerifier: m.db, Tokens: m.db, AuditReader: m.db, RoleNamer: m.db, Database: m.db,
		Audit: m.audit, Chain: m.db, SigningKeyID: m.signer.KeyID(), Keys: keys, AdminToken: m.cfg.AdminToken,
		Logger: m.logger, Metrics: met, OpenAPI: api.OpenAPI, DisableAudit: m.cfg.DisableAudit,
		MaxBodyBytes: m.cfg.MaxBodyBytes, TokenCacheTTL: m.cfg.TokenCacheTTL, PublicURL: m.cfg.PublicURL,
		Transfer: m.graph, Import: authzhttp.ImportOptions{MaxBytes: int64(m.cfg.ImportMaxBytes), Timeout: m.cfg.ImportTimeout,
			SpoolDir: m.cfg.ImportSpoolDir, Batch: m.cfg.ImportBatch, Writers: m.cfg.ImportWriters},
		Shadow: m.db, ImportStatus: m.db,
		WhatIf:  m.whatIf(met),
		Latency: m.latency,
	})
	if m.cfg.Console != "on" {
		return api, nil
	}
	con, err := console.New(console.Options{
		API: api, Sessions: m.db, Chain: m.db, SessionTTL: m.cfg.ConsoleSessionTTL, VerifyInterval: m.cfg.ConsoleVerifyInterval,
		SecureCookies: strings.HasPrefix(m.cfg.PublicURL, "https://"), Logger: m.logger,
	})
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	bg, cancel := context.WithCancel(context.Background())
	m.stopConsole = func() { cancel(); m.consoleDone.Wait() }
	m.consoleDone.Add(1)
	go func() { defer m.consoleDone.Done(); con.Run(bg) }()
	return con.Wrap(api), nil
}

// checker answers checks: the decision cache in front of SpiceDB, or SpiceDB
// alone when AUTHZ_DECISION_CACHE is off.
func (m *Main) checker() authzhttp.Checker {
	if m.cache != nil {
		return m.cache
	}
	return m.graph
}

// whatIf is POST /v1/whatif's engine over the graph and the audit log.
func (m *Main) whatIf(met *metrics.Metrics) *authzhttp.WhatIf {
	e := whatif.New(m.graph, m.cfg.WhatIfWorkers)
	e.Incomplete = met.WhatIfIncomplete()
	return &authzhttp.WhatIf{Engine: e, Decisions: m.db, MaxQuestions: m.cfg.WhatIfMaxQuestions,
		MaxChanges: m.cfg.WhatIfMaxChanges, Timeout: m.cfg.WhatIfTimeout}
}

func spiceDBMode(c Config) string {
	if c.SpiceDBEndpoint != "" {
		return "external " + c.SpiceDBEndpoint
	}
	return "embedded/" + c.SpiceDBDatastore
}

// URL is the base URL of the HTTP server, e.g. http://127.0.0.1:41234.
func (m *Main) URL() string {
	if m.listener == nil {
		return ""
	}
	addr := m.listener.Addr().(*net.TCPAddr)
	host := addr.IP.String()
	if addr.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	scheme := "http://"
	if m.tls != nil {
		scheme = "https://"
	}
	return scheme + net.JoinHostPort(host, fmt.Sprint(addr.Port))
}

// Served is closed with the HTTP server's exit error when it stops serving.
func (m *Main) Served() <-chan error { return m.served }

// defaultShutdownTimeout bounds Close when ShutdownTimeout is zero (a Config
// built by hand); it is AUTHZ_SHUTDOWN_TIMEOUT's default.
const defaultShutdownTimeout = 15 * time.Second

// Close shuts down in order, all of it within one bound (ShutdownTimeout):
// the HTTP server stops taking requests and drains those in flight, the audit
// writer commits what is queued, then SpiceDB and the pools close. A step that
// runs out of time does not stop the next from being tried: each is then cut
// short, and what is still in flight fails closed.
func (m *Main) Close(ctx context.Context) error {
	m.closeOnce.Do(func() { m.closeErr = m.close(ctx) })
	return m.closeErr
}

func (m *Main) close(ctx context.Context) error {
	timeout := m.cfg.ShutdownTimeout
	if timeout <= 0 {
		timeout = defaultShutdownTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var errs []error
	if m.server != nil {
		if err := m.server.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("http shutdown: %w", err))
		}
	}
	if m.probe != nil {
		_ = m.probe.Shutdown(ctx)
	} else if m.probeListener != nil {
		_ = m.probeListener.Close()
	}
	if m.debug != nil {
		_ = m.debug.Close() // a profile in progress is cut short
	} else if m.debugListener != nil {
		_ = m.debugListener.Close()
	}
	if m.stopRecorder != nil {
		m.stopRecorder() // it writes through the audit log
	}
	if m.stopConsole != nil {
		m.stopConsole() // it reads the audit database
	}
	if m.audit != nil {
		errs = append(errs, m.audit.Shutdown(ctx))
	}
	if m.background != nil {
		m.background()
		m.bgDone.Wait()
	}
	if m.checkpoints != nil {
		// The last rows get their checkpoint before the pools close.
		if _, _, err := m.checkpoints.Checkpoint(ctx); err != nil {
			errs = append(errs, fmt.Errorf("final audit checkpoint: %w", err))
		}
	}
	if m.cache != nil {
		if err := m.cache.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("decision cache: %w", err))
		}
	}
	if m.graph != nil {
		if err := m.graph.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("spicedb: %w", err))
		}
	}
	if m.server != nil {
		// Requests that outlived the drain have had their answer (an error:
		// the audit and SpiceDB are closed); drop their connections.
		_ = m.server.Close()
	}
	if m.db != nil {
		m.db.Close()
	}
	return errors.Join(errs...)
}

// Migrate applies the audit database migrations and exits.
func Migrate(ctx context.Context, cfg Config) error {
	if err := postgres.EnsureDatabase(ctx, cfg.DatabaseURL); err != nil {
		return fmt.Errorf("%w\n%s", err, postgresHelp)
	}
	return postgres.Migrate(ctx, cfg.DatabaseURL)
}

// OpenStore opens the audit database for operator commands (token management).
func OpenStore(ctx context.Context, cfg Config) (*postgres.DB, error) {
	db, err := postgres.Open(ctx, cfg.DatabaseURL, 2)
	if err != nil {
		return nil, fmt.Errorf("%w\n%s", err, postgresHelp)
	}
	if err := postgres.Migrate(ctx, cfg.DatabaseURL); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// The SpiceDB adapter plays every role of the graph the HTTP layer names, and
// the Postgres adapter every role of the store.
var (
	_ authzhttp.Checker       = (*spicedb.Graph)(nil)
	_ authzhttp.Checker       = (*cache.Cache)(nil)
	_ cache.Upstream          = (*spicedb.Graph)(nil)
	_ authzhttp.Explainer     = (*spicedb.Graph)(nil)
	_ authzhttp.Searcher      = (*spicedb.Graph)(nil)
	_ authzhttp.Provisioner   = (*spicedb.Graph)(nil)
	_ authzhttp.Lister        = (*spicedb.Graph)(nil)
	_ authzhttp.Model         = (*spicedb.Graph)(nil)
	_ authzhttp.Readiness     = (*spicedb.Graph)(nil)
	_ authzhttp.Graph         = (*spicedb.Graph)(nil)
	_ authzhttp.TokenVerifier = (*postgres.DB)(nil)
	_ authzhttp.TokenStore    = (*postgres.DB)(nil)
	_ authzhttp.AuditReader   = (*postgres.DB)(nil)
	_ authzhttp.RoleNamer     = (*postgres.DB)(nil)
	_ authzhttp.Pinger        = (*postgres.DB)(nil)
	_ authzhttp.Store         = (*postgres.DB)(nil)
	_ authzhttp.Audit         = (*postgres.AuditLog)(nil)
	_ authzhttp.Chain         = (*postgres.DB)(nil)
	_ console.Sessions        = (*postgres.DB)(nil)
	_ console.Chain           = (*postgres.DB)(nil)
	_ console.API             = (*authzhttp.Server)(nil)
	_ outofband.Source        = (*spicedb.Graph)(nil)
	_ outofband.Store         = leaseStore{}
	_ outofband.Audit         = (*postgres.AuditLog)(nil)
)
