package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// azWorld is one authzd provisioned with a small tenant for the AuthZEN and
// explain tests:
//
//	partner p1 with admin pat; platform super admin root
//	tenant t1 (p1): custom role ops {scaibunker:create, scaibunker:execute} with alice, sa:ci-bot;
//	                custom role approvers {scaiskills:grant} with alice, gina; tenant_viewer vera;
//	                tenant_admin tara
//	                bunker b1 (owner alice), bunker b2 (owner bob), binding x1 (bound by alice)
//	tenant t2 (p1): nothing
type azWorld struct {
	*harness
	tok string // zed token of the last write
	rid int
}

func mustAZWorld(t *testing.T) *azWorld {
	t.Helper()
	h := mustStart(t, "memory")
	h.admin("PUT", "/v1/partners/p1", "", 200)
	h.admin("PUT", "/v1/tenants/t1", `{"partner_id":"p1"}`, 200)
	h.admin("PUT", "/v1/tenants/t2", `{"partner_id":"p1"}`, 200)
	h.admin("PUT", "/v1/partners/p1/admins/pat", "", 200)
	h.admin("PUT", "/v1/platform/super_admins/root", "", 200)
	h.admin("PUT", "/v1/tenants/t1/roles/ops", `{"name":"Bot operators","module_permissions":["scaibunker:create","scaibunker:execute"]}`, 200)
	h.admin("PUT", "/v1/tenants/t1/roles/approvers", `{"name":"Approvers","module_permissions":["scaiskills:grant"]}`, 200)
	for _, m := range []string{"ops/members/alice", "ops/members/sa:ci-bot", "approvers/members/alice", "approvers/members/gina",
		"tenant_viewer/members/vera", "tenant_admin/members/tara"} {
		h.admin("PUT", "/v1/tenants/t1/roles/"+m, "", 200)
	}
	h.admin("PUT", "/v1/tenants/t1/resources/bunker/b1", `{"owner_id":"alice"}`, 200)
	h.admin("PUT", "/v1/tenants/t1/resources/bunker/b2", `{"owner_id":"bob"}`, 200)
	tok := token(h.admin("PUT", "/v1/tenants/t1/resources/binding/x1", `{"owner_id":"alice"}`, 200))
	return &azWorld{harness: h, tok: tok}
}

// post sends an AuthZEN request as JSON with the bootstrap token and a fresh
// X-Request-ID, which it returns so that the audit rows of the call can be found.
func (w *azWorld) post(path, body string) (response, string) {
	w.t.Helper()
	w.rid++
	rid := fmt.Sprintf("az-%d-%s", w.rid, w.t.Name())
	return w.do("POST", path, w.adminToken, strings.ReplaceAll(body, "TOK", w.tok),
		"Content-Type", "application/json", "X-Request-ID", rid), rid
}

type azAuditRow struct {
	Module, Action, Actor, Tenant, ResourceType, ResourceID, Permission, Decision, ZedToken, DecisionID, Client string
}

