package app_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scailabs/authzd/internal/pgtest"
)

// TestAuditChainPython: the Python verifier printed in docs/audit.md verifies
// a real chain through GET /v1/audit/chain, and names the row an edit broke.
func TestAuditChainPython(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	doc, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "audit.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, code, ok := strings.Cut(string(doc), "```python\n")
	code, _, ok2 := strings.Cut(code, "```")
	if !ok || !ok2 {
		t.Fatal("docs/audit.md has no python block")
	}
	script := filepath.Join(t.TempDir(), "verify.py")
	if err := os.WriteFile(script, []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}

	h := mustStart(t, "memory")
	h.admin("PUT", "/v1/partners/p1", "", 200)
	h.admin("PUT", "/v1/tenants/t1", `{"partner_id":"p1"}`, 200)
	h.admin("PUT", "/v1/tenants/t1/roles/ops", `{"name":"Ops <night>","module_permissions":["scaibunker:create"]}`, 200)
	for i := range 5 {
		h.check(`{"tenant_id":"t1","user_id":"u` + strconv.Itoa(i) + `","permission":"scaibunker:create"}`)
	}
	verify := func() (string, error) {
		out, err := exec.Command(python, script, h.url, h.adminToken).CombinedOutput()
		return string(out), err
	}
	if out, err := verify(); err != nil || !strings.Contains(out, "OK: links verified from sequence 1 to 8") {
		t.Fatalf("untouched chain: %v\n%s", err, out)
	}

	id := pgtest.MustTamper(t, h.dbURL, "action = 'role.put'", `UPDATE audit_events SET details = '{"name":"Ops"}' WHERE action = 'role.put'`)
	if out, err := verify(); err == nil || !strings.Contains(out, "row "+strconv.FormatInt(id, 10)+" (sequence 3)") {
		t.Errorf("after editing the role.put row: %v\n%s; want it named", err, out)
	}
}

// TestAuditCheckpointsServed: the instance's key is served, and a checkpoint of the head appears within the interval.
func TestAuditCheckpointsServed(t *testing.T) {
	h := mustStart(t, "memory")
	h.admin("PUT", "/v1/partners/p1", "", 200)
	keys := h.admin("GET", "/v1/audit/keys", "", 200)
	list, _ := keys.body["keys"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["current"] != true ||
		!strings.HasPrefix(list[0].(map[string]any)["public_key"].(string), "-----BEGIN PUBLIC KEY-----") {
		t.Fatalf("keys: %s", keys.raw)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := h.admin("GET", "/v1/audit/checkpoints", "", 200)
		if cps, _ := r.body["checkpoints"].([]any); len(cps) > 0 {
			if cp := cps[len(cps)-1].(map[string]any); cp["seq"] != float64(1) || cp["key_id"] != list[0].(map[string]any)["key_id"] {
				t.Errorf("checkpoint %v, want sequence 1 signed by the current key", cp)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint within 5s (interval 1s)")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if r := h.do("GET", "/v1/audit/chain?limit=1001", h.adminToken, ""); r.status != 400 {
		t.Errorf("limit 1001: status %d, want 400", r.status)
	}
}
