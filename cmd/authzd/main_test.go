package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/scailabs/authzd/cmd/authzd/app"
)

// TestHelpWithBadEnvironment: --help answers even when the environment would not start authzd.
func TestHelpWithBadEnvironment(t *testing.T) {
	t.Setenv("AUTHZ_LOG_LEVEL", "garbage")
	var out bytes.Buffer
	if err := run(context.Background(), []string{"--help"}, &out, &out); err != nil {
		t.Fatalf("--help: %v", err)
	}
	if !strings.Contains(out.String(), "usage:") {
		t.Errorf("--help printed %q", out.String())
	}
	if err := run(context.Background(), []string{"migrate"}, &out, &out); err == nil || !strings.Contains(err.Error(), "AUTHZ_LOG_LEVEL") {
		t.Errorf("migrate with a bad AUTHZ_LOG_LEVEL: err = %v, want it refused", err)
	}
}

// TestServerStoppingByItselfIsAFailure: a signal ends authzd cleanly, an HTTP server that stops on its own
// makes it exit non-zero (it used to be logged and exit 0).
func TestServerStoppingByItselfIsAFailure(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	served := make(chan error, 1)
	served <- errors.New("accept tcp: use of closed network connection")
	if err := untilStopped(context.Background(), served, logger); err == nil {
		t.Fatal("a server that stopped by itself was not reported as a failure")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := untilStopped(ctx, make(chan error), logger); err != nil {
		t.Fatalf("a signal made shutdown fail: %v", err)
	}
}

// TestGCPercent: serve sets AUTHZ_GC_PERCENT (default 400) as the collector's target unless GOGC is set,
// which wins as it does for every Go program.
func TestGCPercent(t *testing.T) {
	cfg := app.DefaultConfig()
	if pct, ok := gcPercent(cfg, func(string) string { return "" }); !ok || pct != 400 {
		t.Errorf("no GOGC: gcPercent = %d, %v; want the default 400", pct, ok)
	}
	cfg.GCPercent = 150
	if pct, ok := gcPercent(cfg, func(string) string { return "" }); !ok || pct != 150 {
		t.Errorf("AUTHZ_GC_PERCENT=150: gcPercent = %d, %v", pct, ok)
	}
	if _, ok := gcPercent(cfg, func(k string) string { return map[string]string{"GOGC": "100"}[k] }); ok {
		t.Error("GOGC=100 is set, yet AUTHZ_GC_PERCENT would override it")
	}
}
