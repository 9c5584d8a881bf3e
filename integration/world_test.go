package integration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// world is where the suite runs: a Postgres this process can create databases in and, in the
// Docker world, the containers that give each test its own SpiceDB.
type world struct {
	kind     string // worldDocker or worldLocal
	adminURL string // Postgres URL allowed to CREATE DATABASE, as this process reaches it
	docker   *dockerWorld
}

const (
	worldDocker = "docker"
	worldLocal  = "local"
)

func (w *world) String() string {
	switch w.kind {
	case worldDocker:
		return w.docker.String()
	default:
		return fmt.Sprintf("local (no Docker engine; Postgres %s; SpiceDB embedded in authzd, or a locally built spicedb binary for external mode)", redactURL(w.adminURL))
	}
}

// detectWorld prefers Docker when an engine answers a ping, then the Postgres named by
// AUTHZ_TEST_DATABASE_URL or the default local one. It returns nil and the reason when neither works.
// With AUTHZ_TEST_DOCKER=1 only the Docker world will do.
func detectWorld(ctx context.Context) (*world, string) {
	var reasons []string
	configureTestcontainers()
	requireDocker := os.Getenv(envDocker) == "1"
	if os.Getenv(envDocker) == "0" {
		reasons = append(reasons, envDocker+"=0")
	} else if err := pingDocker(ctx, 3*time.Second); err != nil {
		if requireDocker {
			return nil, fmt.Sprintf("no Docker engine (%v) and %s=1", err, envDocker)
		}
		reasons = append(reasons, fmt.Sprintf("no Docker engine (%v)", err))
	} else {
		w, err := startDockerWorld(ctx)
		if err == nil {
			return w, ""
		}
		if requireDocker {
			return nil, fmt.Sprintf("the Docker world failed to start (%v) and %s=1", err, envDocker)
		}
		// An engine that cannot start the containers (no network to pull, say) should not hide
		// a usable local Postgres; say loudly why Docker was not used.
		fmt.Fprintf(os.Stderr, "integration: Docker answered but the container world failed to start: %v\n", err)
		reasons = append(reasons, fmt.Sprintf("Docker world failed: %v", err))
	}

	dbURL := os.Getenv(envDatabaseURL)
	source := envDatabaseURL
	if dbURL == "" {
		dbURL, source = defaultDatabaseURL, "default"
	}
	if err := pingPostgres(ctx, dbURL, 3*time.Second); err != nil {
		reasons = append(reasons, fmt.Sprintf("no Postgres at %s (%s): %v", redactURL(dbURL), source, err))
		return nil, strings.Join(reasons, "; ")
	}
	return &world{kind: worldLocal, adminURL: dbURL}, ""
}

func (w *world) close(ctx context.Context) {
	if w.docker != nil {
		w.docker.close(ctx)
	}
}

func pingPostgres(ctx context.Context, dbURL string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return conn.Ping(ctx)
}

// newDatabase creates an empty database for t and drops it (WITH (FORCE)) when t ends.
// purpose ends up in the name so a leftover database says what it was for.
func (w *world) newDatabase(tb testing.TB, purpose string) (dbURL, name string) {
	tb.Helper()
	name = databaseName(tb.Name(), purpose)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, w.adminURL)
	if err != nil {
		tb.Fatalf("connect to %s: %v", redactURL(w.adminURL), err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		tb.Fatalf("create database %s: %v", name, err)
	}
	tb.Cleanup(func() { w.dropDatabase(tb, name) })
	return withDatabase(w.adminURL, name), name
}

func (w *world) dropDatabase(tb testing.TB, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, w.adminURL)
	if err != nil {
		tb.Errorf("drop database %s: %v", name, err)
		return
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		tb.Errorf("drop database %s: %v", name, err)
	}
}

var nonName = regexp.MustCompile(`[^a-z0-9]+`)

// databaseName is unique and readable: it_<test>_<purpose>_<random>, within Postgres's 63 bytes.
func databaseName(testName, purpose string) string {
	base := strings.Trim(nonName.ReplaceAllString(strings.ToLower(testName), "_"), "_")
	if len(base) > 30 {
		base = base[:30]
	}
	return fmt.Sprintf("it_%s_%s_%s", base, purpose, randomHex(4))
}

// withDatabase returns dbURL with its database name replaced.
func withDatabase(dbURL, name string) string {
	u, err := url.Parse(dbURL)
	if err != nil {
		panic(fmt.Sprintf("database url %q: %v", redactURL(dbURL), err))
	}
	u.Path = "/" + name
	return u.String()
}

// withHost returns dbURL pointed at another host:port, e.g. a proxy.
func withHost(dbURL, hostport string) string {
	u, err := url.Parse(dbURL)
	if err != nil {
		panic(fmt.Sprintf("database url %q: %v", redactURL(dbURL), err))
	}
	u.Host = hostport
	return u.String()
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "<unparseable url>"
	}
	return u.Redacted()
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
