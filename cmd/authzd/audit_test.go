package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/scailabs/authzd/internal/auditchain"
	"github.com/scailabs/authzd/internal/authz"
	"github.com/scailabs/authzd/internal/pgtest"
	"github.com/scailabs/authzd/internal/postgres"
)

// TestAuditVerify: `authzd audit verify` passes an untouched chain and names
// the row an edit made straight in Postgres broke; checkpoints signed with a
// key from `authzd audit keygen` verify against --public-key. It records and
// signs its chain through the postgres package as internal/postgres's tests
// do, but from outside that package's tests (which it cannot import), and
// the steps are written out as the scenario the command is tested in.
func TestAuditVerify(t *testing.T) {
	ctx := context.Background()
	url := pgtest.MustCreate(t)
	t.Setenv("AUTHZ_DATABASE_URL", url)
	dir := t.TempDir()
	var out bytes.Buffer
	if err := run(ctx, []string{"audit", "keygen", "--out", filepath.Join(dir, "key.pem")}, &out, &out); err != nil {
		t.Fatal(err)
	}
	pubFile := filepath.Join(dir, "pub.pem")
	if err := writeFile(pubFile, out.String()); err != nil {
		t.Fatal(err)
	}
	if err := run(ctx, []string{"migrate"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	db, err := postgres.Open(ctx, url, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	log := postgres.NewAuditLog(db, postgres.AuditOptions{MaxBatch: 3})
	for i := range 10 {
		if err := log.Record(ctx, authz.Event{OccurredAt: time.Now(), Module: "scaibunker", Action: "x", ActorUserID: "u" + strconv.Itoa(i),
			Decision: authz.DecisionAllowed, DecisionID: uuid.NewString()}); err != nil {
			t.Fatal(err)
		}
	}
	log.Close()
	signer, err := auditchain.LoadSigner(filepath.Join(dir, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	cp, err := postgres.NewCheckpointer(ctx, db, signer, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := cp.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}

	verify := func(args ...string) (string, error) {
		var stdout, stderr bytes.Buffer
		err := run(ctx, append([]string{"audit", "verify"}, args...), &stdout, &stderr)
		return stdout.String() + stderr.String(), err
	}
	got, err := verify("--public-key", pubFile)
	if err != nil || !strings.Contains(got, "OK: 10 rows verified from sequence 1 to 10; 1 checkpoints verified") {
		t.Fatalf("untouched chain: %v\n%s", err, got)
	}
	if got, err := verify("--since", time.Now().Add(-time.Hour).Format(time.RFC3339)); err != nil || !strings.Contains(got, "warning: no --public-key") {
		t.Errorf("without --public-key: %v\n%s; want OK with a warning", err, got)
	}

	id := pgtest.MustTamper(t, url, "seq = 4", "UPDATE audit_events SET decision = 'denied' WHERE seq = 4")
	got, err = verify("--public-key", pubFile)
	if !errors.Is(err, errBroken) || !strings.Contains(got, "BROKEN: edited: row id "+strconv.FormatInt(id, 10)+" (sequence 4)") {
		t.Errorf("after an edit: %v\n%s; want the edited row named", err, got)
	}
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o644) }
