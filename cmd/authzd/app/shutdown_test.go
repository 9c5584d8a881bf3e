package app_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scailabs/authzd/cmd/authzd/app"
	"github.com/scailabs/authzd/internal/pgtest"
)

// TestCloseBoundsWholeShutdown: AUTHZ_SHUTDOWN_TIMEOUT bounds the whole
// ordered shutdown, not only the HTTP drain. A check is stuck on its audit row
// (the table is locked, the COPY timeout is far away); Close must return
// within the bound, say what it cut short, and the check must not be allowed.
func TestCloseBoundsWholeShutdown(t *testing.T) {
	ctx := context.Background()
	const bound = 500 * time.Millisecond
	dbURL := pgtest.MustCreate(t)
	cfg := app.Config{
		HTTPAddr: "127.0.0.1:0", DatabaseURL: dbURL, AdminToken: "admin", SpiceDBDatastore: "memory",
		SpiceDBTimeout: 5 * time.Second, DBMaxConns: 8, AuditWriters: 1, AuditMaxBatch: 10,
		AuditTimeout: 20 * time.Second, MaxBodyBytes: 1 << 16, TokenCacheTTL: time.Second, ShutdownTimeout: bound,
	}
	m := app.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := m.Open(ctx); err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = m.Close(ctx)
		}
	})

	lock, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close(ctx)
	tx, err := lock.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, "LOCK TABLE audit_events IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}

	status := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("POST", m.URL()+"/v1/permissions/check",
			strings.NewReader(`{"tenant_id":"t1","user_id":"alice","permission":"scaibunker:create"}`))
		req.Header.Set("Authorization", "Bearer admin")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			status <- 0 // the connection was dropped: no answer, so no decision
			return
		}
		resp.Body.Close()
		status <- resp.StatusCode
	}()
	mustWaitForLockWaiter(t, lock)

	start := time.Now()
	err = m.Close(ctx)
	closed = true
	if took := time.Since(start); took > bound+2*time.Second {
		t.Errorf("Close took %v; the shutdown bound is %v", took, bound)
	}
	if err == nil || !strings.Contains(err.Error(), "audit log") {
		t.Errorf("Close: %v; want an error naming the audit records it could not commit", err)
	}
	select {
	case got := <-status:
		if got == http.StatusOK {
			t.Errorf("check answered 200 without its audit row")
		}
	case <-time.After(5 * time.Second):
		t.Errorf("check still unanswered 5s after Close")
	}
}

// mustWaitForLockWaiter waits until some session waits for a lock (the audit COPY).
func mustWaitForLockWaiter(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var n int
		if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM pg_locks WHERE NOT granted").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the check never reached the audit table")
}
