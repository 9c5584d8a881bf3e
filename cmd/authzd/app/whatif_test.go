package app_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/authzed/grpcutil"
	"github.com/authzed/spicedb/pkg/cmd/datastore"
	"github.com/authzed/spicedb/pkg/cmd/server"
	"github.com/authzed/spicedb/pkg/cmd/util"
	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/scailabs/authzd/cmd/authzd/app"
	"github.com/scailabs/authzd/cmd/authzd/app/apptest"
	"github.com/scailabs/authzd/internal/authz"
)

// The what-if's tests: its predictions against SpiceDB's own answers before
// and after the same changes are written for real, its writing nothing, and
// its refusals. SpiceDB is asked through a server of the test's own on the
// same Postgres datastore as authzd's embedded one (the oracle), never
// through the code under test.

// oracle is a SpiceDB server of the test's own on authzd's datastore.
func oracle(t *testing.T, uri string) v1.PermissionsServiceClient {
	t.Helper()
	if uri == "" {
		t.Fatal("the oracle needs the postgres datastore")
	}
	ds := datastore.DefaultDatastoreConfig()
	ds.Engine, ds.URI, ds.EnableDatastoreMetrics = datastore.PostgresEngine, uri, false
	key := rand.Text()
	srv, err := server.NewConfigWithOptionsAndDefaults(
		server.WithDatastoreConfig(*ds), server.WithPresharedSecureKey(key),
		server.WithGRPCServer(util.GRPCServerConfig{Network: util.BufferedNetwork, Enabled: true}),
		server.WithHTTPGateway(util.HTTPServerConfig{HTTPEnabled: false}),
		server.WithMetricsAPI(util.HTTPServerConfig{HTTPEnabled: false}),
		server.WithDispatchServer(util.GRPCServerConfig{Enabled: false}),
		server.WithSilentlyDisableTelemetry(true), server.WithTelemetryEndpoint(""),
	).Complete(context.Background())
	if err != nil {
		t.Fatalf("oracle spicedb: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	conn, err := srv.NewClient(grpc.WithTransportCredentials(insecure.NewCredentials()), grpcutil.WithInsecureBearerToken(key))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(); cancel(); <-done })
	return v1.NewPermissionsServiceClient(conn)
}

// question is one distinct question of the decision log.
type question struct{ user, key, rtype, rid string }

func (q question) String() string { return q.user + " " + q.key + " " + q.rtype + "/" + q.rid }

// spiceCheck asks the oracle, at cons, what authzd's check of q in tenant asks SpiceDB.
func spiceCheck(t *testing.T, sp v1.PermissionsServiceClient, tenant string, q question, cons *v1.Consistency) bool {
	t.Helper()
	obj := &v1.ObjectReference{ObjectType: "tenant", ObjectId: tenant}
	if q.rtype != "" {
		obj = &v1.ObjectReference{ObjectType: q.rtype, ObjectId: tenant + "/" + q.rid}
	}
	subj := &v1.ObjectReference{ObjectType: "user", ObjectId: q.user}
	if id, ok := strings.CutPrefix(q.user, "sa:"); ok {
		subj = &v1.ObjectReference{ObjectType: "service_account", ObjectId: id}
	}
	resp, err := sp.CheckPermission(context.Background(), &v1.CheckPermissionRequest{Consistency: cons, Resource: obj,
		Permission: authz.MustParseKey(q.key).Relation(), Subject: &v1.SubjectReference{Object: subj}})
	if err != nil {
		t.Fatalf("oracle check %s: %v", q, err)
	}
	return resp.GetPermissionship() == v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION
}

func exactly(token string) *v1.Consistency {
	return &v1.Consistency{Requirement: &v1.Consistency_AtExactSnapshot{AtExactSnapshot: &v1.ZedToken{Token: token}}}
}

func freshAs(token string) *v1.Consistency {
	return &v1.Consistency{Requirement: &v1.Consistency_AtLeastAsFresh{AtLeastAsFresh: &v1.ZedToken{Token: token}}}
}

// logGroups counts the tenant's decisions since since by question, straight from the audit table.
func logGroups(t *testing.T, dbURL, tenant string, since time.Time) map[question]int64 {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(context.Background(), `SELECT actor_user_id, permission, resource_type, resource_id, count(*)
		FROM audit_events WHERE tenant_id = $1 AND occurred_at >= $2 AND module <> 'authzd'
		GROUP BY 1, 2, 3, 4`, tenant, since)
	if err != nil {
		t.Fatal(err)
	}
	out := map[question]int64{}
	for rows.Next() {
		var q question
		var n int64
		if err := rows.Scan(&q.user, &q.key, &q.rtype, &q.rid, &n); err != nil {
			t.Fatal(err)
		}
		out[q] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// world is the differential test's random world and how it changes.
type world struct {
	r        *mrand.Rand
	users    []string
	partners []string
	tenants  []string
	target   string
	roles    []string // custom role ids of the target, existing or not
	keys     []string
	bunkers  []string
	bindings []string
}

var (
	bunkerKeys  = []string{"scaibunker:create", "scaibunker:execute", "scaibunker:shell", "scaibunker:files", "scaibunker:root", "scaibunker:admin"}
	bindingKeys = []string{"scaiskills:view", "scaiskills:bind", "scaiskills:grant", "scaiskills:manage"}
)

func (w *world) pick(s []string) string { return s[w.r.IntN(len(s))] }

func (w *world) someKeys() []string {
	out := []string{} // never null: a role's module_permissions is required, and may be empty
	for _, k := range w.keys {
		if w.r.IntN(3) == 0 {
			out = append(out, k)
		}
	}
	return out
}

// change is one random change record of every kind and op, mostly of the target tenant.
func (w *world) change() map[string]any {
	op := "put"
	if w.r.IntN(2) == 0 {
		op = "delete"
	}
	c := map[string]any{"op": op}
	switch w.r.IntN(12) {
	case 0:
		c["kind"], c["partner_id"] = "partner", w.pick(append(slices.Clip(w.partners), "pnew"))
	case 1:
		c["kind"], c["user_id"] = "super_admin", w.pick(w.users)
	case 2:
		c["kind"], c["partner_id"], c["user_id"] = "partner_admin", w.pick(append(slices.Clip(w.partners), "pnew")), w.pick(w.users)
	case 3:
		c["kind"], c["tenant_id"] = "tenant", w.target
		if op == "put" {
			c["partner_id"] = w.pick(w.partners)
		} else if w.r.IntN(3) != 0 {
			c["op"], c["partner_id"] = "put", w.pick(w.partners) // offboarding is rarer than a move
		}
	case 4, 5:
		c["kind"], c["tenant_id"], c["role_id"] = "role", w.target, w.pick(w.roles)
		if op == "put" {
			c["name"], c["module_permissions"] = "role "+c["role_id"].(string), w.someKeys()
		}
	case 6, 7, 8:
		c["kind"], c["tenant_id"], c["user_id"] = "member", w.target, w.pick(w.users)
		c["role_id"] = w.pick(append(slices.Clip(w.roles), authz.TenantRoles...))
	default:
		typ, ids := "bunker", w.bunkers
		if w.r.IntN(2) == 0 {
			typ, ids = "binding", w.bindings
		}
		c["kind"], c["tenant_id"], c["resource"] = "resource", w.target, map[string]string{"type": typ, "id": w.pick(ids)}
		if op == "put" {
			c["owner_id"] = w.pick(w.users)
		}
	}
	return c
}

// write makes a change for real through the API; it returns the status and the token.
func (h *harness) writeChange(c map[string]any) (int, string) {
	h.t.Helper()
	method := "PUT"
	if c["op"] == "delete" {
		method = "DELETE"
	}
	s := func(k string) string { v, _ := c[k].(string); return url.PathEscape(v) }
	var path, body string
	switch c["kind"] {
	case "partner":
		path = "/v1/partners/" + s("partner_id")
	case "super_admin":
		path = "/v1/platform/super_admins/" + s("user_id")
	case "partner_admin":
		path = "/v1/partners/" + s("partner_id") + "/admins/" + s("user_id")
	case "tenant":
		path = "/v1/tenants/" + s("tenant_id")
		if method == "PUT" {
			body = `{"partner_id":"` + s("partner_id") + `"}`
		}
	case "role":
		path = "/v1/tenants/" + s("tenant_id") + "/roles/" + s("role_id")
		if method == "PUT" {
			b, _ := json.Marshal(map[string]any{"name": c["name"], "module_permissions": c["module_permissions"]})
			body = string(b)
		}
	case "member":
		path = "/v1/tenants/" + s("tenant_id") + "/roles/" + s("role_id") + "/members/" + s("user_id")
	case "resource":
		res := c["resource"].(map[string]string)
		path = "/v1/tenants/" + s("tenant_id") + "/resources/" + res["type"] + "/" + res["id"]
		if method == "PUT" {
			body = `{"owner_id":"` + s("owner_id") + `"}`
		}
	}
	r := h.do(method, path, h.adminToken, body)
	return r.status, token(r)
}

// decide makes real decisions on the target tenant through check,
// check_bulk and AuthZEN, with tok as their consistency token.
func (h *harness) decide(w *world, n int, tok string) {
	h.t.Helper()
	ask := func() map[string]any {
		b := map[string]any{"tenant_id": w.target, "user_id": w.pick(w.users), "consistency_token": tok}
		switch w.r.IntN(3) {
		case 0:
			b["permission"] = w.pick(w.keys)
		case 1:
			b["permission"], b["resource"] = w.pick(bunkerKeys), map[string]string{"type": "bunker", "id": w.pick(w.bunkers)}
		default:
			b["permission"], b["resource"] = w.pick(bindingKeys), map[string]string{"type": "binding", "id": w.pick(w.bindings)}
		}
		return b
	}
	for range n {
		switch w.r.IntN(3) {
		case 0:
			b, _ := json.Marshal(ask())
			h.admin("POST", "/v1/permissions/check", string(b), 200)
		case 1:
			items := []map[string]any{ask(), ask(), ask()}
			b, _ := json.Marshal(map[string]any{"items": items})
			h.admin("POST", "/v1/permissions/check_bulk", string(b), 200)
		default:
			q := ask()
			res := map[string]any{"type": "tenant", "id": w.target}
			if r, ok := q["resource"].(map[string]string); ok {
				res = map[string]any{"type": r["type"], "id": r["id"], "properties": map[string]string{"tenant_id": w.target}}
			}
			subj := map[string]string{"type": "user", "id": q["user_id"].(string)}
			if id, ok := strings.CutPrefix(subj["id"], "sa:"); ok {
				subj = map[string]string{"type": "service_account", "id": id}
			}
			b, _ := json.Marshal(map[string]any{"subject": subj, "action": map[string]string{"name": q["permission"].(string)},
				"resource": res, "context": map[string]string{"consistency_token": tok}})
			if r := h.do("POST", "/access/v1/evaluation", h.adminToken, string(b), "Content-Type", "application/json"); r.status != 200 {
				h.t.Fatalf("evaluation %s: %d %s", b, r.status, r.raw)
			}
		}
	}
}

type whatifFlip struct {
	UserID     string            `json:"user_id"`
	Permission string            `json:"permission"`
	Resource   map[string]string `json:"resource"`
	From, To   string
	Decisions  int64 `json:"decisions"`
}

type whatifAnswer struct {
	Questions int          `json:"questions"`
	Skipped   int          `json:"skipped"`
	Flips     []whatifFlip `json:"flips"`
	ZedToken  string       `json:"zed_token"`
}

func seed(t *testing.T) uint64 {
	s := uint64(time.Now().UnixNano())
	if v := os.Getenv("AUTHZ_TEST_SEED"); v != "" {
		s, _ = strconv.ParseUint(v, 10, 64)
	}
	t.Logf("seed %d (AUTHZ_TEST_SEED=%d repeats it)", s, s)
	return s
}

func startWhatIf(t *testing.T, configure func(*app.Config)) (*harness, string) {
	a, _ := apptest.MustStartWith(t, "postgres", configure)
	return &harness{t: t, url: a.URL, dbURL: a.DatabaseURL, adminToken: a.AdminToken}, a.SpiceDBDatabaseURL
}

// TestWhatIfDifferential: on a random world with real decisions, each
// round's what-if predicts exactly the questions whose answer SpiceDB gives
// differently before (at the what-if's revision) and after the same changes
// are written for real; the counts are the log's; a change the what-if
// refuses is refused by the write too. Once with a cross-tenant edge written
// straight to SpiceDB. AUTHZ_TEST_WHATIF_ROUNDS sets the rounds (default 40).
func TestWhatIfDifferential(t *testing.T) {
	for _, edge := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "cross-tenant edge"}[edge], func(t *testing.T) {
			rounds := 40
			if testing.Short() {
				rounds = 10
			}
			if v, err := strconv.Atoi(os.Getenv("AUTHZ_TEST_WHATIF_ROUNDS")); err == nil && v > 0 {
				rounds = v
			}
			testWhatIfDifferential(t, rounds, edge)
		})
	}
}

func testWhatIfDifferential(t *testing.T, rounds int, edge bool) {
	r := mrand.New(mrand.NewPCG(seed(t), 34))
	h, spiceURL := startWhatIf(t, nil)
	sp := oracle(t, spiceURL)
	w := &world{r: r, users: []string{"u0", "u1", "u2", "u3", "u4", "sa:bot"}, partners: []string{"p0", "p1"},
		tenants: []string{"t0", "t1", "t2"}, target: "t0", roles: []string{"ops", "dev", "audit"},
		keys:    append(append([]string{"scaibunker:create:session", "scaiskills:publish"}, bunkerKeys...), bindingKeys...),
		bunkers: []string{"b0", "b1", "b2"}, bindings: []string{"k0", "k1"}}

	var tok string
	must := func(c map[string]any) {
		if status, zt := h.writeChange(c); status != 200 {
			t.Fatalf("setup %v: status %d", c, status)
		} else {
			tok = zt
		}
	}
	for _, p := range w.partners {
		must(map[string]any{"op": "put", "kind": "partner", "partner_id": p})
	}
	for i, tn := range w.tenants {
		must(map[string]any{"op": "put", "kind": "tenant", "tenant_id": tn, "partner_id": w.partners[i%len(w.partners)]})
	}
	must(map[string]any{"op": "put", "kind": "partner_admin", "partner_id": "p0", "user_id": "u4"})
	must(map[string]any{"op": "put", "kind": "super_admin", "user_id": "u3"})
	for _, tn := range w.tenants {
		for _, role := range w.roles[:2] {
			must(map[string]any{"op": "put", "kind": "role", "tenant_id": tn, "role_id": role, "name": role, "module_permissions": w.someKeys()})
			must(map[string]any{"op": "put", "kind": "member", "tenant_id": tn, "role_id": role, "user_id": w.pick(w.users)})
		}
		must(map[string]any{"op": "put", "kind": "member", "tenant_id": tn, "role_id": w.pick(authz.TenantRoles), "user_id": w.pick(w.users)})
		for _, b := range w.bunkers {
			must(map[string]any{"op": "put", "kind": "resource", "tenant_id": tn, "resource": map[string]string{"type": "bunker", "id": b}, "owner_id": w.pick(w.users)})
		}
		must(map[string]any{"op": "put", "kind": "resource", "tenant_id": tn, "resource": map[string]string{"type": "binding", "id": "k0"}, "owner_id": w.pick(w.users)})
	}
	if edge {
		// t1's role "ops" holds t0's grants: a relationship authzd's API never writes.
		w.users = append(w.users, "x1")
		must(map[string]any{"op": "put", "kind": "member", "tenant_id": "t1", "role_id": "ops", "user_id": "x1"})
		resp, err := sp.WriteRelationships(context.Background(), &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{{
			Operation: v1.RelationshipUpdate_OPERATION_TOUCH,
			Relationship: &v1.Relationship{Resource: &v1.ObjectReference{ObjectType: "tenant", ObjectId: "t0"}, Relation: "grant_scaibunker__create",
				Subject: &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "role", ObjectId: "t1/ops"}, OptionalRelation: "member"}},
		}}})
		if err != nil {
			t.Fatal(err)
		}
		tok = resp.GetWrittenAt().GetToken()
		if !spiceCheck(t, sp, "t0", question{user: "x1", key: "scaibunker:create"}, freshAs(tok)) {
			t.Fatal("setup: the cross-tenant grant does not grant")
		}
	}

	since := time.Now().Add(-time.Second)
	flipsSeen, refusedSeen := 0, 0
	for round := range rounds {
		h.decide(w, 4, tok)
		if edge {
			b, _ := json.Marshal(map[string]any{"tenant_id": "t0", "user_id": "x1", "permission": "scaibunker:create", "consistency_token": tok})
			h.admin("POST", "/v1/permissions/check", string(b), 200)
		}
		changes := make([]map[string]any, r.IntN(7))
		for i := range changes {
			changes[i] = w.change()
		}
		body, _ := json.Marshal(map[string]any{"tenant_id": w.target, "since": since.Format(time.RFC3339Nano), "consistency_token": tok, "changes": changes})
		res := h.do("POST", "/v1/whatif", h.adminToken, string(body), "X-Actor-User-Id", "admin-1")
		if res.status == 400 {
			// The index the what-if names is the first change the writes refuse.
			msg, _ := res.body["error"].(map[string]any)["message"].(string)
			idx := -1
			if _, err := fmt.Sscanf(msg, "changes[%d]", &idx); err != nil {
				t.Fatalf("round %d: 400 names no change: %s", round, res.raw)
			}
			for i, c := range changes[:idx+1] {
				status, zt := h.writeChange(c)
				switch {
				case i < idx && status != 200:
					t.Fatalf("round %d: change %d %v: the write answered %d; the what-if accepted it (refused %d: %s)", round, i, c, status, idx, msg)
				case i == idx && (status < 400 || status >= 500):
					t.Fatalf("round %d: change %d %v: the what-if refused it (%s), the write answered %d", round, i, c, msg, status)
				case status == 200:
					tok = zt
				}
			}
			refusedSeen++
			continue
		}
		if res.status != 200 {
			t.Fatalf("round %d: what-if status %d: %s", round, res.status, res.raw)
		}
		var ans whatifAnswer
		if err := json.Unmarshal([]byte(res.raw), &ans); err != nil {
			t.Fatal(err)
		}
		groups := logGroups(t, h.dbURL, w.target, since)
		if ans.Questions != len(groups) || ans.Skipped != 0 {
			t.Fatalf("round %d: questions %d skipped %d, the log has %d", round, ans.Questions, ans.Skipped, len(groups))
		}
		before := map[question]bool{}
		for q := range groups {
			before[q] = spiceCheck(t, sp, w.target, q, exactly(ans.ZedToken))
		}
		for i, c := range changes {
			status, zt := h.writeChange(c)
			if status != 200 {
				t.Fatalf("round %d: change %d %v: the write answered %d; the what-if accepted it", round, i, c, status)
			}
			tok = zt
		}
		want := map[string]string{}
		for q, n := range groups {
			after := spiceCheck(t, sp, w.target, q, freshAs(tok))
			if after != before[q] {
				want[q.String()] = fmt.Sprintf("%v->%v x%d", before[q], after, n)
			}
		}
		got := map[string]string{}
		for _, f := range ans.Flips {
			q := question{user: f.UserID, key: f.Permission, rtype: f.Resource["type"], rid: f.Resource["id"]}
			got[q.String()] = fmt.Sprintf("%v->%v x%d", f.From == "allowed", f.To == "allowed", f.Decisions)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("round %d: changes %v\nflips %v\nwant  %v", round, changes, got, want)
		}
		for i := 1; i < len(ans.Flips); i++ {
			a, b := ans.Flips[i-1], ans.Flips[i]
			if (a.From == "denied" && b.From == "allowed") || (a.From == b.From && a.Decisions < b.Decisions) {
				t.Fatalf("round %d: flips out of order: %v", round, ans.Flips)
			}
		}
		flipsSeen += len(ans.Flips)
	}
	t.Logf("%d rounds: %d flips predicted and confirmed, %d what-ifs refused as the writes were", rounds, flipsSeen, refusedSeen)
	if flipsSeen == 0 {
		t.Fatal("no round predicted a flip: the test proved nothing")
	}
}

