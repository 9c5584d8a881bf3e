package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scailabs/authzd/cmd/authzd/app"
	"github.com/scailabs/authzd/cmd/authzd/app/apptest"
)

// mustStartImport is an authzd whose out-of-band recorder files untagged
// changes after one second, and whose imports write batches of at most batch
// updates.
func mustStartImport(t *testing.T, datastore string, batch int) *harness {
	t.Helper()
	a, _ := apptest.MustStartWith(t, datastore, func(c *app.Config) {
		c.ExternalChangesGrace, c.ImportBatch = time.Second, batch
	})
	return &harness{t: t, url: a.URL, dbURL: a.DatabaseURL, adminToken: a.AdminToken}
}

// importDoc posts a record document.
func (h *harness) importDoc(doc, query string) response {
	h.t.Helper()
	return h.do("POST", "/v1/import"+query, h.adminToken, doc, "Content-Type", "application/x-ndjson", "X-Actor-User-Id", "migrator")
}

// export fetches the whole world (or one tenant's part) as records.
func (h *harness) export(query string) (string, string) {
	h.t.Helper()
	req, err := http.NewRequest("GET", h.url+"/v1/export"+query, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+h.adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" || resp.Header.Get("X-Zed-Token") == "" {
		h.t.Fatalf("export%s: %d %v: %s", query, resp.StatusCode, resp.Header, raw)
	}
	return string(raw), resp.Header.Get("X-Zed-Token")
}

// auditCount counts the audit rows of an action, or every row without one.
func (h *harness) auditCount(action ...string) int {
	h.t.Helper()
	conn, err := pgx.Connect(context.Background(), h.dbURL)
	if err != nil {
		h.t.Fatal(err)
	}
	defer conn.Close(context.Background())
	q, args := `SELECT count(*) FROM audit_events`, []any{}
	if len(action) == 1 {
		q, args = q+` WHERE action = $1`, []any{action[0]}
	}
	var n int
	if err := conn.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		h.t.Fatal(err)
	}
	return n
}

var importKeys = []string{"scaibunker:create", "scaibunker:execute", "scaibunker:shell", "scaibunker:admin", "scaiskills:view", "scaiskills:grant", "scaiskills:bind"}

// worldByPuts provisions a random world through the PUT routes and returns
// the checks worth asking of it and the last write's token.
func worldByPuts(t *testing.T, h *harness, rng *rand.Rand) ([]string, string) {
	users := []string{"u0", "u1", "u2", "u3", "sa:bot", "sa:ci"}
	var last string
	for p := range 3 {
		last = token(h.admin("PUT", fmt.Sprintf("/v1/partners/p%d", p), "", 200))
		if rng.IntN(2) == 0 {
			h.admin("PUT", fmt.Sprintf("/v1/partners/p%d/admins/%s", p, users[rng.IntN(len(users))]), "", 200)
		}
	}
	h.admin("PUT", "/v1/platform/super_admins/root", "", 200)
	var checks []string
	for ti := range 5 {
		tid := fmt.Sprintf("t%d", ti)
		h.admin("PUT", "/v1/tenants/"+tid, fmt.Sprintf(`{"partner_id":"p%d"}`, rng.IntN(3)), 200)
		var roles []string
		for r := range rng.IntN(3) + 1 {
			role := fmt.Sprintf("r%d", r)
			roles = append(roles, role)
			var ks []string
			for _, k := range importKeys {
				if rng.IntN(2) == 0 {
					ks = append(ks, `"`+k+`"`)
				}
			}
			name := fmt.Sprintf("Role %d of %s \"ü\"", r, tid)
			nb, _ := json.Marshal(name)
			h.admin("PUT", "/v1/tenants/"+tid+"/roles/"+role, `{"name":`+string(nb)+`,"module_permissions":[`+strings.Join(ks, ",")+`]}`, 200)
		}
		roles = append(roles, "tenant_admin", "tenant_user", "tenant_viewer")
		for _, u := range users {
			if rng.IntN(2) == 0 {
				h.admin("PUT", "/v1/tenants/"+tid+"/roles/"+roles[rng.IntN(len(roles))]+"/members/"+u, "", 200)
			}
		}
		for i := range 3 {
			typ := []string{"bunker", "binding"}[rng.IntN(2)]
			id := fmt.Sprintf("x%d", i)
			last = token(h.admin("PUT", fmt.Sprintf("/v1/tenants/%s/resources/%s/%s", tid, typ, id), `{"owner_id":"`+users[rng.IntN(len(users))]+`"}`, 200))
			for _, u := range users {
				k := importKeys[rng.IntN(len(importKeys))]
				if (typ == "bunker") == strings.HasPrefix(k, "scaibunker:") && k != "scaibunker:admin" {
					checks = append(checks, checkBody(tid, u, k, "", typ, id))
				}
			}
		}
		for _, u := range append(users, "root") {
			for _, k := range importKeys {
				checks = append(checks, checkBody(tid, u, k, ""))
			}
		}
	}
	return checks, last
}

