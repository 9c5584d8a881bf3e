package http

// Fast tests of the HTTP layer's own guarantees, with small fakes of the roles
// it consumes: no Postgres, no SpiceDB, milliseconds. The integration suite
// and cmd/authzd/app test the same routes against the real dependencies.

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/scailabs/authzd/internal/authz"
	"github.com/scailabs/authzd/internal/metrics"
)

const testAdmin = "test-admin"

// fakeChecker answers from a function of the check.
type fakeChecker struct {
	answer func(c authz.Check) (authz.Decision, error)
	calls  int
}

func (f *fakeChecker) Check(_ context.Context, c authz.Check) (authz.Decision, error) {
	f.calls++
	return f.answer(c)
}

func (f *fakeChecker) CheckBulk(_ context.Context, checks []authz.Check) ([]authz.Decision, error) {
	f.calls++
	out := make([]authz.Decision, len(checks))
	for i, c := range checks {
		d, err := f.answer(c)
		if err != nil {
			d = authz.Decision{Err: err}
		}
		out[i] = d
	}
	return out, nil
}

// allowAlice allows alice, denies everyone else, and fails for "broken".
func allowAlice(c authz.Check) (authz.Decision, error) {
	switch c.Subject.String() {
	case "broken":
		return authz.Decision{}, authz.Errorf(authz.EUNAVAILABLE, "spicedb is down")
	case "panic":
		panic("checker blew up")
	}
	return authz.Decision{Allowed: c.Subject.String() == "alice", CheckedAt: "zed-1"}, nil
}

// fakeProvisioner counts writes. Methods it does not define panic (the nil
// embedded interface), which a test sees as a 500.
type fakeProvisioner struct {
	Provisioner
	writes int
}

func (f *fakeProvisioner) PutPartner(context.Context, string) (string, error) {
	f.writes++
	return "zed-w", nil
}

func (f *fakeProvisioner) PutTenant(context.Context, string, string) (string, error) {
	f.writes++
	return "zed-w", nil
}

func (f *fakeProvisioner) PutRole(context.Context, string, string, []authz.Key) (string, error) {
	f.writes++
	return "zed-w", nil
}

func (f *fakeProvisioner) SetMember(context.Context, string, string, authz.Subject, bool) (string, error) {
	f.writes++
	return "zed-w", nil
}

func (f *fakeProvisioner) PutResource(context.Context, string, authz.Resource, authz.Subject) (string, error) {
	f.writes++
	return "zed-w", nil
}

type fakeModel struct{}

func (fakeModel) ResourceTypes() []string { return []string{"bunker"} }
func (fakeModel) KeysOn(string) []string  { return []string{"scaibunker__create"} }

// fakeAudit keeps what it records, or fails with err.
type fakeAudit struct {
	mu     sync.Mutex
	err    error
	events []authz.Event
}

func (f *fakeAudit) Record(_ context.Context, events ...authz.Event) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.events = append(f.events, events...)
	return nil
}

type fixture struct {
	srv   *Server
	check *fakeChecker
	prov  *fakeProvisioner
	audit *fakeAudit
	logs  *bytes.Buffer
}

// newFixture builds a server over the fakes above; with, if given, adds the
// fakes of other roles to its options.
func newFixture(t *testing.T, with ...func(*Options)) *fixture {
	t.Helper()
	f := &fixture{check: &fakeChecker{answer: allowAlice}, prov: &fakeProvisioner{}, audit: &fakeAudit{},
		logs: &bytes.Buffer{}}
	logger := slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	o := Options{
		Checker: f.check, Provisioner: f.prov, Model: fakeModel{}, Audit: f.audit, AdminToken: testAdmin,
		Logger: logger, Metrics: metrics.New(),
		Keys: []KeyInfo{{Key: authz.MustParseKey("scaibunker:create")}, {Key: authz.MustParseKey("scaibunker:execute")}},
	}
	for _, w := range with {
		w(&o)
	}
	f.srv = NewServer(o)
	return f
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (f *fixture) do(t *testing.T, method, path, body string, headers ...string) answer {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testAdmin)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	f.srv.ServeHTTP(rec, req)
	a := answer{status: rec.Code, header: rec.Header(), raw: rec.Body.String()}
	_ = json.Unmarshal(rec.Body.Bytes(), &a.body)
	return a
}

func errorField(a answer, name string) string {
	e, _ := a.body["error"].(map[string]any)
	s, _ := e[name].(string)
	return s
}