// state is what a what-if must leave as it found it: every relationship,
// SpiceDB write calls and the decision cache's invalidations and barriers.
type state struct {
	rels    []string
	metrics map[string]float64
}

var watchedMetrics = []string{"authzd_cache_invalidations_total", "authzd_cache_barriers_total", "authzd_cache_resyncs_total"}

func (h *harness) state(sp v1.PermissionsServiceClient) state {
	h.t.Helper()
	var s state
	for _, typ := range []string{"platform", "partner", "tenant", "role", "bunker", "binding"} {
		stream, err := sp.ReadRelationships(context.Background(), &v1.ReadRelationshipsRequest{
			Consistency:        &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}},
			RelationshipFilter: &v1.RelationshipFilter{ResourceType: typ}})
		if err != nil {
			h.t.Fatal(err)
		}
		for {
			r, err := stream.Recv()
			if err != nil {
				break
			}
			rel := r.GetRelationship()
			s.rels = append(s.rels, fmt.Sprintf("%s:%s#%s@%s:%s#%s", rel.GetResource().GetObjectType(), rel.GetResource().GetObjectId(),
				rel.GetRelation(), rel.GetSubject().GetObject().GetObjectType(), rel.GetSubject().GetObject().GetObjectId(), rel.GetSubject().GetOptionalRelation()))
		}
	}
	slices.Sort(s.rels)
	s.metrics = map[string]float64{}
	text := h.do("GET", "/metrics", "", "").raw
	for _, line := range strings.Split(text, "\n") {
		name, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			continue
		}
		if slices.Contains(watchedMetrics, name) {
			s.metrics[name] = v
		}
		// Every SpiceDB call that writes: relationship writes, deletes (barriers among them), imports.
		if strings.HasPrefix(name, "authzd_spicedb_call_duration_seconds_count{") &&
			(strings.Contains(name, "Write") || strings.Contains(name, "Delete") || strings.Contains(name, "Import")) {
			s.metrics[name] = v
		}
	}
	return s
}

