package main

import (
	"bytes"
	"context"
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
