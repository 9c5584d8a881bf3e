package app_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestConsoleRevokeWhileEditing: a token revoked while its console session
// posts role edits: every edit of the session is in the audit trail before
// the revocation's row (so before the revocation answered), and none is made
// after it.
func TestConsoleRevokeWhileEditing(t *testing.T) {
	h := mustStart(t, "memory")
	h.scopeFixture()
	secret, id := h.mintToken("editor", allScopes, []string{"t1"})
	role := "/console/tenants/t1/roles/ops"
	var wg sync.WaitGroup
	results := make([][]int, 2)
	for w := range 2 {
		b := newBrowser(t, h.url)
		if p := b.signIn(secret, "editor"); p.status != 303 {
			t.Fatalf("sign-in: %d", p.status)
		}
		token := csrf(t, b.get(role).body)
		wg.Add(1)
		go func() {
			defer wg.Done()
			keys := [][]string{{"scaibunker:create"}, {"scaiskills:grant"}}
			for i := 0; ; i++ {
				p := b.do("POST", role, url.Values{"csrf_token": {token}, "action": {"save"}, "name": {"Ops"}, "key": keys[(i+w)%2]})
				results[w] = append(results[w], p.status)
				if p.status != 303 {
					return
				}
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	h.admin("DELETE", "/v1/tokens/"+id, "", 200)
	revokedAt := time.Now()
	wg.Wait()
	for w, r := range results {
		if len(r) < 2 || r[len(r)-1] != 401 {
			t.Errorf("session %d answered %v; want edits, then 401 once revoked", w, r)
		}
	}
	client := "token:" + id + ":editor"
	revokeSeq := countRows(t, h.dbURL, `SELECT seq FROM audit_events WHERE action = 'token.revoke' AND resource_id = $1`, id)
	after := countRows(t, h.dbURL, `SELECT count(*) FROM audit_events WHERE action = 'role.put' AND client = $1 AND seq > $2`, client, revokeSeq)
	edits := countRows(t, h.dbURL, `SELECT count(*) FROM audit_events WHERE action = 'role.put' AND client = $1`, client)
	if after != 0 || edits < 2 {
		t.Errorf("%d of %d edits were recorded after the revocation", after, edits)
	}
	late := countRows(t, h.dbURL, `SELECT count(*) FROM audit_events WHERE action = 'role.put' AND client = $1 AND occurred_at > $2`, client, revokedAt)
	if late != 0 {
		t.Errorf("%d edits landed after the revocation answered", late)
	}
	// The role holds what the last recorded edit submitted: no write went unrecorded.
	var lastKeys string
	last := h.admin("GET", "/v1/audit/events?tenant_id=t1&module=authzd&limit=1000", "", 200)
	for _, e := range last.body["events"].([]any) {
		m := e.(map[string]any)
		if m["action"] == "role.put" && m["resource_id"] == "ops" {
			b, _ := json.Marshal(m["details"].(map[string]any)["module_permissions"])
			lastKeys = string(b)
		}
	}
	got := h.admin("GET", "/v1/tenants/t1/roles/ops", "", 200).body["module_permissions"]
	if b, _ := json.Marshal(got); string(b) != lastKeys {
		t.Errorf("the role holds %s; the last recorded edit submitted %s", b, lastKeys)
	}
}

// TestConsoleConcurrentRoleEdits: two console sessions and an API PUT
// replace one role's keys at once; the role ends with exactly one of the
// submitted key sets, never a mix.
func TestConsoleConcurrentRoleEdits(t *testing.T) {
	h := mustStart(t, "memory")
	h.scopeFixture()
	role := "/console/tenants/t1/roles/ops"
	sets := [][]string{
		{"scaibunker:create", "scaibunker:execute"},
		{"scaiskills:bind", "scaiskills:grant"},
		{"scaibunker:shell"},
	}
	var sessions []*browser
	for range 2 {
		b := newBrowser(t, h.url)
		if p := b.signIn(h.adminToken, ""); p.status != 303 {
			t.Fatalf("sign-in: %d", p.status)
		}
		sessions = append(sessions, b)
	}
	for round := range 10 {
		tokens := []string{csrf(t, sessions[0].get(role).body), csrf(t, sessions[1].get(role).body)}
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, b := range sessions {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if p := b.do("POST", role, url.Values{"csrf_token": {tokens[i]}, "action": {"save"}, "name": {"Ops"}, "key": sets[i]}); p.status != 303 {
					t.Errorf("round %d session %d: status %d", round, i, p.status)
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			body, _ := json.Marshal(map[string]any{"name": "Ops", "module_permissions": sets[2]})
			if r := h.do("PUT", "/v1/tenants/t1/roles/ops", h.adminToken, string(body)); r.status != 200 {
				t.Errorf("round %d PUT: status %d", round, r.status)
			}
		}()
		close(start)
		wg.Wait()
		var got []string
		for _, k := range h.admin("GET", "/v1/tenants/t1/roles/ops", "", 200).body["module_permissions"].([]any) {
			got = append(got, k.(string))
		}
		if !slices.ContainsFunc(sets, func(s []string) bool { return slices.Equal(s, got) }) {
			t.Fatalf("round %d: the role holds %v, which no writer submitted (%s)", round, got, fmt.Sprint(sets))
		}
	}
}
