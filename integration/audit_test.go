package integration

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scailabs/authzd/internal/auditchain"
	"github.com/scailabs/authzd/internal/outofband"
	"github.com/scailabs/authzd/internal/postgres"
)

// auditRow is one row of audit_events as the database holds it. It and auditEvent repeat the fields of
// authz.Event on purpose: the suite reads the table and the API as an outsider would, so a renamed column or
// JSON field fails here instead of changing on both sides at once.
type auditRow struct {
	ID           string
	OccurredAt   time.Time
	Module       string
	Action       string
	ActorUserID  string
	TenantID     string
	ResourceType string
	ResourceID   string
	Permission   string
	Decision     string
	ZedToken     string
	DecisionID   string
	Client       string
	RequestID    string
}

func (r auditRow) String() string {
	return fmt.Sprintf("row %s{module=%q action=%q actor=%q tenant=%q resource=%q/%q permission=%q decision=%q decision_id=%q client=%q request_id=%q zed_token=%q}",
		r.ID, r.Module, r.Action, r.ActorUserID, r.TenantID, r.ResourceType, r.ResourceID, r.Permission, r.Decision,
		r.DecisionID, r.Client, r.RequestID, r.ZedToken)
}

// loadAuditRows reads every audit row, oldest first.
func loadAuditRows(ctx context.Context, db *pgxpool.Pool) ([]auditRow, error) {
	rows, err := db.Query(ctx, `
		SELECT id::text, occurred_at, coalesce(module, ''), coalesce(action, ''), coalesce(actor_user_id, ''),
		       coalesce(tenant_id, ''), coalesce(resource_type, ''), coalesce(resource_id, ''),
		       coalesce(permission, ''), coalesce(decision::text, ''), coalesce(zed_token, ''),
		       coalesce(decision_id::text, ''), coalesce(client, ''), coalesce(request_id, '')
		FROM audit_events ORDER BY occurred_at, id`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (auditRow, error) {
		var r auditRow
		err := row.Scan(&r.ID, &r.OccurredAt, &r.Module, &r.Action, &r.ActorUserID, &r.TenantID, &r.ResourceType,
			&r.ResourceID, &r.Permission, &r.Decision, &r.ZedToken, &r.DecisionID, &r.Client, &r.RequestID)
		return r, err
	})
}

func mustAuditRows(tb testing.TB, db *pgxpool.Pool) []auditRow {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := loadAuditRows(ctx, db)
	if err != nil {
		tb.Fatalf("read audit_events: %v", err)
	}
	return rows
}

// mustReconcileAudit checks the audit log against every call made through a's api: each decision a
// caller received has exactly one row saying the same thing, each provisioning write answered 200 has
// exactly one row, no other call left more than one row, and no row names a request nobody made.
func (a *testApp) mustReconcileAudit(tb testing.TB) []auditRow {
	tb.Helper()
	rows := mustAuditRows(tb, a.Audit)
	calls := a.calls.snapshot()
	problems := reconcile(calls, rows)
	reportProblems(tb, problems)
	if len(problems) == 0 {
		tb.Logf("audit reconciled: %d calls, %d rows", len(calls), len(rows))
	}
	mustVerifyChain(tb, a.Audit)
	return rows
}

// reportProblems fails tb with the first 20 audit problems and the count of the rest.
func reportProblems(tb testing.TB, problems []string) {
	tb.Helper()
	for i, p := range problems {
		if i == 20 {
			tb.Errorf("... and %d more audit problems", len(problems)-i)
			break
		}
		tb.Error(p)
	}
}

// mustVerifyChain walks the audit hash chain: whatever the run did (faults
// included), the committed rows form one unbroken chain.
func mustVerifyChain(tb testing.TB, pool *pgxpool.Pool) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db := &postgres.DB{Pool: pool}
	keys, err := db.SigningKeys(ctx)
	if err != nil {
		tb.Fatalf("signing keys: %v", err)
	}
	trusted := map[string]ed25519.PublicKey{}
	for _, k := range keys {
		trusted[k.KeyID] = k.Key
	}
	report, problem, err := auditchain.Walk(ctx, db, time.Time{}, trusted)
	if err != nil {
		tb.Fatalf("verify the audit chain: %v", err)
	}
	if problem != nil {
		tb.Errorf("audit chain broken: %v", problem)
		return
	}
	tb.Logf("audit chain: %s", report)
}

