package app_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/scailabs/authzd/api"
)

// scopeFixture provisions what every case of the scope table reads or
// writes: partners p1 (t1, t2) and p2 (t3); in t1 and t3 a role ops held by
// alice, a tenant admin, and a bunker b1 owned by alice. It returns the
// token of its last write.
func (h *harness) scopeFixture() string {
	h.t.Helper()
	h.admin("PUT", "/v1/partners/p1", "", 200)
	h.admin("PUT", "/v1/partners/p2", "", 200)
	h.admin("PUT", "/v1/tenants/t1", `{"partner_id":"p1"}`, 200)
	h.admin("PUT", "/v1/tenants/t2", `{"partner_id":"p1"}`, 200)
	h.admin("PUT", "/v1/tenants/t3", `{"partner_id":"p2"}`, 200)
	var zt string
	for _, tn := range []string{"t1", "t3"} {
		h.admin("PUT", "/v1/tenants/"+tn+"/roles/ops", `{"name":"Ops","module_permissions":["scaibunker:create","scaibunker:execute"]}`, 200)
		h.admin("PUT", "/v1/tenants/"+tn+"/roles/ops/members/alice", "", 200)
		h.admin("PUT", "/v1/tenants/"+tn+"/roles/tenant_admin/members/adm", "", 200)
		zt = token(h.admin("PUT", "/v1/tenants/"+tn+"/resources/bunker/b1", `{"owner_id":"alice"}`, 200))
	}
	return zt
}

// graphState reads what the scope table's writes could change, fresh: the
// tenants, roles and members of t1..t3, and u9's and alice's grants at least
// as fresh as a marker write made after whatever came before.
func (h *harness) graphState() string {
	h.t.Helper()
	var b strings.Builder
	b.WriteString(h.admin("GET", "/v1/tenants", "", 200).raw)
	for _, tn := range []string{"t1", "t2", "t3"} {
		b.WriteString(h.do("GET", "/v1/tenants/"+tn+"/roles", h.adminToken, "").raw)
		b.WriteString(h.do("GET", "/v1/tenants/"+tn+"/members", h.adminToken, "").raw)
	}
	zt := token(h.admin("PUT", "/v1/partners/pmark", "", 200))
	var items []string
	for _, tn := range []string{"t1", "t2", "t3"} {
		for _, key := range []string{"scaibunker:create", "scaibunker:admin:platform", "scaiskills:grant"} {
			items = append(items, checkBody(tn, "u9", key, zt))
		}
		items = append(items, checkBody(tn, "alice", "scaibunker:execute", zt, "bunker", "b1"),
			checkBody(tn, "alice", "scaibunker:execute", zt, "bunker", "b9"))
	}
	r := h.admin("POST", "/v1/permissions/check_bulk", `{"items":[`+strings.Join(items, ",")+`]}`, 200)
	for _, res := range r.body["results"].([]any) {
		fmt.Fprint(&b, res.(map[string]any)["allowed"], " ")
	}
	return b.String()
}

// mintToken creates a token with the bootstrap token and returns its secret and id.
func (h *harness) mintToken(name string, scopes, tenants []string) (secret, id string) {
	h.t.Helper()
	body := map[string]any{"name": name, "scopes": scopes}
	if tenants != nil {
		body["tenants"] = tenants
	}
	raw, _ := json.Marshal(body)
	r := h.admin("POST", "/v1/tokens", string(raw), 201)
	return r.body["token"].(string), r.body["id"].(string)
}