// TestBulkItemErrorIsNotAudited: an item that has no decision (its check
// failed) is answered with its error, never allowed, and gets no audit row;
// the other items are answered and audited.
func TestBulkItemErrorIsNotAudited(t *testing.T) {
	f := newFixture(t)
	a := f.do(t, "POST", "/v1/permissions/check_bulk", `{"items":[
		{"tenant_id":"t1","user_id":"alice","permission":"scaibunker:create"},
		{"tenant_id":"t1","user_id":"broken","permission":"scaibunker:create"},
		{"tenant_id":"t1","user_id":"bob","permission":"scaibunker:create"}]}`)
	if a.status != http.StatusOK {
		t.Fatalf("status %d: %s", a.status, a.raw)
	}
	results, _ := a.body["results"].([]any)
	if len(results) != 3 {
		t.Fatalf("results: %s", a.raw)
	}
	broken, _ := results[1].(map[string]any)
	if broken["allowed"] == true || broken["error"] == nil || broken["decision_id"] != "" {
		t.Errorf("failed item answered %v; want an error, not allowed, no decision id", broken)
	}
	if got := len(f.audit.events); got != 2 {
		t.Fatalf("audit rows: %d, want 2 (the failed item has none)", got)
	}
	for _, e := range f.audit.events {
		if e.ActorUserID == "broken" {
			t.Errorf("the failed item was audited: %+v", e)
		}
	}
}

// TestAuditFailureIsUnavailable: when the audit row cannot be committed, the
// answer is 503 and never carries a decision; for a write, the change was
// made but is not confirmed (the caller retries, idempotently).
func TestAuditFailureIsUnavailable(t *testing.T) {
	cases := []struct {
		name, method, path, body string
	}{
		{"check", "POST", "/v1/permissions/check", `{"tenant_id":"t1","user_id":"alice","permission":"scaibunker:create"}`},
		{"check_bulk", "POST", "/v1/permissions/check_bulk", `{"items":[{"tenant_id":"t1","user_id":"alice","permission":"scaibunker:create"}]}`},
		{"effective", "GET", "/v1/tenants/t1/users/alice/permissions", ""},
		{"authzen evaluation", "POST", "/access/v1/evaluation", `{"subject":{"type":"user","id":"alice"},"action":{"name":"scaibunker:create"},"resource":{"type":"tenant","id":"t1"}}`},
		{"authzen evaluations", "POST", "/access/v1/evaluations", `{"subject":{"type":"user","id":"alice"},"resource":{"type":"tenant","id":"t1"},"evaluations":[{"action":{"name":"scaibunker:create"}}]}`},
		{"provision", "PUT", "/v1/partners/p1", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.audit.err = authz.Errorf(authz.EUNAVAILABLE, "the audit database is unavailable")
			a := f.do(t, tc.method, tc.path, tc.body)
			if a.status != http.StatusServiceUnavailable {
				t.Fatalf("status %d, want 503: %s", a.status, a.raw)
			}
			for _, word := range []string{`"allowed"`, `"decision"`, `"permissions"`, `"zed_token"`} {
				if strings.Contains(a.raw, word) {
					t.Errorf("503 carries %s: %s", word, a.raw)
				}
			}
		})
	}
}

// TestPanicIs500WithRequestID: a panic in a handler answers 500 with the
// request id and a generic message, is logged with its stack under that id,
// and is counted and logged by the metrics middleware like any answer.
func TestPanicIs500WithRequestID(t *testing.T) {
	f := newFixture(t)
	a := f.do(t, "POST", "/v1/permissions/check", `{"tenant_id":"t1","user_id":"panic","permission":"scaibunker:create"}`,
		"X-Request-Id", "req-42")
	if a.status != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500: %s", a.status, a.raw)
	}
	if got := errorField(a, "request_id"); got != "req-42" {
		t.Errorf("request_id %q, want req-42", got)
	}
	if got := errorField(a, "message"); got != "internal error" {
		t.Errorf("message %q, want the generic one", got)
	}
	if strings.Contains(a.raw, "blew up") {
		t.Errorf("the panic value reached the caller: %s", a.raw)
	}
	logs := f.logs.String()
	var panicLine, requestLine string
	for line := range strings.Lines(logs) {
		switch {
		case strings.Contains(line, "msg=panic"):
			panicLine = line
		case strings.Contains(line, "msg=request"):
			requestLine = line
		}
	}
	if !strings.Contains(panicLine, "request_id=req-42") || !strings.Contains(panicLine, "checker blew up") ||
		!strings.Contains(panicLine, "goroutine") {
		t.Errorf("panic log lacks the request id, the value or the stack:\n%s", logs)
	}
	if !strings.Contains(requestLine, "status=500") {
		t.Errorf("the metrics middleware did not see the 500:\n%s", logs)
	}
	if len(f.audit.events) != 0 {
		t.Errorf("a panicked check was audited: %+v", f.audit.events)
	}
}