// reconcile returns every disagreement between calls and rows, as sentences.
func reconcile(calls []callRecord, rows []auditRow) []string {
	var problems []string
	byDecision := map[string][]auditRow{}
	byRequest := map[string][]auditRow{}
	for _, r := range rows {
		if r.DecisionID != "" {
			byDecision[r.DecisionID] = append(byDecision[r.DecisionID], r)
		}
		byRequest[r.RequestID] = append(byRequest[r.RequestID], r)
	}
	known := map[string]bool{}
	for _, c := range calls {
		if c.RequestID == "" {
			problems = append(problems, fmt.Sprintf("answer without X-Request-Id: %s", c.reply))
			continue
		}
		known[c.RequestID] = true
		if c.Malformed != "" {
			problems = append(problems, fmt.Sprintf("answer breaks the contract (%s): %s", c.Malformed, c.reply))
		}
		n := len(byRequest[c.RequestID])
		switch {
		case len(c.Decisions) > 0:
			for _, d := range c.Decisions {
				got := byDecision[d.ID]
				if len(got) != 1 {
					problems = append(problems, fmt.Sprintf("decision %s (%s %s %s on %s) has %d audit rows, want 1: %s",
						d.ID, d.Kind, d.UserID, d.Permission, d.TenantID, len(got), c.reply))
					continue
				}
				problems = append(problems, decisionRowProblems(d, c, got[0])...)
			}
			if n != len(c.Decisions) {
				problems = append(problems, fmt.Sprintf("request %s made %d decisions but has %d audit rows: %s", c.RequestID, len(c.Decisions), n, c.reply))
			}
		case c.Write:
			if n != 1 {
				problems = append(problems, fmt.Sprintf("provisioning write has %d audit rows, want 1: %s", n, c.reply))
				continue
			}
			problems = append(problems, writeRowProblems(c, byRequest[c.RequestID][0])...)
		case n > 1:
			problems = append(problems, fmt.Sprintf("call has %d audit rows, want at most 1: %s", n, c.reply))
		}
	}
	for _, r := range rows {
		if r.Client == outofband.Client {
			continue // changes seen on SpiceDB's Watch stream, not calls (TestExternalChanges checks them)
		}
		if !known[r.RequestID] {
			problems = append(problems, fmt.Sprintf("audit row for a request no caller made: %s", r))
		}
	}
	return problems
}

func decisionRowProblems(d decisionRecord, c callRecord, r auditRow) []string {
	var p []string
	want := func(field, got, want string) {
		if got != want {
			p = append(p, fmt.Sprintf("decision %s: audit %s = %q, want %q (%s)", d.ID, field, got, want, r))
		}
	}
	want("request_id", r.RequestID, c.RequestID)
	want("tenant_id", r.TenantID, d.TenantID)
	want("actor_user_id", r.ActorUserID, d.UserID)
	want("zed_token", r.ZedToken, d.ZedToken)
	switch d.Kind {
	case decisionCheck:
		want("decision", r.Decision, decisionWord(d.Allowed))
		want("permission", r.Permission, d.Permission)
		want("module", r.Module, moduleOf(d.Permission))
		want("resource_type", r.ResourceType, d.ResourceType)
		if r.ResourceID != d.ResourceID && r.ResourceID != d.TenantID+"/"+d.ResourceID {
			want("resource_id", r.ResourceID, d.ResourceID)
		}
		if d.Action != "" {
			want("action", r.Action, d.Action)
		} else if r.Action == "" {
			p = append(p, fmt.Sprintf("decision %s: audit action is empty (%s)", d.ID, r))
		}
	case decisionList:
		if r.Decision != "allowed" && r.Decision != "denied" {
			p = append(p, fmt.Sprintf("decision %s: audit decision = %q (%s)", d.ID, r.Decision, r))
		}
	}
	return p
}