// settled waits for the Watch stream to have delivered every write (the
// cache's counters stop moving) and returns the state.
func (h *harness) settled(sp v1.PermissionsServiceClient) state {
	h.t.Helper()
	prev := h.state(sp)
	for range 50 {
		time.Sleep(300 * time.Millisecond)
		cur := h.state(sp)
		if fmt.Sprint(cur) == fmt.Sprint(prev) {
			return cur
		}
		prev = cur
	}
	h.t.Fatal("the decision cache's counters did not settle")
	return prev
}

// TestWhatIfWritesNothing: around valid what-ifs (with flips) and invalid
// ones, with nothing else running, every relationship, SpiceDB's write
// calls, the decision cache's invalidations and barriers, and every real
// answer stay as they were; each invalid what-if answers its 4xx naming what
// was wrong, leaves no audit row, and the server goes on serving.
func TestWhatIfWritesNothing(t *testing.T) {
	h, spiceURL := startWhatIf(t, func(c *app.Config) { c.WhatIfMaxChanges, c.WhatIfMaxQuestions = 3, 6 })
	sp := oracle(t, spiceURL)
	h.admin("PUT", "/v1/partners/p", "", 200)
	h.admin("PUT", "/v1/tenants/t", `{"partner_id":"p"}`, 200)
	h.admin("PUT", "/v1/tenants/u", `{"partner_id":"p"}`, 200)
	h.admin("PUT", "/v1/tenants/t/roles/ops", `{"name":"ops","module_permissions":["scaibunker:create","scaiskills:view"]}`, 200)
	h.admin("PUT", "/v1/tenants/t/roles/ops/members/alice", "", 200)
	h.admin("PUT", "/v1/tenants/t/roles/tenant_viewer/members/bob", "", 200)
	tok := token(h.admin("PUT", "/v1/tenants/t/resources/bunker/b1", `{"owner_id":"alice"}`, 200))
	matrix := []string{
		checkBody("t", "alice", "scaibunker:create", tok), checkBody("t", "alice", "scaiskills:view", tok),
		checkBody("t", "bob", "scaiskills:view", tok), checkBody("t", "bob", "scaibunker:create", tok, "bunker", "b1"),
		checkBody("t", "alice", "scaibunker:execute", tok, "bunker", "b1"),
	}
	answers := func() []bool {
		var out []bool
		for _, b := range matrix {
			out = append(out, h.check(b))
		}
		return out
	}
	before := answers()
	since := time.Now().Add(-time.Minute).Format(time.RFC3339Nano)
	mid := time.Now().Format(time.RFC3339Nano)
	// Two more questions after mid: over AUTHZ_WHATIF_MAX_QUESTIONS without until.
	for _, u := range []string{"q1", "q2"} {
		h.check(checkBody("t", u, "scaibunker:create", tok))
	}
	secret := func(r response) string { s, _ := r.body["token"].(string); return s }
	checkOnly := secret(h.admin("POST", "/v1/tokens", `{"name":"c","scopes":["check"]}`, 201))
	auditOnly := secret(h.admin("POST", "/v1/tokens", `{"name":"a","scopes":["audit:read"]}`, 201))
	provision := secret(h.admin("POST", "/v1/tokens", `{"name":"p","scopes":["provision"]}`, 201))
	s0 := h.settled(sp)

	body := func(changes string) string {
		return `{"tenant_id":"t","since":"` + since + `","until":"` + mid + `","consistency_token":"` + tok + `","changes":` + changes + `}`
	}
	valid := body(`[{"op":"put","kind":"role","tenant_id":"t","role_id":"ops","name":"ops","module_permissions":["scaiskills:view"]},
		{"op":"delete","kind":"member","tenant_id":"t","role_id":"tenant_viewer","user_id":"bob"}]`)
	r := h.do("POST", "/v1/whatif", h.adminToken, valid, "X-Actor-User-Id", "carol")
	var ans whatifAnswer
	if r.status != 200 || json.Unmarshal([]byte(r.raw), &ans) != nil || len(ans.Flips) == 0 || ans.Questions != len(matrix) {
		t.Fatalf("valid what-if: %d %s", r.status, r.raw)
	}

	for _, tc := range []struct {
		name, token, body string
		status            int
		message           string
	}{
		{"unknown kind", "", body(`[{"op":"put","kind":"group","tenant_id":"t"}]`), 400, `changes[0]: unknown kind "group"`},
		{"unknown permission", "", body(`[{"op":"delete","kind":"member","tenant_id":"t","role_id":"ops","user_id":"x"},
			{"op":"put","kind":"role","tenant_id":"t","role_id":"r","name":"r","module_permissions":["scaibunker:fly"]}]`), 400,
			`changes[1].module_permissions[0]: unknown permission key "scaibunker:fly"`},
		{"unknown field", "", body(`[{"op":"put","kind":"partner","partner_id":"p","colour":"red"}]`), 400, `changes[0]: unknown field "colour"`},
		{"missing field", "", body(`[{"op":"put","kind":"member","tenant_id":"t","role_id":"ops"}]`), 400, `changes[0]: user_id`},
		{"bad op", "", body(`[{"op":"merge","kind":"partner","partner_id":"p"}]`), 400, `changes[0]: op is required`},
		{"no op", "", body(`[{"kind":"partner","partner_id":"p"}]`), 400, `changes[0]: op is required`},
		{"another tenant", "", body(`[{"op":"put","kind":"member","tenant_id":"u","role_id":"tenant_user","user_id":"x"}]`), 400, `changes[0]: tenant_id "u" is another tenant`},
		{"built-in role put", "", body(`[{"op":"put","kind":"role","tenant_id":"t","role_id":"tenant_admin","name":"x","module_permissions":[]}]`), 400, `changes[0]: role_id "tenant_admin" is a built-in role`},
		{"refused by the write", "", body(`[{"op":"put","kind":"member","tenant_id":"t","role_id":"nope","user_id":"x"}]`), 400, `changes[0]: role "nope" does not exist in tenant "t"`},
		{"since missing", "", `{"tenant_id":"t","changes":[]}`, 400, "since is required"},
		{"since bad", "", `{"tenant_id":"t","since":"yesterday","changes":[]}`, 400, "since is not an RFC 3339 time"},
		{"since future", "", `{"tenant_id":"t","since":"` + time.Now().Add(time.Hour).Format(time.RFC3339) + `","changes":[]}`, 400, "since is in the future"},
		{"since not before until", "", `{"tenant_id":"t","since":"` + since + `","until":"` + since + `","changes":[]}`, 400, "since must be before until"},
		{"unknown body field", "", `{"tenant_id":"t","since":"` + since + `","changes":[],"dry":true}`, 400, "dry"},
		{"too many changes", "", body(`[{"op":"put","kind":"partner","partner_id":"p"},{"op":"put","kind":"partner","partner_id":"p"},
			{"op":"put","kind":"partner","partner_id":"p"},{"op":"put","kind":"partner","partner_id":"p"}]`), 400, "changes holds 4 changes; the bound is 3 (AUTHZ_WHATIF_MAX_CHANGES)"},
		{"token lacks audit:read", checkOnly, valid, 403, `token lacks the "audit:read" scope`},
		{"token lacks check", auditOnly, valid, 403, `token lacks the "check" scope`},
		{"token lacks both", provision, valid, 403, `token lacks the "check" and "audit:read" scopes`},
	} {
		tk := tc.token
		if tk == "" {
			tk = h.adminToken
		}
		r := h.do("POST", "/v1/whatif", tk, tc.body)
		msg := errorMessage(r)
		if r.status != tc.status || !strings.Contains(msg, tc.message) {
			t.Errorf("%s: %d %q, want %d containing %q", tc.name, r.status, msg, tc.status, tc.message)
		}
	}
	// Over the questions' bound: more distinct questions in the window than AUTHZ_WHATIF_MAX_QUESTIONS.
	r = h.do("POST", "/v1/whatif", h.adminToken, `{"tenant_id":"t","since":"`+since+`","changes":[]}`)
	if msg := errorMessage(r); r.status != 400 ||
		!strings.Contains(msg, "the window holds 7 questions; the bound is 6 (AUTHZ_WHATIF_MAX_QUESTIONS)") {
		t.Errorf("over the questions' bound: %d %s", r.status, r.raw)
	}

	if s1 := h.state(sp); fmt.Sprint(s1) != fmt.Sprint(s0) {
		t.Errorf("the what-ifs changed the state\nbefore %v\nafter  %v", s0, s1)
	}
	if after := answers(); !slices.Equal(before, after) {
		t.Errorf("real answers changed: %v, then %v", before, after)
	}
	conn, err := pgx.Connect(context.Background(), h.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var rows int
	var actor, details string
	if err := conn.QueryRow(context.Background(), `SELECT count(*), min(actor_user_id), min(details::text) FROM audit_events
		WHERE module = 'authzd' AND action = 'whatif'`).Scan(&rows, &actor, &details); err != nil {
		t.Fatal(err)
	}
	details = strings.ReplaceAll(details, " ", "")
	if rows != 1 || actor != "carol" || !strings.Contains(details, `"flips":`+strconv.Itoa(len(ans.Flips))) || !strings.Contains(details, `"changes":2`) ||
		!strings.Contains(details, `"changes_sha256":"`) || !strings.Contains(details, `"questions":5`) {
		t.Errorf("audit rows of what-ifs: %d (actor %q, details %s), want the valid one's only", rows, actor, details)
	}
}

// errorMessage is the message of an error answer, or its whole body.
func errorMessage(r response) string {
	if e, ok := r.body["error"].(map[string]any); ok {
		if m, ok := e["message"].(string); ok {
			return m
		}
	}
	return r.raw
}

// TestWhatIfInterleaving: what-ifs that take a key away run back to back
// while a writer moves a member in and out of the role and checkers ask the
// questions the what-ifs flip. No real check ever answers the hypothetical
// value, and each what-if's flips are exactly those SpiceDB's answers at its
// own revision imply.
func TestWhatIfInterleaving(t *testing.T) {
	h, spiceURL := startWhatIf(t, nil)
	sp := oracle(t, spiceURL)
	h.admin("PUT", "/v1/partners/p", "", 200)
	h.admin("PUT", "/v1/tenants/t", `{"partner_id":"p"}`, 200)
	h.admin("PUT", "/v1/tenants/t/roles/ops", `{"name":"ops","module_permissions":["scaibunker:create"]}`, 200)
	tok := token(h.admin("PUT", "/v1/tenants/t/roles/ops/members/alice", "", 200))
	since := time.Now().Add(-time.Second).Format(time.RFC3339Nano)
	h.check(checkBody("t", "alice", "scaibunker:create", tok))
	h.check(checkBody("t", "bob", "scaibunker:create", tok))

	stop := make(chan struct{})
	errs := make(chan error, 16)
	done := make(chan struct{})
	var workers int
	spawn := func(f func(i int) error) {
		workers++
		go func() {
			defer func() { done <- struct{}{} }()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := f(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	spawn(func(i int) error { // the writer: bob in and out of ops
		method := "PUT"
		if i%2 == 1 {
			method = "DELETE"
		}
		if r := h.do(method, "/v1/tenants/t/roles/ops/members/bob", h.adminToken, ""); r.status != 200 {
			return fmt.Errorf("writer: %d %s", r.status, r.raw)
		}
		return nil
	})
	for range 2 { // checkers: alice keeps the key for real, whatever the what-ifs predict
		spawn(func(int) error {
			for _, u := range []string{"alice", "bob"} {
				// At least as fresh as alice's membership: a check without a token may be answered
				// from before it (minimize_latency).
				r := h.do("POST", "/v1/permissions/check", h.adminToken, checkBody("t", u, "scaibunker:create", tok))
				if r.status != 200 {
					return fmt.Errorf("check: %d %s", r.status, r.raw)
				}
				if allowed, _ := r.body["allowed"].(bool); u == "alice" && !allowed {
					return fmt.Errorf("a real check of alice answered denied, the what-ifs' hypothetical value")
				}
			}
			return nil
		})
	}
	body := `{"tenant_id":"t","since":"` + since + `","changes":[{"op":"put","kind":"role","tenant_id":"t","role_id":"ops","name":"ops","module_permissions":[]}]}`
	rounds := 15
	bobFlipped := 0
	for round := range rounds {
		r := h.do("POST", "/v1/whatif", h.adminToken, body)
		var ans whatifAnswer
		if r.status != 200 || json.Unmarshal([]byte(r.raw), &ans) != nil {
			t.Fatalf("round %d: %d %s", round, r.status, r.raw)
		}
		want := []string{"alice"}
		if spiceCheck(t, sp, "t", question{user: "bob", key: "scaibunker:create"}, exactly(ans.ZedToken)) {
			want = append(want, "bob")
			bobFlipped++
		}
		var got []string
		for _, f := range ans.Flips {
			if f.From != "allowed" || f.To != "denied" || f.Permission != "scaibunker:create" {
				t.Fatalf("round %d: flip %+v", round, f)
			}
			got = append(got, f.UserID)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("round %d at %s: flips %v, SpiceDB at that revision implies %v", round, ans.ZedToken, got, want)
		}
	}
	close(stop)
	for range workers {
		<-done
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d what-ifs among writes and checks; bob was a member at %d of their revisions", rounds, bobFlipped)
}

// BenchmarkWhatIf is one what-if over 10,000 distinct questions of one
// tenant, side by side with the same questions checked for real through
// check_bulk (100 a call, one caller), cache cold and then warm:
//
//	go test -run '^$' -bench WhatIf -benchtime 1x ./cmd/authzd/app
//
// It reports the seconds of each and the what-if's ratio to the cold checks,
// the bytes this process allocated during the what-if (authzd runs in it),
// and the p99 of real checks (2 callers, 10 s) without and with what-ifs
// running back to back. AUTHZ_WHATIF_WORKERS sets the what-if's workers.
func BenchmarkWhatIf(b *testing.B) {
	const users, bunkers, questions = 200, 50, 10_000
	a, _ := apptest.MustStartWith(b, "postgres", func(c *app.Config) {
		if n, err := strconv.Atoi(os.Getenv("AUTHZ_WHATIF_WORKERS")); err == nil {
			c.WhatIfWorkers = n
		}
	})
	h := &harness{t: b, url: a.URL, dbURL: a.DatabaseURL, adminToken: a.AdminToken}
	h.admin("PUT", "/v1/partners/p", "", 200)
	h.admin("PUT", "/v1/tenants/t", `{"partner_id":"p"}`, 200)
	h.admin("PUT", "/v1/tenants/t/roles/ops", `{"name":"ops","module_permissions":["scaibunker:create","scaibunker:execute","scaiskills:view"]}`, 200)
	var tok string
	for i := range users {
		role := "ops"
		if i%4 == 0 {
			role = "tenant_user"
		}
		tok = token(h.admin("PUT", fmt.Sprintf("/v1/tenants/t/roles/%s/members/u%d", role, i), "", 200))
	}
	for i := range bunkers {
		tok = token(h.admin("PUT", fmt.Sprintf("/v1/tenants/t/resources/bunker/b%d", i), fmt.Sprintf(`{"owner_id":"u%d"}`, i*3%users), 200))
	}
	keys := []string{"scaibunker:create", "scaibunker:execute", "scaiskills:view", "scaibunker:shell", "scaiskills:bind"}
	r := mrand.New(mrand.NewPCG(1, 2))
	seen := map[string]bool{}
	var items []map[string]any
	for len(items) < questions {
		it := map[string]any{"tenant_id": "t", "user_id": fmt.Sprint("u", r.IntN(users)), "permission": keys[r.IntN(len(keys))], "consistency_token": tok}
		if k := r.IntN(bunkers + 1); k < bunkers && strings.HasPrefix(it["permission"].(string), "scaibunker") {
			it["resource"] = map[string]string{"type": "bunker", "id": fmt.Sprint("b", k)}
		}
		id := fmt.Sprint(it["user_id"], it["permission"], it["resource"])
		if !seen[id] {
			seen[id] = true
			items = append(items, it)
		}
	}
	since := time.Now().Add(-time.Second).Format(time.RFC3339Nano)
	checkAll := func() time.Duration {
		began := time.Now()
		for i := 0; i < len(items); i += 100 {
			body, _ := json.Marshal(map[string]any{"items": items[i:min(i+100, len(items))]})
			h.admin("POST", "/v1/permissions/check_bulk", string(body), 200)
		}
		return time.Since(began)
	}
	cold, warm := checkAll(), checkAll()
	body := `{"tenant_id":"t","since":"` + since + `","consistency_token":"` + tok + `","changes":[
		{"op":"put","kind":"role","tenant_id":"t","role_id":"ops","name":"ops","module_permissions":["scaibunker:create","scaiskills:view"]},
		{"op":"delete","kind":"member","tenant_id":"t","role_id":"ops","user_id":"u1"},
		{"op":"put","kind":"member","tenant_id":"t","role_id":"tenant_viewer","user_id":"u1"}]}`
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	b.ResetTimer()
	began := time.Now()
	res := h.admin("POST", "/v1/whatif", body, 200)
	took := time.Since(began)
	b.StopTimer()
	runtime.ReadMemStats(&ms1)
	var ans whatifAnswer
	if err := json.Unmarshal([]byte(res.raw), &ans); err != nil || ans.Questions != questions {
		b.Fatalf("what-if answered %d questions (%v), want %d", ans.Questions, err, questions)
	}
	b.ReportMetric(took.Seconds(), "whatif-s")
	b.ReportMetric(cold.Seconds(), "cold-checks-s")
	b.ReportMetric(warm.Seconds(), "warm-checks-s")
	b.ReportMetric(took.Seconds()/cold.Seconds(), "whatif/cold")
	b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/(1<<20), "whatif-alloc-MiB")
	b.ReportMetric(float64(len(ans.Flips)), "flips")

	// Real checks' p99 (2 callers, closed loop, answers from the warm cache),
	// without and then with what-ifs running back to back.
	p99 := func(withWhatIfs bool) time.Duration {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		if withWhatIfs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					h.do("POST", "/v1/whatif", h.adminToken, body)
				}
			}()
		}
		lat := make([][]time.Duration, 2)
		for c := range lat {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					it := items[(c*7919+i)%len(items)]
					one, _ := json.Marshal(it)
					began := time.Now()
					h.do("POST", "/v1/permissions/check", h.adminToken, string(one))
					lat[c] = append(lat[c], time.Since(began))
				}
			}()
		}
		time.Sleep(10 * time.Second)
		close(stop)
		wg.Wait()
		all := append(lat[0], lat[1]...)
		slices.Sort(all)
		return all[len(all)*99/100]
	}
	none, with := p99(false), p99(true)
	b.ReportMetric(float64(none.Microseconds())/1000, "check-p99-ms")
	b.ReportMetric(float64(with.Microseconds())/1000, "check-p99-whatifs-ms")
}

