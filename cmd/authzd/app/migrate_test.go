package app_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/scailabs/authzd/cmd/authzd/app"
	"github.com/scailabs/authzd/internal/pgtest"
	"github.com/scailabs/authzd/internal/postgres"
)

// lockedBuffer is a log sink safe for authzd's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestOpenDatabaseAhead: a binary older than the database (a newer release
// migrated it) starts, logs both versions, serves and migrates nothing down.
func TestOpenDatabaseAhead(t *testing.T) {
	ctx := context.Background()
	url := pgtest.MustCreate(t)
	st, err := postgres.MigrateUp(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	ahead := st.Known + 1
	if _, err := conn.Exec(ctx, "UPDATE authzd_schema_version SET version = $1", ahead); err != nil {
		t.Fatal(err)
	}

	var logs lockedBuffer
	cfg := app.DefaultConfig()
	cfg.HTTPAddr, cfg.DatabaseURL, cfg.AdminToken, cfg.SpiceDBDatastore = "127.0.0.1:0", url, "admin", "memory"
	m := app.New(cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err := m.Open(ctx); err != nil {
		t.Fatalf("open on a database ahead: %v", err)
	}
	defer m.Close(ctx)
	req, _ := http.NewRequest(http.MethodPost, m.URL()+"/v1/permissions/check", strings.NewReader(tlsCheckBody))
	req.Header.Set("Authorization", "Bearer admin")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("check: %s", resp.Status)
	}
	var v int32
	if err := conn.QueryRow(ctx, "SELECT version FROM authzd_schema_version").Scan(&v); err != nil || v != ahead {
		t.Fatalf("version after start: %d %v; want %d untouched", v, err, ahead)
	}
	if l := logs.String(); !strings.Contains(l, "database_version="+itoa(ahead)) || !strings.Contains(l, "binary_version="+itoa(st.Known)) {
		t.Fatalf("the log does not name both versions:\n%s", l)
	}
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }
