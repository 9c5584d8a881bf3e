package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
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

// TestAuditLinger: once a writer has seen records arrive faster than one per
// linger, it waits for the next ones, so records arriving one after another
// share commits, each still returning only once it is durable; without a
// linger, each is committed as it comes.
func TestAuditLinger(t *testing.T) {
	db := mustOpen(t)
	const records = 10
	for _, linger := range []time.Duration{0, time.Second} {
		var mu sync.Mutex
		var sizes []int
		log := postgres.NewAuditLog(db, postgres.AuditOptions{Linger: linger, Observe: func(n int, _ time.Duration, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				sizes = append(sizes, n)
			}
		}})
		// Records 50 ms apart: far longer than a commit on loopback, far
		// shorter than the linger.
		var wg sync.WaitGroup
		errs := make(chan error, records)
		for i := range records {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- log.Record(context.Background(), event("scaiskills", fmt.Sprintf("linger-%s-%d", linger, i), time.Now()))
			}()
			time.Sleep(50 * time.Millisecond)
		}
		wg.Wait()
		log.Close()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("linger %s: record: %v", linger, err)
			}
		}
		if linger > 0 && (len(sizes) > records/2 || slices.Max(sizes) < 2) {
			t.Errorf("linger %s: batches of %v, want records gathered into a few commits", linger, sizes)
		}
		if linger == 0 && len(sizes) < records/2 {
			t.Errorf("no linger: batches of %v, want records committed as they come", sizes)
		}
		t.Logf("linger %s: batches of %v", linger, sizes)
	}
	var n int
	if err := db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM audit_events WHERE actor_user_id LIKE 'linger-%'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2*records {
		t.Errorf("%d rows committed, want %d", n, 2*records)
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

// BenchmarkRecordLatency: an open loop, as the facade's load is: records
// arrive at a fixed rate, each from its own caller, whatever the writer's
// pace, and the benchmark reports the latency percentiles of Record (queue,
// chain and the commit made durable) with the chain on. The rates bracket
// the facade's half peak on the 1,000-tenant Zipf pool (about 5,000 checks/s).
// go test -run '^$' -bench RecordLatency -benchtime 20000x ./internal/postgres/
func BenchmarkRecordLatency(b *testing.B) {
	db := mustOpen(b)
	for _, rate := range []int{2000, 5000} {
		b.Run(fmt.Sprintf("rate=%d", rate), func(b *testing.B) {
			log := postgres.NewAuditLog(db, postgres.AuditOptions{})
			defer log.Close()
			lat := make([]time.Duration, b.N)
			var wg sync.WaitGroup
			interval := time.Second / time.Duration(rate)
			start := time.Now()
			b.ResetTimer()
			for i := range b.N {
				if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
					time.Sleep(d)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					e := event("scaibunker", "u", time.Now())
					e.Details = map[string]any{"source": "cache"}
					t0 := time.Now()
					if err := log.Record(context.Background(), e); err != nil {
						b.Error(err)
					}
					lat[i] = time.Since(t0)
				}()
			}
			wg.Wait()
			b.StopTimer()
			slices.Sort(lat)
			at := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) / 1000 }
			b.ReportMetric(at(0.50), "p50-ms")
			b.ReportMetric(at(0.99), "p99-ms")
			b.ReportMetric(at(0.999), "p99.9-ms")
			oneTrip, locked := log.Batches()
			b.ReportMetric(float64(b.N)/float64(max(1, oneTrip+locked)), "rows/batch")
		})
	}
}

// TestAuditDurable: when Record returns, the WAL holding the commit of the
// record's row is flushed, so the decision waiting on it is never given for a
// row a crash could lose. The row's commit record (read from the WAL with
// pg_walinspect) must end at or before the server's flush position at the
// moment Record returns. This guards against any writer that commits without
// the flush: synchronous_commit off on its transactions, or the early lock
// release measured and rejected (decision record 0003: commit asynchronously, then flush)
// with its flush left out. Another session's flush can only move the flush
// position on, so the test cannot fail spuriously; a writer that skips the
// flush fails it unless something else flushed within each round's few
// hundred microseconds (checked: it failed with synchronous_commit off).
func TestAuditDurable(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	if _, err := db.Pool.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_walinspect"); err != nil {
		t.Skipf("SKIPPING: pg_walinspect (PostgreSQL 15 contrib) is not available: %v", err)
	}
	log := postgres.NewAuditLog(db, postgres.AuditOptions{})
	defer log.Close()
	for round := range 20 {
		var from string
		if err := db.Pool.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&from); err != nil {
			t.Fatal(err)
		}
		e := event("scaibunker", fmt.Sprintf("u%d", round), time.Now())
		if err := log.Record(ctx, e); err != nil {
			t.Fatal(err)
		}
		// pg_walinspect reads flushed WAL only: the commit is durable when
		// its record lies between where the round started and the flush position.
		var flushed string
		var commits int
		err := db.Pool.QueryRow(ctx, `WITH f AS (SELECT pg_current_wal_flush_lsn() AS lsn)
			SELECT f.lsn::text, (SELECT count(*) FROM audit_events a, pg_get_wal_records_info($1::pg_lsn, f.lsn) w
				WHERE f.lsn > $1::pg_lsn AND a.decision_id = $2::uuid AND w.xid = a.xmin
				AND w.resource_manager = 'Transaction' AND w.record_type = 'COMMIT')
			FROM f`, from, e.DecisionID).Scan(&flushed, &commits)
		if err != nil {
			t.Fatalf("round %d: the commit record of the row: %v", round, err)
		}
		if commits != 1 {
			t.Fatalf("round %d: Record returned with the WAL flushed to %s (the round began at %s), holding %d commit records of the row's transaction, want 1: not durable", round, flushed, from, commits)
		}
	}
}

// TestOpenKeepsCommitsDurable: whatever turned synchronous_commit off for the
// audit database (here the database's default, then the URL), every
// connection authzd opens commits with it on, and Open says so; a mode that
// still flushes locally (remote_write) is left as configured, silently.
func TestOpenKeepsCommitsDurable(t *testing.T) {
	ctx := context.Background()
	url := pgtest.MustCreate(t)
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	setDefault := func(mode string) {
		t.Helper()
		if _, err := admin.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{cfg.Database}.Sanitize()+" SET synchronous_commit = "+mode); err != nil {
			t.Fatal(err)
		}
	}
	// modes opens the audit database at u and reports synchronous_commit as
	// seen by four connections held at once (so four different ones).
	modes := func(u string) ([]string, []string) {
		t.Helper()
		db, err := postgres.Open(ctx, u, 4)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var got []string
		var conns []*pgxpool.Conn
		for range 4 {
			c, err := db.Pool.Acquire(ctx)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
			var m string
			if err := c.QueryRow(ctx, "SHOW synchronous_commit").Scan(&m); err != nil {
				t.Fatal(err)
			}
			got = append(got, m)
		}
		for _, c := range conns {
			c.Release()
		}
		return got, db.Notices
	}
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	for _, tc := range []struct {
		name, dbDefault, url, want string
		notice                     bool
	}{
		{"database default off", "off", url, "on", true},
		{"off in the URL", "on", url + sep + "synchronous_commit=off", "on", true},
		{"remote_write kept", "remote_write", url, "remote_write", false},
		{"on kept", "on", url, "on", false},
	} {
		setDefault(tc.dbDefault)
		got, notices := modes(tc.url)
		for i, m := range got {
			if m != tc.want {
				t.Errorf("%s: connection %d has synchronous_commit = %s, want %s", tc.name, i, m, tc.want)
			}
		}
		if noticed := slices.ContainsFunc(notices, func(n string) bool { return strings.Contains(n, "synchronous_commit") }); noticed != tc.notice {
			t.Errorf("%s: notices %q, want one about synchronous_commit: %v", tc.name, notices, tc.notice)
		}
	}
}
