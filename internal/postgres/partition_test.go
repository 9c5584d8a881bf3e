package postgres_test

import (
	"context"
	"crypto/ed25519"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/scailabs/authzd/internal/auditchain"
	"github.com/scailabs/authzd/internal/postgres"
)

// TestRetention: partitions older than the retention are dropped whole, the
// anchor moves to their last row, and the rest of the chain verifies from it.
// Its rows are recorded one by one at the times written below (not through
// mustChain's concurrent writers), since each time decides a partition.
func TestRetention(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	now := time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC)
	if err := db.EnsurePartitions(ctx, now.AddDate(0, -4, 0), now); err != nil {
		t.Fatal(err)
	}
	log := postgres.NewAuditLog(db, postgres.AuditOptions{})
	for _, at := range []time.Time{
		time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 31, 23, 59, 59, 0, time.UTC), // seq 1, 2: dropped
		time.Date(2026, 4, 10, 0, 0, 0, 0, time.UTC), // seq 3: kept (its month ends after the cutoff)
		now, // seq 4
	} {
		if err := log.Record(ctx, event("scaibunker", "u", at)); err != nil {
			t.Fatal(err)
		}
	}
	log.Close()
	signer := mustSignHead(t, db)
	trusted := map[string]ed25519.PublicKey{signer.KeyID(): signer.Public()}

	m := postgres.NewMaintainer(db, signer, 60*24*time.Hour, logger) // cutoff 2026-04-16
	got, err := m.Maintain(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Dropped, []string{"audit_events_p202602", "audit_events_p202603"}) || got.Anchor.Seq != 2 {
		t.Errorf("maintain: dropped %v, anchor %d; want p202602 and p202603 dropped, anchor 2", got.Dropped, got.Anchor.Seq)
	}
	var rows int
	if err := db.Pool.QueryRow(ctx, "SELECT count(*) FROM audit_events").Scan(&rows); err != nil || rows != 2 {
		t.Errorf("%d rows left (err %v), want 2", rows, err)
	}
	r, p, err := auditchain.Walk(ctx, db, time.Time{}, trusted)
	if err != nil || p != nil {
		t.Fatalf("verify after retention: %v %v", p, err)
	}
	if r.Start.Seq != 2 || r.Rows != 2 || r.Checkpoints != 1 {
		t.Errorf("report %+v, want start 2, 2 rows, the checkpoint verified", r)
	}
	// Partitions exist ahead of now; a second run finds nothing to drop.
	for _, name := range []string{"audit_events_p202606", "audit_events_p202607", "audit_events_p202608"} {
		var ok bool
		if err := db.Pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", name).Scan(&ok); err != nil || !ok {
			t.Errorf("partition %s missing after maintenance", name)
		}
	}
	if again, err := m.Maintain(ctx, now); err != nil || len(again.Dropped) != 0 {
		t.Errorf("second run: dropped %v, err %v", again.Dropped, err)
	}

	// A forged anchor (moved past rows to hide them) fails its signature.
	t.Run("ForgedAnchor", func(t *testing.T) {
		c := &chained{db: db, signer: signer}
		c.tamper(t, "UPDATE audit_chain_anchors SET seq = 3, hash = (SELECT hash FROM audit_events WHERE seq = 3) WHERE seq = 2")
		if _, p, err := auditchain.Walk(ctx, db, time.Time{}, trusted); err != nil || p == nil || p.Kind != auditchain.Signature {
			t.Errorf("verify with a forged anchor: %v %v, want a signature problem", p, err)
		}
	})
}

// TestMaintenanceLock: while another session holds the maintenance lock, a run does nothing.
// It opens like TestChainFailsClosed (another session holds a lock, then the
// code under test runs), but the locks and what each checks differ; both stay
// written out so that each reads as its own scenario.
func TestMaintenanceLock(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(0x617564_6974_7032)); err != nil {
		t.Fatal(err)
	}
	signer, _ := auditchain.GenerateSigner()
	m := postgres.NewMaintainer(db, signer, 0, slog.New(slog.NewTextHandler(io.Discard, nil)))
	far := time.Now().AddDate(2, 0, 0)
	got, err := m.Maintain(ctx, far)
	if err != nil || !got.Skipped {
		t.Fatalf("maintain under another's lock: %+v, %v; want skipped", got, err)
	}
	var ok bool
	if err := db.Pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", "audit_events_p"+far.UTC().Format("200601")).Scan(&ok); err != nil || ok {
		t.Errorf("a skipped run created a partition")
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", int64(0x617564_6974_7032)); err != nil {
		t.Fatal(err)
	}
	if got, err := m.Maintain(ctx, far); err != nil || got.Skipped {
		t.Fatalf("maintain after unlock: %+v, %v", got, err)
	}
}

// TestMissingPartition: a row whose month has no partition is still
// written: the writer creates the partition and retries. Concurrent writers
// racing to create it all succeed.
func TestMissingPartition(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	far := time.Now().AddDate(3, 0, 0)
	log := postgres.NewAuditLog(db, postgres.AuditOptions{Writers: 4, MaxBatch: 1})
	errs := make(chan error, 8)
	for range 8 {
		go func() { errs <- log.Record(ctx, event("scaibunker", "u", far)) }()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Errorf("record without a partition: %v", err)
		}
	}
	log.Close()
	var n int
	if err := db.Pool.QueryRow(ctx, "SELECT count(*) FROM audit_events_p"+far.UTC().Format("200601")).Scan(&n); err != nil || n != 8 {
		t.Fatalf("%d rows in the month's partition (err %v), want 8", n, err)
	}
}