func (w *azWorld) auditRows(requestID string) []azAuditRow {
	w.t.Helper()
	conn, err := pgx.Connect(context.Background(), w.dbURL)
	if err != nil {
		w.t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(context.Background(), `SELECT module, action, actor_user_id, tenant_id, resource_type, resource_id,
		permission, decision, zed_token, decision_id::text, client FROM audit_events WHERE request_id = $1 ORDER BY id`, requestID)
	if err != nil {
		w.t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[azAuditRow])
	if err != nil {
		w.t.Fatal(err)
	}
	return out
}

// azEval builds an evaluation body; resource is "tenant:t1" or "bunker:t1/b1".
func azEval(subjType, subjID, key, resource string) string {
	typ, rest, _ := strings.Cut(resource, ":")
	res := map[string]any{"type": typ, "id": rest}
	if tenant, id, ok := strings.Cut(rest, "/"); ok {
		res = map[string]any{"type": typ, "id": id, "properties": map[string]any{"tenant_id": tenant}}
	}
	b, _ := json.Marshal(map[string]any{
		"subject": map[string]any{"type": subjType, "id": subjID}, "action": map[string]any{"name": key},
		"resource": res, "context": map[string]any{"consistency_token": "TOK"},
	})
	return string(b)
}

// v1Body is the /v1 check body of the question azEval asks.
func v1Body(subjType, subjID, key, resource string) string {
	user := subjID
	if subjType == "service_account" {
		user = "sa:" + subjID
	}
	typ, rest, _ := strings.Cut(resource, ":")
	if tenant, id, ok := strings.Cut(rest, "/"); ok {
		return checkBody(tenant, user, key, "TOK", typ, id)
	}
	return checkBody(rest, user, key, "TOK")
}

// v1Check asks the same question through POST /v1/permissions/check.
func (w *azWorld) v1Check(subjType, subjID, key, resource string) (bool, string) {
	w.t.Helper()
	r, _ := w.post("/v1/permissions/check", v1Body(subjType, subjID, key, resource))
	if r.status != 200 {
		w.t.Fatalf("check %s %s %s %s: %d %s", subjType, subjID, key, resource, r.status, r.raw)
	}
	return r.body["allowed"].(bool), r.raw
}

// TestAuthZENEvaluation: every evaluation answers what the same /v1 check
// answers, a deny is 200 {"decision": false}, and the audit row is the row of
// the equivalent check.
func TestAuthZENEvaluation(t *testing.T) {
	w := mustAZWorld(t)
	cases := []struct {
		name                     string
		subjType, subj, key, res string
		want                     bool
	}{
		{"custom role grants tenant key", "user", "alice", "scaibunker:create", "tenant:t1", true},
		{"deny is decision false", "user", "alice", "scaibunker:admin", "tenant:t1", false},
		{"custom role stays in its tenant", "user", "alice", "scaibunker:create", "tenant:t2", false},
		{"service account", "service_account", "ci-bot", "scaibunker:execute", "tenant:t1", true},
		{"owner with key", "user", "alice", "scaibunker:execute", "bunker:t1/b1", true},
		{"key without ownership", "user", "alice", "scaibunker:execute", "bunker:t1/b2", false},
		{"viewer lists bunkers", "user", "vera", "scaibunker:create", "bunker:t1/b2", true},
		{"binder cannot approve", "user", "alice", "scaiskills:grant", "binding:t1/x1", false},
		{"other approver can", "user", "gina", "scaiskills:grant", "binding:t1/x1", true},
		{"partner admin", "user", "pat", "scaibunker:admin:platform", "tenant:t1", true},
		{"super admin", "user", "root", "scaiskills:manage", "tenant:t2", true},
		{"unknown subject id is a deny", "user", "nobody", "scaibunker:create", "tenant:t1", false},
		{"unknown tenant is a deny", "user", "alice", "scaibunker:create", "tenant:t9", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w.t = t
			r, rid := w.post("/access/v1/evaluation", azEval(tc.subjType, tc.subj, tc.key, tc.res))
			if r.status != 200 || r.body["decision"] != tc.want {
				t.Fatalf("status %d, body %s; want 200 decision %v", r.status, r.raw, tc.want)
			}
			ctx, _ := r.body["context"].(map[string]any)
			if ctx["decision_id"] == "" || ctx["checked_at"] == "" || ctx["decision_id"] == nil || ctx["checked_at"] == nil {
				t.Errorf("context lacks decision_id or checked_at: %s", r.raw)
			}
			got, raw := w.v1Check(tc.subjType, tc.subj, tc.key, tc.res)
			if got != tc.want {
				t.Errorf("/v1/permissions/check answers %v (%s), AuthZEN %v", got, raw, tc.want)
			}
			rows := w.auditRows(rid)
			if len(rows) != 1 || rows[0].DecisionID != ctx["decision_id"] || rows[0].ZedToken != ctx["checked_at"] {
				t.Fatalf("audit rows %+v, want one with the answer's decision_id and checked_at", rows)
			}
		})
	}
	w.t = t

	t.Run("AuditedLikeACheck", func(t *testing.T) {
		w.t = t
		r, rid := w.post("/access/v1/evaluation", azEval("user", "alice", "scaibunker:execute", "bunker:t1/b1"))
		c, crid := w.post("/v1/permissions/check", checkBody("t1", "alice", "scaibunker:execute", "TOK", "bunker", "b1"))
		if r.status != 200 || c.status != 200 {
			t.Fatalf("%s / %s", r.raw, c.raw)
		}
		az, v1 := w.auditRows(rid), w.auditRows(crid)
		if len(az) != 1 || len(v1) != 1 {
			t.Fatalf("rows %v %v", az, v1)
		}
		az[0].DecisionID, v1[0].DecisionID, az[0].ZedToken, v1[0].ZedToken = "", "", "", ""
		if az[0] != v1[0] {
			t.Errorf("AuthZEN row %+v differs from check row %+v", az[0], v1[0])
		}
		if az[0].Decision != "allowed" || az[0].ResourceType != "bunker" || az[0].ResourceID != "b1" || az[0].Action != "scaibunker:execute" {
			t.Errorf("row %+v", az[0])
		}
	})

	t.Run("SpecShapes", func(t *testing.T) {
		w.t = t
		for name, body := range map[string]string{
			// Receivers MUST ignore unknown fields (certification c-2-2-9), and properties beyond the mapping (c-2-2-8).
			"UnknownFields": `{"subject":{"type":"user","id":"alice"},"action":{"name":"scaibunker:create"},"resource":{"type":"tenant","id":"t1"},"context":{"consistency_token":"TOK"},"foo":"bar","futureField":{"nested":true}}`,
			"Properties":    `{"subject":{"type":"user","id":"alice","properties":{"department":"Sales"}},"action":{"name":"scaibunker:create","properties":{"method":"GET"}},"resource":{"type":"tenant","id":"t1","properties":{"owner":"x"}},"context":{"consistency_token":"TOK","time":"2025-06-27T18:03-07:00"}}`,
		} {
			if r, _ := w.post("/access/v1/evaluation", body); r.status != 200 || r.body["decision"] != true {
				t.Errorf("%s: %d %s", name, r.status, r.raw)
			}
		}
		// Idempotency (c-2-6): the same request answers the same decision.
		for range 3 {
			if r, _ := w.post("/access/v1/evaluation", azEval("user", "bob", "scaibunker:execute", "bunker:t1/b2")); r.status != 200 || r.body["decision"] != false {
				t.Errorf("repeat: %d %s", r.status, r.raw)
			}
		}
	})
}

