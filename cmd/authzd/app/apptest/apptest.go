// Package apptest starts a real authzd for tests: the app's own constructor,
// embedded SpiceDB and a fresh Postgres database per test (internal/pgtest).
package apptest

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/scailabs/authzd/cmd/authzd/app"
	"github.com/scailabs/authzd/internal/pgtest"
)

// Authzd is a running authzd.
type Authzd struct {
	URL         string // base URL of the HTTP API
	AdminToken  string // the bootstrap token
	DatabaseURL string // the audit database
	// SpiceDBDatabaseURL is the embedded SpiceDB's datastore on the postgres
	// datastore (empty on memory), for a test's own SpiceDB on the same data.
	SpiceDBDatabaseURL string
}

// MustStart starts authzd with its embedded SpiceDB on datastore ("memory"
// or "postgres", each on a fresh database) and closes it when the test ends.
// It skips (or fails under AUTHZ_REQUIRE_INTEGRATION=1) without Postgres.
func MustStart(tb testing.TB, datastore string) Authzd {
	tb.Helper()
	a, _ := MustStartWith(tb, datastore, nil)
	return a
}

// MustStartWith is MustStart with configure applied to the configuration
// before authzd opens; it also returns the running Main.
func MustStartWith(tb testing.TB, datastore string, configure func(*app.Config)) (Authzd, *app.Main) {
	tb.Helper()
	a := Authzd{AdminToken: "admin-" + rand.Text(), DatabaseURL: pgtest.MustCreate(tb)}
	// The defaults a deployment gets (the decision cache and its mirror on),
	// with this test's addresses and tighter bounds.
	cfg := app.DefaultConfig()
	cfg.HTTPAddr, cfg.DatabaseURL, cfg.AdminToken = "127.0.0.1:0", a.DatabaseURL, a.AdminToken
	cfg.SpiceDBDatastore, cfg.SpiceDBTimeout, cfg.DBMaxConns, cfg.AuditWriters = datastore, 5*time.Second, 8, 2
	cfg.AuditMaxBatch, cfg.AuditTimeout, cfg.MaxBodyBytes, cfg.TokenCacheTTL = 500, 3*time.Second, 1<<16, time.Second
	cfg.ShutdownTimeout, cfg.AuditCheckpointInterval = 10*time.Second, time.Second
	if datastore == "postgres" {
		cfg.SpiceDBDatabaseURL = pgtest.MustCreate(tb)
		a.SpiceDBDatabaseURL = cfg.SpiceDBDatabaseURL
	}
	if configure != nil {
		configure(&cfg)
	}
	if configure != nil {
		configure(&cfg)
	}
	m := app.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := m.Open(context.Background()); err != nil {
		tb.Fatalf("open authzd: %v", err)
	}
	tb.Cleanup(func() {
		if err := m.Close(context.Background()); err != nil {
			tb.Errorf("close authzd: %v", err)
		}
	})
	a.URL = m.URL()
	return a, m
}