func writeRowProblems(c callRecord, r auditRow) []string {
	var p []string
	if r.ZedToken != c.ZedToken {
		p = append(p, fmt.Sprintf("write %s %s: audit zed_token = %q, want %q (%s)", c.Method, c.Path, r.ZedToken, c.ZedToken, r))
	}
	if c.Actor != "" && r.ActorUserID != c.Actor {
		p = append(p, fmt.Sprintf("write %s %s: audit actor_user_id = %q, want %q from X-Actor-User-Id (%s)", c.Method, c.Path, r.ActorUserID, c.Actor, r))
	}
	if t := tenantOfPath(c.Path); t != "" && r.TenantID != t {
		p = append(p, fmt.Sprintf("write %s %s: audit tenant_id = %q, want %q (%s)", c.Method, c.Path, r.TenantID, t, r))
	}
	if r.Action == "" {
		p = append(p, fmt.Sprintf("write %s %s: audit action is empty (%s)", c.Method, c.Path, r))
	}
	return p
}

// tenantOfPath returns the tenant id a /v1/tenants/{id}/... path names, or "".
func tenantOfPath(path string) string {
	rest, ok := strings.CutPrefix(path, "/v1/tenants/")
	if !ok {
		return ""
	}
	id, _, _ := strings.Cut(rest, "/")
	id, _ = url.PathUnescape(id)
	return id
}

func decisionWord(allowed bool) string {
	if allowed {
		return "allowed"
	}
	return "denied"
}

func moduleOf(key string) string {
	m, _, _ := strings.Cut(key, ":")
	return m
}

// auditEvent is one event of GET /v1/audit/events. It repeats internal/http's eventAnswer and the
// client's AuditEvent on purpose, like auditRow: the suite reads the API as an outsider would.
type auditEvent struct {
	ID           json.RawMessage `json:"id"`
	OccurredAt   time.Time       `json:"occurred_at"`
	Module       string          `json:"module"`
	Action       string          `json:"action"`
	ActorUserID  string          `json:"actor_user_id"`
	TenantID     string          `json:"tenant_id"`
	ResourceType string          `json:"resource_type"`
	ResourceID   string          `json:"resource_id"`
	Permission   string          `json:"permission"`
	Decision     string          `json:"decision"`
	ZedToken     string          `json:"zed_token"`
	DecisionID   string          `json:"decision_id"`
	Client       string          `json:"client"`
	RequestID    string          `json:"request_id"`
	Details      map[string]any  `json:"details"`
}

// id returns the event id as text whether the API writes it as a number or a string.
func (e auditEvent) id() string {
	s := string(bytes.TrimSpace(e.ID))
	if u, err := strconv.Unquote(s); err == nil {
		return u
	}
	return s
}

// walkAudit follows next_cursor from the first page to the last and checks each page: at most limit
// events, ascending occurred_at across pages, no event twice.
func walkAudit(tb testing.TB, a *api, query url.Values, limit int) []auditEvent {
	tb.Helper()
	q := url.Values{}
	for k, v := range query {
		q[k] = v
	}
	pageMax := 100
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
		pageMax = limit
	}
	var all []auditEvent
	seen := map[string]bool{}
	for page := 0; ; page++ {
		if page > 10000 {
			tb.Fatalf("audit walk %s: more than 10000 pages; the cursor does not advance", q.Encode())
		}
		var resp struct {
			Events     []auditEvent `json:"events"`
			NextCursor *string      `json:"next_cursor"`
		}
		a.mustGet(tb, "/v1/audit/events?"+q.Encode(), &resp)
		if resp.Events == nil || resp.NextCursor == nil {
			tb.Fatalf("audit page %d of %s lacks events or next_cursor", page, q.Encode())
		}
		if len(resp.Events) > pageMax {
			tb.Errorf("audit page %d of %s has %d events, more than the limit %d", page, q.Encode(), len(resp.Events), pageMax)
		}
		for _, e := range resp.Events {
			if seen[e.id()] {
				tb.Errorf("audit walk %s: event %s returned twice", q.Encode(), e.id())
			}
			seen[e.id()] = true
			if n := len(all); n > 0 && e.OccurredAt.Before(all[n-1].OccurredAt) {
				tb.Errorf("audit walk %s: event %s (%s) comes after a later one (%s)", q.Encode(), e.id(), e.OccurredAt, all[n-1].OccurredAt)
			}
			all = append(all, e)
		}
		if *resp.NextCursor == "" {
			return all
		}
		if len(resp.Events) == 0 {
			tb.Fatalf("audit walk %s: empty page %d with a next_cursor", q.Encode(), page)
		}
		q.Set("cursor", *resp.NextCursor)
	}
}

