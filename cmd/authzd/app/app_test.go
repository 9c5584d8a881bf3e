package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scailabs/authzd/cmd/authzd/app/apptest"
)

// harness is one authzd on a fresh audit database and embedded SpiceDB.
type harness struct {
	t          testing.TB
	url        string
	dbURL      string
	adminToken string
}

func mustStart(t testing.TB, datastore string) *harness {
	t.Helper()
	a := apptest.MustStart(t, datastore)
	return &harness{t: t, url: a.URL, dbURL: a.DatabaseURL, adminToken: a.AdminToken}
}

type response struct {
	status int
	body   map[string]any
	raw    string
}

func (h *harness) do(method, path, token, body string, headers ...string) response {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, h.url+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := response{status: resp.StatusCode, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

// admin calls with the bootstrap token and demands the status.
func (h *harness) admin(method, path, body string, want int) response {
	h.t.Helper()
	r := h.do(method, path, h.adminToken, body)
	if r.status != want {
		h.t.Fatalf("%s %s %s: status %d, want %d: %s", method, path, body, r.status, want, r.raw)
	}
	return r
}

func (h *harness) check(body string) bool {
	h.t.Helper()
	r := h.admin("POST", "/v1/permissions/check", body, 200)
	allowed, ok := r.body["allowed"].(bool)
	if !ok || r.body["decision_id"] == "" || r.body["checked_at"] == "" {
		h.t.Fatalf("check %s: malformed answer %s", body, r.raw)
	}
	return allowed
}

func checkBody(tenant, user, key, token string, resource ...string) string {
	b := map[string]any{"tenant_id": tenant, "user_id": user, "permission": key, "consistency_token": token}
	if len(resource) == 2 {
		b["resource"] = map[string]string{"type": resource[0], "id": resource[1]}
	}
	out, _ := json.Marshal(b)
	return string(out)
}

func token(r response) string { s, _ := r.body["zed_token"].(string); return s }

// TestContract walks every route of contract v1 on the Postgres datastore.
func TestContract(t *testing.T) {
	h := mustStart(t, "postgres")
	h.admin("PUT", "/v1/partners/p1", "", 200)
	h.admin("PUT", "/v1/partners/p2", "{}", 200)
	h.admin("PUT", "/v1/tenants/t1", `{"partner_id":"p1"}`, 200)
	h.admin("PUT", "/v1/tenants/t2", `{"partner_id":"p2"}`, 200)
	h.admin("PUT", "/v1/partners/p1/admins/pa", "", 200)
	h.admin("PUT", "/v1/platform/super_admins/root", "", 200)
	h.admin("PUT", "/v1/tenants/t1/roles/tenant_viewer/members/viewer", "", 200)
	h.admin("PUT", "/v1/tenants/t1/roles/ops", `{"name":"Bot operators","module_permissions":["scaibunker:create","scaibunker:execute","scaibunker:network:registry"]}`, 200)
	h.admin("PUT", "/v1/tenants/t1/roles/ops/members/alice", "", 200)
	h.admin("PUT", "/v1/tenants/t1/roles/ops/members/sa:ci-bot", "", 200)
	tok := token(h.admin("PUT", "/v1/tenants/t1/resources/bunker/b1", `{"owner_id":"alice"}`, 200))

	cases := []struct {
		name string
		body string
		want bool
	}{
		{"custom role grants key", checkBody("t1", "alice", "scaibunker:create", tok), true},
		{"service account member", checkBody("t1", "sa:ci-bot", "scaibunker:execute", tok), true},
		{"custom role lacks key", checkBody("t1", "alice", "scaibunker:network:unrestricted", tok), false},
		{"custom role stays in tenant", checkBody("t2", "alice", "scaibunker:create", tok), false},
		{"owner with key", checkBody("t1", "alice", "scaibunker:execute", tok, "bunker", "b1"), true},
		{"owner without key", checkBody("t1", "alice", "scaibunker:shell", tok, "bunker", "b1"), false},
		{"key without ownership", checkBody("t1", "sa:ci-bot", "scaibunker:execute", tok, "bunker", "b1"), false},
		{"resource of another tenant", checkBody("t2", "alice", "scaibunker:execute", tok, "bunker", "b1"), false},
		{"partner admin on own tenant", checkBody("t1", "pa", "scaibunker:admin:platform", tok), true},
		{"partner admin on other partner", checkBody("t2", "pa", "scaibunker:create", tok), false},
		{"super admin anywhere", checkBody("t2", "root", "scaiskills:grant", tok), true},
		{"viewer has view", checkBody("t1", "viewer", "scaiskills:view", tok), true},
		{"viewer cannot create", checkBody("t1", "viewer", "scaibunker:create", tok), false},
		{"viewer lists tenant bunkers", checkBody("t1", "viewer", "scaibunker:create", tok, "bunker", "b1"), true},
		{"unknown tenant", checkBody("nope", "alice", "scaibunker:create", tok), false},
		{"unknown user", checkBody("t1", "nobody", "scaibunker:create", tok), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := h.check(tc.body); got != tc.want {
				t.Errorf("allowed = %v, want %v", got, tc.want)
			}
		})
	}

	t.Run("check_bulk answers in order", func(t *testing.T) {
		body := `{"items":[` + cases[0].body + "," + cases[2].body + "," + cases[4].body + `]}`
		r := h.admin("POST", "/v1/permissions/check_bulk", body, 200)
		results, _ := r.body["results"].([]any)
		if len(results) != 3 {
			t.Fatalf("results: %s", r.raw)
		}
		for i, want := range []bool{true, false, true} {
			if got := results[i].(map[string]any)["allowed"]; got != want {
				t.Errorf("results[%d].allowed = %v, want %v", i, got, want)
			}
		}
	})

	t.Run("effective permissions", func(t *testing.T) {
		r := h.admin("GET", "/v1/tenants/t1/users/alice/permissions?consistency_token="+tok, "", 200)
		got, _ := json.Marshal(r.body["permissions"])
		if want := `["scaibunker:create","scaibunker:execute","scaibunker:network:registry"]`; string(got) != want {
			t.Errorf("permissions = %s, want %s", got, want)
		}
	})

	t.Run("role read, replace and delete", func(t *testing.T) {
		r := h.admin("GET", "/v1/tenants/t1/roles/ops", "", 200)
		if n := len(r.body["module_permissions"].([]any)); n != 3 {
			t.Fatalf("role keys: %s", r.raw)
		}
		tok := token(h.admin("PUT", "/v1/tenants/t1/roles/ops", `{"name":"Image maintainers","module_permissions":["scaibunker:images:manage"]}`, 200))
		if h.check(checkBody("t1", "alice", "scaibunker:create", tok)) {
			t.Error("replaced role still grants scaibunker:create")
		}
		if !h.check(checkBody("t1", "alice", "scaibunker:images:manage", tok)) {
			t.Error("replaced role does not grant scaibunker:images:manage")
		}
		tok = token(h.admin("DELETE", "/v1/tenants/t1/roles/ops", "", 200))
		if h.check(checkBody("t1", "alice", "scaibunker:images:manage", tok)) {
			t.Error("deleted role still grants")
		}
		h.admin("GET", "/v1/tenants/t1/roles/ops", "", 404)
		h.admin("DELETE", "/v1/tenants/t1/roles/ops", "", 404)
	})

	t.Run("revocations", func(t *testing.T) {
		tok := token(h.admin("DELETE", "/v1/partners/p1/admins/pa", "", 200))
		if h.check(checkBody("t1", "pa", "scaibunker:create", tok)) {
			t.Error("revoked partner admin still allowed")
		}
		tok = token(h.admin("DELETE", "/v1/platform/super_admins/root", "", 200))
		if h.check(checkBody("t2", "root", "scaiskills:grant", tok)) {
			t.Error("revoked super admin still allowed")
		}
		tok = token(h.admin("DELETE", "/v1/tenants/t1/roles/tenant_viewer/members/viewer", "", 200))
		if h.check(checkBody("t1", "viewer", "scaiskills:view", tok)) {
			t.Error("removed viewer still allowed")
		}
		tok = token(h.admin("DELETE", "/v1/tenants/t1/resources/bunker/b1", "", 200))
		if h.check(checkBody("t1", "viewer", "scaibunker:create", tok, "bunker", "b1")) {
			t.Error("deleted bunker still readable")
		}
	})

	t.Run("partner with tenants cannot be deleted", func(t *testing.T) {
		h.admin("DELETE", "/v1/partners/p2", "", 409)
	})

	t.Run("offboarding", func(t *testing.T) {
		h.admin("PUT", "/v1/tenants/t2/roles/tenant_admin/members/boss", "", 200)
		h.admin("PUT", "/v1/tenants/t2/roles/r/members/x", "", 404)
		tok := token(h.admin("DELETE", "/v1/tenants/t2", "", 200))
		if h.check(checkBody("t2", "boss", "scaibunker:create", tok)) {
			t.Error("offboarded tenant still grants")
		}
		h.admin("DELETE", "/v1/partners/p2", "", 200)
	})

	t.Run("keys and openapi", func(t *testing.T) {
		r := h.admin("GET", "/v1/permissions/keys", "", 200)
		if n := len(r.body["keys"].([]any)); n != 21 {
			t.Errorf("keys: %d, want 21", n)
		}
		if r := h.do("GET", "/v1/openapi.yaml", "", ""); r.status != 200 || !strings.Contains(r.raw, "openapi:") {
			t.Errorf("openapi: %d", r.status)
		}
		for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
			if r := h.do("GET", p, "", ""); r.status != 200 {
				t.Errorf("%s: %d %s", p, r.status, r.raw)
			}
		}
	})

	t.Run("every decision has exactly one committed audit row", func(t *testing.T) {
		conn, err := pgx.Connect(context.Background(), h.dbURL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		var n, dup int
		if err := conn.QueryRow(context.Background(),
			"SELECT count(*), count(*) - count(DISTINCT decision_id) FROM audit_events WHERE module <> 'authzd'").Scan(&n, &dup); err != nil {
			t.Fatal(err)
		}
		// 16 single checks, 3 bulk items, 2 role checks, 1 deleted-role check, 4 revocation checks, 1 offboard check.
		if want := 16 + 3 + 2 + 1 + 4 + 1; n != want || dup != 0 {
			t.Errorf("check rows = %d (duplicates %d), want %d", n, dup, want)
		}
	})
}

// TestBadInput: a clear 4xx naming what was wrong, nothing changed, the server keeps serving.
func TestBadInput(t *testing.T) {
	h := mustStart(t, "memory")
	h.admin("PUT", "/v1/partners/p1", "", 200)
	h.admin("PUT", "/v1/tenants/t1", `{"partner_id":"p1"}`, 200)
	h.admin("PUT", "/v1/tenants/t1/roles/ops", `{"name":"ops","module_permissions":["scaibunker:create"]}`, 200)
	long := strings.Repeat("a", 1025)
	cases := []struct {
		name, method, path, body string
		status                   int
		mention                  string
	}{
		{"MalformedJSON", "POST", "/v1/permissions/check", `{"tenant_id":`, 400, "JSON"},
		{"NotAnObject", "POST", "/v1/permissions/check", `[1,2]`, 400, ""},
		{"TrailingData", "POST", "/v1/permissions/check", `{} {}`, 400, "after"},
		{"Oversized", "POST", "/v1/permissions/check", `{"tenant_id":"` + strings.Repeat("x", 1<<17) + `"}`, 413, "bytes"},
		{"UnknownField", "POST", "/v1/permissions/check", `{"tenant":"t1"}`, 400, "tenant"},
		{"UnknownKey", "POST", "/v1/permissions/check", checkBody("t1", "u", "scaibunker:fly", ""), 400, "scaibunker:fly"},
		{"MalformedKey", "POST", "/v1/permissions/check", checkBody("t1", "u", "Bunker", ""), 400, "Bunker"},
		{"ColonInID", "POST", "/v1/permissions/check", checkBody("t:1", "u", "scaibunker:create", ""), 400, "tenant_id"},
		{"HashInID", "POST", "/v1/permissions/check", checkBody("t1", "u#x", "scaibunker:create", ""), 400, "user_id"},
		{"AtInID", "PUT", "/v1/partners/a@b", "", 400, "partner_id"},
		{"SpaceInID", "PUT", "/v1/partners/a%20b", "", 400, "partner_id"},
		{"EmptyUser", "POST", "/v1/permissions/check", checkBody("t1", "", "scaibunker:create", ""), 400, "user_id"},
		{"TooLongID", "POST", "/v1/permissions/check", checkBody(long, "u", "scaibunker:create", ""), 400, "1024"},
		{"UnknownResourceType", "POST", "/v1/permissions/check", checkBody("t1", "u", "scaibunker:create", "", "vm", "x"), 400, "vm"},
		{"KeyNotOnResource", "POST", "/v1/permissions/check", checkBody("t1", "u", "scaiskills:grant", "", "bunker", "x"), 400, "bunker"},
		{"BadConsistencyToken", "POST", "/v1/permissions/check", checkBody("t1", "u", "scaibunker:create", "nope"), 400, "consistency_token"},
		{"BuiltinRolePut", "PUT", "/v1/tenants/t1/roles/tenant_admin", `{"name":"x","module_permissions":[]}`, 400, "built-in"},
		{"BuiltinRoleDelete", "DELETE", "/v1/tenants/t1/roles/tenant_viewer", "", 400, "built-in"},
		{"RoleUnknownKey", "PUT", "/v1/tenants/t1/roles/r2", `{"name":"x","module_permissions":["scaibunker:nope"]}`, 400, "scaibunker:nope"},
		{"RoleOfAnotherTenant", "PUT", "/v1/tenants/t9/roles/ops/members/u", "", 404, "ops"},
		{"RoleInUnknownTenant", "PUT", "/v1/tenants/t9/roles/r", `{"name":"x","module_permissions":[]}`, 404, "t9"},
		{"TenantOfUnknownPartner", "PUT", "/v1/tenants/t3", `{"partner_id":"ghost"}`, 404, "ghost"},
		{"UnknownResourceTypePut", "PUT", "/v1/tenants/t1/resources/vm/x", `{"owner_id":"u"}`, 400, "vm"},
		{"BadSince", "GET", "/v1/audit/events?since=yesterday", "", 400, "since"},
		{"BadLimit", "GET", "/v1/audit/events?limit=0", "", 400, "limit"},
		{"UnknownAuditParam", "GET", "/v1/audit/events?modul=x", "", 400, "modul"},
		{"BadCursor", "GET", "/v1/audit/events?cursor=zzz", "", 400, "cursor"},
		{"EmptyBulk", "POST", "/v1/permissions/check_bulk", `{"items":[]}`, 400, "items"},
		{"BadBulkItem", "POST", "/v1/permissions/check_bulk", `{"items":[` + checkBody("t1", "u", "x:y", "") + `]}`, 400, "items[0]"},
		{"UnknownRoute", "GET", "/v1/nothing", "", 404, "/v1/nothing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := h.do(tc.method, tc.path, h.adminToken, tc.body)
			e, _ := r.body["error"].(map[string]any)
			if r.status != tc.status || e == nil {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.raw)
			}
			if msg, _ := e["message"].(string); !strings.Contains(msg, tc.mention) {
				t.Errorf("message %q does not mention %q", msg, tc.mention)
			}
		})
	}
	// Nothing changed: the role still holds exactly its key, t3 does not exist, and the server serves.
	r := h.admin("GET", "/v1/tenants/t1/roles/ops", "", 200)
	if got, _ := json.Marshal(r.body["module_permissions"]); string(got) != `["scaibunker:create"]` {
		t.Errorf("role changed by bad input: %s", got)
	}
	h.admin("PUT", "/v1/tenants/t3/roles/r", `{"name":"x","module_permissions":[]}`, 404)
	h.admin("GET", "/healthz", "", 200)
}

