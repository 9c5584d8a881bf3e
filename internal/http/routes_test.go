package http

import (
	"io"
	"log/slog"
	"slices"
	"testing"

	"github.com/scailabs/authzd/api"
	"github.com/scailabs/authzd/internal/metrics"
)

// TestRoutesMatchOpenAPI: every route is documented in api/openapi.yaml and
// every documented route exists.
func TestRoutesMatchOpenAPI(t *testing.T) {
	s := NewServer(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: metrics.New()})
	got := s.Routes()
	slices.Sort(got)
	want, err := api.Routes()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range got {
		if !slices.Contains(want, r) {
			t.Errorf("route %s is served but not documented in api/openapi.yaml", r)
		}
	}
	for _, r := range want {
		if !slices.Contains(got, r) {
			t.Errorf("route %s is documented in api/openapi.yaml but not served", r)
		}
	}
}

// TestRoutesHaveTenantRules: every route says how a tenant-scoped token is
// confined on it, and the table names no route that is not served.
func TestRoutesHaveTenantRules(t *testing.T) {
	s := NewServer(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: metrics.New()})
	got := s.Routes()
	for _, r := range got {
		if _, ok := tenantRules[r]; !ok {
			t.Errorf("route %s has no tenant rule in tenantRules", r)
		}
	}
	for r := range tenantRules {
		if !slices.Contains(got, r) {
			t.Errorf("tenantRules names %s, which is not served", r)
		}
	}
}