// TestAuthZENBadInput: every malformed request is 400 in the error shape
// {"error": {"status", "message"}} naming what is wrong, and decides and
// audits nothing.
func TestAuthZENBadInput(t *testing.T) {
	w := mustAZWorld(t)
	ok := `"subject":{"type":"user","id":"alice"},"action":{"name":"scaibunker:create"},"resource":{"type":"tenant","id":"t1"}`
	cases := []struct {
		name, path, body, contentType, mention string
	}{
		{"MissingSubject", "/access/v1/evaluation", `{"action":{"name":"scaibunker:create"},"resource":{"type":"tenant","id":"t1"}}`, "", "subject is required"},
		{"MissingAction", "/access/v1/evaluation", `{"subject":{"type":"user","id":"alice"},"resource":{"type":"tenant","id":"t1"}}`, "", "action is required"},
		{"MissingResource", "/access/v1/evaluation", `{"subject":{"type":"user","id":"alice"},"action":{"name":"scaibunker:create"}}`, "", "resource is required"},
		{"SubjectWithoutType", "/access/v1/evaluation", `{"subject":{"id":"alice"},"action":{"name":"scaibunker:create"},"resource":{"type":"tenant","id":"t1"}}`, "", "subject.type is required"},
		{"SubjectWithoutID", "/access/v1/evaluation", `{"subject":{"type":"user"},"action":{"name":"scaibunker:create"},"resource":{"type":"tenant","id":"t1"}}`, "", "subject.id is required"},
		{"ActionWithoutName", "/access/v1/evaluation", `{"subject":{"type":"user","id":"alice"},"action":{},"resource":{"type":"tenant","id":"t1"}}`, "", "action.name is required"},
		{"ResourceWithoutType", "/access/v1/evaluation", `{"subject":{"type":"user","id":"alice"},"action":{"name":"scaibunker:create"},"resource":{"id":"t1"}}`, "", "resource.type is required"},
		{"ResourceWithoutID", "/access/v1/evaluation", `{"subject":{"type":"user","id":"alice"},"action":{"name":"scaibunker:create"},"resource":{"type":"tenant"}}`, "", "resource.id is required"},
		{"BunkerWithoutID", "/access/v1/evaluation", `{"subject":{"type":"user","id":"alice"},"action":{"name":"scaibunker:execute"},"resource":{"type":"bunker","properties":{"tenant_id":"t1"}}}`, "", "resource.id is required"},
		{"BunkerWithoutTenant", "/access/v1/evaluation", `{"subject":{"type":"user","id":"alice"},"action":{"name":"scaibunker:execute"},"resource":{"type":"bunker","id":"b1"}}`, "", "resource.properties.tenant_id is required"},
		{"TenantIDNotString", "/access/v1/evaluation", `{"subject":{"type":"user","id":"alice"},"action":{"name":"scaibunker:execute"},"resource":{"type":"bunker","id":"b1","properties":{"tenant_id":7}}}`, "", "tenant_id must be a string"},
		{"UnknownSubjectType", "/access/v1/evaluation", `{"subject":{"type":"group","id":"g"},"action":{"name":"scaibunker:create"},"resource":{"type":"tenant","id":"t1"}}`, "", `subject.type "group"`},
		{"UnknownResourceType", "/access/v1/evaluation", `{"subject":{"type":"user","id":"alice"},"action":{"name":"scaibunker:create"},"resource":{"type":"record","id":"r1"}}`, "", `resource.type "record"`},
		{"UnknownKey", "/access/v1/evaluation", `{"subject":{"type":"user","id":"alice"},"action":{"name":"scaibunker:fly"},"resource":{"type":"tenant","id":"t1"}}`, "", "unknown permission key"},
		{"KeyNotOnResourceType", "/access/v1/evaluation", `{"subject":{"type":"user","id":"alice"},"action":{"name":"scaiskills:view"},"resource":{"type":"bunker","id":"b1","properties":{"tenant_id":"t1"}}}`, "", "does not apply"},
		{"BadSubjectID", "/access/v1/evaluation", `{"subject":{"type":"user","id":"a#b"},"action":{"name":"scaibunker:create"},"resource":{"type":"tenant","id":"t1"}}`, "", "subject.id"},
		{"SubjectIsString", "/access/v1/evaluation", `{"subject":"alice",` + ok[strings.Index(ok, `"action"`):] + `}`, "", "subject"},
		{"ActionNameIsNumber", "/access/v1/evaluation", `{"subject":{"type":"user","id":"alice"},"action":{"name":123},"resource":{"type":"tenant","id":"t1"}}`, "", "name"},
		{"MalformedJSON", "/access/v1/evaluation", `{"subject":`, "", "JSON"},
		{"EmptyBody", "/access/v1/evaluation", ``, "", "empty"},
		{"TrailingData", "/access/v1/evaluation", `{` + ok + `} {}`, "", "after the JSON object"},
		{"NotJSONContentType", "/access/v1/evaluation", `{` + ok + `}`, "text/plain", "Content-Type"},
		{"FormContentType", "/access/v1/evaluation", `{` + ok + `}`, "application/x-www-form-urlencoded", "Content-Type"},
		{"BadConsistencyToken", "/access/v1/evaluation", `{` + ok + `,"context":{"consistency_token":"garbage"}}`, "", "consistency_token"},
		{"ConsistencyTokenNotString", "/access/v1/evaluation", `{` + ok + `,"context":{"consistency_token":5}}`, "", "consistency_token must be a string"},
		{"BadSemantic", "/access/v1/evaluations", `{` + ok + `,"options":{"evaluations_semantic":"first"},"evaluations":[{}]}`, "", "evaluations_semantic"},
		{"TooManyEvaluations", "/access/v1/evaluations", `{` + ok + `,"evaluations":[` + strings.Repeat(`{},`, 100) + `{}]}`, "", "the limit is 100"},
		{"EvaluationsNotArray", "/access/v1/evaluations", `{` + ok + `,"evaluations":{}}`, "", "evaluations"},
		{"SearchMissingAction", "/access/v1/search/subject", `{"subject":{"type":"user"},"resource":{"type":"tenant","id":"t1"}}`, "", "action is required"},
		{"SearchMissingSubject", "/access/v1/search/resource", `{"action":{"name":"scaibunker:create"},"resource":{"type":"tenant"}}`, "", "subject is required"},
		{"SearchMissingResource", "/access/v1/search/action", `{"subject":{"type":"user","id":"alice"}}`, "", "resource is required"},
		{"SubjectSearchResourceWithoutID", "/access/v1/search/subject", `{"subject":{"type":"user"},"action":{"name":"scaibunker:create"},"resource":{"type":"tenant"}}`, "", "resource.id is required"},
		{"ResourceSearchSubjectWithoutID", "/access/v1/search/resource", `{"subject":{"type":"user"},"action":{"name":"scaibunker:create"},"resource":{"type":"tenant"}}`, "", "subject.id is required"},
		{"ActionSearchSubjectWithoutID", "/access/v1/search/action", `{"subject":{"type":"user"},"resource":{"type":"tenant","id":"t1"}}`, "", "subject.id is required"},
		{"ResourceSearchWithoutTenant", "/access/v1/search/resource", `{"subject":{"type":"user","id":"alice"},"action":{"name":"scaibunker:execute"},"resource":{"type":"bunker"}}`, "", "tenant_id is required"},
		{"SearchUnknownKey", "/access/v1/search/subject", `{"subject":{"type":"user"},"action":{"name":"nope:nope"},"resource":{"type":"tenant","id":"t1"}}`, "", "unknown permission key"},
		{"NegativeLimit", "/access/v1/search/subject", `{"subject":{"type":"user"},"action":{"name":"scaibunker:create"},"resource":{"type":"tenant","id":"t1"},"page":{"limit":-1}}`, "", "page.limit"},
		{"ForeignPageToken", "/access/v1/search/subject", `{"subject":{"type":"user"},"action":{"name":"scaibunker:create"},"resource":{"type":"tenant","id":"t1"},"page":{"token":"bm90LWEtdG9rZW4"}}`, "", "page.token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w.t = t
			ct := tc.contentType
			if ct == "" {
				ct = "application/json; charset=utf-8"
			}
			rid := "bad-" + tc.name
			r := w.do("POST", tc.path, w.adminToken, strings.ReplaceAll(tc.body, "TOK", w.tok), "Content-Type", ct, "X-Request-ID", rid)
			e, _ := r.body["error"].(map[string]any)
			if r.status != 400 || e == nil || e["status"] != float64(400) || !strings.Contains(fmt.Sprint(e["message"]), tc.mention) {
				t.Errorf("status %d body %s; want 400 with error.status 400 and a message naming %q", r.status, r.raw, tc.mention)
			}
			if rows := w.auditRows(rid); len(rows) != 0 {
				t.Errorf("a rejected request left audit rows: %+v", rows)
			}
		})
	}
	w.t = t
	if r := w.do("POST", "/access/v1/evaluation", w.adminToken, `{`+ok+`}`); r.status != 400 {
		t.Errorf("no Content-Type: %d %s", r.status, r.raw)
	}
}

