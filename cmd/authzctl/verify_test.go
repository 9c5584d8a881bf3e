package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scailabs/authzd/cmd/authzd/app/apptest"
	"github.com/scailabs/authzd/internal/pgtest"
)

// TestAuditVerify: authzctl audit verify passes a real chain with its
// checkpoint, rejects a checkpoint key it was not given, and names a row
// deleted straight in Postgres. Its set-up (start, write, wait for a
// checkpoint, verify, tamper, verify) is the same story as cmd/authzd's
// TestAuditVerify and the app's TestAuditChainPython, told for another
// verifier; each is written out so that it reads top to bottom, and the
// tampering they share is pgtest.MustTamper.
func TestAuditVerify(t *testing.T) {
	a := apptest.MustStart(t, "memory")
	env := map[string]string{"AUTHZ_URL": a.URL, "AUTHZ_TOKEN": a.AdminToken}
	for _, p := range []string{"p1", "p2", "p3", "p4"} {
		MustOK(t, env, "partner", "put", p)
	}
	time.Sleep(1500 * time.Millisecond) // one checkpoint interval (1s in apptest)

	code, out, errOut := MustRun(t, env, "audit", "verify")
	if code != exitOK || !strings.Contains(out, "OK: 4 rows verified from sequence 1 to 4; 1 checkpoints verified") ||
		!strings.Contains(errOut, "warning: no --public-key") {
		t.Fatalf("untouched chain: exit %d\n%s%s", code, out, errOut)
	}
	// A key of our own: the served checkpoint is then not trusted, only counted.
	pub := filepath.Join(t.TempDir(), "other.pem")
	if err := os.WriteFile(pub, []byte("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := MustOK(t, env, "audit", "verify", "--public-key", pub); !strings.Contains(out, "0 checkpoints verified, 1 signed by keys not trusted") {
		t.Errorf("with another key: %s", out)
	}

	id := pgtest.MustTamper(t, a.DatabaseURL, "seq = 3", "DELETE FROM audit_events WHERE seq = 2")
	code, out, errOut = MustRun(t, env, "audit", "verify")
	if code != exitDenied || !strings.Contains(out, "BROKEN: deleted: row id "+strconv.FormatInt(id, 10)+" (sequence 3): rows 2 to 2 are missing") {
		t.Errorf("after a delete: exit %d\n%s%s", code, out, errOut)
	}
}