// shuffled is doc with its lines in a random order.
func shuffled(rng *rand.Rand, doc string) string {
	lines := strings.Split(strings.TrimSuffix(doc, "\n"), "\n")
	rng.Shuffle(len(lines), func(i, j int) { lines[i], lines[j] = lines[j], lines[i] })
	return strings.Join(lines, "\n") + "\n"
}

// withToken sets a check body's consistency token.
func withToken(body, token string) string {
	var b map[string]any
	_ = json.Unmarshal([]byte(body), &b)
	b["consistency_token"] = token
	out, _ := json.Marshal(b)
	return string(out)
}

func counts(r response) map[string]float64 {
	out := map[string]float64{}
	for _, k := range []string{"created", "updated", "unchanged", "removed", "batches"} {
		out[k], _ = r.body[k].(float64)
	}
	return out
}

// TestImportRoundTrip: a world made by PUTs exports, imports (lines
// shuffled) into a fresh authzd, and exports again byte for byte; every check
// answers alike on both, and as SpiceDB answers past the cache; a dry run counts what the import then does; the same
// document again changes nothing, and no write of the import is filed as an
// out-of-band change.
func TestImportRoundTrip(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	src := mustStartImport(t, "memory", 1000)
	checks, srcToken := worldByPuts(t, src, rng)
	doc, _ := src.export("")
	if again, _ := src.export(""); again != doc {
		t.Fatalf("seed %d: two exports of one world differ:\n%s\n---\n%s", seed, doc, again)
	}
	lines := strings.Count(doc, "\n")

	dst := mustStartImport(t, "postgres", 7) // small batches: many of them, in parallel
	in := shuffled(rng, doc)
	dry := dst.importDoc(in, "?dry_run=true")
	if dry.status != 200 || dry.body["dry_run"] != true {
		t.Fatalf("seed %d: dry run: %d %s", seed, dry.status, dry.raw)
	}
	if got, _ := dst.export(""); got != "" {
		t.Fatalf("seed %d: a dry run wrote:\n%s", seed, got)
	}
	imp := dst.importDoc(in, "")
	if imp.status != 200 || token(imp) == "" {
		t.Fatalf("seed %d: import: %d %s", seed, imp.status, imp.raw)
	}
	c, dc := counts(imp), counts(dry)
	if c["created"] != float64(lines) || c["updated"] != 0 || c["unchanged"] != 0 || c["batches"] < 2 {
		t.Fatalf("seed %d: import of %d records answered %s", seed, lines, imp.raw)
	}
	if !mapsEqual(c, dc) {
		t.Fatalf("seed %d: dry run counted %v, the import %v", seed, dc, c)
	}
	if got, _ := dst.export(""); got != doc {
		t.Fatalf("seed %d: re-export differs:\n%s\n--- want\n%s", seed, got, doc)
	}
	if n := dst.auditCount("import.batch"); n != int(c["batches"]) {
		t.Fatalf("seed %d: %d import.batch rows for %v batches", seed, n, c["batches"])
	}
	for _, body := range checks {
		want := src.check(withToken(body, srcToken))
		if got := dst.check(withToken(body, token(imp))); got != want {
			t.Fatalf("seed %d: %s: imported world answers %v, the world by PUTs %v", seed, body, got, want)
		}
		// Explain without a token asks SpiceDB itself at a revision after
		// every write, past the decision cache.
		x := dst.admin("POST", "/v1/permissions/explain", body, 200)
		if x.body["allowed"] != want {
			t.Fatalf("seed %d: %s: SpiceDB answers %v on the imported world, the world by PUTs %v", seed, body, x.body["allowed"], want)
		}
	}

	again := dst.importDoc(shuffled(rng, doc), "")
	if c := counts(again); again.status != 200 || c["created"] != 0 || c["updated"] != 0 || c["unchanged"] != float64(lines) || c["batches"] != 0 {
		t.Fatalf("seed %d: second import: %d %s", seed, again.status, again.raw)
	}
	if got, _ := dst.export(""); got != doc {
		t.Fatalf("seed %d: a second import changed the world", seed)
	}
	time.Sleep(3 * time.Second) // the recorder's grace is 1s
	if n := dst.auditCount("relationship.external"); n != 0 {
		t.Fatalf("seed %d: %d import writes filed as relationship.external", seed, n)
	}
	if n := dst.auditCount("import"); n != 2 {
		t.Fatalf("seed %d: %d import rows, want 2", seed, n)
	}
}

