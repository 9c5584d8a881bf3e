package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// api calls authzd's HTTP API the way a caller does, and remembers every call so the audit log can
// be reconciled against what callers were told.
type api struct {
	base  string
	token string
	actor string // sent as X-Actor-User-Id when set
	hc    *http.Client
	calls *callLog // shared by every copy made with as/withToken
}

func newAPI(base, token string) *api {
	return &api{
		base:  base,
		token: token,
		hc: &http.Client{
			Timeout:   30 * time.Second,
			Transport: &http.Transport{MaxIdleConns: 200, MaxIdleConnsPerHost: 200, IdleConnTimeout: 30 * time.Second},
		},
		calls: &callLog{},
	}
}

// as returns a copy of a that names actor in X-Actor-User-Id.
func (a *api) as(actor string) *api { c := *a; c.actor = actor; return &c }

// withToken returns a copy of a that authenticates with token.
func (a *api) withToken(token string) *api { c := *a; c.token = token; return &c }

// reply is one HTTP answer.
type reply struct {
	Method, Path string
	Status       int
	Body         []byte
	RequestID    string
}

// ErrorCode is the code of an error body, or "".
func (r reply) ErrorCode() string {
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	_ = json.Unmarshal(r.Body, &e)
	return e.Error.Code
}

func (r reply) String() string {
	body := string(r.Body)
	if len(body) > 512 {
		body = body[:512] + "..."
	}
	return fmt.Sprintf("%s %s -> %d %s (request %s)", r.Method, r.Path, r.Status, strings.TrimSpace(body), r.RequestID)
}

