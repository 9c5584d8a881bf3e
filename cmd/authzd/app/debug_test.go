package app_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/scailabs/authzd/cmd/authzd/app"
	"github.com/scailabs/authzd/internal/pgtest"
)

// TestDebugListener: AUTHZ_DEBUG_ADDR serves the profiler on its own
// listener; the API's listener never serves it, with or without the setting.
func TestDebugListener(t *testing.T) {
	ctx := context.Background()
	for _, debug := range []bool{false, true} {
		cfg := app.DefaultConfig()
		cfg.HTTPAddr, cfg.DatabaseURL, cfg.AdminToken = "127.0.0.1:0", pgtest.MustCreate(t), "admin"
		cfg.SpiceDBDatastore, cfg.DecisionCache = "memory", "off"
		if debug {
			cfg.DebugAddr = "127.0.0.1:0"
		}
		m := app.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err := m.Open(ctx); err != nil {
			t.Fatal(err)
		}
		get := func(url string) int {
			t.Helper()
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			req.Header.Set("Authorization", "Bearer admin")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("GET %s: %v", url, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			return resp.StatusCode
		}
		if got := get(m.URL() + "/debug/pprof/"); got != http.StatusNotFound {
			t.Errorf("debug %v: the API's listener answers /debug/pprof/ with %d, want 404", debug, got)
		}
		switch {
		case !debug && m.DebugURL() != "":
			t.Errorf("no AUTHZ_DEBUG_ADDR, yet a profiler listens on %s", m.DebugURL())
		case debug:
			if got := get(m.DebugURL() + "/debug/pprof/"); got != http.StatusOK {
				t.Errorf("profiler index: %d, want 200", got)
			}
			if got := get(m.DebugURL() + "/debug/pprof/heap"); got != http.StatusOK {
				t.Errorf("heap profile: %d, want 200", got)
			}
			if got := get(m.DebugURL() + "/v1/permissions/check"); got != http.StatusNotFound {
				t.Errorf("the profiler's listener answers the API's paths (%d)", got)
			}
		}
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		if err := m.Close(cctx); err != nil {
			t.Error(err)
		}
		cancel()
		if debug {
			if _, err := http.Get(m.DebugURL() + "/debug/pprof/"); err == nil {
				t.Error("the profiler still answers after Close")
			}
		}
	}
}
