package app

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
)

// Config is authzd's configuration, read from the environment. Every
// variable is listed, with its default, in docs/configuration.md.
type Config struct {
	HTTPAddr    string `env:"AUTHZ_HTTP_ADDR" envDefault:":8080"`
	DatabaseURL string `env:"AUTHZ_DATABASE_URL" envDefault:"postgres://postgres@127.0.0.1:5432/authz?sslmode=disable"`
	// AdminToken is the bootstrap bearer token holding every scope.
	AdminToken string `env:"AUTHZ_ADMIN_TOKEN"`

	SpiceDBEndpoint string        `env:"AUTHZ_SPICEDB_ENDPOINT"`
	SpiceDBToken    string        `env:"AUTHZ_SPICEDB_TOKEN"`
	SpiceDBInsecure bool          `env:"AUTHZ_SPICEDB_INSECURE" envDefault:"false"`
	SpiceDBTimeout  time.Duration `env:"AUTHZ_SPICEDB_TIMEOUT" envDefault:"5s"`
	// SpiceDBWriteTimeout bounds a relationship write including retries of
	// serialization conflicts between concurrent writers.
	SpiceDBWriteTimeout time.Duration `env:"AUTHZ_SPICEDB_WRITE_TIMEOUT" envDefault:"15s"`
	// SpiceDBStartTimeout bounds how long start-up waits for an unavailable SpiceDB.
	SpiceDBStartTimeout time.Duration `env:"AUTHZ_SPICEDB_START_TIMEOUT" envDefault:"30s"`
	// SpiceDBCheckSlots bounds single checks in flight to SpiceDB; checks
	// arriving while all slots are busy go out together as one bulk call.
	// A negative value sends every check on its own.
	SpiceDBCheckSlots int `env:"AUTHZ_SPICEDB_CHECK_SLOTS" envDefault:"4"`
	// CheckMemoWindow enables the revision memo: a check without a zed token
	// is answered from memory when SpiceDB already answered it at the revision
	// it currently hands out, confirmed by a call started within this window.
	// 0 (the default) turns the memo off; 500ms is a sensible value.
	CheckMemoWindow time.Duration `env:"AUTHZ_CHECK_MEMO_WINDOW" envDefault:"0s"`
	// DecisionCache is the Watch-fed decision cache: on or off.
	DecisionCache string `env:"AUTHZ_DECISION_CACHE" envDefault:"on"`
	// DecisionCacheEntries bounds the answers the decision cache holds.
	DecisionCacheEntries int `env:"AUTHZ_DECISION_CACHE_ENTRIES" envDefault:"1048576"`
	// CacheMirror answers decision cache misses from an in-process copy of
	// SpiceDB's relationships, kept by the same Watch stream: on or off.
	CacheMirror string `env:"AUTHZ_CACHE_MIRROR" envDefault:"on"`
	// CacheMirrorMax bounds the relationships the mirror holds; beyond it
	// authzd logs once and misses go to SpiceDB.
	CacheMirrorMax int `env:"AUTHZ_CACHE_MIRROR_MAX" envDefault:"250000"`
	// CacheVerifyRate is the share of cache answers re-checked against SpiceDB in the background.
	CacheVerifyRate float64 `env:"AUTHZ_CACHE_VERIFY_RATE" envDefault:"0.001"`
	// SpiceDBDatastore is the embedded SpiceDB's datastore: postgres or memory.
	SpiceDBDatastore string `env:"AUTHZ_SPICEDB_DATASTORE" envDefault:"postgres"`
	// SpiceDBDatabaseURL is the embedded datastore's database; empty derives
	// it from DatabaseURL with "_spicedb" appended to the database name.
	SpiceDBDatabaseURL string `env:"AUTHZ_SPICEDB_DATABASE_URL"`

	DBMaxConns    int32         `env:"AUTHZ_DB_MAX_CONNS" envDefault:"16"`
	AuditWriters  int           `env:"AUTHZ_AUDIT_WRITERS" envDefault:"1"`
	AuditMaxBatch int           `env:"AUTHZ_AUDIT_MAX_BATCH" envDefault:"1000"`
	AuditTimeout  time.Duration `env:"AUTHZ_AUDIT_TIMEOUT" envDefault:"3s"`
	// AuditLinger is how long the audit writer waits for more decisions
	// before it commits a batch, when no batch of its own is in flight and its
	// arrival rate says one is due within it (0: commit what is queued at once).
	AuditLinger time.Duration `env:"AUTHZ_AUDIT_LINGER" envDefault:"500us"`
	// AuditSigningKey is the path of the Ed25519 key (PEM PKCS #8) that signs
	// audit checkpoints; empty generates one per process (development).
	AuditSigningKey string `env:"AUTHZ_AUDIT_SIGNING_KEY"`
	// AuditCheckpointInterval is how often the chain head is signed (and at shutdown).
	AuditCheckpointInterval time.Duration `env:"AUTHZ_AUDIT_CHECKPOINT_INTERVAL" envDefault:"1m"`
	// AuditRetention drops whole monthly audit partitions older than it; 0 keeps everything.
	AuditRetention  Retention     `env:"AUTHZ_AUDIT_RETENTION" envDefault:"0"`
	MaxBodyBytes    int64         `env:"AUTHZ_MAX_BODY_BYTES" envDefault:"1048576"`
	TokenCacheTTL   time.Duration `env:"AUTHZ_TOKEN_CACHE_TTL" envDefault:"10s"`
	ShutdownTimeout time.Duration `env:"AUTHZ_SHUTDOWN_TIMEOUT" envDefault:"15s"`
	LogLevel        string        `env:"AUTHZ_LOG_LEVEL" envDefault:"info"`
	LogFormat       string        `env:"AUTHZ_LOG_FORMAT" envDefault:"json"`

	// TLSCertFile and TLSKeyFile (PEM) make AUTHZ_HTTP_ADDR serve HTTPS only.
	// Both files, and TLSClientCAFile, are read again when they change.
	TLSCertFile string `env:"AUTHZ_TLS_CERT_FILE"`
	TLSKeyFile  string `env:"AUTHZ_TLS_KEY_FILE"`
	// TLSClientCAFile (PEM) requires client certificates signed by one of its
	// CAs (mutual TLS); tokens and scopes still apply.
	TLSClientCAFile string `env:"AUTHZ_TLS_CLIENT_CA_FILE"`
	// ProbeAddr, when set, serves /healthz, /readyz and /metrics in plain
	// HTTP on a listener of its own, for probes and scrapes that hold no
	// client certificate.
	ProbeAddr string `env:"AUTHZ_PROBE_ADDR"`
	// SpiceDBCAFile (PEM) is the CA that signs the external SpiceDB's
	// certificate, instead of the system's roots.
	SpiceDBCAFile string `env:"AUTHZ_SPICEDB_CA_FILE"`
	// ShutdownDrainDelay is how long authzd keeps serving after SIGTERM, with
	// /readyz answering 503 draining, before it shuts down (SIGINT skips it).
	ShutdownDrainDelay time.Duration `env:"AUTHZ_SHUTDOWN_DRAIN_DELAY" envDefault:"5s"`

	// ExternalChanges records relationship changes made straight in SpiceDB,
	// not through authzd, as audit rows: on or off.
	ExternalChanges string `env:"AUTHZ_AUDIT_EXTERNAL_CHANGES" envDefault:"on"`
	// ExternalChangesGrace is how long a change tagged as authzd's own waits
	// for its write's audit row before it is recorded as unaccounted for.
	ExternalChangesGrace time.Duration `env:"AUTHZ_AUDIT_EXTERNAL_GRACE" envDefault:"30s"`

	// DisableAudit skips audit rows. For the benchmark only, to show what the
	// audit costs; authzd logs a warning when it is set.
	DisableAudit bool `env:"AUTHZ_BENCH_DISABLE_AUDIT" envDefault:"false"`
	// DisableAuditChain writes audit rows without the hash chain. For the
	// benchmark only, to show what the chain costs; verification then fails.
	DisableAuditChain bool `env:"AUTHZ_BENCH_DISABLE_AUDIT_CHAIN" envDefault:"false"`
	// PublicURL is the base URL callers reach authzd at (https in production),
	// published as the AuthZEN PDP identifier; empty derives it per request.
	PublicURL string `env:"AUTHZ_PUBLIC_URL"`
	// DebugAddr, when set, serves Go's profiler (net/http/pprof) on its own
	// listener, apart from the API. It has no authentication: bind it to
	// loopback or a private network.
	DebugAddr string `env:"AUTHZ_DEBUG_ADDR"`
	// GCPercent is the garbage collector's target, as GOGC (which wins when
	// set): the heap may grow to (1 + GCPercent/100) times what is live
	// before a collection. authzd's live heap is mostly the decision cache
	// and its mirror, which every collection marks; 400 marks a quarter as
	// often as Go's 100 (docs/performance.md).
	GCPercent int `env:"AUTHZ_GC_PERCENT" envDefault:"400"`

	// ImportMaxBytes caps a POST /v1/import document (AUTHZ_MAX_BODY_BYTES
	// does not apply to it): a number of bytes or KiB, MiB, GiB.
	ImportMaxBytes ByteSize `env:"AUTHZ_IMPORT_MAX_BYTES" envDefault:"1GiB"`
	// ImportTimeout bounds an import or export, past the server's 30s.
	ImportTimeout time.Duration `env:"AUTHZ_IMPORT_TIMEOUT" envDefault:"30m"`
	// ImportSpoolDir holds import documents while they are validated and
	// written; empty is the OS temp dir.
	ImportSpoolDir string `env:"AUTHZ_IMPORT_SPOOL_DIR"`
	// ImportBatch bounds the relationship updates of one import write.
	ImportBatch int `env:"AUTHZ_IMPORT_BATCH" envDefault:"1000"`
	// ImportWriters bounds the import batches written at once.
	ImportWriters int `env:"AUTHZ_IMPORT_WRITERS" envDefault:"4"`
	// WhatIfMaxQuestions bounds the distinct questions in a what-if's window.
	WhatIfMaxQuestions int `env:"AUTHZ_WHATIF_MAX_QUESTIONS" envDefault:"50000"`
	// WhatIfMaxChanges bounds the changes of one what-if.
	WhatIfMaxChanges int `env:"AUTHZ_WHATIF_MAX_CHANGES" envDefault:"1000"`
	// WhatIfWorkers bounds the goroutines answering what-if questions, across
	// every what-if of the process.
	WhatIfWorkers int `env:"AUTHZ_WHATIF_WORKERS" envDefault:"2"`
	// WhatIfTimeout bounds one what-if call (then 503).
	WhatIfTimeout time.Duration `env:"AUTHZ_WHATIF_TIMEOUT" envDefault:"60s"`
	// Console serves the admin console at /console: on or off.
	Console string `env:"AUTHZ_CONSOLE" envDefault:"on"`
	// ConsoleSessionTTL is how long a console sign-in lasts.
	ConsoleSessionTTL time.Duration `env:"AUTHZ_CONSOLE_SESSION_TTL" envDefault:"8h"`
	// ConsoleVerifyInterval is how often the console verifies the audit
	// chain in process (incrementally) for its audit page.
	ConsoleVerifyInterval time.Duration `env:"AUTHZ_CONSOLE_VERIFY_INTERVAL" envDefault:"1m"`
}