// mustMatchRows checks that events are exactly rows (by id, each once) and say what the rows say.
func mustMatchRows(tb testing.TB, what string, events []auditEvent, rows []auditRow) {
	tb.Helper()
	byID := map[string]auditRow{}
	for _, r := range rows {
		byID[r.ID] = r
	}
	got := map[string]bool{}
	for _, e := range events {
		r, ok := byID[e.id()]
		if !ok {
			tb.Errorf("%s: event %s is not among the %d expected rows (%+v)", what, e.id(), len(rows), e)
			continue
		}
		got[e.id()] = true
		if d := eventRowDiff(e, r); d != "" {
			tb.Errorf("%s: event %s differs from its row: %s", what, e.id(), d)
		}
	}
	var missing []string
	for _, r := range rows {
		if !got[r.ID] {
			missing = append(missing, r.ID)
		}
	}
	if len(missing) > 0 {
		tb.Errorf("%s: %d of %d expected rows never returned, e.g. %v", what, len(missing), len(rows), missing[:min(len(missing), 5)])
	}
}

func eventRowDiff(e auditEvent, r auditRow) string {
	var d []string
	cmp := func(field, got, want string) {
		if got != want {
			d = append(d, fmt.Sprintf("%s %q != %q", field, got, want))
		}
	}
	if !e.OccurredAt.Equal(r.OccurredAt) {
		d = append(d, fmt.Sprintf("occurred_at %s != %s", e.OccurredAt.Format(time.RFC3339Nano), r.OccurredAt.Format(time.RFC3339Nano)))
	}
	// One line a field, in the table's column order, so a missing field shows.
	cmp("module", e.Module, r.Module)
	cmp("action", e.Action, r.Action)
	cmp("actor_user_id", e.ActorUserID, r.ActorUserID)
	cmp("tenant_id", e.TenantID, r.TenantID)
	cmp("resource_type", e.ResourceType, r.ResourceType)
	cmp("resource_id", e.ResourceID, r.ResourceID)
	cmp("permission", e.Permission, r.Permission)
	cmp("decision", e.Decision, r.Decision)
	cmp("zed_token", e.ZedToken, r.ZedToken)
	cmp("decision_id", e.DecisionID, r.DecisionID)
	cmp("client", e.Client, r.Client)
	cmp("request_id", e.RequestID, r.RequestID)
	return strings.Join(d, "; ")
}

func filterRows(rows []auditRow, keep func(auditRow) bool) []auditRow {
	var out []auditRow
	for _, r := range rows {
		if keep(r) {
			out = append(out, r)
		}
	}
	return out
}