// TestTokens: 401 without or with a wrong token, 403 without the scope, hashed at rest, revocable.
func TestTokens(t *testing.T) {
	h := mustStart(t, "memory")
	if r := h.do("POST", "/v1/permissions/check", "", "{}"); r.status != 401 {
		t.Errorf("no token: %d", r.status)
	}
	if r := h.do("POST", "/v1/permissions/check", "wrong", "{}"); r.status != 401 {
		t.Errorf("wrong token: %d", r.status)
	}
	if r := h.do("POST", "/v1/permissions/check", "azd_00_forged", "{}"); r.status != 401 {
		t.Errorf("forged token: %d", r.status)
	}
	created := h.admin("POST", "/v1/tokens", `{"name":"module-ci","scopes":["check"]}`, 201)
	secret, _ := created.body["token"].(string)
	id, _ := created.body["id"].(string)
	if secret == "" || id == "" {
		t.Fatalf("create token: %s", created.raw)
	}
	h.admin("PUT", "/v1/partners/p1", "", 200)
	h.admin("PUT", "/v1/tenants/t1", `{"partner_id":"p1"}`, 200)
	if r := h.do("POST", "/v1/permissions/check", secret, checkBody("t1", "u", "scaibunker:create", "")); r.status != 200 {
		t.Errorf("check with check scope: %d %s", r.status, r.raw)
	}
	for _, p := range []struct{ method, path, body string }{
		{"PUT", "/v1/partners/p2", ""},
		{"GET", "/v1/audit/events", ""},
		{"GET", "/v1/audit/chain", ""},
		{"GET", "/v1/audit/checkpoints", ""},
		{"GET", "/v1/audit/keys", ""},
		{"POST", "/v1/tokens", `{"name":"x","scopes":["admin"]}`},
	} {
		if r := h.do(p.method, p.path, secret, p.body); r.status != 403 {
			t.Errorf("%s %s without scope: %d", p.method, p.path, r.status)
		}
	}

	conn, err := pgx.Connect(context.Background(), h.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var stored []byte
	if err := conn.QueryRow(context.Background(), "SELECT secret_hash FROM api_tokens WHERE id = $1", id).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains([]byte(secret), stored) || len(stored) != 32 {
		t.Errorf("token not stored as a 32-byte hash")
	}
	var leaks int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM audit_events WHERE details::text LIKE '%' || $1 || '%'", secret[len(secret)-20:]).Scan(&leaks); err != nil {
		t.Fatal(err)
	}
	if leaks != 0 {
		t.Errorf("the token secret appears in %d audit rows", leaks)
	}

	h.admin("DELETE", "/v1/tokens/"+id, "", 200)
	if r := h.do("POST", "/v1/permissions/check", secret, checkBody("t1", "u", "scaibunker:create", "")); r.status != 401 {
		t.Errorf("revoked token: %d", r.status)
	}
	h.admin("DELETE", "/v1/tokens/nope", "", 404)
}