// TestAuthZENAuth: the bearer tokens and scope of /v1 checks.
func TestAuthZENAuth(t *testing.T) {
	w := mustAZWorld(t)
	body := azEval("user", "alice", "scaibunker:create", "tenant:t1")
	hdr := []string{"Content-Type", "application/json"}
	r := w.do("POST", "/access/v1/evaluation", "", body, hdr...)
	if r.status != 401 || r.body["error"] == nil {
		t.Errorf("no token: %d %s", r.status, r.raw)
	}
	// A 401 carries WWW-Authenticate (Security Considerations, Sender Authentication Failure).
	req, _ := http.NewRequest("POST", w.url+"/access/v1/evaluation", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer wrong")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("wrong token: %d, WWW-Authenticate %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	// Oversized bodies are refused before they are read whole (Availability & Denial of Service).
	big := `{"subject":{"type":"user","id":"alice","properties":{"pad":"` + strings.Repeat("x", 1<<17) + `"}}}`
	if r := w.do("POST", "/access/v1/evaluation", w.adminToken, big, hdr...); r.status != 413 {
		t.Errorf("oversized body: %d %s", r.status, r.raw)
	}
	created := w.admin("POST", "/v1/tokens", `{"name":"prov","scopes":["provision"]}`, 201)
	secret, _ := created.body["token"].(string)
	for _, p := range []string{"/access/v1/evaluation", "/access/v1/evaluations", "/access/v1/search/subject", "/access/v1/search/resource", "/access/v1/search/action"} {
		if r := w.do("POST", p, secret, body, hdr...); r.status != 403 {
			t.Errorf("%s without the check scope: %d %s", p, r.status, r.raw)
		}
	}
	checker := w.admin("POST", "/v1/tokens", `{"name":"pep","scopes":["check"]}`, 201)
	s2, _ := checker.body["token"].(string)
	if r := w.do("POST", "/access/v1/evaluation", s2, strings.ReplaceAll(body, "TOK", w.tok), hdr...); r.status != 200 || r.body["decision"] != true {
		t.Errorf("check-scoped token: %d %s", r.status, r.raw)
	}
}

// TestAuthZENRequestID: the PEP's X-Request-ID comes back unchanged, also on
// errors; without one, authzd makes one.
func TestAuthZENRequestID(t *testing.T) {
	w := mustAZWorld(t)
	for _, id := range []string{"bfe9eb29-ab87-4ca3-be83-a1d5d8305716", "an arbitrary string, with spaces"} {
		for _, body := range []string{azEval("user", "alice", "scaibunker:create", "tenant:t1"), `{}`} {
			req, _ := http.NewRequest("POST", w.url+"/access/v1/evaluation", strings.NewReader(strings.ReplaceAll(body, "TOK", w.tok)))
			req.Header.Set("Authorization", "Bearer "+w.adminToken)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Request-ID", id)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.Header.Get("X-Request-ID"); got != id {
				t.Errorf("status %d: X-Request-ID = %q, want %q", resp.StatusCode, got, id)
			}
		}
	}
	r := w.do("POST", "/access/v1/evaluation", w.adminToken, strings.ReplaceAll(azEval("user", "alice", "scaibunker:create", "tenant:t1"), "TOK", w.tok), "Content-Type", "application/json")
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
}