func mapsEqual(a, b map[string]float64) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return len(a) == len(b)
}

// TestImportRejects: every bad document answers its 4xx naming the first bad
// line, and changes nothing: the export and the audit log stay as they were.
func TestImportRejects(t *testing.T) {
	h := mustStartImport(t, "memory", 1000)
	h.admin("PUT", "/v1/partners/p0", "", 200)
	h.admin("PUT", "/v1/tenants/t0", `{"partner_id":"p0"}`, 200)
	before, _ := h.export("")
	good := `{"kind":"partner","partner_id":"p1"}` + "\n" + `{"kind":"tenant","tenant_id":"t1","partner_id":"p1"}` + "\n"
	var many strings.Builder
	for i := range 100_000 - 1 {
		fmt.Fprintf(&many, `{"kind":"member","tenant_id":"t0","role_id":"tenant_user","user_id":"u%d"}`+"\n", i)
	}
	many.WriteString(`{"kind":"member","tenant_id":"t0","role_id":"tenant_user","user_id":"u/"}` + "\n")
	for _, tc := range []struct {
		name, doc string
		line      int
		msg       string
	}{
		{"UnknownKind", good + `{"kind":"group","partner_id":"g"}`, 3, "unknown kind"},
		{"UnknownKey", good + `{"kind":"role","tenant_id":"t1","role_id":"r","name":"R","module_permissions":["scaibunker:nope"]}`, 3, "unknown permission key"},
		{"BadID", good + `{"kind":"partner","partner_id":"a:b"}`, 3, "may only contain"},
		{"MalformedJSON", good + `{"kind":`, 3, "JSON"},
		{"LongLine", good + `{"kind":"partner","partner_id":"` + strings.Repeat("a", 70_000) + `"}`, 3, "over 65536 bytes"},
		{"DanglingTenant", good + `{"kind":"member","tenant_id":"t9","role_id":"tenant_user","user_id":"u"}`, 3, `tenant "t9" is neither in the document nor in authzd`},
		{"DanglingPartner", `{"kind":"tenant","tenant_id":"t2","partner_id":"p9"}`, 1, `partner "p9"`},
		{"DanglingRole", good + `{"kind":"member","tenant_id":"t1","role_id":"ops","user_id":"u"}`, 3, `role "t1/ops"`},
		{"ConflictingDuplicate", good + `{"kind":"tenant","tenant_id":"t1","partner_id":"p0"}`, 3, "conflicts with line 2"},
		{"BuiltinRoleRecord", good + `{"kind":"role","tenant_id":"t1","role_id":"tenant_user","name":"x","module_permissions":[]}`, 3, "built-in role"},
		{"Op", `{"op":"put","kind":"partner","partner_id":"p1"}`, 1, `unknown field "op"`},
		{"BadLastLineOf100000", many.String(), 100_000, "may only contain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.importDoc(tc.doc, "")
			e, _ := r.body["error"].(map[string]any)
			msg, _ := e["message"].(string)
			if r.status != 400 || e["line"] != float64(tc.line) || !strings.Contains(msg, tc.msg) {
				t.Fatalf("got %d %s; want 400 at line %d saying %q", r.status, truncateRaw(r.raw), tc.line, tc.msg)
			}
		})
	}
	t.Run("WrongContentType", func(t *testing.T) {
		r := h.do("POST", "/v1/import", h.adminToken, good, "Content-Type", "application/json")
		if r.status != 400 || !strings.Contains(r.raw, "application/x-ndjson") {
			t.Fatalf("got %d %s", r.status, r.raw)
		}
	})
	t.Run("NotProvisionScope", func(t *testing.T) {
		r := h.do("POST", "/v1/import", "", good, "Content-Type", "application/x-ndjson")
		if r.status != 401 {
			t.Fatalf("got %d %s", r.status, r.raw)
		}
	})
	if after, _ := h.export(""); after != before {
		t.Fatalf("a refused import changed the world:\n%s\n--- was\n%s", after, before)
	}
	for _, action := range []string{"import", "import.batch", "role.put", "tenant.put"} {
		want := map[string]int{"tenant.put": 1}[action]
		if n := h.auditCount(action); n != want {
			t.Fatalf("%d %s rows after refused imports, want %d", n, action, want)
		}
	}
}