// TestWhatIfTimeout: a what-if past AUTHZ_WHATIF_TIMEOUT answers 503 naming
// the setting, records nothing, and the server goes on serving.
func TestWhatIfTimeout(t *testing.T) {
	a, _ := apptest.MustStartWith(t, "memory", func(c *app.Config) { c.WhatIfTimeout = time.Millisecond })
	h := &harness{t: t, url: a.URL, dbURL: a.DatabaseURL, adminToken: a.AdminToken}
	h.admin("PUT", "/v1/partners/p", "", 200)
	tok := token(h.admin("PUT", "/v1/tenants/t", `{"partner_id":"p"}`, 200))
	h.check(checkBody("t", "alice", "scaibunker:create", tok))
	r := h.do("POST", "/v1/whatif", h.adminToken, `{"tenant_id":"t","since":"`+time.Now().Add(-time.Hour).Format(time.RFC3339)+`","changes":[]}`)
	if msg := errorMessage(r); r.status != 503 || !strings.Contains(msg, "AUTHZ_WHATIF_TIMEOUT") {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	h.check(checkBody("t", "alice", "scaibunker:create", tok))
	conn, err := pgx.Connect(context.Background(), h.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM audit_events WHERE action = 'whatif'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d what-if rows (%v), want none", n, err)
	}
}
