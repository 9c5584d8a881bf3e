package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/scailabs/authzd/internal/postgres"
)

// BenchmarkRecordOverFloor sets the audit writer beside the floor of one
// durable commit on the same Postgres, interleaved so that both see the same
// disk: each round commits a one-row INSERT through pgx on a connection of
// its own, then records callers decisions at once, each through Record. It
// reports both medians and Record's as a multiple of the floor's.
// go test -run '^$' -bench RecordOverFloor -benchtime 2000x ./internal/postgres/
func BenchmarkRecordOverFloor(b *testing.B) {
	ctx := context.Background()
	db := mustOpen(b)
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "CREATE TABLE commit_floor (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, at timestamptz NOT NULL, note text NOT NULL)"); err != nil {
		b.Fatal(err)
	}
	for _, callers := range []int{1, 8} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			log := postgres.NewAuditLog(db, postgres.AuditOptions{})
			defer log.Close()
			floor, rec := make([]time.Duration, 0, b.N), make([]time.Duration, 0, b.N*callers)
			var mu sync.Mutex
			for i := range b.N {
				t0 := time.Now()
				if _, err := conn.Exec(ctx, "INSERT INTO commit_floor (at, note) VALUES ($1, $2)", t0, "floor"); err != nil {
					b.Fatal(err)
				}
				floor = append(floor, time.Since(t0))
				var wg sync.WaitGroup
				for c := range callers {
					wg.Go(func() {
						e := event("scaibunker", fmt.Sprintf("u%d-%d", i, c), time.Now())
						e.Details = map[string]any{"source": "cache"}
						t0 := time.Now()
						if err := log.Record(ctx, e); err != nil {
							b.Error(err)
						}
						d := time.Since(t0)
						mu.Lock()
						rec = append(rec, d)
						mu.Unlock()
					})
				}
				wg.Wait()
			}
			slices.Sort(floor)
			slices.Sort(rec)
			f50, r50 := floor[len(floor)/2], rec[len(rec)/2]
			b.ReportMetric(float64(f50.Microseconds())/1000, "floor-p50-ms")
			b.ReportMetric(float64(r50.Microseconds())/1000, "record-p50-ms")
			b.ReportMetric(float64(rec[len(rec)*99/100].Microseconds())/1000, "record-p99-ms")
			b.ReportMetric(float64(r50)/float64(f50), "record/floor")
		})
	}
}
