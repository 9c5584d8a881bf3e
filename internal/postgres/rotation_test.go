package postgres_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/scailabs/authzd/internal/auditchain"
	"github.com/scailabs/authzd/internal/postgres"
)

// TestRetiredKeySignsNothing: after a rotation, the old key's checkpointer
// signs no more checkpoints and its maintainer drops no partition (dropping
// signs an anchor); rotating the old key again is refused.
func TestRetiredKeySignsNothing(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	now := time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC)
	if err := db.EnsurePartitions(ctx, now.AddDate(0, -4, 0), now); err != nil {
		t.Fatal(err)
	}
	log := postgres.NewAuditLog(db, postgres.AuditOptions{})
	for _, at := range []time.Time{time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC), now} {
		if err := log.Record(ctx, event("scaibunker", "u", at)); err != nil {
			t.Fatal(err)
		}
	}
	old, next := mustGenerate(t), mustGenerate(t)
	cp, err := postgres.NewCheckpointer(ctx, db, old, logger)
	if err != nil {
		t.Fatal(err)
	}
	if _, signed, err := cp.Checkpoint(ctx); err != nil || !signed {
		t.Fatalf("checkpoint before the rotation: signed %v, %v", signed, err)
	}
	rot, err := db.RotateKey(ctx, old, next)
	if err != nil {
		t.Fatal(err)
	}
	if err := log.Record(ctx, event("scaibunker", "u", now)); err != nil {
		t.Fatal(err)
	}
	log.Close()
	if _, signed, err := cp.Checkpoint(ctx); err != nil || signed || !cp.Retired() {
		t.Fatalf("checkpoint after the rotation: signed %v, retired %v, %v; want nothing signed", signed, cp.Retired(), err)
	}
	var after int
	if err := db.Pool.QueryRow(ctx, "SELECT count(*) FROM audit_checkpoints WHERE key_id = $1 AND seq > $2", old.KeyID(), rot.Seq).Scan(&after); err != nil || after != 0 {
		t.Fatalf("%d checkpoints of the old key after the rotation (%v)", after, err)
	}
	got, err := postgres.NewMaintainer(db, old, 60*24*time.Hour, logger).Maintain(ctx, now)
	if err != nil || len(got.Dropped) != 0 {
		t.Fatalf("retention with the retired key: dropped %v, %v; want nothing", got.Dropped, err)
	}
	if got, err := postgres.NewMaintainer(db, next, 60*24*time.Hour, logger).Maintain(ctx, now); err != nil || len(got.Dropped) == 0 {
		t.Fatalf("retention with the new key: dropped %v, %v; want the old partitions", got.Dropped, err)
	}
	if _, err := db.RotateKey(ctx, old, mustGenerate(t)); !errors.Is(err, postgres.ErrKeyRetired) {
		t.Fatalf("rotating the retired key: %v; want ErrKeyRetired", err)
	}
}

func mustGenerate(t *testing.T) *auditchain.Signer {
	t.Helper()
	s, err := auditchain.GenerateSigner()
	if err != nil {
		t.Fatal(err)
	}
	return s
}
