package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/scailabs/authzd/internal/pgtest"
)

// TestMigrateStatus: `authzd migrate --status` lists pending migrations and
// fails until `authzd migrate` applied them, changes nothing itself, and
// reports a database a newer release migrated further as ahead, not pending.
func TestMigrateStatus(t *testing.T) {
	ctx := context.Background()
	url := pgtest.MustCreate(t)
	t.Setenv("AUTHZ_DATABASE_URL", url)
	status := func() (string, error) {
		var out bytes.Buffer
		err := run(ctx, []string{"migrate", "--status"}, &out, &out)
		return out.String(), err
	}

	out, err := status()
	if err == nil || !strings.Contains(err.Error(), "pending") || !strings.Contains(out, "pending  001_audit_events.sql") {
		t.Fatalf("fresh database: %v\n%s", err, out)
	}
	if out2, _ := status(); !strings.Contains(out2, "database version 0") {
		t.Fatalf("--status changed the database:\n%s", out2)
	}
	var sink bytes.Buffer
	if err := run(ctx, []string{"migrate"}, &sink, &sink); err != nil {
		t.Fatal(err)
	}
	out, err = status()
	if err != nil || strings.Contains(out, "pending") || !strings.Contains(out, "applied  001_audit_events.sql") {
		t.Fatalf("after migrate: %v\n%s", err, out)
	}

	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "UPDATE authzd_schema_version SET version = version + 1"); err != nil {
		t.Fatal(err)
	}
	out, err = status()
	if err != nil || !strings.Contains(out, "ahead") {
		t.Fatalf("database ahead: %v\n%s", err, out)
	}
	if err := run(ctx, []string{"migrate"}, &sink, &sink); err != nil {
		t.Fatalf("migrate on a database ahead: %v", err)
	}
}