func decisions(t *testing.T, r response) []map[string]any {
	t.Helper()
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.raw)
	}
	if _, ok := r.body["decision"]; ok {
		t.Errorf("top-level decision beside evaluations: %s", r.raw)
	}
	raw, _ := r.body["evaluations"].([]any)
	out := make([]map[string]any, len(raw))
	for i, x := range raw {
		out[i], _ = x.(map[string]any)
		if _, ok := out[i]["decision"].(bool); !ok {
			t.Errorf("evaluations[%d] has no boolean decision: %s", i, r.raw)
		}
	}
	return out
}

func decisionValues(ds []map[string]any) []bool {
	out := make([]bool, len(ds))
	for i, d := range ds {
		out[i], _ = d["decision"].(bool)
	}
	return out
}

// TestAuthZENEvaluations: defaults, order, per-item errors, the three
// semantics, the single-evaluation form, and one audit row per decided item.
func TestAuthZENEvaluations(t *testing.T) {
	w := mustAZWorld(t)
	sem := func(s string) string { return `,"options":{"evaluations_semantic":"` + s + `"}` }
	top := `"subject":{"type":"user","id":"alice"},"action":{"name":"scaibunker:execute"},"context":{"consistency_token":"TOK"}`
	items := `"evaluations":[
		{"resource":{"type":"bunker","id":"b1","properties":{"tenant_id":"t1"}}},
		{"resource":{"type":"bunker","id":"b2","properties":{"tenant_id":"t1"}}},
		{"action":{"name":"scaibunker:create"},"resource":{"type":"tenant","id":"t1"}},
		{"subject":{"type":"user","id":"bob"},"resource":{"type":"bunker","id":"b2","properties":{"tenant_id":"t1"}}}]`

	cases := []struct {
		name, body string
		want       []bool
		decided    int    // audit rows
		reason     string // context.reason of the last item, when it ended the evaluations early
	}{
		{"ExecuteAllByDefault", `{` + top + `,` + items + `}`, []bool{true, false, true, false}, 4, ""},
		{"ExecuteAll", `{` + top + sem("execute_all") + `,` + items + `}`, []bool{true, false, true, false}, 4, ""},
		{"DenyOnFirstDeny", `{` + top + sem("deny_on_first_deny") + `,` + items + `}`, []bool{true, false}, 2, "deny_on_first_deny"},
		{"PermitOnFirstPermit", `{` + top + sem("permit_on_first_permit") + `,` + items + `}`, []bool{true}, 1, "permit_on_first_permit"},
		{"NoDefaults", `{"evaluations":[
			{"subject":{"type":"user","id":"alice"},"action":{"name":"scaibunker:create"},"resource":{"type":"tenant","id":"t1"},"context":{"consistency_token":"TOK"}},
			{"subject":{"type":"user","id":"bob"},"action":{"name":"scaibunker:create"},"resource":{"type":"tenant","id":"t1"},"context":{"consistency_token":"TOK"}}]}`, []bool{true, false}, 2, ""},
		{"EmptyItemInheritsEverything", `{` + top + `,"resource":{"type":"bunker","id":"b1","properties":{"tenant_id":"t1"}},"evaluations":[{},{"resource":{"type":"bunker","id":"b2","properties":{"tenant_id":"t1"}}}]}`, []bool{true, false}, 2, ""},
		{"PermitOnFirstPermitAllDeny", `{` + top + sem("permit_on_first_permit") + `,"evaluations":[{"resource":{"type":"bunker","id":"b2","properties":{"tenant_id":"t1"}}},{"subject":{"type":"user","id":"bob"},"action":{"name":"scaibunker:admin"},"resource":{"type":"tenant","id":"t1"}}]}`, []bool{false, false}, 2, ""},
		{"DenyOnFirstDenyAllPermit", `{` + top + sem("deny_on_first_deny") + `,"evaluations":[{"resource":{"type":"bunker","id":"b1","properties":{"tenant_id":"t1"}}},{"action":{"name":"scaibunker:create"},"resource":{"type":"tenant","id":"t1"}}]}`, []bool{true, true}, 2, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w.t = t
			r, rid := w.post("/access/v1/evaluations", tc.body)
			ds := decisions(t, r)
			if got := decisionValues(ds); !slices.Equal(got, tc.want) {
				t.Errorf("decisions %v, want %v: %s", got, tc.want, r.raw)
			}
			rows := w.auditRows(rid)
			if len(rows) != tc.decided {
				t.Fatalf("%d audit rows, want %d", len(rows), tc.decided)
			}
			for i, row := range rows {
				ctx, _ := ds[i]["context"].(map[string]any)
				if row.DecisionID != ctx["decision_id"] || (row.Decision == "allowed") != tc.want[i] {
					t.Errorf("row %d %+v does not match answer %v", i, row, ds[i])
				}
			}
			if len(ds) > 0 {
				last, _ := ds[len(ds)-1]["context"].(map[string]any)
				if got, _ := last["reason"].(string); got != tc.reason {
					t.Errorf("last item's context.reason = %q, want %q", got, tc.reason)
				}
			}
		})
	}
	w.t = t

	t.Run("ItemErrors", func(t *testing.T) {
		w.t = t
		// The second item lacks a resource (certification c-3-4-1), the third names an unknown key, the
		// fourth a key that does not apply to bindings: each is denied with its error; the rest are answered.
		r, rid := w.post("/access/v1/evaluations", `{"subject":{"type":"user","id":"alice"},"action":{"name":"scaibunker:create"},"context":{"consistency_token":"TOK"},
			"options":{"evaluations_semantic":"execute_all"},"evaluations":[
			{"resource":{"type":"tenant","id":"t1"}},
			{},
			{"action":{"name":"scaibunker:fly"},"resource":{"type":"tenant","id":"t1"}},
			{"resource":{"type":"binding","id":"x1","properties":{"tenant_id":"t1"}}},
			{"subject":{"type":"user","id":"gina"},"action":{"name":"scaiskills:grant"},"resource":{"type":"binding","id":"x1","properties":{"tenant_id":"t1"}}}]}`)
		ds := decisions(t, r)
		if got, want := decisionValues(ds), []bool{true, false, false, false, true}; !slices.Equal(got, want) {
			t.Fatalf("decisions %v, want %v: %s", got, want, r.raw)
		}
		for i, mention := range map[int]string{1: "resource is required", 2: "unknown permission key", 3: "does not apply"} {
			ctx, _ := ds[i]["context"].(map[string]any)
			e, _ := ctx["error"].(map[string]any)
			if e["status"] != float64(400) || !strings.Contains(fmt.Sprint(e["message"]), mention) {
				t.Errorf("evaluations[%d] context %v, want error {status 400, message naming %q}", i, ctx, mention)
			}
		}
		if rows := w.auditRows(rid); len(rows) != 2 {
			t.Errorf("%d audit rows, want 2 (the decided items)", len(rows))
		}
	})

	t.Run("SingleForm", func(t *testing.T) {
		w.t = t
		for _, body := range []string{
			azEval("user", "alice", "scaibunker:create", "tenant:t1"),
			strings.TrimSuffix(azEval("user", "alice", "scaibunker:create", "tenant:t1"), "}") + `,"evaluations":[]}`,
		} {
			r, rid := w.post("/access/v1/evaluations", body)
			if r.status != 200 || r.body["decision"] != true || r.body["evaluations"] != nil {
				t.Errorf("%s: %d %s, want a single decision true", body, r.status, r.raw)
			}
			if rows := w.auditRows(rid); len(rows) != 1 {
				t.Errorf("%d audit rows", len(rows))
			}
		}
		if r, _ := w.post("/access/v1/evaluations", `{"evaluations":[]}`); r.status != 400 {
			t.Errorf("no evaluations and no subject: %d %s", r.status, r.raw)
		}
	})

	t.Run("MixedConsistencyTokens", func(t *testing.T) {
		w.t = t
		// A later write: an item carrying its token sees it, whatever token the other items carry.
		later := token(w.admin("PUT", "/v1/tenants/t1/roles/ops/members/dora", "", 200))
		r, _ := w.post("/access/v1/evaluations", `{"action":{"name":"scaibunker:create"},"resource":{"type":"tenant","id":"t1"},"evaluations":[
			{"subject":{"type":"user","id":"alice"},"context":{"consistency_token":"TOK"}},
			{"subject":{"type":"user","id":"dora"},"context":{"consistency_token":"`+later+`"}}]}`)
		if got := decisionValues(decisions(t, r)); !slices.Equal(got, []bool{true, true}) {
			t.Errorf("decisions %v: %s", got, r.raw)
		}
	})
}

