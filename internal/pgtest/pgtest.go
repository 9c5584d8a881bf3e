// Package pgtest gives each test a fresh Postgres database on the server
// named by AUTHZ_TEST_DATABASE_URL (default: the local server), and drops it
// when the test ends. It never stops or reconfigures the shared server.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultURL is used when AUTHZ_TEST_DATABASE_URL is unset.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// ServerURL is the maintenance database URL of the test server.
func ServerURL() string {
	if u := os.Getenv("AUTHZ_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// Available reports whether the test server answers.
func Available(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, ServerURL())
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// Require skips the test when no Postgres answers, or fails it when
// AUTHZ_REQUIRE_INTEGRATION=1 (as CI sets).
func Require(tb testing.TB) {
	tb.Helper()
	if err := Available(context.Background()); err != nil {
		if os.Getenv("AUTHZ_REQUIRE_INTEGRATION") == "1" {
			tb.Fatalf("no Postgres at %s and AUTHZ_REQUIRE_INTEGRATION=1: %v", redact(ServerURL()), err)
		}
		tb.Skipf("SKIPPING: no Postgres at %s (%v); set AUTHZ_TEST_DATABASE_URL", redact(ServerURL()), err)
	}
}

// MustCreate creates a fresh database and returns its URL; it is dropped
// when the test ends.
func MustCreate(tb testing.TB) string {
	tb.Helper()
	Require(tb)
	ctx := context.Background()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "authzd_test_" + hex.EncodeToString(b)
	conn, err := pgx.Connect(ctx, ServerURL())
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		tb.Fatalf("create database %s: %v", name, err)
	}
	tb.Cleanup(func() { Drop(tb, name) })
	u, err := url.Parse(ServerURL())
	if err != nil {
		tb.Fatalf("parse %s: %v", redact(ServerURL()), err)
	}
	u.Path = "/" + name
	return u.String()
}

// Drop drops the database name, disconnecting its sessions.
func Drop(tb testing.TB, name string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, ServerURL())
	if err != nil {
		tb.Logf("drop %s: %v", name, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		tb.Logf("drop %s: %v", name, err)
	}
}

func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparseable url)"
	}
	return u.Redacted()
}

// MustTamper edits the audit log of the database at url as someone with
// direct access to Postgres could, for the tests that check verification
// catches it: it reads the id of the audit_events row that pick (a WHERE
// condition) selects, then runs edit in one transaction with triggers off
// (session_replication_role = replica, which passes audit_refuse_change). It
// returns that id, which the verifier is expected to name.
func MustTamper(tb testing.TB, url, pick, edit string) int64 {
	tb.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(ctx)
	var id int64
	if err := conn.QueryRow(ctx, "SELECT id FROM audit_events WHERE "+pick).Scan(&id); err != nil {
		tb.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "BEGIN; SET LOCAL session_replication_role = replica; "+edit+"; COMMIT"); err != nil {
		tb.Fatal(err)
	}
	return id
}
