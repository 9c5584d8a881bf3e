package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scailabs/authzd/client"
	"github.com/scailabs/authzd/cmd/authzd/app/apptest"
)

// TestWhatIf: authzctl whatif prints the flips of a change file as a table
// or JSON, takes NDJSON and a JSON array alike, reports a refused change as
// FILE:LINE, and --fail-on-flips exits 1 on a flip.
func TestWhatIf(t *testing.T) {
	a := apptest.MustStart(t, "memory")
	env := map[string]string{"AUTHZ_URL": a.URL, "AUTHZ_TOKEN": a.AdminToken, "AUTHZ_ACTOR": "ops-anna"}
	MustOK(t, env, "partner", "put", "acme")
	MustOK(t, env, "tenant", "put", "t1", "--partner", "acme")
	MustOK(t, env, "role", "put", "t1", "ops", "--name", "ops", "--permission", "scaibunker:create,scaiskills:view")
	MustOK(t, env, "member", "add", "t1", "ops", "alice")
	last := strings.TrimSpace(MustOK(t, env, "member", "add", "t1", "tenant_viewer", "bob"))
	for _, q := range [][]string{{"alice", "scaibunker:create"}, {"alice", "scaibunker:create"}, {"alice", "scaiskills:view"}, {"bob", "scaiskills:view"}} {
		MustRun(t, env, "check", "t1", q[0], q[1], "--consistency-token", last)
	}

	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ndjson := write("changes.ndjson", `{"op":"put","kind":"role","tenant_id":"t1","role_id":"ops","name":"ops","module_permissions":["scaiskills:view"]}

{"op":"delete","kind":"member","tenant_id":"t1","role_id":"tenant_viewer","user_id":"bob"}
`)
	array := write("changes.json", `[
  {"op":"put","kind":"role","tenant_id":"t1","role_id":"ops","name":"ops","module_permissions":["scaiskills:view"]},
  {"op":"delete","kind":"member","tenant_id":"t1","role_id":"tenant_viewer","user_id":"bob"}
]`)
	args := func(file string, more ...string) []string {
		return append([]string{"whatif", "t1", "--changes", file, "--since", "1h", "--consistency-token", last}, more...)
	}

	out := MustOK(t, env, args(ndjson)...)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if !strings.HasPrefix(lines[0], "2 flips in 3 questions, predicted at ") || len(lines) != 4 ||
		!strings.HasPrefix(lines[1], "USER") || !strings.Contains(lines[1], "LAST-DECIDED") {
		t.Fatalf("whatif printed:\n%s", out)
	}
	// allowed-to-denied, the most decided first
	if f := strings.Fields(lines[2]); f[0] != "alice" || f[1] != "scaibunker:create" || f[3] != "allowed" || f[4] != "denied" || f[5] != "2" {
		t.Errorf("first flip row %q", lines[2])
	}
	if f := strings.Fields(lines[3]); f[0] != "bob" || f[1] != "scaiskills:view" || f[5] != "1" {
		t.Errorf("second flip row %q", lines[3])
	}

	var res client.WhatIfResult
	if err := json.Unmarshal([]byte(MustOK(t, env, args(array, "--json")...)), &res); err != nil || len(res.Flips) != 2 || res.Questions != 3 {
		t.Fatalf("whatif --json from a JSON array: %+v (%v)", res, err)
	}

	if code, out, errOut := MustRun(t, env, args(ndjson, "--fail-on-flips")...); code != exitDenied || !strings.HasPrefix(out, "2 flips") {
		t.Errorf("--fail-on-flips: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	none := write("none.ndjson", `{"op":"put","kind":"member","tenant_id":"t1","role_id":"ops","user_id":"alice"}`+"\n")
	if out := MustOK(t, env, args(none, "--fail-on-flips")...); !strings.HasPrefix(out, "0 flips in 3 questions") {
		t.Errorf("no flips: %q", out)
	}

	bad := write("bad.ndjson", `{"op":"delete","kind":"member","tenant_id":"t1","role_id":"ops","user_id":"alice"}

{"op":"put","kind":"group","tenant_id":"t1"}
`)
	MustFail(t, env, exitError, bad+`:3: unknown kind "group"`, args(bad)...)
	refusedArray := write("refused.json", `[
  {"op":"delete","kind":"member","tenant_id":"t1","role_id":"ops","user_id":"alice"},
  {"op":"put","kind":"member","tenant_id":"t1","role_id":"nope",
   "user_id":"alice"}
]`)
	MustFail(t, env, exitError, refusedArray+`:3: role "nope" does not exist in tenant "t1"`, args(refusedArray)...)
	broken := write("broken.ndjson", `{"op":"put","kind":"partner","partner_id":"acme"}`+"\n"+`{"op":`+"\n")
	MustFail(t, env, exitError, broken+":2: not a JSON object", args(broken)...)
	MustFail(t, env, exitUsage, "--since is required", "whatif", "t1", "--changes", ndjson)
}
