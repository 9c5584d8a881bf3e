package integration

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"
)

// Environment variables the suite reads. docs/integration.md describes them.
const (
	envDatabaseURL     = "AUTHZ_TEST_DATABASE_URL"         // Postgres for the local world
	envRequire         = "AUTHZ_REQUIRE_INTEGRATION"       // "1": no world is a failure, not a skip
	envDocker          = "AUTHZ_TEST_DOCKER"               // "0": never use Docker even when it answers; "1": only Docker
	envDuration        = "AUTHZ_TEST_CONCURRENCY_DURATION" // length of the concurrency run
	envSpiceDBBin      = "AUTHZ_TEST_SPICEDB_BIN"          // a prebuilt spicedb binary for the local world
	envLogLevel        = "AUTHZ_TEST_LOG_LEVEL"            // authzd's log level in tests (default warn)
	envDatastore       = "AUTHZ_TEST_SPICEDB_DATASTORE"    // local world: the embedded datastore, postgres (default) or memory
	envDecisionCache   = "AUTHZ_TEST_DECISION_CACHE"       // on or off for the in-process authzd (default: the app's default)
	defaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/postgres"
)

var concurrencyDuration = flag.Duration("authzd.duration", envDurationOr(envDuration, 10*time.Second),
	"how long the concurrency scenario runs (env "+envDuration+")")

// suite is what TestMain found once for all tests: the world and a scratch directory for binaries.
// It is written before m.Run and only read afterwards.
var suite struct {
	world      *world
	skipReason string
	binDir     string
}

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	ctx := context.Background()

	dir, err := os.MkdirTemp("", "authzd-integration-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	suite.binDir = dir

	switch {
	case testing.Short():
		fmt.Println("integration: -short: scenarios that need a world are skipped")
	default:
		suite.world, suite.skipReason = detectWorld(ctx)
		if suite.world == nil {
			fmt.Printf("integration: NO WORLD, tests that need one will %s: %s\n", skipVerb(), suite.skipReason)
			break
		}
		defer suite.world.close(ctx)
		closeOnSignal(suite.world)
		fmt.Printf("integration: world: %s\n", suite.world)
	}
	return m.Run()
}

// closeOnSignal removes the world's containers when the run is interrupted (go test passes on ^C),
// since deferred calls do not run then. A run killed harder leaves them to the next run's sweep.
func closeOnSignal(w *world) {
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-sigc
		fmt.Fprintf(os.Stderr, "integration: %v: removing this run's containers\n", sig)
		w.close(context.Background())
		os.Exit(1)
	}()
}

func skipVerb() string {
	if os.Getenv(envRequire) == "1" {
		return "FAIL (" + envRequire + "=1)"
	}
	return "SKIP"
}

// mustWorld returns the suite's world, or skips the test (fails it under AUTHZ_REQUIRE_INTEGRATION=1).
func mustWorld(tb testing.TB) *world {
	tb.Helper()
	if testing.Short() {
		tb.Skip("-short: the integration suite needs Postgres and SpiceDB")
	}
	if suite.world == nil {
		if os.Getenv(envRequire) == "1" {
			tb.Fatalf("integration world unavailable and %s=1: %s", envRequire, suite.skipReason)
		}
		tb.Skipf("SKIPPING integration test, no world: %s (set %s=1 to make this a failure)", suite.skipReason, envRequire)
	}
	tb.Logf("world: %s", suite.world)
	return suite.world
}

func envDurationOr(name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: %s=%q is not a duration, using %s\n", name, v, def)
		return def
	}
	return d
}
