package main

import (
	"bytes"
	"context"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/scailabs/authzd/internal/authz"
	"github.com/scailabs/authzd/internal/pgtest"
	"github.com/scailabs/authzd/schema"
)

// TestSmoke runs the whole benchmark in -smoke mode: the real SpiceDB server
// binary (built once into the user cache directory), authzd in external mode,
// every phase on tiny data for a fraction of a second each. It asserts no
// timing: a benchmark is not a test. It asserts that the report prints, that
// its last line is the ratio, and that every run left exactly one audit row
// per decision answered (run fails otherwise).
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a SpiceDB server and creates Postgres databases; skipped with -short")
	}
	pgtest.Require(t)
	cfg, err := parseFlags([]string{"-smoke", "-postgres", pgtest.ServerURL()}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var out, progress bytes.Buffer
	if err := run(ctx, cfg, &out, &progress); err != nil {
		t.Fatalf("smoke run: %v\n--- progress ---\n%s\n--- report ---\n%s", err, progress.String(), out.String())
	}
	report := out.String()
	t.Log("\n" + report)

	for _, want := range []string{
		"| # | scenario | load | ops | ops/s | p50 | p95 | p99 |",
		"check, SpiceDB direct (gRPC CheckPermission)",
		"check, facade POST /v1/permissions/check, durable audit",
		"check, facade, audit disabled",
		"effective permissions, all",
		"provision large data set through the API",
		"check on large data, facade, durable audit",
		"check on large data, Zipf users (s=1.1), facade, audit disabled, same fixed rate",
		"audit query module+since, limit 100",
		"| goal | target | measured | met |",
		"## Where a decision's time goes (phase 7)",
		"- **floor**: one-row INSERT + COMMIT through pgx",
		"| c=8 |",
		"Go client middleware at c=1",
		"## The audit chain's ceiling (phase 8)",
		"| 4 × c=4 |",
		"afterwards the chain verifies from genesis",
		"**ceiling ",
		// phase 1 ran, so the ceiling stands beside authzd's peak from the same run
		"authzd's own peak in this run: ",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	// authzd's stage traces reached the report: the c=1 row's time in authzd is not empty.
	if m := regexp.MustCompile(`(?m)^\| c=1 \| \d+ \| [\d.]+ / [\d.]+ \| ([\d.]+) / `).FindStringSubmatch(report); m == nil || m[1] == "0.00" {
		t.Errorf("phase 7's c=1 row lacks authzd's stage traces: %v", m)
	}
	if m := regexp.MustCompile(`\| audit completeness after every run \| rows = answers \| (\d+) of (\d+) runs \| yes \|`).FindStringSubmatch(report); m == nil || m[1] != m[2] {
		t.Errorf("audit completeness line missing or failed: %v", m)
	}
	lines := strings.Split(strings.TrimRight(report, "\n"), "\n")
	if last := lines[len(lines)-1]; !regexp.MustCompile(`^facade/direct check throughput ratio: \d+\.\d\d$`).MatchString(last) {
		t.Errorf("last line = %q, want the ratio", last)
	}
}

func TestParseFlags(t *testing.T) {
	t.Run("Defaults", func(t *testing.T) {
		c, err := parseFlags(nil, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := joinInts(c.Concurrency), "1,8,32"; got != want {
			t.Errorf("concurrency = %s, want %s", got, want)
		}
		if c.Tenants != 1000 || c.Smoke || len(c.Phases) != 7 {
			t.Errorf("defaults = %+v", c)
		}
	})
	t.Run("SmokeKeepsExplicitFlags", func(t *testing.T) {
		c, err := parseFlags([]string{"-smoke", "-tenants", "50"}, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if !c.Smoke || c.Tenants != 50 || c.Duration >= time.Second {
			t.Errorf("smoke config = %+v", c)
		}
	})
	t.Run("ErrBadConcurrency", func(t *testing.T) {
		if _, err := parseFlags([]string{"-concurrency", "8,x"}, io.Discard); err == nil {
			t.Error("no error for -concurrency 8,x")
		}
	})
	t.Run("ErrUnknownPhase", func(t *testing.T) {
		if _, err := parseFlags([]string{"-phases", "6"}, io.Discard); err == nil {
			t.Error("no error for -phases 6")
		}
	})
}

func TestQuantile(t *testing.T) {
	s := stats{Lat: []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 5}, {0.9, 9}, {0.99, 10}, {1, 10}, {0, 1}} {
		if got := s.Quantile(tc.q); got != tc.want {
			t.Errorf("Quantile(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
}

func TestCheckMixIsHalfAllowed(t *testing.T) {
	keys := mustKeys(t)
	d := newDataset("t", 50, 5, keys)
	mix := d.checkMix(4000, 1)
	allowed := 0
	for _, c := range mix {
		if c.allowed {
			allowed++
		}
	}
	if share := float64(allowed) / float64(len(mix)); share < 0.45 || share > 0.55 {
		t.Errorf("allowed share = %.2f, want about half", share)
	}
	if got, want := d.writes(), 1+2*5+50*34; got != want {
		t.Errorf("writes = %d, want %d", got, want)
	}
}

func mustKeys(tb testing.TB) []authz.Key {
	tb.Helper()
	m, err := schema.Embedded()
	if err != nil {
		tb.Fatal(err)
	}
	keys := make([]authz.Key, len(m.Keys))
	for i, k := range m.Keys {
		keys[i] = k.Key
	}
	return keys
}
