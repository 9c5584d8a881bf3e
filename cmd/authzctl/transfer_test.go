package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scailabs/authzd/client"
	"github.com/scailabs/authzd/cmd/authzd/app/apptest"
)

// TestImportExportShadow: authzctl export writes what authzctl import takes
// into another authzd; a refused document is reported as FILE:LINE; the
// shadow report exits 1 once a legacy answer disagrees.
func TestImportExportShadow(t *testing.T) {
	src, dst := apptest.MustStart(t, "memory"), apptest.MustStart(t, "memory")
	srcEnv := map[string]string{"AUTHZ_URL": src.URL, "AUTHZ_TOKEN": src.AdminToken, "AUTHZ_ACTOR": "ops-anna"}
	dstEnv := map[string]string{"AUTHZ_URL": dst.URL, "AUTHZ_TOKEN": dst.AdminToken, "AUTHZ_ACTOR": "ops-anna"}
	MustOK(t, srcEnv, "partner", "put", "acme")
	MustOK(t, srcEnv, "tenant", "put", "t1", "--partner", "acme")
	MustOK(t, srcEnv, "role", "put", "t1", "operators", "--name", "Bot operators", "--permission", "scaibunker:create")
	MustOK(t, srcEnv, "member", "add", "t1", "operators", "sa:ci-bot")
	MustOK(t, srcEnv, "resource", "put", "t1", "bunker", "b1", "--owner", "sa:ci-bot")

	doc := MustOK(t, srcEnv, "export")
	if n := strings.Count(doc, "\n"); n != 5 {
		t.Fatalf("export has %d records, want 5:\n%s", n, doc)
	}
	file := filepath.Join(t.TempDir(), "world.ndjson")
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := MustOK(t, dstEnv, "import", file, "--dry-run"); !strings.HasPrefix(out, "dry run: 5 created, 0 updated") {
		t.Fatalf("dry run printed %q", out)
	}
	var res struct {
		Created  int    `json:"created"`
		ZedToken string `json:"zed_token"`
	}
	if err := json.Unmarshal([]byte(MustOK(t, dstEnv, "import", file, "--json")), &res); err != nil || res.Created != 5 || res.ZedToken == "" {
		t.Fatalf("import --json: %+v %v", res, err)
	}
	if got := MustOK(t, dstEnv, "export"); got != doc {
		t.Fatalf("re-export differs:\n%s\n--- want\n%s", got, doc)
	}
	if got := MustOK(t, dstEnv, "export", "--tenant", "t1"); got != doc {
		t.Fatalf("tenant export differs:\n%s", got)
	}

	bad := filepath.Join(t.TempDir(), "bad.ndjson")
	if err := os.WriteFile(bad, []byte(doc+`{"kind":"member","tenant_id":"t1","role_id":"nope","user_id":"u"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	MustFail(t, dstEnv, exitError, bad+`:6: role "t1/nope" is neither in the document nor in authzd`, "import", bad)

	MustOK(t, dstEnv, "shadow-report", "--since", "1h")
	c, err := client.New(dst.URL, dst.AdminToken)
	if err != nil {
		t.Fatal(err)
	}
	d, err := c.HasModulePermission(context.Background(), "t1", "sa:ci-bot", "scaibunker:create",
		client.WithLegacyAllowed(false), client.WithConsistencyToken(res.ZedToken))
	if err != nil || !d.Allowed {
		t.Fatalf("check with a disagreeing legacy answer: %+v %v; want allowed", d, err)
	}
	code, out, _ := MustRun(t, dstEnv, "shadow-report", "--since", "1h")
	if code != exitDenied || !strings.Contains(out, "1 shadowed checks, 0 agreed, 1 disagreed") || !strings.Contains(out, "scaibunker:create") {
		t.Fatalf("shadow-report: exit %d:\n%s", code, out)
	}
}