// TestAudit makes calls across modules, tenants, actors and decisions, then checks that the audit
// log holds exactly one faithful row per call and that every filter and every page size of
// GET /v1/audit/events returns each matching row exactly once.
func TestAudit(t *testing.T) {
	a := startApp(t)
	ops := a.as("ops-admin")

	ops.mustPartner(t, "pa")
	ops.mustTenant(t, "ta", "pa")
	ops.mustTenant(t, "tb", "pa")
	ops.mustRole(t, "ta", "operators", "scaibunker:create", "scaibunker:execute")
	ops.mustMember(t, "ta", "operators", "alice")
	ops.mustResource(t, "ta", "bunker", "b1", "alice")
	ops.mustRole(t, "tb", "skills", "scaiskills:view", "scaiskills:bind")
	a.as("sec-admin").mustMember(t, "tb", "skills", "bob")
	tok := a.mustMember(t, "tb", "tenant_viewer", "sa:audit-bot") // no actor header
	// Every check below reads at least as fresh as the last write.
	check := func(req checkRequest, want bool) {
		t.Helper()
		req.ConsistencyToken = tok
		a.mustCheck(t, req, want)
	}

	// Three batches, separated in time, so since/until windows have known contents.
	check(checkRequest{TenantID: "ta", UserID: "alice", Permission: "scaibunker:create"}, true)
	check(checkRequest{TenantID: "ta", UserID: "alice", Permission: "scaibunker:root"}, false)
	check(checkRequest{TenantID: "ta", UserID: "alice", Permission: "scaibunker:execute",
		Resource: &resourceRef{Type: "bunker", ID: "b1"}, Action: "bunker.exec"}, true)
	check(checkRequest{TenantID: "ta", UserID: "mallory", Permission: "scaibunker:execute",
		Resource: &resourceRef{Type: "bunker", ID: "b1"}, Action: "bunker.exec"}, false)

	time.Sleep(50 * time.Millisecond)
	since := time.Now()
	time.Sleep(50 * time.Millisecond)

	check(checkRequest{TenantID: "tb", UserID: "bob", Permission: "scaiskills:bind"}, true)
	check(checkRequest{TenantID: "tb", UserID: "bob", Permission: "scaiskills:grant"}, false)
	check(checkRequest{TenantID: "tb", UserID: "sa:audit-bot", Permission: "scaiskills:view"}, true)
	_, bulk, err := a.checkBulk(context.Background(), []checkRequest{
		{TenantID: "tb", UserID: "bob", Permission: "scaiskills:view", ConsistencyToken: tok},
		{TenantID: "tb", UserID: "bob", Permission: "scaiskills:manage", ConsistencyToken: tok},
		{TenantID: "ta", UserID: "bob", Permission: "scaibunker:create", ConsistencyToken: tok},
	})
	if err != nil || len(bulk) != 3 {
		t.Fatalf("check_bulk: %v (%d results)", err, len(bulk))
	}
	for i, want := range []bool{true, false, false} {
		if *bulk[i].Allowed != want {
			t.Errorf("check_bulk item %d: allowed = %v, want %v", i, *bulk[i].Allowed, want)
		}
	}
	a.mustPermissions(t, "tb", "bob", tok)

	time.Sleep(50 * time.Millisecond)
	until := time.Now()
	time.Sleep(50 * time.Millisecond)

	check(checkRequest{TenantID: "ta", UserID: "alice", Permission: "scaibunker:files"}, false)
	check(checkRequest{TenantID: "tb", UserID: "bob", Permission: "scaiskills:publish"}, false)

	rows := a.mustReconcileAudit(t)
	if len(rows) == 0 {
		t.Fatal("no audit rows at all")
	}

	t.Run("WalkAll", func(t *testing.T) {
		for _, limit := range []int{0, 1, 3, 7, 1000} {
			mustMatchRows(t, fmt.Sprintf("limit=%d", limit), walkAudit(t, a.api, nil, limit), rows)
		}
	})

	t.Run("Filters", func(t *testing.T) {
		filters := []struct {
			name  string
			query url.Values
			keep  func(auditRow) bool
		}{
			{"module=scaibunker", url.Values{"module": {"scaibunker"}}, func(r auditRow) bool { return r.Module == "scaibunker" }},
			{"module=scaiskills", url.Values{"module": {"scaiskills"}}, func(r auditRow) bool { return r.Module == "scaiskills" }},
			{"tenant_id=ta", url.Values{"tenant_id": {"ta"}}, func(r auditRow) bool { return r.TenantID == "ta" }},
			{"tenant_id=tb", url.Values{"tenant_id": {"tb"}}, func(r auditRow) bool { return r.TenantID == "tb" }},
			{"actor_user_id=alice", url.Values{"actor_user_id": {"alice"}}, func(r auditRow) bool { return r.ActorUserID == "alice" }},
			{"actor_user_id=ops-admin", url.Values{"actor_user_id": {"ops-admin"}}, func(r auditRow) bool { return r.ActorUserID == "ops-admin" }},
			{"decision=allowed", url.Values{"decision": {"allowed"}}, func(r auditRow) bool { return r.Decision == "allowed" }},
			{"decision=denied", url.Values{"decision": {"denied"}}, func(r auditRow) bool { return r.Decision == "denied" }},
			{"module=scaiskills&decision=denied&tenant_id=tb", url.Values{"module": {"scaiskills"}, "decision": {"denied"}, "tenant_id": {"tb"}},
				func(r auditRow) bool { return r.Module == "scaiskills" && r.Decision == "denied" && r.TenantID == "tb" }},
			{"since&until (RFC 3339)", url.Values{"since": {since.UTC().Format(time.RFC3339Nano)}, "until": {until.UTC().Format(time.RFC3339Nano)}},
				func(r auditRow) bool { return !r.OccurredAt.Before(since) && r.OccurredAt.Before(until) }},
			{"since (date, two days ago)", url.Values{"since": {time.Now().UTC().AddDate(0, 0, -2).Format(time.DateOnly)}},
				func(auditRow) bool { return true }},
			{"since (date, in two days)", url.Values{"since": {time.Now().UTC().AddDate(0, 0, 2).Format(time.DateOnly)}},
				func(auditRow) bool { return false }},
			{"module=scaibunker&since (date)", url.Values{"module": {"scaibunker"}, "since": {time.Now().UTC().AddDate(0, 0, -2).Format(time.DateOnly)}},
				func(r auditRow) bool { return r.Module == "scaibunker" }},
		}
		for _, f := range filters {
			t.Run(f.name, func(t *testing.T) {
				want := filterRows(rows, f.keep)
				mustMatchRows(t, f.name+" limit=2", walkAudit(t, a.api, f.query, 2), want)
				mustMatchRows(t, f.name, walkAudit(t, a.api, f.query, 0), want)
			})
		}
		// The window must hold the middle batch and nothing else, or the test proves nothing.
		mid := filterRows(rows, func(r auditRow) bool { return !r.OccurredAt.Before(since) && r.OccurredAt.Before(until) })
		if len(mid) != 7 {
			t.Errorf("the since/until window holds %d rows, want the middle batch's 7 decisions", len(mid))
		}
	})

	t.Run("BadQueries", func(t *testing.T) {
		for _, q := range []string{"decision=maybe", "limit=abc", "limit=-1", "since=yesterday", "until=2026-13-45", "cursor=not-a-cursor"} {
			a.mustStatus(t, http.MethodGet, "/v1/audit/events?"+q, nil, http.StatusBadRequest, "invalid")
		}
	})

	t.Run("Scopes", func(t *testing.T) {
		a.withToken("").mustStatus(t, http.MethodGet, "/v1/audit/events", nil, http.StatusUnauthorized, "unauthorized")
		a.withToken("not-a-token").mustStatus(t, http.MethodGet, "/v1/audit/events", nil, http.StatusUnauthorized, "unauthorized")
		checker := a.withToken(mustCreateToken(t, a.api, "checker", "check"))
		checker.mustStatus(t, http.MethodGet, "/v1/audit/events", nil, http.StatusForbidden, "forbidden")
		auditor := a.withToken(mustCreateToken(t, a.api, "auditor", "audit:read"))
		var page struct {
			Events []auditEvent `json:"events"`
		}
		auditor.mustGet(t, "/v1/audit/events?module=scaibunker", &page)
		if len(page.Events) == 0 {
			t.Error("an audit:read token sees no scaibunker events")
		}
		auditor.mustStatus(t, http.MethodPost, "/v1/permissions/check",
			checkRequest{TenantID: "ta", UserID: "alice", Permission: "scaibunker:create"}, http.StatusForbidden, "forbidden")
	})

	// The calls above (reads, refusals, token creation) must not have disturbed the trail.
	a.mustReconcileAudit(t)
}

// mustCreateToken creates an API token with scopes and returns its secret.
func mustCreateToken(tb testing.TB, a *api, name string, scopes ...string) string {
	tb.Helper()
	r := a.mustStatus(tb, http.MethodPost, "/v1/tokens", map[string]any{"name": name, "scopes": scopes}, http.StatusCreated, "")
	var tok struct {
		ID     json.RawMessage `json:"id"`
		Name   string          `json:"name"`
		Scopes []string        `json:"scopes"`
		Token  string          `json:"token"`
	}
	if err := json.Unmarshal(r.Body, &tok); err != nil || tok.Token == "" {
		tb.Fatalf("token answer without token: %s", r)
	}
	if tok.Name != name || !slices.Equal(slices.Sorted(slices.Values(tok.Scopes)), slices.Sorted(slices.Values(scopes))) {
		tb.Errorf("token answer %s: want name %q scopes %v", r, name, scopes)
	}
	return tok.Token
}