// send makes one request. It fails only when no HTTP answer came back.
func (a *api) send(ctx context.Context, method, path string, body any) (reply, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return reply{}, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return reply{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	if a.actor != "" {
		req.Header.Set("X-Actor-User-Id", a.actor)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, err
	}
	return reply{Method: method, Path: path, Status: resp.StatusCode, Body: b, RequestID: resp.Header.Get("X-Request-Id")}, nil
}

// request sends and records a call that leaves no decision: a provisioning write (PUT or DELETE,
// whose 200 answer carries its zed token), a read, or an admin call.
func (a *api) request(ctx context.Context, method, path string, body any) (reply, string, error) {
	r, err := a.send(ctx, method, path, body)
	if err != nil {
		return r, "", err
	}
	var token string
	isWrite := (method == http.MethodPut || method == http.MethodDelete) && !strings.HasPrefix(path, "/v1/tokens")
	if r.Status == http.StatusOK && isWrite {
		var w struct {
			ZedToken string `json:"zed_token"`
		}
		if err := json.Unmarshal(r.Body, &w); err != nil || w.ZedToken == "" {
			a.calls.add(callRecord{reply: r, Actor: a.actor, Malformed: fmt.Sprintf("write answer without zed_token: %s", r.Body)})
			return r, "", fmt.Errorf("write answer without zed_token: %s", r)
		}
		token = w.ZedToken
	}
	a.calls.add(callRecord{reply: r, Actor: a.actor, ZedToken: token, Write: token != ""})
	return r, token, nil
}

// Check bodies and answers, as in the HTTP contract.
type resourceRef struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

type checkRequest struct {
	TenantID         string       `json:"tenant_id"`
	UserID           string       `json:"user_id"`
	Permission       string       `json:"permission"`
	Resource         *resourceRef `json:"resource,omitempty"`
	Action           string       `json:"action,omitempty"`
	ConsistencyToken string       `json:"consistency_token,omitempty"`
}

func (c checkRequest) String() string {
	s := fmt.Sprintf("%s %s on tenant %s", c.UserID, c.Permission, c.TenantID)
	if c.Resource != nil {
		s += fmt.Sprintf(" %s/%s", c.Resource.Type, c.Resource.ID)
	}
	return s
}

type checkAnswer struct {
	Allowed    *bool  `json:"allowed"`
	CheckedAt  string `json:"checked_at"`
	DecisionID string `json:"decision_id"`
}

func (c checkAnswer) validate() error {
	if c.Allowed == nil || c.CheckedAt == "" || c.DecisionID == "" {
		return fmt.Errorf("check answer lacks allowed, checked_at or decision_id")
	}
	return nil
}

// check sends one check. It returns the answer only for a 200.
func (a *api) check(ctx context.Context, req checkRequest) (reply, checkAnswer, error) {
	return decide(ctx, a, http.MethodPost, "/v1/permissions/check", req, checkAnswer.validate,
		func(ans checkAnswer) []decisionRecord { return []decisionRecord{decisionFromCheck(req, ans)} })
}

// checkBulk sends items in one check_bulk call. It returns the answers only for a 200.
func (a *api) checkBulk(ctx context.Context, items []checkRequest) (reply, []checkAnswer, error) {
	type bulkAnswer struct {
		Results []checkAnswer `json:"results"`
	}
	r, ans, err := decide(ctx, a, http.MethodPost, "/v1/permissions/check_bulk", map[string]any{"items": items},
		func(ans bulkAnswer) error {
			if len(ans.Results) != len(items) {
				return fmt.Errorf("check_bulk: %d results for %d items", len(ans.Results), len(items))
			}
			for _, res := range ans.Results {
				if err := res.validate(); err != nil {
					return err
				}
			}
			return nil
		},
		func(ans bulkAnswer) []decisionRecord {
			out := make([]decisionRecord, len(ans.Results))
			for i, res := range ans.Results {
				out[i] = decisionFromCheck(items[i], res)
			}
			return out
		})
	if err != nil {
		return r, nil, err
	}
	return r, ans.Results, nil
}

// decide sends a call whose 200 answer carries decisions, and records it: with the decisions the caller
// received, or as malformed when the answer does not decode or validate.
func decide[T any](ctx context.Context, a *api, method, path string, body any, validate func(T) error, decisions func(T) []decisionRecord) (reply, T, error) {
	var ans T
	r, err := a.send(ctx, method, path, body)
	if err != nil {
		return r, ans, err
	}
	rec := callRecord{reply: r, Actor: a.actor}
	if r.Status == http.StatusOK {
		err := json.Unmarshal(r.Body, &ans)
		if err == nil {
			err = validate(ans)
		}
		if err != nil {
			rec.Malformed = err.Error()
			a.calls.add(rec)
			return r, ans, fmt.Errorf("%v: %s", err, r)
		}
		rec.Decisions = decisions(ans)
	}
	a.calls.add(rec)
	return r, ans, nil
}

type permissionsAnswer struct {
	Permissions []string `json:"permissions"`
	CheckedAt   string   `json:"checked_at"`
	DecisionID  string   `json:"decision_id"`
}

// permissions lists the keys userID holds in tenantID.
func (a *api) permissions(ctx context.Context, tenantID, userID, consistencyToken string) (reply, permissionsAnswer, error) {
	path := fmt.Sprintf("/v1/tenants/%s/users/%s/permissions", url.PathEscape(tenantID), url.PathEscape(userID))
	if consistencyToken != "" {
		path += "?consistency_token=" + url.QueryEscape(consistencyToken)
	}
	return decide(ctx, a, http.MethodGet, path, nil,
		func(ans permissionsAnswer) error {
			if ans.Permissions == nil || ans.CheckedAt == "" || ans.DecisionID == "" {
				return fmt.Errorf("permissions answer lacks permissions, checked_at or decision_id")
			}
			return nil
		},
		func(ans permissionsAnswer) []decisionRecord {
			return []decisionRecord{{
				Kind: decisionList, ID: ans.DecisionID, TenantID: tenantID, UserID: userID,
				ZedToken: ans.CheckedAt, Permissions: ans.Permissions,
			}}
		})
}

// The Must helpers below are for the test goroutine: they stop the test on an unexpected answer.

// mustWrite sends a provisioning write that must answer 200 and returns its zed token.
func (a *api) mustWrite(tb testing.TB, method, path string, body any) string {
	tb.Helper()
	r, token, err := a.request(context.Background(), method, path, body)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	if r.Status != http.StatusOK {
		tb.Fatalf("want 200: %s", r)
	}
	return token
}

// mustStatus sends a call that must answer status (and, for errors, code when given).
func (a *api) mustStatus(tb testing.TB, method, path string, body any, status int, code string) reply {
	tb.Helper()
	r, _, err := a.request(context.Background(), method, path, body)
	if err != nil && r.Status == 0 {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	if r.Status != status {
		tb.Fatalf("want %d: %s", status, r)
	}
	if code != "" && r.ErrorCode() != code {
		tb.Fatalf("want error code %q: %s", code, r)
	}
	if r.RequestID == "" {
		tb.Errorf("no X-Request-Id header: %s", r)
	}
	return r
}

// mustGet reads a JSON document that must answer 200 into v.
func (a *api) mustGet(tb testing.TB, path string, v any) {
	tb.Helper()
	r := a.mustStatus(tb, http.MethodGet, path, nil, http.StatusOK, "")
	if err := json.Unmarshal(r.Body, v); err != nil {
		tb.Fatalf("decode %s: %v", r, err)
	}
}

// mustCheck sends a check that must answer 200 with allowed == want.
func (a *api) mustCheck(tb testing.TB, req checkRequest, want bool) checkAnswer {
	tb.Helper()
	r, ans, err := a.check(context.Background(), req)
	if err != nil {
		tb.Fatalf("check %s: %v", req, err)
	}
	if r.Status != http.StatusOK {
		tb.Fatalf("check %s: want 200: %s", req, r)
	}
	if *ans.Allowed != want {
		tb.Errorf("check %s: allowed = %v, want %v (decision %s)", req, *ans.Allowed, want, ans.DecisionID)
	}
	return ans
}

// mustPermissions lists the keys a user holds; the answer must be 200.
func (a *api) mustPermissions(tb testing.TB, tenantID, userID, consistencyToken string) []string {
	tb.Helper()
	r, ans, err := a.permissions(context.Background(), tenantID, userID, consistencyToken)
	if err != nil {
		tb.Fatalf("permissions of %s in %s: %v", userID, tenantID, err)
	}
	if r.Status != http.StatusOK {
		tb.Fatalf("permissions of %s in %s: want 200: %s", userID, tenantID, r)
	}
	return ans.Permissions
}

// Path builders for the provisioning routes.
func partnerPath(p string) string    { return "/v1/partners/" + url.PathEscape(p) }
func tenantPath(t string) string     { return "/v1/tenants/" + url.PathEscape(t) }
func superAdminPath(u string) string { return "/v1/platform/super_admins/" + url.PathEscape(u) }
func partnerAdminPath(p, u string) string {
	return partnerPath(p) + "/admins/" + url.PathEscape(u)
}
func rolePath(t, r string) string { return tenantPath(t) + "/roles/" + url.PathEscape(r) }
func memberPath(t, r, u string) string {
	return rolePath(t, r) + "/members/" + url.PathEscape(u)
}
func resourcePath(t, typ, id string) string {
	return tenantPath(t) + "/resources/" + url.PathEscape(typ) + "/" + url.PathEscape(id)
}

type roleBody struct {
	Name              string   `json:"name"`
	ModulePermissions []string `json:"module_permissions"`
}

// Small provisioning helpers used by most scenarios. Each returns the write's zed token.
func (a *api) mustPartner(tb testing.TB, p string) string {
	tb.Helper()
	return a.mustWrite(tb, http.MethodPut, partnerPath(p), map[string]any{})
}

func (a *api) mustTenant(tb testing.TB, t, partner string) string {
	tb.Helper()
	return a.mustWrite(tb, http.MethodPut, tenantPath(t), map[string]string{"partner_id": partner})
}

func (a *api) mustRole(tb testing.TB, t, role string, keys ...string) string {
	tb.Helper()
	return a.mustWrite(tb, http.MethodPut, rolePath(t, role), roleBody{Name: role, ModulePermissions: keys})
}

func (a *api) mustMember(tb testing.TB, t, role, user string) string {
	tb.Helper()
	return a.mustWrite(tb, http.MethodPut, memberPath(t, role, user), nil)
}

func (a *api) mustResource(tb testing.TB, t, typ, id, owner string) string {
	tb.Helper()
	return a.mustWrite(tb, http.MethodPut, resourcePath(t, typ, id), map[string]string{"owner_id": owner})
}

// callLog is every call made through an api and what it answered.
type callLog struct {
	mu    sync.Mutex
	calls []callRecord
}

type callRecord struct {
	reply
	Actor     string
	Write     bool   // a provisioning write answered 200
	ZedToken  string // the write's zed token
	Decisions []decisionRecord
	Malformed string // why a 200 answer did not match the contract
}

const (
	decisionCheck = "check"
	decisionList  = "permissions"
)

// decisionRecord is one decision a caller received: what the audit row for its decision_id must say.
type decisionRecord struct {
	Kind         string
	ID           string
	TenantID     string
	UserID       string
	Permission   string
	ResourceType string
	ResourceID   string
	Action       string
	Allowed      bool
	ZedToken     string
	Permissions  []string // decisionList only
}

func decisionFromCheck(req checkRequest, ans checkAnswer) decisionRecord {
	d := decisionRecord{
		Kind: decisionCheck, ID: ans.DecisionID, TenantID: req.TenantID, UserID: req.UserID,
		Permission: req.Permission, Action: req.Action, Allowed: *ans.Allowed, ZedToken: ans.CheckedAt,
	}
	if req.Resource != nil {
		d.ResourceType, d.ResourceID = req.Resource.Type, req.Resource.ID
	}
	return d
}

func (l *callLog) add(r callRecord) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, r)
}

func (l *callLog) snapshot() []callRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]callRecord(nil), l.calls...)
}