// routeScopes reads each route's x-authzd-scope from api/openapi.yaml ("" for
// routes without authentication).
func routeScopes(t *testing.T) map[string]string {
	var doc struct {
		Paths map[string]map[string]yaml.Node `yaml:"paths"`
	}
	if err := yaml.Unmarshal(api.OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for path, item := range doc.Paths {
		for method, node := range item {
			var op struct {
				Scope string `yaml:"x-authzd-scope"`
			}
			if method == "parameters" {
				continue
			}
			if err := node.Decode(&op); err != nil {
				t.Fatal(err)
			}
			out[strings.ToUpper(method)+" "+path] = op.Scope
		}
	}
	return out
}

var allScopes = []string{"check", "provision", "audit:read", "admin"}

// scopeReq is one request of the scope table.
type scopeReq struct{ method, path, body string }

// scopeCase says how to call a route about a tenant and how a
// tenant-scoped token is confined on it.
type scopeCase struct {
	req func(h *harness, tenant string) scopeReq
	ok  int // the status of an allowed call
	// reach: a scoped token is refused for a tenant it does not reach.
	// every: a scoped token is refused whatever the tenant.
	// item: the request is answered 200 and its single item is refused.
	reach, every, item bool
}

func fixed(method, path, body string) func(*harness, string) scopeReq {
	return func(*harness, string) scopeReq { return scopeReq{method, path, body} }
}

func inTenant(method, path, body string) func(*harness, string) scopeReq {
	return func(_ *harness, tn string) scopeReq {
		return scopeReq{method, strings.ReplaceAll(path, "{t}", tn), strings.ReplaceAll(body, "{t}", tn)}
	}
}

var scopeCases = map[string]scopeCase{
	"GET /healthz":                           {req: fixed("GET", "/healthz", ""), ok: 200},
	"GET /readyz":                            {req: fixed("GET", "/readyz", ""), ok: 200},
	"GET /metrics":                           {req: fixed("GET", "/metrics", ""), ok: 200},
	"GET /v1/openapi.yaml":                   {req: fixed("GET", "/v1/openapi.yaml", ""), ok: 200},
	"GET /.well-known/authzen-configuration": {req: fixed("GET", "/.well-known/authzen-configuration", ""), ok: 200},

	"POST /access/v1/evaluation": {req: inTenant("POST", "/access/v1/evaluation",
		`{"subject":{"type":"user","id":"alice"},"action":{"name":"scaibunker:create"},"resource":{"type":"tenant","id":"{t}"}}`), ok: 200, reach: true},
	"POST /access/v1/evaluations": {req: inTenant("POST", "/access/v1/evaluations",
		`{"subject":{"type":"user","id":"alice"},"action":{"name":"scaibunker:create"},"evaluations":[{"resource":{"type":"tenant","id":"{t}"}}]}`), ok: 200, item: true},
	"POST /access/v1/search/subject": {req: inTenant("POST", "/access/v1/search/subject",
		`{"subject":{"type":"user"},"action":{"name":"scaibunker:create"},"resource":{"type":"tenant","id":"{t}"}}`), ok: 200, reach: true},
	"POST /access/v1/search/resource": {req: inTenant("POST", "/access/v1/search/resource",
		`{"subject":{"type":"user","id":"alice"},"action":{"name":"scaibunker:execute"},"resource":{"type":"bunker","properties":{"tenant_id":"{t}"}}}`), ok: 200, reach: true},
	"POST /access/v1/search/action": {req: inTenant("POST", "/access/v1/search/action",
		`{"subject":{"type":"user","id":"alice"},"resource":{"type":"tenant","id":"{t}"}}`), ok: 200, reach: true},

	"POST /v1/permissions/check":                              {req: inTenant("POST", "/v1/permissions/check", `{"tenant_id":"{t}","user_id":"alice","permission":"scaibunker:create"}`), ok: 200, reach: true},
	"POST /v1/permissions/check_bulk":                         {req: inTenant("POST", "/v1/permissions/check_bulk", `{"items":[{"tenant_id":"{t}","user_id":"alice","permission":"scaibunker:create"}]}`), ok: 200, item: true},
	"POST /v1/permissions/explain":                            {req: inTenant("POST", "/v1/permissions/explain", `{"tenant_id":"{t}","user_id":"alice","permission":"scaibunker:create"}`), ok: 200, reach: true},
	"GET /v1/permissions/keys":                                {req: fixed("GET", "/v1/permissions/keys", ""), ok: 200},
	"GET /v1/tenants/{tenant_id}/users/{user_id}/permissions": {req: inTenant("GET", "/v1/tenants/{t}/users/alice/permissions", ""), ok: 200, reach: true},
	"GET /v1/tenants":                                         {req: fixed("GET", "/v1/tenants", ""), ok: 200},
	"GET /v1/tenants/{tenant_id}/roles":                       {req: inTenant("GET", "/v1/tenants/{t}/roles", ""), ok: 200, reach: true},
	"GET /v1/tenants/{tenant_id}/members":                     {req: inTenant("GET", "/v1/tenants/{t}/members", ""), ok: 200, reach: true},

	"PUT /v1/partners/{partner_id}":                     {req: fixed("PUT", "/v1/partners/p9", ""), ok: 200, every: true},
	"DELETE /v1/partners/{partner_id}":                  {req: fixed("DELETE", "/v1/partners/pmark", ""), ok: 200, every: true},
	"PUT /v1/partners/{partner_id}/admins/{user_id}":    {req: fixed("PUT", "/v1/partners/p2/admins/u9", ""), ok: 200, every: true},
	"DELETE /v1/partners/{partner_id}/admins/{user_id}": {req: fixed("DELETE", "/v1/partners/p2/admins/u9", ""), ok: 200, every: true},
	"PUT /v1/platform/super_admins/{user_id}":           {req: fixed("PUT", "/v1/platform/super_admins/u9", ""), ok: 200, every: true},
	"DELETE /v1/platform/super_admins/{user_id}":        {req: fixed("DELETE", "/v1/platform/super_admins/u9", ""), ok: 200, every: true},
	"PUT /v1/tenants/{tenant_id}": {req: func(_ *harness, tn string) scopeReq {
		return scopeReq{"PUT", "/v1/tenants/" + tn, `{"partner_id":"p1"}`}
	}, ok: 200, reach: true},
	"DELETE /v1/tenants/{tenant_id}":                                   {req: inTenant("DELETE", "/v1/tenants/{t}", ""), ok: 200, reach: true},
	"PUT /v1/tenants/{tenant_id}/roles/{role_id}":                      {req: inTenant("PUT", "/v1/tenants/{t}/roles/ops", `{"name":"Ops","module_permissions":["scaiskills:grant"]}`), ok: 200, reach: true},
	"GET /v1/tenants/{tenant_id}/roles/{role_id}":                      {req: inTenant("GET", "/v1/tenants/{t}/roles/ops", ""), ok: 200, reach: true},
	"DELETE /v1/tenants/{tenant_id}/roles/{role_id}":                   {req: inTenant("DELETE", "/v1/tenants/{t}/roles/ops", ""), ok: 200, reach: true},
	"PUT /v1/tenants/{tenant_id}/roles/{role_id}/members/{user_id}":    {req: inTenant("PUT", "/v1/tenants/{t}/roles/ops/members/u9", ""), ok: 200, reach: true},
	"DELETE /v1/tenants/{tenant_id}/roles/{role_id}/members/{user_id}": {req: inTenant("DELETE", "/v1/tenants/{t}/roles/ops/members/alice", ""), ok: 200, reach: true},
	"PUT /v1/tenants/{tenant_id}/resources/{type}/{resource_id}":       {req: inTenant("PUT", "/v1/tenants/{t}/resources/bunker/b9", `{"owner_id":"alice"}`), ok: 200, reach: true},
	"DELETE /v1/tenants/{tenant_id}/resources/{type}/{resource_id}":    {req: inTenant("DELETE", "/v1/tenants/{t}/resources/bunker/b1", ""), ok: 200, reach: true},

	"GET /v1/audit/events":    {req: inTenant("GET", "/v1/audit/events?tenant_id={t}", ""), ok: 200, reach: true},
	"GET /v1/audit/rotations": {req: fixed("GET", "/v1/audit/rotations", ""), ok: 200},
	"GET /v1/audit/chain":     {req: fixed("GET", "/v1/audit/chain", ""), ok: 200, every: true},

	// The table sends JSON: an import document must be NDJSON, so the
	// bootstrap token's import is the 400 that names the content type.
	"POST /v1/import":       {req: fixed("POST", "/v1/import?dry_run=true", `{"kind":"partner","partner_id":"p9"}`), ok: 400, every: true},
	"GET /v1/import/status": {req: fixed("GET", "/v1/import/status?import_id=none", ""), ok: 200, every: true},
	"GET /v1/export":        {req: fixed("GET", "/v1/export", ""), ok: 200, every: true},
	"GET /v1/shadow/report": {req: fixed("GET", "/v1/shadow/report?since=2020-01-01T00:00:00Z", ""), ok: 200, every: true},
	"POST /v1/whatif": {req: inTenant("POST", "/v1/whatif", `{"tenant_id":"{t}","since":"2020-01-01T00:00:00Z","changes":[]}`),
		ok: 200, reach: true},
	"GET /v1/audit/checkpoints": {req: fixed("GET", "/v1/audit/checkpoints", ""), ok: 200},
	"GET /v1/audit/keys":        {req: fixed("GET", "/v1/audit/keys", ""), ok: 200},

	"POST /v1/tokens": {req: inTenant("POST", "/v1/tokens", `{"name":"minted","scopes":["check"],"tenants":["{t}"]}`), ok: 201, reach: true},
	"GET /v1/tokens":  {req: fixed("GET", "/v1/tokens", ""), ok: 200},
	"DELETE /v1/tokens/{token_id}": {req: func(h *harness, tn string) scopeReq {
		_, id := h.mintToken("doomed", []string{"check"}, []string{tn})
		return scopeReq{"DELETE", "/v1/tokens/" + id, ""}
	}, ok: 200, reach: true},
}

// TestTenantScopeTable: every route x token kind x tenant answers the status
// the route's tenant rule gives, and a refused request changes nothing.
func TestTenantScopeTable(t *testing.T) {
	h := mustStart(t, "memory")
	h.scopeFixture()
	scopes := routeScopes(t)
	routes, err := api.Routes()
	if err != nil {
		t.Fatal(err)
	}

	type kind struct {
		name    string
		secret  string
		scoped  bool // reaches t1 (and t2), not t3
		lacking bool // lacks the route's scope
	}
	unscoped, _ := h.mintToken("unscoped", allScopes, nil)
	t1, _ := h.mintToken("t1-all", allScopes, []string{"t1"})
	t12, _ := h.mintToken("t1-t2-all", allScopes, []string{"t1", "t2"})
	lacking := map[string]string{}
	for _, s := range allScopes {
		lacking[s], _ = h.mintToken("t1-without-"+s, slices.DeleteFunc(slices.Clone(allScopes), func(x string) bool { return x == s }), []string{"t1"})
	}

	for _, route := range routes {
		c, ok := scopeCases[route]
		if !ok {
			t.Errorf("route %s has no case in the scope table", route)
			continue
		}
		scope := scopes[route]
		if strings.HasPrefix(route, "POST /access/v1/") {
			scope = "check"
		}
		kinds := []kind{{"bootstrap", h.adminToken, false, false}, {"unscoped", unscoped, false, false},
			{"t1", t1, true, false}, {"t1+t2", t12, true, false}}
		for _, sc := range strings.Fields(scope) { // a route may demand several scopes
			kinds = append(kinds, kind{"t1 without " + sc, lacking[sc], true, true})
		}
		for _, k := range kinds {
			for _, tn := range []string{"t1", "t3"} {
				want, itemRefused := c.ok, false
				switch {
				case k.lacking:
					want = 403
				case k.scoped && c.every:
					want = 403
				case k.scoped && c.reach && tn == "t3":
					want = 403
				case k.scoped && c.item && tn == "t3":
					itemRefused = true
				}
				req := c.req(h, tn)
				var before string
				var count int
				if want == 403 || itemRefused {
					before, count = h.graphState(), h.auditCount()
				}
				r := h.do(req.method, req.path, k.secret, req.body, "Content-Type", "application/json")
				name := fmt.Sprintf("%s as %s about %s", route, k.name, tn)
				if r.status != want {
					t.Errorf("%s: status %d, want %d: %.300s", name, r.status, want, r.raw)
				}
				if want == 403 && !strings.Contains(r.raw, `"code":"forbidden"`) {
					t.Errorf("%s: %.300s, want error code forbidden", name, r.raw)
				}
				if itemRefused && !strings.Contains(r.raw, `"allowed":false,"checked_at":"","decision_id":"","error":{"code":"forbidden"`) &&
					!strings.Contains(r.raw, `"decision":false,"context":{"error":{"status":403`) {
					t.Errorf("%s: %.300s, want its item refused as forbidden", name, r.raw)
				}
				if want == 403 || itemRefused {
					if n := h.auditCount(); n != count {
						t.Errorf("%s: the refusal added %d audit rows", name, n-count)
					}
					if after := h.graphState(); after != before {
						t.Errorf("%s: the refusal changed the graph:\nbefore %s\nafter  %s", name, before, after)
					}
				}
				if req.method != "GET" && req.method != "POST" && r.status < 300 {
					h.scopeFixture() // an allowed write: start the next case from the same state
				}
			}
		}
	}
}

// TestTenantScopedTokens: what a tenant-scoped token sees of mixed requests,
// the audit trail, searches, and the tokens it may mint, list and revoke.
func TestTenantScopedTokens(t *testing.T) {
	h := mustStart(t, "memory")
	zt := h.scopeFixture()
	t1, t1ID := h.mintToken("acme-admin", allScopes, []string{"t1"})
	json1 := []string{"Content-Type", "application/json"}

	t.Run("mixed bulk", func(t *testing.T) {
		before := h.auditCount()
		r := h.do("POST", "/v1/permissions/check_bulk", t1, `{"items":[`+checkBody("t1", "alice", "scaibunker:create", zt)+","+
			checkBody("t3", "alice", "scaibunker:create", zt)+`]}`)
		res, _ := r.body["results"].([]any)
		if r.status != 200 || len(res) != 2 {
			t.Fatalf("status %d: %s", r.status, r.raw)
		}
		if a := res[0].(map[string]any); a["allowed"] != true || a["decision_id"] == "" {
			t.Errorf("t1 item: %v, want allowed", a)
		}
		b := res[1].(map[string]any)
		if b["allowed"] != false || b["error"].(map[string]any)["code"] != "forbidden" ||
			b["error"].(map[string]any)["message"] != `token "acme-admin" reaches ["t1"], not "t3"` {
			t.Errorf("t3 item: %v, want not allowed, forbidden, naming both", b)
		}
		if n := h.auditCount() - before; n != 1 {
			t.Errorf("%d audit rows, want 1 (the t1 item only)", n)
		}
	})

	t.Run("mixed evaluations", func(t *testing.T) {
		r := h.do("POST", "/access/v1/evaluations", t1, `{"subject":{"type":"user","id":"alice"},"action":{"name":"scaibunker:create"},`+
			`"evaluations":[{"resource":{"type":"tenant","id":"t1"}},{"resource":{"type":"tenant","id":"t3"}},{"resource":{"type":"bunker","id":"b1","properties":{"tenant_id":"t3"}}}]}`, json1...)
		ev, _ := r.body["evaluations"].([]any)
		if r.status != 200 || len(ev) != 3 {
			t.Fatalf("status %d: %s", r.status, r.raw)
		}
		if ev[0].(map[string]any)["decision"] != true {
			t.Errorf("t1: %v, want true", ev[0])
		}
		for _, e := range ev[1:] {
			if e.(map[string]any)["decision"] != false || !strings.Contains(fmt.Sprint(e), "status:403") {
				t.Errorf("t3: %v, want false with a 403 error", e)
			}
		}
	})

	t.Run("search over tenants", func(t *testing.T) {
		body := `{"subject":{"type":"user","id":"alice"},"action":{"name":"scaibunker:create"},"resource":{"type":"tenant"}}`
		want := map[string]string{t1: `[{"id":"t1","type":"tenant"}]`, h.adminToken: `[{"id":"t1","type":"tenant"},{"id":"t3","type":"tenant"}]`}
		for tok, w := range want {
			r := h.do("POST", "/access/v1/search/resource", tok, body, json1...)
			if got, _ := json.Marshal(r.body["results"]); string(got) != w {
				t.Errorf("results %s, want %s", got, w)
			}
		}
	})

	t.Run("audit rows", func(t *testing.T) {
		h.check(checkBody("t3", "alice", "scaibunker:create", zt))
		all := h.admin("GET", "/v1/audit/events?limit=1000", "", 200)
		seen := map[string]bool{}
		for _, e := range all.body["events"].([]any) {
			seen[e.(map[string]any)["tenant_id"].(string)] = true
		}
		if !seen["t1"] || !seen["t3"] || !seen[""] {
			t.Fatalf("the trail lacks rows of t1, t3 or no tenant: %v", seen)
		}
		r := h.do("GET", "/v1/audit/events?limit=1000", t1, "")
		events, _ := r.body["events"].([]any)
		if r.status != 200 || len(events) == 0 {
			t.Fatalf("status %d: %.300s", r.status, r.raw)
		}
		for _, e := range events {
			if tn := e.(map[string]any)["tenant_id"]; tn != "t1" {
				t.Errorf("a t1 token sees a row of tenant %q", tn)
			}
		}
		if r := h.do("GET", "/v1/audit/events?tenant_id=t3", t1, ""); r.status != 403 {
			t.Errorf("tenant_id=t3: status %d, want 403", r.status)
		}
	})

	t.Run("minting", func(t *testing.T) {
		cases := []struct {
			tok, body string
			want      int
			msg       string
		}{
			{t1, `{"name":"a","scopes":["check"],"tenants":["t1"]}`, 201, ""},
			{t1, `{"name":"a","scopes":["check"],"tenants":["t1","t3"]}`, 403, "more scopes or tenants"},
			{t1, `{"name":"a","scopes":["check"]}`, 403, "more scopes or tenants"},
			{h.adminToken, `{"name":"a","scopes":["check"],"tenants":[]}`, 400, "tenants must hold 1 to 100"},
			{h.adminToken, `{"name":"a","scopes":["check"],"tenants":["a b"]}`, 400, "tenants[0]"},
			{h.adminToken, `{"name":"a","scopes":["check"],"tenants":["t1","t1"]}`, 400, `tenants[1]: \"t1\" is repeated`},
			{h.adminToken, `{"name":"a","scopes":["check"],"tenants":` + hundredAndOne() + `}`, 400, "got 101"},
		}
		for _, c := range cases {
			before := h.auditCount()
			r := h.do("POST", "/v1/tokens", c.tok, c.body)
			if r.status != c.want || !strings.Contains(r.raw, c.msg) {
				t.Errorf("%s: status %d, want %d naming %q: %s", c.body, r.status, c.want, c.msg, r.raw)
			}
			if c.want != 201 && h.auditCount() != before {
				t.Errorf("%s: refused, but an audit row was added", c.body)
			}
		}
		lacking, _ := h.mintToken("no-provision", []string{"check", "admin"}, []string{"t1"})
		if r := h.do("POST", "/v1/tokens", lacking, `{"name":"a","scopes":["provision"],"tenants":["t1"]}`); r.status != 403 {
			t.Errorf("minting a scope it lacks: status %d, want 403", r.status)
		}
	})

	t.Run("token.create row records tenants", func(t *testing.T) {
		r := h.admin("GET", "/v1/audit/events?module=authzd&limit=1000", "", 200)
		found := false
		for _, e := range r.body["events"].([]any) {
			m := e.(map[string]any)
			if m["action"] == "token.create" && m["resource_id"] == t1ID {
				found = fmt.Sprint(m["details"].(map[string]any)["tenants"]) == "[t1]"
			}
		}
		if !found {
			t.Errorf("no token.create row of %s with tenants [t1]", t1ID)
		}
	})

	t.Run("list and revoke within its tenants", func(t *testing.T) {
		_, other := h.mintToken("globex", []string{"check"}, []string{"t3"})
		_, both := h.mintToken("both", []string{"check"}, []string{"t1", "t3"})
		_, mine := h.mintToken("mine", []string{"check"}, []string{"t1"})
		r := h.do("GET", "/v1/tokens", t1, "")
		for _, tok := range r.body["tokens"].([]any) {
			m := tok.(map[string]any)
			if fmt.Sprint(m["tenants"]) != "[t1]" {
				t.Errorf("a t1 token lists %v (tenants %v)", m["name"], m["tenants"])
			}
		}
		if !strings.Contains(r.raw, mine) {
			t.Errorf("a t1 token does not list its tenant's token %s", mine)
		}
		for _, id := range []string{other, both, "nonexistent"} {
			if r := h.do("DELETE", "/v1/tokens/"+id, t1, ""); r.status != 403 && !(id == "nonexistent" && r.status == 404) {
				t.Errorf("revoking %s: status %d: %s", id, r.status, r.raw)
			}
		}
		if r := h.do("DELETE", "/v1/tokens/"+mine, t1, ""); r.status != 200 {
			t.Errorf("revoking its tenant's token: status %d: %s", r.status, r.raw)
		}
		for _, tok := range h.admin("GET", "/v1/tokens", "", 200).body["tokens"].([]any) {
			m := tok.(map[string]any)
			if _, revoked := m["revoked_at"]; revoked != (m["id"] == mine) {
				t.Errorf("token %v: revoked %v, want only %s revoked", m["id"], revoked, mine)
			}
		}
	})
}

func hundredAndOne() string {
	ids := make([]string, 101)
	for i := range ids {
		ids[i] = fmt.Sprintf("%q", fmt.Sprintf("t%d", i))
	}
	return "[" + strings.Join(ids, ",") + "]"
}

// TestListRoutes: tenants, a tenant's roles (built-in and custom, with keys
// and member counts) and members, paged.
func TestListRoutes(t *testing.T) {
	h := mustStart(t, "memory")
	h.scopeFixture()
	h.admin("PUT", "/v1/tenants/t1/roles/tenant_viewer/members/sa:bot", "", 200)
	h.admin("PUT", "/v1/tenants/t1/roles/ops/members/adm", "", 200)

	r := h.admin("GET", "/v1/tenants?limit=2", "", 200)
	if got, _ := json.Marshal(r.body); string(got) != `{"next_cursor":"`+r.body["next_cursor"].(string)+`","tenants":[{"partner_id":"p1","tenant_id":"t1"},{"partner_id":"p1","tenant_id":"t2"}]}` || r.body["next_cursor"] == "" {
		t.Errorf("first page: %s", got)
	}
	r = h.admin("GET", "/v1/tenants?limit=2&cursor="+r.body["next_cursor"].(string), "", 200)
	if got, _ := json.Marshal(r.body); string(got) != `{"next_cursor":"","tenants":[{"partner_id":"p2","tenant_id":"t3"}]}` {
		t.Errorf("second page: %s", got)
	}

	r = h.admin("GET", "/v1/tenants/t1/roles", "", 200)
	roles, _ := r.body["roles"].([]any)
	if len(roles) != 4 {
		t.Fatalf("roles: %s", r.raw)
	}
	ops := roles[3].(map[string]any)
	if got, _ := json.Marshal(ops); string(got) != `{"builtin":false,"member_count":2,"module_permissions":["scaibunker:create","scaibunker:execute"],"name":"Ops","role_id":"ops"}` {
		t.Errorf("custom role: %s", got)
	}
	admin := roles[0].(map[string]any)
	if admin["role_id"] != "tenant_admin" || admin["builtin"] != true || admin["member_count"] != float64(1) || len(admin["module_permissions"].([]any)) == 0 {
		t.Errorf("tenant_admin: %v", admin)
	}

	r = h.admin("GET", "/v1/tenants/t1/members?limit=2", "", 200)
	if got, _ := json.Marshal(r.body["members"]); string(got) != `[{"roles":["ops","tenant_admin"],"user_id":"adm"},{"roles":["ops"],"user_id":"alice"}]` {
		t.Errorf("members page 1: %s", got)
	}
	r = h.admin("GET", "/v1/tenants/t1/members?cursor="+r.body["next_cursor"].(string), "", 200)
	if got, _ := json.Marshal(r.body); string(got) != `{"members":[{"roles":["tenant_viewer"],"user_id":"sa:bot"}],"next_cursor":""}` {
		t.Errorf("members page 2: %s", got)
	}
	h.admin("GET", "/v1/tenants/nope/roles", "", 404)
	h.admin("GET", "/v1/tenants/nope/members", "", 404)
	h.admin("GET", "/v1/tenants?limit=0", "", 400)
	h.admin("GET", "/v1/tenants?cursor=!!!", "", 400)
}