// TestAuditQuery: filters, date and RFC 3339 bounds, keyset pagination returning every row once.
func TestAuditQuery(t *testing.T) {
	h := mustStart(t, "memory")
	h.admin("PUT", "/v1/partners/p1", "", 200)
	h.admin("PUT", "/v1/tenants/t1", `{"partner_id":"p1"}`, 200)
	for i := range 25 {
		key := "scaibunker:create"
		if i%2 == 1 {
			key = "scaiskills:view"
		}
		h.check(checkBody("t1", "u"+string(rune('a'+i%3)), key, ""))
	}
	walk := func(query string) []string {
		var ids []string
		cursor := ""
		for page := 0; page < 100; page++ {
			q := query + "&limit=4"
			if cursor != "" {
				q += "&cursor=" + cursor
			}
			r := h.admin("GET", "/v1/audit/events?"+q, "", 200)
			for _, e := range r.body["events"].([]any) {
				ids = append(ids, e.(map[string]any)["decision_id"].(string))
			}
			cursor, _ = r.body["next_cursor"].(string)
			if cursor == "" {
				return ids
			}
		}
		t.Fatal("pagination did not end")
		return nil
	}
	seen := map[string]bool{}
	for _, id := range walk("module=scaibunker&since=2020-01-01") {
		if seen[id] {
			t.Errorf("decision %s returned twice", id)
		}
		seen[id] = true
	}
	if len(seen) != 13 {
		t.Errorf("scaibunker rows = %d, want 13", len(seen))
	}
	if n := len(walk("module=scaiskills&tenant_id=t1&since=" + time.Now().Add(-time.Hour).UTC().Format(time.RFC3339))); n != 12 {
		t.Errorf("scaiskills rows = %d, want 12", n)
	}
	if n := len(walk("actor_user_id=ua&decision=denied")); n != 9 {
		t.Errorf("ua rows = %d, want 9", n)
	}
	if n := len(walk("module=scaibunker&until=2020-01-01")); n != 0 {
		t.Errorf("rows before 2020 = %d", n)
	}
}