func truncateRaw(s string) string {
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}

// TestImportByteCap: a document over AUTHZ_IMPORT_MAX_BYTES answers 413 and
// writes nothing, though it is under no other limit.
func TestImportByteCap(t *testing.T) {
	a, _ := apptest.MustStartWith(t, "memory", func(c *app.Config) { c.ImportMaxBytes = 1 << 10 })
	h := &harness{t: t, url: a.URL, dbURL: a.DatabaseURL, adminToken: a.AdminToken}
	var doc strings.Builder
	for i := range 40 {
		fmt.Fprintf(&doc, `{"kind":"partner","partner_id":"p%d"}`+"\n", i)
	}
	r := h.importDoc(doc.String(), "")
	if r.status != 413 {
		t.Fatalf("got %d %s", r.status, r.raw)
	}
	if got, _ := h.export(""); got != "" {
		t.Fatalf("an import over the cap wrote:\n%s", got)
	}
	// Well over AUTHZ_MAX_BODY_BYTES (64 KiB in tests) is fine under the import's cap.
	b, _ := apptest.MustStartWith(t, "memory", nil)
	h = &harness{t: t, url: b.URL, dbURL: b.DatabaseURL, adminToken: b.AdminToken}
	doc.Reset()
	for i := range 3000 {
		fmt.Fprintf(&doc, `{"kind":"partner","partner_id":"partner-with-a-longer-id-%d"}`+"\n", i)
	}
	if r := h.importDoc(doc.String(), ""); r.status != 200 || counts(r)["created"] != 3000 {
		t.Fatalf("%d-byte import: %d %s", doc.Len(), r.status, truncateRaw(r.raw))
	}
	out, _ := h.export("")
	if n := strings.Count(out, "\n"); n != 3000 || !slices.IsSorted(strings.Split(strings.TrimSpace(out), "\n")) {
		t.Fatalf("export has %d lines (sorted: %v)", n, slices.IsSorted(strings.Split(strings.TrimSpace(out), "\n")))
	}
}