// ConfigFromEnv reads Config from the environment.
func ConfigFromEnv() (Config, error) {
	cfg, err := env.ParseAs[Config]()
	if err != nil {
		return cfg, fmt.Errorf("configuration: %w", err)
	}
	return cfg, cfg.Validate()
}

// DefaultConfig is Config with every default and nothing read from the
// environment: what a deployment that sets nothing but its addresses runs.
func DefaultConfig() Config {
	cfg, err := env.ParseAsWithOptions[Config](env.Options{Environment: map[string]string{}})
	if err != nil {
		panic(fmt.Sprintf("authzd's configuration defaults do not parse: %v", err))
	}
	return cfg
}

// Validate reports configuration mistakes before anything starts.
func (c Config) Validate() error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return fmt.Errorf("AUTHZ_LOG_LEVEL must be debug, info, warn or error, not %q", c.LogLevel)
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		return fmt.Errorf("AUTHZ_LOG_FORMAT must be json or text, not %q", c.LogFormat)
	}
	switch c.DecisionCache {
	case "on", "off":
	default:
		return fmt.Errorf("AUTHZ_DECISION_CACHE must be on or off, not %q", c.DecisionCache)
	}
	switch c.CacheMirror {
	case "on", "off":
	default:
		return fmt.Errorf("AUTHZ_CACHE_MIRROR must be on or off, not %q", c.CacheMirror)
	}
	if c.CacheMirrorMax < 1 {
		return fmt.Errorf("AUTHZ_CACHE_MIRROR_MAX must be positive, not %d", c.CacheMirrorMax)
	}
	if c.CacheVerifyRate < 0 || c.CacheVerifyRate > 1 {
		return fmt.Errorf("AUTHZ_CACHE_VERIFY_RATE must be between 0 and 1, not %v", c.CacheVerifyRate)
	}
	if c.DecisionCacheEntries < 1 {
		return fmt.Errorf("AUTHZ_DECISION_CACHE_ENTRIES must be positive, not %d", c.DecisionCacheEntries)
	}
	switch c.ExternalChanges {
	case "on", "off":
	default:
		return fmt.Errorf("AUTHZ_AUDIT_EXTERNAL_CHANGES must be on or off, not %q", c.ExternalChanges)
	}
	for name, v := range map[string]int{"AUTHZ_WHATIF_MAX_QUESTIONS": c.WhatIfMaxQuestions, "AUTHZ_WHATIF_MAX_CHANGES": c.WhatIfMaxChanges,
		"AUTHZ_WHATIF_WORKERS": c.WhatIfWorkers} {
		if v < 1 {
			return fmt.Errorf("%s must be positive, not %d", name, v)
		}
	}
	if c.WhatIfTimeout <= 0 {
		return fmt.Errorf("AUTHZ_WHATIF_TIMEOUT must be positive, not %s", c.WhatIfTimeout)
	}
	if c.ExternalChangesGrace <= 0 {
		return fmt.Errorf("AUTHZ_AUDIT_EXTERNAL_GRACE must be positive, not %s", c.ExternalChangesGrace)
	}
	switch c.SpiceDBDatastore {
	case "postgres", "memory":
	default:
		return fmt.Errorf("AUTHZ_SPICEDB_DATASTORE must be postgres or memory, not %q", c.SpiceDBDatastore)
	}
	if c.SpiceDBEndpoint != "" && c.SpiceDBToken == "" {
		return fmt.Errorf("AUTHZ_SPICEDB_TOKEN is required with AUTHZ_SPICEDB_ENDPOINT")
	}
	if _, err := url.Parse(c.DatabaseURL); err != nil || !strings.HasPrefix(c.DatabaseURL, "postgres") {
		return fmt.Errorf("AUTHZ_DATABASE_URL must be a postgres:// URL")
	}
	if c.AuditCheckpointInterval < time.Second {
		return fmt.Errorf("AUTHZ_AUDIT_CHECKPOINT_INTERVAL must be 1s or more, not %s", c.AuditCheckpointInterval)
	}
	if c.AuditLinger < 0 || c.AuditLinger > c.AuditTimeout/2 {
		return fmt.Errorf("AUTHZ_AUDIT_LINGER must be between 0 and half of AUTHZ_AUDIT_TIMEOUT (%s), not %s", c.AuditTimeout/2, c.AuditLinger)
	}
	if c.AuditRetention != 0 && time.Duration(c.AuditRetention) < 31*24*time.Hour {
		return fmt.Errorf("AUTHZ_AUDIT_RETENTION must be 0 (keep everything) or 31d or more (partitions are monthly), not %s", c.AuditRetention)
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("AUTHZ_PUBLIC_URL must be an absolute http(s) URL without query or fragment, e.g. https://authzd.example.com")
		}
	}
	if c.ImportMaxBytes < 1 || c.ImportTimeout <= 0 || c.ImportBatch < 1 || c.ImportWriters < 1 {
		return fmt.Errorf("AUTHZ_IMPORT_MAX_BYTES, AUTHZ_IMPORT_TIMEOUT, AUTHZ_IMPORT_BATCH and AUTHZ_IMPORT_WRITERS must be positive")
	}
	switch c.Console {
	case "on", "off":
	default:
		return fmt.Errorf("AUTHZ_CONSOLE must be on or off, not %q", c.Console)
	}
	if c.ConsoleSessionTTL < time.Minute {
		return fmt.Errorf("AUTHZ_CONSOLE_SESSION_TTL must be 1m or more, not %s", c.ConsoleSessionTTL)
	}
	if c.ConsoleVerifyInterval < time.Second {
		return fmt.Errorf("AUTHZ_CONSOLE_VERIFY_INTERVAL must be 1s or more, not %s", c.ConsoleVerifyInterval)
	}
	if c.GCPercent < 10 {
		return fmt.Errorf("AUTHZ_GC_PERCENT must be 10 or more, not %d (set GOMEMLIMIT to bound memory instead)", c.GCPercent)
	}
	if err := c.validateOps(); err != nil {
		return err
	}
	if c.DebugAddr != "" {
		if _, _, err := net.SplitHostPort(c.DebugAddr); err != nil {
			return fmt.Errorf("AUTHZ_DEBUG_ADDR must be host:port, e.g. 127.0.0.1:6060, not %q", c.DebugAddr)
		}
		if c.DebugAddr == c.HTTPAddr {
			return fmt.Errorf("AUTHZ_DEBUG_ADDR must differ from AUTHZ_HTTP_ADDR (the profiler has no authentication and never shares the API's listener)")
		}
	}
	return nil
}