func searchResults(t *testing.T, r response, field string) []string {
	t.Helper()
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.raw)
	}
	raw, ok := r.body["results"].([]any)
	if !ok {
		t.Fatalf("no results array: %s", r.raw)
	}
	out := []string{}
	for _, x := range raw {
		m, _ := x.(map[string]any)
		out = append(out, fmt.Sprint(m[field]))
	}
	return out
}

// TestAuthZENSearch: the three searches answer what evaluations answer, page
// by the specification, and return empty results for types authzd does not know.
func TestAuthZENSearch(t *testing.T) {
	w := mustAZWorld(t)
	ctx := `"context":{"consistency_token":"TOK"}`
	cases := []struct {
		name, path, body, field string
		want                    []string
	}{
		{"SubjectsOfTenantKey", "/access/v1/search/subject", `{"subject":{"type":"user"},"action":{"name":"scaibunker:create"},"resource":{"type":"tenant","id":"t1"},` + ctx + `}`, "id",
			[]string{"alice", "pat", "root", "tara"}},
		{"SubjectIDIgnored", "/access/v1/search/subject", `{"subject":{"type":"user","id":"alice"},"action":{"name":"scaibunker:create"},"resource":{"type":"tenant","id":"t1"},` + ctx + `}`, "id",
			[]string{"alice", "pat", "root", "tara"}},
		{"ServiceAccounts", "/access/v1/search/subject", `{"subject":{"type":"service_account"},"action":{"name":"scaibunker:create"},"resource":{"type":"tenant","id":"t1"},` + ctx + `}`, "id",
			[]string{"ci-bot"}},
		{"SubjectsOfBunker", "/access/v1/search/subject", `{"subject":{"type":"user"},"action":{"name":"scaibunker:execute"},"resource":{"type":"bunker","id":"b1","properties":{"tenant_id":"t1"}},` + ctx + `}`, "id",
			[]string{"alice"}},
		{"BinderExcluded", "/access/v1/search/subject", `{"subject":{"type":"user"},"action":{"name":"scaiskills:grant"},"resource":{"type":"binding","id":"x1","properties":{"tenant_id":"t1"}},` + ctx + `}`, "id",
			[]string{"gina", "pat", "root", "tara"}},
		{"ResourcesOfTenantType", "/access/v1/search/resource", `{"subject":{"type":"user","id":"alice"},"action":{"name":"scaibunker:create"},"resource":{"type":"tenant"},` + ctx + `}`, "id",
			[]string{"t1"}},
		{"SuperAdminTenants", "/access/v1/search/resource", `{"subject":{"type":"user","id":"root"},"action":{"name":"scaibunker:create"},"resource":{"type":"tenant"},` + ctx + `}`, "id",
			[]string{"t1", "t2"}},
		{"BunkersOfSubject", "/access/v1/search/resource", `{"subject":{"type":"user","id":"alice"},"action":{"name":"scaibunker:execute"},"resource":{"type":"bunker","id":"b2","properties":{"tenant_id":"t1"}},` + ctx + `}`, "id",
			[]string{"b1"}},
		{"ViewerListsAllBunkers", "/access/v1/search/resource", `{"subject":{"type":"user","id":"vera"},"action":{"name":"scaibunker:create"},"resource":{"type":"bunker","properties":{"tenant_id":"t1"}},` + ctx + `}`, "id",
			[]string{"b1", "b2"}},
		{"OtherTenantsBunkers", "/access/v1/search/resource", `{"subject":{"type":"user","id":"root"},"action":{"name":"scaibunker:admin"},"resource":{"type":"bunker","properties":{"tenant_id":"t2"}},` + ctx + `}`, "id",
			[]string{}},
		{"ActionsOnBunker", "/access/v1/search/action", `{"subject":{"type":"user","id":"alice"},"resource":{"type":"bunker","id":"b1","properties":{"tenant_id":"t1"}},` + ctx + `}`, "name",
			[]string{"scaibunker:create", "scaibunker:execute"}},
		{"ActionsOnTenant", "/access/v1/search/action", `{"subject":{"type":"user","id":"gina"},"resource":{"type":"tenant","id":"t1"},` + ctx + `}`, "name",
			[]string{"scaiskills:grant"}},
		{"ActionsOfUnknownSubject", "/access/v1/search/action", `{"subject":{"type":"user","id":"nonexistent-user"},"resource":{"type":"tenant","id":"t1"},` + ctx + `}`, "name",
			[]string{}},
		{"UnknownSubjectType", "/access/v1/search/subject", `{"subject":{"type":"spaceship"},"action":{"name":"scaibunker:create"},"resource":{"type":"tenant","id":"t1"}}`, "id", []string{}},
		{"UnknownResourceType", "/access/v1/search/resource", `{"subject":{"type":"user","id":"alice"},"action":{"name":"scaibunker:create"},"resource":{"type":"record"}}`, "id", []string{}},
		{"UnknownTypeInActionSearch", "/access/v1/search/action", `{"subject":{"type":"user","id":"alice"},"resource":{"type":"record","id":"r1"}}`, "name", []string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w.t = t
			r, rid := w.post(tc.path, tc.body)
			got := searchResults(t, r, tc.field)
			if !slices.Equal(got, tc.want) {
				t.Errorf("results %v, want %v: %s", got, tc.want, r.raw)
			}
			page, _ := r.body["page"].(map[string]any)
			if strings.HasPrefix(tc.name, "Unknown") {
				return
			}
			if page == nil || page["next_token"] != "" || page["count"] != float64(len(tc.want)) || page["total"] != float64(len(tc.want)) {
				t.Errorf("page %v, want next_token \"\", count and total %d", page, len(tc.want))
			}
			if rows := w.auditRows(rid); len(rows) != 1 {
				t.Errorf("%d audit rows, want 1", len(rows))
			}
		})
	}
	w.t = t

	t.Run("ResultsAreDecisions", func(t *testing.T) {
		w.t = t
		// Every subject found may act, and every known subject not found may not.
		r, _ := w.post("/access/v1/search/subject", `{"subject":{"type":"user"},"action":{"name":"scaiskills:grant"},"resource":{"type":"binding","id":"x1","properties":{"tenant_id":"t1"}},`+ctx+`}`)
		found := searchResults(t, r, "id")
		for _, u := range []string{"alice", "bob", "gina", "pat", "root", "tara", "vera", "nobody"} {
			e, _ := w.post("/access/v1/evaluation", azEval("user", u, "scaiskills:grant", "binding:t1/x1"))
			if e.body["decision"] != slices.Contains(found, u) {
				t.Errorf("%s: evaluation %v, in search results %v", u, e.body["decision"], slices.Contains(found, u))
			}
		}
	})

	t.Run("Paging", func(t *testing.T) {
		w.t = t
		base := `"subject":{"type":"user"},"action":{"name":"scaibunker:create"},"resource":{"type":"tenant","id":"t1"},` + ctx
		var all []string
		tokenField := ""
		for pages := 0; ; pages++ {
			if pages > 10 {
				t.Fatal("paging does not end")
			}
			r, _ := w.post("/access/v1/search/subject", `{`+base+`,"page":{"limit":1`+tokenField+`}}`)
			got := searchResults(t, r, "id")
			page, _ := r.body["page"].(map[string]any)
			next, _ := page["next_token"].(string)
			if len(got) != 1 || page["count"] != float64(1) || page["total"] != float64(4) {
				t.Fatalf("page %d: %s", pages, r.raw)
			}
			all = append(all, got...)
			if next == "" {
				break
			}
			// A token belongs to its request: another limit or subject type is refused.
			if pages == 0 {
				if r, _ := w.post("/access/v1/search/subject", `{`+base+`,"page":{"limit":2,"token":"`+next+`"}}`); r.status != 400 {
					t.Errorf("token with another limit: %d %s", r.status, r.raw)
				}
				other := strings.Replace(base, `"type":"user"`, `"type":"service_account"`, 1)
				if r, _ := w.post("/access/v1/search/subject", `{`+other+`,"page":{"limit":1,"token":"`+next+`"}}`); r.status != 400 {
					t.Errorf("token with another subject type: %d %s", r.status, r.raw)
				}
			}
			tokenField = `,"token":"` + next + `"`
		}
		if want := []string{"alice", "pat", "root", "tara"}; !slices.Equal(all, want) {
			t.Errorf("pages hold %v, want %v", all, want)
		}
		// limit 0 is no limit; a limit above the maximum is cut to it.
		for _, limit := range []string{"0", "100000"} {
			r, _ := w.post("/access/v1/search/subject", `{`+base+`,"page":{"limit":`+limit+`}}`)
			if got := searchResults(t, r, "id"); len(got) != 4 {
				t.Errorf("limit %s: %v", limit, got)
			}
		}
	})

	t.Run("ActionPaging", func(t *testing.T) {
		w.t = t
		base := `"subject":{"type":"user","id":"tara"},"resource":{"type":"tenant","id":"t1"},` + ctx
		seen := map[string]bool{}
		tokenField := ""
		for pages := 0; pages < 50; pages++ {
			r, _ := w.post("/access/v1/search/action", `{`+base+`,"page":{"limit":7`+tokenField+`}}`)
			for _, n := range searchResults(t, r, "name") {
				if seen[n] {
					t.Errorf("%s on two pages", n)
				}
				seen[n] = true
			}
			page, _ := r.body["page"].(map[string]any)
			next, _ := page["next_token"].(string)
			if next == "" {
				break
			}
			tokenField = `,"token":"` + next + `"`
		}
		// tenant_admin holds every key but scaibunker:admin:platform: 21 keys minus one.
		if len(seen) != 20 || seen["scaibunker:admin:platform"] {
			t.Errorf("tenant admin's keys over pages: %d %v", len(seen), seen)
		}
	})
}

// TestAuthZENMetadata: GET /.well-known/authzen-configuration, without a token.
func TestAuthZENMetadata(t *testing.T) {
	h := mustStart(t, "memory")
	req, _ := http.NewRequest("GET", h.url+"/.well-known/authzen-configuration", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	want := map[string]string{
		"policy_decision_point":       h.url,
		"access_evaluation_endpoint":  h.url + "/access/v1/evaluation",
		"access_evaluations_endpoint": h.url + "/access/v1/evaluations",
		"search_subject_endpoint":     h.url + "/access/v1/search/subject",
		"search_resource_endpoint":    h.url + "/access/v1/search/resource",
		"search_action_endpoint":      h.url + "/access/v1/search/action",
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %q, want %q", k, m[k], v)
		}
	}
	if len(m) != len(want) {
		t.Errorf("unexpected metadata: %v", m)
	}
}

// TestAuthZENMatchesChecks compares AuthZEN evaluations and explanations with
// /v1 checks over a randomised tenant: a second path to an answer must give
// the first one's.
func TestAuthZENMatchesChecks(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	w := mustAZWorld(t)
	keys := []string{"scaibunker:create", "scaibunker:execute", "scaibunker:shell", "scaibunker:admin", "scaiskills:view", "scaiskills:grant"}
	users := []string{"u0", "u1", "u2", "u3", "u4"}
	for r := range 3 {
		role := fmt.Sprintf("r%d", r)
		var ks []string
		for _, k := range keys {
			if rng.IntN(2) == 0 {
				ks = append(ks, `"`+k+`"`)
			}
		}
		w.admin("PUT", "/v1/tenants/t1/roles/"+role, `{"name":"r","module_permissions":[`+strings.Join(ks, ",")+`]}`, 200)
		for _, u := range users {
			if rng.IntN(3) == 0 {
				w.admin("PUT", "/v1/tenants/t1/roles/"+role+"/members/"+u, "", 200)
			}
		}
	}
	for i, u := range users {
		if rng.IntN(4) == 0 {
			w.admin("PUT", "/v1/tenants/t1/roles/tenant_admin/members/"+u, "", 200)
		}
		w.admin("PUT", fmt.Sprintf("/v1/tenants/t1/resources/bunker/rb%d", i), `{"owner_id":"`+users[rng.IntN(len(users))]+`"}`, 200)
	}
	w.tok = token(w.admin("PUT", "/v1/tenants/t1/resources/binding/rx", `{"owner_id":"`+users[rng.IntN(len(users))]+`"}`, 200))

	for round := range 3 {
		var items []string
		var want []bool
		for range 40 {
			u, k := users[rng.IntN(len(users))], keys[rng.IntN(len(keys))]
			res := "tenant:t1"
			switch {
			case strings.HasPrefix(k, "scaibunker:") && k != "scaibunker:admin" && rng.IntN(2) == 0:
				res = fmt.Sprintf("bunker:t1/rb%d", rng.IntN(len(users)))
			case k == "scaiskills:grant" && rng.IntN(2) == 0:
				res = "binding:t1/rx"
			}
			allowed, _ := w.v1Check("user", u, k, res)
			items = append(items, azEval("user", u, k, res))
			want = append(want, allowed)
			// Explain is a third path to the same answer, and always has a reason.
			eb := v1Body("user", u, k, res)
			x, _ := w.post("/v1/permissions/explain", eb)
			if reasons, _ := x.body["reasons"].([]any); x.body["allowed"] != allowed || len(reasons) == 0 {
				t.Fatalf("seed %d: explain %s answers %s; the check answered %v", seed, eb, x.raw, allowed)
			}
		}
		r, _ := w.post("/access/v1/evaluations", `{"evaluations":[`+strings.Join(items, ",")+`]}`)
		if got := decisionValues(decisions(t, r)); !slices.Equal(got, want) {
			t.Fatalf("seed %d round %d: AuthZEN %v, checks %v", seed, round, got, want)
		}
	}
}
