package spicedb

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/scailabs/authzd/internal/authz"
)

// TestWriteBatchTooLarge: a batch over the SpiceDB's per-call limit answers
// too_large (so that the import splits it), and one within it lands.
func TestWriteBatchTooLarge(t *testing.T) {
	g, err := Open(context.Background(), Config{Schema: mustManifests(t).Schema(), Timeout: 5 * time.Second,
		Embedded: EmbeddedConfig{Datastore: "memory", MaxUpdatesPerWrite: 100}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	updates := func(n int) []authz.Update {
		out := make([]authz.Update, n)
		for i := range out {
			out[i] = authz.Update{Relationship: platformRel(typePartner, fmt.Sprintf("p%d", i))}
		}
		return out
	}
	ctx := authz.WithWriteID(context.Background(), "import-test")
	if _, err := g.WriteBatch(ctx, updates(101), nil); authz.ErrorCode(err) != authz.ETOOLARGE {
		t.Fatalf("101 updates: %v, want too_large", err)
	}
	if _, err := g.WriteBatch(ctx, updates(100), nil); err != nil {
		t.Fatalf("100 updates: %v", err)
	}
	// A parent that does not exist fails the batch as a conflict, writing nothing.
	if _, err := g.WriteBatch(ctx, []authz.Update{{Relationship: relTo(typePartner, "p0", relAdmin, user("alice"))}},
		[]authz.Parent{{Kind: authz.KindPartner, ID: "gone"}}); authz.ErrorCode(err) != authz.ECONFLICT {
		t.Fatalf("missing parent: %v, want conflict", err)
	}
	w, err := g.ReadWorld(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	recs, unexpressed := w.Records()
	if len(recs) != 100 || unexpressed != 0 || !w.HasPartner("p99") || w.HasPartner("p100") {
		t.Fatalf("world after the writes: %d records, %d unexpressed", len(recs), unexpressed)
	}
}