// TestImportUpdates: records that differ from authzd's state are written with
// their PUT's semantics (a tenant moves, a resource changes owner, a role's
// keys are replaced, a renamed role gets its role.put row) and counted as
// updated; members are only added.
func TestImportUpdates(t *testing.T) {
	h := mustStartImport(t, "memory", 1000)
	h.admin("PUT", "/v1/partners/p0", "", 200)
	h.admin("PUT", "/v1/partners/p1", "", 200)
	h.admin("PUT", "/v1/tenants/t0", `{"partner_id":"p0"}`, 200)
	h.admin("PUT", "/v1/tenants/t0/roles/ops", `{"name":"Ops","module_permissions":["scaibunker:create"]}`, 200)
	h.admin("PUT", "/v1/tenants/t0/roles/dev", `{"name":"Dev","module_permissions":["scaibunker:create"]}`, 200)
	h.admin("PUT", "/v1/tenants/t0/roles/ops/members/carol", "", 200)
	h.admin("PUT", "/v1/tenants/t0/resources/bunker/b1", `{"owner_id":"alice"}`, 200)
	rolePuts := h.auditCount("role.put")
	doc := strings.Join([]string{
		`{"kind":"partner","partner_id":"p0"}`,
		`{"kind":"tenant","tenant_id":"t0","partner_id":"p1"}`,
		`{"kind":"role","tenant_id":"t0","role_id":"ops","name":"Operators","module_permissions":["scaibunker:create"]}`,
		`{"kind":"role","tenant_id":"t0","role_id":"dev","name":"Dev","module_permissions":["scaibunker:execute","scaibunker:create"]}`,
		`{"kind":"role","tenant_id":"t0","role_id":"new","name":"New","module_permissions":[]}`,
		`{"kind":"member","tenant_id":"t0","role_id":"ops","user_id":"dave"}`,
		`{"kind":"resource","tenant_id":"t0","resource":{"type":"bunker","id":"b1"},"owner_id":"sa:bob"}`,
	}, "\n")
	dry := h.importDoc(doc, "?dry_run=true")
	r := h.importDoc(doc, "")
	if r.status != 200 {
		t.Fatalf("import: %d %s", r.status, r.raw)
	}
	kinds, _ := r.body["kinds"].(map[string]any)
	want := map[string]map[string]float64{
		"partner":  {"unchanged": 1},
		"tenant":   {"updated": 1},
		"role":     {"updated": 2, "created": 1},
		"member":   {"created": 1},
		"resource": {"updated": 1},
	}
	for kind, w := range want {
		got, _ := kinds[kind].(map[string]any)
		for _, status := range []string{"created", "updated", "unchanged", "removed"} {
			if got[status] != w[status] {
				t.Fatalf("%s %s: %v, want %v; answer %s", kind, status, got[status], w[status], r.raw)
			}
		}
	}
	if !mapsEqual(counts(r), counts(dry)) || !reflect.DeepEqual(r.body["kinds"], dry.body["kinds"]) {
		t.Fatalf("dry run %s; import %s", dry.raw, r.raw)
	}
	got, _ := h.export("")
	wantDoc := strings.Join([]string{
		`{"kind":"partner","partner_id":"p0"}`,
		`{"kind":"partner","partner_id":"p1"}`,
		`{"kind":"tenant","tenant_id":"t0","partner_id":"p1"}`,
		`{"kind":"role","tenant_id":"t0","role_id":"dev","name":"Dev","module_permissions":["scaibunker:create","scaibunker:execute"]}`,
		`{"kind":"role","tenant_id":"t0","role_id":"new","name":"New","module_permissions":[]}`,
		`{"kind":"role","tenant_id":"t0","role_id":"ops","name":"Operators","module_permissions":["scaibunker:create"]}`,
		`{"kind":"member","tenant_id":"t0","role_id":"ops","user_id":"carol"}`,
		`{"kind":"member","tenant_id":"t0","role_id":"ops","user_id":"dave"}`,
		`{"kind":"resource","tenant_id":"t0","resource":{"type":"bunker","id":"b1"},"owner_id":"sa:bob"}`,
	}, "\n") + "\n"
	if got != wantDoc {
		t.Fatalf("export after the import:\n%s\n--- want\n%s", got, wantDoc)
	}
	if n := h.auditCount("role.put") - rolePuts; n != 3 {
		t.Fatalf("%d role.put rows for 3 roles created, renamed or changed", n)
	}
	if again := h.importDoc(doc, ""); counts(again)["unchanged"] != 7 {
		t.Fatalf("second import: %s", again.raw)
	}
}

// TestImportStatus: an import named by its X-Request-Id can be followed;
// once it answers, every batch is written and it is done.
func TestImportStatus(t *testing.T) {
	h := mustStartImport(t, "memory", 2)
	status := func(id string) map[string]any {
		return h.admin("GET", "/v1/import/status?import_id="+id, "", 200).body
	}
	if st := status("imp-1"); st["batches"] != 0.0 || st["batches_written"] != 0.0 || st["done"] != false {
		t.Fatalf("status before the import: %v", st)
	}
	r := h.do("POST", "/v1/import", h.adminToken, partnersDoc(5), "Content-Type", "application/x-ndjson", "X-Request-Id", "imp-1")
	if r.status != 200 || counts(r)["batches"] != 3 {
		t.Fatalf("import: %d %s", r.status, r.raw)
	}
	if st := status("imp-1"); st["batches"] != 3.0 || st["batches_written"] != 3.0 || st["done"] != true {
		t.Fatalf("status after the import: %v", st)
	}
	if r := h.do("GET", "/v1/import/status", h.adminToken, ""); r.status != 400 {
		t.Fatalf("status without import_id: %d %s", r.status, r.raw)
	}
}

func partnersDoc(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"kind":"partner","partner_id":"p%d"}`+"\n", i)
	}
	return b.String()
}
