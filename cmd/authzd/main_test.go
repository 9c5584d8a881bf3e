package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
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