// TestActorHeader: X-Actor-User-Id is validated on every writing route, token management included
// (it used to reach the token rows unchecked): a malformed one is 400 and nothing is created.
func TestActorHeader(t *testing.T) {
	h := mustStart(t, "memory")
	for _, tc := range []struct{ name, method, path, body string }{
		{"Provision", "PUT", "/v1/partners/p-bad-actor", ""},
		{"TokenCreate", "POST", "/v1/tokens", `{"name":"bad-actor","scopes":["check"]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.do(tc.method, tc.path, h.adminToken, tc.body, "X-Actor-User-Id", "not a subject!")
			if r.status != 400 || !strings.Contains(r.raw, "X-Actor-User-Id") {
				t.Fatalf("status %d, want 400 naming X-Actor-User-Id: %s", r.status, r.raw)
			}
		})
	}
	if r := h.admin("GET", "/v1/tokens", "", 200); strings.Contains(r.raw, "bad-actor") {
		t.Errorf("a token was created despite the bad actor header: %s", r.raw)
	}
	h.admin("PUT", "/v1/tenants/t-x", `{"partner_id":"p-bad-actor"}`, 404) // the partner was not created
	// A valid actor is recorded.
	r := h.do("POST", "/v1/tokens", h.adminToken, `{"name":"good-actor","scopes":["check"]}`, "X-Actor-User-Id", "sa:ops-bot")
	if r.status != 201 {
		t.Fatalf("create token with a valid actor: %d %s", r.status, r.raw)
	}
}
