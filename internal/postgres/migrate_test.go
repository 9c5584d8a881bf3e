package postgres_test

import (
	"context"
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"

	"github.com/scailabs/authzd/internal/auditchain"
	"github.com/scailabs/authzd/internal/pgtest"
	"github.com/scailabs/authzd/internal/postgres"
	"github.com/scailabs/authzd/migrations"
)

// TestMigrateLegacyRows: rows written before the chain survive migration 006
// with their ids and details, stay unchained, and the chain starts after
// them; a row without a sequence added later is reported as inserted.
func TestMigrateLegacyRows(t *testing.T) {
	ctx := context.Background()
	url := pgtest.MustCreate(t)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	m, err := migrate.NewMigrator(ctx, conn, "authzd_schema_version")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.LoadMigrations(migrations.FS); err != nil {
		t.Fatal(err)
	}
	if err := m.MigrateTo(ctx, 5); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO audit_events (occurred_at, module, action, decision, decision_id, details) VALUES
		(now() - interval '70 days', 'scaibunker', 'x', 'allowed', gen_random_uuid(), '{"b": 1, "a": 2}'),
		(now(), 'authzd', 'role.put', 'allowed', gen_random_uuid(), NULL)`); err != nil {
		t.Fatal(err)
	}
	if err := postgres.Migrate(ctx, url); err != nil {
		t.Fatalf("migrate past 005 with rows: %v", err)
	}
	db, err := postgres.Open(ctx, url, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	var n, unchained int
	var details string
	if err := db.Pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE seq IS NULL), max(details::text) FROM audit_events WHERE id <= 2`).
		Scan(&n, &unchained, &details); err != nil {
		t.Fatal(err)
	}
	if n != 2 || unchained != 2 || details != `{"a": 2, "b": 1}` {
		t.Errorf("legacy rows: %d, %d unchained, details %s; want 2 unchained rows with their details", n, unchained, details)
	}
	log := postgres.NewAuditLog(db, postgres.AuditOptions{})
	if err := log.Record(ctx, event("scaibunker", "u", time.Now())); err != nil {
		t.Fatal(err)
	}
	log.Close()
	var id, seq int64
	if err := db.Pool.QueryRow(ctx, "SELECT id, seq FROM audit_events WHERE seq IS NOT NULL").Scan(&id, &seq); err != nil || id != 3 || seq != 1 {
		t.Errorf("first chained row: id %d seq %d (err %v), want id 3 (after the legacy ids) and seq 1", id, seq, err)
	}
	trusted := map[string]ed25519.PublicKey{}
	if r, p, err := auditchain.Walk(ctx, db, time.Time{}, trusted); err != nil || p != nil || r.Rows != 1 {
		t.Fatalf("verify after migration: %+v %v %v", r, p, err)
	}
	if _, err := db.Pool.Exec(ctx, `INSERT INTO audit_events (occurred_at, module, action, decision, decision_id)
		VALUES (now(), 'scaibunker', 'x', 'allowed', gen_random_uuid())`); err != nil {
		t.Fatal(err)
	}
	if _, p, err := auditchain.Walk(ctx, db, time.Time{}, trusted); err != nil || p == nil || p.Kind != auditchain.Inserted || p.RowID != 4 {
		t.Errorf("an unchained row after the migration: %v %v; want inserted naming row 4", p, err)
	}

	// Down again: every row back in one unpartitioned table.
	db.Close()
	if err := m.MigrateTo(ctx, 5); err != nil {
		t.Fatalf("migrate down to 005: %v", err)
	}
	var kind string
	if err := conn.QueryRow(ctx, "SELECT count(*), (SELECT relkind::text FROM pg_class WHERE relname = 'audit_events') FROM audit_events").Scan(&n, &kind); err != nil || n != 4 || kind != "r" {
		t.Errorf("after down: %d rows in a table of kind %q (err %v), want 4 in an ordinary table", n, kind, err)
	}
}