// spiceDBDatabaseURL is the embedded datastore's database URL.
func (c Config) spiceDBDatabaseURL() (string, error) {
	if c.SpiceDBDatabaseURL != "" {
		return c.SpiceDBDatabaseURL, nil
	}
	u, err := url.Parse(c.DatabaseURL)
	if err != nil {
		return "", fmt.Errorf("AUTHZ_DATABASE_URL: %w", err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	if name == "" {
		name = "authz"
	}
	u.Path = "/" + name + "_spicedb"
	return u.String(), nil
}

// Retention is a duration that also reads whole days: "400d", "720h", "0".
type Retention time.Duration

// UnmarshalText reads "<n>d" or a Go duration.
func (r *Retention) UnmarshalText(b []byte) error {
	s := string(b)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 {
			return fmt.Errorf("AUTHZ_AUDIT_RETENTION %q is not a number of days (400d) or a duration (9600h)", s)
		}
		*r = Retention(time.Duration(n) * 24 * time.Hour)
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return fmt.Errorf("AUTHZ_AUDIT_RETENTION %q is not a number of days (400d) or a duration (9600h)", s)
	}
	*r = Retention(d)
	return nil
}

func (r Retention) String() string {
	d := time.Duration(r)
	if d%(24*time.Hour) == 0 {
		return strconv.Itoa(int(d/(24*time.Hour))) + "d"
	}
	return d.String()
}
