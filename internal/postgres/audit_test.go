package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scailabs/authzd/internal/authz"
	"github.com/scailabs/authzd/internal/pgtest"
	"github.com/scailabs/authzd/internal/postgres"
)

func mustOpen(t testing.TB) *postgres.DB {
	t.Helper()
	url := pgtest.MustCreate(t)
	ctx := context.Background()
	db, err := postgres.Open(ctx, url, 8)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if err := postgres.Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	// A second run finds nothing to do.
	if err := postgres.Migrate(ctx, url); err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	return db
}

func event(module, actor string, at time.Time) authz.Event {
	return authz.Event{OccurredAt: at, Module: module, Action: module + ":x", ActorUserID: actor, TenantID: "t1",
		Permission: module + ":x", Decision: authz.DecisionAllowed, DecisionID: uuid.NewString()}
}

// TestGroupCommit: concurrent records are all committed, each exactly once,
// in fewer COPY batches than records.
func TestGroupCommit(t *testing.T) {
	db := mustOpen(t)
	var mu sync.Mutex
	batches, rows := 0, 0
	log := postgres.NewAuditLog(db, postgres.AuditOptions{Writers: 2, Observe: func(n int, _ time.Duration, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err == nil {
			batches++
			rows += n
		}
	}})
	const workers, each = 32, 50
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				errs <- log.Record(context.Background(), event("scaibunker", fmt.Sprintf("u%d-%d", w, i), time.Now()))
			}
		}()
	}
	wg.Wait()
	log.Close()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("record: %v", err)
		}
	}
	var n, distinct int
	if err := db.Pool.QueryRow(context.Background(), "SELECT count(*), count(DISTINCT actor_user_id) FROM audit_events").Scan(&n, &distinct); err != nil {
		t.Fatal(err)
	}
	if n != workers*each || distinct != workers*each {
		t.Errorf("rows = %d (distinct %d), want %d", n, distinct, workers*each)
	}
	if rows != workers*each || batches >= workers*each {
		t.Errorf("observed %d rows in %d batches; want %d rows in fewer batches", rows, batches, workers*each)
	}
	t.Logf("%d rows in %d group commits", rows, batches)

	if err := log.Record(context.Background(), event("scaibunker", "late", time.Now())); authz.ErrorCode(err) != authz.EUNAVAILABLE {
		t.Errorf("record after close: %v, want unavailable", err)
	}
}

// TestAuditUnreachable: when Postgres cannot commit, Record fails (the caller
// then answers 503) instead of pretending the row is durable.
func TestAuditUnreachable(t *testing.T) {
	pool, err := pgxpool.New(context.Background(), "postgres://postgres@127.0.0.1:1/none?connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	log := postgres.NewAuditLog(&postgres.DB{Pool: pool}, postgres.AuditOptions{Timeout: time.Second})
	defer log.Close()
	err = log.Record(context.Background(), event("scaibunker", "u", time.Now()))
	if authz.ErrorCode(err) != authz.EUNAVAILABLE {
		t.Fatalf("record: %v, want unavailable", err)
	}
}

// TestListEvents: filters and keyset pages return every row once, in order.
func TestListEvents(t *testing.T) {
	db := mustOpen(t)
	log := postgres.NewAuditLog(db, postgres.AuditOptions{})
	base := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	var want []string
	for i := range 30 {
		module := "scaibunker"
		if i%3 == 0 {
			module = "scaiskills"
		}
		e := event(module, "u", base.Add(time.Duration(i)*time.Minute))
		if i%7 == 0 {
			e.OccurredAt = base.Add(time.Duration(i-1) * time.Minute) // equal timestamps must still page correctly
		}
		if err := log.Record(context.Background(), e); err != nil {
			t.Fatal(err)
		}
		if module == "scaibunker" {
			want = append(want, e.DecisionID)
		}
	}
	log.Close()
	var got []string
	f := authz.EventFilter{Module: "scaibunker", Since: base, Limit: 3}
	for {
		page, next, err := db.ListEvents(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			got = append(got, e.DecisionID)
		}
		if next == nil {
			break
		}
		f.After = next
	}
	if len(got) != len(want) {
		t.Fatalf("got %d rows, want %d", len(got), len(want))
	}
	// No limit means the default page, not a panic (it indexed past the page before).
	page, next, err := db.ListEvents(context.Background(), authz.EventFilter{Module: "scaibunker"})
	if err != nil || len(page) != len(want) || next != nil {
		t.Fatalf("Limit 0: %d rows, next %v, err %v; want %d rows and no next page", len(page), next, err, len(want))
	}
	seen := map[string]bool{}
	for _, id := range got {
		if seen[id] {
			t.Errorf("row %s twice", id)
		}
		seen[id] = true
	}
	for _, id := range want {
		if !seen[id] {
			t.Errorf("row %s missing", id)
		}
	}
}

// BenchmarkRecord: what the hash chain costs the group-commit writer alone,
// 32 concurrent callers, chain on and off on the same database.
// go test -run '^$' -bench Record -benchtime 3s ./internal/postgres/
func BenchmarkRecord(b *testing.B) {
	db := mustOpen(b)
	for _, chain := range []bool{true, false} {
		b.Run(map[bool]string{true: "ChainOn", false: "ChainOff"}[chain], func(b *testing.B) {
			var mu sync.Mutex
			batches, rows := 0, 0
			log := postgres.NewAuditLog(db, postgres.AuditOptions{DisableChain: !chain, Observe: func(n int, _ time.Duration, _ error) {
				mu.Lock()
				batches, rows = batches+1, rows+n
				mu.Unlock()
			}})
			defer func() {
				log.Close()
				b.ReportMetric(float64(rows)/float64(max(1, batches)), "rows/batch")
			}()
			b.SetParallelism(16) // 32 callers on 2 cores
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					e := event("scaibunker", "u", time.Now())
					e.Details = map[string]any{"source": "cache"}
					if err := log.Record(context.Background(), e); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
