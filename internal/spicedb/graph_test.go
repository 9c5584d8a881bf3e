package spicedb_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/scailabs/authzd/internal/authz"
	"github.com/scailabs/authzd/internal/pgtest"
	"github.com/scailabs/authzd/internal/spicedb"
	"github.com/scailabs/authzd/schema"
)

func mustOpen(t *testing.T, dbURL, schemaText string) *spicedb.Graph {
	t.Helper()
	g, err := spicedb.Open(context.Background(), spicedb.Config{
		Schema: schemaText, Timeout: 5 * time.Second,
		Embedded: spicedb.EmbeddedConfig{Datastore: "postgres", DatabaseURL: dbURL},
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return g
}

// TestSchemaSync: the schema is written once, reopening finds it current, and
// a change that would orphan relationships is refused with SpiceDB's reason.
func TestSchemaSync(t *testing.T) {
	model, err := schema.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	url := pgtest.MustCreate(t)
	ctx := context.Background()

	g := mustOpen(t, url, model.Schema())
	if _, err := g.PutPartner(ctx, "p1"); err != nil {
		t.Fatal(err)
	}
	if _, err := g.PutTenant(ctx, "t1", "p1"); err != nil {
		t.Fatal(err)
	}
	if _, err := g.SetMember(ctx, "t1", authz.RoleTenantViewer, authz.Subject{Kind: authz.SubjectUser, ID: "v"}, true); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}

	g = mustOpen(t, url, model.Schema())
	if err := g.Ready(ctx); err != nil {
		t.Fatalf("ready: %v", err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}

	// Drop tenant_viewer (and everything that mentions it) while relationships still use it.
	var kept []string
	for _, line := range strings.Split(model.Schema(), "\n") {
		if !strings.Contains(line, "tenant_viewer") {
			kept = append(kept, line)
		}
	}
	_, err = spicedb.Open(ctx, spicedb.Config{
		Schema: strings.Join(kept, "\n"), Timeout: 5 * time.Second,
		Embedded: spicedb.EmbeddedConfig{Datastore: "postgres", DatabaseURL: url},
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !strings.Contains(err.Error(), "refused") || !strings.Contains(err.Error(), "tenant_viewer") {
		t.Fatalf("breaking schema change: err = %v, want SpiceDB's refusal naming tenant_viewer", err)
	}
}
