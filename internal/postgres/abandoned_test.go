package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/scailabs/authzd/internal/authz"
	"github.com/scailabs/authzd/internal/postgres"
)

// TestAuditDropsAbandonedRecords: while another transaction holds the chain
// head's lock (the audit database stops committing), callers give up; once
// the lock is released, the records of callers who gave up before their
// record was put into a batch are never written, the writer carries on and
// the chain verifies. Records already sent when their callers gave up may
// commit: that is the residual window, logged here, not asserted.
func TestAuditDropsAbandonedRecords(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	const wait = 400 * time.Millisecond // how long each blocked caller waits

	// holdHead takes the head's lock on its own connection until release.
	holdHead := func() (release func()) {
		t.Helper()
		tx, err := db.Pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "SELECT FROM audit_chain_head FOR UPDATE"); err != nil {
			t.Fatal(err)
		}
		return func() {
			if err := tx.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	// giveUp records an event per caller, each bounded by wait, and returns their events once all have returned.
	giveUp := func(log *postgres.AuditLog, name string, callers int) []authz.Event {
		t.Helper()
		events := make([]authz.Event, callers)
		errs := make([]error, callers)
		var wg sync.WaitGroup
		for i := range events {
			events[i] = event("scaibunker", fmt.Sprintf("%s-%d", name, i), time.Now())
			wg.Go(func() {
				c, cancel := context.WithTimeout(ctx, wait)
				defer cancel()
				errs[i] = log.Record(c, events[i])
			})
		}
		wg.Wait()
		for i, err := range errs {
			if authz.ErrorCode(err) != authz.EUNAVAILABLE {
				t.Fatalf("%s-%d: Record with the head locked returned %v, want unavailable", name, i, err)
			}
		}
		return events
	}
	rowsOf := func(events []authz.Event) int {
		t.Helper()
		ids := make([]string, len(events))
		for i, e := range events {
			ids[i] = e.DecisionID
		}
		var n int
		if err := db.Pool.QueryRow(ctx, "SELECT count(*) FROM audit_events WHERE decision_id::text = ANY($1)", ids).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	record := func(log *postgres.AuditLog, name string) {
		t.Helper()
		if err := log.Record(ctx, event("scaibunker", name, time.Now())); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}

	t.Run("Pipelined", func(t *testing.T) {
		// A writer that knows the head pipelines two batches; the records gathered behind them wait.
		log := postgres.NewAuditLog(db, postgres.AuditOptions{Timeout: 30 * time.Second})
		defer log.Close()
		record(log, "before")
		release := holdHead()
		var sent []authz.Event
		for i := range 2 {
			done := make(chan []authz.Event)
			go func() { done <- giveUp(log, fmt.Sprintf("sent%d", i), 1) }()
			for postgres.InFlight(log) < int64(i+1) {
				time.Sleep(5 * time.Millisecond)
			}
			sent = append(sent, <-done...)
		}
		queued := giveUp(log, "queued", 8)
		release()
		record(log, "after")
		if n := rowsOf(queued); n != 0 {
			t.Errorf("%d rows of the %d records whose callers gave up before they were batched, want 0", n, len(queued))
		}
		t.Logf("records sent before their callers gave up: %d of %d committed (the residual window)", rowsOf(sent), len(sent))
	})
	t.Run("UnderTheLock", func(t *testing.T) {
		// A new writer does not know the head: it waits for the lock before it claims its records.
		log := postgres.NewAuditLog(db, postgres.AuditOptions{Timeout: 30 * time.Second})
		defer log.Close()
		release := holdHead()
		waiting := giveUp(log, "locking", 4)
		release()
		record(log, "after-lock")
		if n := rowsOf(waiting); n != 0 {
			t.Errorf("%d rows of the %d records whose callers gave up while the writer waited for the lock, want 0", n, len(waiting))
		}
	})

	c := &chained{db: db, signer: mustSignHead(t, db)}
	r, p := c.verify(t)
	if p != nil {
		t.Fatalf("chain after the abandoned records: %v", p)
	}
	var rows int64
	if err := db.Pool.QueryRow(ctx, "SELECT count(*) FROM audit_events").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if r.Rows != rows {
		t.Errorf("chain verified %d rows, the table holds %d", r.Rows, rows)
	}
	t.Logf("chain verifies: %d rows to sequence %d", r.Rows, r.End.Seq)
}