// TestBadInputChangesNothing: a caller's mistake is a 4xx whose message names
// what was wrong, and nothing is checked, written or audited.
func TestBadInputChangesNothing(t *testing.T) {
	cases := []struct {
		name, method, path, body string
		headers                  []string
		status                   int
		mention                  string
	}{
		{"check: no tenant", "POST", "/v1/permissions/check", `{"user_id":"alice","permission":"scaibunker:create"}`, nil, 400, "tenant_id"},
		{"check: bad user", "POST", "/v1/permissions/check", `{"tenant_id":"t1","user_id":"a b","permission":"scaibunker:create"}`, nil, 400, "user_id"},
		{"check: unknown key", "POST", "/v1/permissions/check", `{"tenant_id":"t1","user_id":"alice","permission":"scaibunker:nope"}`, nil, 400, "scaibunker:nope"},
		{"check: unknown field", "POST", "/v1/permissions/check", `{"tenant_id":"t1","user_id":"alice","permission":"scaibunker:create","extra":1}`, nil, 400, "extra"},
		{"check: wrong type", "POST", "/v1/permissions/check", `{"tenant_id":7}`, nil, 400, "tenant_id"},
		{"check: not JSON", "POST", "/v1/permissions/check", `{"tenant_id":`, nil, 400, "JSON"},
		{"check: trailing data", "POST", "/v1/permissions/check", `{} {}`, nil, 400, "after the JSON object"},
		{"bulk: bad item", "POST", "/v1/permissions/check_bulk", `{"items":[{"tenant_id":"t1","user_id":"alice","permission":"scaibunker:create"},{"tenant_id":"","user_id":"alice","permission":"scaibunker:create"}]}`, nil, 400, "items[1]"},
		{"bulk: empty", "POST", "/v1/permissions/check_bulk", `{"items":[]}`, nil, 400, "items"},
		{"partner: bad id", "PUT", "/v1/partners/a%20b", "", nil, 400, "partner_id"},
		{"partner: bad actor", "PUT", "/v1/partners/p1", "", []string{"X-Actor-User-Id", "a b"}, 400, "X-Actor-User-Id"},
		{"tenant: no partner", "PUT", "/v1/tenants/t1", `{}`, nil, 400, "partner_id"},
		{"role: built-in", "PUT", "/v1/tenants/t1/roles/tenant_admin", `{"name":"x","module_permissions":[]}`, nil, 400, "built-in"},
		{"role: unknown key", "PUT", "/v1/tenants/t1/roles/ops", `{"name":"x","module_permissions":["scaibunker:nope"]}`, nil, 400, "module_permissions[0]"},
		{"member: platform role", "PUT", "/v1/tenants/t1/roles/super_admin/members/alice", "", nil, 400, "super_admin"},
		{"resource: unknown type", "PUT", "/v1/tenants/t1/resources/spaceship/s1", `{"owner_id":"alice"}`, nil, 400, "spaceship"},
		{"resource: no owner", "PUT", "/v1/tenants/t1/resources/bunker/b1", `{}`, nil, 400, "owner_id"},
		{"no token", "POST", "/v1/permissions/check", `{}`, []string{"Authorization", ""}, 401, "bearer"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			a := f.do(t, tc.method, tc.path, tc.body, tc.headers...)
			if a.status != tc.status {
				t.Fatalf("status %d, want %d: %s", a.status, tc.status, a.raw)
			}
			if msg := errorField(a, "message"); !strings.Contains(msg, tc.mention) {
				t.Errorf("message %q does not name %q", msg, tc.mention)
			}
			if f.check.calls != 0 || f.prov.writes != 0 || len(f.audit.events) != 0 {
				t.Errorf("bad input reached the graph or the audit: checks %d, writes %d, rows %d",
					f.check.calls, f.prov.writes, len(f.audit.events))
			}
		})
	}
}

// TestGoodInputIsAudited is the control of the tests above: the same fixture
// answers and audits a well-formed check and write.
func TestGoodInputIsAudited(t *testing.T) {
	f := newFixture(t)
	if a := f.do(t, "POST", "/v1/permissions/check", `{"tenant_id":"t1","user_id":"alice","permission":"scaibunker:create"}`); a.status != 200 || a.body["allowed"] != true {
		t.Fatalf("check: %d %s", a.status, a.raw)
	}
	if a := f.do(t, "PUT", "/v1/tenants/t1/resources/bunker/b1", `{"owner_id":"alice"}`, "X-Actor-User-Id", "carol"); a.status != 200 {
		t.Fatalf("put resource: %d %s", a.status, a.raw)
	}
	if len(f.audit.events) != 2 || f.prov.writes != 1 {
		t.Fatalf("rows %d, writes %d; want 2 and 1", len(f.audit.events), f.prov.writes)
	}
	if got := f.audit.events[1].ActorUserID; got != "carol" {
		t.Errorf("write audited with actor %q, want carol", got)
	}
	if f.check.calls != 1 {
		t.Errorf("checker calls %d, want 1", f.check.calls)
	}
}

// TestClientAddressHeadersAreIgnored: X-Real-IP and X-Forwarded-For are the
// caller's say-so; nothing in authzd needs the client address, so they must
// not replace the connection's (chi's deprecated RealIP middleware did).
func TestClientAddressHeadersAreIgnored(t *testing.T) {
	f := newFixture(t)
	f.srv.router.Get("/remote-addr", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(r.RemoteAddr)) })
	a := f.do(t, "GET", "/remote-addr", "", "X-Real-IP", "203.0.113.9", "X-Forwarded-For", "203.0.113.9")
	if want := httptest.NewRequest("GET", "/", nil).RemoteAddr; a.raw != want {
		t.Errorf("RemoteAddr %q, want the connection's %q", a.raw, want)
	}
}
