package http

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/scailabs/authzd/internal/authz"
	"github.com/scailabs/authzd/internal/metrics"
)

// TestBootstrapTokenRef: a session of the bootstrap token finds it again
// while AUTHZ_ADMIN_TOKEN is unchanged, and not once it changed.
func TestBootstrapTokenRef(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	old := NewServer(Options{AdminToken: "old-secret", Logger: logger, Metrics: metrics.New()})
	rotated := NewServer(Options{AdminToken: "new-secret", Logger: logger, Metrics: metrics.New()})
	tok, err := old.Authenticate(context.Background(), "old-secret")
	if err != nil {
		t.Fatal(err)
	}
	ref := old.TokenRef(tok)
	if got, err := old.TokenByID(context.Background(), ref); err != nil || got.ID != "bootstrap" {
		t.Errorf("same admin token: %v, %v", got, err)
	}
	if _, err := rotated.TokenByID(context.Background(), ref); authz.ErrorCode(err) != authz.EUNAUTHORIZED {
		t.Errorf("rotated admin token: err = %v, want unauthorized", err)
	}
}
