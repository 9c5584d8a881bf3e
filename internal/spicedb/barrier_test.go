package spicedb

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

	"github.com/scailabs/authzd/internal/pgtest"
)

// A barrier sent after a write has returned includes that write, also while
// many fully consistent reads are in flight: the case where a fully consistent
// read does not (SpiceDB's singleflight proxy hands it a head taken by a query
// that started before the write committed). Each writer writes, then reads its
// write once at a barrier (asserted) and once fully consistent (counted, as
// the control that shows the load exposes the difference).
func TestBarrierIncludesEarlierWrites(t *testing.T) {
	model := mustManifests(t)
	g, err := Open(context.Background(), Config{Schema: model.Schema(), Timeout: 10 * time.Second,
		Embedded: EmbeddedConfig{Datastore: "postgres", DatabaseURL: pgtest.MustCreate(t)}},
		slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = g.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
	defer cancel()
	viewer := func(tenant, u string, cons *v1.Consistency) (bool, error) {
		r, err := g.perms.CheckPermission(ctx, &v1.CheckPermissionRequest{Consistency: cons, Resource: object(typeTenant, tenant),
			Permission: "tenant_viewer", Subject: &v1.SubjectReference{Object: object("user", u)}})
		return r.GetPermissionship() == v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION, err
	}
	var wg sync.WaitGroup
	for range 16 { // fully consistent reads in flight all the time
		wg.Go(func() {
			for ctx.Err() == nil {
				_, _ = viewer("elsewhere", "nobody", head())
			}
		})
	}
	var writes, barrierMissed, headMissed atomic.Int64
	for w := range 4 {
		wg.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				u := fmt.Sprintf("w%d-%d", w, n)
				rel := &v1.Relationship{Resource: object(typeTenant, "t"), Relation: "tenant_viewer", Subject: &v1.SubjectReference{Object: object("user", u)}}
				if _, err := g.perms.WriteRelationships(ctx, &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{
					{Operation: v1.RelationshipUpdate_OPERATION_TOUCH, Relationship: rel}}}); err != nil {
					continue // the run ended
				}
				if seen, err := viewer("t", u, head()); err == nil && !seen {
					headMissed.Add(1)
				}
				at, err := g.Barrier(ctx)
				if err != nil {
					continue
				}
				seen, err := viewer("t", u, consistency(at))
				if err != nil {
					continue
				}
				writes.Add(1)
				if !seen {
					barrierMissed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d writes read back: %d missed at a barrier, %d missed by a fully consistent read sent after the write returned",
		writes.Load(), barrierMissed.Load(), headMissed.Load())
	if writes.Load() == 0 {
		t.Fatal("no write was read back")
	}
	if barrierMissed.Load() > 0 {
		t.Errorf("%d of %d reads at a barrier sent after a write did not see the write", barrierMissed.Load(), writes.Load())
	}
}
